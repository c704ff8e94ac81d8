//! Parquet segment objects: writing a segment's records, and decoding them back.
//!
//! Format (version 1): one row per record, in offset order, with the columns
//!
//! | column | Arrow type | nullable |
//! |---|---|---|
//! | `offset` | UInt64 | no |
//! | `timestamp_ms` | Int64 | no |
//! | `txid` | UInt64 | yes |
//! | `key` | Binary | yes |
//! | `payload` | Binary | no |
//!
//! Encodings: `offset` and `timestamp_ms` delta (`DELTA_BINARY_PACKED`), `payload` plain,
//! `txid` and `key` dictionary where it pays (Parquet's default); every reader of Parquet 2
//! encodings (DuckDB, pyarrow, Spark, DataFusion) reads them.
//!
//! zstd-compressed, row groups of about `row_group_bytes` of records (a few MiB: one ranged GET
//! each), page-level statistics and the page index, so a reader finds an offset or a time from
//! the footer alone; `offset` is declared the sort column. The file's key-value metadata holds
//! the object's identity and checksum:
//!
//! | key | value |
//! |---|---|
//! | `dlog.format` | `1` |
//! | `dlog.stream` | `NAMESPACE/NAME` |
//! | `dlog.first_offset`, `dlog.end_offset` | the offsets `[first, end)` it holds |
//! | `dlog.records` | `end - first` |
//! | `dlog.crc32c` | CRC32C of the records' canonical encoding (below), decimal |
//! | `dlog.segments` | the stream segments it was made from, e.g. `[3,4,5]` |
//!
//! The canonical encoding of a record, for the checksum, is `offset u64 LE, timestamp_ms i64 LE,
//! txid (0u8 | 1u8 u64 LE), key (0u8 | 1u8 len u32 LE bytes), payload (len u32 LE, bytes)`.
//! It depends only on the records, so a bookie copy and an object can be compared without
//! comparing bytes of Parquet.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder, Int64Builder, UInt64Builder};
use arrow_array::{Array, BinaryArray, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use dlog_api::Record;
use dlog_api::stream::StreamName;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::ObjectError;

/// The Arrow schema of a segment object.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("offset", DataType::UInt64, false),
        Field::new("timestamp_ms", DataType::Int64, false),
        Field::new("txid", DataType::UInt64, true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, false),
    ]))
}

/// How segment objects are written.
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// Record bytes per row group.
    pub row_group_bytes: usize,
    /// zstd level (1 is fast and still shrinks text well).
    pub zstd_level: i32,
    /// The object's expected size, reserved up front (a growing buffer of hundreds of MB
    /// would be copied and page-faulted again at every doubling).
    pub size_hint: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            row_group_bytes: 4 << 20,
            zstd_level: 1,
            size_hint: 0,
        }
    }
}

/// What an object holds, as its metadata and the manifest record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub first_offset: u64,
    pub end_offset: u64,
    pub crc32c: u32,
    pub first_timestamp_ms: Option<i64>,
    pub max_timestamp_ms: Option<i64>,
    pub min_txid: Option<u64>,
    pub max_txid: Option<u64>,
    /// Payload and key bytes.
    pub record_bytes: u64,
}

impl SegmentSummary {
    fn empty(first_offset: u64) -> Self {
        SegmentSummary {
            first_offset,
            end_offset: first_offset,
            crc32c: 0,
            first_timestamp_ms: None,
            max_timestamp_ms: None,
            min_txid: None,
            max_txid: None,
            record_bytes: 0,
        }
    }

    pub fn records(&self) -> u64 {
        self.end_offset - self.first_offset
    }

    /// Takes in the record at `offset` (the next one).
    fn add(&mut self, offset: u64, r: &Record) {
        self.add_parts(offset, r.timestamp_ms, r.txid, r.key.as_deref(), &r.payload);
    }

