//! Restore: rebuilding streams' metadata from a bucket, so that a lost cluster's offloaded
//! history is readable again (`dlogd restore`).
//!
//! For each stream with a manifest in the bucket and none in the metadata store, the newest
//! manifest becomes a stream record (its policy, its start offset, epoch 0) and one sealed,
//! offloaded segment per object, whose bookie copy is marked deleted — all in one commit that
//! expects every key absent, so a restore never overwrites a live stream and can be re-run.
//! A writer that acquires the restored stream later continues at the end of the offloaded
//! history.

use dlog_api::StreamName;
use dlog_api::stream::{SegmentState, StreamPolicy};
use dlog_log::meta::{SegmentObject, SegmentRecord, StreamRecord, segment_key, stream_key};
use dlog_log::{Log, LogError};
use dlog_metadata::{Expect, MetadataError, Op};
use dlog_objects::{Bucket, Manifests};
use tracing::info;

/// What a restore did with one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Recreated with this many segments, offsets `start..end`.
    Created {
        segments: usize,
        start: u64,
        end: u64,
    },
    /// The metadata store has the stream already: left alone.
    Exists,
}

/// Recreates, from `bucket`'s manifests, every stream the metadata store lacks.
pub async fn restore(log: &Log, bucket: &Bucket) -> Result<Vec<(StreamName, Restored)>, LogError> {
    let manifests = Manifests::new(bucket.clone());
    let mut out = Vec::new();
    for stream in manifests.streams().await? {
        let Some(m) = manifests.latest(&stream).await? else {
            continue;
        };
        match log.load(&stream).await {
            Ok(_) => {
                out.push((stream, Restored::Exists));
                continue;
            }
            Err(LogError::NoSuchStream(_)) => {}
            Err(e) => return Err(e),
        }
        let now = log.now_ms();
        let policy = m.policy.clone().unwrap_or_else(StreamPolicy::default);
        let mut rec = StreamRecord::new(policy, m.objects.first().map_or(now, |o| o.created_ms));
        rec.start_offset = m.start_offset;
        rec.next_seq = m.objects.len() as u64;
        let mut ops = vec![Op::put(stream_key(&stream), rec.encode(), Expect::Absent)];
        for (seq, o) in m.objects.iter().enumerate() {
            let seg = SegmentRecord {
                seq: seq as u64,
                // No ledger: the bookie copy is gone, and readers go to the object.
                ledger: 0,
                epoch: 0,
                state: SegmentState::Sealed,
                first_offset: o.first_offset,
                end_offset: o.end_offset,
                bytes: o.size,
                created_ms: o.created_ms,
                sealed_ms: Some(o.created_ms),
                max_timestamp_ms: o.max_timestamp_ms,
                max_txid: o.max_txid,
                first_timestamp_ms: o.first_timestamp_ms,
                min_txid: o.min_txid,
                object: Some(SegmentObject {
                    key: o.key.clone(),
                    size: o.size,
                    first_offset: o.first_offset,
                    end_offset: o.end_offset,
                    crc32c: o.crc32c,
                    offloaded_ms: o.created_ms,
                }),
                local_deleted_ms: Some(now),
            };
            ops.push(Op::put(
                segment_key(&stream, seq as u64),
                seg.encode(),
                Expect::Absent,
            ));
        }
        match log.store().commit(ops).await {
            Ok(_) => {}
            Err(MetadataError::Conflict { .. }) => {
                out.push((stream, Restored::Exists));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        info!(stream = %stream, segments = m.objects.len(), start = m.start_offset, end = m.end_offset(), "stream restored from the bucket");
        out.push((
            stream,
            Restored::Created {
                segments: m.objects.len(),
                start: m.start_offset,
                end: m.end_offset(),
            },
        ));
    }
    Ok(out)
}
