//! A tenant's pre-auth keys: the mirror (`pre_auth_key`, kept by the sync, prefix only)
//! with what the portal knows of the keys it minted (`pre_auth_key_meta`: who, why).
//! The full key is never stored: Headscale shows it once, the portal passes it on.

use super::{rfc3339, tenant_tx};
use crate::api::keys::KeyRow;
use crate::auth::TenantScope;
use crate::domain::keys::KeyState;
use crate::domain::tags::tenant_tag;
use crate::headscale::PreAuthKey;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Row {
    key_id: i64,
    key_prefix: Option<String>,
    user_name: Option<String>,
    reusable: bool,
    ephemeral: bool,
    used: bool,
    expiration: Option<OffsetDateTime>,
    expired: bool,
    acl_tags: Vec<String>,
    shard_created_at: Option<OffsetDateTime>,
    description: Option<String>,
    created_by: Option<String>,
    created_by_me: bool,
}

/// The tenant's keys on its current shard, newest first. `only_user` limits them to
/// one person's: keys owned by their shard user or minted by them.
pub async fn list(
    pool: &PgPool,
    scope: &TenantScope,
    code: &str,
    only_user: Option<&str>,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, Row>(
        "select k.key_id, k.key_prefix, k.user_name, k.reusable, k.ephemeral, k.used,
                k.expiration, coalesce(k.expiration <= now(), true) as expired, k.acl_tags,
                k.shard_created_at, m.description,
                coalesce(nullif(p.display_name, ''), p.email) as created_by,
                coalesce(m.created_by = $2, false) as created_by_me
           from pre_auth_key k
           join tenant t on t.id = k.tenant_id and t.shard_id = k.shard_id
           left join pre_auth_key_meta m on m.shard_id = k.shard_id and m.key_id = k.key_id
           left join person p on p.id = m.created_by
          where k.tenant_id = $1 and k.removed_at is null
            and ($3::text is null or k.user_name = $3 or m.created_by = $2)
          order by k.shard_created_at desc nulls last, k.key_id desc
          limit 500",
    )
    .bind(scope.tenant_id())
    .bind(scope.person_id())
    .bind(only_user)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| KeyRow {
            key_id: r.key_id,
            prefix: r.key_prefix,
            owner_user: r.user_name,
            reusable: r.reusable,
            ephemeral: r.ephemeral,
            used: r.used,
            state: KeyState::of(r.reusable, r.used, r.expired),
            expiration: rfc3339(r.expiration),
            tags: r
                .acl_tags
                .iter()
                .filter_map(|t| tenant_tag(code, t))
                .collect(),
            created_at: rfc3339(r.shard_created_at),
            description: r.description.unwrap_or_default(),
            created_by: r.created_by,
            created_by_me: r.created_by_me,
        })
        .collect())
}

/// The tenant's active keys (not expired; unused or reusable) and devices, for quotas.
pub async fn usage(pool: &PgPool, scope: &TenantScope) -> Result<(i64, i64), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let counts: (i64, i64) = sqlx::query_as(
        "select
           (select count(*) from pre_auth_key k join tenant t on t.id = k.tenant_id
              and t.shard_id = k.shard_id
             where k.tenant_id = $1 and k.removed_at is null and k.expiration > now()
               and (k.reusable or not k.used)),
           (select count(*) from node n join tenant t on t.id = n.tenant_id
              and t.shard_id = n.shard_id
             where n.tenant_id = $1 and n.removed_at is null)",
    )
    .bind(scope.tenant_id())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(counts)
}

/// Right after minting: the key's mirror row (prefix only, as the sync would write it)
/// and who minted it and why.
pub async fn record_minted(
    pool: &PgPool,
    scope: &TenantScope,
    shard_id: Uuid,
    key: &PreAuthKey,
    description: &str,
    event: &crate::data::audit::Event,
) -> Result<(), sqlx::Error> {
    let key_id = key.id.0 as i64;
    let mut tags = key.acl_tags.clone();
    tags.sort();
    let mut tx = tenant_tx(pool, scope).await?;
    sqlx::query(
        "insert into pre_auth_key (shard_id, key_id, tenant_id, key_prefix, user_id, user_name,
                                   reusable, ephemeral, used, expiration, acl_tags, shard_created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         on conflict on constraint pre_auth_key_pkey do nothing",
    )
    .bind(shard_id)
    .bind(key_id)
    .bind(scope.tenant_id())
    .bind(key.prefix())
    .bind(key.user.as_ref().map(|u| u.id.0 as i64))
    .bind(key.user.as_ref().map(|u| u.name.clone()))
    .bind(key.reusable)
    .bind(key.ephemeral)
    .bind(key.used)
    .bind(key.expiration)
    .bind(&tags)
    .bind(key.created_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into pre_auth_key_meta (shard_id, key_id, tenant_id, created_by, description)
         values ($1, $2, $3, $4, $5)
         on conflict on constraint pre_auth_key_meta_pkey do nothing",
    )
    .bind(shard_id)
    .bind(key_id)
    .bind(scope.tenant_id())
    .bind(scope.person_id())
    .bind(description)
    .execute(&mut *tx)
    .await?;
    event.record(&mut tx, scope).await?;
    tx.commit().await
}

/// After expiring a key on the shard: its mirror row expires now.
pub async fn mark_expired(
    pool: &PgPool,
    scope: &TenantScope,
    shard_id: Uuid,
    key_id: i64,
    event: &crate::data::audit::Event,
) -> Result<(), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    sqlx::query(
        "update pre_auth_key set expiration = least(coalesce(expiration, now()), now()),
                changed_at = now()
          where shard_id = $1 and key_id = $2 and tenant_id = $3",
    )
    .bind(shard_id)
    .bind(key_id)
    .bind(scope.tenant_id())
    .execute(&mut *tx)
    .await?;
    event.record(&mut tx, scope).await?;
    tx.commit().await
}

/// The tenant's members with their shard users, for "mint for" (managers).
pub async fn member_users(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<Vec<(String, i64, String)>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows = sqlx::query_as(
        "select su.user_name, su.headscale_user_id,
                coalesce(nullif(p.display_name, ''), p.email, su.user_name)
           from shard_user su
           join tenant t on t.id = su.tenant_id and t.shard_id = su.shard_id
           join membership m on m.tenant_id = su.tenant_id and m.person_id = su.person_id
           join person p on p.id = su.person_id
          where su.tenant_id = $1
          order by 3",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}
