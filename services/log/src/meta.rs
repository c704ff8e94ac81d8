//! Stream and segment metadata in the metadata store.
//!
//! Keys (under the store's root), all of a stream under one prefix so that one listing reads
//! them at one revision:
//!
//! - `streams/NS/NAME/stream` — the stream record ([`StreamRecord`], JSON): policy, the
//!   writer epoch, the next segment number, the start offset, the end-of-stream flag, and the
//!   duplicate table as of the last seal.
//! - `streams/NS/NAME/segments/SEQ` (SEQ zero-padded to 20 digits, so keys sort by number) —
//!   one [`SegmentRecord`] per segment.
//! - `streams/NS/NAME/subscriptions/SUB` — a subscription's committed position.
//!
//! Invariants, kept because every change of a stream's segments is one atomic commit that also
//! expects the stream record's version:
//! - segments are contiguous: each one's `first_offset` is the previous one's `end_offset`;
//! - at most one segment is open, and it is the last;
//! - segment epochs never decrease, and a writer changes segments only at its own epoch.

use std::collections::BTreeMap;

use dlog_api::stream::{SegmentInfo, SegmentState, StreamInfo, StreamName, StreamPolicy};
use dlog_metadata::{KeyValue, Revision};
use serde::{Deserialize, Serialize};

use crate::error::LogError;

const FORMAT: u32 = 1;

/// Every stream's keys live under this prefix.
pub const STREAMS_PREFIX: &str = "streams/";
/// The last path element of a stream record's key.
pub const STREAM_RECORD: &str = "/stream";

/// The prefix of every key of one stream.
pub fn stream_prefix(s: &StreamName) -> String {
    format!("{STREAMS_PREFIX}{}/{}/", s.namespace(), s.name())
}

pub fn stream_key(s: &StreamName) -> String {
    format!(
        "{STREAMS_PREFIX}{}/{}{STREAM_RECORD}",
        s.namespace(),
        s.name()
    )
}

pub fn segments_prefix(s: &StreamName) -> String {
    format!("{}segments/", stream_prefix(s))
}

pub fn subscription_key(s: &StreamName, sub: &str) -> String {
    format!("{}subscriptions/{sub}", stream_prefix(s))
}

pub fn segment_key(s: &StreamName, seq: u64) -> String {
    format!("{}{seq:020}", segments_prefix(s))
}

/// What a producer appended last, for recognising retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub first_seq: u64,
    pub count: u32,
    pub first_offset: u64,
}

/// The stream record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub format: u32,
    pub policy: StreamPolicy,
    pub created_ms: i64,
    /// The epoch of the latest writer to acquire the stream (0: never written).
    pub epoch: u64,
    /// The number the next segment gets.
    pub next_seq: u64,
    /// First readable offset (truncation and retention move it up).
    pub start_offset: u64,
    /// An end-of-stream marker was written: nothing more is ever appended.
    pub ended: bool,
    /// Each producer's latest batches as of the last seal (bounded; see `dedup.rs`).
    #[serde(default)]
    pub producers: BTreeMap<u64, Vec<ProducerBatch>>,
}

impl StreamRecord {
    pub fn new(policy: StreamPolicy, created_ms: i64) -> StreamRecord {
        StreamRecord {
            format: FORMAT,
            policy,
            created_ms,
            epoch: 0,
            next_seq: 0,
            start_offset: 0,
            ended: false,
            producers: BTreeMap::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a stream record always serializes")
    }

    pub fn decode(key: &str, b: &[u8]) -> Result<StreamRecord, LogError> {
        let r: StreamRecord = serde_json::from_slice(b)
            .map_err(|e| LogError::Corrupt(format!("stream record {key}: {e}")))?;
        if r.format != FORMAT {
            return Err(LogError::Corrupt(format!(
                "stream record {key} has format {} (this build reads {FORMAT})",
                r.format
            )));
        }
        Ok(r)
    }
}

/// One segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub seq: u64,
    pub ledger: u64,
    pub epoch: u64,
    pub state: SegmentState,
    pub first_offset: u64,
    /// Offset after the last record; for an open segment, `first_offset` until sealed.
    pub end_offset: u64,
    /// Stored bytes (entry payloads); for an open segment, 0 until sealed.
    pub bytes: u64,
    pub created_ms: i64,
    pub sealed_ms: Option<i64>,
    /// Highest record timestamp in the stream up to this segment's end (from its last entry).
    pub max_timestamp_ms: Option<i64>,
    pub max_txid: Option<u64>,
    /// The timestamp of the segment's first record, and its lowest txid (set when sealed).
    #[serde(default)]
    pub first_timestamp_ms: Option<i64>,
    #[serde(default)]
    pub min_txid: Option<u64>,
    /// The object holding this (sealed) segment, once offloaded and committed to the
    /// stream's manifest; reads go to it from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<SegmentObject>,
    /// When the segment's ledger was deleted from the bookies (after its offload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_deleted_ms: Option<i64>,
}

