//! Reading records from segment objects with ranged GETs: the footer first (cached), then the
//! row groups that hold the wanted offsets (cached, byte-weighted). A row group's column
//! chunks are adjacent in the file, so they are fetched together: nearby ranges are coalesced
//! into one GET, and separate GETs run in parallel.
//!
//! The footer's row-group statistics of `offset` are the offset index: a read from offset `o`
//! fetches the row group whose `[min, max]` holds `o` and those after it, up to the byte budget.
//!
//! Read-ahead: a read that ends in row group `i` starts fetching row groups `i + 1` to
//! `i + read_ahead` in the background (parallel GETs), and, when those reach the end of the
//! object and the caller names the object it reads next, that object's footer and first row
//! group; a sequential reader (catch-up, replay) finds them cached or in flight. A row group is
//! fetched once however many readers want it at the same time (in-flight fetches are shared).

use std::collections::HashMap;
use std::sync::Arc;

use dlog_api::Record;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, TryStreamExt};
use moka::sync::Cache;
use parking_lot::Mutex;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use crate::Bucket;
use crate::error::ObjectError;
use crate::manifest::ObjectEntry;
use crate::segment::batch_records;

type Rows = Arc<Vec<(u64, Record)>>;
type GroupKey = (String, usize);
type GroupFetch = Shared<BoxFuture<'static, Result<Rows, ObjectError>>>;

/// Reads segment objects through a cache of footers and decoded row groups.
#[derive(Clone)]
pub struct ObjectReader {
    bucket: Bucket,
    footers: Cache<String, ArrowReaderMetadata>,
    groups: Cache<GroupKey, Rows>,
    /// Row groups being fetched, shared by every reader that wants them meanwhile.
    in_flight: Arc<Mutex<HashMap<GroupKey, GroupFetch>>>,
    /// Row groups fetched ahead of a sequential reader.
    read_ahead: usize,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("bucket", &self.bucket.url())
            .field("cached_bytes", &self.groups.weighted_size())
            .finish()
    }
}

impl ObjectReader {
    /// A reader whose row-group cache holds about `cache_bytes` of records.
    pub fn new(bucket: Bucket, cache_bytes: u64) -> ObjectReader {
        ObjectReader {
            bucket,
            footers: Cache::new(4096),
            groups: Cache::builder()
                .max_capacity(cache_bytes)
                .weigher(|_, rows: &Rows| {
                    let b: usize = rows
                        .iter()
                        .map(|(_, r)| r.payload.len() + r.key.as_ref().map_or(0, |k| k.len()) + 64)
                        .sum();
                    u32::try_from(b).unwrap_or(u32::MAX)
                })
                .build(),
            in_flight: Arc::default(),
            read_ahead: 2,
        }
    }

