//! The scrubber: reconciles a stream's objects in the bucket with its newest manifest.
//!
//! - An **orphan** is a segment object under the stream's folder that the newest manifest
//!   does not list: left by an offload interrupted before its manifest commit (and whose
//!   segment was then deleted), or by a trim interrupted before its deletes. Repair deletes it,
//!   but only when it is older than `min_age` and no sealed segment still waiting for its
//!   offload starts where it starts — an offload in progress is never undercut.
//! - A **staging object** (`…/_staging/…`, a large object's parts being uploaded before their
//!   conditional copy to its key) that outlives its upload was left by a crash: it is an orphan
//!   too, under the same rules.
//! - A **missing** object is one the manifest lists that the bucket does not hold (or holds
//!   at another size). It is reported: the bucket has lost data, and only a bookie copy still
//!   present could restore it.

use dlog_api::StreamName;
use dlog_api::stream::SegmentState;
use dlog_log::{Log, LogError};
use dlog_objects::layout::{is_staging, object_range, stream_dir};
use dlog_objects::{Bucket, Manifests};
use tracing::warn;

/// What a scrub found (and, with repair, deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Objects no manifest lists.
    pub orphans: Vec<String>,
    /// Orphans deleted.
    pub deleted: Vec<String>,
    /// Objects the manifest lists that are absent or of the wrong size.
    pub missing: Vec<String>,
}

/// Scrubs `stream` in `bucket`; with `repair`, deletes orphans older than `min_age_ms`.
pub async fn scrub(
    log: &Log,
    bucket: &Bucket,
    stream: &StreamName,
    repair: bool,
    min_age_ms: i64,
) -> Result<ScrubReport, LogError> {
    let manifest = Manifests::new(bucket.clone()).latest(stream).await?;
    let listed = bucket.list_meta(&stream_dir(stream)).await?;
    let mut report = ScrubReport::default();
    let in_manifest = |k: &str| {
        manifest
            .as_ref()
            .is_some_and(|m| m.objects.iter().any(|o| o.key == k))
    };
    for o in manifest.iter().flat_map(|m| m.objects.iter()) {
        if !listed
            .iter()
            .any(|(k, size, _)| *k == o.key && *size == o.size)
        {
            warn!(stream = %stream, key = %o.key, "object listed in the manifest is missing");
            report.missing.push(o.key.clone());
        }
    }
    // Ranges of sealed segments whose offload has not committed: their objects may be in
    // flight.
    let pending: Vec<(u64, u64)> = match log.load(stream).await {
        Ok(state) => state
            .segments
            .iter()
            .filter(|(s, _)| s.state == SegmentState::Sealed && s.object.is_none())
            .map(|(s, _)| (s.first_offset, s.end_offset))
            .collect(),
        Err(LogError::NoSuchStream(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let now = log.now_ms();
    for (key, _, modified) in listed {
        if !(key.ends_with(".parquet") || is_staging(&key)) || in_manifest(&key) {
            continue;
        }
        report.orphans.push(key.clone());
        // An offload (of one segment or of several compacted) starts its object at the first
        // offset of a segment still waiting for it.
        let range = object_range(&key);
        let in_flight = range.is_some_and(|(first, _)| pending.iter().any(|(f, _)| *f == first));
        if repair && !in_flight && modified + min_age_ms <= now {
            bucket.delete(&key).await?;
            report.deleted.push(key);
        }
    }
    Ok(report)
}
