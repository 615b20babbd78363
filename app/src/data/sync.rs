//! The shard mirror and the sync state of shards (DESIGN.md §1, §7, §9), written by the
//! background sync (`server::jobs::sync`).
//!
//! All of it is trusted server work, not on behalf of one tenant, so it runs through
//! `system_tx`; the rows it writes carry their tenant, and row-level security keeps each
//! tenant to its own (orphans, with no tenant, only reach operators).
//!
//! # Claiming (two replicas never sync one shard at once)
//! `claim_next_due` takes the most overdue shard whose lease is free with
//! `update … from (select … for update skip locked limit 1)`, and stamps it with the
//! worker's id and a lease end. The HTTP calls to the shard then run with no database
//! transaction open. `apply_snapshot` and `record_failure` lock the shard row and check
//! that the lease is still the worker's before writing; they release it. A worker that
//! crashed leaves a lease that simply runs out; one that was too slow finds its lease
//! taken and writes nothing (`SyncError::LeaseLost`).
//!
//! # Online intervals (for billing)
//! - A node that a sync sees online, with no open interval, gets one starting at that
//!   sync's time.
//! - An open interval ends at the time of the sync that sees its node offline, gone
//!   from the shard, or owned by another tenant (a new one then opens for the new owner).
//! - Usage is never invented: when a sync fails, open intervals of the shard end at its
//!   last successful sync, the last time anyone saw those nodes online; and when the
//!   last successful sync is older than `max_gap` (the portal was down, say), they end
//!   there too before the new snapshot is applied. The node's next good sync opens a
//!   new interval. Billing therefore counts at most what was observed.
//! - So an interval still open is known to last until its shard's `last_sync_at`, not
//!   until now: readers (billing) count open intervals up to that time. That also
//!   covers a shard an operator disabled, which is no longer synced.
//!
//! # Writes
//! An unchanged node or key costs no write. Headscale moves a node's `last_seen` at
//! every connect and disconnect, so a device that reconnects costs one row update.
//!
//! The portal also writes the mirror itself right after changing a shard (a rename, an
//! expiry, a registration, a minted or expired key), so pages show the change at once.
//! A snapshot read before such a write is older news than it: rows whose `changed_at`
//! is later than the claim (`ShardClaim::claimed_at`, taken before the shard was read)
//! are neither updated nor marked removed by that pass; the next pass reads the shard
//! afresh and the shard is the truth again.
//!
//! All times are the database's `now()` (the transaction's start), one clock for all
//! replicas.

use super::system_tx;
use crate::domain::sync::{attribute, backoff, OrphanReason, Placement};
use crate::headscale::{Node, PreAuthKey, RegisterMethod};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

/// A shard a worker holds the lease of.
#[derive(Clone)]
pub struct ShardClaim {
    pub shard_id: Uuid,
    pub cluster_id: String,
    pub api_url: String,
    /// The sealed API key (open it with `SecretBox`).
    pub api_key_sealed: Vec<u8>,
    pub worker: Uuid,
    pub lease_until: OffsetDateTime,
    pub consecutive_failures: u32,
    /// The database's time when the claim was taken, before the shard was read. A mirror
    /// row the portal wrote after it (a rename, an expiry, a registration, a minted key:
    /// `changed_at` later than this) holds newer news than the snapshot and is left for
    /// the next pass.
    pub claimed_at: OffsetDateTime,
}

impl fmt::Debug for ShardClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardClaim")
            .field("shard_id", &self.shard_id)
            .field("cluster_id", &self.cluster_id)
            .field("api_url", &self.api_url)
            .field("worker", &self.worker)
            .field("lease_until", &self.lease_until)
            .field("consecutive_failures", &self.consecutive_failures)
            .finish_non_exhaustive()
    }
}

/// What one sync read from a shard.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// What `/version` reported, e.g. `0.29.2`.
    pub version: String,
    /// How long reading the snapshot took.
    pub latency: Duration,
    pub nodes: Vec<Node>,
    pub pre_auth_keys: Vec<PreAuthKey>,
}

