//! Liveness and readiness for Kubernetes probes. Outside the session layer, so a probe
//! never touches the session store.

use crate::resilience::Draining;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgPool;
use std::time::Duration;

/// `/healthz`: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `/readyz`: the database answers within two seconds, and the portal is not shutting
/// down (then the load balancer should send new requests to the other replicas).
pub async fn readyz(
    State((pool, draining)): State<(PgPool, Draining)>,
) -> (StatusCode, &'static str) {
    if draining.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let check = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("select 1").execute(&pool),
    )
    .await;
    match check {
        Ok(Ok(_)) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness: database timed out");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
