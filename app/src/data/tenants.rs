//! Tenants: the tenant's own view (scoped) and the operator's list.

use super::{operator_tx, system_tx, tenant_tx};
use crate::api::operator::TenantListRow;
use crate::api::tenant::{MemberRow, ShardSummary, TenantOverview};
use crate::auth::{OperatorScope, TenantScope};
use crate::domain::role::TenantRole;
use crate::domain::tenant::{TenantCode, TenantSlug};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct OverviewRow {
    slug: String,
    code: String,
    display_name: String,
    plan: String,
    region: String,
    status: String,
    shard_cluster_id: Option<String>,
    shard_name: Option<String>,
    shard_region: Option<String>,
    shard_login_server_url: Option<String>,
    shard_status: Option<String>,
    shard_health: Option<String>,
    shard_last_sync_at: Option<time::OffsetDateTime>,
    device_quota: i32,
    key_quota: i32,
}

#[derive(sqlx::FromRow)]
struct MemberDbRow {
    handle: String,
    display_name: String,
    email: Option<String>,
    role: String,
    source: String,
}

/// The tenant's dashboard facts. Note the query has no tenant filter of its own beyond
/// the scope: row-level security limits it to the scope's tenant.
pub async fn overview(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<Option<TenantOverview>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let Some(row) = sqlx::query_as::<_, OverviewRow>(
        "select t.slug, t.code, t.display_name, t.plan, t.region, t.status,
                s.cluster_id as shard_cluster_id, s.name as shard_name, s.region as shard_region,
                s.login_server_url as shard_login_server_url, s.status as shard_status,
                s.health as shard_health, s.last_sync_at as shard_last_sync_at,
                t.device_quota, t.key_quota
         from tenant t left join shard s on s.id = t.shard_id
         where t.id = $1",
    )
    .bind(scope.tenant_id())
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let members = sqlx::query_as::<_, MemberDbRow>(
        "select m.handle, p.display_name, p.email, m.role, m.source
         from membership m join person p on p.id = m.person_id
         where m.tenant_id = $1
         order by p.display_name, p.email",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let (active_keys, devices) = super::keys::usage(pool, scope).await?;
    Ok(Some(TenantOverview {
        quotas: crate::api::tenant::Quotas {
            devices,
            device_quota: row.device_quota,
            active_keys,
            key_quota: row.key_quota,
        },
        slug: row.slug,
        code: row.code.clone(),
        display_name: row.display_name,
        plan: row.plan,
        region: row.region,
        suspended: row.status == "suspended",
        your_role: scope.role(),
        shard: match (
            row.shard_cluster_id,
            row.shard_name,
            row.shard_region,
            row.shard_login_server_url,
        ) {
            (Some(cluster_id), Some(name), Some(region), Some(login_server_url)) => {
                Some(ShardSummary {
                    cluster_id,
                    name,
                    region,
                    login_server_url,
                    status: row.shard_status.unwrap_or_default(),
                    health: row.shard_health.unwrap_or_default(),
                    last_sync_at: super::rfc3339(row.shard_last_sync_at),
                })
            }
            _ => None,
        },
        members: members
            .into_iter()
            .map(|m| MemberRow {
                user_name: crate::domain::shard_users::user_name(&row.code, &m.handle),
                display_name: m.display_name,
                email: m.email,
                role: TenantRole::parse(&m.role).unwrap_or(TenantRole::Member),
                from_idp: m.source == "idp",
            })
            .collect(),
    }))
}

#[derive(sqlx::FromRow)]
struct ListRow {
    slug: String,
    code: String,
    display_name: String,
    plan: String,
    region: String,
    status: String,
    shard_cluster_id: Option<String>,
    placement_reason: Option<String>,
    device_quota: i32,
    members: i64,
}

pub async fn list_all(
    pool: &PgPool,
    scope: &OperatorScope,
) -> Result<Vec<TenantListRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, ListRow>(
        "select t.slug, t.code, t.display_name, t.plan, t.region, t.status,
                s.cluster_id as shard_cluster_id, t.placement_reason, t.device_quota,
                (select count(*) from membership m where m.tenant_id = t.id) as members
         from tenant t left join shard s on s.id = t.shard_id
         order by t.slug",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| TenantListRow {
            slug: r.slug,
            code: r.code,
            display_name: r.display_name,
            plan: r.plan,
            region: r.region,
            suspended: r.status == "suspended",
            shard_cluster_id: r.shard_cluster_id,
            placement_reason: r.placement_reason,
            device_quota: r.device_quota,
            members: r.members,
        })
        .collect())
}

