//! SQL over offloaded segments, against a local folder and a real S3-compatible server
//! (SeaweedFS on 127.0.0.1, started here): aggregates, offset and time filters, truncation,
//! orphans never read, the output formats, and every kind of bad query refused with a clear
//! error.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use dlog_api::Record;
use dlog_api::stream::StreamName;
use dlog_objects::layout::segment_key;
use dlog_objects::testing::S3Server;
use dlog_objects::{Bucket, Manifest, Manifests, ObjectEntry, SegmentOptions, SegmentWriter};
use dlog_query::{OutputFormat, QueryEngine, QueryError, QueryOptions, print_batches};

const T0: i64 = 1_764_115_200_000;
/// The objects of the test stream: offsets [0, 1000), [1000, 2500), [2500, 3000).
const OBJECTS: [(u64, u64); 3] = [(0, 1000), (1000, 2500), (2500, 3000)];
const END: u64 = 3000;

/// The record at `offset`: key `key-(offset % 7)` except every tenth (no key); a text
/// payload; one millisecond apart; txids from 100 on.
fn record(offset: u64) -> Record {
    Record {
        payload: Bytes::from(format!("payload-{offset}")),
        key: (!offset.is_multiple_of(10)).then(|| Bytes::from(format!("key-{}", offset % 7))),
        timestamp_ms: T0 + offset as i64,
        txid: (offset >= 100).then_some(offset),
    }
}

/// Writes records `[first, end)` as one object, small row groups so that pruning matters.
async fn put_object(b: &Bucket, s: &StreamName, first: u64, end: u64) -> ObjectEntry {
    let opts = SegmentOptions {
        row_group_bytes: 8 << 10,
        ..SegmentOptions::default()
    };
    let mut w = SegmentWriter::new(s, first, opts).unwrap();
    for o in first..end {
        w.push(o, &record(o)).unwrap();
    }
    let (bytes, sum) = w.finish(&[first]).unwrap();
    let key = segment_key(s, first, end - 1, sum.first_timestamp_ms.unwrap());
    b.put_new(&key, bytes.clone()).await.unwrap();
    ObjectEntry::new(key, bytes.len() as u64, &sum, vec![first], 0)
}

/// The test stream offloaded as three objects (manifest version 1), plus an orphan object
/// holding offsets past the end that no manifest lists.
async fn offload(b: &Bucket) -> (StreamName, Manifest) {
    let s: StreamName = "app/events".parse().unwrap();
    let mut objects = Vec::new();
    for (first, end) in OBJECTS {
        objects.push(put_object(b, &s, first, end).await);
    }
    put_object(b, &s, END, END + 500).await; // the orphan
    let m = Manifest {
        version: 1,
        objects,
        ..Manifest::empty(&s)
    };
    Manifests::new(b.clone()).commit(&m).await.unwrap();
    (s, m)
}

/// Runs `sql` and prints it as CSV without a header.
async fn csv(engine: &QueryEngine, sql: &str) -> String {
    let mut out = Vec::new();
    print_batches(
        engine.run(sql).await.unwrap(),
        OutputFormat::Csv,
        &mut out,
        usize::MAX,
    )
    .await
    .unwrap();
    let s = String::from_utf8(out).unwrap();
    s.split_once('\n')
        .map(|(_, rows)| rows.to_string())
        .unwrap()
}

