//! A many-producer, one-consumer queue that the consumer empties in one go: the shape of group
//! commit. Producers never block; the consumer sleeps only when the queue is empty, and is woken
//! (one futex call) only if it is actually asleep.

use parking_lot::{Condvar, Mutex};

#[derive(Debug)]
struct State<T> {
    items: Vec<T>,
    closed: bool,
    sleeping: bool,
}

#[derive(Debug)]
pub struct BatchQueue<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
}

impl<T> Default for BatchQueue<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                items: Vec::new(),
                closed: false,
                sleeping: false,
            }),
            cv: Condvar::new(),
        }
    }
}

impl<T> BatchQueue<T> {
    /// Adds an item; gives it back if the queue is closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(item);
        }
        s.items.push(item);
        if s.sleeping {
            s.sleeping = false;
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Waits until there is something, then moves everything queued into `out`. Returns false
    /// once the queue is closed and empty.
    pub fn drain_into(&self, out: &mut Vec<T>) -> bool {
        let mut s = self.state.lock();
        while s.items.is_empty() {
            if s.closed {
                return false;
            }
            s.sleeping = true;
            self.cv.wait(&mut s);
        }
        std::mem::swap(&mut s.items, out);
        true
    }

    /// Refuses further pushes; the consumer still drains what is queued.
    pub fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        self.cv.notify_all();
    }

    /// Closes the queue and returns what was left in it.
    pub fn close_and_take(&self) -> Vec<T> {
        let mut s = self.state.lock();
        s.closed = true;
        self.cv.notify_all();
        std::mem::take(&mut s.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drains_everything_and_stops_when_closed() {
        let q = Arc::new(BatchQueue::default());
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        q.push(p * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let mut batch = Vec::new();
                while q.drain_into(&mut batch) {
                    all.append(&mut batch);
                }
                all
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let mut all = consumer.join().unwrap();
        all.sort_unstable();
        assert_eq!(all, (0..4000).collect::<Vec<_>>());
        assert_eq!(q.push(1), Err(1));
    }
}
