//! Admin requests travel as JSON and come back typed.

use dlog_api::ErrorCode;
use dlog_api::admin::{AdminRequest, AdminResponse};
use dlog_api::stream::{StreamInfo, StreamPolicy};
use dlog_api::wire::client::{Request, Response, ResponseError};

use super::fake_server::{Action, FakeServer, now, reply};
use super::{connect, stream};

fn info(policy: StreamPolicy) -> StreamInfo {
    StreamInfo {
        stream: stream(),
        policy,
        epoch: 0,
        start_offset: 0,
        end_offset: 0,
        created_ms: 1,
        owner: None,
        segments: Vec::new(),
    }
}

#[tokio::test]
async fn every_operation_round_trips() {
    let fake = FakeServer::start(|call| {
        let Request::Admin(json) = call.request else {
            return now(Action::Ignore);
        };
        let answer = match serde_json::from_slice::<AdminRequest>(&json).unwrap() {
            AdminRequest::CreateStream { policy, .. } => AdminResponse::Stream {
                info: info(policy.unwrap_or_default()),
            },
            AdminRequest::DescribeStream { stream } if stream.name() == "missing" => {
                return reply(Err(ResponseError::new(
                    ErrorCode::NoSuchStream,
                    format!("no stream {stream}"),
                )));
            }
            AdminRequest::DescribeStream { .. } => AdminResponse::Stream {
                info: info(StreamPolicy::default()),
            },
            AdminRequest::UpdatePolicy { policy, .. } => {
                AdminResponse::Stream { info: info(policy) }
            }
            AdminRequest::ListStreams { namespace } => AdminResponse::Streams {
                streams: if namespace.as_deref() == Some("ns") {
                    vec![stream()]
                } else {
                    Vec::new()
                },
            },
            AdminRequest::DeleteStream { .. } | AdminRequest::CommitSubscription { .. } => {
                AdminResponse::Done
            }
            AdminRequest::Truncate { offset, .. } => AdminResponse::Truncated {
                start_offset: offset,
            },
            AdminRequest::FetchSubscription { subscription, .. } => AdminResponse::Subscription {
                offset: (subscription == "known").then_some(12),
            },
            AdminRequest::EndStream { .. } => AdminResponse::Ended { end_offset: 77 },
            AdminRequest::Offload { seal, .. } => AdminResponse::Offloaded {
                segments: vec![dlog_api::admin::OffloadedSegment {
                    seq: 0,
                    segments: vec![0],
                    key: "streams/ns/s/dt=1970-01-01/a.parquet".into(),
                    first_offset: 0,
                    end_offset: 10,
                    bytes: 99,
                }],
                reclaimed: if seal { vec![0] } else { Vec::new() },
            },
            AdminRequest::Scrub {
                repair, min_age_ms, ..
            } => AdminResponse::Scrubbed {
                found: dlog_api::admin::ScrubResult {
                    orphans: vec!["o".into()],
                    deleted: if repair && min_age_ms == Some(0) {
                        vec!["o".into()]
                    } else {
                        Vec::new()
                    },
                    missing: Vec::new(),
                },
            },
        };
        reply(Ok(Response::Admin(
            serde_json::to_vec(&answer).unwrap().into(),
        )))
    })
    .await;
    let client = connect(&fake.addr).await;
    let admin = client.admin();
    let s = stream();
    let policy = StreamPolicy {
        ack_quorum: 1,
        ..StreamPolicy::default()
    };
    assert_eq!(
        admin
            .create_stream(&s, Some(policy.clone()))
            .await
            .unwrap()
            .policy,
        policy
    );
    assert_eq!(
        admin.create_stream(&s, None).await.unwrap().policy,
        StreamPolicy::default()
    );
    assert_eq!(admin.describe_stream(&s).await.unwrap().stream, s);
    let err = admin
        .describe_stream(&"ns/missing".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoSuchStream));
    assert_eq!(
        admin
            .update_policy(&s, policy.clone())
            .await
            .unwrap()
            .policy,
        policy
    );
    assert_eq!(
        admin.list_streams(Some("ns")).await.unwrap(),
        vec![s.clone()]
    );
    assert!(admin.list_streams(None).await.unwrap().is_empty());
    let found = admin.scrub(&s, false, None).await.unwrap();
    assert_eq!((found.orphans.len(), found.deleted.len()), (1, 0));
    let found = admin
        .scrub(&s, true, Some(std::time::Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(found.deleted, ["o"]);
    admin.delete_stream(&s).await.unwrap();
    assert_eq!(admin.truncate(&s, 5).await.unwrap(), 5);
    admin
        .commit_subscription(&s, "known", 12, false)
        .await
        .unwrap();
    assert_eq!(
        admin.fetch_subscription(&s, "known").await.unwrap(),
        Some(12)
    );
    assert_eq!(admin.fetch_subscription(&s, "new").await.unwrap(), None);
    assert_eq!(admin.end_stream(&s).await.unwrap(), 77);
    let (segs, reclaimed) = admin.offload(&s, true).await.unwrap();
    assert_eq!((segs.len(), segs[0].bytes, reclaimed), (1, 99, vec![0]));
}

#[tokio::test]
async fn a_wrong_answer_is_a_protocol_error() {
    let fake =
        FakeServer::start(|_| reply(Ok(Response::Admin("{\"result\":\"done\"}".into())))).await;
    let client = connect(&fake.addr).await;
    let err = client.admin().describe_stream(&stream()).await.unwrap_err();
    assert_eq!(err.kind(), dlog_api::ErrorKind::Internal);
    let fake = FakeServer::start(|_| reply(Ok(Response::Admin("not json".into())))).await;
    let client = connect(&fake.addr).await;
    let err = client.admin().list_streams(None).await.unwrap_err();
    assert!(err.to_string().contains("decode admin answer"), "{err}");
}
