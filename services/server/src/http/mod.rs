//! The control plane: HTTP/JSON under `/api/v1/`, plus `/health`, `/ready` and `/metrics`.
//!
//! Every route is a thin mapping onto the same admin operations as the client protocol
//! ([`crate::service::admin`]). Errors are JSON, `{"error": {"code": N, "kind": "...",
//! "message": "..."}}`, with an HTTP status from the error's kind; request bodies are parsed
//! here (not by an extractor) so that a malformed body gets the same JSON error with the
//! parser's message. `GET /api/v1/openapi.json` describes the API.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use dlog_api::admin::{AdminRequest, AdminResponse};
use dlog_api::stream::{StreamName, StreamPolicy};
use dlog_api::{BookieId, ErrorCode, ErrorKind};
use dlog_ledger::registry::{decommission, list_bookies};
use dlog_log::LogError;
use serde::Deserialize;
use serde_json::json;

use crate::service::Service;
use crate::service::admin::execute;

/// Largest request body accepted.
const MAX_BODY: usize = 64 << 10;

/// The control plane's routes over `svc`.
pub fn app(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/namespaces", get(namespaces))
        .route("/api/v1/streams", get(list_streams).post(create_stream))
        .route(
            "/api/v1/streams/{ns}/{name}",
            get(describe_stream).delete(delete_stream),
        )
        .route("/api/v1/streams/{ns}/{name}/policy", put(update_policy))
        .route("/api/v1/streams/{ns}/{name}/truncate", post(truncate))
        .route("/api/v1/bookies", get(bookies))
        .route(
            "/api/v1/bookies/{id}/decommission",
            post(decommission_bookie),
        )
        .fallback(|| async {
            api_error(
                StatusCode::NOT_FOUND,
                ErrorCode::BadRequest,
                "no such route".into(),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(svc)
}

type Svc = State<Arc<Service>>;

fn api_error(status: StatusCode, code: ErrorCode, message: String) -> Response {
    let body = json!({"error": {
        "code": code as u16,
        "kind": kind_name(code.kind()),
        "name": code.as_str(),
        "message": message,
    }});
    (status, axum::Json(body)).into_response()
}

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Invalid => "invalid",
        ErrorKind::Fenced => "fenced",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Corrupt => "corrupt",
        ErrorKind::Internal => "internal",
    }
}

fn log_error(e: LogError) -> Response {
    let status = match &e {
        LogError::StreamExists(_) | LogError::Conflict(_) | LogError::Fenced(_) => {
            StatusCode::CONFLICT
        }
        _ => match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Fenced => StatusCode::CONFLICT,
            ErrorKind::Corrupt | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        },
    };
    api_error(status, e.code(), e.to_string())
}

fn bad_request(code: ErrorCode, message: String) -> Response {
    api_error(StatusCode::BAD_REQUEST, code, message)
}

fn stream_name(ns: &str, name: &str) -> Result<StreamName, Response> {
    StreamName::new(ns, name).map_err(|e| bad_request(ErrorCode::InvalidName, e.to_string()))
}

/// Parses a JSON body; the error names the field at fault (`policy.segment_bytes: …`).
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = if path == "." {
            format!("request body: {}", e.inner())
        } else {
            format!("request body: {path}: {}", e.inner())
        };
        bad_request(ErrorCode::BadRequest, msg)
    })
}

async fn run(svc: &Service, req: AdminRequest, created: bool) -> Response {
    match execute(svc, req).await {
        Ok(r) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            match r {
                AdminResponse::Done => StatusCode::NO_CONTENT.into_response(),
                AdminResponse::Stream { info } => (status, axum::Json(info)).into_response(),
                other => {
                    // The protocol's `result` tag says which answer it is; a route knows.
                    let mut v = serde_json::to_value(other).expect("answers serialize");
                    if let Some(o) = v.as_object_mut() {
                        o.remove("result");
                    }
                    (status, axum::Json(v)).into_response()
                }
            }
        }
        Err(e) => log_error(e),
    }
}

async fn ready(State(svc): Svc) -> Response {
    match list_bookies(&**svc.log.store()).await {
        Ok(b) => (
            StatusCode::OK,
            axum::Json(json!({"ready": true, "bookies": b.len()})),
        )
            .into_response(),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StreamUnavailable,
            format!("metadata store: {e}"),
        ),
    }
}

