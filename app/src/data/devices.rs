//! A tenant's devices, read from the mirror (`node`, kept by the sync) under the
//! tenant's row-level security scope, and the write-through after a change the portal
//! made on the shard (so the list shows it before the next sync).
//!
//! Tags are shown and filtered in the tenant's own names (`tag:server`); the mirror
//! keeps the shard's (`tag:t7k2--server`).

use super::{rfc3339, tenant_tx};
use crate::api::devices::{DeviceDetail, DevicePage, DeviceRow};
use crate::auth::TenantScope;
use crate::domain::devices::{DeviceQuery, Online, SortKey, EXPIRING_SOON_DAYS, PAGE_SIZE};
use crate::domain::tags::{shard_tag, tenant_tag};
use crate::headscale::Node;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// The tenant's shard, as actions on it need it.
#[derive(Clone)]
pub struct TenantShard {
    pub tenant_code: String,
    pub shard_id: Uuid,
    pub cluster_id: String,
    pub api_url: String,
    pub login_server_url: String,
    pub api_key_sealed: Vec<u8>,
    pub shard_status: String,
    pub device_quota: i32,
    pub key_quota: i32,
}

/// The tenant's shard; `None` when the tenant is not placed.
pub async fn tenant_shard(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<Option<TenantShard>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let shard = tenant_shard_in(&mut tx, scope).await?;
    tx.commit().await?;
    Ok(shard)
}

/// The tenant's shard and the person's own Headscale user on it, in one transaction
/// (what every device and key action starts from).
pub async fn shard_and_own_user(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<(Option<TenantShard>, Option<(String, i64)>), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let shard = tenant_shard_in(&mut tx, scope).await?;
    let own = own_user_in(&mut tx, scope).await?;
    tx.commit().await?;
    Ok((shard, own))
}

async fn tenant_shard_in(
    tx: &mut PgConnection,
    scope: &TenantScope,
) -> Result<Option<TenantShard>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        code: String,
        shard_id: Uuid,
        cluster_id: String,
        api_url: String,
        login_server_url: String,
        api_key_sealed: Vec<u8>,
        status: String,
        device_quota: i32,
        key_quota: i32,
    }
    let row = sqlx::query_as::<_, Row>(
        "select t.code, s.id as shard_id, s.cluster_id, s.api_url, s.login_server_url,
                s.api_key_sealed, s.status, t.device_quota, t.key_quota
           from tenant t join shard s on s.id = t.shard_id
          where t.id = $1",
    )
    .bind(scope.tenant_id())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| TenantShard {
        tenant_code: r.code,
        shard_id: r.shard_id,
        cluster_id: r.cluster_id,
        api_url: r.api_url,
        login_server_url: r.login_server_url,
        api_key_sealed: r.api_key_sealed,
        shard_status: r.status,
        device_quota: r.device_quota,
        key_quota: r.key_quota,
    }))
}

/// The person's own Headscale user in the tenant (`t7k2.alice`), once the sync made it.
pub async fn own_user(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let own = own_user_in(&mut tx, scope).await?;
    tx.commit().await?;
    Ok(own)
}

async fn own_user_in(
    tx: &mut PgConnection,
    scope: &TenantScope,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as::<_, (String, i64)>(
        "select su.user_name, su.headscale_user_id
           from shard_user su join tenant t on t.id = su.tenant_id and t.shard_id = su.shard_id
          where su.tenant_id = $1 and su.person_id = $2",
    )
    .bind(scope.tenant_id())
    .bind(scope.person_id())
    .fetch_optional(&mut *tx)
    .await
}

#[derive(sqlx::FromRow)]
struct Row {
    node_id: i64,
    given_name: String,
    name: String,
    ips: Vec<String>,
    tags: Vec<String>,
    online: bool,
    last_seen: Option<OffsetDateTime>,
    expiry: Option<OffsetDateTime>,
    approved_routes: Vec<String>,
    available_routes: Vec<String>,
    user_name: Option<String>,
    owner_name: Option<String>,
    owner_email: Option<String>,
    register_method: String,
    shard_created_at: Option<OffsetDateTime>,
    total: i64,
}

