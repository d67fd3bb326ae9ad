//! The audit webhook receiver: `POST /v1/webhook` and `/v1/webhook/{cluster}` take what
//! kube-apiserver's webhook backend sends (an `audit.k8s.io/v1` `EventList`; NDJSON and the other
//! shapes the decoder knows work too), plain or gzip, and answer 200 only once the
//! [`DurableSink`] says the events are durable.
//!
//! Memory is bounded twice: a body (counted after decompression, so a gzip bomb is refused) is at
//! most `max_body` bytes, and every request first reserves its size from the sink's in-flight
//! budget, getting 429 with `Retry-After` when the pipeline is behind.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use auditlake_schema::TimeWindow;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// Default `--max-body`: kube-apiserver's own default batch limit is far below it.
pub const DEFAULT_MAX_BODY: usize = 64 << 20;
/// Rejections listed in a response at most (the count is always given).
const MAX_LISTED_REJECTIONS: usize = 100;

/// Where the webhook hands decoded events: durable storage with an in-flight byte budget.
pub trait DurableSink: Send + Sync + 'static {
    /// Bytes of the budget held by one request until its events are applied.
    type Reservation: Send + 'static;

    /// Reserves `bytes` of the budget, or `None` when too much is in flight.
    fn reserve(&self, bytes: usize) -> Option<Self::Reservation>;

    /// Grows a reservation by `bytes`; `false` when the budget cannot cover it now.
    fn grow(&self, reservation: &mut Self::Reservation, bytes: usize) -> bool;

    /// Stores the batch durably; resolves once it would survive a crash. The error says why not.
    fn store(
        &self,
        batch: RecordBatch,
        reservation: Self::Reservation,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// What the webhook routes share.
pub struct WebhookState<S> {
    /// Where events go.
    pub sink: Arc<S>,
    /// Largest body accepted, compressed or not.
    pub max_body: usize,
    /// Cluster of events posted to `/v1/webhook` (without a cluster in the path).
    pub default_cluster: Option<String>,
    /// Event times accepted; an event outside it is rejected on its own.
    pub time_window: Option<TimeWindow>,
    /// Longest a body may take to arrive; a client trickling it gets 408 and its reservation
    /// back.
    pub body_timeout: Duration,
}

impl<S> Clone for WebhookState<S> {
    fn clone(&self) -> Self {
        Self {
            sink: Arc::clone(&self.sink),
            max_body: self.max_body,
            default_cluster: self.default_cluster.clone(),
            time_window: self.time_window,
            body_timeout: self.body_timeout,
        }
    }
}

/// The webhook routes.
pub fn router<S: DurableSink>(state: WebhookState<S>) -> Router {
    Router::new()
        .route("/v1/webhook", post(receive::<S>))
        .route("/v1/webhook/{cluster}", post(receive_for_cluster::<S>))
        .with_state(state)
}

/// Why a webhook request was not taken; answered as `{"error": ...}`.
#[derive(Debug)]
pub enum WebhookError {
    /// Nothing in the body is an audit event.
    BadBody {
        /// Why.
        reason: String,
        /// Each rejected document or item.
        rejected: Vec<serde_json::Value>,
    },
    /// Over `max_body`.
    TooLarge(usize),
    /// A `Content-Encoding` we do not read.
    Encoding(String),
    /// The pipeline is behind.
    Busy,
    /// The sink could not store the events.
    Unavailable(String),
    /// The body did not arrive in time.
    SlowBody(Duration),
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            WebhookError::BadBody { reason, rejected } => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": reason, "rejected": rejected}),
            ),
            WebhookError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": format!("request body over the {limit}-byte limit (counted after decompression)")}),
            ),
            WebhookError::Encoding(e) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                serde_json::json!({"error": format!("unsupported content encoding `{e}`; send gzip or identity")}),
            ),
            WebhookError::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"error": "the pipeline is behind; retry after 1 s"}),
            ),
            WebhookError::Unavailable(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": reason}),
            ),
            WebhookError::SlowBody(limit) => (
                StatusCode::REQUEST_TIMEOUT,
                serde_json::json!({"error": format!("the body did not arrive within {} s", limit.as_secs())}),
            ),
        };
        let retry = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let mut response = (status, axum::Json(body)).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        response
    }
}

