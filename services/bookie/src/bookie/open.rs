//! Opening a bookie: the data dir lock, identity, the index, journal replay, and the threads.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::{error, info, warn};

use super::{Bookie, Inner, spawn};
use crate::apply::Applier;
use crate::cache::RecentCache;
use crate::config::BookieConfig;
use crate::cookie::Cookie;
use crate::error::BookieError;
use crate::gc::{GcReport, Maintenance};
use crate::health::Health;
use crate::index::Index;
use crate::journal::file::{create_file, file_name, list_files};
use crate::journal::format::{BLOCK, FileHeader};
use crate::journal::read::FileSet;
use crate::journal::replay::{ReplayParams, replay};
use crate::journal::spares::Spares;
use crate::journal::writer::{JournalHandle, Position, Writer, WriterConfig};
use crate::ledgers::LedgerTable;
use crate::signal::Signal;
use crate::usage::Usage;

impl Bookie {
    /// Opens (or formats) the data dir, replays the journal and starts the bookie's threads.
    /// Blocking: call from a blocking context.
    pub fn open(cfg: BookieConfig) -> Result<Bookie, BookieError> {
        cfg.validate()?;
        let data = cfg.data_dir.clone();
        let journal_dir = data.join("journal");
        let index_dir = data.join("index");
        std::fs::create_dir_all(&data).map_err(BookieError::io(format!(
            "create data dir {}",
            data.display()
        )))?;
        let lock = lock_dir(&data)?;
        let has_data = dir_has_entries(&journal_dir) || dir_has_entries(&index_dir);
        let (cookie, fresh) =
            Cookie::load_or_create(&data, cfg.bookie_id.as_ref(), cfg.init, has_data)?;
        for d in [&journal_dir, &index_dir] {
            std::fs::create_dir_all(d)
                .map_err(BookieError::io(format!("create {}", d.display())))?;
        }
        let index = Arc::new(Index::open(&index_dir)?);
        let journal_files = list_files(&journal_dir)
            .map_err(BookieError::io(format!("list {}", journal_dir.display())))?;
        match index.instance()? {
            Some(i) if i != cookie.instance_id => {
                return Err(BookieError::Identity(format!(
                    "index {} belongs to bookie instance {i:016x}, not {:016x}: the data dir \
                     mixes two bookies' data",
                    index_dir.display(),
                    cookie.instance_id
                )));
            }
            Some(_) => {}
            None if !fresh => {
                return Err(BookieError::Identity(format!(
                    "index {} is empty but the cookie says this bookie has served: the index \
                     was wiped or replaced; refusing to start with an empty store under bookie \
                     id {:?}",
                    index_dir.display(),
                    cookie.bookie_id.as_str()
                )));
            }
            None => index.set_instance(cookie.instance_id)?,
        }
        if !fresh && journal_files.is_empty() {
            return Err(BookieError::Identity(format!(
                "journal dir {} is empty but the cookie says this bookie has served: the \
                 journal was wiped or replaced; refusing to start with an empty store under \
                 bookie id {:?}",
                journal_dir.display(),
                cookie.bookie_id.as_str()
            )));
        }

        let health = Arc::new(Health::default());
        if let Some(d) = index.damaged()? {
            warn!(damage = %d, "bookie carries recorded damage");
            health.set_damaged(d);
        }
        let ledgers = Arc::new(LedgerTable::load(index.load_ledgers()?));
        let usage = Arc::new(Mutex::new(Usage::load(index.load_usage()?)));
        let cache = Arc::new(RecentCache::new(cfg.cache_bytes));
        let applied_at_start = index.applied()?;
        let applied = Arc::new(Mutex::new(applied_at_start.unwrap_or_default()));
        let applier = Applier {
            index: index.clone(),
            ledgers: ledgers.clone(),
            usage: usage.clone(),
            cache: cache.clone(),
            applied: applied.clone(),
        };

        let outcome = replay(
            &ReplayParams {
                dir: &journal_dir,
                salt: cookie.journal_salt,
                instance_id: cookie.instance_id,
                applied: applied_at_start,
                max_entry: cfg.max_entry_len,
                max_body: cfg.journal.file_size,
            },
            &applier,
        )?;
        if !outcome.damage.is_empty() {
            let d = outcome.damage.join("; ");
            error!(damage = %d, "journal damage found: missing entries will be answered as unknown");
            index.set_damaged(&d)?;
            health.set_damaged(d);
        }
        if health.damaged().is_some() {
            // A lost fence could let an old writer be acknowledged again: refuse the epochs
            // this bookie may have fenced (see SlotState::suspect_upto).
            ledgers.suspect_all();
        }

        let spares = Spares::new(
            journal_dir.clone(),
            cfg.journal.file_size,
            cfg.journal.preallocate,
            cookie.instance_id,
        );
        let position = match outcome.position {
            Some(p) => p,
            None => {
                let header = FileHeader {
                    file_id: 1,
                    instance_id: cookie.instance_id,
                    size: cfg.journal.file_size,
                };
                create_file(&journal_dir, header, cfg.journal.preallocate, None)
                    .map_err(BookieError::io("create the first journal file"))?;
                Position {
                    file_id: 1,
                    offset: BLOCK as u64,
                    next_seq: 1,
                    ended: false,
                }
            }
        };
        reuse_leftovers(
            &journal_dir,
            &spares,
            position.file_id,
            &outcome.empty_after,
        );
        if fresh {
            // Last: a cookie on disk means the index and the journal exist under it.
            cookie.persist(&data)?;
        }

        let (journal, rx) = JournalHandle::channel();
        let writer = Writer::new(
            WriterConfig {
                dir: journal_dir.clone(),
                reserve: journal_reserve(cfg.journal.file_size),
                io_mode: cfg.journal.io_mode,
                max_commit_bytes: cfg.journal.max_commit_bytes,
                salt: cookie.journal_salt,
            },
            position,
            spares.clone(),
            applier,
            health.clone(),
        )?;
        let files = Arc::new(FileSet::new(journal_dir.clone()));
        let flushed = Arc::new(Mutex::new(applied_at_start.unwrap_or_default()));
        let maintenance = Arc::new(Maintenance {
            dir: journal_dir.clone(),
            index: index.clone(),
            usage,
            applied,
            flushed,
            files: files.clone(),
            spares: spares.clone(),
            journal: journal.clone(),
            health: health.clone(),
            file_size: cfg.journal.file_size,
            compact_below: cfg.gc.compact_below,
            max_entry: cfg.max_entry_len,
            flush_interval: cfg.index_flush_interval,
            gc_interval: cfg.gc.interval,
            gc_totals: Mutex::new(GcReport::default()),
        });
        let signal = Arc::new(Signal::default());

        let mut threads = Vec::new();
        let s = spares.clone();
        threads.push(spawn("dlog-prealloc", move || s.run())?);
        threads.push(spawn("dlog-journal", move || writer.run(rx))?);
        let (m, sig) = (maintenance.clone(), signal.clone());
        threads.push(spawn("dlog-maint", move || m.run(&sig))?);
        let (h, sig, dcfg, jdir) = (
            health.clone(),
            signal.clone(),
            cfg.disk.clone(),
            journal_dir.clone(),
        );
        threads.push(spawn("dlog-disk", move || {
            crate::disk::run(&jdir, &dcfg, &h, &sig);
        })?);

        info!(
            bookie_id = %cookie.bookie_id,
            data_dir = %data.display(),
            ledgers = ledgers.live_count(),
            replayed_commits = outcome.commits_replayed,
            "bookie open"
        );
        Ok(Bookie {
            inner: Arc::new(Inner {
                cfg,
                cookie,
                journal_dir,
                health,
                ledgers,
                index,
                journal,
                files,
                cache,
                maintenance,
                spares,
                signal,
                threads: Mutex::new(threads),
                _lock: lock,
            }),
        })
    }
}

