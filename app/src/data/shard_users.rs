//! Members' Headscale users on their tenant's shard (DESIGN.md §2), as the sync created
//! or found them (`server::jobs::sync` reconciles them with
//! `crate::domain::shard_users::reconcile` after each successful read of a shard).
//!
//! Trusted server work (`system_tx`); row-level security lets a tenant read only its
//! own rows.

use super::system_tx;
use crate::domain::shard_users::{user_name, WantedUser};
use sqlx::PgPool;
use uuid::Uuid;

/// A member, by tenant and person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberKey {
    pub tenant_id: Uuid,
    pub person_id: Uuid,
}

/// A member that must have a user on the shard, with what the user is made of.
#[derive(Debug, Clone)]
pub struct Member {
    pub wanted: WantedUser<MemberKey>,
    pub display_name: String,
    pub email: String,
}

/// Every member of every tenant placed on the shard (suspended tenants too: their
/// devices keep their owner).
pub async fn members_of_shard(pool: &PgPool, shard_id: Uuid) -> Result<Vec<Member>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        tenant_id: Uuid,
        person_id: Uuid,
        code: String,
        handle: String,
        display_name: String,
        email: Option<String>,
        headscale_user_id: Option<i64>,
    }
    let mut tx = system_tx(pool).await?;
    let rows = sqlx::query_as::<_, Row>(
        "select t.id as tenant_id, m.person_id, t.code, m.handle, p.display_name, p.email,
                su.headscale_user_id
           from tenant t
           join membership m on m.tenant_id = t.id
           join person p on p.id = m.person_id
           left join shard_user su
             on su.shard_id = t.shard_id and su.tenant_id = t.id and su.person_id = m.person_id
          where t.shard_id = $1
          order by t.code, m.handle",
    )
    .bind(shard_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| Member {
            wanted: WantedUser {
                key: MemberKey {
                    tenant_id: r.tenant_id,
                    person_id: r.person_id,
                },
                user_name: user_name(&r.code, &r.handle),
                recorded: r.headscale_user_id.and_then(|id| u64::try_from(id).ok()),
            },
            display_name: r.display_name,
            email: r.email.unwrap_or_default(),
        })
        .collect())
}

/// Records the member's user on the shard. Idempotent; a changed id replaces the old.
pub async fn record(
    pool: &PgPool,
    shard_id: Uuid,
    member: MemberKey,
    user_name: &str,
    headscale_user_id: u64,
    created_by_portal: bool,
) -> Result<(), sqlx::Error> {
    let id = i64::try_from(headscale_user_id)
        .map_err(|_| sqlx::Error::Protocol("Headscale user id out of range".into()))?;
    let mut tx = system_tx(pool).await?;
    sqlx::query(
        "insert into shard_user
           (shard_id, tenant_id, person_id, user_name, headscale_user_id, created_by_portal)
         values ($1, $2, $3, $4, $5, $6)
         on conflict on constraint shard_user_pkey do update
           set user_name = excluded.user_name,
               headscale_user_id = excluded.headscale_user_id,
               created_by_portal = excluded.created_by_portal,
               created_at = now()
         where (shard_user.user_name, shard_user.headscale_user_id)
               is distinct from (excluded.user_name, excluded.headscale_user_id)",
    )
    .bind(shard_id)
    .bind(member.tenant_id)
    .bind(member.person_id)
    .bind(user_name)
    .bind(id)
    .bind(created_by_portal)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
