//! A stop-or-kick signal for the bookie's background threads, which sleep on it between rounds.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    stop: bool,
    kick: bool,
}

#[derive(Debug, Default)]
pub struct Signal {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    Stop,
    Kick,
    Timeout,
}

impl Signal {
    /// Sleeps up to `timeout`; returns early on [`Signal::stop`] or [`Signal::kick`].
    pub fn wait(&self, timeout: Duration) -> Wake {
        let mut s = self.state.lock();
        if !s.stop && !s.kick {
            let _ = self.cv.wait_for(&mut s, timeout);
        }
        if s.stop {
            Wake::Stop
        } else if std::mem::take(&mut s.kick) {
            Wake::Kick
        } else {
            Wake::Timeout
        }
    }

    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.cv.notify_all();
    }

    pub fn kick(&self) {
        self.state.lock().kick = true;
        self.cv.notify_all();
    }
}
