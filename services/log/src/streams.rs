//! [`Log`]: the streams of a cluster — create, describe, list, change, truncate, delete, and
//! the way in to writers, readers and subscriptions.

use std::sync::Arc;

use bytes::Bytes;
use dlog_api::stream::{SegmentState, StreamInfo, StreamName, StreamPolicy, validate_name_part};
use dlog_ledger::{LedgerClient, LedgerError, Quorum};
use dlog_metadata::{Expect, MetadataStore, Op};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::entry::StreamEntry;
use crate::error::LogError;
use crate::meta::{
    STREAM_RECORD, STREAMS_PREFIX, SegmentRecord, StreamRecord, StreamState, segment_key,
    stream_key, stream_prefix, subscription_key,
};

/// The streams of one cluster, over its metadata store and bookies. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Log {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) ledgers: LedgerClient,
    pub(crate) clock: Arc<dyn Clock>,
    /// The object tier, where offloaded segments are read from.
    pub(crate) objects: Option<dlog_objects::ObjectReader>,
}

/// The ledger quorum a policy asks for.
pub fn quorum(p: &StreamPolicy) -> Result<Quorum, LogError> {
    Quorum::new(p.ensemble, p.write_quorum, p.ack_quorum)
        .map_err(|e| LogError::InvalidPolicy(e.to_string()))
}

fn validate(p: &StreamPolicy) -> Result<(), LogError> {
    p.validate()
        .map_err(|e| LogError::InvalidPolicy(e.to_string()))
}

impl Log {
    pub fn new(store: Arc<dyn MetadataStore>, ledgers: LedgerClient, clock: Arc<dyn Clock>) -> Log {
        Log {
            store,
            ledgers,
            clock,
            objects: None,
        }
    }

    /// Reads offloaded segments through `objects`.
    pub fn with_objects(mut self, objects: dlog_objects::ObjectReader) -> Log {
        self.objects = Some(objects);
        self
    }