/// Space kept at the end of each journal file for fences and deletes: 1/32 of the file, between
/// 16 KiB and 4 MiB, whole blocks.
pub fn journal_reserve(file_size: u64) -> u64 {
    (file_size / 32).clamp(16 << 10, 4 << 20) / BLOCK as u64 * BLOCK as u64
}

fn dir_has_entries(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Takes an exclusive lock on the data dir so that two processes never share it.
fn lock_dir(data: &std::path::Path) -> Result<File, BookieError> {
    let path = data.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(BookieError::io(format!("open {}", path.display())))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        BookieError::Identity(format!(
            "data dir {} is in use by another bookie process ({e})",
            data.display()
        ))
    })?;
    Ok(f)
}

/// Sorts out files left over from before the restart: the first empty file after the current
/// one is the spare; other empty files and `*.free` files are reused or deleted.
fn reuse_leftovers(dir: &std::path::Path, spares: &Spares, current: u64, empty: &[u64]) {
    let mut leftovers: Vec<PathBuf> = Vec::new();
    for &id in empty {
        let path = dir.join(file_name(id));
        if id == current + 1 {
            spares.set_ready(id, path);
        } else {
            leftovers.push(path);
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".free") {
                leftovers.push(e.path());
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for path in leftovers {
        let free = path.with_extension("free");
        if path != free && std::fs::rename(&path, &free).is_err() {
            continue;
        }
        if !spares.recycle(free.clone()) {
            let _ = std::fs::remove_file(&free);
        }
    }
}