impl Row {
    fn into_device(self, code: &str, now: OffsetDateTime) -> DeviceRow {
        let exit = ["0.0.0.0/0", "::/0"];
        DeviceRow {
            node_id: self.node_id,
            name: self.given_name,
            hostname: self.name,
            ips: self.ips,
            tags: self
                .tags
                .iter()
                .filter_map(|t| tenant_tag(code, t))
                .collect(),
            online: self.online,
            last_seen: rfc3339(self.last_seen),
            expired: self.expiry.is_some_and(|e| e <= now),
            expiry: rfc3339(self.expiry),
            exit_node: self
                .available_routes
                .iter()
                .any(|r| exit.contains(&r.as_str())),
            exit_node_approved: self
                .approved_routes
                .iter()
                .any(|r| exit.contains(&r.as_str())),
            subnet_routes: self
                .available_routes
                .iter()
                .filter(|r| !exit.contains(&r.as_str()))
                .cloned()
                .collect(),
            approved_routes: self.approved_routes,
            owner_user: self.user_name,
            owner_name: self
                .owner_name
                .filter(|n| !n.is_empty())
                .or(self.owner_email),
            register_method: self.register_method,
            created_at: rfc3339(self.shard_created_at),
        }
    }
}

/// The columns of a device as pages show it, from `n` (a `node`, or the page's rows of
/// it) joined to its owner; `$1` is the tenant.
const COLUMNS: &str = "
    select n.node_id, n.given_name, n.name,
           array(select host(i) from unnest(n.ip_addresses) as i) as ips,
           n.tags, n.online, n.last_seen, n.expiry, n.approved_routes, n.available_routes,
           n.user_name, p.display_name as owner_name, p.email as owner_email,
           n.register_method, n.shard_created_at";

const OWNER_JOIN: &str = "
      left join shard_user su on su.shard_id = n.shard_id and su.user_name = n.user_name
      left join person p on p.id = su.person_id";

/// Everything the devices list shows, read in one tenant-scoped transaction.
pub struct ListView {
    pub page: DevicePage,
    /// The tenant's tags in its own names, for the tag filter.
    pub tags: Vec<String>,
    /// `(user name, display name)` of the owners to filter by.
    pub owners: Vec<(String, String)>,
    pub tenant_devices: i64,
    pub as_of: Option<String>,
    pub over_quota_since: Option<String>,
}

/// The devices list: one page for `query`, the filters' choices and the tenant's device
/// count, in one transaction. `only_user` restricts it to one owner's devices (a
/// member's own).
pub async fn list_view(
    pool: &PgPool,
    scope: &TenantScope,
    code: &str,
    query: &DeviceQuery,
    only_user: Option<&str>,
) -> Result<ListView, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let page = list_in(&mut tx, scope, code, query, only_user).await?;
    let (tags, owners) = filter_options_in(&mut tx, scope, code, only_user).await?;
    let (tenant_devices, as_of, over_quota_since) = count_and_as_of_in(&mut tx, scope).await?;
    tx.commit().await?;
    Ok(ListView {
        page,
        tags,
        owners,
        tenant_devices,
        as_of,
        over_quota_since,
    })
}

/// One page of the tenant's devices for `query`; `only_user` restricts it to one owner's
/// devices (a member's own).
pub async fn list(
    pool: &PgPool,
    scope: &TenantScope,
    code: &str,
    query: &DeviceQuery,
    only_user: Option<&str>,
) -> Result<DevicePage, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let page = list_in(&mut tx, scope, code, query, only_user).await?;
    tx.commit().await?;
    Ok(page)
}

