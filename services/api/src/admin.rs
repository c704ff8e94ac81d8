//! Administrative operations: the JSON carried by the client protocol's `admin` op (and mirrored
//! by the control plane's HTTP routes).
//!
//! A request is an object tagged by `op`; the answer is an object tagged by `result`:
//!
//! ```json
//! {"op": "create_stream", "stream": "ns/name", "policy": {"ack_quorum": 2}}
//! {"result": "stream", "info": {...}}
//! ```

use serde::{Deserialize, Serialize};

use crate::stream::{StreamInfo, StreamName, StreamPolicy};

/// An administrative request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Create a stream. Without a policy, the service's default policy applies (for
    /// `dlogd standalone` it fits its number of bookies); fields missing from a given policy
    /// take the built-in defaults of [`StreamPolicy`].
    CreateStream {
        stream: StreamName,
        #[serde(default)]
        policy: Option<StreamPolicy>,
    },
    /// Describe a stream with its segments.
    DescribeStream { stream: StreamName },
    /// Stream names, of one namespace or all.
    ListStreams {
        #[serde(default)]
        namespace: Option<String>,
    },
    /// Delete a stream, its segments and subscriptions.
    DeleteStream { stream: StreamName },
    /// Replace a stream's policy.
    UpdatePolicy {
        stream: StreamName,
        policy: StreamPolicy,
    },
    /// Move the stream's start to `offset`, deleting whole segments below it.
    Truncate { stream: StreamName, offset: u64 },
    /// Record a subscription's position; it only moves forward unless `force`.
    CommitSubscription {
        stream: StreamName,
        subscription: String,
        offset: u64,
        #[serde(default)]
        force: bool,
    },
    /// A subscription's committed position.
    FetchSubscription {
        stream: StreamName,
        subscription: String,
    },
    /// Seal the stream for good: nothing more is ever appended.
    EndStream { stream: StreamName },
    /// Offload the stream's sealed segments to the object tier now, waiting until each is
    /// committed; with `seal`, first seal the open segment so that everything appended so far
    /// is offloaded. Bookie copies past their grace period are deleted too.
    Offload {
        stream: StreamName,
        #[serde(default)]
        seal: bool,
    },
    /// Reconcile the stream's objects in the bucket with its newest manifest: report orphans
    /// (objects no manifest lists) and missing objects; with `repair`, delete the orphans
    /// older than `min_age_ms` (default 15 minutes) that no pending offload may still use.
    Scrub {
        stream: StreamName,
        #[serde(default)]
        repair: bool,
        #[serde(default)]
        min_age_ms: Option<u64>,
    },
}

/// What a scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubResult {
    /// Objects under the stream's folder that the newest manifest does not list.
    pub orphans: Vec<String>,
    /// The orphans deleted (with `repair`).
    pub deleted: Vec<String>,
    /// Objects the manifest lists that the bucket lacks or holds at another size: lost data.
    pub missing: Vec<String>,
}

/// One object an offload wrote: one segment, or several small adjacent ones compacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffloadedSegment {
    /// The first segment it holds.
    pub seq: u64,
    /// Every segment it holds.
    #[serde(default)]
    pub segments: Vec<u64>,
    /// The object, relative to the bucket's prefix.
    pub key: String,
    pub first_offset: u64,
    pub end_offset: u64,
    /// Object bytes.
    pub bytes: u64,
}

/// The answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminResponse {
    /// `create_stream`, `describe_stream`, `update_policy`.
    Stream { info: StreamInfo },
    /// `list_streams`.
    Streams { streams: Vec<StreamName> },
    /// `truncate`: the new start offset.
    Truncated { start_offset: u64 },
    /// `fetch_subscription`: the position, if committed.
    Subscription { offset: Option<u64> },
    /// `end_stream`: the final end offset.
    Ended { end_offset: u64 },
    /// `offload`: the segments offloaded by this request (none if all were already), and
    /// the sequence numbers of segments whose bookie copies were deleted.
    Offloaded {
        segments: Vec<OffloadedSegment>,
        reclaimed: Vec<u64>,
    },
    /// `scrub`.
    Scrubbed {
        #[serde(flatten)]
        found: ScrubResult,
    },
    /// `delete_stream`, `commit_subscription`.
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        let r: AdminRequest = serde_json::from_str(
            r#"{"op":"create_stream","stream":"ns/s","policy":{"ack_quorum":1}}"#,
        )
        .unwrap();
        match r {
            AdminRequest::CreateStream { stream, policy } => {
                let policy = policy.unwrap();
                assert_eq!(stream.to_string(), "ns/s");
                assert_eq!(policy.ack_quorum, 1);
                assert_eq!(policy.write_quorum, 3);
            }
            other => panic!("{other:?}"),
        }
        let r: AdminRequest =
            serde_json::from_str(r#"{"op":"create_stream","stream":"ns/s"}"#).unwrap();
        assert!(matches!(r, AdminRequest::CreateStream { policy: None, .. }));
        for bad in [
            r#"{"op":"create_stream","stream":"nope"}"#,
            r#"{"op":"explode"}"#,
            r#"{"op":"truncate","stream":"a/b"}"#,
            r#"{"op":"create_stream","stream":"a/b","policy":{"acks":1}}"#,
            r#"{"op":"list_streams","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<AdminRequest>(bad).is_err(), "{bad}");
        }
        let a = serde_json::to_string(&AdminResponse::Truncated { start_offset: 5 }).unwrap();
        assert_eq!(a, r#"{"result":"truncated","start_offset":5}"#);
        assert_eq!(
            serde_json::to_string(&AdminResponse::Done).unwrap(),
            r#"{"result":"done"}"#
        );
    }
}
