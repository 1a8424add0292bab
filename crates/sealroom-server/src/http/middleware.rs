//! Cross-cutting request handling: a request id, load shedding, a timeout, no-store caching
//! headers, the audit trail, per-route metrics, and one log line per request.
//!
//! The log line and metrics name the route template (`/v1/items/{path}`), never the concrete
//! path: item paths and thread ids are the user's data.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// The request id header, set on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request body that notes when it has been read to its end, so a response to a request whose
/// body was left unread (a refusal before the handler parsed it) can tell the client the
/// connection ends with it, instead of hyper closing it without a word (the client's next
/// request on it would fail).
struct TrackedBody {
    inner: axum::body::Body,
    finished: Arc<AtomicBool>,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        if let Poll::Ready(None) = &polled {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    use hyper::body::Body as _;
    let finished = Arc::new(AtomicBool::new(false));
    let has_body = !request.body().is_end_stream();
    let mut request = request.map(|inner| axum::body::Body::new(TrackedBody { inner, finished: finished.clone() }));
    // Always our own id: a client-chosen one would let anyone write arbitrary text into our logs.
    let request_id = uuid::Uuid::new_v4();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let audit_slot = crate::audit::AuditSlot::default();
    request.extensions_mut().insert(audit_slot.clone());
    request.extensions_mut().insert(crate::audit::RequestLabel {
        operation: format!("{method} {route}"),
        target: path.clone(),
        request_id: request_id.to_string(),
    });
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, route = %route, room = tracing::field::Empty);
    let started = Instant::now();
    let mut response = match state.in_flight().try_acquire() {
        Err(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "the server is at capacity; retry later")
                .into_response()
        }
        Ok(_permit) => {
            let timeout = Duration::from_secs(state.config().limits.request_timeout_secs);
            match tokio::time::timeout(timeout, next.run(request).instrument(span.clone())).await {
                Ok(response) => response,
                Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long")
                    .into_response(),
            }
        }
    };
    crate::audit::record(
        state.audit_queue(),
        &audit_slot,
        &format!("{method} {route}"),
        &path,
        response.status().as_u16(),
        &request_id.to_string(),
    )
    .instrument(span.clone())
    .await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, private"));
    if has_body && !finished.load(Ordering::Acquire) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("sealroom_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("sealroom_http_request_duration_seconds", "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request"));
    response
}
