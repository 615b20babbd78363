//! People (one row per identity-provider subject) and their memberships.

use super::{person_tx, system_tx};
use crate::auth::principal::{Membership, Principal};
use crate::domain::groups::MappedRoles;
use crate::domain::role::TenantRole;
use sqlx::PgPool;
use uuid::Uuid;

/// What the identity provider told us at sign-in.
#[derive(Debug, Clone)]
pub struct LoginFacts {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches for the email (`email_verified`). Invitations are accepted
    /// only with a verified email: an unverified one is just what someone typed.
    pub email_verified: bool,
    pub display_name: String,
    pub roles: MappedRoles,
}

/// Records a sign-in: creates or updates the person (by issuer and subject, never by
/// email), and makes the IdP-sourced memberships match the groups claim.
///
/// Rule: a tenant named by the groups claim gets exactly that role with source `idp`
/// (replacing a portal grant for the same tenant); IdP memberships of tenants no longer
/// named are removed; portal-granted memberships of other tenants stay. Groups naming a
/// tenant that does not exist are logged and ignored. Then open, unexpired invitations
/// for the person's verified email are accepted (docs/members.md), each recorded in the
/// audit log in this same transaction.
pub async fn record_login(pool: &PgPool, facts: &LoginFacts) -> Result<Uuid, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let person_id: Uuid = sqlx::query_scalar(
        "insert into person (issuer, subject, email, display_name, is_operator, last_login_at)
         values ($1, $2, $3, $4, $5, now())
         on conflict on constraint person_issuer_subject_key do update
           set email = excluded.email,
               display_name = excluded.display_name,
               is_operator = excluded.is_operator,
               last_login_at = now()
         returning id",
    )
    .bind(&facts.issuer)
    .bind(&facts.subject)
    .bind(&facts.email)
    .bind(&facts.display_name)
    .bind(facts.roles.is_operator)
    .fetch_one(&mut *tx)
    .await?;

    let slugs: Vec<String> = facts
        .roles
        .tenant_roles
        .keys()
        .map(|s| s.as_str().to_string())
        .collect();
    let roles: Vec<String> = facts
        .roles
        .tenant_roles
        .values()
        .map(|r| r.as_str().to_string())
        .collect();

    sqlx::query(
        "delete from membership m
         where m.person_id = $1 and m.source = 'idp'
           and not exists (select 1 from tenant t where t.id = m.tenant_id and t.slug = any($2))",
    )
    .bind(person_id)
    .bind(&slugs)
    .execute(&mut *tx)
    .await?;

    let matched: Vec<String> = sqlx::query_scalar(
        "insert into membership (tenant_id, person_id, role, source)
         select t.id, $1, g.role, 'idp'
         from unnest($2::text[], $3::text[]) as g(slug, role)
         join tenant t on t.slug = g.slug
         on conflict on constraint membership_pkey do update
           set role = excluded.role, source = 'idp', updated_at = now()
         returning (select slug from tenant where id = membership.tenant_id)",
    )
    .bind(person_id)
    .bind(&slugs)
    .bind(&roles)
    .fetch_all(&mut *tx)
    .await?;

    if let Some(email) = facts.email.as_deref().filter(|_| facts.email_verified) {
        accept_invitations(&mut tx, person_id, email).await?;
    }

    for slug in slugs.iter().filter(|s| !matched.contains(s)) {
        tracing::warn!(tenant = %slug, "groups claim names a tenant that does not exist");
    }
    for group in &facts.roles.ignored {
        tracing::warn!(group = %group, "groups claim entry looks like a tenant group but is malformed");
    }
    crate::data::audit::record(
        &mut tx,
        crate::auth::Actor::Person(person_id),
        None,
        "auth.signed_in",
        facts.email.as_deref().unwrap_or(&facts.display_name),
        serde_json::json!({
            "operator": facts.roles.is_operator,
            "idp_tenants": matched,
            "ignored_groups": facts.roles.ignored,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(person_id)
}

/// Accepts the open invitations for `email`: a portal membership with the invited role,
/// unless the person already is a member (an IdP group got there first; its role
/// stands). Either way the invitation is used up.
async fn accept_invitations(
    tx: &mut super::Tx,
    person_id: Uuid,
    email: &str,
) -> Result<(), sqlx::Error> {
    let accepted: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "update invitation set accepted_at = now(), accepted_by = $1
          where email = lower($2) and accepted_at is null and revoked_at is null
            and expires_at > now()
          returning id, tenant_id, role",
    )
    .bind(person_id)
    .bind(email.trim())
    .fetch_all(&mut **tx)
    .await?;
    for (invitation, tenant_id, role) in accepted {
        let joined = sqlx::query(
            "insert into membership (tenant_id, person_id, role, source)
             values ($1, $2, $3, 'portal')
             on conflict on constraint membership_pkey do nothing",
        )
        .bind(tenant_id)
        .bind(person_id)
        .bind(&role)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        let (action, detail) = if joined {
            (
                "member.joined",
                serde_json::json!({"role": role, "invitation": invitation}),
            )
        } else {
            (
                "member.invitation_accepted",
                serde_json::json!({"role": role, "invitation": invitation,
                                   "already_member": true}),
            )
        };
        super::audit::record(
            tx,
            crate::auth::Actor::Person(person_id),
            Some(tenant_id),
            action,
            &email.trim().to_lowercase(),
            detail,
        )
        .await?;
        tracing::info!(%person_id, %tenant_id, joined, "invitation accepted");
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: Uuid,
    display_name: String,
    email: Option<String>,
    is_operator: bool,
    sessions_not_before: Option<time::OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    tenant_id: Uuid,
    slug: String,
    display_name: String,
    role: String,
    source: String,
    status: String,
}

/// The person with their memberships, as the current request should see them.
pub async fn load_principal(
    pool: &PgPool,
    person_id: Uuid,
) -> Result<Option<Principal>, sqlx::Error> {
    load_session_principal(pool, person_id, None).await
}

/// As `load_principal`, for a session signed in at `signed_in_at`: `None` also when the
/// person's sessions were ended at or after that (removed from a tenant, docs/members.md), so
/// the caller ends this session.
pub async fn load_session_principal(
    pool: &PgPool,
    person_id: Uuid,
    signed_in_at: Option<time::OffsetDateTime>,
) -> Result<Option<Principal>, sqlx::Error> {
    let mut tx = person_tx(pool, person_id).await?;
    let Some(person) = sqlx::query_as::<_, PersonRow>(
        "select id, display_name, email, is_operator, sessions_not_before
           from person where id = $1",
    )
    .bind(person_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    if let (Some(at), Some(not_before)) = (signed_in_at, person.sessions_not_before) {
        // Session times are whole seconds: a sign-in in the same second as the end is
        // ended too (the safe side).
        if at <= not_before {
            tx.commit().await?;
            return Ok(None);
        }
    }
    let rows = sqlx::query_as::<_, MembershipRow>(
        "select m.tenant_id, t.slug, t.display_name, m.role, m.source, t.status
         from membership m join tenant t on t.id = m.tenant_id
         where m.person_id = $1
         order by t.display_name, t.slug",
    )
    .bind(person_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Principal {
        person_id: person.id,
        display_name: person.display_name,
        email: person.email,
        is_operator: person.is_operator,
        memberships: rows
            .into_iter()
            .filter_map(|r| {
                Some(Membership {
                    tenant_id: r.tenant_id,
                    slug: r.slug,
                    display_name: r.display_name,
                    role: TenantRole::parse(&r.role)?,
                    from_idp: r.source == "idp",
                    suspended: r.status == "suspended",
                })
            })
            .collect(),
        token: None,
    }))
}
