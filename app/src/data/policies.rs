//! Tenant policies: revisions (`policy_revision`), the tenant's declared subnets, and the
//! push state of shards (`shard.policy_*`, `shard_policy_live`). Saving a revision,
//! changing a membership or a tenant's subnets marks the shard for a push (database
//! triggers, migrations/…080000_policies.sql); the push job (`server::jobs::policy`)
//! builds the shard policy from each tenant's last good revision.

use super::{rfc3339, system_tx, tenant_tx};
use crate::api::policy::{LiveState, Revision, RevisionSummary};
use crate::auth::TenantScope;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct RevisionRow {
    revision: i32,
    body: String,
    comment: String,
    author_name: String,
    created_at: OffsetDateTime,
    restores: Option<i32>,
    rejected_reason: Option<String>,
}

impl From<RevisionRow> for Revision {
    fn from(r: RevisionRow) -> Revision {
        Revision {
            revision: r.revision,
            body: r.body,
            comment: r.comment,
            author_name: r.author_name,
            created_at: rfc3339(Some(r.created_at)).unwrap_or_default(),
            restores: r.restores,
            rejected_reason: r.rejected_reason,
        }
    }
}

/// The newest revision (the one the editor starts from), if any.
pub async fn latest(pool: &PgPool, scope: &TenantScope) -> Result<Option<Revision>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let row = sqlx::query_as::<_, RevisionRow>(
        "select revision, body, comment, author_name, created_at, restores, rejected_reason
           from policy_revision where tenant_id = $1 order by revision desc limit 1",
    )
    .bind(scope.tenant_id())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(Revision::from))
}

/// One revision of the tenant's, or `None`.
pub async fn revision(
    pool: &PgPool,
    scope: &TenantScope,
    revision: i32,
) -> Result<Option<Revision>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let row = sqlx::query_as::<_, RevisionRow>(
        "select revision, body, comment, author_name, created_at, restores, rejected_reason
           from policy_revision where tenant_id = $1 and revision = $2",
    )
    .bind(scope.tenant_id())
    .bind(revision)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(Revision::from))
}

/// The history, newest first.
pub async fn history(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<Vec<RevisionSummary>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, RevisionRow>(
        "select revision, '' as body, comment, author_name, created_at, restores, rejected_reason
           from policy_revision where tenant_id = $1 order by revision desc",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| RevisionSummary {
            revision: r.revision,
            comment: r.comment,
            author_name: r.author_name,
            created_at: rfc3339(Some(r.created_at)).unwrap_or_default(),
            restores: r.restores,
            rejected_reason: r.rejected_reason,
        })
        .collect())
}

/// What the tenant's names may refer to: its members' emails (lower case) and its
/// declared subnets.
pub async fn names(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let members: Vec<String> = sqlx::query_scalar(
        "select distinct lower(p.email) from membership m join person p on p.id = m.person_id
          where m.tenant_id = $1 and p.email is not null order by 1",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    let subnets: Vec<String> =
        sqlx::query_scalar("select unnest(subnets)::text from tenant where id = $1 order by 1")
            .bind(scope.tenant_id())
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok((members, subnets))
}

/// The push state of the tenant's policy on its shard.
pub async fn live_state(pool: &PgPool, scope: &TenantScope) -> Result<LiveState, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        placed: bool,
        live: Option<bool>,
        live_revision: Option<i32>,
        pushed_at: Option<OffsetDateTime>,
        dirty_since: Option<OffsetDateTime>,
        push_error: Option<String>,
    }
    let mut tx = tenant_tx(pool, scope).await?;
    let row = sqlx::query_as::<_, Row>(
        "select s.id is not null as placed,
                (select true from shard_policy_live l
                  where l.shard_id = s.id and l.tenant_id = t.id) as live,
                (select l.revision from shard_policy_live l
                  where l.shard_id = s.id and l.tenant_id = t.id) as live_revision,
                s.policy_pushed_at as pushed_at, s.policy_dirty_since as dirty_since,
                s.policy_push_error as push_error
           from tenant t left join shard s on s.id = t.shard_id
          where t.id = $1",
    )
    .bind(scope.tenant_id())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LiveState {
        placed: row.placed,
        live_revision: row.live.map(|_| row.live_revision),
        pushed_at: rfc3339(row.pushed_at),
        pending_since: rfc3339(row.dirty_since),
        push_failed: row.push_error.is_some(),
    })
}

