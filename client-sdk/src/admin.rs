//! [`Admin`]: administrative operations over the client protocol's `admin` op.
//!
//! Each method sends one [`AdminRequest`] as JSON and decodes the [`AdminResponse`]; a node's
//! refusal (`no such stream`, `stream already exists`, `invalid policy` …) is a
//! [`ClientError`] with its code. Requests about a stream go to its remembered owner (else the
//! bootstrap node) and follow "not owner" redirects. Admin requests are not retried otherwise:
//! creating a stream twice is not the same as creating it once.

use std::time::Duration;

use bytes::Bytes;
use dlog_api::StreamName;
use dlog_api::admin::{AdminRequest, AdminResponse, OffloadedSegment, ScrubResult};
use dlog_api::stream::{StreamInfo, StreamPolicy};
use dlog_api::wire::client::{MAX_ADMIN_JSON, Request, Response};

use crate::client::Client;
use crate::error::ClientError;
use crate::routing::unexpected;

/// Administrative operations on streams and subscriptions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Sends any admin request and returns the node's answer as it is.
    pub async fn request(&self, request: &AdminRequest) -> Result<AdminResponse, ClientError> {
        let json = serde_json::to_vec(request)
            .map_err(|e| ClientError::invalid(format!("encode admin request: {e}")))?;
        if json.len() > MAX_ADMIN_JSON {
            return Err(ClientError::invalid(format!(
                "admin request of {} bytes exceeds the limit of {MAX_ADMIN_JSON}",
                json.len()
            )));
        }
        let stream = stream_of(request);
        let answer = self
            .client
            .router()
            .call(stream, Request::Admin(Bytes::from(json)), Duration::ZERO)
            .await;
        match answer {
            Ok(Response::Admin(json)) => serde_json::from_slice(&json)
                .map_err(|e| ClientError::protocol(format!("decode admin answer: {e}"))),
            Ok(other) => Err(unexpected("admin request", &other)),
            Err(e) => Err(e),
        }
    }

    /// Creates `stream`. Without a policy the service's default policy applies; fields left
    /// at their defaults in a given one take the built-in defaults of [`StreamPolicy`].
    pub async fn create_stream(
        &self,
        stream: &StreamName,
        policy: Option<StreamPolicy>,
    ) -> Result<StreamInfo, ClientError> {
        let req = AdminRequest::CreateStream {
            stream: stream.clone(),
            policy,
        };
        match self.request(&req).await? {
            AdminResponse::Stream { info } => Ok(info),
            other => Err(wrong_answer("create_stream", &other)),
        }
    }

    /// Describes `stream`: its policy, offsets, owner and segments.
    pub async fn describe_stream(&self, stream: &StreamName) -> Result<StreamInfo, ClientError> {
        let req = AdminRequest::DescribeStream {
            stream: stream.clone(),
        };
        match self.request(&req).await? {
            AdminResponse::Stream { info } => Ok(info),
            other => Err(wrong_answer("describe_stream", &other)),
        }
    }

    /// The names of the streams of `namespace`, or of all streams.
    pub async fn list_streams(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<StreamName>, ClientError> {
        let req = AdminRequest::ListStreams {
            namespace: namespace.map(str::to_string),
        };
        match self.request(&req).await? {
            AdminResponse::Streams { streams } => Ok(streams),
            other => Err(wrong_answer("list_streams", &other)),
        }
    }

    /// Deletes `stream` with its segments and subscriptions.
    pub async fn delete_stream(&self, stream: &StreamName) -> Result<(), ClientError> {
        let req = AdminRequest::DeleteStream {
            stream: stream.clone(),
        };
        match self.request(&req).await? {
            AdminResponse::Done => Ok(()),
            other => Err(wrong_answer("delete_stream", &other)),
        }
    }

    /// Replaces the policy of `stream`.
    pub async fn update_policy(
        &self,
        stream: &StreamName,
        policy: StreamPolicy,
    ) -> Result<StreamInfo, ClientError> {
        let req = AdminRequest::UpdatePolicy {
            stream: stream.clone(),
            policy,
        };
        match self.request(&req).await? {
            AdminResponse::Stream { info } => Ok(info),
            other => Err(wrong_answer("update_policy", &other)),
        }
    }

    /// Moves the start of `stream` to `offset`; returns the new start offset.
    pub async fn truncate(&self, stream: &StreamName, offset: u64) -> Result<u64, ClientError> {
        let req = AdminRequest::Truncate {
            stream: stream.clone(),
            offset,
        };
        match self.request(&req).await? {
            AdminResponse::Truncated { start_offset } => Ok(start_offset),
            other => Err(wrong_answer("truncate", &other)),
        }
    }

    /// Records that `subscription` has consumed `stream` up to (not including) `offset`. The
    /// position only moves forward unless `force`.
    pub async fn commit_subscription(
        &self,
        stream: &StreamName,
        subscription: &str,
        offset: u64,
        force: bool,
    ) -> Result<(), ClientError> {
        let req = AdminRequest::CommitSubscription {
            stream: stream.clone(),
            subscription: subscription.to_string(),
            offset,
            force,
        };
        match self.request(&req).await? {
            AdminResponse::Done => Ok(()),
            other => Err(wrong_answer("commit_subscription", &other)),
        }
    }

    /// The committed position of `subscription` on `stream`, if it has one.
    pub async fn fetch_subscription(
        &self,
        stream: &StreamName,
        subscription: &str,
    ) -> Result<Option<u64>, ClientError> {
        let req = AdminRequest::FetchSubscription {
            stream: stream.clone(),
            subscription: subscription.to_string(),
        };
        match self.request(&req).await? {
            AdminResponse::Subscription { offset } => Ok(offset),
            other => Err(wrong_answer("fetch_subscription", &other)),
        }
    }

    /// Ends `stream` for good (nothing more can be appended); returns its final end offset.
    pub async fn end_stream(&self, stream: &StreamName) -> Result<u64, ClientError> {
        let req = AdminRequest::EndStream {
            stream: stream.clone(),
        };
        match self.request(&req).await? {
            AdminResponse::Ended { end_offset } => Ok(end_offset),
            other => Err(wrong_answer("end_stream", &other)),
        }
    }
}

