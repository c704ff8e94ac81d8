//! `dlog-metadata`: where dlog keeps its metadata — bookie registrations, ledger and stream
//! metadata, id counters — behind one narrow trait, [`MetadataStore`], with two backends:
//!
//! - [`EtcdStore`] for clusters (a real etcd v3 cluster, keys under a root prefix);
//! - [`EmbeddedStore`] for a single process (`dlogd standalone`), persistent in a local folder.
//!
//! Both pass the same conformance suite (`conformance`, built with the `testing` feature).
//! [`open`] picks a backend from a URL: `etcd://host:2379,host2:2379/root` or a local folder
//! (`file:///path` or a plain path).

pub mod embedded;
pub mod error;
pub mod etcd;
pub mod ids;
pub mod lease;
pub mod store;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::{MetadataError, Result};
pub use etcd::{EtcdOptions, EtcdStore};
pub use lease::LeaseKeeper;
pub use store::{
    Expect, KeyValue, LeaseId, Listing, MetadataStore, Op, Revision, Watch, WatchEvent,
};

/// Where a metadata store is, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `etcd://host:port[,host:port…][/root]`: the root defaults to `/dlog/`.
    Etcd {
        endpoints: Vec<String>,
        root: String,
    },
    /// `file:///path` or a plain path: the embedded store in that folder.
    Embedded(std::path::PathBuf),
}

impl std::str::FromStr for Location {
    type Err = MetadataError;

    fn from_str(url: &str) -> Result<Location> {
        let bad = |why: &str| {
            MetadataError::Invalid(format!(
                "metadata location {url:?}: {why} (expected etcd://host:port[,host:port…][/root] or a folder)"
            ))
        };
        if let Some(rest) = url.strip_prefix("etcd://") {
            let (hosts, root) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/dlog/"),
            };
            let endpoints: Vec<String> = hosts.split(',').map(|h| h.trim().to_string()).collect();
            for e in &endpoints {
                let ok = e
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    return Err(bad(&format!("endpoint {e:?} is not host:port")));
                }
            }
            let mut root = root.to_string();
            if !root.ends_with('/') {
                root.push('/');
            }
            if root.contains("//") {
                return Err(bad("the root prefix has an empty segment"));
            }
            return Ok(Location::Etcd { endpoints, root });
        }
        if url.contains("://") && !url.starts_with("file://") {
            return Err(bad("unknown scheme"));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        Ok(Location::Embedded(path.into()))
    }
}

/// Opens the metadata store at `location`.
pub async fn open(location: &Location) -> Result<Arc<dyn MetadataStore>> {
    Ok(match location {
        Location::Etcd { endpoints, root } => {
            let mut o = EtcdOptions::new(endpoints.clone());
            o.root = root.clone();
            Arc::new(EtcdStore::connect(o).await?)
        }
        Location::Embedded(dir) => {
            Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_bad_ones_say_why() {
        assert_eq!(
            "etcd://a:2379,b:2379".parse::<Location>().unwrap(),
            Location::Etcd {
                endpoints: vec!["a:2379".into(), "b:2379".into()],
                root: "/dlog/".into()
            }
        );
        assert_eq!(
            "etcd://127.0.0.1:2379/prod/x".parse::<Location>().unwrap(),
            Location::Etcd {
                endpoints: vec!["127.0.0.1:2379".into()],
                root: "/prod/x/".into()
            }
        );
        assert_eq!(
            "file:///var/lib/dlog/meta".parse::<Location>().unwrap(),
            Location::Embedded("/var/lib/dlog/meta".into())
        );
        assert_eq!(
            "data/meta".parse::<Location>().unwrap(),
            Location::Embedded("data/meta".into())
        );
        for bad in [
            "etcd://",
            "etcd://host",
            "etcd://h:0",
            "etcd://h:99999",
            "etcd://h:1//x",
            "zk://h:1",
            "",
        ] {
            let e = bad.parse::<Location>().unwrap_err();
            assert!(matches!(e, MetadataError::Invalid(_)), "{bad}: {e}");
        }
    }
}
