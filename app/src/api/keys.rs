//! A tenant's pre-auth keys: list (from the mirror), mint (on the tenant's shard, within
//! the tenant's quotas; the full key is shown exactly once) and expire.
//!
//! Who may do what: device managers mint keys for any member or tags-only keys and expire
//! any key; auditors only look; everyone else mints and expires their own.
//!
//! Showing a key once: with JavaScript the minting call returns it to the page, which
//! shows it in a dialog. Without, the form post is answered with a redirect to the keys
//! page carrying a random one-time token; the key waits for that page in this process's
//! memory (never in the database, never in a URL or log) for at most five minutes and is
//! handed out once.

use crate::domain::keys::KeyState;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub key_id: i64,
    /// The 12 characters that identify the key (`hskey-auth-<prefix>-…`).
    pub prefix: Option<String>,
    /// The owning Headscale user; `None` for a tags-only key.
    pub owner_user: Option<String>,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    pub state: KeyState,
    /// RFC 3339, UTC.
    pub expiration: Option<String>,
    /// In the tenant's own names.
    pub tags: Vec<String>,
    pub created_at: Option<String>,
    pub description: String,
    /// Who minted it in the portal (`None`: made elsewhere, e.g. on the shard).
    pub created_by: Option<String>,
    pub created_by_me: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysView {
    pub keys: Vec<KeyRow>,
    pub sees_all: bool,
    /// May mint keys at all (not an auditor; tenant active).
    pub may_mint: bool,
    /// May mint for other members and tags-only keys (device managers).
    pub manages: bool,
    /// (user name, display name) of members who have their shard user.
    pub members: Vec<(String, String)>,
    pub own_user: Option<String>,
    pub active_keys: i64,
    pub key_quota: i32,
    pub devices: i64,
    pub device_quota: i32,
    pub login_server_url: String,
    pub placed: bool,
}

/// A key just minted: the only time its full text exists in the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintedKey {
    pub key_id: i64,
    pub key: String,
    pub prefix: String,
    pub expiration: Option<String>,
    pub tailscale_up: String,
    pub k3s: String,
}

