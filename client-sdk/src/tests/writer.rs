//! The writer: batching, offsets, retries with the same producer id and sequence, redirects,
//! and stopping on a non-retryable error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dlog_api::wire::client::{Request, ResponseError};
use dlog_api::{ErrorCode, ErrorKind, Offset, Record};

use super::fake_server::{Action, FakeLog, FakeServer, MAX_RECORD_BYTES, now, reply, serve_log};
use super::{connect, stream};
use crate::WriterOptions;

fn payloads(log: &FakeLog) -> Vec<Bytes> {
    log.records().into_iter().map(|r| r.payload).collect()
}

#[tokio::test]
async fn appends_are_batched_and_get_consecutive_offsets() {
    let log = FakeLog::new();
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(
        &stream(),
        WriterOptions {
            linger: Duration::from_millis(20),
            ..WriterOptions::default()
        },
    );
    let mut pending = Vec::new();
    for i in 0..100 {
        pending.push(writer.append(Record::new(format!("r{i}"))).await);
    }
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap(), Offset(i as u64));
    }
    let expected: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("r{i}"))).collect();
    assert_eq!(payloads(&log), expected);
    let appends = fake.appends();
    assert!(
        appends.len() < 10,
        "{} requests for 100 records",
        appends.len()
    );
    // Sequence numbers count the records sent before.
    let mut expected_seq = 0;
    for (i, (_, producer, seq)) in appends.iter().enumerate() {
        assert_eq!(*producer, writer.producer_id());
        assert_eq!(*seq, expected_seq, "batch {i}");
        let Request::Append(a) = &fake.calls()[i].request else {
            unreachable!()
        };
        let n = dlog_api::record::decode_record_set(a.records.clone(), &Default::default())
            .unwrap()
            .len();
        expected_seq += n as u64;
    }
    assert_ne!(writer.producer_id(), 0, "idempotent by default");
    assert!(
        log.records().iter().all(|r| r.timestamp_ms > 0),
        "timestamps filled in"
    );
}

#[tokio::test]
async fn append_batch_gives_the_first_offset_and_flush_waits() {
    let log = FakeLog::new();
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(
        &stream(),
        WriterOptions {
            linger: Duration::from_secs(60),
            ..WriterOptions::default()
        },
    );
    let first = writer.append(Record::new("a")).await;
    let batch = writer
        .append_batch(vec![
            Record::new("b"),
            Record {
                payload: Bytes::from_static(b"c"),
                key: Some(Bytes::from_static(b"k")),
                timestamp_ms: 1234,
                txid: Some(9),
            },
        ])
        .await;
    // The linger is a minute: only the flush sends the batch.
    tokio::time::timeout(Duration::from_secs(5), writer.flush())
        .await
        .expect("flush sends at once")
        .unwrap();
    assert_eq!(first.await.unwrap(), Offset(0));
    assert_eq!(batch.await.unwrap(), Offset(1));
    let stored = log.records();
    assert_eq!(stored[2].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(stored[2].timestamp_ms, 1234);
    assert_eq!(stored[2].txid, Some(9));
    writer.flush().await.unwrap();
}

/// The node appends a batch but the connection drops before the answer: the writer sends the
/// same batch (same producer id, same sequence) again and gets the original offset.
#[tokio::test]
async fn lost_answer_is_retried_with_the_same_producer_and_sequence() {
    let log = FakeLog::new();
    let l = log.clone();
    let fake = FakeServer::start(move |call| match call.request {
        Request::Append(a) => {
            let appended = l.append(&a);
            if call.conn == 0 {
                now(Action::Close)
            } else {
                reply(appended)
            }
        }
        _ => now(Action::Ignore),
    })
    .await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(
        &stream(),
        WriterOptions {
            producer_id: Some(42),
            ..WriterOptions::default()
        },
    );
    let offset = writer.append(Record::new("once")).await.await.unwrap();
    assert_eq!(offset, Offset(0));
    assert_eq!(payloads(&log), vec![Bytes::from_static(b"once")]);
    assert_eq!(fake.appends(), vec![(0, 42, 0), (1, 42, 0)]);
}

/// Batch 2 of 5 fails with a dropped connection; batches 3 and 4 were sent behind it. All of
/// them are sent again, in order, and the stream holds each record once, in order.
#[tokio::test]
async fn batches_behind_a_failed_one_are_resent_in_order() {
    let log = FakeLog::new();
    let l = log.clone();
    let fake = FakeServer::start(move |call| match call.request {
        Request::Append(a) if call.conn == 0 && a.sequence == 2 => now(Action::Close),
        Request::Append(a) => reply(l.append(&a)),
        _ => now(Action::Ignore),
    })
    .await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(
        &stream(),
        WriterOptions {
            max_batch_bytes: 1, // one record per batch
            linger: Duration::ZERO,
            ..WriterOptions::default()
        },
    );
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(writer.append(Record::new(format!("r{i}"))).await);
    }
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap(), Offset(i as u64));
    }
    let expected: Vec<Bytes> = (0..5).map(|i| Bytes::from(format!("r{i}"))).collect();
    assert_eq!(payloads(&log), expected);
    let resent: Vec<u64> = fake
        .appends()
        .into_iter()
        .filter(|(conn, _, _)| *conn == 1)
        .map(|(_, _, seq)| seq)
        .collect();
    // Batches 0 and 1 are resent too if their answers were lost with the connection.
    assert!(resent.windows(2).all(|w| w[0] + 1 == w[1]), "{resent:?}");
    assert!(resent.ends_with(&[2, 3, 4]), "{resent:?}");
}

