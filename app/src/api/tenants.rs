//! Operator: create tenants. The tenant is placed on a shard at creation
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
    use crate::domain::tenant::TenantSlug;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let invalid = |m: String| fail(AppError::Invalid(m));

    let slug = TenantSlug::parse(&slug).map_err(invalid)?;
    let display_name = display_name.trim().to_string();
    if display_name.is_empty() || display_name.len() > 80 {
        return Err(invalid(
            "Give the tenant a display name of up to 80 characters.".into(),
        ));
    }
    let plan = plan.trim().to_string();
    if !["starter", "business", "enterprise"].contains(&plan.as_str()) {
        return Err(invalid(
            "Choose the starter, business or enterprise plan.".into(),
        ));
    }
    let region = crate::domain::shard::parse_region(&region).map_err(invalid)?;
    let device_quota = match device_quota.trim().parse::<u32>() {
        Ok(n) if (1..=100_000).contains(&n) => n,
        _ => {
            return Err(invalid(
                "The device quota is a whole number from 1 to 100000.".into(),
            ))
        }
    };
    let key_quota = match key_quota.trim().parse::<u32>() {
        Ok(n) if n <= 100_000 => n,
        _ => {
            return Err(invalid(
                "The key quota is a whole number from 0 to 100000.".into(),
            ))
        }
    };
    let new = NewTenant {
        slug: slug.clone(),
        display_name,
        plan,
        region,
        device_quota,
        key_quota,
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
