//! `/api/v1/operator/…`: what an operator token reaches (all tenants and shards).

use super::call::Caller;
use super::problem::Problem;
use super::tenant::AuditAsk;
use app::api::{audit, operator, usage};
use app::auth::principal::CurrentPrincipal;
use app::state::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;

type Ext = Extension<CurrentPrincipal>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/operator/shards", get(shards))
        .route("/api/v1/operator/tenants", get(tenants))
        .route("/api/v1/operator/usage", get(get_usage))
        .route(
            "/api/v1/operator/usage/export",
            get(crate::billing::operator_export),
        )
        .route("/api/v1/operator/audit", get(get_audit))
}

async fn shards(
    State(state): State<AppState>,
    Extension(cur): Ext,
) -> Result<Json<Vec<operator::ShardListRow>>, Problem> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller.run(operator::get_operator_overview).await?.shards,
    ))
}

async fn tenants(
    State(state): State<AppState>,
    Extension(cur): Ext,
) -> Result<Json<Vec<operator::TenantListRow>>, Problem> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller.run(operator::get_operator_overview).await?.tenants,
    ))
}

#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

async fn get_usage(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Query(q): Query<MonthQuery>,
) -> Result<Json<usage::OperatorUsage>, Problem> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller.run(|| usage::get_operator_usage(q.month)).await?,
    ))
}

async fn get_audit(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Query(q): Query<AuditAsk>,
) -> Result<Json<audit::AuditPage>, Problem> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller
            .run(|| {
                audit::get_operator_audit(
                    q.action, q.actor, q.target, q.from, q.until, q.tenant, q.before,
                )
            })
            .await?,
    ))
}
