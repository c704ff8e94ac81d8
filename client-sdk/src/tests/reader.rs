//! The reader: start resolution, skipping below the asked offset, stopping when caught up,
//! following the tail, retries and bad answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dlog_api::admin::{AdminRequest, AdminResponse};
use dlog_api::record::{RecordSetLimits, encode_record_set};
use dlog_api::stream::{StreamInfo, StreamPolicy};
use dlog_api::wire::client::{Append, Read, Records, Request, Response, ResponseError, SeekBy};
use dlog_api::{Compression, ErrorCode, Offset, Record};
use futures::StreamExt;

use super::fake_server::{Action, FakeLog, FakeServer, Reaction, now, reply, serve_log};
use super::{connect, stream};
use crate::{ClientError, ReadRecord, Reader, ReaderOptions, StartAt};

/// Appends one batch of records named `r{first}..` to the fake log.
fn put(log: &FakeLog, first: u64, n: u64) {
    let records: Vec<Record> = (first..first + n)
        .map(|i| Record::new(format!("r{i}")))
        .collect();
    let set = encode_record_set(&records, Compression::Lz4, &RecordSetLimits::default()).unwrap();
    log.append(&Append {
        stream: stream(),
        producer_id: 0,
        sequence: 0,
        records: set,
    })
    .unwrap();
}

async fn collect(reader: &mut Reader) -> Vec<Result<ReadRecord, ClientError>> {
    let mut out = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .expect("the reader ends")
    {
        out.push(r);
    }
    out
}

fn offsets(records: &[Result<ReadRecord, ClientError>]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r.as_ref().expect("a record").offset)
        .collect()
}

fn from(offset: u64) -> ReaderOptions {
    ReaderOptions {
        start: StartAt::Offset(offset),
        ..ReaderOptions::default()
    }
}

#[tokio::test]
async fn skips_records_below_the_offset_and_stops_when_caught_up() {
    let log = FakeLog::new();
    put(&log, 0, 3);
    put(&log, 3, 3);
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let mut reader = client.reader(&stream(), from(4));
    assert_eq!(reader.position(), Some(4));
    let got = collect(&mut reader).await;
    assert_eq!(offsets(&got), vec![4, 5]);
    let payloads: Vec<Bytes> = got.into_iter().map(|r| r.unwrap().record.payload).collect();
    assert_eq!(payloads, vec![Bytes::from("r4"), Bytes::from("r5")]);
    assert!(reader.caught_up());
    assert_eq!(reader.position(), Some(6));
}

#[tokio::test]
async fn reads_in_several_requests_when_answers_are_small() {
    let log = FakeLog::new();
    for i in 0..10 {
        put(&log, i * 2, 2);
    }
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let mut reader = client.reader(
        &stream(),
        ReaderOptions {
            max_bytes: 1,
            ..from(0)
        },
    );
    let got = collect(&mut reader).await;
    assert_eq!(offsets(&got), (0..20).collect::<Vec<_>>());
    assert!(fake.calls().len() >= 10);
}

#[tokio::test]
async fn following_reader_sees_new_records() {
    let log = FakeLog::new();
    put(&log, 0, 1);
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let mut reader = client.reader(
        &stream(),
        ReaderOptions {
            follow: true,
            wait: Duration::from_millis(200),
            ..from(0)
        },
    );
    let first = reader.next().await.unwrap().unwrap();
    assert_eq!(first.offset, 0);
    let l = log.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        put(&l, 1, 2);
    });
    for expected in [1, 2] {
        let next = tokio::time::timeout(Duration::from_secs(5), reader.next())
            .await
            .expect("a new record arrives")
            .unwrap()
            .unwrap();
        assert_eq!(next.offset, expected);
    }
    assert!(reader.caught_up());
}

/// A node that serves `log`, answers describes with `start..end` and seeks with `seek_to`.
fn node(
    log: Arc<FakeLog>,
    start: u64,
    seek_to: u64,
) -> impl Fn(super::fake_server::Call) -> Reaction + Send + Sync + 'static {
    let serve = serve_log(log.clone());
    move |call| match &call.request {
        Request::Admin(json) => {
            let req: AdminRequest = serde_json::from_slice(json).unwrap();
            assert!(matches!(req, AdminRequest::DescribeStream { .. }));
            let info = StreamInfo {
                stream: stream(),
                policy: StreamPolicy::default(),
                epoch: 1,
                start_offset: start,
                end_offset: log.end(),
                created_ms: 0,
                owner: None,
                segments: Vec::new(),
            };
            let json = serde_json::to_vec(&AdminResponse::Stream { info }).unwrap();
            reply(Ok(Response::Admin(json.into())))
        }
        Request::Seek(_) => reply(Ok(Response::Position(Offset(seek_to)))),
        _ => serve(call),
    }
}

