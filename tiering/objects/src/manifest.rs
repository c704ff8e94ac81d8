//! The per-stream manifest: which objects hold which offsets. It makes a bucket
//! self-describing — a stream can be replayed, or a cluster's metadata restored, from the
//! bucket alone.
//!
//! Each version is a new object, `streams/NS/NAME/_manifest/VERSION.json`, written with a
//! conditional create: two writers cannot both commit version `v`, and a committed version is
//! never changed. The newest version is the highest one listed. Format (JSON, `format: 1`):
//!
//! ```json
//! {"format":1,"stream":"ns/name","version":3,"start_offset":0,
//!  "objects":[{"key":"streams/ns/name/dt=…/…-….parquet","first_offset":0,"end_offset":1000,
//!              "size":52311,"crc32c":123,"first_timestamp_ms":…,"max_timestamp_ms":…,
//!              "min_txid":null,"max_txid":null,"segments":[0],"created_ms":…}]}
//! ```
//!
//! Objects are listed in offset order and are contiguous; `start_offset` (truncation) may lie
//! inside the first one.

use dlog_api::stream::StreamName;
use serde::{Deserialize, Serialize};

use crate::Bucket;
use crate::SegmentSummary;
use crate::error::ObjectError;
use crate::layout::{manifest_dir, manifest_key, manifest_version};

/// One object in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Relative to the bucket's prefix.
    pub key: String,
    pub first_offset: u64,
    /// Exclusive.
    pub end_offset: u64,
    /// Object bytes.
    pub size: u64,
    /// Checksum of its records' canonical encoding (see `segment`).
    pub crc32c: u32,
    pub first_timestamp_ms: Option<i64>,
    pub max_timestamp_ms: Option<i64>,
    pub min_txid: Option<u64>,
    pub max_txid: Option<u64>,
    /// The stream segments it holds.
    pub segments: Vec<u64>,
    pub created_ms: i64,
}

impl ObjectEntry {
    /// The entry of the object at `key` of `size` bytes that holds what `summary` says,
    /// made from the stream segments `segments`.
    pub fn new(
        key: String,
        size: u64,
        summary: &SegmentSummary,
        segments: Vec<u64>,
        created_ms: i64,
    ) -> ObjectEntry {
        ObjectEntry {
            key,
            first_offset: summary.first_offset,
            end_offset: summary.end_offset,
            size,
            crc32c: summary.crc32c,
            first_timestamp_ms: summary.first_timestamp_ms,
            max_timestamp_ms: summary.max_timestamp_ms,
            min_txid: summary.min_txid,
            max_txid: summary.max_txid,
            segments,
            created_ms,
        }
    }
}

/// A version of a stream's manifest.
/// Unknown fields are ignored, so that readers of format 1 can read manifests that a newer
/// writer extended with optional fields; an incompatible change bumps `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub stream: String,
    pub version: u64,
    /// Offsets below it are truncated.
    pub start_offset: u64,
    pub objects: Vec<ObjectEntry>,
    /// The stream's policy when this version was written (what a restore recreates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<dlog_api::stream::StreamPolicy>,
}

impl Manifest {
    /// Version 0 of a stream's manifest: nothing offloaded.
    pub fn empty(stream: &StreamName) -> Manifest {
        Manifest {
            format: 1,
            stream: stream.to_string(),
            version: 0,
            start_offset: 0,
            objects: Vec::new(),
            policy: None,
        }
    }

    /// The offset after the last offloaded record (the start offset if none).
    pub fn end_offset(&self) -> u64 {
        self.objects
            .last()
            .map_or(self.start_offset, |o| o.end_offset)
    }

    /// The object holding `offset`, if offloaded and not truncated.
    pub fn find(&self, offset: u64) -> Option<&ObjectEntry> {
        if offset < self.start_offset {
            return None;
        }
        let i = self.objects.partition_point(|o| o.end_offset <= offset);
        self.objects.get(i).filter(|o| o.first_offset <= offset)
    }

    /// Checks the invariants: format 1, objects contiguous and non-empty, start within them.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != 1 {
            return Err(format!("unknown manifest format {}", self.format));
        }
        for o in &self.objects {
            if o.end_offset <= o.first_offset {
                return Err(format!("object {} is empty", o.key));
            }
        }
        for w in self.objects.windows(2) {
            if w[0].end_offset != w[1].first_offset {
                return Err(format!(
                    "objects {} and {} are not contiguous",
                    w[0].key, w[1].key
                ));
            }
        }
        if self.start_offset > self.end_offset() {
            return Err(format!(
                "start offset {} is past the end {}",
                self.start_offset,
                self.end_offset()
            ));
        }
        Ok(())
    }
}

/// Reads and commits manifests in a bucket.
#[derive(Debug, Clone)]
pub struct Manifests {
    bucket: Bucket,
}

impl Manifests {
    pub fn new(bucket: Bucket) -> Self {
        Manifests { bucket }
    }

    /// The newest committed version, or `None` if the stream has none.
    pub async fn latest(&self, stream: &StreamName) -> Result<Option<Manifest>, ObjectError> {
        let keys = self.bucket.list(&manifest_dir(stream)).await?;
        let Some((key, version)) = keys
            .iter()
            .filter_map(|(k, _)| Some((k, manifest_version(k)?)))
            .max_by_key(|(_, v)| *v)
        else {
            return Ok(None);
        };
        let bytes = self.bucket.get(key).await?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| ObjectError::corrupt(key.as_str(), format!("manifest: {e}")))?;
        if m.version != version || m.stream != stream.to_string() {
            return Err(ObjectError::corrupt(
                key.as_str(),
                format!("holds version {} of {}", m.version, m.stream),
            ));
        }
        m.validate()
            .map_err(|why| ObjectError::corrupt(key.as_str(), why))?;
        Ok(Some(m))
    }

    /// Commits `m` as its version: fails with [`ObjectError::ManifestConflict`] if that
    /// version exists already (another writer got there first: reload and redo).
    pub async fn commit(&self, m: &Manifest) -> Result<(), ObjectError> {
        m.validate().map_err(ObjectError::Invalid)?;
        let stream: StreamName = m
            .stream
            .parse()
            .map_err(|e| ObjectError::Invalid(format!("manifest stream {}: {e}", m.stream)))?;
        let body =
            serde_json::to_vec_pretty(m).map_err(|e| ObjectError::Internal(e.to_string()))?;
        match self
            .bucket
            .put_new(&manifest_key(&stream, m.version), body.into())
            .await
        {
            Err(ObjectError::AlreadyExists(_)) => Err(ObjectError::ManifestConflict {
                stream: m.stream.clone(),
                version: m.version,
            }),
            r => r,
        }
    }

    /// The streams that have a manifest in the bucket.
    pub async fn streams(&self) -> Result<Vec<StreamName>, ObjectError> {
        let mut out = Vec::new();
        for ns in self.bucket.list_dirs("streams").await? {
            for name in self.bucket.list_dirs(&format!("streams/{ns}")).await? {
                if let Ok(s) = format!("{ns}/{name}").parse::<StreamName>()
                    && !self.bucket.list(&manifest_dir(&s)).await?.is_empty()
                {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }
}
