//! One `ShardClient` per shard for the life of the process, shared by the background
//! sync and by actions people take (rename a device, mint a key), so every caller of a
//! shard sees the same circuit breaker and detected version.
//!
//! A client is rebuilt when the shard's cluster id, API URL or sealed API key change.
//! The key is opened from its sealed form only to build a client.

use super::{ApiKey, ShardClient, ShardClientOptions};
use crate::data::secret::SecretBox;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use uuid::Uuid;

/// What a shard client is made from (from the `shard` row).
pub struct ShardAccess<'a> {
    pub shard_id: Uuid,
    pub cluster_id: &'a str,
    pub api_url: &'a str,
    pub api_key_sealed: &'a [u8],
}

struct Cached {
    fingerprint: u64,
    client: ShardClient,
}

pub struct ShardClients {
    options: ShardClientOptions,
    clients: Mutex<HashMap<Uuid, Cached>>,
}

impl ShardClients {
    pub fn new(options: ShardClientOptions) -> Self {
        ShardClients {
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The shard's client. The error is a sentence naming the shard, without secrets.
    pub fn get(&self, secrets: &SecretBox, shard: &ShardAccess<'_>) -> Result<ShardClient, String> {
        let mut hasher = DefaultHasher::new();
        (shard.cluster_id, shard.api_url, shard.api_key_sealed).hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = clients.get(&shard.shard_id) {
            if cached.fingerprint == fingerprint {
                return Ok(cached.client.clone());
            }
        }
        let api_key = secrets
            .open(shard.api_key_sealed)
            .map(ApiKey::new)
            .map_err(|_| {
                format!(
                    "The API key of shard {} cannot be opened with the portal's secret key; \
                     save the shard's API key again",
                    shard.cluster_id
                )
            })?;
        let client = ShardClient::new(
            shard.cluster_id.to_string(),
            shard.api_url,
            api_key,
            self.options.clone(),
        )
        .map_err(|e| e.to_string())?;
        clients.insert(
            shard.shard_id,
            Cached {
                fingerprint,
                client: client.clone(),
            },
        );
        Ok(client)
    }
}
