//! Runs a server function for an API request: in a Leptos context holding the token's
//! principal and the application state, as `leptos_axum` does for the pages' calls.

use super::problem::Problem;
use app::auth::principal::{CurrentPrincipal, Principal};
use app::error::AppError;
use app::state::AppState;
use axum::http::{header, Method, Request};
use leptos::prelude::provide_context;
use leptos::reactive::{computed::ScopedFuture, owner::Owner};
use leptos_axum::ResponseOptions;
use std::future::Future;
use std::sync::Arc;

/// The caller of one API request.
#[derive(Clone)]
pub struct Caller {
    pub state: AppState,
    pub principal: Arc<Principal>,
}

impl Caller {
    pub fn new(state: AppState, current: CurrentPrincipal) -> Result<Caller, Problem> {
        let principal = current.0.ok_or(AppError::Unauthenticated)?;
        Ok(Caller { state, principal })
    }

    /// `f` (a server function call) with this caller as the current principal.
    pub async fn run<T, Fut>(&self, f: impl FnOnce() -> Fut + Send) -> Result<T, Problem>
    where
        Fut: Future<Output = Result<T, AppError>> + Send,
        T: Send,
    {
        // Only what the server functions read: the principal, and a JSON `Accept` so
        // nothing mistakes the call for a plain form post (which answers with redirects).
        let (mut parts, ()) = Request::builder()
            .method(Method::POST)
            .uri("/api/v1")
            .header(header::ACCEPT, "application/json")
            .body(())
            .expect("a fixed request")
            .into_parts();
        parts
            .extensions
            .insert(CurrentPrincipal(Some(self.principal.clone())));
        let state = self.state.clone();
        let owner = Owner::new();
        owner
            .with(|| {
                ScopedFuture::new(async move {
                    provide_context(parts);
                    provide_context(state);
                    provide_context(ResponseOptions::default());
                    f().await
                })
            })
            .await
            .map_err(Problem::from)
    }

    /// The slug of the one tenant a tenant token belongs to.
    pub fn token_tenant(&self) -> Result<String, Problem> {
        match self.principal.memberships.as_slice() {
            [m] if self.principal.token.is_some() => Ok(m.slug.clone()),
            _ => Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "This endpoint needs a tenant's API token (an operator token has no tenant).",
            )),
        }
    }
}
