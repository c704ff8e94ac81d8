//! Journal files on disk: naming, preallocation, aligned writes and durable sync.
//!
//! Files are named `{file_id:016x}.jnl`, created under a temporary name, fully preallocated and
//! given their header block, synced, then renamed into place (and the directory synced), so a
//! file with a final name is always complete. Writes go to 4 KiB-aligned offsets from a
//! 4 KiB-aligned buffer so the same code serves O_DIRECT and buffered IO.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{BLOCK, FileHeader};

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoMode {
    /// O_DIRECT writes, then fdatasync (flushes the device cache).
    Direct,
    /// O_DIRECT | O_DSYNC: each write returns once durable; no separate sync call. The default:
    /// measured fastest here (docs/benchmarks.md).
    DirectDsync,
    /// Page-cache writes, then fdatasync. For filesystems without O_DIRECT.
    Buffered,
}

/// How a new journal file's space is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preallocate {
    /// fallocate, then write zeros (with O_DIRECT), so later commits overwrite written blocks
    /// and an fdatasync never converts extents. Faster per commit, but it doubles the disk
    /// traffic and its writes delay commits: slower end to end here (docs/decisions/0002).
    Zero,
    /// fallocate only. The default.
    Fallocate,
}

pub fn file_name(file_id: u64) -> String {
    format!("{file_id:016x}.jnl")
}