    fn add_parts(
        &mut self,
        offset: u64,
        timestamp_ms: i64,
        txid: Option<u64>,
        key: Option<&[u8]>,
        payload: &[u8],
    ) {
        self.crc32c = crc_parts(self.crc32c, offset, timestamp_ms, txid, key, payload);
        self.end_offset = offset + 1;
        self.first_timestamp_ms = self.first_timestamp_ms.or(Some(timestamp_ms));
        self.max_timestamp_ms = Some(
            self.max_timestamp_ms
                .map_or(timestamp_ms, |m| m.max(timestamp_ms)),
        );
        if let Some(t) = txid {
            self.min_txid = self.min_txid.or(Some(t));
            self.max_txid = Some(t);
        }
        self.record_bytes += (payload.len() + key.map_or(0, <[u8]>::len)) as u64;
    }
}

/// Folds one record into a running CRC32C (the canonical encoding in the module docs).
pub fn record_crc(crc: u32, offset: u64, r: &Record) -> u32 {
    crc_parts(
        crc,
        offset,
        r.timestamp_ms,
        r.txid,
        r.key.as_deref(),
        &r.payload,
    )
}

fn crc_parts(
    crc: u32,
    offset: u64,
    timestamp_ms: i64,
    txid: Option<u64>,
    key: Option<&[u8]>,
    payload: &[u8],
) -> u32 {
    let mut head = [0u8; 8 + 8 + 9 + 5];
    let mut n = 0;
    head[n..n + 8].copy_from_slice(&offset.to_le_bytes());
    n += 8;
    head[n..n + 8].copy_from_slice(&timestamp_ms.to_le_bytes());
    n += 8;
    match txid {
        Some(t) => {
            head[n] = 1;
            head[n + 1..n + 9].copy_from_slice(&t.to_le_bytes());
            n += 9;
        }
        None => {
            head[n] = 0;
            n += 1;
        }
    }
    let mut crc = crc32c::crc32c_append(crc, &head[..n]);
    match key {
        Some(k) => {
            let mut h = [1u8; 5];
            h[1..].copy_from_slice(&(k.len() as u32).to_le_bytes());
            crc = crc32c::crc32c_append(crc, &h);
            crc = crc32c::crc32c_append(crc, k);
        }
        None => crc = crc32c::crc32c_append(crc, &[0]),
    }
    crc = crc32c::crc32c_append(crc, &(payload.len() as u32).to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Builds one segment object in memory.
#[derive(Debug)]
pub struct SegmentWriter {
    stream: StreamName,
    opts: SegmentOptions,
    writer: ArrowWriter<Vec<u8>>,
    offsets: UInt64Builder,
    timestamps: Int64Builder,
    txids: UInt64Builder,
    keys: BinaryBuilder,
    payloads: BinaryBuilder,
    group_bytes: usize,
    summary: SegmentSummary,
}

impl SegmentWriter {
    /// A writer for records from `first_offset` on.
    pub fn new(
        stream: &StreamName,
        first_offset: u64,
        opts: SegmentOptions,
    ) -> Result<SegmentWriter, ObjectError> {
        let level = ZstdLevel::try_new(opts.zstd_level)
            .map_err(|e| ObjectError::Invalid(format!("zstd level {}: {e}", opts.zstd_level)))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            }]))
            .set_max_row_group_row_count(Some(usize::MAX))
            // Offsets and timestamps rise: delta encoding shrinks them to a few bits a row,
            // where a dictionary would hold every (distinct) value. Payloads are mostly
            // distinct too: a dictionary would hash and copy the first MiB of every row group
            // before giving up. Keys repeat, and keep theirs.
            .set_column_dictionary_enabled(ColumnPath::from("offset"), false)
            .set_column_encoding(ColumnPath::from("offset"), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(ColumnPath::from("timestamp_ms"), false)
            .set_column_encoding(
                ColumnPath::from("timestamp_ms"),
                Encoding::DELTA_BINARY_PACKED,
            )
            .set_column_dictionary_enabled(ColumnPath::from("payload"), false)
            .set_created_by(format!("dlog {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(
            Vec::with_capacity(opts.size_hint.min(1 << 30)),
            schema(),
            Some(props),
        )?;
        Ok(SegmentWriter {
            stream: stream.clone(),
            opts,
            writer,
            offsets: UInt64Builder::new(),
            timestamps: Int64Builder::new(),
            txids: UInt64Builder::new(),
            keys: BinaryBuilder::new(),
            payloads: BinaryBuilder::new(),
            group_bytes: 0,
            summary: SegmentSummary::empty(first_offset),
        })
    }

    /// The offset the next record must have.
    pub fn next_offset(&self) -> u64 {
        self.summary.end_offset
    }

    /// Adds the record at `offset`, which must be the next one (offsets are dense).
    pub fn push(&mut self, offset: u64, r: &Record) -> Result<(), ObjectError> {
        if offset != self.summary.end_offset {
            return Err(ObjectError::Invalid(format!(
                "{}: record at offset {offset}, expected {} (offsets are dense)",
                self.stream, self.summary.end_offset
            )));
        }
        self.offsets.append_value(offset);
        self.timestamps.append_value(r.timestamp_ms);
        self.txids.append_option(r.txid);
        self.keys.append_option(r.key.as_deref());
        self.payloads.append_value(&r.payload);
        self.group_bytes += r.payload.len() + r.key.as_ref().map_or(0, |k| k.len()) + 24;
        self.summary.add(offset, r);
        if self.group_bytes >= self.opts.row_group_bytes {
            self.write_group()?;
        }
        Ok(())
    }

    fn write_group(&mut self) -> Result<(), ObjectError> {
        if self.offsets.is_empty() {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(self.offsets.finish()),
                Arc::new(self.timestamps.finish()),
                Arc::new(self.txids.finish()),
                Arc::new(self.keys.finish()),
                Arc::new(self.payloads.finish()),
            ],
        )?;
        self.writer.write(&batch)?;
        self.writer.flush()?;
        self.group_bytes = 0;
        Ok(())
    }

    /// Finishes the object: its bytes and what it holds. `segments` are the stream segments
    /// it was made from (recorded in its metadata).
    pub fn finish(mut self, segments: &[u64]) -> Result<(Bytes, SegmentSummary), ObjectError> {
        self.write_group()?;
        let s = &self.summary;
        let segs =
            serde_json::to_string(segments).map_err(|e| ObjectError::Internal(e.to_string()))?;
        for (k, v) in [
            ("dlog.format", "1".to_string()),
            ("dlog.stream", self.stream.to_string()),
            ("dlog.first_offset", s.first_offset.to_string()),
            ("dlog.end_offset", s.end_offset.to_string()),
            ("dlog.records", s.records().to_string()),
            ("dlog.crc32c", s.crc32c.to_string()),
            ("dlog.segments", segs),
        ] {
            self.writer
                .append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        let summary = self.summary.clone();
        let bytes = self.writer.into_inner()?;
        Ok((Bytes::from(bytes), summary))
    }
}

