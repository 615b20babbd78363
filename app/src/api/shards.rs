//! Operator: add and edit shards. Saving tests the connection first; a shard that does
//! not answer with a working API key is not saved.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A shard's settings, as the operator edits them (the API key is write-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSettings {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    pub login_server_url: String,
    pub api_url: String,
    pub node_capacity: i32,
}

/// A shard with its sync state, tenants and orphans, for its operator page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDetail {
    pub settings: ShardSettings,
    /// `active`, `draining` or `disabled`.
    pub status: String,
    /// `unknown`, `healthy` or `unhealthy`.
    pub health: String,
    pub headscale_version: Option<String>,
    pub last_sync_latency_ms: Option<i32>,
    /// RFC 3339, UTC; the mirror is as of this time.
    pub last_sync_at: Option<String>,
    pub last_sync_attempt_at: Option<String>,
    pub last_sync_error: Option<String>,
    pub consecutive_failures: i32,
    /// RFC 3339, UTC; null for a disabled shard (not synced).
    pub next_sync_at: Option<String>,
    /// Devices on the shard (orphans included) and how many are online.
    pub nodes: i64,
    pub online: i64,
    /// The tenant the shard is reserved for.
    pub dedicated_to: Option<String>,
    pub tenants: Vec<ShardTenant>,
    pub orphans: Vec<OrphanNode>,
    /// The policy push: when the shard last got its policy, whether a change waits,
    /// and the last failure (operators see the shard's words).
    pub policy_pushed_at: Option<String>,
    pub policy_pending_since: Option<String>,
    pub policy_push_error: Option<String>,
    pub policy_push_failures: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTenant {
    pub slug: String,
    pub code: String,
    pub display_name: String,
    pub suspended: bool,
    pub devices: i64,
    pub device_quota: i32,
    pub members: i64,
    /// Members whose Headscale user exists on the shard.
    pub members_on_shard: i64,
    /// The tenant's policy revision live on the shard: `None` nothing pushed yet,
    /// `Some(None)` the default policy.
    pub live_revision: Option<Option<i32>>,
}

/// A node the sync could not give to a tenant of the shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanNode {
    pub node_id: i64,
    pub name: String,
    pub user_name: Option<String>,
    pub tags: Vec<String>,
    /// Why, as a sentence.
    pub reason: String,
}

#[server(prefix = "/api", endpoint = "get_shard")]
pub async fn get_shard(cluster_id: String) -> Result<ShardDetail, AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::shards::detail(&state.pool, &scope, &cluster_id)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Shard “{cluster_id}”"))))
}

/// Drains (no new tenants), disables (no new tenants, no sync) or reactivates a shard.
/// Needs no connection test, so a dead shard can be taken out of service.
#[server(prefix = "/api", endpoint = "set_shard_status")]
pub async fn set_shard_status(cluster_id: String, status: String) -> Result<(), AppError> {
    use crate::domain::shard::ShardStatus;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let status = ShardStatus::parse(&status).ok_or_else(|| {
        fail(AppError::Invalid(
            "Choose active, draining or disabled.".into(),
        ))
    })?;
    let found = crate::data::shards::set_status(&state.pool, &scope, &cluster_id, status)
        .await
        .map_err(|e| fail(e.into()))?;
    if !found {
        return Err(fail(AppError::NotFound(format!("Shard “{cluster_id}”"))));
    }
    tracing::info!(%cluster_id, status = status.as_str(), "shard status changed");
    leptos_axum::redirect(&format!(
        "/operator/shards/{cluster_id}?status={}",
        status.as_str()
    ));
    Ok(())
}

/// Makes the shard due for the background sync now (it runs within a second or two).
#[server(prefix = "/api", endpoint = "sync_shard_now")]
pub async fn sync_shard_now(cluster_id: String) -> Result<(), AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let queued = crate::data::shards::sync_now(&state.pool, &scope, &cluster_id)
        .await
        .map_err(|e| fail(e.into()))?;
    if !queued {
        return Err(fail(AppError::Conflict(format!(
            "Shard {cluster_id} is disabled or unknown; it is not synced."
        ))));
    }
    leptos_axum::redirect(&format!("/operator/shards/{cluster_id}?sync=queued"));
    Ok(())
}

/// Creates (`editing` empty) or updates (`editing` = the cluster ID) a shard. The API key
/// is write-only: empty on edit keeps the stored one.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "save_shard")]
pub async fn save_shard(
    editing: String,
    cluster_id: String,
    name: String,
    region: String,
    login_server_url: String,
    api_url: String,
    node_capacity: String,
    api_key: String,
) -> Result<String, AppError> {
    use crate::data::shards::{self, NewShard};
    use crate::domain::shard::*;
    use crate::error::fail;
    use crate::headscale::{ApiKey, ShardClient, ShardClientOptions};
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;

    let invalid = |m: String| fail(AppError::Invalid(m));
    let cluster_id = if editing.is_empty() {
        parse_cluster_id(&cluster_id).map_err(invalid)?
    } else {
        editing.clone()
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 80 {
        return Err(invalid(
            "Give the shard a name of up to 80 characters.".into(),
        ));
    }
    let shard = NewShard {
        cluster_id: cluster_id.clone(),
        name,
        region: parse_region(&region).map_err(invalid)?,
        login_server_url: parse_base_url("login server URL", &login_server_url).map_err(invalid)?,
        api_url: parse_base_url("API URL", &api_url).map_err(invalid)?,
        node_capacity: parse_capacity(&node_capacity).map_err(invalid)?,
    };

    let existing = shards::get(&state.pool, &scope, &cluster_id)
        .await
        .map_err(|e| fail(e.into()))?;
    match (&existing, editing.is_empty()) {
        (None, false) => return Err(fail(AppError::NotFound(format!("Shard “{cluster_id}”")))),
        (Some(_), true) => {
            return Err(fail(AppError::Conflict(format!(
                "A shard with cluster ID {cluster_id} already exists."
            ))))
        }
        _ => {}
    }
    let key = if !api_key.trim().is_empty() {
        api_key.trim().to_string()
    } else if let Some((_, sealed)) = &existing {
        state
            .secrets
            .open(sealed)
            .map_err(|e| fail(AppError::internal("stored shard key unreadable", &e)))?
    } else {
        return Err(invalid(
            "Enter the shard's API key (create one with `headscale apikeys create`).".into(),
        ));
    };

    // Test the connection with the key before saving anything.
    let client = ShardClient::new(
        cluster_id.clone(),
        &shard.api_url,
        ApiKey::new(key.clone()),
        ShardClientOptions {
            timeout: std::time::Duration::from_secs(5),
            max_retries: 0,
            ..Default::default()
        },
    )
    .map_err(|e| invalid(e.to_string()))?;
    let version = client
        .version()
        .await
        .map_err(|e| invalid(format!("Connection test failed: {e}")))?;
    client
        .list_users()
        .await
        .map_err(|e| invalid(format!("Connection test failed: {e}")))?;

    shards::save(&state.pool, &scope, &state.secrets, &shard, &key)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(cluster_id = %cluster_id, %version, "shard saved");
    leptos_axum::redirect(&format!("/operator/shards/{cluster_id}?saved={version}"));
    Ok(version.to_string())
}
