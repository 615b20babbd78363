//! A tenant's members (docs/members.md): the list for everyone who sees the whole tenant;
//! invite, revoke an invitation, change a role and remove for owners and admins. The
//! rules (owner role, last owner, oneself, IdP memberships) are
//! `crate::domain::members`, checked again under a lock in `crate::data::members`.
//!
//! Removing a member first expires their devices and pre-auth keys on the tenant's
//! shard, and only after the shard confirmed removes the membership and ends their
//! sessions; a shard that cannot be reached leaves everything as it was.

use crate::domain::role::TenantRole;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub person_id: String,
    pub name: String,
    pub email: Option<String>,
    pub role: TenantRole,
    /// From the identity provider's groups claim: not editable here.
    pub from_idp: bool,
    /// The member's name inside the tenant (their shard user is `<code>.<handle>`).
    pub handle: String,
    /// RFC 3339, UTC.
    pub joined: Option<String>,
    pub last_sign_in: Option<String>,
    pub is_me: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: TenantRole,
    pub invited_by: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    /// May invite, change and remove (owners and admins, tenant active).
    pub manages: bool,
    /// The roles this person may give (admins: every role but owner).
    pub grantable: Vec<TenantRole>,
    pub is_owner: bool,
}

#[cfg(feature = "ssr")]
fn parse_id(id: &str, what: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(id.trim())
        .map_err(|_| crate::error::fail(AppError::NotFound(what.to_string())))
}

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<TenantRole, AppError> {
    TenantRole::parse(role.trim()).ok_or_else(|| {
        crate::error::fail(AppError::Invalid(
            "Choose one of the roles in the list.".into(),
        ))
    })
}

#[cfg(feature = "ssr")]
fn refused(r: crate::domain::members::Refusal) -> AppError {
    crate::error::fail(r.into())
}

#[server(prefix = "/api", endpoint = "list_members")]
pub async fn list_members(slug: String) -> Result<MembersView, AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ViewAll)
        .map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let (members, invitations) = crate::data::members::list(&state.pool, &scope)
        .await
        .map_err(|e| fail(e.into()))?;
    let manages = scope.role().allows(Permission::ManageMembers) && scope.require_active().is_ok();
    let is_owner = scope.role() == TenantRole::Owner;
    Ok(MembersView {
        members,
        invitations,
        manages,
        grantable: TenantRole::ALL
            .into_iter()
            .filter(|r| is_owner || *r != TenantRole::Owner)
            .collect(),
        is_owner,
    })
}

/// Invites `email` to the tenant with `role`; accepted at that person's next sign-in
/// with that (verified) email, within seven days.
#[server(prefix = "/api", endpoint = "invite_member")]
pub async fn invite_member(slug: String, email: String, role: String) -> Result<(), AppError> {
    use crate::domain::members::Email;
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ManageMembers)
        .map_err(fail)?;
    let email = Email::parse(&email).map_err(|m| fail(AppError::Invalid(m)))?;
    let role = parse_role(&role)?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::members::invite(&state.pool, &scope, &email, role)
        .await
        .map_err(|e| fail(e.into()))?
        .map_err(refused)?;
    tracing::info!(tenant = %slug, role = role.as_str(), "member invited");
    leptos_axum::redirect(&format!("/t/{slug}/members?done=invited"));
    Ok(())
}

#[server(prefix = "/api", endpoint = "revoke_invitation")]
pub async fn revoke_invitation(slug: String, invitation_id: String) -> Result<(), AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ManageMembers)
        .map_err(fail)?;
    let id = parse_id(&invitation_id, "Invitation")?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::members::revoke_invitation(&state.pool, &scope, id)
        .await
        .map_err(|e| fail(e.into()))?
        .map_err(refused)?;
    tracing::info!(tenant = %slug, invitation = %id, "invitation revoked");
    leptos_axum::redirect(&format!("/t/{slug}/members?done=revoked"));
    Ok(())
}

