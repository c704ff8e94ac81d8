//! The offload of sealed segments and the reclaim of their bookie copies (see the crate docs).

use std::time::Duration;

use dlog_api::record::{RecordSetLimits, decode_record_set};
use dlog_api::stream::{SegmentState, StreamName};
use dlog_api::{EntryId, LedgerId};
use dlog_log::entry::StreamEntry;
use dlog_log::meta::{SegmentObject, SegmentRecord, segment_key};
use dlog_log::{Log, LogError};
use dlog_metadata::{Expect, MetadataError, Op};
use dlog_objects::layout::{object_range, segment_key as object_key};
use dlog_objects::segment::{SegmentSummary, check};
use dlog_objects::{
    Bucket, Manifest, Manifests, ObjectEntry, ObjectError, SegmentOptions, SegmentWriter,
    UploadOptions,
};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tracing::info;

/// How the offloader works.
#[derive(Debug, Clone)]
pub struct OffloadOptions {
    /// How Parquet objects are written.
    pub segment: SegmentOptions,
    /// How long a segment's bookie copy stays after its offload has committed, for readers
    /// that were reading it from the bookies.
    pub grace: Duration,
    /// Adjacent sealed segments smaller than this together go into one object (compaction:
    /// fewer, larger objects, fewer PUTs and GETs); 0 offloads each segment alone.
    pub compact_below: u64,
    /// How objects are uploaded (large ones in parts).
    pub upload: UploadOptions,
    /// Objects built, uploaded and verified at once (their commits stay in offset order).
    /// Each holds up to twice its size in memory.
    pub parallel: usize,
    /// Ledger entries read ahead while an object is built.
    pub read_ahead: usize,
}

impl Default for OffloadOptions {
    fn default() -> Self {
        OffloadOptions {
            segment: SegmentOptions::default(),
            grace: Duration::from_secs(60),
            compact_below: 64 << 20,
            upload: UploadOptions::default(),
            parallel: 2,
            read_ahead: 8,
        }
    }
}

/// One object offloaded (holding one segment, or several compacted together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offloaded {
    /// The first segment it holds.
    pub seq: u64,
    /// Every segment it holds.
    pub segments: Vec<u64>,
    pub key: String,
    pub first_offset: u64,
    pub end_offset: u64,
    /// Object bytes.
    pub size: u64,
    /// The object was there already (uploaded by an earlier, interrupted attempt).
    pub reused: bool,
}

/// An object uploaded and verified, not yet committed.
#[derive(Debug)]
struct Uploaded {
    key: String,
    size: u64,
    summary: SegmentSummary,
    reused: bool,
}

/// Offloads streams' sealed segments into a bucket.
#[derive(Debug, Clone)]
pub struct Offloader {
    pub(crate) log: Log,
    pub(crate) bucket: Bucket,
    pub(crate) manifests: Manifests,
    pub(crate) opts: OffloadOptions,
}