async fn list_in(
    tx: &mut PgConnection,
    scope: &TenantScope,
    code: &str,
    query: &DeviceQuery,
    only_user: Option<&str>,
) -> Result<DevicePage, sqlx::Error> {
    let order = match query.sort {
        SortKey::Name => "given_name",
        SortKey::LastSeen => "last_seen",
        SortKey::Owner => "user_name",
        SortKey::Expiry => "expiry",
        SortKey::Created => "shard_created_at",
    };
    let dir = if query.descending {
        "desc nulls last"
    } else {
        "asc nulls last"
    };
    // The node table alone is filtered, counted, sorted and cut to the page; only the
    // page's rows are joined to their owners and have their addresses formatted. The
    // search matches the stored `search_text` (names, addresses, user, tags in the
    // tenant's names) or an owner whose name or email matches, looked up once.
    // The ORDER BY comes from the fixed list above, never from the request.
    let sql = format!(
        "with hits as (
           select n.*, count(*) over () as total
             from node n
            where n.tenant_id = $1 and n.removed_at is null
              and n.shard_id = (select shard_id from tenant where id = $1)
              and ($2 = '' or n.search_text like $2
                   or n.user_name = any(array(
                        select su.user_name from shard_user su join person p on p.id = su.person_id
                         where su.tenant_id = $1
                           and (p.display_name ilike $2 or p.email ilike $2))))
              and ($3::boolean is null or n.online = $3)
              and ($4::text is null or $4 = any(n.tags))
              and ($5::text is null or n.user_name = $5)
              and (not $6 or (n.expiry is not null and n.expiry > now()
                              and n.expiry < now() + make_interval(days => $7)))
              and (not $8 or cardinality(n.available_routes) > 0)
              and (not $9 or n.available_routes && array['0.0.0.0/0', '::/0'])
              and ($10::text is null or n.user_name = $10)
            order by n.{order} {dir}, n.node_id
            limit $11 offset $12
         )
         {COLUMNS}, n.total
           from hits n {OWNER_JOIN}
          order by n.{order} {dir}, n.node_id"
    );
    let pattern = if query.q.is_empty() {
        String::new()
    } else {
        format!("%{}%", escape_like(&query.q.to_lowercase()))
    };
    let online = match query.online {
        Online::Any => None,
        Online::Online => Some(true),
        Online::Offline => Some(false),
    };
    let tag = query.tag.as_deref().and_then(|t| shard_tag(code, t).ok());
    if query.tag.is_some() && tag.is_none() {
        // A tag that cannot be the tenant's matches nothing.
        return Ok(DevicePage::empty(query.page));
    }
    let offset = i64::from(query.page.saturating_sub(1)) * i64::from(PAGE_SIZE);
    let rows = sqlx::query_as::<_, Row>(&sql)
        .bind(scope.tenant_id())
        .bind(&pattern)
        .bind(online)
        .bind(tag)
        .bind(query.owner.as_deref())
        .bind(query.expiring_soon)
        .bind(EXPIRING_SOON_DAYS as i32)
        .bind(query.has_routes)
        .bind(query.exit_node)
        .bind(only_user)
        .bind(i64::from(PAGE_SIZE))
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
    let total = rows.first().map(|r| r.total).unwrap_or(0);
    let now = OffsetDateTime::now_utc();
    Ok(DevicePage {
        total,
        page: query.page,
        page_size: PAGE_SIZE,
        devices: rows.into_iter().map(|r| r.into_device(code, now)).collect(),
    })
}

/// `%` and `_` in a search term are literal.
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The filters' choices: the tenant's tags (its own names) and its devices' owners.
pub async fn filter_options(
    pool: &PgPool,
    scope: &TenantScope,
    code: &str,
    only_user: Option<&str>,
) -> Result<(Vec<String>, Vec<(String, String)>), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let options = filter_options_in(&mut tx, scope, code, only_user).await?;
    tx.commit().await?;
    Ok(options)
}