    /// Fetches `n` row groups ahead of a sequential reader (default 2; 0: none).
    pub fn with_read_ahead(mut self, n: usize) -> ObjectReader {
        self.read_ahead = n;
        self
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The object's footer (from the cache, or one or two ranged GETs).
    async fn footer(&self, o: &Located) -> Result<ArrowReaderMetadata, ObjectError> {
        if let Some(m) = self.footers.get(&o.key) {
            return Ok(m);
        }
        let mut r = self.object_reader(o);
        let m = ArrowReaderMetadata::load_async(&mut r, ArrowReaderOptions::new())
            .await
            .map_err(|e| ObjectError::corrupt(o.key.as_str(), format!("footer: {e}")))?;
        self.footers.insert(o.key.clone(), m.clone());
        Ok(m)
    }

    fn object_reader(&self, o: &Located) -> RangeReader {
        RangeReader {
            bucket: self.bucket.clone(),
            key: o.key.clone(),
            size: o.size,
        }
    }

    /// Records of object `o` from offset `from` on, in offset order, until about `max_bytes`
    /// of payload (at least one record if `from` is in the object).
    pub async fn read(
        &self,
        o: &ObjectEntry,
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Record)>, ObjectError> {
        self.read_at(
            &o.key,
            o.size,
            o.first_offset..o.end_offset,
            from,
            max_bytes,
            None,
        )
        .await
    }

    /// [`ObjectReader::read`] of the object at `key` of `size` bytes holding `range`; `next`
    /// names the object (key, size) a sequential reader reads after it, for read-ahead.
    pub async fn read_at(
        &self,
        key: &str,
        size: u64,
        range: std::ops::Range<u64>,
        from: u64,
        max_bytes: usize,
        next: Option<(&str, u64)>,
    ) -> Result<Vec<(u64, Record)>, ObjectError> {
        if !range.contains(&from) {
            return Err(ObjectError::Invalid(format!(
                "offset {from} is not in {key} [{}, {})",
                range.start, range.end
            )));
        }
        let o = &Located {
            key: key.to_string(),
            size,
        };
        let meta = self.footer(o).await?;
        let groups = meta.metadata().row_groups();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut last = None;
        for (i, g) in groups.iter().enumerate() {
            let Some((_, max)) = offset_range(g.column(0).statistics()) else {
                return Err(ObjectError::corrupt(
                    o.key.as_str(),
                    format!("row group {i} has no offset statistics"),
                ));
            };
            if max < from {
                continue;
            }
            let rows = self.group(o, &meta, i).await?;
            last = Some(i);
            let mut full = false;
            for (off, r) in rows.iter() {
                if *off < from {
                    continue;
                }
                if bytes >= max_bytes && !out.is_empty() {
                    full = true;
                    break;
                }
                bytes += r.payload.len();
                out.push((*off, r.clone()));
            }
            if full || bytes >= max_bytes {
                break;
            }
        }
        if let Some(i) = last {
            let ahead = (i + 1)..groups.len().min(i + 1 + self.read_ahead);
            for j in ahead.clone() {
                self.read_ahead(o, &meta, j);
            }
            if self.read_ahead > 0
                && ahead.end == groups.len()
                && let Some((key, size)) = next
            {
                self.prefetch(key, size);
            }
        }
        Ok(out)
    }

    /// Starts fetching the footer and first row group of the object at `key` in the
    /// background (outside a Tokio runtime, does nothing).
    pub fn prefetch(&self, key: &str, size: u64) {
        let o = Located {
            key: key.to_string(),
            size,
        };
        let first = (o.key.clone(), 0);
        if self.groups.contains_key(&first) || self.in_flight.lock().contains_key(&first) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            // A failure here is the demand read's to report, if it comes.
            if let Ok(meta) = this.footer(&o).await
                && !meta.metadata().row_groups().is_empty()
            {
                let _ = this.group(&o, &meta, 0).await;
            }
        });
    }

    /// Starts fetching row group `i` of `o` in the background unless it is cached or in
    /// flight (outside a Tokio runtime, does nothing).
    fn read_ahead(&self, o: &Located, meta: &ArrowReaderMetadata, i: usize) {
        let key = (o.key.clone(), i);
        if self.groups.contains_key(&key) || self.in_flight.lock().contains_key(&key) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (this, o, meta) = (self.clone(), o.clone(), meta.clone());
        rt.spawn(async move {
            // A failure here is the demand read's to report, if it comes.
            let _ = this.group(&o, &meta, i).await;
        });
    }

    /// Row group `i` of `o`, decoded: from the cache, from a fetch already in flight, or
    /// fetched now.
    async fn group(
        &self,
        o: &Located,
        meta: &ArrowReaderMetadata,
        i: usize,
    ) -> Result<Rows, ObjectError> {
        let key = (o.key.clone(), i);
        if let Some(rows) = self.groups.get(&key) {
            return Ok(rows);
        }
        let fetch = {
            let mut in_flight = self.in_flight.lock();
            // Cached between the check above and taking the lock.
            if let Some(rows) = self.groups.get(&key) {
                return Ok(rows);
            }
            in_flight
                .entry(key.clone())
                .or_insert_with(|| {
                    // A task of its own: the fetch finishes (and leaves the map) even if every
                    // reader waiting for it is cancelled meanwhile.
                    let (this, o, meta) = (self.clone(), o.clone(), meta.clone());
                    let task = tokio::spawn(async move {
                        let r = this.fetch_group(&o, &meta, i).await;
                        this.in_flight.lock().remove(&(o.key.clone(), i));
                        r
                    });
                    async move {
                        task.await.unwrap_or_else(|e| {
                            Err(ObjectError::Internal(format!(
                                "row group fetch stopped: {e}"
                            )))
                        })
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        fetch.await
    }

    /// Fetches and decodes row group `i` of `o` and caches it.
    async fn fetch_group(
        &self,
        o: &Located,
        meta: &ArrowReaderMetadata,
        i: usize,
    ) -> Result<Rows, ObjectError> {
        let cache_key = (o.key.clone(), i);
        let stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(self.object_reader(o), meta.clone())
                .with_row_groups(vec![i])
                .with_batch_size(64 * 1024)
                .build()?;
        let batches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| ObjectError::corrupt(o.key.as_str(), format!("row group {i}: {e}")))?;
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(batch_records(b).map_err(|why| ObjectError::corrupt(o.key.as_str(), why))?);
        }
        let rows = Arc::new(rows);
        self.groups.insert(cache_key, rows.clone());
        Ok(rows)
    }
}

/// `[min, max]` of a row group's `offset` column.
fn offset_range(s: Option<&Statistics>) -> Option<(u64, u64)> {
    match s? {
        Statistics::Int64(v) => Some((*v.min_opt()? as u64, *v.max_opt()? as u64)),
        _ => None,
    }
}

/// An object's key and size.
#[derive(Clone)]
struct Located {
    key: String,
    size: u64,
}

/// Parquet's view of one object: ranged GETs through the bucket.
struct RangeReader {
    bucket: Bucket,
    key: String,
    size: u64,
}

/// Bytes fetched from the end of an object for its footer: most footers fit, so one GET.
const FOOTER_PREFETCH: usize = 64 << 10;

impl AsyncFileReader for RangeReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            self.bucket
                .get_range(&self.key, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    /// A row group's column chunks at once: coalesced, in parallel.
    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        Box::pin(async move {
            self.bucket
                .get_ranges(&self.key, &ranges)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            let m = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(m))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use bytes::Bytes;
    use dlog_api::Record;
    use dlog_api::stream::StreamName;

    use super::*;
    use crate::layout::segment_key;
    use crate::{SegmentOptions, SegmentWriter};

    /// Writes records `[first, end)` of 1 KiB in row groups of 16 KiB.
    async fn object(b: &Bucket, s: &StreamName, first: u64, end: u64) -> ObjectEntry {
        let opts = SegmentOptions {
            row_group_bytes: 16 << 10,
            ..SegmentOptions::default()
        };
        let mut w = SegmentWriter::new(s, first, opts).unwrap();
        for o in first..end {
            w.push(o, &Record::new(Bytes::from(vec![o as u8; 1024])))
                .unwrap();
        }
        let (bytes, sum) = w.finish(&[first]).unwrap();
        let key = segment_key(s, first, end - 1, 0);
        b.put_new(&key, bytes.clone()).await.unwrap();
        ObjectEntry::new(key, bytes.len() as u64, &sum, vec![first], 0)
    }

    async fn cached_soon(r: &ObjectReader, key: &str, group: usize) -> bool {
        for _ in 0..200 {
            if r.groups.contains_key(&(key.to_string(), group)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A fetch whose readers all gave up still finishes, is cached and leaves the map.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_fetch_finishes_and_leaves_no_entry() {
        use crate::testing::{Faults, FaultyStore};
        let dir = tempfile::tempdir().unwrap();
        let clean = Bucket::local(dir.path()).unwrap();
        let s: StreamName = "ns/abandoned".parse().unwrap();
        let a = object(&clean, &s, 0, 100).await;
        let slow = Arc::new(FaultyStore::new(clean.store().clone(), 1));
        let b = Bucket::from_store(slow.clone(), "", "slow://");
        let r = ObjectReader::new(b, 64 << 20).with_read_ahead(0);
        r.footer(&Located {
            key: a.key.clone(),
            size: a.size,
        })
        .await
        .unwrap();
        slow.set(Faults {
            latency: Duration::from_millis(200),
            ..Faults::default()
        });
        let gave_up = tokio::time::timeout(Duration::from_millis(20), r.read(&a, 0, 1)).await;
        assert!(gave_up.is_err(), "the read should still be waiting");
        assert_eq!(r.in_flight.lock().len(), 1);
        assert!(cached_soon(&r, &a.key, 0).await, "the fetch did not finish");
        assert!(r.in_flight.lock().is_empty(), "the fetch stayed in the map");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sequential_reads_fetch_ahead_within_and_across_objects() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bucket::local(dir.path()).unwrap();
        let s: StreamName = "ns/ahead".parse().unwrap();
        let a = object(&b, &s, 0, 100).await;
        let next = object(&b, &s, 100, 200).await;
        let r = ObjectReader::new(b.clone(), 64 << 20).with_read_ahead(2);
        let then = Some((next.key.as_str(), next.size));
        let range = a.first_offset..a.end_offset;
        // A read in the first row group fetches the next two of the same object.
        let got = r
            .read_at(&a.key, a.size, range.clone(), 0, 1, then)
            .await
            .unwrap();
        assert_eq!(got[0].0, 0);
        assert!(cached_soon(&r, &a.key, 1).await && cached_soon(&r, &a.key, 2).await);
        assert!(!r.groups.contains_key(&(next.key.clone(), 0)));
        // A read near the end of the object fetches the next object's first row group.
        let got = r.read_at(&a.key, a.size, range, 95, 1, then).await.unwrap();
        assert_eq!(got[0].0, 95);
        assert!(
            cached_soon(&r, &next.key, 0).await,
            "next object not fetched ahead"
        );
        assert_eq!(r.read(&next, 100, 1).await.unwrap()[0].0, 100);
        // Without read-ahead, nothing is fetched but what is read.
        let quiet = ObjectReader::new(b, 64 << 20).with_read_ahead(0);
        quiet.read(&a, 0, 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!quiet.groups.contains_key(&(a.key.clone(), 1)));
    }
}