impl Offloader {
    pub fn new(log: Log, bucket: Bucket, opts: OffloadOptions) -> Offloader {
        let manifests = Manifests::new(bucket.clone());
        Offloader {
            log,
            bucket,
            manifests,
            opts,
        }
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Offloads every sealed segment of `stream` not offloaded yet, in order, that `eligible`
    /// accepts (stopping at the first it does not, so that the manifest stays contiguous).
    /// Adjacent segments smaller than `compact_below` together go into one object. Returns the
    /// objects written (an interrupted earlier offload whose object is in the manifest already
    /// is only finished, not returned).
    pub async fn offload_stream(
        &self,
        stream: &StreamName,
        eligible: impl Fn(&SegmentRecord) -> bool,
    ) -> Result<Vec<Offloaded>, LogError> {
        let state = self.log.load(stream).await?;
        let manifest = self.manifests.latest(stream).await?;
        let mut todo: Vec<SegmentRecord> = Vec::new();
        for (seg, _) in &state.segments {
            if seg.state != SegmentState::Sealed || seg.object.is_some() {
                continue;
            }
            if seg.end_offset == seg.first_offset {
                continue; // nothing to offload; reclaim deletes its ledger
            }
            // Committed to the manifest by an attempt interrupted before the segment's
            // metadata: finish that commit.
            if let Some(o) = manifest
                .as_ref()
                .and_then(|m| m.find(seg.first_offset))
                .filter(|o| o.end_offset >= seg.end_offset)
            {
                self.commit_segment(stream, seg.seq, o).await?;
                continue;
            }
            if !eligible(seg) {
                break;
            }
            todo.push(seg.clone());
        }
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let adopt = self.uncommitted_objects(stream, manifest.as_ref()).await?;
        // Build, upload and verify up to `parallel` objects at once, each on its own task (the
        // Parquet encoding takes a core); commit them in order (the manifest only ever grows
        // at its end). After a failure no new upload starts, and those running are waited for,
        // so that none is left half-done behind the error.
        let mut groups = crate::group::groups(todo, &adopt, self.opts.compact_below).into_iter();
        let mut uploads = FuturesOrdered::new();
        let mut done = Vec::new();
        let mut failed = None;
        loop {
            while failed.is_none() && uploads.len() < self.opts.parallel.max(1) {
                let Some(group) = groups.next() else { break };
                let (this, stream) = (self.clone(), stream.clone());
                uploads.push_back(tokio::spawn(async move {
                    let up = this.upload_group(&stream, &group).await;
                    (group, up)
                }));
            }
            let Some(joined) = uploads.next().await else {
                break;
            };
            if failed.is_some() {
                continue;
            }
            let r = match joined {
                Ok((group, Ok(up))) => self.commit_group(stream, &group, up).await,
                Ok((_, Err(e))) => Err(e),
                Err(e) => Err(LogError::Internal(format!("an offload task failed: {e}"))),
            };
            match r {
                Ok(o) => done.push(o),
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// The offset ranges of segment objects in the bucket that the manifest does not list:
    /// uploaded by an attempt interrupted before its commit (or the scrubber's orphans).
    async fn uncommitted_objects(
        &self,
        stream: &StreamName,
        manifest: Option<&Manifest>,
    ) -> Result<Vec<(u64, u64)>, LogError> {
        let listed = self
            .bucket
            .list(&dlog_objects::layout::stream_dir(stream))
            .await?;
        Ok(listed
            .iter()
            .filter(|(k, _)| k.ends_with(".parquet"))
            .filter(|(k, _)| manifest.is_none_or(|m| m.objects.iter().all(|o| o.key != *k)))
            .filter_map(|(k, _)| object_range(k))
            .collect())
    }

    /// Offloads one sealed segment alone (the steps of the crate docs).
    pub async fn offload_segment(
        &self,
        stream: &StreamName,
        seg: &SegmentRecord,
    ) -> Result<Offloaded, LogError> {
        self.offload_group(stream, std::slice::from_ref(seg)).await
    }

    /// Offloads adjacent sealed segments as one object.
    async fn offload_group(
        &self,
        stream: &StreamName,
        group: &[SegmentRecord],
    ) -> Result<Offloaded, LogError> {
        let up = self.upload_group(stream, group).await?;
        self.commit_group(stream, group, up).await
    }

    /// The first steps of an offload: build the object from the bookies, upload it, read it
    /// back and verify it.
    async fn upload_group(
        &self,
        stream: &StreamName,
        group: &[SegmentRecord],
    ) -> Result<Uploaded, LogError> {
        let (first, last) = match (group.first(), group.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(LogError::Internal("an empty offload group".into())),
        };
        let (bytes, summary) = self.build(stream, group).await?;
        let first_ts = summary.first_timestamp_ms.unwrap_or(first.created_ms);
        let key = object_key(stream, first.first_offset, last.end_offset - 1, first_ts);
        let size = bytes.len() as u64;
        let reused = match self
            .bucket
            .put_new_with(&key, bytes, &self.opts.upload)
            .await
        {
            Ok(()) => false,
            Err(ObjectError::AlreadyExists(_)) => true,
            Err(e) => return Err(e.into()),
        };
        step!("offload::uploaded");
        let size = self
            .verify(&key, &summary, if reused { None } else { Some(size) })
            .await?;
        step!("offload::verified");
        Ok(Uploaded {
            key,
            size,
            summary,
            reused,
        })
    }

    /// The last steps of an offload: commit the verified object to the manifest, then to the
    /// segments' metadata.
    async fn commit_group(
        &self,
        stream: &StreamName,
        group: &[SegmentRecord],
        up: Uploaded,
    ) -> Result<Offloaded, LogError> {
        let Uploaded {
            key,
            size,
            summary,
            reused,
        } = up;
        let first = group
            .first()
            .ok_or_else(|| LogError::Internal("an empty offload group".into()))?;
        let seqs: Vec<u64> = group.iter().map(|g| g.seq).collect();
        let entry = ObjectEntry::new(key.clone(), size, &summary, seqs.clone(), self.log.now_ms());
        self.commit_manifest(stream, &entry).await?;
        step!("offload::manifest_committed");
        for seq in &seqs {
            self.commit_segment(stream, *seq, &entry).await?;
        }
        step!("offload::metadata_committed");
        info!(stream = %stream, segments = ?seqs, key, size, reused, "segments offloaded");
        Ok(Offloaded {
            seq: first.seq,
            segments: seqs,
            key,
            first_offset: entry.first_offset,
            end_offset: entry.end_offset,
            size,
            reused,
        })
    }

    /// Reads the segments from the bookies into one Parquet object.
    async fn build(
        &self,
        stream: &StreamName,
        group: &[SegmentRecord],
    ) -> Result<(bytes::Bytes, SegmentSummary), LogError> {
        let first = group.first().map_or(0, |g| g.first_offset);
        let total: u64 = group.iter().map(|g| g.bytes).sum();
        let opts = SegmentOptions {
            size_hint: usize::try_from(total + total / 16).unwrap_or(0),
            ..self.opts.segment.clone()
        };
        let mut w = SegmentWriter::new(stream, first, opts)?;
        for seg in group {
            self.add_segment(stream, seg, &mut w).await?;
        }
        let seqs: Vec<u64> = group.iter().map(|g| g.seq).collect();
        Ok(w.finish(&seqs)?)
    }

    /// Appends one segment's records, read from its ledger, to `w`.
    async fn add_segment(
        &self,
        stream: &StreamName,
        seg: &SegmentRecord,
        w: &mut SegmentWriter,
    ) -> Result<(), LogError> {
        let id = LedgerId(seg.ledger);
        let reader = self.log.ledgers().open_reader(id).await?;
        let Some(last) = reader.readable_end() else {
            return Err(LogError::Corrupt(format!(
                "{stream}: sealed segment {} [{}, {}) has an empty ledger {id}",
                seg.seq, seg.first_offset, seg.end_offset
            )));
        };
        let limits = RecordSetLimits {
            max_payload: usize::MAX,
            ..RecordSetLimits::default()
        };
        let mut entries = reader.read_many(EntryId(0), last, self.opts.read_ahead);
        let mut e = 0u64;
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            let se = StreamEntry::decode(entry.payload)
                .map_err(|err| LogError::Corrupt(format!("ledger {id} entry {e}: {err}")))?;
            let mut offset = se.first_offset;
            for set in se.sets {
                let records = decode_record_set(set.records, &limits)
                    .map_err(|err| LogError::Corrupt(format!("ledger {id} entry {e}: {err}")))?;
                for r in &records {
                    if offset >= seg.end_offset {
                        // Past the sealed end: not part of the stream (never acknowledged).
                        break;
                    }
                    w.push(offset, r)?;
                    offset += 1;
                }
            }
            e += 1;
        }
        if w.next_offset() != seg.end_offset {
            return Err(LogError::Corrupt(format!(
                "{stream}: segment {} ends at {}, its ledger {id} holds records up to {}",
                seg.seq,
                seg.end_offset,
                w.next_offset()
            )));
        }
        Ok(())
    }

    /// Reads the object back whole and checks it holds exactly what the bookies held.
    /// Returns its size.
    async fn verify(
        &self,
        key: &str,
        want: &SegmentSummary,
        size: Option<u64>,
    ) -> Result<u64, LogError> {
        let bytes = self.bucket.get(key).await?;
        if let Some(s) = size
            && bytes.len() as u64 != s
        {
            return Err(LogError::Corrupt(format!(
                "object {key} is {} bytes, {s} were uploaded",
                bytes.len()
            )));
        }
        let len = bytes.len() as u64;
        let got = check(key, bytes)?;
        if got.summary.first_offset != want.first_offset
            || got.summary.end_offset != want.end_offset
            || got.summary.crc32c != want.crc32c
        {
            return Err(LogError::Corrupt(format!(
                "object {key} holds [{}, {}) with checksum {}, the bookies [{}, {}) with {}",
                got.summary.first_offset,
                got.summary.end_offset,
                got.summary.crc32c,
                want.first_offset,
                want.end_offset,
                want.crc32c
            )));
        }
        Ok(len)
    }

    /// Appends `entry` to the stream's manifest (unless an earlier attempt did).
    async fn commit_manifest(
        &self,
        stream: &StreamName,
        entry: &ObjectEntry,
    ) -> Result<(), LogError> {
        for _ in 0..10 {
            let m = self
                .manifests
                .latest(stream)
                .await?
                .unwrap_or_else(|| Manifest::empty(stream));
            if m.objects.iter().any(|o| o.key == entry.key) {
                return Ok(());
            }
            let mut next = m.clone();
            next.version += 1;
            let state = self.log.load(stream).await?;
            next.policy = Some(state.record.policy.clone());
            if next.objects.is_empty() {
                let start = state.record.start_offset;
                next.start_offset = entry.first_offset.max(start.min(entry.end_offset));
            } else if m.end_offset() != entry.first_offset {
                return Err(LogError::Conflict(format!(
                    "{stream}: the manifest ends at offset {}, the next object starts at {}; \
                     segments are offloaded in order",
                    m.end_offset(),
                    entry.first_offset
                )));
            }
            next.objects.push(entry.clone());
            match self.manifests.commit(&next).await {
                Ok(()) => return Ok(()),
                Err(ObjectError::ManifestConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(LogError::Unavailable(format!(
            "{stream}: the manifest kept changing while an offload committed"
        )))
    }

    /// Records the object in the segment's metadata (compare-and-set).
    async fn commit_segment(
        &self,
        stream: &StreamName,
        seq: u64,
        entry: &ObjectEntry,
    ) -> Result<(), LogError> {
        for _ in 0..10 {
            let state = self.log.load(stream).await?;
            let Some((seg, v)) = state.segments.iter().find(|(s, _)| s.seq == seq) else {
                return Err(LogError::Conflict(format!(
                    "{stream}: segment {seq} was deleted during its offload"
                )));
            };
            if seg.object.is_some() {
                return Ok(());
            }
            let mut rec = seg.clone();
            rec.object = Some(SegmentObject {
                key: entry.key.clone(),
                size: entry.size,
                first_offset: entry.first_offset,
                end_offset: entry.end_offset,
                crc32c: entry.crc32c,
                offloaded_ms: self.log.now_ms(),
            });
            let op = Op::put(segment_key(stream, seq), rec.encode(), Expect::Version(*v));
            match self.log.store().commit(vec![op]).await {
                Ok(_) => return Ok(()),
                Err(MetadataError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(LogError::Unavailable(format!(
            "{stream}: segment {seq} kept changing while its offload committed"
        )))
    }
}
