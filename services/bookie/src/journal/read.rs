//! Reading entries back from journal files, with one shared read-only handle per file.

use std::collections::HashMap;
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
    open: Mutex<HashMap<u64, Arc<File>>>,
}

impl FileSet {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn handle(&self, file_id: u64) -> io::Result<Arc<File>> {
        if let Some(f) = self.open.lock().get(&file_id) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.dir.join(file_name(file_id)))?);
        Ok(self.open.lock().entry(file_id).or_insert(f).clone())
    }

    /// Reads the bytes at `loc`. `NotFound` if the file was deleted meanwhile.
    pub fn read(&self, loc: &Location) -> io::Result<Bytes> {
        let f = self.handle(loc.file_id)?;
        let mut buf = vec![0u8; loc.len as usize];
        f.read_exact_at(&mut buf, loc.offset)?;
        Ok(Bytes::from(buf))
    }

    /// Drops the cached handle of a deleted file.
    pub fn forget(&self, file_id: u64) {
        self.open.lock().remove(&file_id);
    }
}
