//! The log service: what a `dlogd server` (or `dlogd standalone`) node runs.
//!
//! - [`conn`]: the client protocol on TCP — handshake, pipelined requests, back-pressure.
//! - [`ownership`]: which node writes which stream, redirects, takeover after a node dies.
//! - [`admin`]: administrative operations, shared by the client protocol and the HTTP API.
//!
//! [`Service`] holds what every connection and HTTP handler shares.

use std::sync::Arc;
use std::time::Duration;

use dlog_api::stream::StreamPolicy;
use dlog_ledger::registry::list_bookies;
use dlog_log::{Log, WriterOptions};

use crate::metrics::{Gauges, Metrics};

pub mod admin;
pub mod conn;
pub mod ownership;

pub use ownership::Ownership;

/// Settings of a service node.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// This node's name in ownership records and logs.
    pub node: String,
    /// The client address other nodes redirect clients to.
    pub advertise: String,
    /// How long a dead node's streams stay owned before another node may take them.
    pub ownership_ttl: Duration,
    /// The policy of streams created without one.
    pub default_policy: StreamPolicy,
    pub writer: WriterOptions,
    /// Request bytes a connection may have in flight before the node stops reading from it.
    pub max_inflight_bytes_per_connection: usize,
    /// The largest frame accepted.
    pub max_frame_len: usize,
    /// How often the node applies every stream's retention policy.
    pub retention_interval: Duration,
    /// The object tier; without it, nothing is offloaded.
    pub objects: Option<ObjectsOptions>,
}

/// Where and how the node offloads sealed segments and reads offloaded ones.
#[derive(Debug, Clone)]
pub struct ObjectsOptions {
    /// `file:///path` or `s3://bucket/prefix`.
    pub url: String,
    pub s3: dlog_objects::S3Options,
    /// How long a segment's bookie copy stays after its offload.
    pub grace: Duration,
    /// Bytes of decoded row groups kept for readers.
    pub cache_bytes: u64,
    /// Adjacent sealed segments smaller than this go into one object; 0 offloads each alone.
    pub compact_below: u64,
    /// How objects are uploaded (large ones in parts).
    pub upload: dlog_objects::UploadOptions,
}

impl ObjectsOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ObjectsOptions {
            url: url.into(),
            s3: dlog_objects::S3Options::default(),
            grace: Duration::from_secs(60),
            cache_bytes: 256 << 20,
            compact_below: dlog_offloader::OffloadOptions::default().compact_below,
            upload: dlog_objects::UploadOptions::default(),
        }
    }
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            node: "dlog-1".into(),
            advertise: "127.0.0.1:7070".into(),
            ownership_ttl: Duration::from_secs(10),
            default_policy: StreamPolicy::default(),
            writer: WriterOptions::default(),
            max_inflight_bytes_per_connection: 64 << 20,
            max_frame_len: dlog_api::wire::DEFAULT_MAX_FRAME_LEN,
            retention_interval: Duration::from_secs(60),
            objects: None,
        }
    }
}

/// A service node's shared state.
#[derive(Debug)]
pub struct Service {
    pub log: Log,
    pub opts: ServiceOptions,
    pub ownership: Ownership,
    pub metrics: Arc<Metrics>,
    /// Present when the node has an object tier.
    pub offloader: Option<dlog_offloader::Offloader>,
}

