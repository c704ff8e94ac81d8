//! The control plane on an in-process node (embedded metadata, three real bookies), driven with
//! `tower::ServiceExt::oneshot`: every route, and a clear 4xx for every kind of bad input.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use dlog_ledger::local::{LocalBookie, start_bookies};
use dlog_ledger::{LedgerClient, LedgerOptions};
use dlog_log::{Log, SystemClock};
use dlog_metadata::{EmbeddedOptions, EmbeddedStore, MetadataStore};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::service::{Service, ServiceOptions};

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    bookies: Vec<LocalBookie>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetadataStore> = Arc::new(
        EmbeddedStore::open(dir.path().join("meta"), EmbeddedOptions::default())
            .await
            .unwrap(),
    );
    let bookies = start_bookies(store.clone(), dir.path(), 3, |c| {
        c.journal.file_size = 16 << 20;
    })
    .await
    .unwrap();
    let log = Log::new(
        store.clone(),
        LedgerClient::new(store, LedgerOptions::default()),
        Arc::new(SystemClock),
    );
    let svc = Service::new(log, ServiceOptions::default()).unwrap();
    Fixture {
        _dir: dir,
        app: super::app(svc),
        bookies,
    }
}

async fn call(app: &axum::Router, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

fn error_code(v: &Value) -> u64 {
    v["error"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_errors() {
    let f = fixture().await;
    let app = &f.app;
    assert_eq!(
        call(app, Method::GET, "/health", "").await.0,
        StatusCode::OK
    );
    let (s, v) = call(app, Method::GET, "/ready", "").await;
    assert_eq!((s, v["bookies"].as_u64()), (StatusCode::OK, Some(3)));

    // Create, list, describe.
    let (s, v) = call(app, Method::POST, "/api/v1/streams", r#"{"stream":"ns/a"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["stream"], "ns/a");
    assert_eq!(v["policy"]["ack_quorum"], 2);
    let body = json!({"stream": "ns/b", "policy": {"segment_bytes": 2097152}}).to_string();
    assert_eq!(
        call(app, Method::POST, "/api/v1/streams", &body).await.0,
        StatusCode::CREATED
    );
    let (s, v) = call(app, Method::GET, "/api/v1/streams?namespace=ns", "").await;
    assert_eq!(
        (s, v["streams"].clone()),
        (StatusCode::OK, json!(["ns/a", "ns/b"]))
    );
    let (s, v) = call(app, Method::GET, "/api/v1/streams/ns/b", "").await;
    assert_eq!(
        (s, v["policy"]["segment_bytes"].as_u64()),
        (StatusCode::OK, Some(2097152))
    );
    let (_, v) = call(app, Method::GET, "/api/v1/namespaces", "").await;
    assert_eq!(v["namespaces"], json!(["ns"]));

    // Policy update and truncation of an empty stream.
    let (s, v) = call(
        app,
        Method::PUT,
        "/api/v1/streams/ns/b/policy",
        r#"{"retention_age_ms": 60000}"#,
    )
    .await;
    assert_eq!(
        (s, v["policy"]["retention_age_ms"].as_u64()),
        (StatusCode::OK, Some(60000))
    );
    let (s, v) = call(
        app,
        Method::POST,
        "/api/v1/streams/ns/b/truncate",
        r#"{"offset":0}"#,
    )
    .await;
    assert_eq!(
        (s, v["start_offset"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{v}"
    );

    // Bad input: each a 4xx with a JSON error naming the problem.
    let cases: &[(Method, &str, &str, StatusCode, u64, &str)] = &[
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"ns/a"}"#,
            StatusCode::CONFLICT,
            61,
            "already exists",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"no-slash"}"#,
            StatusCode::BAD_REQUEST,
            5,
            "NAMESPACE/NAME",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"a/b c"}"#,
            StatusCode::BAD_REQUEST,
            5,
            "only letters",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            "{not json",
            StatusCode::BAD_REQUEST,
            5,
            "request body",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"ns/c","extra":1}"#,
            StatusCode::BAD_REQUEST,
            5,
            "unknown field",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"ns/c","policy":{"ack_quorum":3,"write_quorum":2}}"#,
            StatusCode::BAD_REQUEST,
            66,
            "ack_quorum",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"ns/c","policy":{"ensemble":2}}"#,
            StatusCode::BAD_REQUEST,
            66,
            "write_quorum",
        ),
        (
            Method::POST,
            "/api/v1/streams",
            r#"{"stream":"ns/c","policy":{"segment_bytes":-1}}"#,
            StatusCode::BAD_REQUEST,
            5,
            "segment_bytes",
        ),
        (
            Method::GET,
            "/api/v1/streams/ns/missing",
            "",
            StatusCode::NOT_FOUND,
            60,
            "no such stream",
        ),
        (
            Method::DELETE,
            "/api/v1/streams/ns/missing",
            "",
            StatusCode::NOT_FOUND,
            60,
            "no such stream",
        ),
        (
            Method::GET,
            "/api/v1/streams/ns/bad%20name",
            "",
            StatusCode::BAD_REQUEST,
            65,
            "stream name",
        ),
        (
            Method::GET,
            "/api/v1/streams?namespace=bad%20ns",
            "",
            StatusCode::BAD_REQUEST,
            65,
            "namespace",
        ),
        (
            Method::POST,
            "/api/v1/streams/ns/a/truncate",
            r#"{"offset":5}"#,
            StatusCode::BAD_REQUEST,
            64,
            "outside",
        ),
        (
            Method::POST,
            "/api/v1/streams/ns/a/truncate",
            r#"{"offset":"x"}"#,
            StatusCode::BAD_REQUEST,
            5,
            "offset",
        ),
        (
            Method::PUT,
            "/api/v1/streams/ns/a/policy",
            r#"{"compression":"rar"}"#,
            StatusCode::BAD_REQUEST,
            5,
            "compression",
        ),
        (
            Method::POST,
            "/api/v1/bookies/Bad_Id/decommission",
            "",
            StatusCode::BAD_REQUEST,
            65,
            "bookie id",
        ),
        (
            Method::POST,
            "/api/v1/bookies/bookie-9/decommission",
            "",
            StatusCode::NOT_FOUND,
            5,
            "no registered bookie",
        ),
        (
            Method::GET,
            "/api/v1/nothing-here",
            "",
            StatusCode::NOT_FOUND,
            5,
            "no such route",
        ),
    ];
    for (m, uri, body, status, code, text) in cases {
        let (s, v) = call(app, m.clone(), uri, body).await;
        assert_eq!(s, *status, "{m} {uri} {body}: {v}");
        assert_eq!(error_code(&v), *code, "{m} {uri} {body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(text), "{m} {uri} {body}: {msg}");
    }
    // An oversized body is refused before it is parsed.
    let big = format!(r#"{{"stream":"ns/x","pad":"{}"}}"#, "x".repeat(100 << 10));
    assert_eq!(
        call(app, Method::POST, "/api/v1/streams", &big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Bookies, decommission, cluster, metrics, OpenAPI.
    let (s, v) = call(app, Method::GET, "/api/v1/bookies", "").await;
    assert_eq!(
        (s, v["bookies"].as_array().unwrap().len()),
        (StatusCode::OK, 3)
    );
    let (s, v) = call(
        app,
        Method::POST,
        "/api/v1/bookies/bookie-2/decommission",
        "",
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("decommissioning"))
    );
    let (_, v) = call(app, Method::GET, "/api/v1/bookies", "").await;
    let states: Vec<&str> = v["bookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"decommissioning"), "{states:?}");
    let (s, v) = call(app, Method::GET, "/api/v1/cluster", "").await;
    assert_eq!(
        (s, v["writable_bookies"].as_u64(), v["streams"].as_u64()),
        (StatusCode::OK, Some(2), Some(2))
    );
    let (s, v) = call(app, Method::GET, "/metrics", "").await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(
        text.contains("dlog_admin_requests_total") && text.contains("dlog_bookie_up"),
        "{text}"
    );
    let (s, v) = call(app, Method::GET, "/api/v1/openapi.json", "").await;
    assert_eq!((s, v["openapi"].as_str()), (StatusCode::OK, Some("3.0.3")));
    assert!(v["paths"]["/api/v1/streams/{ns}/{name}"].is_object());

    // Delete.
    assert_eq!(
        call(app, Method::DELETE, "/api/v1/streams/ns/a", "")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(app, Method::GET, "/api/v1/streams/ns/a", "").await.0,
        StatusCode::NOT_FOUND
    );
    for b in f.bookies {
        b.stop().await;
    }
}
