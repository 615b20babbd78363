//! API tokens (docs/api.md): a tenant's, for its REST API, and the operators', for the
//! operator endpoints. Anyone in a tenant may make a token up to their own role; owners
//! and admins see and revoke all of the tenant's tokens, everyone else their own. The
//! token's text is returned once, by the call that made it.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// `hsp_3f9a01c2…`
    pub hint: String,
    /// The role ceiling's label; `None` for operator tokens.
    pub role: Option<String>,
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// "Active", "Expired" or "Revoked".
    pub state: String,
    pub may_revoke: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensView {
    pub tokens: Vec<TokenView>,
    /// The roles the person may give a new token (value, label), most powerful first.
    pub ceilings: Vec<(String, String)>,
    /// Sees every token of the tenant (owners, admins), not only their own.
    pub sees_all: bool,
    pub may_create: bool,
    pub max_expiry_days: u32,
}

/// A token just made: the only time its text leaves the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeToken {
    pub token: TokenView,
    pub secret: String,
    /// The portal's address, for the example request.
    pub api_base: String,
}

#[cfg(feature = "ssr")]
mod server {
    use super::*;
    use crate::data::tokens::TokenRow;

    pub fn view_of(row: TokenRow, may_revoke: bool, now: time::OffsetDateTime) -> TokenView {
        let state = if row.revoked_at.is_some() {
            "Revoked"
        } else if row.expires_at <= now {
            "Expired"
        } else {
            "Active"
        };
        TokenView {
            id: row.id.to_string(),
            name: row.name,
            hint: row.hint,
            role: row
                .role_ceiling
                .as_deref()
                .and_then(crate::domain::role::TenantRole::parse)
                .map(|r| r.label().to_string()),
            created_by: row.created_by_name,
            created_at: crate::data::rfc3339(Some(row.created_at)).unwrap_or_default(),
            expires_at: crate::data::rfc3339(Some(row.expires_at)).unwrap_or_default(),
            revoked_at: crate::data::rfc3339(row.revoked_at),
            last_used_at: crate::data::rfc3339(row.last_used_at),
            may_revoke: may_revoke && state == "Active",
            state: state.into(),
        }
    }

    pub fn token_id(id: &str) -> Result<uuid::Uuid, AppError> {
        uuid::Uuid::parse_str(id.trim())
            .map_err(|_| crate::error::fail(AppError::NotFound(format!("Token {id}"))))
    }
}

/// The tenant's tokens the person may see, and what they may make.
#[server(prefix = "/api", endpoint = "list_tokens")]
pub async fn list_tokens(slug: String) -> Result<TokensView, AppError> {
    use crate::domain::role::{Permission, TenantRole};
    use crate::domain::tokens::{covers, MAX_EXPIRY_DAYS};
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::View)
        .map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let sees_all = scope.role().allows(Permission::ManageMembers);
    let made_by = (!sees_all).then(|| scope.person_id());
    let rows = crate::data::tokens::list_for_tenant(&state.pool, &scope, made_by)
        .await
        .map_err(|e| fail(e.into()))?;
    let now = state.clock.now();
    Ok(TokensView {
        tokens: rows
            .into_iter()
            .map(|r| {
                let mine = r.created_by == scope.person_id();
                server::view_of(r, sees_all || mine, now)
            })
            .collect(),
        ceilings: TenantRole::ALL
            .into_iter()
            .filter(|r| covers(scope.role(), *r))
            .map(|r| (r.as_str().to_string(), r.label().to_string()))
            .collect(),
        sees_all,
        may_create: scope.require_active().is_ok() && principal.token.is_none(),
        max_expiry_days: MAX_EXPIRY_DAYS,
    })
}