#[server(prefix = "/api", endpoint = "list_keys")]
pub async fn list_keys(slug: String) -> Result<KeysView, AppError> {
    use crate::api::devices::Ctx;
    use crate::data::keys;
    use crate::domain::role::{Permission, TenantRole};
    use crate::error::fail;
    let ctx = Ctx::new(&slug).await?;
    let manages = ctx.scope.role().allows(Permission::ManageDevices);
    let Some(shard) = ctx.shard.clone() else {
        return Ok(KeysView {
            keys: vec![],
            sees_all: ctx.sees_all(),
            may_mint: false,
            manages,
            members: vec![],
            own_user: None,
            active_keys: 0,
            key_quota: 0,
            devices: 0,
            device_quota: 0,
            login_server_url: String::new(),
            placed: false,
        });
    };
    let pool = &ctx.state.pool;
    let only_user = ctx.only_user();
    let list = keys::list(pool, &ctx.scope, ctx.code(), only_user.as_deref())
        .await
        .map_err(|e| fail(e.into()))?;
    let (active_keys, devices) = keys::usage(pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?;
    let members = if manages {
        keys::member_users(pool, &ctx.scope)
            .await
            .map_err(|e| fail(e.into()))?
            .into_iter()
            .map(|(user, _, name)| (user, name))
            .collect()
    } else {
        vec![]
    };
    Ok(KeysView {
        keys: list,
        sees_all: ctx.sees_all(),
        may_mint: ctx.scope.role() != TenantRole::Auditor && ctx.scope.require_active().is_ok(),
        manages,
        members,
        own_user: ctx.own_user.clone(),
        active_keys,
        key_quota: shard.key_quota,
        devices,
        device_quota: shard.device_quota,
        login_server_url: shard.login_server_url,
        placed: true,
    })
}

/// Mints a key on the tenant's shard. `owner`: a member's shard user (managers), `me`
/// or empty for oneself, `tags` for a tags-only key (managers; needs tags).
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "create_key")]
pub async fn create_key(
    slug: String,
    #[server(default)] reusable: Option<String>,
    #[server(default)] ephemeral: Option<String>,
    expiry_days: String,
    #[server(default)] tags: String,
    #[server(default)] description: String,
    #[server(default)] owner: String,
) -> Result<MintedKey, AppError> {
    use crate::api::devices::{shard_error, Ctx};
    use crate::data::keys;
    use crate::domain::keys::{check_quotas, k3s_vpn_auth, tailscale_up_command, KeyRequest};
    use crate::domain::role::{Permission, TenantRole};
    use crate::error::fail;
    use crate::headscale::{NewPreAuthKey, UserId};
    let ctx = Ctx::new(&slug).await?;
    if ctx.scope.role() == TenantRole::Auditor {
        return Err(fail(AppError::Forbidden));
    }
    ctx.scope.require_active().map_err(fail)?;
    let manages = ctx.scope.role().allows(Permission::ManageDevices);
    let shard = ctx.placed()?.clone();
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| v == "on" || v == "true");
    let request = KeyRequest::parse(
        &shard.tenant_code,
        on(&reusable),
        on(&ephemeral),
        &expiry_days,
        &tags,
        &description,
    )
    .map_err(|m| fail(AppError::Invalid(m)))?;

    // Whose key: oneself, another member, or the tags alone.
    let owner = owner.trim();
    let user: Option<i64> = if owner == "tags" {
        if !manages {
            return Err(fail(AppError::Forbidden));
        }
        if request.shard_tags.is_empty() {
            return Err(fail(AppError::Invalid(
                "A tags-only key needs at least one tag.".into(),
            )));
        }
        None
    } else {
        if !request.shard_tags.is_empty() && !manages {
            return Err(fail(AppError::Forbidden));
        }
        Some(ctx.owner_user(owner).await?.1)
    };

    let (active, devices) = keys::usage(&ctx.state.pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?;
    check_quotas(active, shard.key_quota, devices, shard.device_quota)
        .map_err(|m| fail(AppError::Conflict(m)))?;

    let client = ctx.client()?;
    let expiration =
        time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(request.expiry_days));
    let sent = NewPreAuthKey {
        user: user.map(|id| UserId(id as u64)),
        reusable: request.reusable,
        ephemeral: request.ephemeral,
        expiration,
        acl_tags: request.shard_tags.clone(),
    };
    // The version first (a read, cached after the first call): a shard that fails here
    // was sent no mint, and the person is told just that.
    client.version().await.map_err(shard_error)?;
    let created = match client.create_pre_auth_key(&sent).await {
        Ok(created) => created,
        Err(e) => return Err(fail(lost_mint::settle(&ctx, &client, &sent, e).await)),
    };
    // Never the key itself: its prefix names it.
    let event = crate::data::audit::Event::new(
        "key.created",
        format!(
            "hskey-auth-{}-…",
            created.pre_auth_key.prefix().unwrap_or_default()
        ),
        serde_json::json!({
            "key_id": created.pre_auth_key.id.0,
            "user": user,
            "reusable": request.reusable,
            "ephemeral": request.ephemeral,
            "expiry_days": request.expiry_days,
            "tags": tags,
            "description": request.description,
        }),
    );
    if let Err(e) = keys::record_minted(
        &ctx.state.pool,
        &ctx.scope,
        shard.shard_id,
        &created.pre_auth_key,
        &request.description,
        &event,
    )
    .await
    {
        // The shard made the key but the portal could not record it (its database went
        // away): nobody will see the secret, so the key is expired on the shard rather
        // than left usable and unaccounted for. A retry mints a new one.
        let expired = client
            .expire_pre_auth_key(created.pre_auth_key.id)
            .await
            .is_ok();
        tracing::warn!(
            tenant = %slug,
            key_id = created.pre_auth_key.id.0,
            expired_on_shard = expired,
            error = %e,
            "a minted key could not be recorded"
        );
        return Err(fail(e.into()));
    }
    let secret = created.secret.expose().to_string();
    let minted = MintedKey {
        key_id: created.pre_auth_key.id.0 as i64,
        prefix: created
            .pre_auth_key
            .prefix()
            .unwrap_or_default()
            .to_string(),
        expiration: crate::data::rfc3339(created.pre_auth_key.expiration),
        tailscale_up: tailscale_up_command(&shard.login_server_url, &secret),
        k3s: k3s_vpn_auth(&shard.login_server_url, &secret),
        key: secret,
    };
    tracing::info!(
        tenant = %slug,
        key_id = minted.key_id,
        prefix = %minted.prefix,
        reusable = request.reusable,
        ephemeral = request.ephemeral,
        "pre-auth key minted"
    );
    if crate::error::is_form_post() {
        let token = crate::api::handoff::put(ctx.scope.person_id(), &minted);
        leptos_axum::redirect(&format!("/t/{slug}/keys?minted={token}"));
    }
    Ok(minted)
}

