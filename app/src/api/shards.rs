//! Operator: add and edit shards. Saving tests the connection first; a shard that does
//! not answer with a working API key is not saved.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDetail {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    pub login_server_url: String,
    pub api_url: String,
    pub node_capacity: i32,
    pub status: String,
    pub tenants: Vec<String>,
}

#[server(prefix = "/api", endpoint = "get_shard")]
pub async fn get_shard(cluster_id: String) -> Result<ShardDetail, AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::shards::get(&state.pool, &scope, &cluster_id)
        .await
        .map_err(|e| fail(e.into()))?
        .map(|(detail, _sealed)| detail)
        .ok_or_else(|| fail(AppError::NotFound(format!("Shard “{cluster_id}”"))))
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
    status: String,
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
    let status = ShardStatus::parse(&status)
        .ok_or_else(|| invalid("Choose active, draining or disabled.".into()))?;

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

    shards::save(&state.pool, &scope, &state.secrets, &shard, &key, status)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(cluster_id = %cluster_id, %version, "shard saved");
    leptos_axum::redirect(&format!("/operator/shards/{cluster_id}?saved={version}"));
    Ok(version.to_string())
}
