//! Streams as clients see them: names, policies, and the descriptions the service returns.
//!
//! These are the models of the admin operations (the client protocol's `admin` op and the
//! control plane carry them as JSON), shared by the service and the SDK. Validation lives
//! here so that the client, the service and the control plane refuse the same things with the
//! same words.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::InvalidId;
use crate::record::{Compression, DEFAULT_MAX_PAYLOAD};

/// Longest namespace or name part.
pub const MAX_NAME_PART: usize = 128;

/// A stream's full name, `namespace/name`, each part `[A-Za-z0-9._-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName {
    namespace: String,
    name: String,
}

/// Checks one part of a stream name (also a namespace on its own).
pub fn validate_name_part(what: &'static str, s: &str) -> Result<(), InvalidId> {
    let err = |reason| InvalidId {
        what,
        value: s.to_string(),
        reason,
    };
    if s.is_empty() || s.len() > MAX_NAME_PART {
        return Err(err("must be 1 to 128 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(err("only letters, digits, '.', '_' and '-' are allowed"));
    }
    if s == "." || s == ".." {
        return Err(err("must not be '.' or '..'"));
    }
    Ok(())
}

impl StreamName {
    pub fn new(namespace: &str, name: &str) -> Result<StreamName, InvalidId> {
        validate_name_part("namespace", namespace)?;
        validate_name_part("stream name", name)?;
        Ok(StreamName {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for StreamName {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) => StreamName::new(ns, name),
            None => Err(InvalidId {
                what: "stream",
                value: s.to_string(),
                reason: "must be NAMESPACE/NAME",
            }),
        }
    }
}

impl TryFrom<String> for StreamName {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<StreamName> for String {
    fn from(n: StreamName) -> String {
        n.to_string()
    }
}

/// How a stream is stored: replication, segment rolling, retention and record limits. Every
/// field has a default, so `{}` is a valid policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamPolicy {
    /// Bookies per segment ledger (E).
    pub ensemble: u8,
    /// Copies of each entry (Qw).
    pub write_quorum: u8,
    /// Copies that must be durable before an append is acknowledged (Qa).
    pub ack_quorum: u8,
    /// A segment is sealed and a new one opened once it holds this many bytes.
    pub segment_bytes: u64,
    /// … or once it is this old (milliseconds).
    pub segment_age_ms: u64,
    /// Whole segments older than this are deleted (milliseconds; none: keep forever).
    pub retention_age_ms: Option<u64>,
    /// Oldest whole segments are deleted while the stream holds more than this (bytes).
    pub retention_bytes: Option<u64>,
    /// Retention never deletes what an active subscription has not yet read.
    pub retain_for_subscriptions: bool,
    /// Largest payload of one record.
    pub max_record_bytes: u32,
    /// Compression of the record batches stored in entries.
    pub compression: Compression,
    /// Sealed segments are offloaded to the object tier once sealed this long (milliseconds;
    /// none: only on demand, `dlog offload`). Needs a node with an object store.
    pub offload_after_ms: Option<u64>,
}

/// Smallest allowed roll size: a segment smaller than this would roll on nearly every batch.
pub const MIN_SEGMENT_BYTES: u64 = 1 << 20;
/// Largest allowed record payload: bounded by the entry and frame limits.
pub const MAX_RECORD_BYTES: u32 = 4 << 20;

impl Default for StreamPolicy {
    fn default() -> Self {
        StreamPolicy {
            ensemble: 3,
            write_quorum: 3,
            ack_quorum: 2,
            segment_bytes: 256 << 20,
            segment_age_ms: 60 * 60 * 1000,
            retention_age_ms: None,
            retention_bytes: None,
            retain_for_subscriptions: false,
            max_record_bytes: DEFAULT_MAX_PAYLOAD as u32,
            compression: Compression::None,
            offload_after_ms: None,
        }
    }
}

/// Why a policy was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {field} {problem}")]
pub struct InvalidPolicy {
    pub field: &'static str,
    pub problem: String,
}

impl StreamPolicy {
    /// Checks the policy's own consistency (not whether the cluster has enough bookies).
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let bad = |field, problem: String| Err(InvalidPolicy { field, problem });
        if self.ack_quorum == 0 {
            return bad("ack_quorum", "must be at least 1".into());
        }
        if self.ack_quorum > self.write_quorum {
            return bad(
                "ack_quorum",
                format!(
                    "({}) must not exceed write_quorum ({})",
                    self.ack_quorum, self.write_quorum
                ),
            );
        }
        if self.write_quorum > self.ensemble {
            return bad(
                "write_quorum",
                format!(
                    "({}) must not exceed ensemble ({})",
                    self.write_quorum, self.ensemble
                ),
            );
        }
        if self.ensemble > 32 {
            return bad(
                "ensemble",
                format!("({}) must be at most 32", self.ensemble),
            );
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return bad(
                "segment_bytes",
                format!(
                    "({}) must be at least {MIN_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_age_ms < 1000 {
            return bad(
                "segment_age_ms",
                format!("({}) must be at least 1000", self.segment_age_ms),
            );
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_RECORD_BYTES {
            return bad(
                "max_record_bytes",
                format!(
                    "({}) must be between 1 and {MAX_RECORD_BYTES}",
                    self.max_record_bytes
                ),
            );
        }
        if self.retention_age_ms == Some(0) {
            return bad(
                "retention_age_ms",
                "must be positive (omit it to keep forever)".into(),
            );
        }
        if self.retention_bytes == Some(0) {
            return bad(
                "retention_bytes",
                "must be positive (omit it to keep forever)".into(),
            );
        }
        Ok(())
    }
}

/// Where a segment's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    /// Being written: its end is the ledger's LAC.
    Open,
    /// Closed at its true end; immutable.
    Sealed,
}

/// One segment as the service describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Sequence number within the stream: 0, 1, 2 …
    pub seq: u64,
    pub state: SegmentState,
    /// Where its records are read from: `bookies` while hot, `objects` once offloaded (its
    /// bookie copy may remain for a grace period: `bookies+objects`).
    pub tier: String,
    /// The object holding it, once offloaded (relative to the bucket's prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// That object's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_bytes: Option<u64>,
    pub ledger: u64,
    /// The writer epoch that wrote it.
    pub epoch: u64,
    pub first_offset: u64,
    /// Offset after its last record (exclusive); for an open segment, as of the last seal or
    /// roll (the live end is the stream's `end_offset`).
    pub end_offset: u64,
    pub bytes: u64,
    pub created_ms: i64,
    pub sealed_ms: Option<i64>,
    pub first_timestamp_ms: Option<i64>,
    pub last_timestamp_ms: Option<i64>,
    pub min_txid: Option<u64>,
    pub max_txid: Option<u64>,
}

/// A stream as the service describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub stream: StreamName,
    pub policy: StreamPolicy,
    /// The current writer epoch (0 before any writer).
    pub epoch: u64,
    /// First readable offset (moves up with truncation and retention).
    pub start_offset: u64,
    /// Offset after the last acknowledged record, as far as the responder knows.
    pub end_offset: u64,
    pub created_ms: i64,
    /// The service node that owns the stream's writer, if any.
    pub owner: Option<String>,
    pub segments: Vec<SegmentInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n: StreamName = "orders.eu/payments-v2_x".parse().unwrap();
        assert_eq!(n.namespace(), "orders.eu");
        assert_eq!(n.name(), "payments-v2_x");
        assert_eq!(n.to_string(), "orders.eu/payments-v2_x");
        for bad in [
            "noslash", "/x", "x/", "a/b/c", "a b/c", "a/..", "./a", "é/x",
        ] {
            assert!(bad.parse::<StreamName>().is_err(), "{bad}");
        }
        let long = format!("a/{}", "x".repeat(129));
        assert!(long.parse::<StreamName>().is_err());
        let json = serde_json_like(&n);
        assert_eq!(json, "orders.eu/payments-v2_x");
    }

    fn serde_json_like(n: &StreamName) -> String {
        String::from(n.clone())
    }

    #[test]
    fn policy_validation_names_the_field() {
        assert!(StreamPolicy::default().validate().is_ok());
        let p = StreamPolicy {
            ack_quorum: 3,
            write_quorum: 2,
            ..Default::default()
        };
        let e = p.validate().unwrap_err();
        assert_eq!(e.field, "ack_quorum");
        assert!(
            e.to_string().contains("must not exceed write_quorum"),
            "{e}"
        );
        let p = StreamPolicy {
            write_quorum: 4,
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().field, "write_quorum");
        let p = StreamPolicy {
            segment_bytes: 10,
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().field, "segment_bytes");
        let p = StreamPolicy {
            max_record_bytes: 0,
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().field, "max_record_bytes");
    }
}