async fn filter_options_in(
    tx: &mut PgConnection,
    scope: &TenantScope,
    code: &str,
    only_user: Option<&str>,
) -> Result<(Vec<String>, Vec<(String, String)>), sqlx::Error> {
    let tags: Vec<String> = sqlx::query_scalar(
        "select distinct unnest(n.tags) from node n
          where n.tenant_id = $1 and n.removed_at is null and n.tags <> '{}'
            and ($2::text is null or n.user_name = $2)
          order by 1",
    )
    .bind(scope.tenant_id())
    .bind(only_user)
    .fetch_all(&mut *tx)
    .await?;
    let owners: Vec<(String, String)> = sqlx::query_as(
        "select su.user_name, coalesce(nullif(p.display_name, ''), p.email, su.user_name)
           from shard_user su
           join tenant t on t.id = su.tenant_id and t.shard_id = su.shard_id
           join person p on p.id = su.person_id
          where su.tenant_id = $1 and ($2::text is null or su.user_name = $2)
          order by 2",
    )
    .bind(scope.tenant_id())
    .bind(only_user)
    .fetch_all(&mut *tx)
    .await?;
    Ok((
        tags.iter().filter_map(|t| tenant_tag(code, t)).collect(),
        owners,
    ))
}

/// One device of the tenant (on its current shard), or `None`.
pub async fn get(
    pool: &PgPool,
    scope: &TenantScope,
    code: &str,
    node_id: i64,
) -> Result<Option<DeviceDetail>, sqlx::Error> {
    let sql = format!(
        "{COLUMNS}, 1::int8 as total
           from node n join tenant t on t.id = n.tenant_id and t.shard_id = n.shard_id
           {OWNER_JOIN}
          where n.tenant_id = $1 and n.removed_at is null and n.node_id = $2"
    );
    let mut tx = tenant_tx(pool, scope).await?;
    let row = sqlx::query_as::<_, Row>(&sql)
        .bind(scope.tenant_id())
        .bind(node_id)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.map(|r| DeviceDetail {
        device: r.into_device(code, OffsetDateTime::now_utc()),
    }))
}

/// After the portal changed a node on the shard: the shard's answer into the mirror at
/// once (the next sync would bring the same). Only the tenant's own row can match.
pub async fn write_through(
    pool: &PgPool,
    scope: &TenantScope,
    shard_id: Uuid,
    node: &Node,
    event: &crate::data::audit::Event,
) -> Result<(), sqlx::Error> {
    let mut tags = node.tags.clone();
    tags.sort();
    tags.dedup();
    let mut approved = node.approved_routes.clone();
    approved.sort();
    let mut tx = tenant_tx(pool, scope).await?;
    sqlx::query(
        "update node set given_name = $3, tags = $4, expiry = $5, approved_routes = $6,
                online = $7, changed_at = now()
          where shard_id = $1 and node_id = $2 and tenant_id = $8",
    )
    .bind(shard_id)
    .bind(node.id.0 as i64)
    .bind(&node.given_name)
    .bind(&tags)
    .bind(node.expiry)
    .bind(&approved)
    .bind(node.online)
    .bind(scope.tenant_id())
    .execute(&mut *tx)
    .await?;
    event.record(&mut tx, scope).await?;
    tx.commit().await
}

/// After the portal deleted a node on the shard: marked removed in the mirror, its open
/// online interval closed now.
pub async fn mark_removed(
    pool: &PgPool,
    scope: &TenantScope,
    shard_id: Uuid,
    node_id: i64,
    event: &crate::data::audit::Event,
) -> Result<(), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    sqlx::query(
        "update node set removed_at = now(), online = false, changed_at = now()
          where shard_id = $1 and node_id = $2 and tenant_id = $3 and removed_at is null",
    )
    .bind(shard_id)
    .bind(node_id)
    .bind(scope.tenant_id())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update node_online_interval set ended_at = greatest(started_at, now())
          where shard_id = $1 and node_id = $2 and tenant_id = $3 and ended_at is null",
    )
    .bind(shard_id)
    .bind(node_id)
    .bind(scope.tenant_id())
    .execute(&mut *tx)
    .await?;
    event.record(&mut tx, scope).await?;
    tx.commit().await
}

