//! Shards (Headscale servers). Operator data: not tenant-owned.

use super::secret::SecretBox;
use super::{operator_tx, system_tx};
use crate::api::operator::ShardListRow;
use crate::api::shards::{OrphanNode, ShardDetail, ShardSettings, ShardTenant};
use crate::auth::OperatorScope;
use crate::domain::shard::ShardStatus;
use crate::domain::sync::OrphanReason;
use sqlx::PgPool;
use time::OffsetDateTime;
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
    write(
        tx,
        crate::auth::Actor::System,
        secrets,
        shard,
        api_key,
        None,
    )
    .await
}

/// The one statement that stores a shard. `status: None` keeps an existing shard's
/// status (a new one starts active).
async fn write(
    mut tx: super::Tx,
    actor: crate::auth::Actor,
    secrets: &SecretBox,
    shard: &NewShard,
    api_key: &str,
    status: Option<ShardStatus>,
) -> Result<Uuid, sqlx::Error> {
    let sealed = secrets.seal(api_key);
    let before = shard_json(&mut tx, &shard.cluster_id).await?;
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
    let after = shard_json(&mut tx, &shard.cluster_id).await?;
    // The API key itself never: only that one was given (it is stored sealed).
    crate::data::audit::record(
        &mut tx,
        actor,
        None,
        if before.is_some() {
            "shard.updated"
        } else {
            "shard.created"
        },
        &shard.cluster_id,
        serde_json::json!({ "before": before, "after": after, "api_key": "set" }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A shard's settings as the audit log shows them (never its key).
async fn shard_json(
    tx: &mut super::Tx,
    cluster_id: &str,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(
        "select jsonb_build_object('name', name, 'region', region,
                'login_server_url', login_server_url, 'api_url', api_url,
                'node_capacity', node_capacity, 'status', status)
           from shard where cluster_id = $1",
    )
    .bind(cluster_id)
    .fetch_optional(&mut **tx)
    .await
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
            last_sync_at: super::rfc3339(r.last_sync_at),
            last_sync_error: r.last_sync_error,
            nodes: r.nodes,
            orphans: r.orphans,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct SettingsRow {
    cluster_id: String,
    name: String,
    region: String,
    login_server_url: String,
    api_url: String,
    node_capacity: i32,
    api_key_sealed: Vec<u8>,
}

/// A shard's settings with its sealed API key (which never leaves the server).
pub async fn get(
    pool: &PgPool,
    scope: &OperatorScope,
    cluster_id: &str,
) -> Result<Option<(ShardSettings, Vec<u8>)>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let row = sqlx::query_as::<_, SettingsRow>(
        "select cluster_id, name, region, login_server_url, api_url, node_capacity, api_key_sealed
           from shard where cluster_id = $1",
    )
    .bind(cluster_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|r| {
        (
            ShardSettings {
                cluster_id: r.cluster_id,
                name: r.name,
                region: r.region,
                login_server_url: r.login_server_url,
                api_url: r.api_url,
                node_capacity: r.node_capacity,
            },
            r.api_key_sealed,
        )
    }))
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    id: Uuid,
    cluster_id: String,
    name: String,
    region: String,
    login_server_url: String,
    api_url: String,
    node_capacity: i32,
    status: String,
    health: String,
    headscale_version: Option<String>,
    last_sync_latency_ms: Option<i32>,
    last_sync_at: Option<OffsetDateTime>,
    last_sync_attempt_at: Option<OffsetDateTime>,
    last_sync_error: Option<String>,
    consecutive_failures: i32,
    next_sync_at: OffsetDateTime,
    nodes: i64,
    online: i64,
    dedicated_to: Option<String>,
    policy_pushed_at: Option<OffsetDateTime>,
    policy_dirty_since: Option<OffsetDateTime>,
    policy_push_error: Option<String>,
    policy_push_failures: i32,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    slug: String,
    code: String,
    display_name: String,
    status: String,
    devices: i64,
    device_quota: i32,
    members: i64,
    members_on_shard: i64,
    live: bool,
    live_revision: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct OrphanRow {
    node_id: i64,
    given_name: String,
    user_name: Option<String>,
    tags: Vec<String>,
    orphan_reason: String,
}

/// A shard with its sync state, its tenants (devices, members and how many of them have
/// their user on the shard) and its orphaned nodes, from Postgres only.
pub async fn detail(
    pool: &PgPool,
    scope: &OperatorScope,
    cluster_id: &str,
) -> Result<Option<ShardDetail>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let Some(r) = sqlx::query_as::<_, DetailRow>(
        "select s.id, s.cluster_id, s.name, s.region, s.login_server_url, s.api_url,
                s.node_capacity, s.status, s.health, s.headscale_version,
                s.last_sync_latency_ms, s.last_sync_at, s.last_sync_attempt_at,
                s.last_sync_error, s.consecutive_failures, s.next_sync_at,
                (select count(*) from node n where n.shard_id = s.id and n.removed_at is null) as nodes,
                (select count(*) from node n where n.shard_id = s.id and n.removed_at is null
                   and n.online) as online,
                (select t.slug from tenant t where t.id = s.dedicated_tenant_id) as dedicated_to,
                s.policy_pushed_at, s.policy_dirty_since, s.policy_push_error,
                s.policy_push_failures
           from shard s where s.cluster_id = $1",
    )
    .bind(cluster_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let tenants = sqlx::query_as::<_, TenantRow>(
        "select t.slug, t.code, t.display_name, t.status, t.device_quota,
                (select count(*) from node n
                  where n.tenant_id = t.id and n.shard_id = $1 and n.removed_at is null) as devices,
                (select count(*) from membership m where m.tenant_id = t.id) as members,
                (select count(*) from membership m
                   join shard_user su on su.shard_id = $1 and su.tenant_id = m.tenant_id
                                     and su.person_id = m.person_id
                  where m.tenant_id = t.id) as members_on_shard,
                exists (select 1 from shard_policy_live l
                         where l.shard_id = $1 and l.tenant_id = t.id) as live,
                (select l.revision from shard_policy_live l
                  where l.shard_id = $1 and l.tenant_id = t.id) as live_revision
           from tenant t where t.shard_id = $1 order by t.slug",
    )
    .bind(r.id)
    .fetch_all(&mut *tx)
    .await?;
    let orphans = sqlx::query_as::<_, OrphanRow>(
        "select node_id, given_name, user_name, tags, orphan_reason from node
          where shard_id = $1 and removed_at is null and tenant_id is null
          order by node_id limit 200",
    )
    .bind(r.id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(ShardDetail {
        settings: ShardSettings {
            cluster_id: r.cluster_id,
            name: r.name,
            region: r.region,
            login_server_url: r.login_server_url,
            api_url: r.api_url,
            node_capacity: r.node_capacity,
        },
        next_sync_at: super::rfc3339((r.status != "disabled").then_some(r.next_sync_at)),
        status: r.status,
        health: r.health,
        headscale_version: r.headscale_version,
        last_sync_latency_ms: r.last_sync_latency_ms,
        last_sync_at: super::rfc3339(r.last_sync_at),
        last_sync_attempt_at: super::rfc3339(r.last_sync_attempt_at),
        last_sync_error: r.last_sync_error,
        consecutive_failures: r.consecutive_failures,
        nodes: r.nodes,
        online: r.online,
        dedicated_to: r.dedicated_to,
        policy_pushed_at: super::rfc3339(r.policy_pushed_at),
        policy_pending_since: super::rfc3339(r.policy_dirty_since),
        policy_push_error: r.policy_push_error,
        policy_push_failures: r.policy_push_failures,
        tenants: tenants
            .into_iter()
            .map(|t| ShardTenant {
                slug: t.slug,
                code: t.code,
                display_name: t.display_name,
                suspended: t.status == "suspended",
                devices: t.devices,
                device_quota: t.device_quota,
                members: t.members,
                members_on_shard: t.members_on_shard,
                live_revision: t.live.then_some(t.live_revision),
            })
            .collect(),
        orphans: orphans
            .into_iter()
            .map(|o| OrphanNode {
                node_id: o.node_id,
                name: o.given_name,
                user_name: o.user_name,
                tags: o.tags,
                reason: OrphanReason::parse(&o.orphan_reason)
                    .map(|r| r.explain().to_string())
                    .unwrap_or(o.orphan_reason),
            })
            .collect(),
    }))
}

/// Saves a shard from the operator screens (create or update by `cluster_id`); an
/// existing shard keeps its status.
pub async fn save(
    pool: &PgPool,
    scope: &OperatorScope,
    secrets: &SecretBox,
    shard: &NewShard,
    api_key: &str,
) -> Result<Uuid, sqlx::Error> {
    let tx = operator_tx(pool, scope).await?;
    write(tx, scope.actor(), secrets, shard, api_key, None).await
}

/// Sets a shard's status. Reactivating or draining a disabled shard makes it due for a
/// sync at once. Returns false when there is no such shard.
pub async fn set_status(
    pool: &PgPool,
    scope: &OperatorScope,
    cluster_id: &str,
    status: ShardStatus,
) -> Result<bool, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let before: Option<String> =
        sqlx::query_scalar("select status from shard where cluster_id = $1 for update")
            .bind(cluster_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(before) = before else {
        return Ok(false);
    };
    sqlx::query(
        "update shard set status = $2, updated_at = now(),
                next_sync_at = case when status = 'disabled' and $2 <> 'disabled'
                                    then now() else next_sync_at end
          where cluster_id = $1",
    )
    .bind(cluster_id)
    .bind(status.as_str())
    .execute(&mut *tx)
    .await?;
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        None,
        "shard.status_set",
        cluster_id,
        serde_json::json!({ "before": before, "after": status.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Makes a shard that is not disabled due for the background sync now. Returns false
/// for a disabled or unknown shard.
pub async fn sync_now(
    pool: &PgPool,
    scope: &OperatorScope,
    cluster_id: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let n = sqlx::query(
        "update shard set next_sync_at = now() where cluster_id = $1 and status <> 'disabled'",
    )
    .bind(cluster_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        crate::data::audit::record(
            &mut tx,
            scope.actor(),
            None,
            "shard.sync_requested",
            cluster_id,
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}
