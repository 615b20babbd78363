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
    pub display_name: String,
    pub roles: MappedRoles,
}

/// Records a sign-in: creates or updates the person (by issuer and subject, never by
/// email), and makes the IdP-sourced memberships match the groups claim.
///
/// Rule: a tenant named by the groups claim gets exactly that role with source `idp`
/// (replacing a portal grant for the same tenant); IdP memberships of tenants no longer
/// named are removed; portal-granted memberships of other tenants stay. Groups naming a
/// tenant that does not exist are logged and ignored.
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

    for slug in slugs.iter().filter(|s| !matched.contains(s)) {
        tracing::warn!(tenant = %slug, "groups claim names a tenant that does not exist");
    }
    for group in &facts.roles.ignored {
        tracing::warn!(group = %group, "groups claim entry looks like a tenant group but is malformed");
    }
    tx.commit().await?;
    Ok(person_id)
}

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: Uuid,
    display_name: String,
    email: Option<String>,
    is_operator: bool,
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
    let mut tx = person_tx(pool, person_id).await?;
    let Some(person) = sqlx::query_as::<_, PersonRow>(
        "select id, display_name, email, is_operator from person where id = $1",
    )
    .bind(person_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
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
