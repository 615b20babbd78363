//! The public REST API under `/api/v1` (docs/api.md, `/api/v1/openapi.json`).
//!
//! Callers authenticate with an API token (`Authorization: Bearer hsp_…`), never a
//! session cookie, so the API is outside the session and same-site layers. A token
//! becomes a `Principal` (its maker, capped at its role ceiling, `token` set); the
//! handlers then call the very server functions the pages use, in a Leptos context
//! holding that principal — the same authorization, validation and audit records, one
//! implementation. Errors are RFC 7807 problems; every token has a rate limit.

mod call;
pub mod idempotency;
pub mod operator;
pub mod problem;
pub mod ratelimit;
pub mod tenant;

use app::auth::principal::CurrentPrincipal;
use app::data::tokens::TokenCheck;
use app::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use problem::Problem;
use ratelimit::{Limiter, Rate};
use std::sync::Arc;

/// How many requests a token may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiLimits {
    pub per_token: Rate,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            per_token: Rate {
                per_minute: 600,
                burst: 120,
            },
        }
    }
}

#[derive(Clone)]
struct Gate {
    state: AppState,
    limiter: Arc<Limiter>,
}

const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        OPENAPI,
    )
        .into_response()
}

pub fn router(state: AppState, limits: ApiLimits) -> Router {
    let gate = Gate {
        state: state.clone(),
        limiter: Arc::new(Limiter::new(limits.per_token)),
    };
    let guarded: Router = tenant::routes()
        .merge(operator::routes())
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state,
            idempotency::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(gate, authenticate));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .merge(guarded)
        .route(
            "/api/v1/{*rest}",
            axum::routing::any(|| async {
                Problem::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "not-found",
                    "There is no such endpoint; see /api/v1/openapi.json.",
                )
            }),
        )
        .layer(axum::middleware::map_response(problem::uniform))
}

/// The token of the request, if it sent one as `Authorization: Bearer …`.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A short, non-secret key for a token's rate limit bucket.
fn bucket(token: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(token.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return Problem::unauthorized(
            "Send an API token as `Authorization: Bearer hsp_…` (make one on the API tokens page).",
        )
        .into_response();
    };
    // Before the database: a flood of requests (or guesses) costs it nothing.
    if let Err(wait) = gate.limiter.check(&bucket(token)) {
        tracing::info!(retry_after = wait, "API rate limit reached");
        return Problem::rate_limited(wait).into_response();
    }
    let check = match app::data::tokens::authenticate(&gate.state.pool, token).await {
        Ok(c) => c,
        Err(e) => return Problem::from(app::error::AppError::from(e)).into_response(),
    };
    let principal = match check {
        TokenCheck::Valid(p) => p,
        TokenCheck::Unknown => {
            return Problem::unauthorized("The API token is not valid.").into_response()
        }
        TokenCheck::Expired => {
            return Problem::unauthorized("The API token has expired; make a new one.")
                .into_response()
        }
        TokenCheck::Revoked => {
            return Problem::unauthorized("The API token was revoked.").into_response()
        }
        TokenCheck::MakerLacksRole => {
            return Problem::unauthorized(
                "The person who made this API token no longer has the role it was made with \
                 (or left the tenant); make a new one.",
            )
            .into_response()
        }
    };
    req.extensions_mut()
        .insert(CurrentPrincipal(Some(Arc::new(principal))));
    next.run(req).await
}