/// A whole object decoded: its metadata and records, checked against each other.
#[derive(Debug)]
pub struct DecodedSegment {
    pub stream: String,
    pub summary: SegmentSummary,
    pub segments: Vec<u64>,
    pub records: Vec<(u64, Record)>,
}

/// Decodes a whole segment object and checks it: dense offsets from `dlog.first_offset` to
/// `dlog.end_offset`, and the checksum of its records equal to `dlog.crc32c`.
pub fn decode(key: &str, bytes: Bytes) -> Result<DecodedSegment, ObjectError> {
    read_checked(key, bytes, true)
}

/// [`decode`] without keeping the records: what verifying an upload needs (no copy of every
/// payload). Its `records` are empty.
pub fn check(key: &str, bytes: Bytes) -> Result<DecodedSegment, ObjectError> {
    read_checked(key, bytes, false)
}

fn read_checked(key: &str, bytes: Bytes, keep: bool) -> Result<DecodedSegment, ObjectError> {
    let corrupt = |why: String| ObjectError::corrupt(key, why);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| corrupt(format!("not a Parquet file: {e}")))?;
    let kv = key_values(builder.metadata().file_metadata().key_value_metadata());
    let get = |k: &str| -> Result<&str, ObjectError> {
        kv.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| corrupt(format!("no {k} in its metadata")))
    };
    let num = |k: &str| -> Result<u64, ObjectError> {
        get(k)?
            .parse()
            .map_err(|_| corrupt(format!("{k} is not a number")))
    };
    if get("dlog.format")? != "1" {
        return Err(corrupt(format!(
            "unknown dlog.format {}",
            get("dlog.format")?
        )));
    }
    let stream = get("dlog.stream")?.to_string();
    let first = num("dlog.first_offset")?;
    let end = num("dlog.end_offset")?;
    let crc = u32::try_from(num("dlog.crc32c")?)
        .map_err(|_| corrupt("dlog.crc32c out of range".into()))?;
    let segments: Vec<u64> = serde_json::from_str(get("dlog.segments")?)
        .map_err(|e| corrupt(format!("dlog.segments: {e}")))?;
    if builder.schema().fields() != schema().fields() {
        return Err(corrupt(format!("unexpected schema {:?}", builder.schema())));
    }
    let reader = builder.build()?;
    let mut summary = SegmentSummary::empty(first);
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(format!("decode: {e}")))?;
        if !keep {
            check_batch(&batch, &mut summary).map_err(corrupt)?;
            continue;
        }
        for (offset, r) in batch_records(&batch).map_err(corrupt)? {
            if offset != summary.end_offset {
                return Err(corrupt(format!(
                    "offset {offset} where {} was expected",
                    summary.end_offset
                )));
            }
            summary.add(offset, &r);
            records.push((offset, r));
        }
    }
    if summary.end_offset != end || summary.crc32c != crc {
        return Err(corrupt(format!(
            "holds [{first}, {}) with checksum {}, its metadata says [{first}, {end}) with {crc}",
            summary.end_offset, summary.crc32c
        )));
    }
    Ok(DecodedSegment {
        stream,
        summary,
        segments,
        records,
    })
}

