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
        .route("/api/v1/streams/{ns}/{name}/offload", post(offload))
        .route("/api/v1/streams/{ns}/{name}/scrub", post(scrub))
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

/// An error answer: an HTTP status and the protocol's error code and message.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code as u16,
            "kind": kind_name(self.code.kind()),
            "name": self.code.as_str(),
            "message": self.message,
        }});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
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
}

fn api_error(status: StatusCode, code: ErrorCode, message: String) -> ApiError {
    ApiError {
        status,
        code,
        message,
    }
}

type ApiResult = Result<Response, ApiError>;

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

fn bad_request(code: ErrorCode, message: String) -> ApiError {
    api_error(StatusCode::BAD_REQUEST, code, message)
}

fn stream_name(ns: &str, name: &str) -> Result<StreamName, ApiError> {
    StreamName::new(ns, name).map_err(|e| bad_request(ErrorCode::InvalidName, e.to_string()))
}

/// Parses a JSON body; the error names the field at fault (`policy.segment_bytes: …`).
/// [`parse_body`] for routes whose body may be left out (then `T::default()`).
fn parse_optional_body<T: for<'de> Deserialize<'de> + Default>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
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

async fn run(svc: &Service, req: AdminRequest, created: bool) -> ApiResult {
    let r = execute(svc, req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(match r {
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
    })
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    LogError::Unavailable(e.to_string()).into()
}

async fn ready(State(svc): Svc) -> ApiResult {
    let b = list_bookies(&**svc.log.store())
        .await
        .map_err(|e| unavailable(format!("metadata store: {e}")))?;
    Ok(axum::Json(json!({"ready": true, "bookies": b.len()})).into_response())
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

async fn cluster(State(svc): Svc) -> ApiResult {
    let bookies = list_bookies(&**svc.log.store())
        .await
        .map_err(unavailable)?;
    let streams = svc.log.list_streams(None).await?.len();
    let writable = bookies
        .iter()
        .filter(|b| b.state == dlog_ledger::registry::RegisteredState::Writable)
        .count();
    let healthy = writable >= usize::from(svc.opts.default_policy.ensemble);
    Ok(axum::Json(json!({
        "healthy": healthy,
        "bookies": bookies.len(),
        "writable_bookies": writable,
        "streams": streams,
        "node": svc.opts.node,
        "owned_streams": svc.ownership.owned(),
    }))
    .into_response())
}

async fn namespaces(State(svc): Svc) -> ApiResult {
    let streams = svc.log.list_streams(None).await?;
    let mut ns: Vec<&str> = streams.iter().map(|s| s.namespace()).collect();
    ns.dedup();
    Ok(axum::Json(json!({ "namespaces": ns })).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list_streams(State(svc): Svc, Query(q): Query<ListQuery>) -> ApiResult {
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

async fn create_stream(State(svc): Svc, body: Bytes) -> ApiResult {
    let b: CreateBody = parse_body(&body)?;
    let req = AdminRequest::CreateStream {
        stream: b.stream,
        policy: b.policy,
    };
    run(&svc, req, true).await
}

async fn describe_stream(State(svc): Svc, Path((ns, name)): Path<(String, String)>) -> ApiResult {
    let stream = stream_name(&ns, &name)?;
    run(&svc, AdminRequest::DescribeStream { stream }, false).await
}

async fn delete_stream(State(svc): Svc, Path((ns, name)): Path<(String, String)>) -> ApiResult {
    let stream = stream_name(&ns, &name)?;
    run(&svc, AdminRequest::DeleteStream { stream }, false).await
}

async fn update_policy(
    State(svc): Svc,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let stream = stream_name(&ns, &name)?;
    let policy: StreamPolicy = parse_body(&body)?;
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
) -> ApiResult {
    let stream = stream_name(&ns, &name)?;
    let b: TruncateBody = parse_body(&body)?;
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffloadBody {
    #[serde(default)]
    seal: bool,
}

/// Offloads the stream's sealed segments and answers once they are committed. The body is
/// optional (`{"seal": true}` seals the open segment first).
async fn offload(
    State(svc): Svc,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let stream = stream_name(&ns, &name)?;
    let b: OffloadBody = parse_optional_body(&body)?;
    run(
        &svc,
        AdminRequest::Offload {
            stream,
            seal: b.seal,
        },
        false,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrubBody {
    #[serde(default)]
    repair: bool,
    #[serde(default)]
    min_age_ms: Option<u64>,
}

/// Reconciles the stream's objects with its manifest. The body is optional (`{"repair":
/// true, "min_age_ms": 0}` deletes the orphans found).
async fn scrub(
    State(svc): Svc,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let stream = stream_name(&ns, &name)?;
    let b: ScrubBody = parse_optional_body(&body)?;
    run(
        &svc,
        AdminRequest::Scrub {
            stream,
            repair: b.repair,
            min_age_ms: b.min_age_ms,
        },
        false,
    )
    .await
}

async fn bookies(State(svc): Svc) -> ApiResult {
    let b = list_bookies(&**svc.log.store())
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(json!({ "bookies": b })).into_response())
}

async fn decommission_bookie(State(svc): Svc, Path(id): Path<String>) -> ApiResult {
    let id = BookieId::new(id).map_err(|e| bad_request(ErrorCode::InvalidName, e.to_string()))?;
    let store = &**svc.log.store();
    let known = list_bookies(store)
        .await
        .map_err(unavailable)?
        .iter()
        .any(|r| r.id == id);
    if !known {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            ErrorCode::BadRequest,
            format!("no registered bookie {id}"),
        ));
    }
    decommission(store, &id).await.map_err(unavailable)?;
    Ok(axum::Json(json!({"bookie": id, "state": "decommissioning"})).into_response())
}

/// The OpenAPI description of the routes above.
const OPENAPI: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests;
