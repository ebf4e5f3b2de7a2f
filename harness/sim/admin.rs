//! The admin API: loopback HTTP/JSON control of the simulated tenant.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/health` | `{"status":"ok", ...counters}` |
//! | GET | `/connectors` | every connector with its state (`pending`, `active`, `updating`, `deleting`) |
//! | POST | `/connectors` | create (`New-InboundConnector`); 201, or 400/409 with `{"error","field"}` |
//! | GET | `/connectors/{name}` | one connector; 404 if none |
//! | PUT | `/connectors/{name}` | change some fields (`Set-InboundConnector`) |
//! | DELETE | `/connectors/{name}` | delete (takes effect after the activation delay) |
//! | GET | `/trace?since=<RFC 3339>` | trace records as a JSON array |
//! | GET | `/buckets` | throttle state per source IP |
//! | POST | `/buckets/reset` | every source IP gets a full bucket again |

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::config::{ConnectorPatch, ConnectorSpec};
use super::policy::ConnectorError;
use super::Shared;

/// Builds the router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/connectors", get(list).post(create))
        .route(
            "/connectors/{name}",
            get(get_one).put(update).delete(remove),
        )
        .route("/trace", get(trace))
        .route("/buckets", get(buckets))
        .route("/buckets/reset", post(reset))
        .fallback(not_found)
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, Json(body)).into_response()
}

fn connector_error(e: ConnectorError) -> Response {
    match &e {
        ConnectorError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string(), None),
        ConnectorError::Conflict(_) => error(StatusCode::CONFLICT, e.to_string(), None),
        ConnectorError::Invalid { field, .. } => {
            error(StatusCode::BAD_REQUEST, e.to_string(), Some(field.clone()))
        }
    }
}

/// A JSON parse failure: the message and the offending field path.
struct BodyError {
    message: String,
    field: Option<String>,
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.message, self.field)
    }
}

/// Parses a JSON body, naming the offending field (`sender_ips[0]: CIDR ... /24 to /32 ...`).
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, BodyError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let message = match &field {
            Some(f) => format!("{f}: {inner}"),
            None => format!("invalid JSON body: {inner}"),
        };
        BodyError { message, field }
    })
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see GET /health, /connectors, /trace, /buckets",
        None,
    )
}

async fn health(State(s): State<Arc<Shared>>) -> Response {
    let stats = s.stats.snapshot();
    Json(json!({
        "status": "ok",
        "tenant": s.policy.config().tenant_name,
        "host": s.fqdn,
        "stats": stats,
    }))
    .into_response()
}

async fn list(State(s): State<Arc<Shared>>) -> Response {
    Json(s.policy.list_connectors(Instant::now())).into_response()
}

async fn create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: ConnectorSpec = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    match s.policy.create_connector(spec, Instant::now()) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => connector_error(e),
    }
}

async fn get_one(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match s.policy.get_connector(&name, Instant::now()) {
        Some(v) => Json(v).into_response(),
        None => connector_error(ConnectorError::NotFound(name)),
    }
}

async fn update(State(s): State<Arc<Shared>>, Path(name): Path<String>, body: Bytes) -> Response {
    let patch: ConnectorPatch = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    match s.policy.update_connector(&name, &patch, Instant::now()) {
        Ok(v) => Json(v).into_response(),
        Err(e) => connector_error(e),
    }
}

async fn remove(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match s.policy.delete_connector(&name, Instant::now()) {
        Ok(v) => Json(v).into_response(),
        Err(e) => connector_error(e),
    }
}

#[derive(Deserialize)]
struct TraceQuery {
    since: Option<String>,
}

async fn trace(State(s): State<Arc<Shared>>, Query(q): Query<TraceQuery>) -> Response {
    let since = match q.since.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("since: expected an RFC 3339 time such as 2025-06-22T05:58:00Z ({e})"),
                Some("since".into()),
            )
        }
    };
    let trace = s.trace.clone();
    match tokio::task::spawn_blocking(move || trace.read(since)).await {
        Ok(Ok(records)) => Json(records).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

async fn buckets(State(s): State<Arc<Shared>>) -> Response {
    Json(s.policy.buckets(Instant::now())).into_response()
}

async fn reset(State(s): State<Arc<Shared>>) -> Response {
    let n = s.policy.reset_buckets();
    Json(json!({ "reset": n })).into_response()
}
