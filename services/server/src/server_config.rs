//! The `dlogd server` config file (TOML): a raw serde struct that refuses unknown keys, checked
//! into [`ServerConfig`] with every default in one place. `dlogd server --check-config FILE`
//! runs exactly this and exits, so that deployment tooling can verify what it renders.
//!
//! ```toml
//! node = "svc-1"                          # default: the host name
//! metadata = "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379"
//! listen = "0.0.0.0:7070"                 # client protocol
//! advertise = "10.0.1.5:7070"             # required when listen is a wildcard address
//! http_listen = "0.0.0.0:7080"            # control plane
//! ownership_ttl = "10s"
//! retention_interval = "1m"               # how often retention policies are applied
//! max_inflight_bytes_per_connection = 67108864
//!
//! [default_policy]                         # streams created without a policy
//! ensemble = 3
//! write_quorum = 3
//! ack_quorum = 2
//!
//! [writer]
//! max_entry_bytes = 1048576
//! max_pending_bytes = 67108864
//!
//! [ledger]
//! request_timeout = "10s"
//!
//! [objects]                                # the object tier (omit: no offload)
//! url = "s3://my-bucket/dlog/prod"         # or file:///path
//! endpoint = "http://10.0.0.9:8333"        # S3-compatible services; default: AWS
//! region = "eu-west-1"                     # default: AWS_REGION
//! path_style = true                        # default: true with an endpoint, false for AWS
//! grace = "1m"                             # bookie copies kept after an offload
//! cache_bytes = 268435456                  # decoded row groups kept for readers
//! compact_below = 67108864                # smaller adjacent segments share one object (0: never)
//! multipart_threshold = 67108864          # larger objects are uploaded in parts
//! part_size = 16777216                    # 5 MiB to 5 GiB (S3's limits)
//! upload_concurrency = 4                  # parts in flight at once
//! ```
//!
//! S3 credentials come from the environment (`AWS_ACCESS_KEY_ID`, …) or the instance profile,
//! never from this file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use dlog_api::stream::StreamPolicy;
use dlog_log::WriterOptions;
use dlog_metadata::Location;
use serde::Deserialize;

use crate::service::ServiceOptions;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<String>,
    metadata: Option<String>,
    listen: Option<String>,
    advertise: Option<String>,
    http_listen: Option<String>,
    #[serde(default, with = "humantime_serde")]
    ownership_ttl: Option<Duration>,
    max_inflight_bytes_per_connection: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    retention_interval: Option<Duration>,
    default_policy: Option<StreamPolicy>,
    #[serde(default)]
    writer: RawWriter,
    #[serde(default)]
    ledger: RawLedger,
    objects: Option<RawObjects>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjects {
    url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    grace: Option<Duration>,
    cache_bytes: Option<u64>,
    compact_below: Option<u64>,
    multipart_threshold: Option<usize>,
    part_size: Option<usize>,
    upload_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWriter {
    max_entry_bytes: Option<usize>,
    max_pending_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
}

/// A checked server config.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub metadata: Location,
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub service: ServiceOptions,
    pub ledger_request_timeout: Duration,
}

impl ServerConfig {
    pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config {}", path.display()))?;
        ServerConfig::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<ServerConfig> {
        let raw: RawConfig = toml::from_str(text)?;
        let Some(metadata) = raw.metadata else {
            bail!("metadata: required (e.g. \"etcd://127.0.0.1:2379\")");
        };
        let metadata: Location = metadata.parse().context("metadata")?;
        let listen: SocketAddr = raw
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:7070")
            .parse()
            .context("listen: not an address (IP:PORT)")?;
        let http_listen: SocketAddr = raw
            .http_listen
            .as_deref()
            .unwrap_or("127.0.0.1:7080")
            .parse()
            .context("http_listen: not an address (IP:PORT)")?;
        let advertise = match raw.advertise {
            Some(a) => {
                a.parse::<SocketAddr>()
                    .map(|_| ())
                    .or_else(|_| a.rsplit_once(':').map(|_| ()).ok_or(()))
                    .map_err(|()| anyhow::anyhow!("advertise: {a:?} is not HOST:PORT"))?;
                a
            }
            None if listen.ip().is_unspecified() => {
                bail!("advertise: required when listen ({listen}) is a wildcard address")
            }
            None => listen.to_string(),
        };
        let node = match raw.node {
            Some(n) => n,
            None => hostname(),
        };
        if node.is_empty() || node.len() > 128 {
            bail!("node: must be 1 to 128 characters");
        }
        let defaults = ServiceOptions::default();
        let default_policy = raw.default_policy.unwrap_or_default();
        default_policy
            .validate()
            .map_err(|e| anyhow::anyhow!("default_policy: {e}"))?;
        let ttl = raw.ownership_ttl.unwrap_or(defaults.ownership_ttl);
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(300) {
            bail!("ownership_ttl: must be between 1s and 5m");
        }
        let wd = WriterOptions::default();
        let writer = WriterOptions {
            max_entry_bytes: raw.writer.max_entry_bytes.unwrap_or(wd.max_entry_bytes),
            max_pending_bytes: raw.writer.max_pending_bytes.unwrap_or(wd.max_pending_bytes),
            ..wd
        };
        if writer.max_entry_bytes < 1024 || writer.max_entry_bytes > 4 << 20 {
            bail!("writer.max_entry_bytes: must be between 1 KiB and 4 MiB");
        }
        if writer.max_pending_bytes < writer.max_entry_bytes {
            bail!("writer.max_pending_bytes: must be at least writer.max_entry_bytes");
        }
        let inflight = raw
            .max_inflight_bytes_per_connection
            .unwrap_or(defaults.max_inflight_bytes_per_connection);
        if inflight < 1 << 20 {
            bail!("max_inflight_bytes_per_connection: must be at least 1 MiB");
        }
        let retention_interval = raw
            .retention_interval
            .unwrap_or(defaults.retention_interval);
        if retention_interval < Duration::from_millis(100) {
            bail!("retention_interval: must be at least 100ms");
        }
        let timeout = raw
            .ledger
            .request_timeout
            .unwrap_or(Duration::from_secs(10));
        if timeout < Duration::from_millis(100) {
            bail!("ledger.request_timeout: must be at least 100ms");
        }
        let objects = match raw.objects {
            None => None,
            Some(o) => Some(objects_options(o)?),
        };
        Ok(ServerConfig {
            metadata,
            listen,
            http_listen,
            service: ServiceOptions {
                node,
                advertise,
                ownership_ttl: ttl,
                default_policy,
                writer,
                max_inflight_bytes_per_connection: inflight,
                retention_interval,
                objects,
                ..defaults
            },
            ledger_request_timeout: timeout,
        })
    }
}

