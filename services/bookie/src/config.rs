//! Bookie configuration: the raw TOML form (unknown keys refused, durations like "10s"), and
//! the validated form the bookie runs with. Every default lives in [`BookieConfig::default`].
//!
//! ```toml
//! data_dir = "/var/lib/dlog/bookie"
//! listen = "0.0.0.0:3181"
//! bookie_id = "bookie-1"        # optional; generated on first start if absent
//!
//! [journal]
//! file_size_bytes = 536870912
//! io_mode = "direct-dsync"      # direct-dsync | direct | buffered
//! preallocate = "fallocate"     # fallocate | zero
//! max_commit_bytes = 4194304
//!
//! [index]
//! flush_interval = "10s"
//!
//! [cache]
//! capacity_bytes = 268435456
//!
//! [disk]
//! read_only_above = 0.95        # fraction of the filesystem in use
//! writable_below = 0.90
//! check_interval = "1s"
//!
//! [gc]
//! interval = "60s"
//! compact_below = 0.5           # compact a journal file when its live fraction falls below
//!
//! [limits]
//! max_entry_bytes = 5242880
//! max_inflight_bytes_per_connection = 67108864
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dlog_api::BookieId;
use dlog_api::wire::DEFAULT_MAX_ENTRY_LEN;
use serde::Deserialize;

use crate::error::BookieError;
use crate::journal::file::{IoMode, Preallocate};
use crate::journal::format::BLOCK;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct BookieConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The id to use, or to check the data dir's cookie against.
    pub bookie_id: Option<BookieId>,
    /// Allow formatting an empty data dir under an explicit `bookie_id`.
    pub init: bool,
    pub journal: JournalConfig,
    pub index_flush_interval: Duration,
    pub cache_bytes: u64,
    pub disk: DiskConfig,
    pub gc: GcConfig,
    pub max_entry_len: usize,
    pub max_inflight_bytes_per_connection: usize,
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub file_size: u64,
    pub io_mode: IoMode,
    pub preallocate: Preallocate,
    pub max_commit_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub read_only_above: f64,
    pub writable_below: f64,
    pub check_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct GcConfig {
    pub interval: Duration,
    pub compact_below: f64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3181";
const MAX_FILE_SIZE: u64 = 1 << 40;
/// Within what the connection's semaphore can count.
const MAX_INFLIGHT: usize = 1 << 34;
const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for BookieConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/bookie"),
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            bookie_id: None,
            init: false,
            journal: JournalConfig {
                // Fewer rolls: each new file costs fsyncs of its own (file and directory) that
                // share ext4's metadata journal with the commits; at 64 MiB they showed in p99.
                file_size: 512 << 20,
                io_mode: IoMode::DirectDsync,
                preallocate: Preallocate::Fallocate,
                max_commit_bytes: 4 << 20,
            },
            index_flush_interval: Duration::from_secs(10),
            cache_bytes: 256 << 20,
            disk: DiskConfig {
                read_only_above: 0.95,
                writable_below: 0.90,
                check_interval: Duration::from_secs(1),
            },
            gc: GcConfig {
                interval: Duration::from_secs(60),
                compact_below: 0.5,
            },
            max_entry_len: DEFAULT_MAX_ENTRY_LEN,
            max_inflight_bytes_per_connection: 64 << 20,
        }
    }
}

