//! A tenant's members and invitations (docs/members.md), under the tenant's row-level
//! security scope. Every change first locks the tenant row (`for no key update`), so
//! two changes of one tenant's members run one after the other: two owners demoting
//! each other at the same moment cannot leave the tenant without an owner, and two
//! invitations of one email cannot both pass the "already invited" check. The rules are
//! `crate::domain::members`; each change writes its audit row in its own transaction.

use super::{rfc3339, tenant_tx, Tx};
use crate::api::members::{InvitationRow, MemberRow};
use crate::auth::TenantScope;
use crate::domain::members::{
    check_invite, check_removal, check_revoke, check_role_change, Email, Refusal, Target,
    INVITATION_DAYS,
};
use crate::domain::role::TenantRole;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// A change's outcome: done, or refused by a rule (nothing changed).
pub type Outcome<T> = Result<T, Refusal>;

#[derive(sqlx::FromRow)]
struct MemberDb {
    person_id: Uuid,
    display_name: String,
    email: Option<String>,
    role: String,
    source: String,
    handle: String,
    created_at: OffsetDateTime,
    last_login_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct InvitationDb {
    id: Uuid,
    email: String,
    role: String,
    invited_by: Option<String>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    expired: bool,
}

/// The tenant's members (by name) and open invitations (newest first; expired ones too,
/// until revoked, so an admin sees why someone could not join).
pub async fn list(
    pool: &PgPool,
    scope: &TenantScope,
) -> Result<(Vec<MemberRow>, Vec<InvitationRow>), sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let members = sqlx::query_as::<_, MemberDb>(
        "select m.person_id, p.display_name, p.email, m.role, m.source, m.handle, m.created_at,
                p.last_login_at
           from membership m join person p on p.id = m.person_id
          where m.tenant_id = $1
          order by lower(coalesce(nullif(p.display_name, ''), p.email, m.handle)), m.handle",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    let invitations = sqlx::query_as::<_, InvitationDb>(
        "select i.id, i.email, i.role, coalesce(nullif(p.display_name, ''), p.email) as invited_by,
                i.created_at, i.expires_at, i.expires_at <= now() as expired
           from invitation i left join person p on p.id = i.invited_by
          where i.tenant_id = $1 and i.accepted_at is null and i.revoked_at is null
          order by i.created_at desc",
    )
    .bind(scope.tenant_id())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        members
            .into_iter()
            .filter_map(|m| {
                Some(MemberRow {
                    is_me: m.person_id == scope.person_id(),
                    person_id: m.person_id.to_string(),
                    name: if m.display_name.is_empty() {
                        m.email.clone().unwrap_or_else(|| m.handle.clone())
                    } else {
                        m.display_name
                    },
                    email: m.email,
                    role: TenantRole::parse(&m.role)?,
                    from_idp: m.source == "idp",
                    handle: m.handle,
                    joined: rfc3339(Some(m.created_at)),
                    last_sign_in: rfc3339(m.last_login_at),
                })
            })
            .collect(),
        invitations
            .into_iter()
            .filter_map(|i| {
                Some(InvitationRow {
                    id: i.id.to_string(),
                    email: i.email,
                    role: TenantRole::parse(&i.role)?,
                    invited_by: i.invited_by,
                    created_at: rfc3339(Some(i.created_at)),
                    expires_at: rfc3339(Some(i.expires_at)),
                    expired: i.expired,
                })
            })
            .collect(),
    ))
}