#[tokio::test]
async fn starts_are_resolved_with_describe_and_seek() {
    let log = FakeLog::new();
    put(&log, 0, 4);
    put(&log, 4, 4);
    let fake = FakeServer::start(node(log.clone(), 4, 6)).await;
    let client = connect(&fake.addr).await;
    let read_from = |start| ReaderOptions {
        start,
        ..ReaderOptions::default()
    };

    let mut reader = client.reader(&stream(), read_from(StartAt::Beginning));
    assert_eq!(
        reader.position(),
        None,
        "not resolved before the first poll"
    );
    assert_eq!(offsets(&collect(&mut reader).await), vec![4, 5, 6, 7]);

    let mut reader = client.reader(&stream(), read_from(StartAt::End));
    assert!(collect(&mut reader).await.is_empty());
    assert_eq!(reader.position(), Some(8));

    let mut reader = client.reader(&stream(), read_from(StartAt::Timestamp(1_700_000_000_000)));
    assert_eq!(offsets(&collect(&mut reader).await), vec![6, 7]);
    let mut reader = client.reader(&stream(), read_from(StartAt::Txid(99)));
    assert_eq!(offsets(&collect(&mut reader).await), vec![6, 7]);
    let seeks: Vec<SeekBy> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c.request {
            Request::Seek(s) => Some(s.by),
            _ => None,
        })
        .collect();
    assert_eq!(
        seeks,
        vec![SeekBy::Timestamp(1_700_000_000_000), SeekBy::Txid(99)]
    );
}

#[tokio::test]
async fn retryable_read_errors_are_retried() {
    let log = FakeLog::new();
    put(&log, 0, 2);
    let failures = Arc::new(AtomicUsize::new(0));
    let f = failures.clone();
    let serve = serve_log(log.clone());
    let fake = FakeServer::start(move |call| {
        if f.fetch_add(1, Ordering::SeqCst) < 2 {
            reply(Err(ResponseError::new(
                ErrorCode::StreamUnavailable,
                "try later",
            )))
        } else {
            serve(call)
        }
    })
    .await;
    let client = connect(&fake.addr).await;
    let mut reader = client.reader(&stream(), from(0));
    assert_eq!(offsets(&collect(&mut reader).await), vec![0, 1]);
}

#[tokio::test]
async fn terminal_errors_end_the_reader() {
    let fake = FakeServer::start(|call| match call.request {
        Request::Read(r) if r.offset.0 == 0 => reply(Err(ResponseError::new(
            ErrorCode::OffsetOutOfRange,
            "offset 0 is below the start 10",
        ))),
        // A record set that does not decode.
        Request::Read(_) => reply(Ok(Response::Records(Records {
            first_offset: Offset(5),
            end_offset: Offset(9),
            start_offset: Offset(0),
            end_of_stream: false,
            records: Bytes::from_static(&[3, 0, 0, 0, 9, 9, 9]),
        }))),
        _ => now(Action::Ignore),
    })
    .await;
    let client = connect(&fake.addr).await;
    let got = collect(&mut client.reader(&stream(), from(0))).await;
    assert_eq!(got.len(), 1);
    let err = got[0].as_ref().unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange));
    let got = collect(&mut client.reader(&stream(), from(5))).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].is_err());
}

#[tokio::test]
async fn end_of_stream_ends_a_following_reader() {
    let fake = FakeServer::start(|call| match call.request {
        Request::Read(r) => {
            let set = encode_record_set(
                &[Record::new("last")],
                Compression::None,
                &RecordSetLimits::default(),
            )
            .unwrap();
            reply(Ok(Response::Records(Records {
                first_offset: r.offset,
                end_offset: Offset(r.offset.0 + 1),
                start_offset: Offset(0),
                end_of_stream: true,
                records: dlog_api::wire::client::join_record_sets([&set]),
            })))
        }
        _ => now(Action::Ignore),
    })
    .await;
    let client = connect(&fake.addr).await;
    let mut reader = client.reader(
        &stream(),
        ReaderOptions {
            follow: true,
            ..from(3)
        },
    );
    assert_eq!(offsets(&collect(&mut reader).await), vec![3]);
}

/// A node that answers with the end of the segment it read from (here, each batch is a
/// "segment"): a reader that does not follow must not stop at the first segment's end.
#[tokio::test]
async fn a_segment_end_is_not_taken_for_the_stream_end() {
    let log = FakeLog::new();
    put(&log, 0, 3);
    put(&log, 3, 3);
    let l = log.clone();
    let fake = FakeServer::start(move |call| match call.request {
        Request::Read(r) => {
            let Ok(Response::Records(mut records)) = l.read(&Read { max_bytes: 1, ..r }) else {
                return now(Action::Ignore);
            };
            if records.first_offset.0 < 3 && !records.records.is_empty() {
                records.end_offset = Offset(3);
            }
            reply(Ok(Response::Records(records)))
        }
        _ => now(Action::Ignore),
    })
    .await;
    let client = connect(&fake.addr).await;
    let mut reader = client.reader(&stream(), from(0));
    assert_eq!(offsets(&collect(&mut reader).await), vec![0, 1, 2, 3, 4, 5]);
    assert!(reader.caught_up());
}