/// The id of a journal file name, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".jnl")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Journal file ids present in `dir`, ascending.
pub fn list_files(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(id) = e.file_name().to_str().and_then(parse_file_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates journal file `header.file_id` of `size` bytes in `dir`, or re-initialises `reuse` (a
/// dead journal file handed back by GC) under the new id. Returns its final path.
pub fn create_file(
    dir: &Path,
    header: FileHeader,
    mode: Preallocate,
    reuse: Option<PathBuf>,
) -> io::Result<PathBuf> {
    let size = header.size;
    let tmp = dir.join(format!("{}.tmp", file_name(header.file_id)));
    let fresh = reuse.is_none();
    if let Some(old) = reuse {
        std::fs::rename(old, &tmp)?;
    }
    let result = (|| {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(&tmp)?;
        if fresh {
            fail::fail_point!("journal::preallocate", |_| Err(
                io::Error::from_raw_os_error(libc::ENOSPC)
            ));
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, size)?;
            if mode == Preallocate::Zero {
                zero_fill(&tmp, size)?;
            }
        } else if f.metadata()?.len() != size {
            f.set_len(size)?;
        }
        f.write_all_at(&header.encode(), 0)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let path = dir.join(file_name(header.file_id));
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Writes zeros over the whole file, with O_DIRECT where the filesystem allows it so that the
/// page cache (and the CPU copying into it) stays out of the way of the journal.
fn zero_fill(path: &Path, size: u64) -> io::Result<()> {
    let f = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(_) => OpenOptions::new().write(true).open(path)?,
    };
    let mut zeros = AlignedBuf::with_capacity(1 << 20);
    zeros.zero_extend_to(1 << 20);
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(1 << 20) as usize;
        f.write_all_at(&zeros.as_slice()[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// A journal file open for appending commits.
#[derive(Debug)]
pub struct WriteFile {
    pub file_id: u64,
    pub size: u64,
    file: File,
    mode: IoMode,
}

impl WriteFile {
    pub fn open(path: &Path, file_id: u64, mode: IoMode) -> io::Result<WriteFile> {
        let flags = match mode {
            IoMode::Direct => libc::O_DIRECT,
            IoMode::DirectDsync => libc::O_DIRECT | libc::O_DSYNC,
            IoMode::Buffered => 0,
        };
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(WriteFile {
            file_id,
            size,
            file,
            mode,
        })
    }

    /// Writes `buf` (a whole number of blocks) at `offset` (block-aligned).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        debug_assert_eq!(buf.len() % BLOCK, 0);
        debug_assert_eq!(offset % BLOCK as u64, 0);
        fail::fail_point!("journal::write", |_| Err(io::Error::other(
            "injected journal write failure"
        )));
        self.file.write_all_at(buf, offset)
    }

    /// Makes every completed write durable.
    pub fn sync(&self) -> io::Result<()> {
        fail::fail_point!("journal::fsync", |_| Err(io::Error::other(
            "injected fsync failure"
        )));
        match self.mode {
            IoMode::DirectDsync => Ok(()),
            IoMode::Direct | IoMode::Buffered => {
                rustix::fs::fdatasync(&self.file).map_err(Into::into)
            }
        }
    }
}

/// A growable buffer whose contents start at a 4 KiB-aligned address, as O_DIRECT requires.
/// Built on a plain `Vec` with slack, so no unsafe code is needed.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn with_capacity(cap: usize) -> Self {
        let mut b = AlignedBuf::default();
        b.reserve(cap);
        b
    }

    fn capacity(&self) -> usize {
        self.raw.len().saturating_sub(self.start)
    }

    fn reserve(&mut self, cap: usize) {
        if self.capacity() >= cap && !self.raw.is_empty() {
            return;
        }
        let cap = cap.next_power_of_two().max(BLOCK);
        let raw = vec![0u8; cap + BLOCK];
        let start = raw.as_ptr().align_offset(BLOCK);
        let mut new = AlignedBuf { raw, start, len: 0 };
        new.raw[new.start..new.start + self.len].copy_from_slice(self.as_slice());
        new.len = self.len;
        *self = new;
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn extend_from_slice(&mut self, s: &[u8]) {
        self.reserve(self.len + s.len());
        let at = self.start + self.len;
        self.raw[at..at + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    /// Grows to `len` with zeros.
    pub fn zero_extend_to(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        self.reserve(len);
        self.raw[self.start + self.len..self.start + len].fill(0);
        self.len = len;
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_stays_aligned_as_it_grows() {
        let mut b = AlignedBuf::with_capacity(10);
        for i in 0..5000u32 {
            b.extend_from_slice(&i.to_le_bytes());
            assert_eq!(b.as_slice().as_ptr() as usize % BLOCK, 0);
        }
        assert_eq!(b.len(), 20000);
        assert_eq!(&b.as_slice()[4..8], &1u32.to_le_bytes());
        b.zero_extend_to(24576);
        assert_eq!(b.len(), 24576);
        assert!(b.as_slice()[20000..].iter().all(|&x| x == 0));
    }

    #[test]
    fn names_roundtrip() {
        assert_eq!(parse_file_name(&file_name(0xabc)), Some(0xabc));
        assert_eq!(parse_file_name("00000000000abc.jnl"), None);
        assert_eq!(parse_file_name("0000000000000abc.jnl.tmp"), None);
    }

    #[test]
    fn create_and_write_direct() {
        let dir = tempfile::tempdir().unwrap();
        let h = FileHeader {
            file_id: 1,
            instance_id: 2,
            size: 64 << 10,
        };
        let path = create_file(dir.path(), h, Preallocate::Zero, None).unwrap();
        assert_eq!(list_files(dir.path()).unwrap(), vec![1]);
        let f = WriteFile::open(&path, 1, IoMode::Direct).unwrap();
        let mut buf = AlignedBuf::with_capacity(BLOCK);
        buf.extend_from_slice(b"hello");
        buf.zero_extend_to(BLOCK);
        f.write_at(buf.as_slice(), BLOCK as u64).unwrap();
        f.sync().unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 64 << 10);
        assert_eq!(FileHeader::decode(&data[..BLOCK]).unwrap(), h);
        assert_eq!(&data[BLOCK..BLOCK + 5], b"hello");

        // Re-initialise it as file 2, as GC recycling does.
        let h2 = FileHeader {
            file_id: 2,
            instance_id: 2,
            size: 64 << 10,
        };
        create_file(dir.path(), h2, Preallocate::Zero, Some(path)).unwrap();
        assert_eq!(list_files(dir.path()).unwrap(), vec![2]);
    }
}