/// A mint whose answer never came (issue 8): the shard may have made the key, and
/// nobody has its secret. It must not stay usable behind the person's back: the key is
/// found by what was sent and expired, within the time the person waits anyway, or by
/// a task that keeps trying for a while when the shard does not answer that either.
/// The portal never sends the mint again by itself; the person does, knowingly.
#[cfg(feature = "ssr")]
mod lost_mint {
    use crate::api::devices::{shard_error, Ctx};
    use crate::auth::TenantScope;
    use crate::data::audit::Event;
    use crate::error::AppError;
    use crate::headscale::{
        HeadscaleError, HeadscaleErrorKind, NewPreAuthKey, PreAuthKey, ShardClient,
    };
    use sqlx::PgPool;
    use std::time::Duration;

    /// What the person waits for the cleanup on top of the shard's timeout: the two
    /// stay within the 10 s in which a failed action must be answered.
    const INLINE: Duration = Duration::from_millis(2500);
    /// How long the task keeps trying a shard that did not answer the cleanup, and how
    /// often. A key still usable after that shows up at the next sync, unclaimed.
    const PERSIST: Duration = Duration::from_secs(600);
    const EVERY: Duration = Duration::from_secs(15);

    /// Answers the failed mint: the shard's error, and what became of the key it may
    /// have made.
    pub async fn settle(
        ctx: &Ctx,
        client: &ShardClient,
        sent: &NewPreAuthKey,
        error: HeadscaleError,
    ) -> AppError {
        // Only an answer lost after sending leaves the question open; a refusal, a 5xx
        // or an open breaker made no key.
        if !matches!(
            error.kind(),
            HeadscaleErrorKind::Timeout
                | HeadscaleErrorKind::Unreachable
                | HeadscaleErrorKind::BadResponse
        ) {
            return shard_error(error);
        }
        let said = error.to_string();
        match tokio::time::timeout(INLINE, expire_made(client, sent)).await {
            Ok(Ok(expired)) => {
                record(&ctx.state.pool, &ctx.scope, &expired).await;
                let what = if expired.is_empty() {
                    "It made no key; mint again."
                } else {
                    "It had made the key anyway; the portal expired it, since nobody \
                     could see it. Mint again."
                };
                AppError::Unavailable(format!("{said}. {what}"))
            }
            _ => {
                let (pool, scope) = (ctx.state.pool.clone(), ctx.scope.clone());
                let (client, sent) = (client.clone(), sent.clone());
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    while started.elapsed() < PERSIST {
                        tokio::time::sleep(EVERY).await;
                        if let Ok(expired) = expire_made(&client, &sent).await {
                            record(&pool, &scope, &expired).await;
                            return;
                        }
                    }
                    tracing::warn!(
                        cluster_id = %client.cluster_id(),
                        "a mint whose answer was lost could not be checked; a key it made \
                         shows up at the next sync"
                    );
                });
                AppError::Unavailable(format!(
                    "{said}. If it made the key anyway, the portal expires it as soon as \
                     the shard answers again; mint again then."
                ))
            }
        }
    }

    /// Expires every usable key on the shard that this mint made (one, or none).
    async fn expire_made(
        client: &ShardClient,
        sent: &NewPreAuthKey,
    ) -> Result<Vec<PreAuthKey>, HeadscaleError> {
        let now = time::OffsetDateTime::now_utc();
        let made: Vec<PreAuthKey> = client
            .list_pre_auth_keys()
            .await?
            .into_iter()
            .filter(|k| sent.made(k) && k.is_usable(now))
            .collect();
        for key in &made {
            client.expire_pre_auth_key(key.id).await?;
        }
        Ok(made)
    }

    /// Each expired key in the tenant's audit log, outside the request's idempotency:
    /// the mint itself failed, and an API client may send it again under its key.
    async fn record(pool: &PgPool, scope: &TenantScope, expired: &[PreAuthKey]) {
        for key in expired {
            let event = Event::new(
                "key.expired",
                format!("hskey-auth-{}-…", key.prefix().unwrap_or_default()),
                serde_json::json!({
                    "key_id": key.id.0,
                    "reason": "The mint's answer was lost: nobody has this key, so the \
                               portal expired it.",
                }),
            );
            if let Err(e) = crate::data::audit::record_aside(pool, scope, &event).await {
                tracing::error!(error = %e, key_id = key.id.0, "could not record an expired key");
            }
            tracing::warn!(
                tenant_id = %scope.tenant_id(),
                key_id = key.id.0,
                "a key minted without an answer was expired on the shard"
            );
        }
    }
}