async fn suite(b: Bucket) {
    let (_, m) = offload(&b).await;
    let engine = QueryEngine::new(b.clone(), &QueryOptions::default()).unwrap();

    // Everything, and not the orphan.
    assert_eq!(
        csv(
            &engine,
            "SELECT count(*), min(\"offset\"), max(\"offset\") FROM stream('app/events')"
        )
        .await,
        "3000,0,2999\n"
    );
    // Count by key.
    let got = csv(
        &engine,
        "SELECT key, count(*) FROM stream('app/events') GROUP BY key ORDER BY key NULLS FIRST",
    )
    .await;
    let mut no_key = 0u64;
    let mut by_key = std::collections::BTreeMap::new();
    for o in 0..END {
        match record(o).key {
            None => no_key += 1,
            Some(k) => {
                *by_key
                    .entry(String::from_utf8(k.to_vec()).unwrap())
                    .or_insert(0u64) += 1
            }
        }
    }
    let mut expected = format!(",{no_key}\n");
    for (k, n) in by_key {
        expected.push_str(&format!("{k},{n}\n"));
    }
    assert_eq!(got, expected);

    // An offset range across an object boundary, payloads as text.
    assert_eq!(
        csv(
            &engine,
            "SELECT \"offset\", CAST(payload AS VARCHAR) FROM stream('app/events') \
             WHERE \"offset\" BETWEEN 998 AND 1001 ORDER BY \"offset\""
        )
        .await,
        "998,payload-998\n999,payload-999\n1000,payload-1000\n1001,payload-1001\n"
    );
    // A time range and txids.
    let from = T0 + 2600;
    assert_eq!(
        csv(
            &engine,
            &format!(
                "SELECT count(*), min(txid) FROM stream('app/events') WHERE timestamp_ms >= {from}"
            )
        )
        .await,
        "400,2600\n"
    );
    assert_eq!(
        csv(&engine, "SELECT count(txid) FROM stream('app/events')").await,
        "2900\n"
    );
    // LIMIT without ORDER BY still gives that many rows.
    assert_eq!(
        csv(&engine, "SELECT payload FROM stream('app/events') LIMIT 7")
            .await
            .lines()
            .count(),
        7
    );

    // Truncation moves the manifest's start into the second object: the rows below it are
    // gone from every query, including ones that do not select the offset.
    let truncated = Manifest {
        version: 2,
        start_offset: 1500,
        objects: m.objects[1..].to_vec(),
        ..m.clone()
    };
    Manifests::new(b.clone()).commit(&truncated).await.unwrap();
    assert_eq!(
        csv(
            &engine,
            "SELECT count(*), min(\"offset\") FROM stream('app/events')"
        )
        .await,
        "1500,1500\n"
    );
    let payloads = csv(
        &engine,
        "SELECT CAST(payload AS VARCHAR) FROM stream('app/events') WHERE key = 'key-1'",
    )
    .await;
    let want: Vec<String> = (1500..END)
        .filter(|o| record(*o).key.as_deref() == Some(b"key-1".as_slice()))
        .map(|o| format!("payload-{o}"))
        .collect();
    let mut got: Vec<&str> = payloads.lines().collect();
    got.sort_by_key(|p| p["payload-".len()..].parse::<u64>().unwrap());
    assert_eq!(got, want);
    assert_eq!(
        csv(
            &engine,
            "SELECT CAST(payload AS VARCHAR) FROM stream('app/events') LIMIT 2"
        )
        .await
        .lines()
        .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    suite(Bucket::local(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_an_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    suite(server.bucket("query").await).await;
}

/// Runs `sql` and returns its error.
async fn error(engine: &QueryEngine, sql: &str) -> QueryError {
    match engine.run(sql).await {
        Err(e) => e,
        Ok(mut rows) => {
            use futures::StreamExt;
            while let Some(b) = rows.next().await {
                if let Err(e) = b {
                    return e.into();
                }
            }
            panic!("{sql}: no error")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bucket::local(&dir.path().join("bucket")).unwrap();
    offload(&b).await;
    let engine = QueryEngine::new(b.clone(), &QueryOptions::default()).unwrap();
    let outside = dir.path().join("written.csv");
    for (sql, says) in [
        ("", "empty query"),
        ("SELEC 1", "SELEC"),
        ("SELECT * FROM stream('app/nothing')", "nothing offloaded"),
        ("SELECT * FROM stream('bad name!')", "stream('bad name!')"),
        ("SELECT * FROM stream(42)", "stream('NAMESPACE/NAME')"),
        (
            "SELECT * FROM stream('a/b', 'c/d')",
            "stream('NAMESPACE/NAME')",
        ),
        ("SELECT nope FROM stream('app/events')", "nope"),
        ("SELECT * FROM events", "events"),
        (
            &format!("COPY (SELECT 1) TO '{}'", outside.display()),
            "not supported",
        ),
        (
            &format!(
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{}'",
                outside.display()
            ),
            "not supported",
        ),
        ("SET datafusion.execution.batch_size = 1", "not supported"),
    ] {
        let e = error(&engine, sql).await;
        assert!(matches!(e, QueryError::Invalid(_)), "{sql}: {e:?}");
        assert!(
            e.to_string().to_lowercase().contains(&says.to_lowercase()),
            "{sql}: {e}"
        );
    }
    assert!(!outside.exists(), "a query wrote a file");

    // Unquoted, `offset` still names the column (DuckDB and Spark need it quoted).
    assert_eq!(
        csv(
            &engine,
            "SELECT offset FROM stream('app/events') WHERE offset > 2997 ORDER BY offset"
        )
        .await,
        "2998\n2999\n"
    );

    // Past its memory a query fails with a clear error instead of taking the host's memory.
    let small = QueryEngine::new(
        b.clone(),
        &QueryOptions {
            memory_limit: 64 << 10,
            target_partitions: Some(1),
        },
    )
    .unwrap();
    let e = error(
        &small,
        "SELECT payload FROM stream('app/events') ORDER BY payload DESC",
    )
    .await;
    assert!(matches!(e, QueryError::ResourcesExhausted(_)), "{e:?}");

    // A corrupt object (one the manifest lists, overwritten on disk) is an error, not a panic.
    let first = Manifests::new(b.clone())
        .latest(&"app/events".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .objects[0]
        .key
        .clone();
    std::fs::write(
        dir.path().join("bucket").join(&first),
        b"not parquet at all",
    )
    .unwrap();
    let e = error(&engine, "SELECT count(*) FROM stream('app/events')").await;
    assert!(!matches!(e, QueryError::Internal(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_tables_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bucket::local(dir.path()).unwrap();
    offload(&b).await;
    let engine = QueryEngine::new(b, &QueryOptions::default()).unwrap();
    let sql = "SELECT \"offset\", key, payload FROM stream('app/events') \
               WHERE \"offset\" IN (10, 11) ORDER BY \"offset\"";
    let print = |format, max| {
        let engine = &engine;
        async move {
            let mut out = Vec::new();
            let printed = print_batches(engine.run(sql).await.unwrap(), format, &mut out, max)
                .await
                .unwrap();
            (String::from_utf8(out).unwrap(), printed)
        }
    };
    let (table, printed) = print(OutputFormat::Table, 100).await;
    assert_eq!(printed.rows, 2);
    assert!(!printed.truncated);
    assert!(table.contains("| offset | key   | payload    |"), "{table}");
    assert!(table.contains("| 11     | key-4 | payload-11 |"), "{table}");
    let (table, printed) = print(OutputFormat::Table, 1).await;
    assert!(printed.truncated);
    assert!(!table.contains("payload-11"), "{table}");
    let (json, _) = print(OutputFormat::Json, 0).await;
    assert_eq!(
        json,
        "{\"offset\":10,\"payload\":\"payload-10\"}\n{\"offset\":11,\"key\":\"key-4\",\"payload\":\"payload-11\"}\n"
    );
    let (csv, _) = print(OutputFormat::Csv, 0).await;
    assert_eq!(
        csv,
        "offset,key,payload\n10,,payload-10\n11,key-4,payload-11\n"
    );
}
