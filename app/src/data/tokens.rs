//! API tokens (docs/api.md): made and revoked in the tenant's (or the operator's) scope,
//! looked up by the SHA-256 of their text when a request presents one. The text itself
//! is never stored; it leaves the portal once, in the answer that made it.

use super::{operator_tx, system_tx, tenant_tx, Tx};
use crate::auth::principal::Principal;
use crate::auth::{OperatorScope, TenantScope};
use crate::domain::role::TenantRole;
use crate::domain::tokens::{self, TokenRequest, SECRET_BYTES};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub hint: String,
    pub role_ceiling: Option<String>,
    pub created_by: Uuid,
    pub created_by_name: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A token just made: its row and the only copy of its text.
pub struct NewToken {
    pub row: TokenRow,
    pub secret: String,
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    tokens::format_secret(&bytes)
}

const COLUMNS: &str = "k.id, k.name, k.hint, k.role_ceiling, k.created_by,
       coalesce(nullif(p.display_name, ''), p.email, 'a person') as created_by_name,
       k.created_at, k.expires_at, k.revoked_at, k.last_used_at";

async fn insert(
    tx: &mut Tx,
    tenant_id: Option<Uuid>,
    person_id: Uuid,
    request: &TokenRequest,
) -> Result<NewToken, sqlx::Error> {
    let secret = new_secret();
    let id: Uuid = sqlx::query_scalar(
        "insert into api_token (tenant_id, hint, secret_sha256, name, role_ceiling, created_by,
                                expires_at)
         values ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))
         returning id",
    )
    .bind(tenant_id)
    .bind(tokens::hint(&secret))
    .bind(digest(&secret))
    .bind(&request.name)
    .bind(request.ceiling.map(|r| r.as_str()))
    .bind(person_id)
    .bind(request.expiry_days as i32)
    .fetch_one(&mut **tx)
    .await?;
    let row = one(tx, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok(NewToken { row, secret })
}

async fn one(tx: &mut Tx, id: Uuid) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as::<_, TokenRow>(&format!(
        "select {COLUMNS} from api_token k join person p on p.id = k.created_by where k.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

fn detail(row: &TokenRow) -> serde_json::Value {
    serde_json::json!({
        "token_id": row.id,
        "hint": row.hint,
        "role_ceiling": row.role_ceiling,
        "expires_at": crate::data::rfc3339(Some(row.expires_at)),
    })
}

/// Makes a tenant token (the request was checked against the maker's role).
pub async fn create_for_tenant(
    pool: &PgPool,
    scope: &TenantScope,
    request: &TokenRequest,
) -> Result<NewToken, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let made = insert(&mut tx, Some(scope.tenant_id()), scope.person_id(), request).await?;
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        "token.created",
        &made.row.name,
        detail(&made.row),
    )
    .await?;
    tx.commit().await?;
    Ok(made)
}

/// Makes an operator token.
pub async fn create_for_operator(
    pool: &PgPool,
    scope: &OperatorScope,
    request: &TokenRequest,
) -> Result<NewToken, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let made = insert(&mut tx, None, scope.person_id(), request).await?;
    crate::data::audit::record(
        &mut tx,
        scope.actor(),
        None,
        "token.created",
        &made.row.name,
        detail(&made.row),
    )
    .await?;
    tx.commit().await?;
    Ok(made)
}

/// The tenant's tokens, newest first; only those `made_by` made when given.
pub async fn list_for_tenant(
    pool: &PgPool,
    scope: &TenantScope,
    made_by: Option<Uuid>,
) -> Result<Vec<TokenRow>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, TokenRow>(&format!(
        "select {COLUMNS} from api_token k join person p on p.id = k.created_by
          where k.tenant_id = $1 and ($2::uuid is null or k.created_by = $2)
          order by k.created_at desc, k.id"
    ))
    .bind(scope.tenant_id())
    .bind(made_by)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The operator tokens, newest first.
pub async fn list_for_operator(
    pool: &PgPool,
    scope: &OperatorScope,
) -> Result<Vec<TokenRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows = sqlx::query_as::<_, TokenRow>(&format!(
        "select {COLUMNS} from api_token k join person p on p.id = k.created_by
          where k.tenant_id is null order by k.created_at desc, k.id"
    ))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Revokes one of the tenant's tokens (only one `made_by` made, when given). `None`: no
