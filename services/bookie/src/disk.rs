//! Disk usage: switches the bookie to read-only before its filesystem fills, and back once usage
//! falls below the lower threshold (the gap avoids flapping).

use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::DiskConfig;
use crate::health::Health;
use crate::signal::{Signal, Wake};

/// Total and used bytes of the filesystem holding `path`, as an unprivileged writer sees it
/// (space reserved for root counts as used).
pub fn disk_usage(path: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path)?;
    let total = s.f_blocks.saturating_mul(s.f_frsize);
    let avail = s.f_bavail.saturating_mul(s.f_frsize);
    Ok((total, total.saturating_sub(avail)))
}

/// One check; returns the fraction in use.
pub fn check(path: &Path, cfg: &DiskConfig, health: &Health) -> Option<f64> {
    let (total, used) = match disk_usage(path) {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, path = %path.display(), "cannot read disk usage");
            return None;
        }
    };
    if total == 0 {
        return None;
    }
    let frac = used as f64 / total as f64;
    if frac >= cfg.read_only_above {
        let reason = format!(
            "disk {:.1}% used, at or above the read-only threshold {:.1}%",
            frac * 100.0,
            cfg.read_only_above * 100.0
        );
        if health.set_disk_full(Some(reason.clone())) {
            warn!(%reason, "bookie is now read-only");
        }
    } else if frac < cfg.writable_below && health.set_disk_full(None) {
        info!(
            used_pct = frac * 100.0,
            "disk usage below {:.1}%: bookie is writable again",
            cfg.writable_below * 100.0
        );
    }
    Some(frac)
}

/// The monitor thread's loop.
pub fn run(path: &Path, cfg: &DiskConfig, health: &Arc<Health>, signal: &Signal) {
    loop {
        check(path, cfg, health);
        if signal.wait(cfg.check_interval) == Wake::Stop {
            return;
        }
    }
}