/// Folds a batch into `summary` straight from its columns.
fn check_batch(batch: &RecordBatch, summary: &mut SegmentSummary) -> Result<(), String> {
    let c = columns(batch)?;
    for i in 0..batch.num_rows() {
        if c.offsets.is_null(i) || c.ts.is_null(i) || c.payloads.is_null(i) {
            return Err(format!("row {i} has a null offset, timestamp or payload"));
        }
        let offset = c.offsets.value(i);
        if offset != summary.end_offset {
            return Err(format!(
                "offset {offset} where {} was expected",
                summary.end_offset
            ));
        }
        summary.add_parts(
            offset,
            c.ts.value(i),
            (!c.txids.is_null(i)).then(|| c.txids.value(i)),
            (!c.keys.is_null(i)).then(|| c.keys.value(i)),
            c.payloads.value(i),
        );
    }
    Ok(())
}

/// A batch's columns, typed.
struct Columns<'a> {
    offsets: &'a UInt64Array,
    ts: &'a Int64Array,
    txids: &'a UInt64Array,
    keys: &'a BinaryArray,
    payloads: &'a BinaryArray,
}

fn columns(batch: &RecordBatch) -> Result<Columns<'_>, String> {
    fn col<'a, T: 'static>(b: &'a RecordBatch, i: usize, name: &str) -> Result<&'a T, String> {
        b.column(i)
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| format!("column {name} has the wrong type"))
    }
    Ok(Columns {
        offsets: col(batch, 0, "offset")?,
        ts: col(batch, 1, "timestamp_ms")?,
        txids: col(batch, 2, "txid")?,
        keys: col(batch, 3, "key")?,
        payloads: col(batch, 4, "payload")?,
    })
}

fn key_values(kv: Option<&Vec<KeyValue>>) -> Vec<(String, String)> {
    kv.map(|v| {
        v.iter()
            .filter_map(|k| Some((k.key.clone(), k.value.clone()?)))
            .collect()
    })
    .unwrap_or_default()
}

/// The records of a batch in the segment schema.
pub fn batch_records(batch: &RecordBatch) -> Result<Vec<(u64, Record)>, String> {
    let Columns {
        offsets,
        ts,
        txids,
        keys,
        payloads,
    } = columns(batch)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        if offsets.is_null(i) || ts.is_null(i) || payloads.is_null(i) {
            return Err(format!("row {i} has a null offset, timestamp or payload"));
        }
        out.push((
            offsets.value(i),
            Record {
                payload: Bytes::copy_from_slice(payloads.value(i)),
                key: (!keys.is_null(i)).then(|| Bytes::copy_from_slice(keys.value(i))),
                timestamp_ms: ts.value(i),
                txid: (!txids.is_null(i)).then(|| txids.value(i)),
            },
        ));
    }
    Ok(out)
}