/// such token in reach; an already revoked token stays as it was.
pub async fn revoke_for_tenant(
    pool: &PgPool,
    scope: &TenantScope,
    id: Uuid,
    made_by: Option<Uuid>,
) -> Result<Option<TokenRow>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let revoked: Option<Uuid> = sqlx::query_scalar(
        "update api_token set revoked_at = now(), revoked_by = $3
          where id = $1 and tenant_id = $2 and ($4::uuid is null or created_by = $4)
            and revoked_at is null
          returning id",
    )
    .bind(id)
    .bind(scope.tenant_id())
    .bind(scope.person_id())
    .bind(made_by)
    .fetch_optional(&mut *tx)
    .await?;
    let row = one(&mut tx, id)
        .await?
        .filter(|r| made_by.is_none_or(|m| m == r.created_by));
    if let (Some(_), Some(row)) = (revoked, &row) {
        crate::data::audit::record(
            &mut tx,
            scope.actor(),
            Some(scope.tenant_id()),
            "token.revoked",
            &row.name,
            detail(row),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Revokes an operator token.
pub async fn revoke_for_operator(
    pool: &PgPool,
    scope: &OperatorScope,
    id: Uuid,
) -> Result<Option<TokenRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let revoked: Option<Uuid> = sqlx::query_scalar(
        "update api_token set revoked_at = now(), revoked_by = $2
          where id = $1 and tenant_id is null and revoked_at is null returning id",
    )
    .bind(id)
    .bind(scope.person_id())
    .fetch_optional(&mut *tx)
    .await?;
    let row = one(&mut tx, id).await?.filter(|r| r.role_ceiling.is_none());
    if let (Some(_), Some(row)) = (revoked, &row) {
        crate::data::audit::record(
            &mut tx,
            scope.actor(),
            None,
            "token.revoked",
            &row.name,
            detail(row),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Makes a tenant token for the member with `email` (the admin command line, for
/// automation that has no browser: `portal token issue`). The ceiling must be covered by
/// the member's role, as in the portal. Recorded with the portal as the actor.
pub async fn issue_for_member(
    pool: &PgPool,
    slug: &str,
    email: &str,
    ceiling: &str,
    name: &str,
    expiry_days: &str,
) -> Result<NewToken, String> {
    let db = |e: sqlx::Error| format!("database: {e}");
    let mut tx = system_tx(pool).await.map_err(db)?;
    let found: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "select t.id, p.id, m.role from tenant t
           join membership m on m.tenant_id = t.id
           join person p on p.id = m.person_id
          where t.slug = $1 and lower(p.email) = lower($2)
          order by p.last_login_at desc nulls last limit 1",
    )
    .bind(slug)
    .bind(email.trim())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let (tenant_id, person_id, role) = found.ok_or_else(|| {
        format!("{email} is not a member of tenant {slug} (they must have signed in once)")
    })?;
    let role = TenantRole::parse(&role).ok_or("unknown membership role")?;
    let request = TokenRequest::tenant(name, ceiling, expiry_days, role)?;
    let made = insert(&mut tx, Some(tenant_id), person_id, &request)
        .await
        .map_err(db)?;
    crate::data::audit::record(
        &mut tx,
        crate::auth::Actor::System,
        Some(tenant_id),
        "token.created",
        &made.row.name,
        detail(&made.row),
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(made)
}

/// Makes an operator token for the operator with `email` (`portal token issue
/// --operator`).
pub async fn issue_for_operator(
    pool: &PgPool,
    email: &str,
    name: &str,
    expiry_days: &str,
) -> Result<NewToken, String> {
    let db = |e: sqlx::Error| format!("database: {e}");
    let request = TokenRequest::operator(name, expiry_days)?;
    let mut tx = system_tx(pool).await.map_err(db)?;
    let person: Uuid = sqlx::query_scalar(
        "select id from person where lower(email) = lower($1) and is_operator
          order by last_login_at desc nulls last limit 1",
    )
    .bind(email.trim())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or_else(|| format!("{email} is not an operator (they must have signed in once)"))?;
    let made = insert(&mut tx, None, person, &request).await.map_err(db)?;
    crate::data::audit::record(
        &mut tx,
        crate::auth::Actor::System,
        None,
        "token.created",
        &made.row.name,
        detail(&made.row),
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(made)
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Acts as this principal: the maker, capped at the ceiling, with the token set.
    Valid(Principal),
    Unknown,
    Expired,
    Revoked,
    /// The maker no longer has a role that covers the token's ceiling (or left the
    /// tenant, or is no longer an operator).
    MakerLacksRole,
}

#[derive(sqlx::FromRow)]
struct Found {
    id: Uuid,
    tenant_id: Option<Uuid>,
    role_ceiling: Option<String>,
    created_by: Uuid,
    expired: bool,
    revoked: bool,
}

/// Looks up a presented token and, if it may act, the principal it acts as. Records
/// when it was last used (at most once a minute per token, to keep reads cheap).
pub async fn authenticate(pool: &PgPool, secret: &str) -> Result<TokenCheck, sqlx::Error> {
    if !tokens::looks_like_token(secret) {
        return Ok(TokenCheck::Unknown);
    }
    // Before anyone is known: the trusted scope, by the hash alone.
    let mut tx = system_tx(pool).await?;
    let found = sqlx::query_as::<_, Found>(
        "select id, tenant_id, role_ceiling, created_by, expires_at <= now() as expired,
                revoked_at is not null as revoked
           from api_token where secret_sha256 = $1",
    )
    .bind(digest(secret))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(found) = found else {
        tx.commit().await?;
        return Ok(TokenCheck::Unknown);
    };
    if found.revoked {
        tx.commit().await?;
        return Ok(TokenCheck::Revoked);
    }
    if found.expired {
        tx.commit().await?;
        return Ok(TokenCheck::Expired);
    }
    sqlx::query(
        "update api_token set last_used_at = now()
          where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')",
    )
    .bind(found.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let Some(maker) = crate::data::people::load_principal(pool, found.created_by).await? else {
        return Ok(TokenCheck::MakerLacksRole);
    };
    let acting = match (found.tenant_id, found.role_ceiling.as_deref()) {
        (None, _) => maker.is_operator.then(|| Principal {
            memberships: Vec::new(),
            token: Some(found.id),
            ..maker.clone()
        }),
        (Some(tenant_id), Some(ceiling)) => {
            let ceiling = TenantRole::parse(ceiling);
            maker
                .memberships
                .iter()
                .find(|m| m.tenant_id == tenant_id)
                .zip(ceiling)
                .filter(|(m, ceiling)| tokens::covers(m.role, *ceiling))
                .map(|(m, ceiling)| Principal {
                    is_operator: false,
                    memberships: vec![crate::auth::principal::Membership {
                        role: ceiling,
                        ..m.clone()
                    }],
                    token: Some(found.id),
                    ..maker.clone()
                })
        }
        (Some(_), None) => None,
    };
    Ok(acting.map_or(TokenCheck::MakerLacksRole, TokenCheck::Valid))
}