impl Admin {
    /// Offloads `stream`'s sealed segments to the object tier and waits until they are
    /// committed; with `seal`, first seals the open segment so that everything appended so
    /// far goes. Returns the segments offloaded now and those whose bookie copies were
    /// deleted.
    pub async fn offload(
        &self,
        stream: &StreamName,
        seal: bool,
    ) -> Result<(Vec<OffloadedSegment>, Vec<u64>), ClientError> {
        let req = AdminRequest::Offload {
            stream: stream.clone(),
            seal,
        };
        match self.request(&req).await? {
            AdminResponse::Offloaded {
                segments,
                reclaimed,
            } => Ok((segments, reclaimed)),
            other => Err(wrong_answer("offload", &other)),
        }
    }

    /// Reconciles `stream`'s objects in the bucket with its newest manifest: orphans (objects
    /// no manifest lists) and missing objects. With `repair`, deletes the orphans older than
    /// `min_age` (the node's default, 15 minutes, if `None`) that no pending offload may
    /// still use.
    pub async fn scrub(
        &self,
        stream: &StreamName,
        repair: bool,
        min_age: Option<std::time::Duration>,
    ) -> Result<ScrubResult, ClientError> {
        let req = AdminRequest::Scrub {
            stream: stream.clone(),
            repair,
            min_age_ms: min_age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        match self.request(&req).await? {
            AdminResponse::Scrubbed { found } => Ok(found),
            other => Err(wrong_answer("scrub", &other)),
        }
    }
}

/// The stream a request is about, which decides where it is routed.
fn stream_of(request: &AdminRequest) -> Option<&StreamName> {
    match request {
        AdminRequest::CreateStream { stream, .. }
        | AdminRequest::DescribeStream { stream }
        | AdminRequest::DeleteStream { stream }
        | AdminRequest::UpdatePolicy { stream, .. }
        | AdminRequest::Truncate { stream, .. }
        | AdminRequest::CommitSubscription { stream, .. }
        | AdminRequest::FetchSubscription { stream, .. }
        | AdminRequest::EndStream { stream }
        | AdminRequest::Offload { stream, .. }
        | AdminRequest::Scrub { stream, .. } => Some(stream),
        AdminRequest::ListStreams { .. } => None,
    }
}

fn wrong_answer(op: &str, answer: &AdminResponse) -> ClientError {
    ClientError::protocol(format!("unexpected answer to {op}: {answer:?}"))
}
