//! Reading a stream straight from its bucket, without a cluster ([`BucketReader`]).
//!
//! The stream's newest manifest says which objects hold which offsets; records come from the
//! Parquet objects by ranged GETs (footer, then the row groups holding the wanted offsets),
//! through a cache. Only what the manifest lists is read: offloaded history, in order, with
//! dense offsets — what `dlog replay` prints.

use dlog_api::{Record, StreamName};
use dlog_objects::{Bucket, Manifest, Manifests, ObjectError, ObjectReader, S3Options};

use crate::ReadRecord;
use crate::error::ClientError;
use dlog_api::ErrorKind;

/// Reads a stream's offloaded records from its bucket.
#[derive(Debug)]
pub struct BucketReader {
    stream: StreamName,
    objects: ObjectReader,
    manifest: Manifest,
    next: u64,
}

fn object_error(e: ObjectError) -> ClientError {
    let kind = match &e {
        ObjectError::Unavailable(_) => ErrorKind::Unavailable,
        ObjectError::Invalid(_) => ErrorKind::Invalid,
        ObjectError::NotFound(_) => ErrorKind::NotFound,
        ObjectError::Corrupt { .. } => ErrorKind::Corrupt,
        _ => ErrorKind::Internal,
    };
    ClientError::new(kind, e.to_string())
}

impl BucketReader {
    /// Opens `stream` in the bucket at `url` (`file:///path` or `s3://bucket/prefix`; S3
    /// settings from `s3` and the AWS environment). Fails with a not-found error if the
    /// bucket holds no manifest for the stream.
    pub async fn open(
        url: &str,
        s3: &S3Options,
        stream: &StreamName,
    ) -> Result<BucketReader, ClientError> {
        let bucket = Bucket::open_existing(url, s3).map_err(object_error)?;
        let manifest = Manifests::new(bucket.clone())
            .latest(stream)
            .await
            .map_err(object_error)?
            .ok_or_else(|| {
                ClientError::new(
                    ErrorKind::NotFound,
                    format!("{url} holds no offloaded segments of {stream} (no manifest)"),
                )
            })?;
        Ok(BucketReader {
            stream: stream.clone(),
            objects: ObjectReader::new(bucket, 64 << 20),
            next: manifest.start_offset,
            manifest,
        })
    }

    /// The stream.
    pub fn stream(&self) -> &StreamName {
        &self.stream
    }

    /// The manifest version read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The first offset in the bucket.
    pub fn start_offset(&self) -> u64 {
        self.manifest.start_offset
    }

    /// The offset after the last one in the bucket.
    pub fn end_offset(&self) -> u64 {
        self.manifest.end_offset()
    }

    /// The offset the next read starts at.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Continues at `offset` (from the start offset to the end offset).
    pub fn seek(&mut self, offset: u64) -> Result<(), ClientError> {
        if offset < self.start_offset() || offset > self.end_offset() {
            return Err(ClientError::from_code(
                dlog_api::ErrorCode::OffsetOutOfRange,
                format!(
                    "offset {offset} is outside the offloaded range {}..{} of {}",
                    self.start_offset(),
                    self.end_offset(),
                    self.stream
                ),
            ));
        }
        self.next = offset;
        Ok(())
    }

    /// Continues at the first record stamped at or after `ts_ms` (the end if none).
    pub async fn seek_timestamp(&mut self, ts_ms: i64) -> Result<u64, ClientError> {
        self.seek_where(
            |o| o.max_timestamp_ms.is_some_and(|t| t >= ts_ms),
            |r| r.timestamp_ms >= ts_ms,
        )
        .await
    }

    /// Continues at the first record with a txid at or after `txid` (the end if none).
    pub async fn seek_txid(&mut self, txid: u64) -> Result<u64, ClientError> {
        self.seek_where(
            |o| o.max_txid.is_some_and(|t| t >= txid),
            |r| r.txid.is_some_and(|t| t >= txid),
        )
        .await
    }

    /// The first object whose maximum reaches the target holds the first record that does.
    async fn seek_where(
        &mut self,
        object_reaches: impl Fn(&dlog_objects::ObjectEntry) -> bool,
        record_reaches: impl Fn(&Record) -> bool,
    ) -> Result<u64, ClientError> {
        let start = self.start_offset();
        let found = self
            .manifest
            .objects
            .iter()
            .find(|o| o.end_offset > start && object_reaches(o))
            .cloned();
        let Some(o) = found else {
            self.next = self.end_offset();
            return Ok(self.next);
        };
        let mut at = o.first_offset.max(start);
        while at < o.end_offset {
            let batch = self
                .objects
                .read(&o, at, 4 << 20)
                .await
                .map_err(object_error)?;
            if let Some((off, _)) = batch.iter().find(|(_, r)| record_reaches(r)) {
                self.next = *off;
                return Ok(*off);
            }
            at = batch.last().map_or(o.end_offset, |(off, _)| off + 1);
        }
        self.next = o.end_offset;
        Ok(self.next)
    }

    /// The next records, about `max_bytes` of payload (at least one), in offset order; empty
    /// once the end of the offloaded history is reached.
    pub async fn next_batch(&mut self, max_bytes: usize) -> Result<Vec<ReadRecord>, ClientError> {
        let Some(o) = self.manifest.find(self.next).cloned() else {
            return Ok(Vec::new());
        };
        // The object after it, for read-ahead across the boundary.
        let then = self
            .manifest
            .find(o.end_offset)
            .map(|n| (n.key.as_str(), n.size));
        let batch = self
            .objects
            .read_at(
                &o.key,
                o.size,
                o.first_offset..o.end_offset,
                self.next,
                max_bytes,
                then,
            )
            .await
            .map_err(object_error)?;
        if batch.first().map(|(off, _)| *off) != Some(self.next) {
            return Err(ClientError::new(
                ErrorKind::Corrupt,
                format!("object {} does not hold offset {}", o.key, self.next),
            ));
        }
        self.next = batch.last().map_or(self.next, |(off, _)| off + 1);
        Ok(batch
            .into_iter()
            .map(|(offset, record)| ReadRecord { offset, record })
            .collect())
    }
}