/// Whether another of the tenant's devices on the shard already has `name`.
pub async fn name_taken(
    pool: &PgPool,
    shard_id: Uuid,
    node_id: i64,
    name: &str,
) -> Result<bool, sqlx::Error> {
    // Names are unique on the whole shard, across tenants; the answer is a yes/no that
    // reveals no other tenant's row (the shard itself would refuse the same).
    let mut tx = super::system_tx(pool).await?;
    let taken: bool = sqlx::query_scalar(
        "select exists (select 1 from node
                         where shard_id = $1 and node_id <> $2 and given_name = $3
                           and removed_at is null)",
    )
    .bind(shard_id)
    .bind(node_id)
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(taken)
}

/// The tenant's device count now, the time of its shard's last sync, and since when it
/// is over its device quota (if it is).
pub async fn count_and_as_of(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<(i64, Option<String>, Option<String>), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let counts = count_and_as_of_in(&mut tx, scope).await?;
    tx.commit().await?;
    Ok(counts)
}

async fn count_and_as_of_in(
    tx: &mut PgConnection,
    scope: &TenantScope,
) -> Result<(i64, Option<String>, Option<String>), sqlx::Error> {
    let (count, as_of, over): (i64, Option<OffsetDateTime>, Option<OffsetDateTime>) =
        sqlx::query_as(
            "select (select count(*) from node n
                      where n.tenant_id = t.id and n.shard_id = t.shard_id
                        and n.removed_at is null),
                    s.last_sync_at, t.over_quota_since
               from tenant t left join shard s on s.id = t.shard_id
              where t.id = $1",
        )
        .bind(scope.tenant_id())
        .fetch_one(&mut *tx)
        .await?;
    Ok((count, rfc3339(as_of), rfc3339(over)))
}

/// A device the portal just registered on the shard, into the mirror at once (the sync
/// takes it from there; it owns the row's online intervals).
pub async fn insert_registered(
    pool: &PgPool,
    scope: &TenantScope,
    shard_id: Uuid,
    node: &Node,
    event: &crate::data::audit::Event,
) -> Result<(), sqlx::Error> {
    let ips: Vec<String> = node.ip_addresses.iter().map(|ip| ip.to_string()).collect();
    let mut tx = tenant_tx(pool, scope).await?;
    sqlx::query(
        "insert into node (shard_id, node_id, tenant_id, given_name, name, user_id, user_name,
                           ip_addresses, tags, online, last_seen, expiry, approved_routes,
                           available_routes, subnet_routes, register_method, shard_created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8::inet[], $9, false, $10, $11, $12, $13, $14,
                 'cli', $15)
         on conflict on constraint node_pkey do nothing",
    )
    .bind(shard_id)
    .bind(node.id.0 as i64)
    .bind(scope.tenant_id())
    .bind(&node.given_name)
    .bind(&node.name)
    .bind(node.user.as_ref().map(|u| u.id.0 as i64))
    .bind(node.user.as_ref().map(|u| u.name.clone()))
    .bind(&ips)
    .bind(&node.tags)
    .bind(node.last_seen)
    .bind(node.expiry)
    .bind(&node.approved_routes)
    .bind(&node.available_routes)
    .bind(&node.subnet_routes)
    .bind(node.created_at)
    .execute(&mut *tx)
    .await?;
    event.record(&mut tx, scope).await?;
    tx.commit().await
}

/// Routes other tenants' devices on the shard have approved (no other detail of them):
/// what a new approval must not overlap.
pub async fn other_tenants_routes(
    pool: &PgPool,
    scope: &TenantScope,
    shard_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    // Across tenants on purpose, so through the trusted scope; only prefixes leave.
    let mut tx = super::system_tx(pool).await?;
    let routes = sqlx::query_scalar(
        "select distinct unnest(approved_routes) from node
          where shard_id = $1 and removed_at is null
            and tenant_id is distinct from $2
          order by 1",
    )
    .bind(shard_id)
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(routes)
}
