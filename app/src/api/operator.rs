//! The operator overview: every shard and tenant of the service.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardListRow {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    pub login_server_url: String,
    pub status: String,
    pub node_capacity: i32,
    pub tenants: i64,
    /// From the sync: `unknown`, `healthy` or `unhealthy`.
    pub health: String,
    pub headscale_version: Option<String>,
    pub last_sync_latency_ms: Option<i32>,
    /// RFC 3339, UTC.
    pub last_sync_at: Option<String>,
    pub last_sync_error: Option<String>,
    /// Devices on the shard now (the sync's mirror), orphans included.
    pub nodes: i64,
    pub orphans: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantListRow {
    pub slug: String,
    pub code: String,
    pub display_name: String,
    pub plan: String,
    pub region: String,
    pub suspended: bool,
    pub shard_cluster_id: Option<String>,
    pub placement_reason: Option<String>,
    pub device_quota: i32,
    pub members: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorOverview {
    pub shards: Vec<ShardListRow>,
    pub tenants: Vec<TenantListRow>,
}

#[server(prefix = "/api", endpoint = "get_operator_overview")]
pub async fn get_operator_overview() -> Result<OperatorOverview, AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let shards = crate::data::shards::list(&state.pool, &scope)
        .await
        .map_err(|e| fail(e.into()))?;
    let tenants = crate::data::tenants::list_all(&state.pool, &scope)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(OperatorOverview { shards, tenants })
}