/// Makes a tenant token with role ceiling `role` (at most the maker's own role).
#[server(prefix = "/api", endpoint = "create_token")]
pub async fn create_token(
    slug: String,
    name: String,
    role: String,
    expiry_days: String,
) -> Result<MadeToken, AppError> {
    use crate::domain::role::Permission;
    use crate::domain::tokens::TokenRequest;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::View)
        .map_err(fail)?;
    // Tokens are made by people, not by other tokens.
    if principal.token.is_some() {
        return Err(fail(AppError::Forbidden));
    }
    scope.require_active().map_err(fail)?;
    let request = TokenRequest::tenant(&name, &role, &expiry_days, scope.role())
        .map_err(|m| fail(AppError::Invalid(m)))?;
    let state = crate::state::app_state().map_err(fail)?;
    let made = crate::data::tokens::create_for_tenant(&state.pool, &scope, &request)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, token_id = %made.row.id, hint = %made.row.hint, "API token made");
    let made = MadeToken {
        token: server::view_of(made.row, true, state.clock.now()),
        secret: made.secret,
        api_base: state.public_origin.to_string(),
    };
    if crate::error::is_form_post() {
        let handle = crate::api::handoff::put(scope.person_id(), &made);
        leptos_axum::redirect(&format!("/t/{slug}/tokens?made={handle}"));
    }
    Ok(made)
}

/// The token made by this person's JavaScript-free form post, once.
#[server(prefix = "/api", endpoint = "take_made_token")]
pub async fn take_made_token(handle: String) -> Result<Option<MadeToken>, AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    Ok(crate::api::handoff::take(principal.person_id, &handle))
}

/// Revokes one of the tenant's tokens (owners and admins: any; others: their own).
#[server(prefix = "/api", endpoint = "revoke_token")]
pub async fn revoke_token(slug: String, token_id: String) -> Result<(), AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::View)
        .map_err(fail)?;
    let id = server::token_id(&token_id)?;
    let made_by = (!scope.role().allows(Permission::ManageMembers)).then(|| scope.person_id());
    let state = crate::state::app_state().map_err(fail)?;
    let row = crate::data::tokens::revoke_for_tenant(&state.pool, &scope, id, made_by)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Token {token_id}"))))?;
    tracing::info!(tenant = %slug, token_id = %row.id, "API token revoked");
    leptos_axum::redirect(&format!("/t/{slug}/tokens?revoked={}", row.hint));
    Ok(())
}

/// The operator tokens.
#[server(prefix = "/api", endpoint = "list_operator_tokens")]
pub async fn list_operator_tokens() -> Result<TokensView, AppError> {
    use crate::domain::tokens::MAX_EXPIRY_DAYS;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let rows = crate::data::tokens::list_for_operator(&state.pool, &scope)
        .await
        .map_err(|e| fail(e.into()))?;
    let now = state.clock.now();
    Ok(TokensView {
        tokens: rows
            .into_iter()
            .map(|r| server::view_of(r, true, now))
            .collect(),
        ceilings: Vec::new(),
        sees_all: true,
        may_create: principal.token.is_none(),
        max_expiry_days: MAX_EXPIRY_DAYS,
    })
}

/// Makes an operator token.
#[server(prefix = "/api", endpoint = "create_operator_token")]
pub async fn create_operator_token(
    name: String,
    expiry_days: String,
) -> Result<MadeToken, AppError> {
    use crate::domain::tokens::TokenRequest;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    if principal.token.is_some() {
        return Err(fail(AppError::Forbidden));
    }
    let request =
        TokenRequest::operator(&name, &expiry_days).map_err(|m| fail(AppError::Invalid(m)))?;
    let state = crate::state::app_state().map_err(fail)?;
    let made = crate::data::tokens::create_for_operator(&state.pool, &scope, &request)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(token_id = %made.row.id, hint = %made.row.hint, "operator API token made");
    let made = MadeToken {
        token: server::view_of(made.row, true, state.clock.now()),
        secret: made.secret,
        api_base: state.public_origin.to_string(),
    };
    if crate::error::is_form_post() {
        let handle = crate::api::handoff::put(scope.person_id(), &made);
        leptos_axum::redirect(&format!("/operator/tokens?made={handle}"));
    }
    Ok(made)
}

/// Revokes an operator token.
#[server(prefix = "/api", endpoint = "revoke_operator_token")]
pub async fn revoke_operator_token(token_id: String) -> Result<(), AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let id = server::token_id(&token_id)?;
    let state = crate::state::app_state().map_err(fail)?;
    let row = crate::data::tokens::revoke_for_operator(&state.pool, &scope, id)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Token {token_id}"))))?;
    tracing::info!(token_id = %row.id, "operator API token revoked");
    leptos_axum::redirect(&format!("/operator/tokens?revoked={}", row.hint));
    Ok(())
}
