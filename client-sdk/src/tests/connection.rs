//! The connection: handshake, pipelining, failure and timeouts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dlog_api::wire::client::{Request, Response, ResponseError, SeekBy};
use dlog_api::wire::{DEFAULT_MAX_FRAME_LEN, FrameCodec};
use dlog_api::{ErrorCode, ErrorKind, Offset};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;

use super::fake_server::{Action, FakeServer, MAX_RECORD_BYTES, now, reply};
use super::{connect, connect_impatient, stream};
use crate::Client;

#[tokio::test]
async fn hello_reports_the_node_and_its_limits() {
    let fake = FakeServer::start(|_| now(Action::Ignore)).await;
    let client = connect(&fake.addr).await;
    let info = client.server_info();
    assert_eq!(info.server_id, "fake-0");
    assert_eq!(info.max_record_bytes, MAX_RECORD_BYTES);
    assert_eq!(info.max_frame_len as usize, DEFAULT_MAX_FRAME_LEN);
    assert_eq!(client.address(), fake.addr);
}

/// A node that refuses the hello: the connect fails with its code, and is not retryable.
#[tokio::test]
async fn refused_hello_fails_the_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = socket.into_split();
        let mut rd = FramedRead::new(rd, FrameCodec::new(DEFAULT_MAX_FRAME_LEN));
        let hello = rd.next().await.unwrap().unwrap();
        assert!(
            matches!(Request::decode(&hello), Ok(Request::Hello(h)) if h.client.starts_with("dlog-client/"))
        );
        let mut buf = BytesMut::new();
        ResponseError::new(ErrorCode::UnsupportedVersion, "this node speaks version 9")
            .encode(hello.op, hello.request_id, &mut buf, usize::MAX)
            .unwrap();
        wr.write_all(&buf).await.unwrap();
    });
    let err = Client::connect(&addr).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnsupportedVersion));
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("version 9"), "{err}");
}

#[tokio::test]
async fn unreachable_node_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = Client::connect(&addr).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.code(), None);
    assert!(err.to_string().contains(&addr), "{err}");
}

/// Two requests in flight on one connection; the node answers the second first.
#[tokio::test]
async fn pipelined_answers_come_back_out_of_order() {
    let answered = Arc::new(Mutex::new(Vec::new()));
    let order = answered.clone();
    let fake = FakeServer::start(move |call| {
        let Request::Seek(s) = call.request else {
            return now(Action::Ignore);
        };
        let SeekBy::Txid(txid) = s.by else {
            return now(Action::Ignore);
        };
        let order = order.clone();
        Box::pin(async move {
            let delay = if txid == 1 { 300 } else { 0 };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            order.lock().unwrap().push(txid);
            Action::Reply(Ok(Response::Position(Offset(txid * 10))))
        })
    })
    .await;
    let client = connect(&fake.addr).await;
    let s = stream();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        client.seek(&s, SeekBy::Txid(1)),
        client.seek(&s, SeekBy::Txid(2))
    );
    assert_eq!(a.unwrap(), Offset(10));
    assert_eq!(b.unwrap(), Offset(20));
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "not pipelined"
    );
    assert_eq!(*answered.lock().unwrap(), vec![2, 1]);
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.conn == 0), "one connection");
    assert!(calls[0].request_id < calls[1].request_id, "ids increase");
    assert!(calls[0].request_id > 1, "the hello used the first id");
}

/// The node closes the connection with a request outstanding: it fails retryably, and the
/// next request opens a new connection.
#[tokio::test]
async fn lost_connection_fails_requests_and_the_next_one_reconnects() {
    let fake = FakeServer::start(|call| {
        if call.conn == 0 {
            now(Action::Close)
        } else {
            reply(Ok(Response::Position(Offset(5))))
        }
    })
    .await;
    let client = connect(&fake.addr).await;
    let err = client.seek(&stream(), SeekBy::Txid(1)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.code(), None);
    // The reader task may need a moment to notice the close.
    let mut answer = client.seek(&stream(), SeekBy::Txid(1)).await;
    for _ in 0..50 {
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = client.seek(&stream(), SeekBy::Txid(1)).await;
    }
    assert_eq!(answer.unwrap(), Offset(5));
    assert_eq!(fake.calls().last().unwrap().conn, 1);
}

#[tokio::test]
async fn unanswered_request_times_out_retryably() {
    let fake = FakeServer::start(|_| now(Action::Ignore)).await;
    let client = connect_impatient(&fake.addr).await;
    let started = Instant::now();
    let err = client.seek(&stream(), SeekBy::Txid(1)).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Error answers keep their code and message.
#[tokio::test]
async fn error_answers_map_to_client_errors() {
    let fake = FakeServer::start(|_| {
        reply(Err(ResponseError::new(
            ErrorCode::NoSuchStream,
            "stream ns/s does not exist",
        )))
    })
    .await;
    let client = connect(&fake.addr).await;
    let err = client
        .seek(&stream(), SeekBy::Timestamp(-1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoSuchStream));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("does not exist"), "{err}");
}