/// The key minted by this person's JavaScript-free form post, once.
#[server(prefix = "/api", endpoint = "take_minted_key")]
pub async fn take_minted_key(slug: String, token: String) -> Result<Option<MintedKey>, AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::View)
        .map_err(fail)?;
    Ok(crate::api::handoff::take(scope.person_id(), &token))
}

/// Expires a key on the shard: it registers no further device.
#[server(prefix = "/api", endpoint = "expire_key")]
pub async fn expire_key(slug: String, key_id: i64) -> Result<(), AppError> {
    use crate::api::devices::{shard_error, Ctx};
    use crate::data::keys;
    use crate::domain::role::{Permission, TenantRole};
    use crate::error::fail;
    use crate::headscale::PreAuthKeyId;
    let ctx = Ctx::new(&slug).await?;
    let pool = &ctx.state.pool;
    let only_user = ctx.only_user();
    let key = keys::list(pool, &ctx.scope, ctx.code(), only_user.as_deref())
        .await
        .map_err(|e| fail(e.into()))?
        .into_iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| fail(AppError::NotFound(format!("Key {key_id}"))))?;
    let manages = ctx.scope.role().allows(Permission::ManageDevices);
    let own = key.created_by_me || (ctx.own_user.is_some() && key.owner_user == ctx.own_user);
    if ctx.scope.role() == TenantRole::Auditor || !(manages || own) {
        return Err(fail(AppError::Forbidden));
    }
    ctx.scope.require_active().map_err(fail)?;
    let shard = ctx.placed()?.clone();
    let client = ctx.client()?;
    client
        .expire_pre_auth_key(PreAuthKeyId(key_id as u64))
        .await
        .map_err(shard_error)?;
    let event = crate::data::audit::Event::new(
        "key.expired",
        format!("hskey-auth-{}-…", key.prefix.clone().unwrap_or_default()),
        serde_json::json!({ "key_id": key_id, "before": key.expiration }),
    );
    keys::mark_expired(pool, &ctx.scope, shard.shard_id, key_id, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, key_id, "pre-auth key expired");
    leptos_axum::redirect(&format!("/t/{slug}/keys?expired={key_id}"));
    Ok(())
}
