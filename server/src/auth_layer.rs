//! Resolves the signed-in person for every request and keeps pages behind sign-in.

use app::auth::principal::CurrentPrincipal;
use app::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;
use tower_sessions::Session;

/// Paths anyone may open. Everything else that is a page needs a session.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login" | "/signed-out" | "/favicon.svg" | "/favicon.ico" | "/robots.txt"
    ) || path.starts_with("/auth/")
        || path.starts_with("/api/")
        || path.starts_with("/pkg/")
}

fn unavailable() -> Response {
    app::error::DB_UNAVAILABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "The portal's database is not reachable right now. Please try again in a moment.",
    )
        .into_response()
}

pub async fn resolve_principal(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/pkg/") {
        return next.run(req).await;
    }
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        tracing::error!("session layer missing");
        return unavailable();
    };
    let auth =
        match app::auth::session::resume(&session, &state.session_policy, state.clock.as_ref())
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "session store unavailable");
                return unavailable();
            }
        };
    let principal = match auth {
        None => None,
        Some(a) => match app::data::people::load_session_principal(
            &state.pool,
            a.person_id,
            Some(a.signed_in_at),
        )
        .await
        {
            Ok(Some(p)) => Some(Arc::new(p)),
            // The person is gone, or their sessions were ended after this one began
            // (removed from a tenant, docs/members.md): this session ends now.
            Ok(None) => {
                tracing::info!(person_id = %a.person_id, "session ended: signed in before the person's sessions were ended");
                if let Err(e) = app::auth::session::end(&session).await {
                    tracing::error!(error = %e, "session store unavailable");
                    return unavailable();
                }
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "could not load the signed-in person");
                return unavailable();
            }
        },
    };
    let signed_in = principal.is_some();
    req.extensions_mut().insert(CurrentPrincipal(principal));

    if !signed_in && matches!(*req.method(), Method::GET | Method::HEAD) && !is_public(&path) {
        let next_path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let target = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next_path)
            .finish();
        return Redirect::to(&format!("/login?{target}")).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn pages_are_private_unless_listed() {
        for p in [
            "/login",
            "/signed-out",
            "/auth/callback",
            "/api/get_viewer",
            "/pkg/portal.css",
        ] {
            assert!(is_public(p), "{p}");
        }
        for p in ["/", "/t/acme", "/operator", "/loginx", "/authx"] {
            assert!(!is_public(p), "{p}");
        }
    }
}