fn objects_options(o: RawObjects) -> anyhow::Result<crate::service::ObjectsOptions> {
    let Some(url) = o.url else {
        bail!("objects.url: required (s3://bucket/prefix or file:///path)");
    };
    if !(url.starts_with("s3://") || url.starts_with("file:///")) {
        bail!("objects.url: {url:?} is neither s3://bucket/prefix nor file:///path");
    }
    if let Some(e) = &o.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        bail!("objects.endpoint: {e:?} is not an http:// or https:// URL");
    }
    let mut opts = crate::service::ObjectsOptions::new(url);
    opts.s3.endpoint = o.endpoint;
    opts.s3.region = o.region;
    opts.s3.path_style = o.path_style;
    if let Some(g) = o.grace {
        opts.grace = g;
    }
    if let Some(c) = o.cache_bytes {
        if c < 1 << 20 {
            bail!("objects.cache_bytes: must be at least 1 MiB");
        }
        opts.cache_bytes = c;
    }
    if let Some(c) = o.compact_below {
        opts.compact_below = c;
    }
    let u = &mut opts.upload;
    u.multipart_threshold = o.multipart_threshold.unwrap_or(u.multipart_threshold);
    u.part_size = o.part_size.unwrap_or(u.part_size);
    u.concurrency = o.upload_concurrency.unwrap_or(u.concurrency);
    u.validate().map_err(|e| {
        anyhow::anyhow!("objects.multipart_threshold/part_size/upload_concurrency: {e}")
    })?;
    Ok(opts)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "dlog-server".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_configs() {
        let c = ServerConfig::parse("metadata = \"etcd://127.0.0.1:2379\"").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(c.service.advertise, "127.0.0.1:7070");
        let c = ServerConfig::parse(
            r#"
            node = "svc-1"
            metadata = "etcd://10.0.0.1:2379,10.0.0.2:2379"
            listen = "0.0.0.0:7070"
            advertise = "svc-1.internal:7070"
            http_listen = "0.0.0.0:7080"
            ownership_ttl = "15s"
            [default_policy]
            ensemble = 5
            write_quorum = 3
            ack_quorum = 2
            [writer]
            max_entry_bytes = 524288
            [ledger]
            request_timeout = "5s"
            "#,
        )
        .unwrap();
        assert_eq!(c.service.node, "svc-1");
        assert_eq!(c.service.ownership_ttl, Duration::from_secs(15));
        assert_eq!(c.service.default_policy.ensemble, 5);
        assert_eq!(c.service.writer.max_entry_bytes, 524288);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("listen = \"x\"", "metadata"),
            ("metadata = \"etcd://h:1\"\nlisten = \"nope\"", "listen"),
            (
                "metadata = \"etcd://h:1\"\nlisten = \"0.0.0.0:1\"",
                "advertise",
            ),
            (
                "metadata = \"etcd://h:1\"\nownership_ttl = \"0s\"",
                "ownership_ttl",
            ),
            (
                "metadata = \"etcd://h:1\"\nownership_ttl = \"soon\"",
                "ownership_ttl",
            ),
            ("metadata = \"etcd://h:1\"\nbogus = 1", "bogus"),
            (
                "metadata = \"etcd://h:1\"\n[default_policy]\nack_quorum = 4",
                "ack_quorum",
            ),
            (
                "metadata = \"etcd://h:1\"\n[default_policy]\nacks = 4",
                "acks",
            ),
            (
                "metadata = \"etcd://h:1\"\n[writer]\nmax_entry_bytes = 1",
                "max_entry_bytes",
            ),
            (
                "metadata = \"etcd://h:1\"\n[objects]\nurl = \"file:///x\"\npart_size = 1024",
                "part_size",
            ),
            (
                "metadata = \"etcd://h:1\"\n[objects]\nurl = \"file:///x\"\nupload_concurrency = 0",
                "upload_concurrency",
            ),
        ] {
            let e = format!("{:#}", ServerConfig::parse(text).unwrap_err());
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }
}