/// Creates a tenant or updates its display name, plan, region and shard (admin command
/// line and dev seed). The code of an existing tenant never changes.
pub async fn upsert(
    pool: &PgPool,
    slug: &TenantSlug,
    code: &TenantCode,
    display_name: &str,
    plan: &str,
    region: &str,
    shard_cluster_id: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let id = sqlx::query_scalar(
        "insert into tenant (slug, code, display_name, plan, region, shard_id)
         values ($1, $2, $3, $4, $5, (select id from shard where cluster_id = $6))
         on conflict on constraint tenant_slug_key do update
           set display_name = excluded.display_name, plan = excluded.plan,
               region = excluded.region, shard_id = coalesce(excluded.shard_id, tenant.shard_id)
         returning id",
    )
    .bind(slug.as_str())
    .bind(code.as_str())
    .bind(display_name)
    .bind(plan)
    .bind(region)
    .bind(shard_cluster_id)
    .fetch_one(&mut *tx)
    .await?;
    let after = settings_json(&mut tx, id).await?;
    crate::data::audit::record(
        &mut tx,
        crate::auth::Actor::System,
        Some(id),
        "tenant.saved",
        slug.as_str(),
        serde_json::json!({ "after": after, "shard": shard_cluster_id, "via": "command line" }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// What the operator asked for when creating a tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: TenantSlug,
    pub display_name: String,
    pub plan: String,
    pub region: String,
    pub device_quota: u32,
    pub key_quota: u32,
    pub dedicated: bool,
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    id: Uuid,
    cluster_id: String,
    region: String,
    status: String,
    node_capacity: i32,
    committed: i64,
    node_count: i64,
    tenant_count: i64,
    dedicated_code: Option<String>,
    plans: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTenantError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Refused(crate::domain::placement::PlacementRefusal),
    #[error("A tenant with the slug {0} already exists.")]
    SlugTaken(String),
}

/// Creates a tenant and places it (docs/placement.md) in one transaction that locks the
/// shard rows, so two creations at once cannot both take the last headroom. The code is
/// random and immutable.
pub async fn create(
    pool: &PgPool,
    scope: &OperatorScope,
    new: &NewTenant,
) -> Result<(TenantCode, crate::domain::placement::PlacementDecision), CreateTenantError> {
    use crate::domain::placement::{
        place, PlacementKind, PlacementRequest, ServedPlans, ShardCandidate,
    };
    use crate::domain::shard::ShardStatus;
    let mut tx = operator_tx(pool, scope).await?;
    let taken: bool = sqlx::query_scalar("select exists (select 1 from tenant where slug = $1)")
        .bind(new.slug.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if taken {
        return Err(CreateTenantError::SlugTaken(new.slug.to_string()));
    }
    let rows = sqlx::query_as::<_, CandidateRow>(
        "select s.id, s.cluster_id, s.region, s.status, s.node_capacity,
                coalesce((select sum(t.device_quota) from tenant t where t.shard_id = s.id), 0)::bigint as committed,
                (select count(*) from node n
                  where n.shard_id = s.id and n.removed_at is null) as node_count,
                (select count(*) from tenant t where t.shard_id = s.id) as tenant_count,
                (select t.code from tenant t where t.id = s.dedicated_tenant_id) as dedicated_code,
                s.plans
         from shard s order by s.cluster_id for update of s",
    )
    .fetch_all(&mut *tx)
    .await?;
    let candidates: Vec<ShardCandidate> = rows
        .iter()
        .map(|r| ShardCandidate {
            cluster_id: r.cluster_id.clone(),
            region: r.region.clone(),
            status: ShardStatus::parse(&r.status).unwrap_or(ShardStatus::Disabled),
            node_capacity: r.node_capacity.max(0) as u32,
            committed_nodes: r.committed.clamp(0, u32::MAX as i64) as u32,
            node_count: r.node_count.clamp(0, u32::MAX as i64) as u32,
            tenant_count: r.tenant_count.clamp(0, u32::MAX as i64) as u32,
            dedicated_to: r
                .dedicated_code
                .as_deref()
                .and_then(|c| TenantCode::parse(c).ok()),
            plans: if r.plans.is_empty() {
                ServedPlans::Any
            } else {
                ServedPlans::only(r.plans.clone())
            },
        })
        .collect();

    // A fresh code that no tenant has (the unique constraint is the final word).
    let mut code = TenantCode::from_random(rand::random());
    for _ in 0..10 {
        let used: bool = sqlx::query_scalar("select exists (select 1 from tenant where code = $1)")
            .bind(code.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if !used {
            break;
        }
        code = TenantCode::from_random(rand::random());
    }
    let mut request = PlacementRequest::new(
        code.clone(),
        new.plan.clone(),
        new.region.clone(),
        new.device_quota,
    );
    request.dedicated = request.dedicated || new.dedicated;
    let decision = place(&request, &candidates).map_err(CreateTenantError::Refused)?;
    let shard_id = rows
        .iter()
        .find(|r| r.cluster_id == decision.cluster_id)
        .map(|r| r.id);
    let tenant_id: Uuid = sqlx::query_scalar(
        "insert into tenant (slug, code, display_name, plan, region, device_quota, key_quota, shard_id, placement_reason)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id",
    )
    .bind(new.slug.as_str())
    .bind(code.as_str())
    .bind(&new.display_name)
    .bind(&new.plan)
    .bind(&new.region)
    .bind(new.device_quota as i32)
    .bind(new.key_quota as i32)
    .bind(shard_id)
    .bind(&decision.reason)
    .fetch_one(&mut *tx)
    .await?;
    if decision.kind == PlacementKind::Dedicated {
        sqlx::query("update shard set dedicated_tenant_id = $1 where id = $2")
            .bind(tenant_id)
            .bind(shard_id)
            .execute(&mut *tx)
            .await?;
    }
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        Some(tenant_id),
        "tenant.created",
        new.slug.as_str(),
        serde_json::json!({
            "code": code.as_str(), "display_name": new.display_name, "plan": new.plan,
            "region": new.region, "device_quota": new.device_quota, "key_quota": new.key_quota,
            "shard": decision.cluster_id, "placement": decision.reason,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok((code, decision))
}

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: Uuid,
    slug: String,
    code: String,
    display_name: String,
    plan: String,
    region: String,
    status: String,
    device_quota: i32,
    key_quota: i32,
    placement_reason: Option<String>,
    created_at: time::OffsetDateTime,
    shard_cluster_id: Option<String>,
    shard_name: Option<String>,
    shard_health: Option<String>,
    dedicated: bool,
    devices: i64,
}

#[derive(sqlx::FromRow)]
struct AdminMemberRow {
    display_name: String,
    email: Option<String>,
    role: String,
    source: String,
    handle: String,
    shard_user: Option<String>,
}

/// A tenant as operators manage it, with its members and their shard users.
pub async fn get_admin(
    pool: &PgPool,
    scope: &OperatorScope,
    slug: &str,
) -> Result<Option<crate::api::tenants::TenantAdmin>, sqlx::Error> {
    use crate::api::tenants::{TenantAdmin, TenantAdminMember};
    let mut tx = operator_tx(pool, scope).await?;
    let Some(r) = sqlx::query_as::<_, AdminRow>(
        "select t.id, t.slug, t.code, t.display_name, t.plan, t.region, t.status,
                t.device_quota, t.key_quota, t.placement_reason, t.created_at,
                s.cluster_id as shard_cluster_id, s.name as shard_name, s.health as shard_health,
                coalesce(s.dedicated_tenant_id = t.id, false) as dedicated,
                (select count(*) from node n where n.tenant_id = t.id and n.removed_at is null) as devices
           from tenant t left join shard s on s.id = t.shard_id
          where t.slug = $1",
    )
    .bind(slug)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let members = sqlx::query_as::<_, AdminMemberRow>(
        "select p.display_name, p.email, m.role, m.source, m.handle, su.user_name as shard_user
           from membership m
           join person p on p.id = m.person_id
           join tenant t on t.id = m.tenant_id
           left join shard_user su
             on su.shard_id = t.shard_id and su.tenant_id = t.id and su.person_id = m.person_id
          where m.tenant_id = $1
          order by m.handle",
    )
    .bind(r.id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(TenantAdmin {
        slug: r.slug,
        code: r.code.clone(),
        display_name: r.display_name,
        plan: r.plan,
        region: r.region,
        suspended: r.status == "suspended",
        device_quota: r.device_quota,
        key_quota: r.key_quota,
        placement_reason: r.placement_reason,
        created_at: super::rfc3339(Some(r.created_at)).unwrap_or_default(),
        shard_cluster_id: r.shard_cluster_id,
        shard_name: r.shard_name,
        shard_health: r.shard_health,
        dedicated: r.dedicated,
        devices: r.devices,
        members: members
            .into_iter()
            .map(|m| TenantAdminMember {
                user_name: crate::domain::shard_users::user_name(&r.code, &m.handle),
                display_name: m.display_name,
                email: m.email,
                role: TenantRole::parse(&m.role).unwrap_or(TenantRole::Member),
                from_idp: m.source == "idp",
                on_shard: m.shard_user.is_some(),
            })
            .collect(),
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateTenantError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("Tenant “{0}” was not found.")]
    NotFound(String),
    #[error("A tenant with the slug {0} already exists.")]
    SlugTaken(String),
    /// The change does not fit; the sentence says why and what would.
    #[error("{0}")]
    Refused(String),
}

/// Changes a tenant's slug and settings. The code and the shard never change here:
/// placement is sticky (docs/placement.md), so a new region or plan applies to the next
/// placement decision, not as a move. A larger device quota must fit the shard's
/// capacity next to the other tenants' quotas (checked under a lock of the shard row,
/// as at creation); a smaller one may not go below the devices the tenant has.
pub async fn update(
    pool: &PgPool,
    scope: &OperatorScope,
    slug: &str,
    new_slug: &TenantSlug,
    settings: &crate::domain::tenant::TenantSettings,
) -> Result<(), UpdateTenantError> {
    #[derive(sqlx::FromRow)]
    struct Current {
        id: Uuid,
        device_quota: i32,
        shard_id: Option<Uuid>,
    }
    let mut tx = operator_tx(pool, scope).await?;
    let current = sqlx::query_as::<_, Current>(
        "select id, device_quota, shard_id from tenant where slug = $1 for update",
    )
    .bind(slug)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| UpdateTenantError::NotFound(slug.to_string()))?;
    if new_slug.as_str() != slug {
        let taken: bool =
            sqlx::query_scalar("select exists (select 1 from tenant where slug = $1)")
                .bind(new_slug.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if taken {
            return Err(UpdateTenantError::SlugTaken(new_slug.to_string()));
        }
    }
    let devices: i64 =
        sqlx::query_scalar("select count(*) from node where tenant_id = $1 and removed_at is null")
            .bind(current.id)
            .fetch_one(&mut *tx)
            .await?;
    if i64::from(settings.device_quota) < devices {
        return Err(UpdateTenantError::Refused(format!(
            "The tenant has {devices} devices now; its device quota cannot go below that. \
             Remove devices first."
        )));
    }
    if let Some(shard_id) = current.shard_id {
        if settings.device_quota as i32 > current.device_quota {
            let (cluster_id, capacity, others): (String, i32, i64) = sqlx::query_as(
                "select s.cluster_id, s.node_capacity,
                        coalesce((select sum(t.device_quota) from tenant t
                                   where t.shard_id = s.id and t.id <> $2), 0)::bigint
                   from shard s where s.id = $1 for update of s",
            )
            .bind(shard_id)
            .bind(current.id)
            .fetch_one(&mut *tx)
            .await?;
            let room = (i64::from(capacity) - others).max(0);
            if i64::from(settings.device_quota) > room {
                return Err(UpdateTenantError::Refused(format!(
                    "Shard {cluster_id} has room for a device quota of at most {room} for this \
                     tenant (capacity {capacity}, {others} reserved by other tenants). Raise the \
                     shard's capacity first, or choose a quota up to {room}."
                )));
            }
        }
    }
    let before = settings_json(&mut tx, current.id).await?;
    let updated = sqlx::query(
        "update tenant set slug = $2, display_name = $3, plan = $4, region = $5,
                device_quota = $6, key_quota = $7
          where id = $1",
    )
    .bind(current.id)
    .bind(new_slug.as_str())
    .bind(&settings.display_name)
    .bind(&settings.plan)
    .bind(&settings.region)
    .bind(settings.device_quota as i32)
    .bind(settings.key_quota as i32)
    .execute(&mut *tx)
    .await;
    match updated {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("tenant_slug_key") => {
            return Err(UpdateTenantError::SlugTaken(new_slug.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    let after = settings_json(&mut tx, current.id).await?;
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        Some(current.id),
        "tenant.updated",
        new_slug.as_str(),
        serde_json::json!({ "before": before, "after": after }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A tenant's settings as the audit log shows them before and after a change.
async fn settings_json(tx: &mut super::Tx, id: Uuid) -> Result<serde_json::Value, sqlx::Error> {
    sqlx::query_scalar(
        "select jsonb_build_object('slug', slug, 'display_name', display_name, 'plan', plan,
                'region', region, 'device_quota', device_quota, 'key_quota', key_quota,
                'status', status)
           from tenant where id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
}

/// Suspends or reactivates a tenant. Returns false when there is no such tenant.
pub async fn set_suspended(
    pool: &PgPool,
    scope: &OperatorScope,
    slug: &str,
    suspended: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let changed: Option<(Uuid, String)> = sqlx::query_as(
        "update tenant t set status = $2 from (select id, status from tenant where slug = $1 for update) old
          where t.id = old.id returning t.id, old.status",
    )
    .bind(slug)
    .bind(if suspended { "suspended" } else { "active" })
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, before)) = &changed {
        crate::data::audit::record(
            &mut tx,
            scope.actor(),
            Some(*id),
            if suspended { "tenant.suspended" } else { "tenant.reactivated" },
            slug,
            serde_json::json!({ "before": before, "after": if suspended { "suspended" } else { "active" } }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed.is_some())
}
