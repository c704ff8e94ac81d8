//! What follows an offload: the bucket trimmed to the stream's start (truncation, retention),
//! everything of a deleted stream removed, and bookie copies deleted after their grace period.

use dlog_api::LedgerId;
use dlog_api::stream::{SegmentState, StreamName};
use dlog_ledger::LedgerError;
use dlog_log::LogError;
use dlog_log::meta::segment_key;
use dlog_metadata::{Expect, MetadataError, Op};
use dlog_objects::{Manifest, ObjectEntry, ObjectError};
use tracing::{info, warn};

use crate::Offloader;

impl Offloader {
    /// Makes the bucket follow the stream's truncation and retention: the manifest's start
    /// moves up to the stream's start offset (a new version, without the objects entirely
    /// below it), then those objects are deleted. Returns the keys deleted. A trim interrupted
    /// between the manifest commit and the deletes leaves objects that no manifest version
    /// lists any more: the scrubber's to remove.
    pub async fn trim(&self, stream: &StreamName) -> Result<Vec<String>, LogError> {
        let start = self.log.load(stream).await?.record.start_offset;
        for _ in 0..10 {
            let Some(m) = self.manifests.latest(stream).await? else {
                return Ok(Vec::new());
            };
            let new_start = start.min(m.end_offset()).max(m.start_offset);
            let (gone, kept): (Vec<ObjectEntry>, Vec<ObjectEntry>) = m
                .objects
                .iter()
                .cloned()
                .partition(|o| o.end_offset <= new_start);
            if new_start == m.start_offset && gone.is_empty() {
                return Ok(Vec::new());
            }
            let next = Manifest {
                version: m.version + 1,
                start_offset: new_start,
                objects: kept,
                ..m.clone()
            };
            match self.manifests.commit(&next).await {
                Ok(()) => {}
                Err(ObjectError::ManifestConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            step!("offload::trimmed_manifest");
            // Readers of the old version may still be reading these; a reader of the stream
            // is refused below the start offset anyway.
            let mut deleted = Vec::new();
            for o in gone {
                self.bucket.delete(&o.key).await?;
                deleted.push(o.key);
            }
            if !deleted.is_empty() {
                info!(stream = %stream, start = new_start, objects = deleted.len(), "objects below the stream's start deleted");
            }
            return Ok(deleted);
        }
        Err(LogError::Unavailable(format!(
            "{stream}: the manifest kept changing during a trim"
        )))
    }

    /// Deletes everything the bucket holds for a deleted stream: its objects, then its
    /// manifest versions (newest last, so an interrupted delete still leaves a manifest that
    /// names what remains). Returns the keys deleted.
    pub async fn delete_stream(&self, stream: &StreamName) -> Result<Vec<String>, LogError> {
        let keys = self
            .bucket
            .list(&dlog_objects::layout::stream_dir(stream))
            .await?;
        let (manifests, objects): (Vec<String>, Vec<String>) = keys
            .into_iter()
            .map(|(k, _)| k)
            .partition(|k| dlog_objects::layout::manifest_version(k).is_some());
        let mut deleted = Vec::new();
        for k in objects.into_iter().chain(manifests) {
            self.bucket.delete(&k).await?;
            deleted.push(k);
        }
        if !deleted.is_empty() {
            info!(stream = %stream, keys = deleted.len(), "deleted stream's objects and manifests");
        }
        Ok(deleted)
    }

    /// Deletes the bookie copies of `stream`'s segments offloaded at least the grace period
    /// ago (and the ledgers of empty sealed segments). Returns the segments reclaimed.
    pub async fn reclaim(&self, stream: &StreamName) -> Result<Vec<u64>, LogError> {
        let now = self.log.now_ms();
        let grace = self.opts.grace.as_millis() as i64;
        let state = self.log.load(stream).await?;
        let mut done = Vec::new();
        for (seg, v) in &state.segments {
            if seg.state != SegmentState::Sealed || seg.local_deleted_ms.is_some() {
                continue;
            }
            let empty = seg.end_offset == seg.first_offset;
            let due = match &seg.object {
                Some(o) => o.offloaded_ms + grace <= now,
                None => empty,
            };
            if !due {
                continue;
            }
            step!("offload::before_reclaim");
            match self.log.ledgers().delete(LedgerId(seg.ledger)).await {
                Ok(()) | Err(LedgerError::NoSuchLedger(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let mut rec = seg.clone();
            rec.local_deleted_ms = Some(now);
            let op = Op::put(
                segment_key(stream, seg.seq),
                rec.encode(),
                Expect::Version(*v),
            );
            match self.log.store().commit(vec![op]).await {
                Ok(_) => done.push(seg.seq),
                // Changed meanwhile (retention, another reclaim): the next pass sees it again.
                Err(MetadataError::Conflict { .. }) => {
                    warn!(stream = %stream, seq = seg.seq, "segment changed during its reclaim");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}