/// Whether the tenant's shard is dedicated to it.
pub async fn dedicated_shard(pool: &PgPool, scope: &TenantScope) -> Result<bool, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let dedicated: Option<bool> = sqlx::query_scalar(
        "select s.dedicated_tenant_id = t.id from tenant t join shard s on s.id = t.shard_id
          where t.id = $1",
    )
    .bind(scope.tenant_id())
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    tx.commit().await?;
    Ok(dedicated.unwrap_or(false))
}

/// Why a save did not happen.
#[derive(Debug)]
pub enum SaveError {
    /// Someone saved another revision since the editor was opened.
    Stale {
        latest: i32,
    },
    Db(sqlx::Error),
}

impl From<sqlx::Error> for SaveError {
    fn from(e: sqlx::Error) -> SaveError {
        SaveError::Db(e)
    }
}

/// Saves a checked revision; `based_on` is the revision the author edited (`None`: the
/// tenant had none), so two editors never silently overwrite each other. Returns the
/// new revision's number. The shard is marked for a push by a trigger.
pub async fn save(
    pool: &PgPool,
    scope: &TenantScope,
    author_name: &str,
    body: &str,
    comment: &str,
    restores: Option<i32>,
    based_on: Option<i32>,
) -> Result<i32, SaveError> {
    let mut tx = tenant_tx(pool, scope).await?;
    // One saver per tenant at a time: the tenant row is the lock.
    sqlx::query("select 1 from tenant where id = $1 for update")
        .bind(scope.tenant_id())
        .execute(&mut *tx)
        .await?;
    let latest: Option<i32> =
        sqlx::query_scalar("select max(revision) from policy_revision where tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_one(&mut *tx)
            .await?;
    if latest != based_on {
        return Err(SaveError::Stale {
            latest: latest.unwrap_or(0),
        });
    }
    let next = latest.unwrap_or(0) + 1;
    sqlx::query(
        "insert into policy_revision (tenant_id, revision, body, comment, author_id, author_name,
                                      restores)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(scope.tenant_id())
    .bind(next)
    .bind(body)
    .bind(comment)
    .bind(scope.person_id())
    .bind(author_name)
    .bind(restores)
    .execute(&mut *tx)
    .await?;
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "policy.saved",
        &format!("revision {next}"),
        serde_json::json!({ "comment": comment, "restores": restores }),
    )
    .await?;
    tx.commit().await?;
    Ok(next)
}

/// Other tenants' subnets and approved device routes on the shard (only prefixes leave
/// this function): what the tenant's declared subnets must not overlap.
pub async fn taken_on_shard(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<Vec<String>, sqlx::Error> {
    // Across tenants on purpose, so through the trusted scope.
    let mut tx = system_tx(pool).await?;
    let taken = sqlx::query_scalar(
        "with mine as (select shard_id from tenant where id = $1)
         select distinct p from (
           select unnest(t.subnets)::text as p from tenant t, mine
            where t.shard_id = mine.shard_id and t.id <> $1
           union all
           select unnest(n.approved_routes) from node n, mine
            where n.shard_id = mine.shard_id and n.removed_at is null
              and n.tenant_id is distinct from $1
         ) x order by 1",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(taken)
}

/// Replaces the tenant's declared subnets (checked by the caller).
pub async fn set_subnets(
    pool: &PgPool,
    scope: &TenantScope,
    subnets: &[String],
) -> Result<(), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    sqlx::query("update tenant set subnets = $2::cidr[] where id = $1")
        .bind(scope.tenant_id())
        .bind(subnets)
        .execute(&mut *tx)
        .await?;
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "tenant.subnets_set",
        "subnets",
        serde_json::json!({ "subnets": subnets }),
    )
    .await?;
    tx.commit().await
}

// ------------------------------------------------------------------ the push --

/// A shard claimed for a policy push.
#[derive(Debug, Clone)]
pub struct PushClaim {
    pub shard_id: Uuid,
    pub cluster_id: String,
    pub api_url: String,
    pub api_key_sealed: Vec<u8>,
    pub worker: Uuid,
    /// The change the push answers; a later change keeps the shard dirty.
    pub dirty_since: OffsetDateTime,
    pub change_seq: i64,
    pub failures: i32,
}