/// Serializes member changes of the scope's tenant until the transaction ends.
async fn lock_tenant(tx: &mut Tx, scope: &TenantScope) -> Result<(), sqlx::Error> {
    sqlx::query("select 1 from tenant where id = $1 for no key update")
        .bind(scope.tenant_id())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

struct Found {
    target: Target,
    /// What the audit log names the member by: their email, else their name.
    label: String,
}

async fn target(
    tx: &mut Tx,
    scope: &TenantScope,
    person_id: Uuid,
) -> Result<Option<Found>, sqlx::Error> {
    let row: Option<(String, String, String, Option<String>, String)> = sqlx::query_as(
        "select m.role, m.source, p.display_name, p.email, m.handle
           from membership m join person p on p.id = m.person_id
          where m.tenant_id = $1 and m.person_id = $2",
    )
    .bind(scope.tenant_id())
    .bind(person_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.and_then(|(role, source, name, email, handle)| {
        let role = TenantRole::parse(&role)?;
        let shown = if name.is_empty() {
            email.clone().unwrap_or_else(|| handle.clone())
        } else {
            name
        };
        Some(Found {
            label: email.unwrap_or_else(|| shown.clone()),
            target: Target {
                is_actor: person_id == scope.person_id(),
                role,
                from_idp: source == "idp",
                name: shown,
            },
        })
    }))
}

/// The role the actor may act with now: the lesser of the scope's (capped by an API
/// token's ceiling, read at the request's start) and the membership's under the lock (a
/// change that committed meanwhile, e.g. another owner demoting this one, counts).
/// `None`: no longer a member.
async fn actor_role(tx: &mut Tx, scope: &TenantScope) -> Result<Option<TenantRole>, sqlx::Error> {
    let now: Option<String> =
        sqlx::query_scalar("select role from membership where tenant_id = $1 and person_id = $2")
            .bind(scope.tenant_id())
            .bind(scope.person_id())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(now
        .as_deref()
        .and_then(TenantRole::parse)
        .map(|r| std::cmp::max_by_key(r, scope.role(), |r| r.rank())))
}

async fn owners(tx: &mut Tx, scope: &TenantScope) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from membership where tenant_id = $1 and role = 'owner'")
        .bind(scope.tenant_id())
        .fetch_one(&mut **tx)
        .await
}

/// Invites `email` with `role`; the invitation's id. Refused when the email already is
/// a member or has an open, unexpired invitation.
pub async fn invite(
    pool: &PgPool,
    scope: &TenantScope,
    email: &Email,
    role: TenantRole,
) -> Result<Outcome<Uuid>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    lock_tenant(&mut tx, scope).await?;
    let Some(actor) = actor_role(&mut tx, scope).await? else {
        return Ok(Err(Refusal::NotAllowed));
    };
    if let Err(r) = check_invite(actor, role) {
        return Ok(Err(r));
    }
    let member: bool = sqlx::query_scalar(
        "select exists (select 1 from membership m join person p on p.id = m.person_id
                         where m.tenant_id = $1 and lower(p.email) = $2)",
    )
    .bind(scope.tenant_id())
    .bind(email.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if member {
        return Ok(Err(Refusal::AlreadyMember {
            email: email.to_string(),
        }));
    }
    let invited: bool = sqlx::query_scalar(
        "select exists (select 1 from invitation
                         where tenant_id = $1 and email = $2 and accepted_at is null
                           and revoked_at is null and expires_at > now())",
    )
    .bind(scope.tenant_id())
    .bind(email.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if invited {
        return Ok(Err(Refusal::AlreadyInvited {
            email: email.to_string(),
        }));
    }
    let (id, expires_at): (Uuid, OffsetDateTime) = sqlx::query_as(
        "insert into invitation (tenant_id, email, role, invited_by, expires_at)
         values ($1, $2, $3, $4, now() + make_interval(days => $5))
         returning id, expires_at",
    )
    .bind(scope.tenant_id())
    .bind(email.as_str())
    .bind(role.as_str())
    .bind(scope.person_id())
    .bind(INVITATION_DAYS as i32)
    .fetch_one(&mut *tx)
    .await?;
    super::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "member.invited",
        email.as_str(),
        json!({"role": role.as_str(), "invitation": id, "expires_at": rfc3339(Some(expires_at))}),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// Revokes an open invitation of the tenant (expired ones too); the email it was for.
pub async fn revoke_invitation(
    pool: &PgPool,
    scope: &TenantScope,
    id: Uuid,
) -> Result<Outcome<String>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    lock_tenant(&mut tx, scope).await?;
    let row: Option<(String, String)> = sqlx::query_as(
        "select email, role from invitation
          where id = $1 and tenant_id = $2 and accepted_at is null and revoked_at is null",
    )
    .bind(id)
    .bind(scope.tenant_id())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((email, role)) = row else {
        return Ok(Err(Refusal::NoSuchInvitation));
    };
    let role = TenantRole::parse(&role).unwrap_or(TenantRole::Owner);
    let Some(actor) = actor_role(&mut tx, scope).await? else {
        return Ok(Err(Refusal::NotAllowed));
    };
    if let Err(r) = check_revoke(actor, role) {
        return Ok(Err(r));
    }
    sqlx::query(
        "update invitation set revoked_at = now(), revoked_by = $3
          where id = $1 and tenant_id = $2 and accepted_at is null and revoked_at is null",
    )
    .bind(id)
    .bind(scope.tenant_id())
    .bind(scope.person_id())
    .execute(&mut *tx)
    .await?;
    super::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "member.invitation_revoked",
        &email,
        json!({"role": role.as_str(), "invitation": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(email))
}

/// Gives a member another role; the member's name. Setting the role they have is a
/// no-op (no audit row).
pub async fn change_role(
    pool: &PgPool,
    scope: &TenantScope,
    person_id: Uuid,
    new: TenantRole,
) -> Result<Outcome<String>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    lock_tenant(&mut tx, scope).await?;
    let Some(found) = target(&mut tx, scope, person_id).await? else {
        return Ok(Err(Refusal::NoSuchMember));
    };
    let owners = owners(&mut tx, scope).await?;
    let Some(actor) = actor_role(&mut tx, scope).await? else {
        return Ok(Err(Refusal::NotAllowed));
    };
    if let Err(r) = check_role_change(actor, &found.target, new, owners) {
        return Ok(Err(r));
    }
    if found.target.role == new {
        return Ok(Ok(found.target.name));
    }
    sqlx::query(
        "update membership set role = $3, updated_at = now()
          where tenant_id = $1 and person_id = $2 and source = 'portal'",
    )
    .bind(scope.tenant_id())
    .bind(person_id)
    .bind(new.as_str())
    .execute(&mut *tx)
    .await?;
    super::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "member.role_changed",
        &found.label,
        json!({"before": found.target.role.as_str(), "after": new.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(found.target.name))
}

/// What removing a member must take care of on the shard, found before the removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departing {
    pub name: String,
    /// The member's Headscale user on the tenant's current shard: (shard id, user id).
    pub shard_user: Option<(Uuid, i64)>,
    /// Tags-only keys the member minted on that shard (they act for the tenant, but a
    /// departed member's keys must not keep registering devices).
    pub minted_key_ids: Vec<i64>,
}