impl BookieConfig {
    /// A config for a bookie in `data_dir` with small files, for tests and the bench.
    pub fn for_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }

    /// Checks the relations between settings.
    pub fn validate(&self) -> Result<(), BookieError> {
        let bad = |m: String| Err(BookieError::Config(m));
        let j = &self.journal;
        if !j.file_size.is_multiple_of(BLOCK as u64) {
            return bad(format!(
                "journal.file_size_bytes ({}) must be a multiple of {BLOCK}",
                j.file_size
            ));
        }
        // Upper bounds first, so that no arithmetic below can overflow.
        if j.file_size > MAX_FILE_SIZE {
            return bad(format!(
                "journal.file_size_bytes ({}) must be at most {MAX_FILE_SIZE}",
                j.file_size
            ));
        }
        if j.max_commit_bytes > 1 << 30 {
            return bad(format!(
                "journal.max_commit_bytes ({}) must be at most 1 GiB",
                j.max_commit_bytes
            ));
        }
        if self.max_inflight_bytes_per_connection > MAX_INFLIGHT {
            return bad(format!(
                "limits.max_inflight_bytes_per_connection ({}) must be at most {MAX_INFLIGHT}",
                self.max_inflight_bytes_per_connection
            ));
        }
        let largest_commit = (j.max_commit_bytes.max(self.max_entry_len) + 2 * BLOCK) as u64;
        // Header block, one commit of the largest size, the reserve for fences and deletes,
        // and the end-of-file block.
        let needed =
            largest_commit + 2 * BLOCK as u64 + crate::bookie::journal_reserve(j.file_size);
        if j.file_size < needed {
            return bad(format!(
                "journal.file_size_bytes ({}) must be at least {needed} to hold the largest \
                 commit (limits.max_entry_bytes / journal.max_commit_bytes) and the reserve",
                j.file_size,
            ));
        }
        if j.max_commit_bytes < BLOCK {
            return bad(format!("journal.max_commit_bytes must be at least {BLOCK}"));
        }
        if self.max_entry_len < 64 || self.max_entry_len > (1 << 30) {
            return bad(format!(
                "limits.max_entry_bytes ({}) must be between 64 and 1 GiB",
                self.max_entry_len
            ));
        }
        let d = &self.disk;
        if !(d.writable_below > 0.0
            && d.writable_below <= d.read_only_above
            && d.read_only_above <= 1.0)
        {
            return bad(format!(
                "disk thresholds must satisfy 0 < writable_below ({}) <= read_only_above ({}) <= 1",
                d.writable_below, d.read_only_above
            ));
        }
        if !(0.0..1.0).contains(&self.gc.compact_below) {
            return bad(format!(
                "gc.compact_below ({}) must be in [0, 1)",
                self.gc.compact_below
            ));
        }
        if self.max_inflight_bytes_per_connection < 2 * (self.max_entry_len + 4096) {
            return bad(format!(
                "limits.max_inflight_bytes_per_connection ({}) must be at least twice the largest \
                 frame",
                self.max_inflight_bytes_per_connection
            ));
        }
        for (name, v) in [
            ("index.flush_interval", self.index_flush_interval),
            ("disk.check_interval", d.check_interval),
            ("gc.interval", self.gc.interval),
        ] {
            if v.is_zero() || v > MAX_INTERVAL {
                return bad(format!(
                    "{name} ({}) must be greater than zero and at most {}",
                    humantime::format_duration(v),
                    humantime::format_duration(MAX_INTERVAL)
                ));
            }
        }
        Ok(())
    }

    /// Parses and validates a TOML config; unset keys take their defaults.
    pub fn from_toml(text: &str) -> Result<BookieConfig, BookieError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| BookieError::Config(e.to_string()))?;
        let mut c = BookieConfig::default();
        if let Some(v) = raw.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = raw.listen {
            c.listen = v
                .parse()
                .map_err(|e| BookieError::Config(format!("listen = {v:?}: {e}")))?;
        }
        if let Some(v) = raw.bookie_id {
            c.bookie_id =
                Some(BookieId::new(v).map_err(|e| BookieError::Config(format!("bookie_id: {e}")))?);
        }
        if let Some(j) = raw.journal {
            set(&mut c.journal.file_size, j.file_size_bytes);
            set(&mut c.journal.io_mode, j.io_mode);
            set(&mut c.journal.preallocate, j.preallocate);
            set(&mut c.journal.max_commit_bytes, j.max_commit_bytes);
        }
        if let Some(i) = raw.index {
            set(&mut c.index_flush_interval, i.flush_interval);
        }
        if let Some(k) = raw.cache {
            set(&mut c.cache_bytes, k.capacity_bytes);
        }
        if let Some(d) = raw.disk {
            set(&mut c.disk.read_only_above, d.read_only_above);
            set(&mut c.disk.writable_below, d.writable_below);
            set(&mut c.disk.check_interval, d.check_interval);
        }
        if let Some(g) = raw.gc {
            set(&mut c.gc.interval, g.interval);
            set(&mut c.gc.compact_below, g.compact_below);
        }
        if let Some(l) = raw.limits {
            set(&mut c.max_entry_len, l.max_entry_bytes);
            set(
                &mut c.max_inflight_bytes_per_connection,
                l.max_inflight_bytes_per_connection,
            );
        }
        c.validate()?;
        Ok(c)
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    bookie_id: Option<String>,
    journal: Option<RawJournal>,
    index: Option<RawIndex>,
    cache: Option<RawCache>,
    disk: Option<RawDisk>,
    gc: Option<RawGc>,
    limits: Option<RawLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    file_size_bytes: Option<u64>,
    io_mode: Option<IoMode>,
    preallocate: Option<Preallocate>,
    max_commit_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    #[serde(default, with = "humantime_serde")]
    flush_interval: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    capacity_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    read_only_above: Option<f64>,
    writable_below: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    check_interval: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGc {
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    compact_below: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_entry_bytes: Option<usize>,
    max_inflight_bytes_per_connection: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_example_parses() {
        BookieConfig::default().validate().unwrap();
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let c = BookieConfig::from_toml(&example).unwrap();
        assert_eq!(c.bookie_id.unwrap().as_str(), "bookie-1");
        assert_eq!(c.journal.io_mode, IoMode::DirectDsync);
        assert_eq!(c.gc.interval, Duration::from_secs(60));
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (text, needle) in [
            ("nonsense = 1", "nonsense"),
            ("[journal]\nfile_size_bytes = 4097", "file_size_bytes"),
            ("[journal]\nio_mode = \"fast\"", "io_mode"),
            ("[disk]\nread_only_above = 1.5", "read_only_above"),
            ("[gc]\ninterval = \"soon\"", "interval"),
            ("listen = \"nowhere\"", "listen"),
            ("bookie_id = \"Bad Id\"", "bookie_id"),
            ("[limits]\nmax_entry_bytes = 1", "max_entry_bytes"),
            (
                "[journal]\nmax_commit_bytes = 18446744073709551615",
                "max_commit_bytes",
            ),
            (
                "[limits]\nmax_inflight_bytes_per_connection = 18446744073709551615",
                "max_inflight_bytes_per_connection",
            ),
            (
                "[index]\nflush_interval = \"300000000000y\"",
                "flush_interval",
            ),
            ("[gc]\ninterval = \"0s\"", "interval"),
        ] {
            let err = BookieConfig::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }
}