/// Claims a shard whose policy changed at least `debounce` ago (so a burst of saves is
/// one push) and whose lease is free; pushes to one shard are serialized by the lease.
pub async fn claim_push(
    pool: &PgPool,
    worker: Uuid,
    debounce: Duration,
    lease: Duration,
) -> Result<Option<PushClaim>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        cluster_id: String,
        api_url: String,
        api_key_sealed: Vec<u8>,
        policy_dirty_since: OffsetDateTime,
        policy_change_seq: i64,
        policy_push_failures: i32,
    }
    let mut tx = system_tx(pool).await?;
    let row = sqlx::query_as::<_, Row>(
        "update shard s
            set policy_lease_owner = $1,
                policy_lease_until = now() + make_interval(secs => $3),
                policy_push_attempt_at = now()
           from (select id from shard
                  where status <> 'disabled'
                    and policy_dirty_since <= now() - make_interval(secs => $2)
                    and (policy_lease_until is null or policy_lease_until <= now())
                    -- A failing shard waits 2^failures seconds (at most 5 minutes).
                    and (policy_push_attempt_at is null or policy_push_failures = 0
                         or policy_push_attempt_at + make_interval(secs =>
                              least(300, power(2, least(policy_push_failures, 9)))) <= now())
                  order by policy_dirty_since, id
                  limit 1
                  for update skip locked) due
          where s.id = due.id
         returning s.id, s.cluster_id, s.api_url, s.api_key_sealed, s.policy_dirty_since,
                   s.policy_change_seq, s.policy_push_failures",
    )
    .bind(worker)
    .bind(debounce.as_secs_f64())
    .bind(lease.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|r| PushClaim {
        shard_id: r.id,
        cluster_id: r.cluster_id,
        api_url: r.api_url,
        api_key_sealed: r.api_key_sealed,
        worker,
        dirty_since: r.policy_dirty_since,
        change_seq: r.policy_change_seq,
        failures: r.policy_push_failures,
    }))
}

/// One tenant of a shard, as the compiler needs it.
#[derive(Debug, Clone)]
pub struct TenantSource {
    pub tenant_id: Uuid,
    pub code: String,
    /// The last good revision (newest not rejected): number and text; `None`: none.
    pub revision: Option<(i32, String)>,
    /// Newer revisions than `revision` that were not refused yet (to try first).
    pub candidate: Option<(i32, String)>,
    /// Members: email (lower case) → shard user name (`t7k2.alice`).
    pub users: BTreeMap<String, String>,
    pub subnets: Vec<String>,
    pub device_ips: Vec<String>,
    /// The revision live on the shard now (`Some(None)`: the default).
    pub live: Option<Option<i32>>,
    /// Whether the shard is dedicated to this tenant.
    pub dedicated: bool,
}

/// Everything the shard's policy is built from.
pub async fn shard_sources(
    pool: &PgPool,
    shard_id: Uuid,
) -> Result<Vec<TenantSource>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        code: String,
        subnets: Vec<String>,
        live_exists: bool,
        live_revision: Option<i32>,
        newest: Option<i32>,
        newest_body: Option<String>,
        live_body: Option<String>,
        dedicated: bool,
    }
    let mut tx = system_tx(pool).await?;
    // The candidate is the newest revision not refused; if it is not the live one, the
    // live one (when not refused since) is the fallback.
    let rows = sqlx::query_as::<_, Row>(
        "select t.id, t.code, array(select unnest(t.subnets)::text) as subnets,
                l.tenant_id is not null as live_exists, l.revision as live_revision,
                r.revision as newest, r.body as newest_body, lr.body as live_body,
                coalesce((select s.dedicated_tenant_id = t.id from shard s where s.id = t.shard_id),
                         false) as dedicated
           from tenant t
           left join shard_policy_live l on l.shard_id = t.shard_id and l.tenant_id = t.id
           left join lateral (select revision, body from policy_revision
                               where tenant_id = t.id and rejected_at is null
                               order by revision desc limit 1) r on true
           left join policy_revision lr on lr.tenant_id = t.id and lr.revision = l.revision
                                      and lr.rejected_at is null
          where t.shard_id = $1
          order by t.code",
    )
    .bind(shard_id)
    .fetch_all(&mut *tx)
    .await?;
    let users: Vec<(Uuid, String, String)> = sqlx::query_as(
        "select m.tenant_id, lower(p.email), t.code || '.' || m.handle
           from membership m join person p on p.id = m.person_id join tenant t on t.id = m.tenant_id
          where t.shard_id = $1 and p.email is not null and m.handle is not null",
    )
    .bind(shard_id)
    .fetch_all(&mut *tx)
    .await?;
    let ips: Vec<(Uuid, String)> = sqlx::query_as(
        "select n.tenant_id, host(ip) from node n, unnest(n.ip_addresses) as ip
          where n.shard_id = $1 and n.removed_at is null and n.tenant_id is not null
          order by 1, 2",
    )
    .bind(shard_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let live_rev = r.live_revision;
            let newest = r.newest.zip(r.newest_body);
            let fallback = match (live_rev, r.live_body) {
                (Some(n), Some(body)) => Some((n, body)),
                _ => None,
            };
            let (revision, candidate) = match newest {
                Some((n, body)) if Some(n) == live_rev || !r.live_exists => (Some((n, body)), None),
                Some((n, body)) => (fallback, Some((n, body))),
                None => (None, None),
            };
            TenantSource {
                tenant_id: r.id,
                code: r.code,
                revision,
                candidate,
                users: users
                    .iter()
                    .filter(|(t, _, _)| *t == r.id)
                    .map(|(_, email, user)| (email.clone(), user.clone()))
                    .collect(),
                subnets: r.subnets,
                device_ips: ips
                    .iter()
                    .filter(|(t, _)| *t == r.id)
                    .map(|(_, ip)| ip.clone())
                    .collect(),
                live: r.live_exists.then_some(live_rev),
                dedicated: r.dedicated,
            }
        })
        .collect())
}

