//! Streams end to end, through the SDK and the `dlog` CLI, against `dlogd standalone` and
//! against a cluster of processes (etcd, three bookies, two service nodes): append and read
//! back, seeks, tail latency, segment rolls, truncation, restart persistence, failover of the
//! owning node under an idempotent writer (checked with the history checker), and bad input of
//! every kind on the wire.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use dlog_api::ErrorCode;
use dlog_api::stream::StreamPolicy;
use dlog_client::{Client, ReaderOptions, Record, StartAt, StreamName, WriterOptions};
use dlog_integration::{Event, FinalLog, Outcome, Segment, check};
use futures::StreamExt;

use super::services::{ServerProc, Standalone, dlog};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn small_segments() -> StreamPolicy {
    StreamPolicy {
        segment_bytes: 1 << 20,
        ..StreamPolicy::default()
    }
}

fn record(i: u64, size: usize) -> Record {
    let mut p = format!("r{i:08}-").into_bytes();
    p.resize(size.max(p.len()), b'x');
    Record {
        payload: p.into(),
        key: Some(format!("k{}", i % 7).into_bytes().into()),
        timestamp_ms: 1_000_000 + i as i64,
        txid: Some(10 * i),
    }
}

/// Every record from `start` until caught up.
async fn read_all(client: &Client, s: &StreamName, start: StartAt) -> Vec<(u64, Record)> {
    let mut r = client.reader(
        s,
        ReaderOptions {
            start,
            ..ReaderOptions::default()
        },
    );
    let mut out = Vec::new();
    while let Some(x) = r.next().await {
        let x = x.unwrap();
        out.push((x.offset, x.record));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let mut sa = Standalone::start(&dir.path().join("data"));
    exercise(&mut sa).await;
    sa.stop();
}

/// A deployment the end-to-end exercise runs against.
trait Deployment {
    /// A client address.
    fn addr(&self) -> String;
    /// Stops every service process cleanly and starts it again on the same addresses and data.
    fn restart(&mut self);
}

impl Deployment for Standalone {
    fn addr(&self) -> String {
        self.addr.clone()
    }

    fn restart(&mut self) {
        let (data, port, http) = (self.data.clone(), self.port(), self.http_port());
        self.terminate();
        *self = Standalone::start_on(&data, port, http);
    }
}

/// Append and read back across segment rolls, seeks, tail latency, truncation, retention and
/// a restart, through the SDK.
async fn exercise(d: &mut dyn Deployment) {
    let client = Client::connect(&d.addr()).await.unwrap();
    let admin = client.admin();
    let s: StreamName = "e2e/sdk".parse().unwrap();
    admin
        .create_stream(&s, Some(small_segments()))
        .await
        .unwrap();

    // 3,000 pipelined 1 KiB records: several 1 MiB segments.
    let w = client.writer(&s, WriterOptions::default());
    let mut acks = Vec::new();
    for i in 0..3000 {
        acks.push(w.append(record(i, 1024)).await);
    }
    for (i, a) in acks.into_iter().enumerate() {
        assert_eq!(
            a.await.unwrap().0,
            i as u64,
            "offsets are dense and in order"
        );
    }
    // The last roll happens just after the last acknowledgement.
    let t = Instant::now();
    let info = loop {
        let info = admin.describe_stream(&s).await.unwrap();
        if info.segments.len() >= 3 || t.elapsed() > Duration::from_secs(5) {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(info.segments.len() >= 3, "{:#?}", info.segments);
    for g in info.segments.windows(2) {
        assert_eq!(g[0].end_offset, g[1].first_offset);
    }

    // Read back, byte-equal.
    let all = read_all(&client, &s, StartAt::Beginning).await;
    assert_eq!(all.len(), 3000);
    for (i, (o, r)) in all.iter().enumerate() {
        assert_eq!((*o, r), (i as u64, &record(i as u64, 1024)));
    }
    // Seeks by offset, timestamp and txid.
    let from = read_all(&client, &s, StartAt::Offset(2500)).await;
    assert_eq!(from.first().map(|x| x.0), Some(2500));
    assert_eq!(from.len(), 500);
    let at = read_all(&client, &s, StartAt::Timestamp(1_000_000 + 1234)).await;
    assert_eq!(at.first().map(|x| x.0), Some(1234));
    let tx = read_all(&client, &s, StartAt::Txid(10 * 2222 + 5)).await;
    assert_eq!(tx.first().map(|x| x.0), Some(2223));

    // Tail: a following reader sees a new record soon after its acknowledgement.
    let mut tail = client.reader(
        &s,
        ReaderOptions {
            start: StartAt::End,
            follow: true,
            ..ReaderOptions::default()
        },
    );
    let first = tokio::spawn(async move {
        let r = tail.next().await.unwrap().unwrap();
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let off = w.append(record(3000, 10)).await.await.unwrap();
    let acked = Instant::now();
    let (got, seen) = first.await.unwrap();
    assert_eq!(got.offset, off.0);
    let lag = seen.saturating_duration_since(acked);
    assert!(lag < Duration::from_millis(200), "tail lag {lag:?}");

    // Truncation: the start moves, whole segments below it go.
    let cut = info.segments[0].end_offset + 3;
    assert_eq!(admin.truncate(&s, cut).await.unwrap(), cut);
    let info = admin.describe_stream(&s).await.unwrap();
    assert_eq!(info.start_offset, cut);
    assert!(
        info.segments[0].first_offset > 0,
        "the first segments were deleted"
    );
    let rest = read_all(&client, &s, StartAt::Beginning).await;
    assert_eq!(rest.first().map(|x| x.0), Some(cut));

    // Retention by age: sealed segments older than a second go (the nodes apply retention
    // every 200 ms in these tests).
    let r: StreamName = "e2e/retained".parse().unwrap();
    let policy = StreamPolicy {
        retention_age_ms: Some(1000),
        ..small_segments()
    };
    admin.create_stream(&r, Some(policy)).await.unwrap();
    let rw = client.writer(&r, WriterOptions::default());
    for i in 0..2500 {
        drop(rw.append(record(i, 1024)).await);
    }
    rw.flush().await.unwrap();
    // Every sealed segment goes within a few seconds; the open one stays. Wait until the
    // start has stopped moving.
    let t = Instant::now();
    let (mut start, mut since) = (0, Instant::now());
    loop {
        let now = admin.describe_stream(&r).await.unwrap().start_offset;
        if now != start {
            (start, since) = (now, Instant::now());
        }
        if start > 0 && since.elapsed() > Duration::from_millis(2500) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "retention deleted nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = read_all(&client, &r, StartAt::Beginning).await;
    assert_eq!(kept.len() as u64, 2500 - start);
    if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
        assert_eq!((first.0, last.0), (start, 2499));
    }

    // Restart: everything is still there, and appends go on at the next offset.
    drop((w, rw, client));
    d.restart();
    let client = Client::connect(&d.addr()).await.unwrap();
    let after = read_all(&client, &s, StartAt::Beginning).await;
    assert_eq!(after, rest);
    let w = client.writer(&s, WriterOptions::default());
    assert_eq!(w.append(record(3001, 10)).await.await.unwrap().0, 3001);
}

/// The three client benchmarks run briefly against standalone and end with a JSON line whose
/// figures add up; bad settings are refused before anything runs.
#[test]
fn the_client_benchmarks_report_what_they_measured() {
    let dir = tempfile::tempdir().unwrap();
    let sa = Standalone::start(&dir.path().join("data"));
    let srv = sa.addr.clone();
    let last_json = |out: &str| -> serde_json::Value {
        serde_json::from_str(out.lines().last().unwrap_or("")).unwrap()
    };
    let (code, out, err) = dlog(
        &srv,
        &[
            "bench",
            "append",
            "--size",
            "100",
            "--seconds",
            "1",
            "--warmup",
            "0.5",
            "--rate",
            "2000",
            "--json",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let a = last_json(&out);
    assert_eq!(
        (a["bench"].as_str(), a["errors"].as_u64()),
        (Some("append"), Some(0))
    );
    assert_eq!(a["warmup_s"].as_f64(), Some(0.5));
    // About 2,000 measured records, not the warm-up's 1,000 more.
    let records = a["records"].as_u64().unwrap();
    assert!((1_000..=2_400).contains(&records), "{a}");
    assert!(a["p50_ms"].as_f64().unwrap() > 0.0 && a["p99_ms"].as_f64() <= a["max_ms"].as_f64());
    let (_, out, _) = dlog(&srv, &["stream", "describe", "bench/append", "--json"], "");
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    let end = described["end_offset"].as_u64().unwrap();
    assert!(end >= records + 500, "the warm-up appended too (end {end})");

    let (code, out, err) = dlog(
        &srv,
        &["bench", "tail", "--rate", "500", "--seconds", "1", "--json"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let t = last_json(&out);
    assert_eq!(
        (t["missing"].as_u64(), t["errors"].as_u64()),
        (Some(0), Some(0)),
        "{t}"
    );
    assert_eq!(t["acked"], t["read"], "{t}");

    let (code, out, err) = dlog(&srv, &["bench", "catchup", "--bytes", "4MiB", "--json"], "");
    assert_eq!(code, 0, "{err}");
    let c = last_json(&out);
    assert_eq!(c["bytes"].as_u64(), Some(4 << 20), "{c}");
    assert!(c["read_mb_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(c["tier"].as_str(), Some("bookies"), "{c}");
    // With --offload the read back comes from the standalone's object folder.
    let (code, out, err) = dlog(
        &srv,
        &[
            "bench",
            "catchup",
            "--stream",
            "bench/catchup-objects",
            "--bytes",
            "4MiB",
            "--offload",
            "--json",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let c = last_json(&out);
    assert_eq!(
        (c["tier"].as_str(), c["bytes"].as_u64()),
        (Some("objects"), Some(4 << 20)),
        "{c}"
    );
    assert!(c["offload_seconds"].as_f64().unwrap() > 0.0, "{c}");
    let (_, out, _) = dlog(
        &srv,
        &["stream", "describe", "bench/catchup-objects", "--json"],
        "",
    );
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        described["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["end_offset"] != g["first_offset"])
            .all(|g| g["tier"].as_str().unwrap().contains("objects")),
        "{described}"
    );

    for (args, text) in [
        (vec!["bench", "append", "--warmup=-1"], "--warmup"),
        (vec!["bench", "append", "--inflight", "0"], "--inflight"),
        (vec!["bench", "tail", "--rate", "0"], "rate"),
        (vec!["bench", "catchup", "--bytes", "0"], "bytes"),
    ] {
        let (code, _, err) = dlog(&srv, &args, "");
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(text), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn standalone_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let sa = Standalone::start(&dir.path().join("data"));
    let srv = sa.addr.clone();
    let (code, _, err) = dlog(&srv, &["stream", "create", "cli/lines"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = dlog(&srv, &["append", "cli/lines"], "alpha\nbeta\n\ngamma\n");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = dlog(&srv, &["read", "cli/lines"], "");
    assert_eq!((code, out.as_str()), (0, "alpha\nbeta\n\ngamma\n"), "{err}");
    let (code, out, _) = dlog(
        &srv,
        &["read", "cli/lines", "--from", "2", "--format", "json"],
        "",
    );
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["offset"], 2);
    let (code, out, _) = dlog(&srv, &["stream", "describe", "cli/lines", "--json"], "");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["end_offset"], 4);
    let (code, out, _) = dlog(&srv, &["stream", "list"], "");
    assert_eq!((code, out.contains("cli/lines")), (0, true), "{out}");

    // Errors: clear, non-zero, no panic.
    for (args, text) in [
        (vec!["stream", "create", "no-namespace"], "NAMESPACE/NAME"),
        (vec!["stream", "create", "cli/lines"], "already exists"),
        (vec!["read", "cli/missing"], "no such stream"),
        (
            vec![
                "stream",
                "create",
                "cli/p",
                "--ack-quorum",
                "3",
                "--write-quorum",
                "2",
            ],
            "ack_quorum",
        ),
    ] {
        let (code, _, err) = dlog(&srv, &args, "");
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(text), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = dlog("127.0.0.1:1", &["stream", "list"], "");
    assert_ne!(code, 0);
    assert!(err.starts_with("error:"), "{err}");
    sa.stop();
}

/// Sends raw bytes to the node and returns what came back before it closed (or 2 s passed).
fn raw_exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status code of the first response frame in `bytes`.
fn first_status(bytes: &[u8]) -> u16 {
    assert!(bytes.len() >= 18, "no answer: {bytes:?}");
    u16::from_le_bytes([bytes[16], bytes[17]])
}

fn frame(op: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u32_le((12 + body.len()) as u32);
    b.put_u8(1);
    b.put_u8(0);
    b.put_u8(op);
    b.put_u8(0);
    b.put_u64_le(id);
    b.put_slice(body);
    b.to_vec()
}

fn hello() -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_u8(1);
    for s in ["raw-test", ""] {
        b.put_u16_le(s.len() as u16);
        b.put_slice(s.as_bytes());
    }
    b.put_u32_le(0);
    frame(1, 1, &b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_wire_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sa = Standalone::start(&dir.path().join("data"));
    // Garbage: not even a frame header; the node answers "frame too large" and closes.
    let out = raw_exchange(&sa.addr, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(first_status(&out), ErrorCode::FrameTooLarge as u16);
    // A request before the handshake.
    let out = raw_exchange(&sa.addr, &frame(5, 7, b"\x03\x00a/b"));
    assert_eq!(first_status(&out), ErrorCode::HandshakeRequired as u16);
    // A bad stream name inside a well-formed frame: answered, the connection goes on.
    let mut bytes = hello();
    bytes.extend(frame(5, 2, b"\x06\x00no/a b"));
    bytes.extend(frame(99, 3, b""));
    let out = raw_exchange(&sa.addr, &bytes);
    let statuses = statuses(&out);
    assert_eq!(
        statuses,
        vec![0, ErrorCode::BadFrame as u16, ErrorCode::UnknownOp as u16],
        "{out:?}"
    );

    // Through the SDK: unknown stream, oversize record, bad policy, bad names.
    let client = Client::connect(&sa.addr).await.unwrap();
    let missing: StreamName = "bad/missing".parse().unwrap();
    let e = client
        .writer(&missing, WriterOptions::default())
        .append(Record::new("x"))
        .await
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoSuchStream), "{e}");
    let s: StreamName = "bad/small".parse().unwrap();
    let policy = StreamPolicy {
        max_record_bytes: 100,
        ..StreamPolicy::default()
    };
    client
        .admin()
        .create_stream(&s, Some(policy))
        .await
        .unwrap();
    let e = client
        .writer(&s, WriterOptions::default())
        .append(Record::new(vec![0u8; 101]))
        .await
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RecordTooLarge), "{e}");
    let bad = StreamPolicy {
        ack_quorum: 3,
        write_quorum: 2,
        ..StreamPolicy::default()
    };
    let e = client
        .admin()
        .create_stream(&"bad/policy".parse().unwrap(), Some(bad))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidPolicy), "{e}");
    assert!("bad name/x".parse::<StreamName>().is_err());
    drop(client);
    sa.stop();
}

/// Every status code in a run of response frames.
fn statuses(mut b: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    while b.len() >= 18 {
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        out.push(u16::from_le_bytes([b[16], b[17]]));
        b = &b[(4 + len).min(b.len())..];
    }
    out
}

/// Two service nodes over three bookie processes and a real etcd.
struct ClusterDeployment {
    servers: Vec<ServerProc>,
}

impl Deployment for ClusterDeployment {
    fn addr(&self) -> String {
        self.servers[1].addr.clone()
    }

    fn restart(&mut self) {
        for s in &mut self.servers {
            s.terminate();
        }
        for s in &mut self.servers {
            s.spawn();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_through_the_sdk() {
    let cluster = super::cluster::ProcCluster::start(3).await;
    let dir = cluster.dir.path().to_path_buf();
    let mut d = ClusterDeployment {
        servers: vec![
            ServerProc::start(&dir, "svc-a", &cluster.url),
            ServerProc::start(&dir, "svc-b", &cluster.url),
        ],
    };
    exercise(&mut d).await;
    // The CLI against the cluster: through one node, appends reach the owner (wherever it is)
    // and reads come back from the other.
    let (a, b) = (d.servers[0].addr.clone(), d.servers[1].addr.clone());
    let (code, _, err) = dlog(&a, &["stream", "create", "cli/cluster"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = dlog(&b, &["append", "cli/cluster"], "one\ntwo\n");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = dlog(&a, &["append", "cli/cluster", "--txid", "7"], "three\n");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = dlog(&a, &["read", "cli/cluster"], "");
    assert_eq!((code, out.as_str()), (0, "one\ntwo\nthree\n"), "{err}");
    let (code, out, err) = dlog(&b, &["read", "cli/cluster", "--txid", "7"], "");
    assert_eq!((code, out.as_str()), (0, "three\n"), "{err}");
    drop(d);
    cluster.stop();
}

/// Three bookies and two service nodes on a real etcd; an idempotent writer appends through
/// one node while the stream's owner is killed with -9. The stream moves to the other node,
/// the writer goes on, and the history checker finds every acknowledged record exactly once,
/// in order, with dense offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_killed_during_idempotent_appends_loses_nothing() {
    let cluster = super::cluster::ProcCluster::start(3).await;
    let dir = cluster.dir.path().to_path_buf();
    let mut a = ServerProc::start(&dir, "svc-a", &cluster.url);
    let b = ServerProc::start(&dir, "svc-b", &cluster.url);
    let s: StreamName = "e2e/failover".parse().unwrap();
    // Node a takes the stream with a first append of its own; the writer under test talks to
    // node b, which redirects it to a.
    let first = Client::connect(&a.addr).await.unwrap();
    first.admin().create_stream(&s, None).await.unwrap();
    let w0 = first.writer(&s, WriterOptions::default());
    assert_eq!(w0.append(Record::new("p-first")).await.await.unwrap().0, 0);
    drop((w0, first));
    let client = Client::connect(&b.addr).await.unwrap();
    assert_eq!(
        client.lookup(&s).await.unwrap().owner.as_deref(),
        Some(a.addr.as_str())
    );

    let history: Arc<Mutex<Vec<Event>>> = Arc::default();
    let w = client.writer(
        &s,
        WriterOptions {
            retry_timeout: Duration::from_secs(60),
            ..WriterOptions::default()
        },
    );
    let h = history.clone();
    let writer = tokio::spawn(async move {
        let mut pending = Vec::new();
        for i in 0..4000u64 {
            let id = format!("p{i}");
            h.lock().unwrap().push(Event {
                op: "append".into(),
                process: "writer".into(),
                outcome: Outcome::Invoke,
                payload_id: Some(id.clone()),
                offset: None,
                records: Vec::new(),
                t_ns: now_ns(),
            });
            let fut = w.append(Record::new(id.clone())).await;
            let h = h.clone();
            pending.push(tokio::spawn(async move {
                let r = fut.await;
                // A failed append may still have been applied: indeterminate.
                let (outcome, offset) = match &r {
                    Ok(o) => (Outcome::Ok, Some(o.0)),
                    Err(_) => (Outcome::Info, None),
                };
                h.lock().unwrap().push(Event {
                    op: "append".into(),
                    process: "writer".into(),
                    outcome,
                    payload_id: Some(id),
                    offset,
                    records: Vec::new(),
                    t_ns: now_ns(),
                });
                r.is_ok()
            }));
            if i % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut ok = 0;
        for p in pending {
            ok += usize::from(p.await.unwrap());
        }
        ok
    });

    // Kill the owner once appends are flowing through it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        history
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.outcome == Outcome::Ok),
        "appends flow before the kill"
    );
    a.kill9();
    let survivor = b.addr.clone();
    let ok = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer finished")
        .unwrap();
    assert!(ok > 3000, "only {ok} of 4000 appends succeeded");

    // A fresh reader on the surviving node reads the whole stream.
    let fresh = Client::connect(&survivor).await.unwrap();
    let info = fresh.admin().describe_stream(&s).await.unwrap();
    assert_eq!(info.owner.as_deref(), Some(survivor.as_str()));
    let all = read_all(&fresh, &s, StartAt::Beginning).await;
    let log = FinalLog {
        start_offset: info.start_offset,
        records: all
            .iter()
            .map(|(o, r)| (*o, String::from_utf8(r.payload.to_vec()).unwrap()))
            .collect(),
        segments: info
            .segments
            .iter()
            .map(|g| Segment {
                epoch: g.epoch,
                first_offset: g.first_offset,
                end_offset: g.end_offset,
                open: g.state == dlog_api::stream::SegmentState::Open,
            })
            .collect(),
    };
    let mut history = history.lock().unwrap().clone();
    // The first record, appended at node a before the writer under test started.
    for outcome in [Outcome::Invoke, Outcome::Ok] {
        history.push(Event {
            op: "append".into(),
            process: "first".into(),
            outcome,
            payload_id: Some("p-first".into()),
            offset: Some(0),
            records: Vec::new(),
            t_ns: 0,
        });
    }
    let summary = match check(&history, &log) {
        Ok(s) => s,
        Err(v) => panic!("history check failed: {v:#?}"),
    };
    assert_eq!(summary.acked, ok + 1);
    let epochs: BTreeMap<u64, usize> = info.segments.iter().fold(BTreeMap::new(), |mut m, g| {
        *m.entry(g.epoch).or_default() += 1;
        m
    });
    assert!(epochs.len() >= 2, "the stream changed writers: {epochs:?}");
    drop((client, fresh));
    drop((a, b));
    cluster.stop();
}
