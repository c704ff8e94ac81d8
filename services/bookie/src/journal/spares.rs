//! The preallocator: keeps the next journal file ready so that a roll never waits for a
//! multi-megabyte zero-fill, and reuses dead files handed back by GC so that the journal can
//! keep rolling on a nearly full disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing::{debug, warn};

use super::file::{Preallocate, create_file};
use super::format::FileHeader;

#[derive(Debug, Default)]
struct State {
    /// The file id the journal will roll to next.
    wanted: Option<u64>,
    ready: Option<(u64, PathBuf)>,
    error: Option<String>,
    /// Dead journal files GC handed back for reuse.
    recycled: Vec<PathBuf>,
    stop: bool,
}

#[derive(Debug)]
pub struct Spares {
    state: Mutex<State>,
    cv: Condvar,
    dir: PathBuf,
    file_size: u64,
    mode: Preallocate,
    instance_id: u64,
}

/// Most dead files kept for reuse instead of being deleted.
const MAX_RECYCLED: usize = 2;
const RETRY: Duration = Duration::from_secs(1);

impl Spares {
    pub fn new(dir: PathBuf, file_size: u64, mode: Preallocate, instance_id: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            dir,
            file_size,
            mode,
            instance_id,
        })
    }

    /// Registers an existing, empty journal file as the spare (found at start-up).
    pub fn set_ready(&self, file_id: u64, path: PathBuf) {
        let mut s = self.state.lock();
        s.ready = Some((file_id, path));
        s.wanted = Some(file_id);
        self.cv.notify_all();
    }

    /// Asks for file `file_id` to be prepared.
    pub fn want(&self, file_id: u64) {
        let mut s = self.state.lock();
        if s.wanted != Some(file_id) {
            s.wanted = Some(file_id);
            s.error = None;
            if s.ready.as_ref().is_some_and(|(id, _)| *id != file_id) {
                // A spare under another id (cannot happen in normal operation): reuse it.
                if let Some((_, p)) = s.ready.take() {
                    s.recycled.push(p);
                }
            }
            self.cv.notify_all();
        }
    }

    /// Takes the prepared file `file_id`, waiting while it is being created. Fails at once if
    /// the last attempt failed (typically: no space); the preallocator keeps retrying.
    pub fn take(&self, file_id: u64) -> Result<PathBuf, String> {
        let mut s = self.state.lock();
        if s.wanted != Some(file_id) {
            s.wanted = Some(file_id);
            s.error = None;
            self.cv.notify_all();
        }
        loop {
            if let Some((id, _)) = &s.ready
                && *id == file_id
            {
                let (_, path) = s.ready.take().expect("checked above");
                return Ok(path);
            }
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            if s.stop {
                return Err("shutting down".into());
            }
            self.cv.wait(&mut s);
        }
    }

    /// Hands back a dead journal file; returns false if the caller should delete it instead.
    pub fn recycle(&self, path: PathBuf) -> bool {
        let mut s = self.state.lock();
        if s.recycled.len() >= MAX_RECYCLED {
            return false;
        }
        s.recycled.push(path);
        s.error = None;
        self.cv.notify_all();
        true
    }

    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.cv.notify_all();
    }

    /// The preallocator thread's loop.
    pub fn run(self: Arc<Self>) {
        let mut s = self.state.lock();
        loop {
            if s.stop {
                return;
            }
            let needed = match (s.wanted, &s.ready, &s.error) {
                (Some(id), None, None) => Some(id),
                _ => None,
            };
            let Some(file_id) = needed else {
                if s.error.is_some() {
                    // Retry after a pause, or sooner when GC recycles a file.
                    let _ = self.cv.wait_for(&mut s, RETRY);
                    s.error = None;
                } else {
                    self.cv.wait(&mut s);
                }
                continue;
            };
            let reuse = s.recycled.pop();
            drop(s);
            let header = FileHeader {
                file_id,
                instance_id: self.instance_id,
                size: self.file_size,
            };
            let reused = reuse.is_some();
            let result = create_file(&self.dir, header, self.mode, reuse);
            s = self.state.lock();
            match result {
                Ok(path) => {
                    debug!(file_id, reused, "journal file ready");
                    if s.wanted == Some(file_id) {
                        s.ready = Some((file_id, path));
                    } else {
                        s.recycled.push(path);
                    }
                }
                Err(e) => {
                    warn!(file_id, error = %e, "cannot prepare journal file");
                    s.error = Some(format!("cannot prepare journal file {file_id}: {e}"));
                }
            }
            self.cv.notify_all();
        }
    }
}