#[server(prefix = "/api", endpoint = "change_member_role")]
pub async fn change_member_role(
    slug: String,
    person_id: String,
    role: String,
) -> Result<(), AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ManageMembers)
        .map_err(fail)?;
    let person = parse_id(&person_id, "Member")?;
    let role = parse_role(&role)?;
    let state = crate::state::app_state().map_err(fail)?;
    crate::data::members::change_role(&state.pool, &scope, person, role)
        .await
        .map_err(|e| fail(e.into()))?
        .map_err(refused)?;
    tracing::info!(tenant = %slug, person = %person, role = role.as_str(), "member role changed");
    leptos_axum::redirect(&format!("/t/{slug}/members?done=role"));
    Ok(())
}

/// Removes a member: their devices and pre-auth keys on the tenant's shard are expired
/// first (success only after the shard confirmed), then the membership goes and their
/// portal sessions end.
#[server(prefix = "/api", endpoint = "remove_member")]
pub async fn remove_member(slug: String, person_id: String) -> Result<(), AppError> {
    use crate::api::devices::{shard_error, Ctx};
    use crate::data::{devices, keys, members};
    use crate::domain::role::Permission;
    use crate::error::fail;
    use crate::headscale::PreAuthKeyId;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ManageMembers)
        .map_err(fail)?;
    let person = parse_id(&person_id, "Member")?;
    let ctx = Ctx::new(&slug).await?;
    let pool = &ctx.state.pool;
    let departing = members::departing(pool, &scope, person)
        .await
        .map_err(|e| fail(e.into()))?
        .map_err(refused)?;

    let mut devices_expired = 0usize;
    let mut keys_expired = 0usize;
    if let (Some((shard_id, user_id)), Some(shard)) = (departing.shard_user, ctx.shard.as_ref()) {
        if shard.shard_id == shard_id {
            // Asked of the shard, not the mirror: a device registered since the last
            // sync must not keep working.
            let client = ctx.client()?;
            let now = time::OffsetDateTime::now_utc();
            let theirs = |u: &Option<crate::headscale::User>| {
                u.as_ref().is_some_and(|u| u.id.0 as i64 == user_id)
            };
            let nodes = client.list_nodes().await.map_err(shard_error)?;
            for node in nodes
                .iter()
                .filter(|n| theirs(&n.user) && n.expiry.is_none_or(|e| e > now))
            {
                let expired = client.expire_node(node.id).await.map_err(shard_error)?;
                let event = crate::data::audit::Event::new(
                    "device.expired",
                    &expired.given_name,
                    serde_json::json!({ "node_id": node.id.0, "reason": "its owner was removed from the tenant" }),
                );
                devices::write_through(pool, &scope, shard_id, &expired, &event)
                    .await
                    .map_err(|e| fail(e.into()))?;
                devices_expired += 1;
            }
            let list = client.list_pre_auth_keys().await.map_err(shard_error)?;
            for key in list.iter().filter(|k| {
                (theirs(&k.user) || departing.minted_key_ids.contains(&(k.id.0 as i64)))
                    && k.expiration.is_none_or(|e| e > now)
            }) {
                client
                    .expire_pre_auth_key(PreAuthKeyId(key.id.0))
                    .await
                    .map_err(shard_error)?;
                let event = crate::data::audit::Event::new(
                    "key.expired",
                    format!("hskey-auth-{}-…", key.prefix().unwrap_or_default()),
                    serde_json::json!({ "key_id": key.id.0, "reason": "its owner was removed from the tenant" }),
                );
                keys::mark_expired(pool, &scope, shard_id, key.id.0 as i64, &event)
                    .await
                    .map_err(|e| fail(e.into()))?;
                keys_expired += 1;
            }
        }
    }

    let now = ctx.state.clock.now();
    members::remove(
        pool,
        &scope,
        person,
        now,
        serde_json::json!({"devices_expired": devices_expired, "keys_expired": keys_expired}),
    )
    .await
    .map_err(|e| fail(e.into()))?
    .map_err(refused)?;
    tracing::info!(tenant = %slug, person = %person, devices_expired, keys_expired, "member removed");
    leptos_axum::redirect(&format!("/t/{slug}/members?done=removed"));
    Ok(())
}
