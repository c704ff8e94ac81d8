//! Tests of the real `dlogd` binary as separate processes: kill -9 during pipelined adds,
//! graceful SIGTERM drain, the CLI's errors, the benchmark's output contract, and bookie
//! processes forming a cluster through a real etcd.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dlog_api::wire::bookie::AddEntry;
use dlog_api::{Entry, EntryId, Epoch, LedgerId};
use dlog_ledger::{BookieClient, ClientOptions};

const DLOGD: &str = env!("CARGO_BIN_EXE_dlogd");

/// Small journal files so that the test rolls files and restarts quickly.
const CONFIG: &str = r#"
[journal]
file_size_bytes = 8388608
max_commit_bytes = 1048576
[limits]
max_entry_bytes = 1048576
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Dlogd {
    child: Child,
    addr: String,
}

impl Drop for Dlogd {
    /// A test that fails midway must not leave its processes behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dlogd {
    fn start(data: &Path) -> Dlogd {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> Dlogd {
        let cfg = data.with_extension("toml");
        std::fs::write(&cfg, CONFIG).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(DLOGD)
            .args(["bookie", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &addr])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn dlogd");
        Dlogd { child, addr }
    }

    async fn client(&mut self) -> BookieClient {
        let t = Instant::now();
        loop {
            if let Ok(c) = BookieClient::connect(&self.addr, ClientOptions::default()).await {
                return c;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dlogd exited during start-up: {status}");
            }
            assert!(t.elapsed() < Duration::from_secs(30), "dlogd not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.child.id());
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "dlogd did not drain");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn payload(ledger: LedgerId, entry: EntryId) -> Vec<u8> {
    let len = 64 + ((ledger.0 * 31 + entry.0 * 17) % 700) as usize;
    let seed = ledger.0.wrapping_mul(1_000_003) ^ entry.0;
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

fn entry(ledger: LedgerId, e: u64) -> Bytes {
    {
        let p = payload(ledger, EntryId(e));
        Entry::encode(ledger, EntryId(e), (e + 1) * p.len() as u64, &p)
    }
}

/// Pipelines `count` adds (at most `inflight` at once); returns the acknowledged entry ids.
/// Stops early when the connection drops.
async fn pipeline(c: &BookieClient, ledger: LedgerId, count: u64, inflight: usize) -> Vec<u64> {
    use futures::StreamExt;
    let adds = futures::stream::iter(0..count).map(|e| {
        let c = c.clone();
        async move {
            let r = c
                .add(AddEntry {
                    ledger,
                    entry: EntryId(e),
                    epoch: Epoch(1),
                    lac: e.checked_sub(inflight as u64 + 1).map(EntryId),
                    recovery: false,
                    data: entry(ledger, e),
                })
                .await;
            (e, r)
        }
    });
    let mut acked = Vec::new();
    let mut s = adds.buffer_unordered(inflight);
    while let Some((e, r)) = s.next().await {
        match r {
            Ok(()) => acked.push(e),
            Err(err) => assert!(err.is_retryable(), "add {e}: {err}"),
        }
    }
    acked.sort_unstable();
    acked
}

async fn verify(c: &BookieClient, ledger: LedgerId, acked: &[u64]) {
    use futures::StreamExt;
    let reads = futures::stream::iter(acked.iter().copied())
        .map(|e| {
            let c = c.clone();
            async move { (e, c.read(ledger, EntryId(e), None).await) }
        })
        .buffer_unordered(128);
    let results: Vec<_> = reads.collect().await;
    for (e, r) in results {
        let got = r.unwrap_or_else(|err| panic!("acked entry {ledger}/{e} lost: {err}"));
        assert_eq!(
            got.data,
            entry(ledger, e),
            "acked entry {ledger}/{e} changed"
        );
    }
}

/// kill -9 of a real bookie while 10,000 pipelined adds are in flight, `DLOG_KILL_ROUNDS`
/// times (default 20) on the same data dir: after every restart, every acknowledged entry of
/// every round so far reads back byte-equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_pipelined_adds_loses_nothing_acknowledged() {
    let rounds: u64 = std::env::var("DLOG_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bookie");
    let mut history: Vec<(LedgerId, Vec<u64>)> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(0x6b696c6c);
    for round in 0..rounds {
        let mut d = Dlogd::start(&data);
        let c = d.client().await;
        for (ledger, acked) in &history {
            verify(&c, *ledger, acked).await;
        }
        let ledger = LedgerId(1000 + round);
        // Kill at a random moment while adds are in flight.
        let delay = Duration::from_millis(rng.u64(20..400));
        let adds = tokio::spawn({
            let c = c.clone();
            async move { pipeline(&c, ledger, 10_000, 256).await }
        });
        tokio::time::sleep(delay).await;
        d.kill9();
        let acked = adds.await.unwrap();
        eprintln!(
            "round {round}: killed after {delay:?}, {} of 10000 acked",
            acked.len()
        );
        history.push((ledger, acked));
    }
    // Final check on a fresh process, then a clean stop.
    let mut d = Dlogd::start(&data);
    let c = d.client().await;
    for (ledger, acked) in &history {
        verify(&c, *ledger, acked).await;
    }
    assert!(
        history.iter().any(|(_, a)| !a.is_empty()),
        "the kills all came before any ack: the test did not test anything"
    );
    assert!(
        history.iter().any(|(_, a)| a.len() < 10_000),
        "no kill landed mid-stream: the test did not test anything"
    );
    assert!(d.sigterm().success());
}

/// SIGTERM while adds are in flight: the bookie answers what it accepted, exits 0, and
/// everything acknowledged is there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bookie");
    let mut d = Dlogd::start(&data);
    let c = d.client().await;
    let ledger = LedgerId(5);
    let adds = tokio::spawn({
        let c = c.clone();
        async move { pipeline(&c, ledger, 20_000, 128).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::task::spawn_blocking(move || d.sigterm())
        .await
        .unwrap();
    assert!(status.success(), "dlogd exited with {status}");
    let acked = adds.await.unwrap();
    assert!(!acked.is_empty());
    let mut d = Dlogd::start(&data);
    let c = d.client().await;
    verify(&c, ledger, &acked).await;
    assert!(d.sigterm().success());
}

fn dlogd(args: &[&str]) -> std::process::Output {
    Command::new(DLOGD)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

#[test]
fn cli_refuses_bad_config_and_foreign_identity_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Cluster flags and the ledger tools: each bad input named in the error.
    let meta = dir.path().join("meta");
    let meta = meta.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["bookie", "--metadata", "zk://h:1", "--check-config"],
            "unknown scheme",
        ),
        (
            vec!["bookie", "--metadata", "etcd://nohost", "--check-config"],
            "host:port",
        ),
        (
            vec![
                "bookie",
                "--metadata",
                meta,
                "--listen",
                "0.0.0.0:3181",
                "--check-config",
            ],
            "--advertise",
        ),
        (
            vec![
                "bookie",
                "--metadata",
                meta,
                "--zone",
                "a b",
                "--check-config",
            ],
            "--zone",
        ),
        (
            vec!["ledger", "describe", "--metadata", meta, "42"],
            "no such ledger 42",
        ),
        (
            vec![
                "ledger",
                "append",
                "--metadata",
                meta,
                "--write-quorum",
                "9",
            ],
            "quorums need",
        ),
    ] {
        let out = dlogd(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[journal]\nfile_size_bytes = 12345\n").unwrap();
    let out = dlogd(&[
        "bookie",
        "--config",
        bad.to_str().unwrap(),
        "--check-config",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("file_size_bytes"), "{err}");

    std::fs::write(&bad, "[jornal]\n").unwrap();
    let out = dlogd(&[
        "bookie",
        "--config",
        bad.to_str().unwrap(),
        "--check-config",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jornal"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, CONFIG).unwrap();
    let out = dlogd(&[
        "bookie",
        "--config",
        good.to_str().unwrap(),
        "--check-config",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "config ok");

    let out = dlogd(&["bookie", "--listen", "not-an-address", "--check-config"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));

    // An explicit id on an empty dir without --init, then a foreign id on a formatted dir.
    let data = dir.path().join("b");
    let d = data.to_str().unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let as_bookie_a = [
        "bookie",
        "--data-dir",
        d,
        "--listen",
        &listen,
        "--id",
        "bookie-a",
    ];
    let out = dlogd(&as_bookie_a);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--init"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("COOKIE"),
        r#"{"format":1,"bookie_id":"bookie-b","instance_id":1,"journal_salt":2,"created_unix_ms":0}"#,
    )
    .unwrap();
    let out = dlogd(&as_bookie_a);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to bookie"), "{err}");

    let out = dlogd(&["bench", "bookie", "--inflight", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--inflight"));
    let out = dlogd(&["bench", "bookie", "--addr", "127.0.0.1:1", "--seconds", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connect"));
}

#[test]
fn bench_prints_its_figures_and_a_json_line() {
    for bench in ["bookie", "ledger"] {
        bench_contract(bench);
    }
    // Impossible quorums and too few bookies are refused with a reason.
    let out = dlogd(&["bench", "ledger", "--write-quorum", "4", "--seconds", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("quorums need"));
    let out = dlogd(&["bench", "ledger", "--local-bookies", "2", "--seconds", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least that many bookies"));

    // The object tier's bench: 8 MiB offloaded to a folder, read back, cold reads.
    let out = dlogd(&["bench", "offload", "--mib", "8", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("catch-up") && stdout.contains("cold first record"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["record_bytes"].as_u64(), Some(8 << 20));
    for k in [
        "offload_mb_per_s",
        "catchup_mb_per_s",
        "cold_first_record_p50_ms",
    ] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {v}");
    }
    for (args, text) in [
        (vec!["bench", "offload", "--mib", "0"], "--mib"),
        (
            vec!["bench", "offload", "--bucket", "gs://x", "--mib", "1"],
            "s3://bucket/prefix",
        ),
    ] {
        let out = dlogd(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(text), "{args:?}: {err}");
    }
}

fn bench_contract(bench: &str) {
    let out = Command::new(DLOGD)
        .args([
            "bench",
            bench,
            "--entry-size",
            "512",
            "--inflight",
            "32",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("records/s") && stdout.contains("p99"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for k in ["mb_per_s", "records_per_s", "p50_ms", "p99_ms", "p999_ms"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {last}");
    }
    assert_eq!(v["errors"], 0);
}

/// Bookie processes in a cluster on a real etcd, with writer processes and faults.
#[path = "process/cluster.rs"]
mod cluster;
#[path = "process/services.rs"]
mod services;
#[path = "process/streams.rs"]
mod streams;
#[path = "process/tiering.rs"]
mod tiering;
