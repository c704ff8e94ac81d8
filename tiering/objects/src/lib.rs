//! dlog's object tier: where sealed segments go after the bookies.
//!
//! - [`Bucket`]: an object store (a local folder or any S3-compatible service) and the prefix
//!   of dlog's keys in it; every write is a conditional create, so no key is ever overwritten.
//! - [`layout`]: the keys — Hive-style `streams/NS/NAME/dt=DATE/FIRST-LAST.parquet` and the
//!   manifest versions under `_manifest/`.
//! - [`segment`]: the Parquet format of a segment object (columns `offset`, `timestamp_ms`,
//!   `txid`, `key`, `payload`; identity and checksum in the file metadata), its writer, and a
//!   checked decoder.
//! - [`manifest`]: the per-stream manifest that makes a bucket self-describing.
//! - [`ObjectReader`]: ranged reads through a cache of footers and row groups.
//!
//! This crate depends only on `dlog-api`, `object_store`, `parquet`/`arrow` and `moka`, so the
//! SDK can read a bucket without a cluster.

mod error;
pub mod layout;
pub mod manifest;
mod reader;
pub mod segment;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ObjectError;
pub use manifest::{Manifest, Manifests, ObjectEntry};
pub use reader::ObjectReader;
pub use segment::{SegmentOptions, SegmentSummary, SegmentWriter};
pub use store::{Bucket, S3Options, UploadOptions};
