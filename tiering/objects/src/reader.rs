//! Reading records from segment objects with ranged GETs: the footer first (cached), then the
//! row groups that hold the wanted offsets (cached, byte-weighted), one GET per column chunk.
//!
//! The footer's row-group statistics of `offset` are the offset index: a read from offset `o`
//! fetches the row group whose `[min, max]` holds `o` and those after it, up to the byte budget.

use std::sync::Arc;

use dlog_api::Record;
use futures::TryStreamExt;
use moka::sync::Cache;
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

/// Reads segment objects through a cache of footers and decoded row groups.
#[derive(Clone)]
pub struct ObjectReader {
    bucket: Bucket,
    footers: Cache<String, ArrowReaderMetadata>,
    groups: Cache<(String, usize), Rows>,
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
        }
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
        )
        .await
    }

    /// [`ObjectReader::read`] of the object at `key` of `size` bytes holding `range`.
    pub async fn read_at(
        &self,
        key: &str,
        size: u64,
        range: std::ops::Range<u64>,
        from: u64,
        max_bytes: usize,
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
            for (off, r) in rows.iter() {
                if *off < from {
                    continue;
                }
                if bytes >= max_bytes && !out.is_empty() {
                    return Ok(out);
                }
                bytes += r.payload.len();
                out.push((*off, r.clone()));
            }
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Row group `i` of `o`, decoded (from the cache, or its column chunks' ranged GETs).
    async fn group(
        &self,
        o: &Located,
        meta: &ArrowReaderMetadata,
        i: usize,
    ) -> Result<Rows, ObjectError> {
        let cache_key = (o.key.clone(), i);
        if let Some(rows) = self.groups.get(&cache_key) {
            return Ok(rows);
        }
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
