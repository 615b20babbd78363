//! Operator: create, edit and suspend tenants. The tenant is placed on a shard at creation
//! (docs/placement.md); a refusal says which rule left no shard.

use crate::error::AppError;
use leptos::prelude::*;

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "create_tenant")]
pub async fn create_tenant(
    slug: String,
    display_name: String,
    plan: String,
    region: String,
    device_quota: String,
    key_quota: String,
    #[server(default)] dedicated: Option<String>,
) -> Result<String, AppError> {
    use crate::data::tenants::{create, CreateTenantError, NewTenant};
    use crate::domain::tenant::{TenantSettings, TenantSlug};
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let invalid = |m: String| fail(AppError::Invalid(m));

    let slug = TenantSlug::parse(&slug).map_err(invalid)?;
    let settings = TenantSettings::parse(&display_name, &plan, &region, &device_quota, &key_quota)
        .map_err(invalid)?;
    let new = NewTenant {
        slug: slug.clone(),
        display_name: settings.display_name,
        plan: settings.plan,
        region: settings.region,
        device_quota: settings.device_quota,
        key_quota: settings.key_quota,
        dedicated: dedicated.is_some_and(|d| d == "on" || d == "true"),
    };
    let (code, decision) = create(&state.pool, &scope, &new)
        .await
        .map_err(|e| match e {
            CreateTenantError::Refused(r) => fail(r.into()),
            CreateTenantError::SlugTaken(_) => fail(AppError::Conflict(e.to_string())),
            CreateTenantError::Database(db) => fail(db.into()),
        })?;
    tracing::info!(tenant = %slug, %code, shard = %decision.cluster_id, "tenant created and placed");
    leptos_axum::redirect(&format!("/operator?created={slug}"));
    Ok(code.to_string())
}

/// A tenant as the operator's tenant page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantAdmin {
    pub slug: String,
    pub code: String,
    pub display_name: String,
    pub plan: String,
    pub region: String,
    pub suspended: bool,
    pub device_quota: i32,
    pub key_quota: i32,
    pub placement_reason: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub shard_cluster_id: Option<String>,
    pub shard_name: Option<String>,
    pub shard_health: Option<String>,
    /// The shard is reserved for this tenant.
    pub dedicated: bool,
    /// Devices in the mirror now.
    pub devices: i64,
    pub members: Vec<TenantAdminMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantAdminMember {
    pub display_name: String,
    pub email: Option<String>,
    pub role: crate::domain::role::TenantRole,
    pub from_idp: bool,
    /// The member's Headscale user on the tenant's shard, `<code>.<handle>`.
    pub user_name: String,
    /// Whether the sync has created (or found) that user yet.
    pub on_shard: bool,
}

#[server(prefix = "/api", endpoint = "get_tenant_admin")]
pub async fn get_tenant_admin(slug: String) -> Result<TenantAdmin, AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::tenants::get_admin(&state.pool, &scope, &slug)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Tenant “{slug}”"))))
}

/// Changes a tenant's slug and settings (`editing` is the current slug). The code and
/// the shard stay.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "update_tenant")]
pub async fn update_tenant(
    editing: String,
    slug: String,
    display_name: String,
    plan: String,
    region: String,
    device_quota: String,
    key_quota: String,
) -> Result<String, AppError> {
    use crate::data::tenants::{update, UpdateTenantError};
    use crate::domain::tenant::{TenantSettings, TenantSlug};
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let invalid = |m: String| fail(AppError::Invalid(m));
    let new_slug = TenantSlug::parse(&slug).map_err(invalid)?;
    let settings = TenantSettings::parse(&display_name, &plan, &region, &device_quota, &key_quota)
        .map_err(invalid)?;
    update(&state.pool, &scope, &editing, &new_slug, &settings)
        .await
        .map_err(|e| match e {
            UpdateTenantError::NotFound(s) => fail(AppError::NotFound(format!("Tenant “{s}”"))),
            UpdateTenantError::SlugTaken(_) => fail(AppError::Conflict(e.to_string())),
            UpdateTenantError::Refused(m) => fail(AppError::Conflict(m)),
            UpdateTenantError::Database(db) => fail(db.into()),
        })?;
    tracing::info!(tenant = %editing, new_slug = %new_slug, "tenant updated");
    leptos_axum::redirect(&format!("/operator/tenants/{new_slug}?saved=1"));
    Ok(new_slug.to_string())
}

/// Suspends (`status` = `suspended`) or reactivates (`active`) a tenant.
#[server(prefix = "/api", endpoint = "set_tenant_status")]
pub async fn set_tenant_status(slug: String, status: String) -> Result<(), AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let suspended = match status.as_str() {
        "suspended" => true,
        "active" => false,
        _ => {
            return Err(fail(AppError::Invalid(
                "Choose active or suspended.".into(),
            )))
        }
    };
    let found = crate::data::tenants::set_suspended(&state.pool, &scope, &slug, suspended)
        .await
        .map_err(|e| fail(e.into()))?;
    if !found {
        return Err(fail(AppError::NotFound(format!("Tenant “{slug}”"))));
    }
    tracing::info!(tenant = %slug, %status, "tenant status changed");
    leptos_axum::redirect(&format!("/operator/tenants/{slug}?status={status}"));
    Ok(())
}
