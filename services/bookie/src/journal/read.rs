//! Reading entries back from journal files, with one shared read-only handle per file.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::file::file_name;
use super::format::Location;

#[derive(Debug)]
pub struct FileSet {
    dir: PathBuf,
    open: Mutex<Handles>,
}

#[derive(Debug, Default)]
struct Handles {
    files: HashMap<u64, Arc<File>>,
    /// Files GC removed: never opened again (file ids are never reused).
    removed: HashSet<u64>,
}

impl FileSet {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            open: Mutex::new(Handles::default()),
        }
    }

    fn handle(&self, file_id: u64) -> io::Result<Arc<File>> {
        let gone = || io::Error::new(io::ErrorKind::NotFound, "journal file was removed");
        {
            let h = self.open.lock();
            if let Some(f) = h.files.get(&file_id) {
                return Ok(f.clone());
            }
            if h.removed.contains(&file_id) {
                return Err(gone());
            }
        }
        let f = Arc::new(File::open(self.dir.join(file_name(file_id)))?);
        let mut h = self.open.lock();
        // GC may have removed it while we opened it: do not keep a handle to a removed file.
        if h.removed.contains(&file_id) {
            return Err(gone());
        }
        Ok(h.files.entry(file_id).or_insert(f).clone())
    }

    /// Reads the bytes at `loc`. `NotFound` if the file was deleted meanwhile.
    pub fn read(&self, loc: &Location) -> io::Result<Bytes> {
        let f = self.handle(loc.file_id)?;
        let mut buf = vec![0u8; loc.len as usize];
        f.read_exact_at(&mut buf, loc.offset)?;
        Ok(Bytes::from(buf))
    }

    /// Drops the cached handle of a file GC is removing, and never opens it again.
    pub fn forget(&self, file_id: u64) {
        let mut h = self.open.lock();
        h.files.remove(&file_id);
        h.removed.insert(file_id);
    }
}
