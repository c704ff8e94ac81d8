//! The CLI's append and print loops, in-process against the fake node.

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, encode_record_set};
use dlog_api::wire::client::{Append, ResponseError};
use dlog_api::{Compression, ErrorCode, Record};

use super::fake_server::{FakeLog, FakeServer, reply, serve_log};
use super::{connect, stream};
use crate::cli::append::LineAppender;
use crate::cli::read::{Format, Printer, print_records};
use crate::{ReaderOptions, StartAt, WriterOptions};

#[tokio::test]
async fn lines_become_records() {
    let log = FakeLog::new();
    let fake = FakeServer::start(serve_log(log.clone())).await;
    let client = connect(&fake.addr).await;
    let template = Record {
        key: Some(Bytes::from_static(b"k")),
        txid: Some(5),
        ..Record::default()
    };
    let mut appender =
        LineAppender::new(client.writer(&stream(), WriterOptions::default()), template);
    appender.append_lines(&b"a\nb\r\n\nlast"[..]).await.unwrap();
    appender.append_lines(&b"more\n"[..]).await.unwrap();
    let summary = appender.finish().await;
    assert_eq!(summary.records, 5);
    assert_eq!(summary.bytes, 10);
    assert_eq!(
        (summary.first_offset, summary.last_offset),
        (Some(0), Some(4))
    );
    assert_eq!(summary.error, None);
    let stored = log.records();
    let payloads: Vec<&[u8]> = stored.iter().map(|r| &r.payload[..]).collect();
    assert_eq!(payloads, vec![&b"a"[..], b"b", b"", b"last", b"more"]);
    assert!(
        stored
            .iter()
            .all(|r| r.key.as_deref() == Some(&b"k"[..]) && r.txid == Some(5))
    );
}

#[tokio::test]
async fn failed_appends_are_counted_and_stop_the_input() {
    let fake = FakeServer::start(|_| {
        reply(Err(ResponseError::new(
            ErrorCode::StreamEnded,
            "stream ns/s has ended",
        )))
    })
    .await;
    let client = connect(&fake.addr).await;
    let writer = client.writer(&stream(), WriterOptions::default());
    let mut appender = LineAppender::new(writer, Record::default());
    appender.append_lines(&b"x\n"[..]).await.unwrap();
    // Wait for the failure to be seen, then feed more: it is not read.
    while !appender.failed() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    appender.append_lines(&b"y\nz\n"[..]).await.unwrap();
    let summary = appender.finish().await;
    assert_eq!(summary.records, 0);
    assert_eq!(summary.failed, 1);
    assert!(summary.error.unwrap().contains("has ended"));
}

#[tokio::test]
async fn records_are_printed_until_caught_up_or_max() {
    let log = FakeLog::new();
    let records: Vec<Record> = ["r0", "r1", "r2"].into_iter().map(Record::new).collect();
    log.append(&Append {
        stream: stream(),
        producer_id: 0,
        sequence: 0,
        records: encode_record_set(&records, Compression::Zstd, &RecordSetLimits::default())
            .unwrap(),
    })
    .unwrap();
    let fake = FakeServer::start(serve_log(log)).await;
    let client = connect(&fake.addr).await;
    let options = ReaderOptions {
        start: StartAt::Offset(0),
        ..ReaderOptions::default()
    };

    let mut printer = Printer::new(Vec::new(), Format::Text);
    let mut reader = client.reader(&stream(), options.clone());
    print_records(&mut reader, &mut printer, None)
        .await
        .unwrap();
    assert_eq!(printer.into_inner(), b"r0\nr1\nr2\n");

    let mut printer = Printer::new(Vec::new(), Format::Text);
    let mut reader = client.reader(&stream(), options);
    print_records(&mut reader, &mut printer, Some(2))
        .await
        .unwrap();
    assert_eq!(printer.into_inner(), b"r0\nr1\n");
    assert_eq!(
        reader.position(),
        Some(2),
        "the position a subscription commits"
    );
}
