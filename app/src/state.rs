//! What every request handler and server function can reach: configuration, the
//! database pool, the clock. Built once by `server::startup`.

use crate::auth::clock::Clock;
use crate::auth::session::SessionPolicy;
use crate::data::secret::SecretBox;
use crate::domain::groups::RoleMapping;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    /// Connected as the application role (`portal_app`): subject to row-level security.
    pub pool: PgPool,
    pub clock: Arc<dyn Clock>,
    pub session_policy: SessionPolicy,
    pub role_mapping: Arc<RoleMapping>,
    pub secrets: Arc<SecretBox>,
    /// The portal's own origin (`https://portal.example.com`), for Origin checks and
    /// absolute URLs.
    pub public_origin: Arc<str>,
    /// Clients of the shards, for actions that change a shard (the sync has its own).
    pub shard_clients: Arc<crate::headscale::ShardClients>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The state inside a server function or a page rendered on the server.
pub fn app_state() -> Result<AppState, crate::error::AppError> {
    leptos::prelude::use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the Leptos context");
        crate::error::AppError::Internal("no-state".into())
    })
}

/// The script nonce of one response: made by the server's security middleware, which
/// also writes the Content-Security-Policy header; the HTML shell gives it to Leptos.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);