impl Service {
    /// A service over `log`; with `opts.objects`, the log reads offloaded segments from that
    /// bucket and the node offloads to it.
    pub fn new(log: Log, opts: ServiceOptions) -> Result<Arc<Service>, dlog_objects::ObjectError> {
        let (log, offloader) = match &opts.objects {
            Some(o) => {
                let bucket = dlog_objects::Bucket::open(&o.url, &o.s3)?;
                let log = log.with_objects(dlog_objects::ObjectReader::new(
                    bucket.clone(),
                    o.cache_bytes,
                ));
                let off = dlog_offloader::Offloader::new(
                    log.clone(),
                    bucket,
                    dlog_offloader::OffloadOptions {
                        grace: o.grace,
                        compact_below: o.compact_below,
                        upload: o.upload.clone(),
                        ..Default::default()
                    },
                );
                (log, Some(off))
            }
            None => (log, None),
        };
        let metrics = Arc::new(Metrics::default());
        let ownership = Ownership::new(
            log.clone(),
            opts.node.clone(),
            opts.advertise.clone(),
            opts.ownership_ttl,
            opts.writer.clone(),
            metrics.clone(),
        );
        Ok(Arc::new(Service {
            log,
            opts,
            ownership,
            metrics,
            offloader,
        }))
    }

    /// Applies every stream's retention policy every `retention_interval` until `stop`.
    /// Several nodes may do this at once: each deletion is a compare-and-set, and only the
    /// node whose commit wins deletes the segments' ledgers.
    pub async fn retention_loop(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.opts.retention_interval) => {}
            }
            let streams = match self.log.list_streams(None).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: list streams");
                    continue;
                }
            };
            for s in streams {
                self.offload_by_policy(&s).await;
                match self.log.enforce_retention(&s).await {
                    Ok(gone) if !gone.is_empty() => {
                        self.metrics.retained_segments.add(gone.len() as u64);
                        tracing::info!(stream = %s, segments = gone.len(), "retention deleted segments");
                        self.trim_objects(&s).await;
                    }
                    Ok(_) | Err(dlog_log::LogError::Conflict(_)) => {}
                    Err(e) => tracing::warn!(stream = %s, error = %e, "retention"),
                }
            }
        }
    }

    /// Offloads the stream's segments sealed longer than its policy's `offload_after_ms`, and
    /// reclaims bookie copies past their grace period. Done by the stream's owner, or by any
    /// node when nobody owns it (every step is idempotent and guarded, so two nodes at once
    /// only duplicate work).
    pub async fn offload_by_policy(&self, stream: &dlog_api::StreamName) {
        let Some(off) = &self.offloader else {
            return;
        };
        let result = async {
            let state = self.log.load(stream).await?;
            let Some(after) = state.record.policy.offload_after_ms else {
                return Ok(());
            };
            if let Some(o) = self.ownership.owner(stream).await?
                && o.node != self.opts.node
            {
                return Ok(());
            }
            let now = self.log.now_ms();
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let done = off
                .offload_stream(stream, |seg| {
                    seg.sealed_ms
                        .is_some_and(|t| t.saturating_add(after) <= now)
                })
                .await?;
            if !done.is_empty() {
                self.metrics.offloaded_segments.add(done.len() as u64);
                self.metrics
                    .offloaded_bytes
                    .add(done.iter().map(|d| d.size).sum::<u64>());
                tracing::info!(stream = %stream, segments = done.len(), "offloaded by policy");
            }
            off.reclaim(stream).await.map(|_| ())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(stream = %stream, error = %e, "offload by policy");
        }
    }

    /// Makes the object tier follow the stream's start (truncation, retention). A failure is
    /// logged: the next truncation or retention pass tries again.
    pub async fn trim_objects(&self, stream: &dlog_api::StreamName) {
        if let Some(off) = &self.offloader
            && let Err(e) = off.trim(stream).await
        {
            tracing::warn!(stream = %stream, error = %e, "delete objects below the stream's start");
        }
    }

    /// The metrics page: counters plus what the cluster looks like now.
    pub async fn render_metrics(&self) -> String {
        let mut g = Gauges {
            owned_streams: self.ownership.owned() as u64,
            bookies: Vec::new(),
        };
        if let Ok(regs) = list_bookies(&**self.log.store()).await {
            g.bookies = regs
                .into_iter()
                .map(|r| {
                    (
                        r.id.to_string(),
                        format!("{:?}", r.state).to_lowercase(),
                        r.disk_used,
                        r.disk_total,
                    )
                })
                .collect();
        }
        self.metrics.render(&g)
    }
}
