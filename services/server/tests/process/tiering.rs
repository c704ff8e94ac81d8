//! The object tier end to end through `dlogd standalone` and the `dlog` CLI: appends roll into
//! segments, `dlog offload --seal` moves everything to the object tier (the standalone's own
//! folder, or a real S3-compatible server), the bookie copies go, and reads — also after a
//! restart — return every record from the objects.

use dlog_objects::testing::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};

use super::free_port;
use super::services::{Standalone, dlog, dlog_env};

/// Appends `n` lines through the CLI into a stream of 1 MiB segments, offloads with --seal,
/// and reads everything back; returns the offloaded object keys.
fn append_offload_read(sa: &Standalone, n: usize) -> Vec<String> {
    let srv = sa.addr.clone();
    let (code, _, err) = dlog(
        &srv,
        &["stream", "create", "tier/s", "--segment-bytes", "1MiB"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<String> = (0..n)
        .map(|i| format!("{i:06}-{}", "p".repeat(600)))
        .collect();
    let input = lines.join("\n") + "\n";
    let (code, _, err) = dlog(&srv, &["append", "tier/s"], &input);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = dlog(&srv, &["offload", "tier/s", "--seal", "--json"], "");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let segs = v["segments"].as_array().unwrap();
    // Small segments are compacted: several segments, in as many objects or fewer.
    let in_objects: usize = segs
        .iter()
        .map(|o| o["segments"].as_array().unwrap().len())
        .sum();
    assert!(in_objects >= 2, "{v}");
    assert_eq!(
        segs.last().unwrap()["end_offset"].as_u64(),
        Some(n as u64),
        "{v}"
    );
    // Offloading again: nothing new.
    let (code, out, _) = dlog(&srv, &["offload", "tier/s"], "");
    assert_eq!(code, 0);
    assert!(out.contains("nothing new to offload"), "{out}");

    let (code, out, _) = dlog(&srv, &["stream", "describe", "tier/s", "--json"], "");
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut keys = Vec::new();
    for g in info["segments"].as_array().unwrap() {
        if let Some(k) = g["object_key"].as_str() {
            // The standalone's grace is 0 here: the bookie copies are gone already.
            assert_eq!(g["tier"], "objects", "{g}");
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
    }
    assert_eq!(keys.len(), segs.len());
    let (code, out, err) = dlog(&srv, &["read", "tier/s"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, input);
    keys
}

#[test]
fn offload_to_the_standalone_folder_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--offload-grace", "0s"];
    let sa = Standalone::start_with(&data, free_port(), free_port(), &args, &[]);
    let keys = append_offload_read(&sa, 5_000);
    for k in &keys {
        assert!(data.join("objects").join(k).is_file(), "{k}");
    }
    assert!(data.join("objects/streams/tier/s/_manifest").is_dir());
    // After a restart everything is still read from the folder.
    drop(sa);
    let sa = Standalone::start_with(&data, free_port(), free_port(), &args, &[]);
    let (code, out, err) = dlog(&sa.addr, &["read", "tier/s"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5_000);
    // With no cluster at all, `dlog replay` reads the folder.
    drop(sa);
    let bucket = format!("file://{}", data.join("objects").display());
    let replay = |args: &[&str]| {
        dlog(
            "127.0.0.1:1",
            &[&["replay", "--bucket", &bucket][..], args].concat(),
            "",
        )
    };
    let (code, out, err) = replay(&["tier/s"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5_000);
    assert!(
        out.lines()
            .enumerate()
            .all(|(i, l)| l.starts_with(&format!("{i:06}-")))
    );
    let (code, out, err) = replay(&["tier/s", "--from", "1234", "--max", "3", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let offsets: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, [1234, 1235, 1236]);
    for (args, text) in [
        (vec!["tier/none"], "no manifest"),
        (
            vec!["tier/s", "--from", "99999"],
            "outside the offloaded range",
        ),
    ] {
        let (code, _, err) = replay(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(text), "{args:?}: {err}");
    }
    let (code, _, err) = dlog(
        "127.0.0.1:1",
        &["replay", "--bucket", "gs://x", "tier/s"],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("s3://bucket/prefix"), "{err}");
    // A mistyped folder is an error, and readers do not create it.
    let missing = data.join("no-such-objects");
    let url = format!("file://{}", missing.display());
    for args in [
        vec!["replay", "--bucket", &url, "tier/s"],
        vec!["query", "--bucket", &url, "SELECT 1"],
    ] {
        let (code, _, err) = dlog("127.0.0.1:1", &args, "");
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains("no such folder"), "{args:?}: {err}");
    }
    assert!(!missing.exists(), "a reader created {}", missing.display());

    // Bad input: an unknown stream, and a stream name that is not one.
    let sa = Standalone::start_with(&data, free_port(), free_port(), &args, &[]);
    let (code, _, err) = dlog(&sa.addr, &["offload", "tier/none"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no such stream"), "{err}");
    let (code, _, err) = dlog(&sa.addr, &["offload", "nonsense"], "");
    assert_ne!(code, 0);
    assert!(err.contains("NAMESPACE/NAME"), "{err}");
    // The scrubber: a planted orphan is reported, kept while young, deleted by --repair.
    let orphan_key =
        "streams/tier/s/dt=2020-01-01/00000000000099999999-00000000000100000000.parquet";
    let orphan = data.join("objects").join(orphan_key);
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"not a segment").unwrap();
    let (code, out, err) = dlog(&sa.addr, &["scrub", "tier/s", "--repair"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("orphan   {orphan_key}\n")), "{out}");
    assert!(out.contains("1 orphan(s), 0 deleted, 0 missing"), "{out}");
    assert!(orphan.exists());
    let (code, out, err) = dlog(
        &sa.addr,
        &["scrub", "tier/s", "--repair", "--min-age", "0s", "--json"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deleted"], serde_json::json!([orphan_key]), "{v}");
    assert!(!orphan.exists());
    // Truncation reaches the bucket: replay starts at the new start.
    let (code, _, err) = dlog(
        &sa.addr,
        &["stream", "truncate", "tier/s", "--offset", "2500"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    drop(sa);
    let (code, out, err) = replay(&["tier/s", "--max", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("002500-"), "{out}");

    // The whole standalone is lost but its objects: a new one restores the stream from them.
    let fresh = dir.path().join("fresh");
    let out = std::process::Command::new(super::DLOGD)
        .args(["restore", "--bucket", &bucket, "--metadata"])
        .arg(fresh.join("metadata"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tier/s: restored"), "{stdout}");
    let store = format!("--object-store={bucket}");
    let sa = Standalone::start_with(&fresh, free_port(), free_port(), &[store.as_str()], &[]);
    let (code, out, err) = dlog(&sa.addr, &["read", "tier/s"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2_500);
    assert!(out.starts_with("002500-"));
    // And appends go on after the restored history.
    let (code, _, err) = dlog(&sa.addr, &["append", "tier/s"], "after-restore\n");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = dlog(&sa.addr, &["read", "tier/s", "--from", "5000"], "");
    assert_eq!(out, "after-restore\n");
    // An object lost from the bucket is reported missing, and the scrub fails.
    let lost = walk(&data.join("objects/streams/tier/s"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::remove_file(&lost).unwrap();
    let (code, out, err) = dlog(&sa.addr, &["scrub", "tier/s"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing  streams/tier/s/"), "{out}");
    assert!(err.contains("missing from the bucket"), "{err}");
    // Deleting the stream deletes its objects and manifests too.
    let (code, _, err) = dlog(&sa.addr, &["stream", "delete", "tier/s"], "");
    assert_eq!(code, 0, "{err}");
    let left: Vec<_> = walk(&data.join("objects/streams/tier/s"));
    assert!(left.is_empty(), "{left:?}");
    let (code, _, err) = replay(&["tier/s"]);
    assert_ne!(code, 0);
    assert!(err.contains("no manifest"), "{err}");
}

/// Files under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn offload_to_an_s3_server_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    wait_for_bucket(&server);
    let url = format!("s3://{BUCKET}/standalone");
    let args = ["--offload-grace", "0s", "--object-store", url.as_str()];
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
    ];
    let sa = Standalone::start_with(
        &dir.path().join("data"),
        free_port(),
        free_port(),
        &args,
        &env,
    );
    let keys = append_offload_read(&sa, 3_000);
    assert!(
        keys.iter().all(|k| k.starts_with("streams/tier/s/dt=")),
        "{keys:?}"
    );
    // The objects are in the bucket, under the prefix.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listed = rt.block_on(async {
        let b = server.bucket("standalone").await;
        b.list("streams/tier/s").await.unwrap()
    });
    for k in &keys {
        assert!(listed.iter().any(|(l, _)| l == k), "{k} not in {listed:?}");
    }
    // Replay straight from the S3 server, with the standalone stopped.
    drop(sa);
    let (code, out, err) = dlog_env(
        "127.0.0.1:1",
        &["replay", "--bucket", &url, "tier/s", "--from", "2990"],
        "",
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 10);
    assert!(out.starts_with("002990-"), "{out}");
    // And SQL over it, from the same bucket.
    let (code, out, err) = dlog_env(
        "127.0.0.1:1",
        &[
            "query",
            "--bucket",
            &url,
            "--csv",
            "SELECT count(*) AS n, max(offset) AS last FROM stream('tier/s')",
        ],
        "",
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "n,last\n3000,2999\n");
}

/// The bucket is created by the server at start; wait until it answers.
fn wait_for_bucket(server: &S3Server) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(server.bucket("probe"));
}

/// A stream whose policy says `offload_after` is offloaded by the service itself.
#[test]
fn the_policy_offloads_sealed_segments_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--offload-grace", "0s"];
    let sa = Standalone::start_with(
        &dir.path().join("data"),
        free_port(),
        free_port(),
        &args,
        &[],
    );
    let srv = sa.addr.clone();
    let (code, _, err) = dlog(
        &srv,
        &[
            "stream",
            "create",
            "tier/auto",
            "--segment-bytes",
            "1MiB",
            "--offload-after",
            "0s",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = dlog(&srv, &["stream", "describe", "tier/auto"], "");
    assert!(out.contains(" after the seal"), "{out}");
    let input: String = (0..4_000)
        .map(|i| format!("{i:06}-{}\n", "q".repeat(600)))
        .collect();
    let (code, _, err) = dlog(&srv, &["append", "tier/auto"], &input);
    assert_eq!(code, 0, "{err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, out, _) = dlog(&srv, &["stream", "describe", "tier/auto", "--json"], "");
        let info: serde_json::Value = serde_json::from_str(&out).unwrap();
        let segs = info["segments"].as_array().unwrap().clone();
        let sealed = segs.iter().filter(|g| g["state"] == "sealed").count();
        let offloaded = segs.iter().filter(|g| g["tier"] == "objects").count();
        if sealed >= 1 && offloaded == sealed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not offloaded: {info}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, out, _) = dlog(&srv, &["read", "tier/auto"], "");
    assert_eq!((code, out.as_str()), (0, input.as_str()));
}

/// The round trip of issue 5: a million records across many segments, offloaded, their
/// bookie copies deleted, then read back through the service, through `dlog replay` with no
/// cluster running, and by pyarrow and DuckDB reading the folder — each byte-equal with what
/// was appended, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_records_round_trip_through_every_reader() {
    use dlog_client::{Client, ReaderOptions, Record, StartAt, StreamName, WriterOptions};
    use futures::StreamExt;
    const N: u64 = 1_000_000;
    let payload = |i: u64| -> Vec<u8> {
        let mut p = format!("{i:07}:").into_bytes();
        p.resize(20 + (i as usize * 7919) % 90, b'a' + (i % 26) as u8);
        p
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sa = Standalone::start_with(
        &data,
        free_port(),
        free_port(),
        &["--offload-grace", "0s"],
        &[],
    );
    let client = Client::connect(&sa.addr).await.unwrap();
    let s: StreamName = "tier/million".parse().unwrap();
    let policy = dlog_api::stream::StreamPolicy {
        segment_bytes: 2 << 20,
        ..dlog_api::stream::StreamPolicy::default()
    };
    client
        .admin()
        .create_stream(&s, Some(policy))
        .await
        .unwrap();
    let w = client.writer(&s, WriterOptions::default());
    let mut last = None;
    for i in 0..N {
        let mut r = Record::new(payload(i));
        if i.is_multiple_of(10) {
            r.key = Some(format!("k{}", i % 100).into_bytes().into());
        }
        last = Some(w.append(r).await);
    }
    assert_eq!(last.unwrap().await.unwrap().0, N - 1);
    w.flush().await.unwrap();

    let (code, out, err) = dlog(
        &sa.addr,
        &["offload", "tier/million", "--seal", "--json"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let in_objects: usize = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["segments"].as_array().unwrap().len())
        .sum();
    assert!(in_objects >= 10, "{v}");
    let info = client.admin().describe_stream(&s).await.unwrap();
    assert!(
        info.segments
            .iter()
            .filter(|g| g.end_offset > g.first_offset)
            .all(|g| g.tier == "objects")
    );

    // Through the service (from the objects: the bookie copies are gone).
    let mut r = client.reader(
        &s,
        ReaderOptions {
            start: StartAt::Beginning,
            ..ReaderOptions::default()
        },
    );
    let mut n = 0u64;
    while let Some(x) = r.next().await {
        let x = x.unwrap();
        assert_eq!(
            (x.offset, x.record.payload.as_ref()),
            (n, payload(n).as_slice())
        );
        assert_eq!(x.record.key.is_some(), n.is_multiple_of(10));
        n += 1;
    }
    assert_eq!(n, N);
    drop((r, w, client));
    drop(sa);

    // The expected bytes, for the tools below.
    let mut expected = Vec::with_capacity(80 * N as usize);
    for i in 0..N {
        expected.extend_from_slice(&payload(i));
        expected.push(b'\n');
    }
    let expected_path = dir.path().join("expected.txt");
    std::fs::write(&expected_path, &expected).unwrap();

    // dlog replay, no cluster running.
    let bucket = format!("file://{}", data.join("objects").display());
    let out = std::process::Command::new(super::services::dlog_bin())
        .args(["replay", "--bucket", &bucket, "tier/million"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == expected,
        "dlog replay differs from what was appended"
    );

    // dlog query, no cluster running: the same totals, and a count by key.
    let query = |args: &[&str]| {
        let out = std::process::Command::new(super::services::dlog_bin())
            .args([&["query", "--bucket", &bucket][..], args].concat())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            stderr,
        )
    };
    let payload_bytes = expected.len() as u64 - N;
    let (code, out, err) = query(&[
        "--csv",
        "SELECT count(*) AS n, count(DISTINCT \"offset\") AS d, \
         sum(octet_length(CAST(payload AS VARCHAR))) AS b, count(key) AS k \
         FROM stream('tier/million')",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!("n,d,b,k\n{N},{N},{payload_bytes},{}\n", N / 10)
    );
    let (code, out, err) = query(&[
        "--json",
        "SELECT key, count(*) AS n FROM stream('tier/million') WHERE key IS NOT NULL \
         GROUP BY key ORDER BY key",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every tenth record has a key, k0 … k90: 10,000 records each.
    let keys: Vec<String> = (0..100).step_by(10).map(|k| format!("k{k}")).collect();
    assert_eq!(rows.len(), keys.len(), "{out}");
    for (row, k) in rows.iter().zip(&keys) {
        assert_eq!(
            (row["key"].as_str(), row["n"].as_u64()),
            (Some(k.as_str()), Some(10_000))
        );
    }
    let (code, out, err) =
        query(&["SELECT \"offset\" FROM stream('tier/million') WHERE \"offset\" = 123456"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("| 123456 |"), "{out}");
    assert!(err.contains("(1 row)"), "{err}");
    for (sql, says) in [
        ("SELECT * FROM stream('tier/none')", "nothing offloaded"),
        ("SELECT FROM WHERE", "error: "),
        (
            "COPY (SELECT 1) TO '/tmp/dlog-query-copy.csv'",
            "not supported",
        ),
    ] {
        let (code, _, err) = query(&[sql]);
        assert_eq!(code, Some(1), "{sql}");
        assert!(err.contains(says), "{sql}: {err}");
    }

    // pyarrow and DuckDB read the folder.
    let venv = std::env::var("DLOG_TEST_VENV")
        .unwrap_or_else(|_| format!("{}/../../target/test-venv", env!("CARGO_MANIFEST_DIR")));
    let py = r#"
import sys, pyarrow.dataset as ds, duckdb
root, expected_path = sys.argv[1], sys.argv[2]
expected = open(expected_path, "rb").read()
d = root + "/streams/tier/million"
t = ds.dataset(d, format="parquet", partitioning="hive").to_table().sort_by("offset")
assert t.column("offset").to_pylist() == list(range(1000000)), "offsets"
got = b"".join(p + b"\n" for p in t.column("payload").to_pylist())
assert got == expected, "pyarrow payloads differ"
n, distinct, total, keyed = duckdb.connect().execute(
  'SELECT count(*), count(DISTINCT "offset"), sum(octet_length(payload)), count(key) FROM read_parquet(?)',
  [d + "/*/*.parquet"]).fetchone()
print("ok", n, distinct, total, keyed)
"#;
    let out = std::process::Command::new(format!("{venv}/bin/python"))
        .arg("-c")
        .arg(py)
        .arg(data.join("objects"))
        .arg(&expected_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("ok {N} {N} {payload_bytes} {}", N / 10),
        "DuckDB"
    );
}

/// kill -9 of the standalone while it offloads, four times at different moments (after the
/// first, fourth, seventh and tenth object appeared in the bucket); after each restart a new
/// `dlog offload` finishes what the killed one started. In the end every record reads back
/// once and in order (no bookie copy was deleted before its object was committed), and the
/// bucket holds exactly the objects of the newest manifest (no duplicate, no orphan).
#[test]
fn kill_9_during_offload_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // One object per segment, so that an offload has many steps to be killed between.
    let args = ["--offload-grace", "0s", "--compact-below", "0"];
    let mut sa = Standalone::start_with(&data, free_port(), free_port(), &args, &[]);
    let (code, _, err) = dlog(
        &sa.addr,
        &["stream", "create", "tier/k", "--segment-bytes", "1MiB"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<String> = (0..60_000)
        .map(|i| format!("{i:06}-{}", "k".repeat(200)))
        .collect();
    let input = lines.join("\n") + "\n";
    let (code, _, err) = dlog(&sa.addr, &["append", "tier/k"], &input);
    assert_eq!(code, 0, "{err}");

    let objects = data.join("objects/streams/tier/k");
    let parquet = |d: &std::path::Path| -> Vec<std::path::PathBuf> {
        walk(d)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect()
    };
    for kill_after in [1, 4, 7, 10] {
        let mut offload = std::process::Command::new(super::services::dlog_bin())
            .args(["--server", &sa.addr, "offload", "tier/k", "--seal"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while parquet(&objects).len() < kill_after
            && offload.try_wait().unwrap().is_none()
            && t.elapsed() < std::time::Duration::from_secs(60)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // kill -9 (Standalone's drop sends SIGKILL), then restart on the same data.
        drop(sa);
        let _ = offload.wait();
        sa = Standalone::start_with(&data, free_port(), free_port(), &args, &[]);
    }
    let (code, _, err) = dlog(&sa.addr, &["offload", "tier/k", "--seal"], "");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = dlog(&sa.addr, &["read", "tier/k"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out == input, "the stream differs from what was appended");
    let (code, out, _) = dlog(&sa.addr, &["stream", "describe", "tier/k", "--json"], "");
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    let segs = info["segments"].as_array().unwrap();
    assert!(segs.len() >= 10, "{info}");
    assert!(
        segs.iter()
            .filter(|g| g["end_offset"].as_u64() > g["first_offset"].as_u64())
            .all(|g| g["tier"] == "objects"),
        "{info}"
    );

    // The bucket: exactly the newest manifest's objects.
    let newest = walk(&objects.join("_manifest"))
        .into_iter()
        .max()
        .expect("a manifest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&newest).unwrap()).unwrap();
    let mut listed: Vec<String> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    let root = data.join("objects");
    let mut present: Vec<String> = parquet(&objects)
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    listed.sort();
    present.sort();
    assert_eq!(present, listed);
    let ends: Vec<u64> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["end_offset"].as_u64().unwrap())
        .collect();
    assert_eq!(ends.last(), Some(&60_000));
}
