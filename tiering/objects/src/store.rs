//! Buckets: an object store and the prefix under which dlog keeps its keys.
//!
//! A bucket is named by a URL: `file:///path` (a local folder; `dlogd standalone`'s default)
//! or `s3://bucket/prefix` (any S3-compatible service). S3 settings come from [`S3Options`]
//! and, for whatever they leave unset, from the usual AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …) and, on
//! EC2, the instance profile.
//!
//! Every write is a conditional create: a key, once written, is never overwritten. Objects of
//! at least [`UploadOptions::multipart_threshold`] bytes are uploaded in parts, in parallel,
//! to a staging key of their own (`…/_staging/…`, see [`crate::layout::staging_key`]), then
//! copied to their key with a conditional copy (S3: a one-part multipart copy completed with
//! `If-None-Match: *`; a folder: a hard link), and the staging object is deleted. S3's
//! multipart completion is the only conditional multipart write S3 offers, and `object_store`
//! exposes it only through that copy (decision 0007).

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    WriteMultipart,
};
use tracing::warn;

use crate::error::ObjectError;
use crate::layout::staging_key;

/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// S3's largest part, and the largest object one conditional part copy can move.
pub const MAX_PART_SIZE: usize = 5 << 30;

/// How objects are uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOptions {
    /// Objects at least this large are uploaded in parts; smaller ones with one PUT.
    pub multipart_threshold: usize,
    /// The size of each part (S3: 5 MiB to 5 GiB).
    pub part_size: usize,
    /// Parts uploaded at once.
    pub concurrency: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            concurrency: 4,
        }
    }
}

impl UploadOptions {
    /// Checks the options against S3's limits.
    pub fn validate(&self) -> Result<(), ObjectError> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(ObjectError::Invalid(format!(
                "part size {} is outside S3's limits (5 MiB to 5 GiB)",
                self.part_size
            )));
        }
        if self.multipart_threshold > MAX_PART_SIZE {
            return Err(ObjectError::Invalid(format!(
                "multipart threshold {} is above 5 GiB, the largest single PUT",
                self.multipart_threshold
            )));
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return Err(ObjectError::Invalid(format!(
                "upload concurrency {} must be 1 to 64",
                self.concurrency
            )));
        }
        Ok(())
    }
}

/// S3 settings that override the environment.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:8333` for a local S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers need.
    /// Default: on when an endpoint is given, off for AWS.
    pub path_style: Option<bool>,
    /// Allow `http://` endpoints (default: only when the endpoint says `http://`).
    pub allow_http: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// An object store and the prefix of dlog's keys in it.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// For a local folder: the store and its root, to fsync what is written (S3 services
    /// answer a write once it is durable; a folder's writes sit in the page cache).
    local: Option<(Arc<LocalFileSystem>, std::path::PathBuf)>,
}