/// Where an offloaded segment lives in the object tier. One object may hold several adjacent
/// segments (compaction): its range covers theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentObject {
    /// Relative to the bucket's prefix.
    pub key: String,
    pub size: u64,
    pub first_offset: u64,
    pub end_offset: u64,
    /// The object's record checksum (see `dlog_objects::segment`).
    pub crc32c: u32,
    pub offloaded_ms: i64,
}

impl SegmentRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a segment record always serializes")
    }

    pub fn decode(key: &str, b: &[u8]) -> Result<SegmentRecord, LogError> {
        serde_json::from_slice(b)
            .map_err(|e| LogError::Corrupt(format!("segment record {key}: {e}")))
    }

    pub fn info(&self) -> SegmentInfo {
        SegmentInfo {
            seq: self.seq,
            state: self.state,
            tier: match (&self.object, self.local_deleted_ms) {
                (None, _) => "bookies",
                (Some(_), None) => "bookies+objects",
                (Some(_), Some(_)) => "objects",
            }
            .into(),
            object_key: self.object.as_ref().map(|o| o.key.clone()),
            object_bytes: self.object.as_ref().map(|o| o.size),
            ledger: self.ledger,
            epoch: self.epoch,
            first_offset: self.first_offset,
            end_offset: self.end_offset,
            bytes: self.bytes,
            created_ms: self.created_ms,
            sealed_ms: self.sealed_ms,
            first_timestamp_ms: self.first_timestamp_ms,
            last_timestamp_ms: self.max_timestamp_ms,
            min_txid: self.min_txid,
            max_txid: self.max_txid,
        }
    }
}

/// A stream's records as read together.
#[derive(Debug, Clone)]
pub struct StreamState {
    pub name: StreamName,
    pub record: StreamRecord,
    pub version: Revision,
    /// By sequence number, each with its version.
    pub segments: Vec<(SegmentRecord, Revision)>,
}

impl StreamState {
    /// From a listing of the stream's prefix; `None` if it has no stream record.
    pub fn from_listing(
        name: StreamName,
        kvs: &[KeyValue],
    ) -> Result<Option<StreamState>, LogError> {
        let key = stream_key(&name);
        let seg_prefix = segments_prefix(&name);
        let mut stream = None;
        let mut segs = Vec::new();
        for kv in kvs {
            if kv.key == key {
                stream = Some((StreamRecord::decode(&kv.key, &kv.value)?, kv.mod_revision));
            } else if kv.key.starts_with(&seg_prefix) {
                segs.push((SegmentRecord::decode(&kv.key, &kv.value)?, kv.mod_revision));
            }
        }
        let Some((record, version)) = stream else {
            return Ok(None);
        };
        segs.sort_by_key(|(s, _)| s.seq);
        Ok(Some(StreamState {
            name,
            record,
            version,
            segments: segs,
        }))
    }

    /// The open segment, if any (always the last).
    pub fn open_segment(&self) -> Option<&(SegmentRecord, Revision)> {
        self.segments
            .last()
            .filter(|(s, _)| s.state == SegmentState::Open)
    }

    /// Offset after the last sealed record (the open segment's first offset, if there is one).
    pub fn sealed_end(&self) -> u64 {
        self.segments
            .last()
            .map_or(self.record.start_offset, |(s, _)| s.end_offset)
    }

    pub fn info(&self, end_offset: u64, owner: Option<String>) -> StreamInfo {
        StreamInfo {
            stream: self.name.clone(),
            policy: self.record.policy.clone(),
            epoch: self.record.epoch,
            start_offset: self.record.start_offset,
            end_offset,
            created_ms: self.record.created_ms,
            owner,
            segments: self.segments.iter().map(|(s, _)| s.info()).collect(),
        }
    }
}
