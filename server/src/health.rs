//! Liveness and readiness for Kubernetes probes. Outside the session layer, so a probe
//! never touches the session store.

use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgPool;
use std::time::Duration;

/// `/healthz`: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `/readyz`: the database answers within two seconds.
pub async fn readyz(State(pool): State<PgPool>) -> (StatusCode, &'static str) {
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