#[tokio::test]
async fn not_owner_redirects_the_writer() {
    let log = FakeLog::new();
    let b = FakeServer::start(serve_log(log.clone())).await;
    let b_addr = b.addr.clone();
    let a = FakeServer::start(move |_| {
        reply(Err(ResponseError::not_owner(
            Some(b_addr.clone()),
            "not mine",
        )))
    })
    .await;
    let client = connect(&a.addr).await;
    let writer = client.writer(&stream(), WriterOptions::default());
    assert_eq!(
        writer.append(Record::new("x")).await.await.unwrap(),
        Offset(0)
    );
    assert_eq!(
        writer.append(Record::new("y")).await.await.unwrap(),
        Offset(1)
    );
    assert_eq!(a.appends().len(), 1);
    assert_eq!(b.appends().len(), 2);
    // A new writer of the same client goes straight to the remembered owner.
    let other = client.writer(&stream(), WriterOptions::default());
    assert_eq!(
        other.append(Record::new("z")).await.await.unwrap(),
        Offset(2)
    );
    assert_eq!(a.appends().len(), 1);
}

#[tokio::test]
async fn non_retryable_error_stops_the_writer() {
    let fake = FakeServer::start(|_| {
        reply(Err(ResponseError::new(
            ErrorCode::StreamEnded,
            "stream ns/s has ended",
        )))
    })
    .await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(&stream(), WriterOptions::default());
    let err = writer.append(Record::new("x")).await.await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::StreamEnded));
    assert!(!err.is_retryable());
    let later = writer.append(Record::new("y")).await.await.unwrap_err();
    assert_eq!(later.code(), Some(ErrorCode::StreamEnded));
    assert_eq!(
        writer.flush().await.unwrap_err().code(),
        Some(ErrorCode::StreamEnded)
    );
    assert_eq!(fake.appends().len(), 1, "nothing sent after the failure");
}

#[tokio::test]
async fn oversized_payload_fails_at_once_without_stopping_the_writer() {
    let log = FakeLog::new();
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(&stream(), WriterOptions::default());
    let big = vec![0u8; MAX_RECORD_BYTES as usize + 1];
    let err = writer.append(Record::new(big)).await.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let err = writer.append_batch(Vec::new()).await.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(fake.appends().is_empty());
    let exact = vec![1u8; MAX_RECORD_BYTES as usize];
    assert_eq!(
        writer.append(Record::new(exact)).await.await.unwrap(),
        Offset(0)
    );
}

#[tokio::test]
async fn retryable_errors_are_retried_until_the_retry_timeout() {
    let recovered = Arc::new(AtomicBool::new(false));
    let r = recovered.clone();
    let log = FakeLog::new();
    let l = log.clone();
    let fake = FakeServer::start(move |call| match call.request {
        Request::Append(a) if r.load(Ordering::SeqCst) => reply(l.append(&a)),
        _ => reply(Err(ResponseError::new(
            ErrorCode::StreamUnavailable,
            "bookies unreachable",
        ))),
    })
    .await;
    let client = connect(&fake.addr).await;

    // Recovers within the timeout: the append succeeds.
    let writer = client.writer(&stream(), WriterOptions::default());
    let pending = writer.append(Record::new("x")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    recovered.store(true, Ordering::SeqCst);
    assert_eq!(pending.await.unwrap(), Offset(0));
    assert!(fake.appends().len() >= 2);

    // Never recovers: the writer gives up after its retry timeout.
    recovered.store(false, Ordering::SeqCst);
    let writer = client.writer(
        &stream(),
        WriterOptions {
            retry_timeout: Duration::from_millis(300),
            ..WriterOptions::default()
        },
    );
    let started = Instant::now();
    let err = writer.append(Record::new("y")).await.await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::StreamUnavailable));
    assert!(err.to_string().contains("gave up"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Appends wait for room once the buffer is full, and go on as acknowledgements free it.
#[tokio::test]
async fn full_buffer_makes_appends_wait() {
    let log = FakeLog::new();
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(
        &stream(),
        WriterOptions {
            max_buffered_bytes: 4096,
            max_inflight_batches: 1,
            ..WriterOptions::default()
        },
    );
    let mut pending = Vec::new();
    for _ in 0..64 {
        pending.push(writer.append(Record::new(vec![7u8; 1000])).await);
    }
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap(), Offset(i as u64));
    }
    assert_eq!(log.end(), 64);
}