async fn receive<S: DurableSink>(
    State(state): State<WebhookState<S>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, WebhookError> {
    let cluster = state.default_cluster.clone();
    handle(state, cluster, headers, body).await
}

async fn receive_for_cluster<S: DurableSink>(
    State(state): State<WebhookState<S>>,
    Path(cluster): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, WebhookError> {
    if !crate::body::valid_cluster_name(&cluster) {
        return Err(WebhookError::BadBody {
            reason: format!(
                "cluster name {cluster:?} must be 1 to 253 letters, digits, `-`, `_` or `.`"
            ),
            rejected: Vec::new(),
        });
    }
    handle(state, Some(cluster), headers, body).await
}

async fn handle<S: DurableSink>(
    state: WebhookState<S>,
    cluster: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, WebhookError> {
    let max = state.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(refused(WebhookError::TooLarge(max)));
    }
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => return Err(refused(WebhookError::Encoding(e))),
    };
    let mut reservation = state
        .sink
        .reserve(declared.unwrap_or(0))
        .ok_or_else(|| refused(WebhookError::Busy))?;
    let reading = tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, max));
    let bytes = reading
        .await
        .map_err(|_| refused(WebhookError::SlowBody(state.body_timeout)))?;
    let bytes = bytes.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            refused(WebhookError::TooLarge(max))
        } else {
            WebhookError::BadBody {
                reason: format!("reading the body failed: {e}"),
                rejected: Vec::new(),
            }
        }
    })?;
    let held = declared.unwrap_or(0);
    let window = state.time_window;
    let sink = Arc::clone(&state.sink);
    let decoded = tokio::task::spawn_blocking(move || {
        let plain = if gzip {
            gunzip(&bytes, max)?
        } else {
            bytes.to_vec()
        };
        if plain.len() > held && !sink.grow(&mut reservation, plain.len() - held) {
            return Err(refused(WebhookError::Busy));
        }
        Ok((decode(&plain, cluster, window), reservation))
    })
    .await
    .map_err(|e| WebhookError::Unavailable(format!("decoding failed: {e}")))?;
    let (outcome, reservation) = decoded?;

    let accepted = outcome.batch.num_rows();
    metrics::counter!("auditlake_events_received_total")
        .increment((accepted + outcome.rejected_count) as u64);
    metrics::counter!("auditlake_events_rejected_total").increment(outcome.rejected_count as u64);
    if accepted == 0 && outcome.rejected_count > 0 {
        let first = outcome
            .rejected
            .first()
            .and_then(|r| r.get("reason"))
            .and_then(|r| r.as_str())
            .unwrap_or("not an audit event")
            .to_string();
        return Err(WebhookError::BadBody {
            reason: format!("no audit event in the body: {first}"),
            rejected: outcome.rejected,
        });
    }
    if accepted > 0 {
        state
            .sink
            .store(outcome.batch, reservation)
            .await
            .map_err(|e| refused(WebhookError::Unavailable(e)))?;
        metrics::counter!("auditlake_events_accepted_total").increment(accepted as u64);
    }
    let body = serde_json::json!({
        "accepted": accepted,
        "rejected_count": outcome.rejected_count,
        "rejected": outcome.rejected,
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Counts a refusal by kind, then passes it on.
fn refused(e: WebhookError) -> WebhookError {
    let reason = match &e {
        WebhookError::TooLarge(_) => "too_large",
        WebhookError::Encoding(_) => "encoding",
        WebhookError::Busy => "busy",
        WebhookError::Unavailable(_) => "unavailable",
        WebhookError::BadBody { .. } => "bad_body",
        WebhookError::SlowBody(_) => "slow_body",
    };
    metrics::counter!("auditlake_webhook_refused_total", "reason" => reason).increment(1);
    e
}

/// Inflates a gzip body, refusing it once it passes `max` bytes.
fn gunzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, WebhookError> {
    match crate::body::gunzip(bytes, max) {
        Ok(Some(plain)) => Ok(plain),
        Ok(None) => Err(refused(WebhookError::TooLarge(max))),
        Err(e) => Err(WebhookError::BadBody {
            reason: format!("the body is not valid gzip: {e}"),
            rejected: Vec::new(),
        }),
    }
}

struct Decoded {
    batch: RecordBatch,
    rejected: Vec<serde_json::Value>,
    rejected_count: usize,
}

/// Decodes a body: one JSON document (an `EventList`, one event, a cloud wrapper) or NDJSON.
/// A rejection names the list item (`index`) or, for NDJSON, the `line`.
fn decode(body: &[u8], cluster: Option<String>, window: Option<TimeWindow>) -> Decoded {
    let mut decoder = crate::body::new_decoder(cluster, window);
    let mut rejected = Vec::new();
    let mut rejected_count = 0;
    crate::body::decode_into(&mut decoder, body, |entry| {
        rejected_count += 1;
        if rejected.len() < MAX_LISTED_REJECTIONS {
            rejected.push(entry);
        }
    });
    Decoded {
        batch: decoder.finish(),
        rejected,
        rejected_count,
    }
}
