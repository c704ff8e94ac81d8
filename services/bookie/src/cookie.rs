//! Bookie identity: the cookie in the data dir.
//!
//! The cookie (`DATA/COOKIE`, JSON) names the bookie (`bookie_id`, stable across restarts and
//! address changes), the instance of its data (`instance_id`, random, new each time a data dir
//! is formatted) and the journal's secret salt. Journal file headers and the index carry the
//! instance id, so a bookie refuses to start on:
//! - another bookie's data dir (the cookie names a different id than the one asked for);
//! - a data dir with data but no cookie, or whose journal or index belong to another instance
//!   (partly wiped or mixed up);
//! - an empty data dir under an explicit id, unless `--init` says this really is a new bookie:
//!   a bookie that lost its disk must not rejoin under its old id, because readers would take
//!   its empty answers for "no such entry" on ledgers it used to hold.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use dlog_api::BookieId;
use serde::{Deserialize, Serialize};

use crate::error::BookieError;

pub const COOKIE_FILE: &str = "COOKIE";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    pub format: u32,
    pub bookie_id: BookieId,
    pub instance_id: u64,
    pub journal_salt: u64,
    pub created_unix_ms: u64,
}

impl Cookie {
    /// Loads the cookie of `data_dir` (`fresh` false), or makes a new one if the dir holds no
    /// bookie data (`fresh` true). A new cookie is not written here: the caller formats the
    /// index and the journal first and then calls [`Cookie::persist`], so that a cookie on disk
    /// always means the index and the journal were created under it. `has_data` says whether
    /// journal or index files exist.
    pub fn load_or_create(
        data_dir: &Path,
        wanted: Option<&BookieId>,
        init: bool,
        has_data: bool,
    ) -> Result<(Cookie, bool), BookieError> {
        let path = data_dir.join(COOKIE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let cookie: Cookie = serde_json::from_slice(&bytes).map_err(|e| {
                    BookieError::Identity(format!("cookie {} is unreadable: {e}", path.display()))
                })?;
                if cookie.format != FORMAT {
                    return Err(BookieError::Identity(format!(
                        "cookie {} has format {}, this build reads {FORMAT}",
                        path.display(),
                        cookie.format
                    )));
                }
                if let Some(w) = wanted
                    && *w != cookie.bookie_id
                {
                    return Err(BookieError::Identity(format!(
                        "data dir {} belongs to bookie {:?}, not {:?}: point --data-dir at {:?}'s \
                         own data, or drop --id to start as {:?}",
                        data_dir.display(),
                        cookie.bookie_id.as_str(),
                        w.as_str(),
                        w.as_str(),
                        cookie.bookie_id.as_str()
                    )));
                }
                Ok((cookie, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if has_data {
                    return Err(BookieError::Identity(format!(
                        "data dir {} holds bookie data but no {COOKIE_FILE}: it was damaged or \
                         partly wiped, or its first start was interrupted; refusing to start (if \
                         this bookie never served, remove the dir and start again)",
                        data_dir.display()
                    )));
                }
                if let Some(w) = wanted
                    && !init
                {
                    return Err(BookieError::Identity(format!(
                        "data dir {} is empty but bookie id {:?} was given: if {:?} is a new \
                         bookie, pass --init to format it; if it is an existing bookie whose \
                         disk was lost or wiped, it must not rejoin under the same id (its \
                         ledgers would be missing) — start it under a new id and let \
                         re-replication restore its data",
                        data_dir.display(),
                        w.as_str(),
                        w.as_str()
                    )));
                }
                let bookie_id = match wanted {
                    Some(w) => w.clone(),
                    None => BookieId::new(format!("bookie-{:08x}", fastrand::u32(..)))
                        .expect("generated id is valid"),
                };
                let cookie = Cookie {
                    format: FORMAT,
                    bookie_id,
                    instance_id: fastrand::u64(1..),
                    journal_salt: fastrand::u64(..),
                    created_unix_ms: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                };
                Ok((cookie, true))
            }
            Err(e) => Err(BookieError::io(format!("read cookie {}", path.display()))(
                e,
            )),
        }
    }
}

impl Cookie {
    /// Writes the cookie into `data_dir`, atomically.
    pub fn persist(&self, data_dir: &Path) -> Result<(), BookieError> {
        let path = data_dir.join(COOKIE_FILE);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| BookieError::Internal(format!("encode cookie: {e}")))?;
        write_atomically(&path, &bytes)
            .map_err(BookieError::io(format!("write cookie {}", path.display())))?;
        tracing::info!(bookie_id = %self.bookie_id, "formatted new bookie data dir");
        Ok(())
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_rules() {
        let dir = tempfile::tempdir().unwrap();
        let b1 = BookieId::new("b1").unwrap();
        let b2 = BookieId::new("b2").unwrap();
        // Explicit id on an empty dir needs --init.
        let e = Cookie::load_or_create(dir.path(), Some(&b1), false, false).unwrap_err();
        assert!(e.to_string().contains("--init"), "{e}");
        let (c, fresh) = Cookie::load_or_create(dir.path(), Some(&b1), true, false).unwrap();
        assert!(fresh, "a new cookie is not written until persisted");
        assert!(!dir.path().join(COOKIE_FILE).exists());
        assert_eq!(c.bookie_id, b1);
        c.persist(dir.path()).unwrap();
        // Same id again: same cookie.
        assert_eq!(
            Cookie::load_or_create(dir.path(), Some(&b1), false, true).unwrap(),
            (c.clone(), false)
        );
        assert_eq!(
            Cookie::load_or_create(dir.path(), None, false, true).unwrap(),
            (c, false)
        );
        // Another id on this dir: refused.
        let e = Cookie::load_or_create(dir.path(), Some(&b2), true, true).unwrap_err();
        assert!(e.to_string().contains("belongs to bookie"), "{e}");
        // Data without a cookie: refused.
        std::fs::remove_file(dir.path().join(COOKIE_FILE)).unwrap();
        let e = Cookie::load_or_create(dir.path(), None, false, true).unwrap_err();
        assert!(e.to_string().contains("no COOKIE"), "{e}");
        // A garbage cookie: refused.
        std::fs::write(dir.path().join(COOKIE_FILE), b"{not json").unwrap();
        assert!(Cookie::load_or_create(dir.path(), None, false, true).is_err());
    }

    #[test]
    fn generated_ids_are_distinct() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let (c1, _) = Cookie::load_or_create(d1.path(), None, false, false).unwrap();
        let (c2, _) = Cookie::load_or_create(d2.path(), None, false, false).unwrap();
        assert_ne!(c1.instance_id, c2.instance_id);
        assert_ne!(c1.journal_salt, c2.journal_salt);
    }
}