/// Checks that `person_id` may be removed now and gathers what to clean up on the
/// shard first. The removal itself (`remove`) checks again under the lock.
pub async fn departing(
    pool: &PgPool,
    scope: &TenantScope,
    person_id: Uuid,
) -> Result<Outcome<Departing>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let Some(found) = target(&mut tx, scope, person_id).await? else {
        return Ok(Err(Refusal::NoSuchMember));
    };
    let owners = owners(&mut tx, scope).await?;
    let Some(actor) = actor_role(&mut tx, scope).await? else {
        return Ok(Err(Refusal::NotAllowed));
    };
    if let Err(r) = check_removal(actor, &found.target, owners) {
        return Ok(Err(r));
    }
    let shard_user: Option<(Uuid, i64)> = sqlx::query_as(
        "select su.shard_id, su.headscale_user_id
           from shard_user su join tenant t on t.id = su.tenant_id and t.shard_id = su.shard_id
          where su.tenant_id = $1 and su.person_id = $2",
    )
    .bind(scope.tenant_id())
    .bind(person_id)
    .fetch_optional(&mut *tx)
    .await?;
    let minted_key_ids: Vec<i64> = sqlx::query_scalar(
        "select km.key_id from pre_auth_key_meta km join tenant t on t.shard_id = km.shard_id
          where km.tenant_id = $1 and t.id = $1 and km.created_by = $2 order by 1",
    )
    .bind(scope.tenant_id())
    .bind(person_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(Departing {
        name: found.target.name,
        shard_user,
        minted_key_ids,
    }))
}

/// Removes the member, ends their portal sessions (every session signed in before
/// `now`), and records it with `cleanup` (what was expired on the shard) in the detail.
pub async fn remove(
    pool: &PgPool,
    scope: &TenantScope,
    person_id: Uuid,
    now: OffsetDateTime,
    cleanup: serde_json::Value,
) -> Result<Outcome<String>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    lock_tenant(&mut tx, scope).await?;
    let Some(found) = target(&mut tx, scope, person_id).await? else {
        return Ok(Err(Refusal::NoSuchMember));
    };
    let owners = owners(&mut tx, scope).await?;
    let Some(actor) = actor_role(&mut tx, scope).await? else {
        return Ok(Err(Refusal::NotAllowed));
    };
    if let Err(r) = check_removal(actor, &found.target, owners) {
        return Ok(Err(r));
    }
    sqlx::query(
        "delete from membership where tenant_id = $1 and person_id = $2 and source = 'portal'",
    )
    .bind(scope.tenant_id())
    .bind(person_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update person set sessions_not_before = greatest(sessions_not_before, $2) where id = $1",
    )
    .bind(person_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut detail = json!({"role": found.target.role.as_str()});
    if let (Some(d), Some(c)) = (detail.as_object_mut(), cleanup.as_object()) {
        d.extend(c.clone());
    }
    super::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "member.removed",
        &found.label,
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(found.target.name))
}
