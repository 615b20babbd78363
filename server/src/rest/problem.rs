//! Errors of the REST API as RFC 7807 problem details (`application/problem+json`).

use app::error::AppError;
use axum::body::to_bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One problem: `type` names the kind (documented at `/api/v1/openapi.json`, section
/// "Problem"), `detail` says what happened in a sentence a person can act on.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Extra members for some problems (a refused policy's `errors` and `tests`).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
    #[serde(skip)]
    pub bearer_challenge: bool,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("/api/v1/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
            retry_after: None,
            bearer_challenge: false,
        }
    }

    /// 401 with the `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem {
            bearer_challenge: true,
            ..Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        }
    }

    pub fn rate_limited(retry_after: u64) -> Problem {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("Too many requests with this token; try again in {retry_after} s."),
            )
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Problem {
        let kind = match &e {
            AppError::Unauthenticated => {
                return Problem::unauthorized(
                    "Send an API token of this tenant as `Authorization: Bearer hsp_…`.",
                )
            }
            AppError::Forbidden => "forbidden",
            AppError::NotFound(_) => "not-found",
            AppError::Conflict(_) => "conflict",
            AppError::Invalid(_) => "invalid",
            AppError::RateLimited => "rate-limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        };
        let mut p = Problem::new(e.status(), kind, e.to_string());
        if matches!(e, AppError::Unavailable(_)) {
            p.retry_after = Some(5);
        }
        if matches!(e, AppError::Forbidden) {
            p.detail = "The token's role does not allow this.".into();
        }
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.bearer_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            );
        }
        res
    }
}

/// Turns any other error answer of the API (axum's own, for a body that is not JSON or a
/// path that does not parse; the billing export's plain-text errors) into a problem, so
/// every error of `/api/v1` has one shape.
pub async fn uniform(res: Response) -> Response {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let retry_after = res.headers().get(header::RETRY_AFTER).cloned();
    let text = to_bytes(res.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let kind = match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::CONFLICT => "conflict",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "invalid",
    };
    let detail = if text.is_empty() {
        match status {
            StatusCode::NOT_FOUND => "There is no such endpoint; see /api/v1/openapi.json.".into(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "The endpoint does not take this method; see /api/v1/openapi.json.".into()
            }
            _ => status.canonical_reason().unwrap_or("Error").to_string(),
        }
    } else {
        text
    };
    let mut p = Problem::new(status, kind, detail);
    p.retry_after = retry_after.and_then(|v| v.to_str().ok().and_then(|s| s.parse().ok()));
    p.bearer_challenge = status == StatusCode::UNAUTHORIZED;
    p.into_response()
}