/// Timing rules of the sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncTiming {
    /// Time between two syncs of a healthy shard.
    pub interval: Duration,
    /// A failing shard waits `interval × 2^failures`, at most this long.
    pub max_backoff: Duration,
    /// Open online intervals are not carried over a longer time without a good sync.
    pub max_gap: Duration,
}

impl SyncTiming {
    /// `max_backoff` 5 minutes; `max_gap` 3 intervals, at least a minute.
    pub fn new(interval: Duration) -> Self {
        SyncTiming {
            interval,
            max_backoff: Duration::from_secs(300),
            max_gap: (interval * 3).max(Duration::from_secs(60)),
        }
    }
}

/// What happened to the mirror rows of one kind in one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows whose node or key is no longer on the shard (marked `removed_at`).
    pub removed: u64,
}

impl RowCounts {
    pub fn written(&self) -> u64 {
        self.inserted + self.updated + self.removed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncCounts {
    pub nodes: RowCounts,
    pub pre_auth_keys: RowCounts,
    pub intervals_opened: u64,
    pub intervals_closed: u64,
    /// Nodes on the shard that belong to no tenant of it.
    pub orphan_nodes: u64,
    /// Tenants that went over their device quota or back within it.
    pub quota_changes: u64,
}

impl SyncCounts {
    /// Mirror rows written (nodes, keys, intervals); 0 when nothing changed.
    pub fn rows_written(&self) -> u64 {
        self.nodes.written()
            + self.pre_auth_keys.written()
            + self.intervals_opened
            + self.intervals_closed
            + self.quota_changes
    }
}

/// After a failed sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRecord {
    pub consecutive_failures: u32,
    pub retry_in: Duration,
    pub intervals_closed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The worker's lease on the shard ran out and another worker took it; nothing was
    /// written.
    #[error("the lease on the shard was lost to another worker")]
    LeaseLost,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Claims the most overdue shard that is due (`next_sync_at` passed), not disabled and
/// not leased, for `lease`. `None` when nothing is due.
pub async fn claim_next_due(
    pool: &PgPool,
    worker: Uuid,
    lease: Duration,
) -> Result<Option<ShardClaim>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        cluster_id: String,
        api_url: String,
        api_key_sealed: Vec<u8>,
        sync_lease_until: OffsetDateTime,
        consecutive_failures: i32,
        claimed_at: OffsetDateTime,
    }
    let mut tx = system_tx(pool).await?;
    // `skip locked`: a row another worker is claiming right now is passed over instead
    // of waited for; the outer update re-checks the row it locked (read committed
    // re-evaluates the conditions on the newest row version).
    let row = sqlx::query_as::<_, Row>(
        "update shard s
            set sync_lease_owner = $1,
                sync_lease_until = now() + make_interval(secs => $2),
                last_sync_attempt_at = now()
           from (select id from shard
                  where status <> 'disabled'
                    and next_sync_at <= now()
                    and (sync_lease_until is null or sync_lease_until <= now())
                  order by next_sync_at, id
                  limit 1
                  for update skip locked) due
          where s.id = due.id
         returning s.id, s.cluster_id, s.api_url, s.api_key_sealed, s.sync_lease_until,
                   s.consecutive_failures, now() as claimed_at",
    )
    .bind(worker)
    .bind(secs(lease))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|r| ShardClaim {
        shard_id: r.id,
        cluster_id: r.cluster_id,
        api_url: r.api_url,
        api_key_sealed: r.api_key_sealed,
        worker,
        lease_until: r.sync_lease_until,
        consecutive_failures: u32::try_from(r.consecutive_failures).unwrap_or(0),
        claimed_at: r.claimed_at,
    }))
}