    /// The object tier, if this log has one.
    pub fn objects(&self) -> Option<&dlog_objects::ObjectReader> {
        self.objects.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn ledgers(&self) -> &LedgerClient {
        &self.ledgers
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Creates a stream with `policy`.
    pub async fn create_stream(
        &self,
        name: &StreamName,
        policy: StreamPolicy,
    ) -> Result<StreamInfo, LogError> {
        validate(&policy)?;
        quorum(&policy)?;
        let rec = StreamRecord::new(policy, self.now_ms());
        let r = self
            .store
            .commit(vec![Op::put(
                stream_key(name),
                rec.encode(),
                Expect::Absent,
            )])
            .await;
        match r {
            Ok(_) => {
                info!(stream = %name, "stream created");
                Ok(self.load(name).await?.info(0, None))
            }
            Err(dlog_metadata::MetadataError::Conflict { .. }) => {
                Err(LogError::StreamExists(name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The stream's records, read at one revision.
    pub async fn load(&self, name: &StreamName) -> Result<StreamState, LogError> {
        let listing = self.store.list(&stream_prefix(name)).await?;
        StreamState::from_listing(name.clone(), &listing.kvs)?
            .ok_or_else(|| LogError::NoSuchStream(name.to_string()))
    }

    /// Stream names, in order; only those of `namespace` if given.
    pub async fn list_streams(&self, namespace: Option<&str>) -> Result<Vec<StreamName>, LogError> {
        let prefix = match namespace {
            Some(ns) => {
                validate_name_part("namespace", ns)
                    .map_err(|e| LogError::InvalidName(e.to_string()))?;
                format!("{STREAMS_PREFIX}{ns}/")
            }
            None => STREAMS_PREFIX.to_string(),
        };
        let listing = self.store.list(&prefix).await?;
        let mut names = Vec::new();
        for kv in &listing.kvs {
            let Some(rest) = kv.key.strip_prefix(STREAMS_PREFIX) else {
                continue;
            };
            let Some(path) = rest.strip_suffix(STREAM_RECORD) else {
                continue;
            };
            if let Ok(n) = path.parse::<StreamName>() {
                names.push(n);
            }
        }
        Ok(names)
    }

    /// The stream with its segments; the end offset is the acknowledged end as the bookies
    /// know it (an open segment's LAC).
    pub async fn describe(&self, name: &StreamName) -> Result<StreamInfo, LogError> {
        let state = self.load(name).await?;
        let end = self.end_offset(&state).await?;
        Ok(state.info(end, None))
    }

    /// Offset after the last readable record.
    pub async fn end_offset(&self, state: &StreamState) -> Result<u64, LogError> {
        let Some((seg, _)) = state.open_segment() else {
            return Ok(state.sealed_end());
        };
        let mut reader = match self
            .ledgers
            .open_reader(dlog_api::LedgerId(seg.ledger))
            .await
        {
            Ok(r) => r,
            Err(LedgerError::NoSuchLedger(_)) => return Ok(seg.first_offset),
            Err(e) => return Err(e.into()),
        };
        if reader.metadata().state == dlog_ledger::LedgerState::Open {
            reader.read_lac().await?;
        }
        match reader.readable_end() {
            None => Ok(seg.first_offset),
            Some(e) => {
                let entry = reader.read(e).await?;
                let (first, count, _, _) = StreamEntry::decode_header(&entry.payload)
                    .map_err(|err| LogError::Corrupt(err.to_string()))?;
                Ok(first + u64::from(count))
            }
        }
    }

    /// Replaces the stream's policy. Replication changes apply to segments opened from now on.
    pub async fn update_policy(
        &self,
        name: &StreamName,
        policy: StreamPolicy,
    ) -> Result<StreamInfo, LogError> {
        validate(&policy)?;
        quorum(&policy)?;
        let state = self.load(name).await?;
        let mut rec = state.record.clone();
        rec.policy = policy;
        self.store
            .commit(vec![Op::put(
                stream_key(name),
                rec.encode(),
                Expect::Version(state.version),
            )])
            .await
            .map_err(conflict("the stream changed meanwhile; retry"))?;
        self.describe(name).await
    }

    /// Deletes the stream, its subscriptions and its ledgers. A writer of the stream fails
    /// from then on.
    pub async fn delete_stream(&self, name: &StreamName) -> Result<(), LogError> {
        let listing = self.store.list(&stream_prefix(name)).await?;
        let state = StreamState::from_listing(name.clone(), &listing.kvs)?
            .ok_or_else(|| LogError::NoSuchStream(name.to_string()))?;
        let ops = listing
            .kvs
            .iter()
            .map(|kv| Op::delete(kv.key.clone(), Expect::Version(kv.mod_revision)))
            .collect();
        self.store
            .commit(ops)
            .await
            .map_err(conflict("the stream changed meanwhile; retry"))?;
        info!(stream = %name, "stream deleted");
        self.delete_ledgers(state.segments.iter().map(|(s, _)| s))
            .await;
        Ok(())
    }

    /// Moves the stream's start to `offset` (at most its end) and deletes the segments that
    /// lie entirely before it. Returns the new start offset.
    pub async fn truncate(&self, name: &StreamName, offset: u64) -> Result<u64, LogError> {
        let state = self.load(name).await?;
        let end = self.end_offset(&state).await?;
        if offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: state.record.start_offset,
                end,
            });
        }
        self.cut(&state, offset.max(state.record.start_offset))
            .await?;
        Ok(offset.max(state.record.start_offset))
    }

    /// Commits a new start offset and deletes the sealed segments wholly below it.
    async fn cut(&self, state: &StreamState, start: u64) -> Result<Vec<SegmentRecord>, LogError> {
        let doomed: Vec<SegmentRecord> = state
            .segments
            .iter()
            .filter(|(s, _)| s.state == SegmentState::Sealed && s.end_offset <= start)
            .map(|(s, _)| s.clone())
            .collect();
        if start == state.record.start_offset && doomed.is_empty() {
            return Ok(doomed);
        }
        let mut rec = state.record.clone();
        rec.start_offset = start;
        let mut ops = vec![Op::put(
            stream_key(&state.name),
            rec.encode(),
            Expect::Version(state.version),
        )];
        for (s, v) in &state.segments {
            if doomed.iter().any(|d| d.seq == s.seq) {
                ops.push(Op::delete(
                    segment_key(&state.name, s.seq),
                    Expect::Version(*v),
                ));
            }
        }
        self.store
            .commit(ops)
            .await
            .map_err(conflict("the stream changed meanwhile; retry"))?;
        info!(stream = %state.name, start, segments = doomed.len(), "stream truncated");
        self.delete_ledgers(doomed.iter()).await;
        Ok(doomed)
    }

    /// Applies the retention policy at `now_ms`: deletes the oldest sealed segments that are
    /// older than the age limit, or beyond the size limit, and (if the policy says so) only
    /// those every subscription has read past. Returns the deleted segments.
    pub async fn enforce_retention(
        &self,
        name: &StreamName,
    ) -> Result<Vec<SegmentRecord>, LogError> {
        let state = self.load(name).await?;
        let p = &state.record.policy;
        if p.retention_age_ms.is_none() && p.retention_bytes.is_none() {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let floor = if p.retain_for_subscriptions {
            self.subscriptions(name)
                .await?
                .into_iter()
                .map(|(_, o)| o)
                .min()
        } else {
            None
        };
        let mut total: u64 = state.segments.iter().map(|(s, _)| s.bytes).sum();
        let mut cut = state.record.start_offset;
        for (s, _) in &state.segments {
            if s.state != SegmentState::Sealed {
                break;
            }
            let too_old = p
                .retention_age_ms
                .is_some_and(|age| s.sealed_ms.is_some_and(|t| t + age as i64 <= now));
            let too_big = p.retention_bytes.is_some_and(|limit| total > limit);
            let read = floor.is_none_or(|f| s.end_offset <= f);
            if !(too_old || too_big) || !read {
                break;
            }
            total -= s.bytes;
            cut = s.end_offset;
        }
        if cut <= state.record.start_offset {
            return Ok(Vec::new());
        }
        self.cut(&state, cut).await
    }

    async fn delete_ledgers(&self, segs: impl Iterator<Item = &SegmentRecord>) {
        // A segment whose bookie copy was deleted after its offload has no ledger left.
        for s in segs.filter(|s| s.local_deleted_ms.is_none()) {
            let id = dlog_api::LedgerId(s.ledger);
            if let Err(e) = self.ledgers.delete(id).await {
                // Orphaned ledgers waste space but lose nothing; the next GC of ledgers
                // without segments (not built yet) would reclaim them.
                warn!(ledger = %id, error = %e, "delete segment ledger");
            }
        }
    }

    /// Commits a subscription's position. It may only move forward unless `force`.
    pub async fn commit_subscription(
        &self,
        name: &StreamName,
        sub: &str,
        offset: u64,
        force: bool,
    ) -> Result<(), LogError> {
        validate_name_part("subscription", sub)
            .map_err(|e| LogError::InvalidName(e.to_string()))?;
        self.load(name).await?;
        let key = subscription_key(name, sub);
        let cur = self.store.get(&key).await?;
        let expect = match &cur {
            None => Expect::Absent,
            Some(kv) => {
                let old = parse_position(&kv.value)?;
                if offset < old && !force {
                    return Err(LogError::Conflict(format!(
                        "subscription {sub} is at {old}; it does not move back to {offset}"
                    )));
                }
                Expect::Version(kv.mod_revision)
            }
        };
        self.store
            .commit(vec![Op::put(key, Bytes::from(offset.to_string()), expect)])
            .await
            .map_err(conflict("the subscription moved meanwhile"))?;
        Ok(())
    }

    /// A subscription's committed position, if it has one.
    pub async fn fetch_subscription(
        &self,
        name: &StreamName,
        sub: &str,
    ) -> Result<Option<u64>, LogError> {
        validate_name_part("subscription", sub)
            .map_err(|e| LogError::InvalidName(e.to_string()))?;
        match self.store.get(&subscription_key(name, sub)).await? {
            None => Ok(None),
            Some(kv) => Ok(Some(parse_position(&kv.value)?)),
        }
    }

    /// Every subscription of the stream with its position.
    pub async fn subscriptions(&self, name: &StreamName) -> Result<Vec<(String, u64)>, LogError> {
        let prefix = subscription_key(name, "");
        let listing = self.store.list(&prefix).await?;
        listing
            .kvs
            .iter()
            .map(|kv| {
                let sub = kv.key[prefix.len()..].to_string();
                Ok((sub, parse_position(&kv.value)?))
            })
            .collect()
    }
}

fn parse_position(b: &[u8]) -> Result<u64, LogError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LogError::Corrupt("subscription position is not a number".into()))
}

/// Maps a lost compare-and-set to [`LogError::Conflict`] with `msg`.
pub(crate) fn conflict(msg: &'static str) -> impl Fn(dlog_metadata::MetadataError) -> LogError {
    move |e| match e {
        dlog_metadata::MetadataError::Conflict { .. } => LogError::Conflict(msg.into()),
        e => e.into(),
    }
}
