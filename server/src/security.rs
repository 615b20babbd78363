//! Request safety: cross-site refusal for state-changing requests, and security headers.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

#[derive(Clone)]
pub struct SiteOrigin {
    pub origin: Arc<str>,
    pub https: bool,
    /// CSP `form-action` sources: our origin and the identity provider's (the sign-out
    /// form is answered with a redirect to the provider's logout page).
    pub form_action: Arc<str>,
}

/// A fresh script nonce: 16 random bytes, base64url (CSP Level 3 asks for at least
/// 128 bits).
fn new_nonce() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Every request that may change state (anything but GET, HEAD, OPTIONS) must come from
/// our own pages: its `Origin` must be ours, and `Sec-Fetch-Site` (Fetch Metadata) must
/// not say cross-site or same-site. A request with neither header is refused too: every
/// browser sends `Origin` on POST, and non-browser API clients get their own tokens.
pub async fn refuse_cross_site(
    State(site): State<SiteOrigin>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let fetch_ok = !matches!(fetch_site, Some("cross-site") | Some("same-site"));
    let origin_ok = match origin {
        Some(o) => o == &*site.origin,
        None => matches!(fetch_site, Some("same-origin") | Some("none")),
    };
    if fetch_ok && origin_ok {
        return next.run(req).await;
    }
    tracing::warn!(
        method = %req.method(),
        path = %req.uri().path(),
        origin = origin.unwrap_or("-"),
        sec_fetch_site = fetch_site.unwrap_or("-"),
        "refused a cross-site request"
    );
    (
        StatusCode::FORBIDDEN,
        Html("<!doctype html><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"><title>Request refused</title><h1>Request refused</h1><p>This request did not come from the portal's own pages, so nothing was changed.</p>"),
    )
        .into_response()
}

/// Headers every response carries. HTML gets a Content-Security-Policy whose script
/// nonce is made here per response (the shell hands the same nonce to Leptos); everything
/// else gets a strict default.
pub async fn security_headers(
    State(site): State<SiteOrigin>,
    mut req: Request,
    next: Next,
) -> Response {
    let nonce = new_nonce();
    req.extensions_mut()
        .insert(app::state::CspNonce(nonce.clone()));
    let mut res = next.run(req).await;
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = res.headers_mut();
    if is_html {
        // Pages: our own scripts and styles, Leptos' inline hydration scripts by nonce,
        // and WebAssembly compilation for the browser bundle.
        let csp = format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action {}",
            site.form_action
        );
        if let Ok(value) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin` rather than `no-referrer`: a plain form post to a server function is
    // answered with a redirect back to its Referer when JavaScript is off.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    );
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    if is_html {
        // Pages show tenant data: keep them out of shared and back-forward caches.
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if site.https {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    res
}