/// How long until some shard is due (zero if one is now); `None` without shards to sync.
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let seconds: Option<f64> = sqlx::query_scalar(
        "select extract(epoch from min(greatest(next_sync_at, coalesce(sync_lease_until, next_sync_at))) - now())::float8
           from shard where status <> 'disabled'",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Makes a shard due now (an operator's "sync now"; tests).
pub async fn mark_due(pool: &PgPool, shard_id: Uuid) -> Result<bool, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let n = sqlx::query("update shard set next_sync_at = now() where id = $1")
        .bind(shard_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// Gives up every lease the worker holds (at shutdown), so other replicas need not
/// wait for them to run out. The shards stay due when they were.
pub async fn release_leases(pool: &PgPool, worker: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let n = sqlx::query(
        "update shard set sync_lease_owner = null, sync_lease_until = null
          where sync_lease_owner = $1",
    )
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// Releases the claim without judging the shard (the portal, not the shard, failed:
/// e.g. the database), to be tried again after `after`.
pub async fn postpone(pool: &PgPool, claim: &ShardClaim, after: Duration) -> Result<(), SyncError> {
    let mut tx = system_tx(pool).await?;
    let n = sqlx::query(
        "update shard set sync_lease_owner = null, sync_lease_until = null,
                next_sync_at = now() + make_interval(secs => $3)
          where id = $1 and sync_lease_owner = $2",
    )
    .bind(claim.shard_id)
    .bind(claim.worker)
    .bind(secs(after))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if n == 1 {
        Ok(())
    } else {
        Err(SyncError::LeaseLost)
    }
}

struct Locked {
    last_sync_at: Option<OffsetDateTime>,
    stale: bool,
    consecutive_failures: i32,
}

/// Locks the shard row for the rest of the transaction if the worker still holds its
/// lease. The lock also makes a second writer wait, so checks and writes are atomic.
async fn lock_claimed(
    tx: &mut super::Tx,
    claim: &ShardClaim,
    max_gap: Duration,
) -> Result<Locked, SyncError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        last_sync_at: Option<OffsetDateTime>,
        stale: bool,
        consecutive_failures: i32,
    }
    let row = sqlx::query_as::<_, Row>(
        "select last_sync_at,
                coalesce(last_sync_at < now() - make_interval(secs => $3), true) as stale,
                consecutive_failures
           from shard where id = $1 and sync_lease_owner = $2
            for update",
    )
    .bind(claim.shard_id)
    .bind(claim.worker)
    .bind(secs(max_gap))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(SyncError::LeaseLost)?;
    Ok(Locked {
        last_sync_at: row.last_sync_at,
        stale: row.stale,
        consecutive_failures: row.consecutive_failures,
    })
}

/// Ends every open interval of the shard at `at` (the last time its nodes were seen).
async fn close_open_intervals_at(
    tx: &mut super::Tx,
    shard_id: Uuid,
    at: Option<OffsetDateTime>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "update node_online_interval set ended_at = greatest(started_at, $2)
          where shard_id = $1 and ended_at is null",
    )
    .bind(shard_id)
    .bind(at)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

#[derive(Serialize)]
struct NodeRow {
    node_id: i64,
    tenant_id: Option<Uuid>,
    orphan_reason: Option<&'static str>,
    given_name: String,
    name: String,
    user_id: Option<i64>,
    user_name: Option<String>,
    ip_addresses: Vec<String>,
    tags: Vec<String>,
    online: bool,
    last_seen: Option<String>,
    expiry: Option<String>,
    approved_routes: Vec<String>,
    available_routes: Vec<String>,
    subnet_routes: Vec<String>,
    register_method: &'static str,
    pre_auth_key_id: Option<i64>,
    shard_created_at: Option<String>,
}

#[derive(Serialize)]
struct KeyRow {
    key_id: i64,
    tenant_id: Option<Uuid>,
    orphan_reason: Option<&'static str>,
    key_prefix: Option<String>,
    user_id: Option<i64>,
    user_name: Option<String>,
    reusable: bool,
    ephemeral: bool,
    used: bool,
    expiration: Option<String>,
    acl_tags: Vec<String>,
    shard_created_at: Option<String>,
}

/// RFC 3339 for Postgres. Go's zero time (`0001-01-01`) stays as it is: for a key's
/// expiration it means "expired" (Headscale's own rule), not "never".
fn timestamp(t: Option<OffsetDateTime>) -> Option<String> {
    t.and_then(|t| t.format(&Rfc3339).ok())
}

fn register_method(m: RegisterMethod) -> &'static str {
    match m {
        RegisterMethod::AuthKey => "auth_key",
        RegisterMethod::Cli => "cli",
        RegisterMethod::Oidc => "oidc",
        RegisterMethod::Unspecified => "unspecified",
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Headscale ids are counters from 1; one beyond `i64` would be a broken answer.
fn db_id(id: u64, what: &str, cluster_id: &str) -> Option<i64> {
    let id = i64::try_from(id).ok().filter(|&i| i > 0);
    if id.is_none() {
        tracing::warn!(cluster_id, what, "shard listed an id out of range; skipped");
    }
    id
}

fn split(owner: Result<Uuid, OrphanReason>) -> (Option<Uuid>, Option<&'static str>) {
    match owner {
        Ok(tenant) => (Some(tenant), None),
        Err(reason) => (None, Some(reason.as_str())),
    }
}

/// Writes one shard's snapshot into the mirror — only rows that changed — moves the
/// online intervals, and records the success (health `healthy`, the version, latency,
/// `next_sync_at` one interval ahead) and releases the claim, all in one transaction.
pub async fn apply_snapshot(
    pool: &PgPool,
    claim: &ShardClaim,
    snapshot: &Snapshot,
    timing: &SyncTiming,
) -> Result<SyncCounts, SyncError> {
    let mut tx = system_tx(pool).await?;
    let locked = lock_claimed(&mut tx, claim, timing.max_gap).await?;
    let mut counts = SyncCounts::default();

    // Usage is not carried over a stretch nobody observed (see the module docs).
    if locked.stale {
        counts.intervals_closed +=
            close_open_intervals_at(&mut tx, claim.shard_id, locked.last_sync_at).await?;
    }

    // Every tenant, to tell "placed elsewhere" from "unknown" for orphans.
    let tenants: HashMap<String, (Uuid, Option<Uuid>)> =
        sqlx::query_as::<_, (String, Uuid, Option<Uuid>)>("select code, id, shard_id from tenant")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(code, id, shard)| (code, (id, shard)))
            .collect();
    let placement = |code: &str| match tenants.get(code) {
        Some((id, Some(shard))) if *shard == claim.shard_id => Placement::OnShard(*id),
        Some(_) => Placement::Elsewhere,
        None => Placement::Unknown,
    };
    let cluster = claim.cluster_id.as_str();

    // Nodes. A map by id: a duplicate in one answer would make the upsert fail.
    let mut nodes = BTreeMap::new();
    for n in &snapshot.nodes {
        let Some(node_id) = db_id(n.id.0, "node", cluster) else {
            continue;
        };
        let user_name = n.user.as_ref().map(|u| u.name.clone());
        let tags = sorted(n.tags.clone());
        let (tenant_id, orphan_reason) = split(attribute(user_name.as_deref(), &tags, placement));
        nodes.insert(
            node_id,
            NodeRow {
                node_id,
                tenant_id,
                orphan_reason,
                given_name: n.given_name.clone(),
                name: n.name.clone(),
                user_id: n.user.as_ref().and_then(|u| i64::try_from(u.id.0).ok()),
                user_name,
                ip_addresses: n.ip_addresses.iter().map(|ip| ip.to_string()).collect(),
                tags,
                online: n.online,
                last_seen: timestamp(n.last_seen),
                expiry: timestamp(n.expiry),
                approved_routes: sorted(n.approved_routes.clone()),
                available_routes: sorted(n.available_routes.clone()),
                subnet_routes: sorted(n.subnet_routes.clone()),
                register_method: register_method(n.register_method),
                pre_auth_key_id: n
                    .pre_auth_key
                    .as_ref()
                    .and_then(|k| i64::try_from(k.id.0).ok()),
                shard_created_at: timestamp(n.created_at),
            },
        );
    }
    counts.orphan_nodes = nodes.values().filter(|n| n.tenant_id.is_none()).count() as u64;
    let node_ids: Vec<i64> = nodes.keys().copied().collect();
    let node_rows: Vec<NodeRow> = nodes.into_values().collect();

    // `where … is distinct from …`: an unchanged row is neither updated nor returned,
    // so it costs no write. `xmax = 0` tells a fresh insert from an update.
    let (inserted, updated): (i64, i64) = sqlx::query_as(
        "with snap as (
           select * from jsonb_to_recordset($2) as s(
             node_id bigint, tenant_id uuid, orphan_reason text, given_name text, name text,
             user_id bigint, user_name text, ip_addresses inet[], tags text[], online boolean,
             last_seen timestamptz, expiry timestamptz, approved_routes text[],
             available_routes text[], subnet_routes text[], register_method text,
             pre_auth_key_id bigint, shard_created_at timestamptz)
         ), written as (
           insert into node as n (shard_id, node_id, tenant_id, orphan_reason, given_name, name,
               user_id, user_name, ip_addresses, tags, online, last_seen, expiry,
               approved_routes, available_routes, subnet_routes, register_method,
               pre_auth_key_id, shard_created_at)
           select $1, node_id, tenant_id, orphan_reason, given_name, name,
               user_id, user_name, ip_addresses, tags, online, last_seen, expiry,
               approved_routes, available_routes, subnet_routes, register_method,
               pre_auth_key_id, shard_created_at
             from snap
           on conflict on constraint node_pkey do update set
               tenant_id = excluded.tenant_id, orphan_reason = excluded.orphan_reason,
               given_name = excluded.given_name, name = excluded.name,
               user_id = excluded.user_id, user_name = excluded.user_name,
               ip_addresses = excluded.ip_addresses, tags = excluded.tags,
               online = excluded.online, last_seen = excluded.last_seen,
               expiry = excluded.expiry, approved_routes = excluded.approved_routes,
               available_routes = excluded.available_routes,
               subnet_routes = excluded.subnet_routes,
               register_method = excluded.register_method,
               pre_auth_key_id = excluded.pre_auth_key_id,
               shard_created_at = excluded.shard_created_at,
               -- A node id that comes back as another machine (SQLite may reuse the
               -- highest id) is a new node.
               first_synced_at = case
                 when n.removed_at is not null
                  and n.shard_created_at is distinct from excluded.shard_created_at
                 then now() else n.first_synced_at end,
               changed_at = now(),
               removed_at = null
           where n.changed_at < $3
             and (n.tenant_id, n.orphan_reason, n.given_name, n.name, n.user_id, n.user_name,
                  n.ip_addresses, n.tags, n.online, n.last_seen, n.expiry,
                  n.approved_routes, n.available_routes, n.subnet_routes,
                  n.register_method, n.pre_auth_key_id, n.shard_created_at, n.removed_at)
                 is distinct from
                 (excluded.tenant_id, excluded.orphan_reason, excluded.given_name,
                  excluded.name, excluded.user_id, excluded.user_name,
                  excluded.ip_addresses, excluded.tags, excluded.online,
                  excluded.last_seen, excluded.expiry, excluded.approved_routes,
                  excluded.available_routes, excluded.subnet_routes,
                  excluded.register_method, excluded.pre_auth_key_id,
                  excluded.shard_created_at, null::timestamptz)
           returning (xmax = 0) as inserted
         )
         select count(*) filter (where inserted), count(*) filter (where not inserted)
           from written",
    )
    .bind(claim.shard_id)
    .bind(Json(&node_rows))
    .bind(claim.claimed_at)
    .fetch_one(&mut *tx)
    .await?;
    let removed = sqlx::query(
        "update node set removed_at = now(), online = false, changed_at = now()
          where shard_id = $1 and removed_at is null and not (node_id = any($2))
            and changed_at < $3",
    )
    .bind(claim.shard_id)
    .bind(&node_ids)
    .bind(claim.claimed_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    counts.nodes = row_counts(node_rows.len(), inserted, updated, removed);

    // Intervals: close what went offline, left, or changed tenant; open what is online.
    counts.intervals_closed += sqlx::query(
        "update node_online_interval i set ended_at = greatest(i.started_at, now())
           from node n
          where i.shard_id = $1 and i.ended_at is null
            and n.shard_id = i.shard_id and n.node_id = i.node_id
            and (not n.online or n.removed_at is not null
                 or n.tenant_id is distinct from i.tenant_id)",
    )
    .bind(claim.shard_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    counts.intervals_opened = sqlx::query(
        "insert into node_online_interval (tenant_id, shard_id, node_id, started_at)
         select n.tenant_id, n.shard_id, n.node_id, now() from node n
          where n.shard_id = $1 and n.online and n.removed_at is null
            and not exists (select 1 from node_online_interval i
                             where i.shard_id = n.shard_id and i.node_id = n.node_id
                               and i.ended_at is null)",
    )
    .bind(claim.shard_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();

    // Pre-auth keys: the prefix only, never the key (the column's check refuses more).
    let mut keys = BTreeMap::new();
    for k in &snapshot.pre_auth_keys {
        let Some(key_id) = db_id(k.id.0, "pre-auth key", cluster) else {
            continue;
        };
        let user_name = k.user.as_ref().map(|u| u.name.clone());
        let acl_tags = sorted(k.acl_tags.clone());
        let (tenant_id, orphan_reason) =
            split(attribute(user_name.as_deref(), &acl_tags, placement));
        keys.insert(
            key_id,
            KeyRow {
                key_id,
                tenant_id,
                orphan_reason,
                key_prefix: k.prefix().map(str::to_string),
                user_id: k.user.as_ref().and_then(|u| i64::try_from(u.id.0).ok()),
                user_name,
                reusable: k.reusable,
                ephemeral: k.ephemeral,
                used: k.used,
                expiration: timestamp(k.expiration),
                acl_tags,
                shard_created_at: timestamp(k.created_at),
            },
        );
    }
    let key_ids: Vec<i64> = keys.keys().copied().collect();
    let key_rows: Vec<KeyRow> = keys.into_values().collect();
    let (inserted, updated): (i64, i64) = sqlx::query_as(
        "with snap as (
           select * from jsonb_to_recordset($2) as s(
             key_id bigint, tenant_id uuid, orphan_reason text, key_prefix text,
             user_id bigint, user_name text, reusable boolean, ephemeral boolean,
             used boolean, expiration timestamptz, acl_tags text[],
             shard_created_at timestamptz)
         ), written as (
           insert into pre_auth_key as k (shard_id, key_id, tenant_id, orphan_reason,
               key_prefix, user_id, user_name, reusable, ephemeral, used, expiration,
               acl_tags, shard_created_at)
           select $1, key_id, tenant_id, orphan_reason, key_prefix, user_id, user_name,
               reusable, ephemeral, used, expiration, acl_tags, shard_created_at
             from snap
           on conflict on constraint pre_auth_key_pkey do update set
               tenant_id = excluded.tenant_id, orphan_reason = excluded.orphan_reason,
               key_prefix = excluded.key_prefix, user_id = excluded.user_id,
               user_name = excluded.user_name, reusable = excluded.reusable,
               ephemeral = excluded.ephemeral, used = excluded.used,
               expiration = excluded.expiration, acl_tags = excluded.acl_tags,
               shard_created_at = excluded.shard_created_at,
               first_synced_at = case
                 when k.removed_at is not null
                  and k.shard_created_at is distinct from excluded.shard_created_at
                 then now() else k.first_synced_at end,
               changed_at = now(),
               removed_at = null
           where k.changed_at < $3
             and (k.tenant_id, k.orphan_reason, k.key_prefix, k.user_id, k.user_name,
                  k.reusable, k.ephemeral, k.used, k.expiration, k.acl_tags,
                  k.shard_created_at, k.removed_at)
                 is distinct from
                 (excluded.tenant_id, excluded.orphan_reason, excluded.key_prefix,
                  excluded.user_id, excluded.user_name, excluded.reusable,
                  excluded.ephemeral, excluded.used, excluded.expiration,
                  excluded.acl_tags, excluded.shard_created_at, null::timestamptz)
           returning (xmax = 0) as inserted
         )
         select count(*) filter (where inserted), count(*) filter (where not inserted)
           from written",
    )
    .bind(claim.shard_id)
    .bind(Json(&key_rows))
    .bind(claim.claimed_at)
    .fetch_one(&mut *tx)
    .await?;
    let removed = sqlx::query(
        "update pre_auth_key set removed_at = now(), changed_at = now()
          where shard_id = $1 and removed_at is null and not (key_id = any($2))
            and changed_at < $3",
    )
    .bind(claim.shard_id)
    .bind(&key_ids)
    .bind(claim.claimed_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    counts.pre_auth_keys = row_counts(key_rows.len(), inserted, updated, removed);

    // Quotas: a tenant whose devices went over its device quota (reusable keys can do
    // that) or back within it; only a change writes, with an audit entry.
    counts.quota_changes = sqlx::query_scalar::<_, i64>(
        "with counts as (
           select t.id, t.device_quota, t.over_quota_since,
                  (select count(*) from node n
                    where n.tenant_id = t.id and n.shard_id = $1 and n.removed_at is null) as devices
             from tenant t where t.shard_id = $1
         ), changed as (
           update tenant t
              set over_quota_since = case when c.devices > c.device_quota then now() end
             from counts c
            where t.id = c.id
              and (c.devices > c.device_quota) <> (c.over_quota_since is not null)
           returning t.id, c.devices, c.device_quota, (c.devices > c.device_quota) as over
         ), logged as (
           insert into audit_event (tenant_id, actor_kind, action, target, detail)
           select id, 'system',
                  case when over then 'tenant.quota_exceeded' else 'tenant.quota_restored' end,
                  'devices', jsonb_build_object('devices', devices, 'device_quota', device_quota)
             from changed
           returning 1
         )
         select count(*) from logged",
    )
    .bind(claim.shard_id)
    .fetch_one(&mut *tx)
    .await?
    .max(0) as u64;

    sqlx::query(
        "update shard set health = 'healthy', headscale_version = $2, last_sync_at = now(),
                last_sync_error = null, last_sync_latency_ms = $3, consecutive_failures = 0,
                next_sync_at = now() + make_interval(secs => $4),
                sync_lease_owner = null, sync_lease_until = null
          where id = $1",
    )
    .bind(claim.shard_id)
    .bind(&snapshot.version)
    .bind(i32::try_from(snapshot.latency.as_millis()).unwrap_or(i32::MAX))
    .bind(secs(timing.interval))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(counts)
}

fn row_counts(total: usize, inserted: i64, updated: i64, removed: u64) -> RowCounts {
    let inserted = u64::try_from(inserted).unwrap_or(0);
    let updated = u64::try_from(updated).unwrap_or(0);
    RowCounts {
        inserted,
        updated,
        unchanged: (total as u64).saturating_sub(inserted + updated),
        removed,
    }
}

/// The longest error sentence kept (the column allows 1000 characters).
const MAX_ERROR_CHARS: usize = 500;

/// Records a failed sync: health `unhealthy` at once (a sync already includes the
/// client's retries, so one failed sync is several failed calls), the error sentence,
/// one more consecutive failure and the next try after `backoff`; open online
/// intervals end at the last successful sync. Releases the claim.
///
/// `error` must be a sentence without secrets (a `HeadscaleError`'s text is).
pub async fn record_failure(
    pool: &PgPool,
    claim: &ShardClaim,
    error: &str,
    timing: &SyncTiming,
) -> Result<FailureRecord, SyncError> {
    let mut tx = system_tx(pool).await?;
    let locked = lock_claimed(&mut tx, claim, timing.max_gap).await?;
    let failures = u32::try_from(locked.consecutive_failures)
        .unwrap_or(0)
        .saturating_add(1);
    let retry_in = backoff(timing.interval, failures, timing.max_backoff);
    let intervals_closed =
        close_open_intervals_at(&mut tx, claim.shard_id, locked.last_sync_at).await?;
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    sqlx::query(
        "update shard set health = 'unhealthy', last_sync_error = $2,
                consecutive_failures = $3, next_sync_at = now() + make_interval(secs => $4),
                sync_lease_owner = null, sync_lease_until = null
          where id = $1",
    )
    .bind(claim.shard_id)
    .bind(&error)
    .bind(i32::try_from(failures).unwrap_or(i32::MAX))
    .bind(secs(retry_in))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(FailureRecord {
        consecutive_failures: failures,
        retry_in,
        intervals_closed,
    })
}