impl Bucket {
    /// Opens the bucket a URL names: `file:///path` or `s3://bucket[/prefix]`.
    pub fn open(url: &str, s3: &S3Options) -> Result<Bucket, ObjectError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(ObjectError::Invalid(format!(
                    "{url}: a file URL needs an absolute path (file:///path)"
                )));
            }
            return Bucket::local(FsPath::new(path));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(ObjectError::Invalid(format!(
                "{url}: expected file:///path or s3://bucket/prefix"
            )));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ObjectError::Invalid(format!("{url}: no bucket name")));
        }
        let mut b = AmazonS3Builder::from_env();
        // Conditional copies finish the multipart uploads of large objects (see the module
        // docs); `AWS_COPY_IF_NOT_EXISTS` may choose another way for a store without it.
        if b.get_config_value(&AmazonS3ConfigKey::CopyIfNotExists)
            .is_none()
        {
            b = b.with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        }
        let mut b = b.with_bucket_name(bucket).with_retry(RetryConfig {
            max_retries: 5,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        });
        if let Some(e) = &s3.endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(s3.allow_http.unwrap_or(e.starts_with("http://")))
                .with_virtual_hosted_style_request(!s3.path_style.unwrap_or(true));
        } else if let Some(p) = s3.path_style {
            b = b.with_virtual_hosted_style_request(!p);
        }
        if let Some(a) = s3.allow_http {
            b = b.with_allow_http(a);
        }
        if let Some(r) = &s3.region {
            b = b.with_region(r);
        }
        if let Some(k) = &s3.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s3.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let store = b
            .build()
            .map_err(|e| ObjectError::Invalid(format!("{url}: {e}")))?;
        Ok(Bucket {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            local: None,
        })
    }

    /// Opens the bucket a URL names for reading: like [`Bucket::open`], but a local folder
    /// must exist (a reader of a mistyped path gets an error, not a new empty folder).
    pub fn open_existing(url: &str, s3: &S3Options) -> Result<Bucket, ObjectError> {
        if let Some(path) = url.strip_prefix("file://")
            && path.starts_with('/')
            && !FsPath::new(path).is_dir()
        {
            return Err(ObjectError::Invalid(format!("{url}: no such folder")));
        }
        Bucket::open(url, s3)
    }

    /// A local folder (created if missing).
    pub fn local(dir: &FsPath) -> Result<Bucket, ObjectError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ObjectError::Invalid(format!("create {}: {e}", dir.display())))?;
        let store = Arc::new(
            LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| ObjectError::Invalid(format!("{}: {e}", dir.display())))?,
        );
        let root = std::fs::canonicalize(dir)
            .map_err(|e| ObjectError::Invalid(format!("{}: {e}", dir.display())))?;
        Ok(Bucket {
            store: store.clone(),
            prefix: String::new(),
            url: format!("file://{}", dir.display()),
            local: Some((store, root)),
        })
    }

    /// A bucket over any store (a fault-injecting wrapper in tests, for one).
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Bucket {
        Bucket {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            local: None,
        }
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying store and the full path of `key` in it (for Parquet's async reader).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of a key relative to the bucket's prefix.
    pub fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The key relative to the prefix of a store path.
    fn relative(&self, p: &Path) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            return s.to_string();
        }
        s.strip_prefix(&self.prefix)
            .map(|r| r.trim_start_matches('/').to_string())
            .unwrap_or_else(|| s.to_string())
    }

    /// Writes `bytes` at `key` unless something is there already ([`ObjectError::AlreadyExists`]).
    /// Durable when it returns (in a local folder: the file and its directories are synced).
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<(), ObjectError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let r = self
            .store
            .put_opts(&self.path(key), PutPayload::from(bytes), opts)
            .await
            .map(|_| ())
            .map_err(|e| ObjectError::from_store(e, key));
        self.synced(key, r).await
    }

    /// `r` once a local folder's copy of `key` is on disk: after a write, and also when the key
    /// was there already (an earlier attempt may have crashed before syncing it).
    async fn synced(&self, key: &str, r: Result<(), ObjectError>) -> Result<(), ObjectError> {
        let Some((store, root)) = &self.local else {
            return r;
        };
        if !matches!(r, Ok(()) | Err(ObjectError::AlreadyExists(_))) {
            return r;
        }
        let file = store
            .path_to_filesystem(&self.path(key))
            .map_err(|e| ObjectError::from_store(e, key))?;
        let root = root.clone();
        let synced = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            // Its directory entry, and those of directories created for it (`dt=…`).
            let mut dir = file.parent();
            while let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
                if d == root {
                    break;
                }
                dir = d.parent().filter(|p| p.starts_with(&root));
            }
            Ok(())
        })
        .await
        .map_err(|e| ObjectError::Internal(format!("sync {key}: {e}")))?;
        synced.map_err(|e| ObjectError::Unavailable(format!("sync {key}: {e}")))?;
        r
    }

    /// Writes `bytes` at `key` unless something is there already, in parts when they reach
    /// `opts.multipart_threshold` (see the module docs).
    pub async fn put_new_with(
        &self,
        key: &str,
        bytes: Bytes,
        opts: &UploadOptions,
    ) -> Result<(), ObjectError> {
        if bytes.len() < opts.multipart_threshold.max(1) {
            return self.put_new(key, bytes).await;
        }
        if bytes.len() > MAX_PART_SIZE {
            return Err(ObjectError::Invalid(format!(
                "{key}: {} bytes is more than one conditional copy moves (5 GiB); \
                 write smaller segments",
                bytes.len()
            )));
        }
        // Already there (an earlier attempt, or another node): spare the upload.
        match self.head(key).await {
            Ok(_) => {
                let taken = Err(ObjectError::AlreadyExists(key.to_string()));
                return self.synced(key, taken).await;
            }
            Err(ObjectError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let staged = staging_key(key, fastrand::u64(..));
        let uploaded = self.put_parts(&staged, bytes, opts).await;
        let copied = match uploaded {
            Ok(()) => self
                .store
                .copy_if_not_exists(&self.path(&staged), &self.path(key))
                .await
                .map_err(|e| ObjectError::from_store(e, key)),
            Err(e) => Err(e),
        };
        // Whatever happened, the staging object is not needed any more (the scrubber removes
        // one left by a crash).
        if let Err(e) = self.delete(&staged).await {
            warn!(key = staged, error = %e, "could not delete a staging object");
        }
        self.synced(key, copied).await
    }

    /// A multipart upload of `bytes` at `key` (unconditional: `key` is a fresh staging key).
    async fn put_parts(
        &self,
        key: &str,
        bytes: Bytes,
        opts: &UploadOptions,
    ) -> Result<(), ObjectError> {
        let path = self.path(key);
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| ObjectError::from_store(e, key))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, opts.part_size);
        let mut at = 0;
        let sent: object_store::Result<()> = async {
            while at < bytes.len() {
                let end = bytes.len().min(at + opts.part_size);
                w.wait_for_capacity(opts.concurrency.saturating_sub(1))
                    .await?;
                w.put(bytes.slice(at..end));
                at = end;
            }
            Ok(())
        }
        .await;
        match sent {
            Ok(()) => w
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| ObjectError::from_store(e, key)),
            Err(e) => {
                // The bucket's lifecycle rule aborts uploads a crash leaves behind.
                if let Err(a) = w.abort().await {
                    warn!(key, error = %a, "could not abort a multipart upload");
                }
                Err(ObjectError::from_store(e, key))
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| ObjectError::from_store(e, key))?;
        r.bytes().await.map_err(|e| ObjectError::from_store(e, key))
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectError> {
        self.store
            .get_range(&self.path(key), range)
            .await
            .map_err(|e| ObjectError::from_store(e, key))
    }

    /// Several ranges of one object; nearby ranges are coalesced into one request and the
    /// requests run in parallel (object_store's `get_ranges`).
    pub async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, ObjectError> {
        self.store
            .get_ranges(&self.path(key), ranges)
            .await
            .map_err(|e| ObjectError::from_store(e, key))
    }

    /// Size and time of an object.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError> {
        self.store
            .head(&self.path(key))
            .await
            .map_err(|e| ObjectError::from_store(e, key))
    }

    /// Every key under `dir` (recursively), relative to the bucket's prefix, in key order.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, u64)>, ObjectError> {
        let p = self.path(dir);
        let mut out: Vec<(String, u64)> = self
            .store
            .list(Some(&p))
            .map_ok(|m| (self.relative(&m.location), m.size))
            .try_collect()
            .await
            .map_err(|e| ObjectError::from_store(e, dir))?;
        out.sort();
        Ok(out)
    }

    /// Every key under `dir` with its size and last-modified time (ms since the epoch).
    pub async fn list_meta(&self, dir: &str) -> Result<Vec<(String, u64, i64)>, ObjectError> {
        let p = self.path(dir);
        let mut out: Vec<(String, u64, i64)> = self
            .store
            .list(Some(&p))
            .map_ok(|m| {
                (
                    self.relative(&m.location),
                    m.size,
                    m.last_modified.timestamp_millis(),
                )
            })
            .try_collect()
            .await
            .map_err(|e| ObjectError::from_store(e, dir))?;
        out.sort();
        Ok(out)
    }

    /// The folders directly under `dir` (their names only).
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>, ObjectError> {
        let p = self.path(dir);
        let r = self
            .store
            .list_with_delimiter(Some(&p))
            .await
            .map_err(|e| ObjectError::from_store(e, dir))?;
        let mut out: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes `key`; a missing key is not an error (deletes are retried).
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ObjectError::from_store(e, key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for (url, why) in [
            ("gs://b/p", "expected file:///path or s3://bucket/prefix"),
            ("file://relative/x", "absolute path"),
            ("s3:///prefix", "no bucket name"),
        ] {
            let e = Bucket::open(url, &S3Options::default()).unwrap_err();
            assert!(e.to_string().contains(why), "{url}: {e}");
            assert!(!e.is_retryable());
        }
        let b = Bucket::open(
            "s3://data/dlog/prod/",
            &S3Options {
                endpoint: Some("http://127.0.0.1:1".into()),
                region: Some("us-east-1".into()),
                ..S3Options::default()
            },
        )
        .unwrap();
        assert_eq!(b.path("streams/a/b").as_ref(), "dlog/prod/streams/a/b");
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("file://{}/nope", dir.path().display());
        let e = Bucket::open_existing(&missing, &S3Options::default()).unwrap_err();
        assert!(e.to_string().contains("no such folder"), "{e}");
        assert!(
            !dir.path().join("nope").exists(),
            "a reader created the folder"
        );
        let here = format!("file://{}", dir.path().display());
        Bucket::open_existing(&here, &S3Options::default()).unwrap();
        assert_eq!(b.relative(&b.path("streams/a/b")), "streams/a/b");
    }
}
