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
}

#[derive(sqlx::FromRow)]
struct MemberDbRow {
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
                s.login_server_url as shard_login_server_url
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
        "select p.display_name, p.email, m.role, m.source
         from membership m join person p on p.id = m.person_id
         where m.tenant_id = $1
         order by p.display_name, p.email",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(TenantOverview {
        slug: row.slug,
        code: row.code,
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
                })
            }
            _ => None,
        },
        members: members
            .into_iter()
            .map(|m| MemberRow {
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
    members: i64,
}

pub async fn list_all(
    pool: &PgPool,
    scope: &OperatorScope,
) -> Result<Vec<TenantListRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, ListRow>(
        "select t.slug, t.code, t.display_name, t.plan, t.region, t.status,
                s.cluster_id as shard_cluster_id,
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
    tx.commit().await?;
    Ok(id)
}