async fn metrics(State(svc): Svc) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        svc.render_metrics().await,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn cluster(State(svc): Svc) -> Response {
    let bookies = match list_bookies(&**svc.log.store()).await {
        Ok(b) => b,
        Err(e) => return log_error(LogError::Unavailable(e.to_string())),
    };
    let streams = match svc.log.list_streams(None).await {
        Ok(s) => s.len(),
        Err(e) => return log_error(e),
    };
    let writable = bookies
        .iter()
        .filter(|b| b.state == dlog_ledger::registry::RegisteredState::Writable)
        .count();
    let healthy = writable >= usize::from(svc.opts.default_policy.ensemble);
    axum::Json(json!({
        "healthy": healthy,
        "bookies": bookies.len(),
        "writable_bookies": writable,
        "streams": streams,
        "node": svc.opts.node,
        "owned_streams": svc.ownership.owned(),
    }))
    .into_response()
}

async fn namespaces(State(svc): Svc) -> Response {
    match svc.log.list_streams(None).await {
        Ok(streams) => {
            let mut ns: Vec<&str> = streams.iter().map(|s| s.namespace()).collect();
            ns.dedup();
            axum::Json(json!({ "namespaces": ns })).into_response()
        }
        Err(e) => log_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list_streams(State(svc): Svc, Query(q): Query<ListQuery>) -> Response {
    run(
        &svc,
        AdminRequest::ListStreams {
            namespace: q.namespace,
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    stream: StreamName,
    #[serde(default)]
    policy: Option<StreamPolicy>,
}

async fn create_stream(State(svc): Svc, body: Bytes) -> Response {
    let b: CreateBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = AdminRequest::CreateStream {
        stream: b.stream,
        policy: b.policy,
    };
    run(&svc, req, true).await
}

async fn describe_stream(State(svc): Svc, Path((ns, name)): Path<(String, String)>) -> Response {
    match stream_name(&ns, &name) {
        Ok(stream) => run(&svc, AdminRequest::DescribeStream { stream }, false).await,
        Err(r) => r,
    }
}

async fn delete_stream(State(svc): Svc, Path((ns, name)): Path<(String, String)>) -> Response {
    match stream_name(&ns, &name) {
        Ok(stream) => run(&svc, AdminRequest::DeleteStream { stream }, false).await,
        Err(r) => r,
    }
}

async fn update_policy(
    State(svc): Svc,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let stream = match stream_name(&ns, &name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let policy: StreamPolicy = match parse_body(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    run(&svc, AdminRequest::UpdatePolicy { stream, policy }, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TruncateBody {
    offset: u64,
}

async fn truncate(
    State(svc): Svc,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let stream = match stream_name(&ns, &name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let b: TruncateBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    run(
        &svc,
        AdminRequest::Truncate {
            stream,
            offset: b.offset,
        },
        false,
    )
    .await
}

async fn bookies(State(svc): Svc) -> Response {
    match list_bookies(&**svc.log.store()).await {
        Ok(b) => axum::Json(json!({ "bookies": b })).into_response(),
        Err(e) => log_error(LogError::Unavailable(e.to_string())),
    }
}

async fn decommission_bookie(State(svc): Svc, Path(id): Path<String>) -> Response {
    let id = match BookieId::new(id) {
        Ok(id) => id,
        Err(e) => return bad_request(ErrorCode::InvalidName, e.to_string()),
    };
    let known = match list_bookies(&**svc.log.store()).await {
        Ok(b) => b.iter().any(|r| r.id == id),
        Err(e) => return log_error(LogError::Unavailable(e.to_string())),
    };
    if !known {
        return api_error(
            StatusCode::NOT_FOUND,
            ErrorCode::BadRequest,
            format!("no registered bookie {id}"),
        );
    }
    match decommission(&**svc.log.store(), &id).await {
        Ok(()) => axum::Json(json!({"bookie": id, "state": "decommissioning"})).into_response(),
        Err(e) => log_error(LogError::Unavailable(e.to_string())),
    }
}

/// The OpenAPI description of the routes above.
const OPENAPI: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests;
