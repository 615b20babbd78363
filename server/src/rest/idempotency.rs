//! `Idempotency-Key` on the API's changes (docs/api.md): a client that got no answer
//! (a timeout, a 503 while Postgres restarted, a portal replica that went away) sends
//! the same request with the same key, and the change happens at most once. The answer
//! of the first run is kept (sealed) for a day and replayed with
//! `Idempotent-Replayed: true`.

use super::problem::Problem;
use app::auth::principal::CurrentPrincipal;
use app::data::idempotency::{self, Current, Earlier};
use app::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
/// The API's request bodies are at most 2 MiB (the JSON limit); answers a few KiB.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

fn problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    Problem::new(status, kind, detail).into_response()
}

pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say).",
            )
        }
    };
    let Some(token_id) = req
        .extensions()
        .get::<CurrentPrincipal>()
        .and_then(|p| p.0.as_ref())
        .and_then(|p| p.token)
    else {
        return next.run(req).await;
    };

    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, BODY_LIMIT).await else {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid",
            "The request body is too large.",
        );
    };
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str().as_bytes());
    hash.update([0]);
    hash.update(parts.uri.path().as_bytes());
    hash.update([0]);
    hash.update(parts.uri.query().unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(&body);
    let hash = hash.finalize();

    let current = Current {
        token_id,
        key,
        request_hash: hash.to_vec(),
    };
    let lock = match idempotency::lock(&state.pool, token_id, &current.key).await {
        Err(e) => return Problem::from(app::error::AppError::from(e)).into_response(),
        Ok(None) => {
            let mut p = Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "A request with this Idempotency-Key is still being carried out; ask again in a moment.",
            );
            p.retry_after = Some(1);
            return p.into_response();
        }
        Ok(Some(lock)) => lock,
    };
    let res = answer(&state, &current, parts, body, next).await;
    lock.release().await;
    res
}

async fn answer(
    state: &AppState,
    current: &Current,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
    next: Next,
) -> Response {
    match idempotency::earlier(&state.pool, current.token_id, &current.key, &current.request_hash).await {
        Err(e) => return Problem::from(app::error::AppError::from(e)).into_response(),
        Ok(Earlier::Nothing) => {}
        Ok(Earlier::Mismatch) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "This Idempotency-Key was already used for a different request; use a new key for a new request.",
            )
        }
        Ok(Earlier::Committed) => {
            return problem(
                StatusCode::CONFLICT,
                "idempotency-committed",
                "A request with this Idempotency-Key was already carried out, but its answer was lost; \
                 see the audit log for what it did. It was not carried out again.",
            )
        }
        Ok(Earlier::Replay {
            status,
            content_type,
            body_sealed,
        }) => {
            let Ok(body) = state.secrets.open(&body_sealed) else {
                return problem(
                    StatusCode::CONFLICT,
                    "idempotency-committed",
                    "A request with this Idempotency-Key was already carried out; its answer can no longer be read.",
                );
            };
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                res.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return res;
        }
    }

    let req = Request::from_parts(parts, Body::from(body));
    let res = idempotency::scope(current.clone(), next.run(req)).await;
    let status = res.status();
    // Answers that say what happened are kept; those that say "try again" are not (a
    // change that committed anyway left its key as used: a retry is told so).
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return res;
    }
    let (parts, body) = res.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The answer could not be read.",
        );
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let sealed = state.secrets.seal(&String::from_utf8_lossy(&bytes));
    if let Err(e) =
        idempotency::store(&state.pool, current, status.as_u16(), content_type, &sealed).await
    {
        // The change (if any) committed with its key; a retry is told so instead of
        // getting the answer.
        tracing::warn!(error = %e, "could not keep the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(bytes))
}
