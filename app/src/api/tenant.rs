//! The tenant dashboard.

use crate::domain::role::TenantRole;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantOverview {
    pub slug: String,
    pub code: String,
    pub display_name: String,
    pub plan: String,
    pub region: String,
    pub suspended: bool,
    pub your_role: TenantRole,
    pub shard: Option<ShardSummary>,
    pub members: Vec<MemberRow>,
    pub quotas: Quotas,
}

/// The tenant's quotas and what it uses of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Devices registered (not removed) on the tenant's shard.
    pub devices: i64,
    pub device_quota: i32,
    /// Pre-auth keys that can still register a device (not expired; reusable or unused).
    pub active_keys: i64,
    pub key_quota: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSummary {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    pub login_server_url: String,
    /// `active`, `draining` or `disabled` (not synced: the mirror is as of `last_sync_at`).
    pub status: String,
    /// `unknown`, `healthy` or `unhealthy`.
    pub health: String,
    /// RFC 3339, UTC: what the portal shows of the shard is as of this time.
    pub last_sync_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    /// The member's Headscale user on the tenant's shard (`t7k2.alice`).
    pub user_name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: TenantRole,
    pub from_idp: bool,
}

#[server(prefix = "/api", endpoint = "get_tenant_overview")]
pub async fn get_tenant_overview(slug: String) -> Result<TenantOverview, AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::View)
        .map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::tenants::overview(&state.pool, &scope)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Tenant “{slug}”"))))
}