/// A push went through: the shard's policy is `hash`, with these revisions per tenant;
/// the shard stays dirty if something changed after the claim.
pub async fn record_pushed(
    pool: &PgPool,
    claim: &PushClaim,
    hash: &str,
    live: &[(Uuid, Option<i32>)],
) -> Result<(), sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    sqlx::query(
        "update shard set policy_pushed_at = now(), policy_hash = $3, policy_push_failures = 0,
                policy_push_error = null, policy_lease_owner = null, policy_lease_until = null,
                policy_dirty_since = case when policy_change_seq = $2 then null
                                          else policy_dirty_since end
          where id = $1 and policy_lease_owner = $4",
    )
    .bind(claim.shard_id)
    .bind(claim.change_seq)
    .bind(hash)
    .bind(claim.worker)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from shard_policy_live where shard_id = $1")
        .bind(claim.shard_id)
        .execute(&mut *tx)
        .await?;
    for (tenant, revision) in live {
        sqlx::query(
            "insert into shard_policy_live (shard_id, tenant_id, revision) values ($1, $2, $3)",
        )
        .bind(claim.shard_id)
        .bind(tenant)
        .bind(revision)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// A push failed as a whole (the shard could not be reached, or refused the policy
/// built from the last good revisions): the previous policy stays in force there.
pub async fn record_push_failed(
    pool: &PgPool,
    claim: &PushClaim,
    error: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    sqlx::query(
        // The backoff counts from the end of the attempt: a shard that hung for the
        // whole timeout is not due again the moment it is released.
        "update shard set policy_push_failures = policy_push_failures + 1,
                policy_push_error = $2, policy_lease_owner = null, policy_lease_until = null,
                policy_push_attempt_at = now()
          where id = $1 and policy_lease_owner = $3",
    )
    .bind(claim.shard_id)
    .bind(error)
    .bind(claim.worker)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A tenant's revision was refused by the shard (or by the portal's checks when built
/// with the other tenants): it is skipped from now on, with the reason for the tenant.
pub async fn mark_rejected(
    pool: &PgPool,
    tenant_id: Uuid,
    revision: i32,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    sqlx::query(
        "update policy_revision set rejected_at = now(), rejected_reason = $3
          where tenant_id = $1 and revision = $2 and rejected_at is null",
    )
    .bind(tenant_id)
    .bind(revision)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into audit_event (tenant_id, actor_kind, action, target, detail)
         values ($1, 'system', 'policy.rejected', $2, jsonb_build_object('reason', $3::text))",
    )
    .bind(tenant_id)
    .bind(format!("revision {revision}"))
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Marks a shard for a push (tests; the operator's "push now").
pub async fn mark_dirty(pool: &PgPool, shard_id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    sqlx::query(
        "update shard set policy_dirty_since = now() - interval '1 hour',
                policy_change_seq = policy_change_seq + 1, policy_push_attempt_at = null
          where id = $1",
    )
    .bind(shard_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
