//! What keeps answers bounded when a dependency is slow or gone (docs/reliability.md):
//! a deadline on every request, `Retry-After` on every 503, and request ids.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The longest a request may take to produce its response head.
#[derive(Clone, Copy)]
pub struct Deadline(pub Duration);

/// Answers 503 when the request has not produced a response by its deadline (a hung
/// database connection, a shard that accepts and never answers). Dropping the handler's
/// future cancels its work: a transaction in flight is rolled back, never half applied.
/// Streamed bodies (exports) are not limited once their head is sent.
pub async fn deadline(
    State(Deadline(limit)): State<Deadline>,
    req: Request,
    next: Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/v1/");
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%path, limit_s = limit.as_secs_f64(), "request deadline passed");
            let detail = format!(
                "The portal could not answer within {} seconds; a service it depends on is slow. Please try again in a moment.",
                limit.as_secs()
            );
            if api {
                let mut p = crate::rest::problem::Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    detail,
                );
                p.retry_after = Some(RETRY_AFTER_SECONDS);
                p.into_response()
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, detail).into_response()
            }
        }
    }
}

/// Every 503 tells the client when to try again, whoever produced it.
pub async fn retry_after(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if res.status() == StatusCode::SERVICE_UNAVAILABLE
        && !res.headers().contains_key(header::RETRY_AFTER)
    {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    res
}

/// Set once SIGTERM arrived: `/readyz` then says "not ready" so the load balancer stops
/// sending new requests while the ones in flight finish.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
