//! Shards (Headscale servers). Operator data: not tenant-owned.

use super::secret::SecretBox;
use super::{operator_tx, system_tx};
use crate::api::operator::ShardListRow;
use crate::auth::OperatorScope;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewShard {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    pub login_server_url: String,
    pub api_url: String,
    pub node_capacity: i32,
}

/// Creates or updates a shard by `cluster_id` (admin command line); the API key is
/// sealed before it is stored. An existing shard keeps its status.
pub async fn upsert(
    pool: &PgPool,
    secrets: &SecretBox,
    shard: &NewShard,
    api_key: &str,
) -> Result<Uuid, sqlx::Error> {
    let tx = system_tx(pool).await?;
    write(tx, secrets, shard, api_key, None).await
}

/// The one statement that stores a shard. `status: None` keeps an existing shard's
/// status (a new one starts active).
async fn write(
    mut tx: super::Tx,
    secrets: &SecretBox,
    shard: &NewShard,
    api_key: &str,
    status: Option<crate::domain::shard::ShardStatus>,
) -> Result<Uuid, sqlx::Error> {
    let sealed = secrets.seal(api_key);
    let id = sqlx::query_scalar(
        "insert into shard (cluster_id, name, region, login_server_url, api_url, api_key_sealed, node_capacity, status)
         values ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'active'))
         on conflict on constraint shard_cluster_id_key do update
           set name = excluded.name, region = excluded.region,
               login_server_url = excluded.login_server_url, api_url = excluded.api_url,
               api_key_sealed = excluded.api_key_sealed, node_capacity = excluded.node_capacity,
               status = coalesce($8, shard.status), updated_at = now()
         returning id",
    )
    .bind(&shard.cluster_id)
    .bind(&shard.name)
    .bind(&shard.region)
    .bind(&shard.login_server_url)
    .bind(&shard.api_url)
    .bind(sealed)
    .bind(shard.node_capacity)
    .bind(status.map(|s| s.as_str()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct Row {
    cluster_id: String,
    name: String,
    region: String,
    login_server_url: String,
    status: String,
    node_capacity: i32,
    tenants: i64,
    health: String,
    headscale_version: Option<String>,
    last_sync_latency_ms: Option<i32>,
    last_sync_at: Option<time::OffsetDateTime>,
    last_sync_error: Option<String>,
    nodes: i64,
    orphans: i64,
}

pub async fn list(pool: &PgPool, scope: &OperatorScope) -> Result<Vec<ShardListRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, Row>(
        "select s.cluster_id, s.name, s.region, s.login_server_url, s.status, s.node_capacity,
                (select count(*) from tenant t where t.shard_id = s.id) as tenants,
                s.health, s.headscale_version, s.last_sync_latency_ms, s.last_sync_at, s.last_sync_error,
                (select count(*) from node n where n.shard_id = s.id and n.removed_at is null) as nodes,
                (select count(*) from node n where n.shard_id = s.id and n.removed_at is null
                   and n.tenant_id is null) as orphans
         from shard s order by s.cluster_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| ShardListRow {
            cluster_id: r.cluster_id,
            name: r.name,
            region: r.region,
            login_server_url: r.login_server_url,
            status: r.status,
            node_capacity: r.node_capacity,
            tenants: r.tenants,
            health: r.health,
            headscale_version: r.headscale_version,
            last_sync_latency_ms: r.last_sync_latency_ms,
            last_sync_at: r.last_sync_at.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            last_sync_error: r.last_sync_error,
            nodes: r.nodes,
            orphans: r.orphans,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    cluster_id: String,
    name: String,
    region: String,
    login_server_url: String,
    api_url: String,
    node_capacity: i32,
    status: String,
    api_key_sealed: Vec<u8>,
    tenants: Vec<String>,
}

/// One shard with its sealed API key (which never leaves the server).
pub async fn get(
    pool: &PgPool,
    scope: &OperatorScope,
    cluster_id: &str,
) -> Result<Option<(crate::api::shards::ShardDetail, Vec<u8>)>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let row = sqlx::query_as::<_, DetailRow>(
        "select s.cluster_id, s.name, s.region, s.login_server_url, s.api_url, s.node_capacity,
                s.status, s.api_key_sealed,
                coalesce(array(select t.slug from tenant t where t.shard_id = s.id order by t.slug), '{}') as tenants
         from shard s where s.cluster_id = $1",
    )
    .bind(cluster_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|r| {
        (
            crate::api::shards::ShardDetail {
                cluster_id: r.cluster_id,
                name: r.name,
                region: r.region,
                login_server_url: r.login_server_url,
                api_url: r.api_url,
                node_capacity: r.node_capacity,
                status: r.status,
                tenants: r.tenants,
            },
            r.api_key_sealed,
        )
    }))
}

/// Saves a shard from the operator screens (create or update by `cluster_id`).
pub async fn save(
    pool: &PgPool,
    scope: &OperatorScope,
    secrets: &SecretBox,
    shard: &NewShard,
    api_key: &str,
    status: crate::domain::shard::ShardStatus,
) -> Result<Uuid, sqlx::Error> {
    let tx = operator_tx(pool, scope).await?;
    write(tx, secrets, shard, api_key, Some(status)).await
}
