//! A tenant's devices: the list (from the mirror, never the shard) and the actions that
//! change a device on the tenant's shard — rename, expire, delete.
//!
//! Who may do what (`domain::devices`): roles that read everything see all devices,
//! members only their own; device managers change any device, auditors none, everyone
//! else their own. A device the person may not see is "not found", like another
//! tenant's. Every action reports success only after the shard confirmed it, then
//! writes the shard's answer into the mirror.

use crate::domain::devices::DeviceQuery;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRow {
    /// The shard's node id (unique on the tenant's shard).
    pub node_id: i64,
    /// The MagicDNS name (what rename changes).
    pub name: String,
    /// The hostname the client reported.
    pub hostname: String,
    pub ips: Vec<String>,
    /// In the tenant's own names (`tag:server`).
    pub tags: Vec<String>,
    pub online: bool,
    /// RFC 3339, UTC.
    pub last_seen: Option<String>,
    pub expiry: Option<String>,
    pub expired: bool,
    /// Advertises `0.0.0.0/0` or `::/0`.
    pub exit_node: bool,
    pub exit_node_approved: bool,
    /// Advertised subnet routes (exit routes excluded).
    pub subnet_routes: Vec<String>,
    pub approved_routes: Vec<String>,
    /// The owning Headscale user (`t7k2.alice`); `None` for a tagged device.
    pub owner_user: Option<String>,
    /// The owner's name (or email) in the portal.
    pub owner_name: Option<String>,
    pub register_method: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePage {
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    pub devices: Vec<DeviceRow>,
}

impl DevicePage {
    pub fn empty(page: u32) -> DevicePage {
        DevicePage {
            total: 0,
            page,
            page_size: crate::domain::devices::PAGE_SIZE,
            devices: Vec::new(),
        }
    }

    pub fn pages(&self) -> u32 {
        let size = i64::from(self.page_size.max(1));
        ((self.total + size - 1) / size).max(1) as u32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetail {
    pub device: DeviceRow,
}

/// The devices page: one page of devices, the filters' choices, and context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesView {
    pub page: DevicePage,
    pub tags: Vec<String>,
    /// (user name, display name)
    pub owners: Vec<(String, String)>,
    /// The person sees every device (else only their own).
    pub sees_all: bool,
    /// Devices of the whole tenant now, against its quota.
    pub tenant_devices: i64,
    pub device_quota: i32,
    /// When the mirror was last refreshed from the shard (RFC 3339, UTC).
    pub as_of: Option<String>,
    pub placed: bool,
    /// May register devices (not an auditor; tenant active).
    pub may_register: bool,
    /// May register for other members (device managers).
    pub manages: bool,
    /// Since when the tenant has more devices than its quota (RFC 3339, UTC).
    pub over_quota_since: Option<String>,
}

/// What the device page needs: the device and what the person may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub device: DeviceRow,
    pub may_change: bool,
    /// May set tags (device managers).
    pub manages: bool,
    pub login_server_url: String,
}

#[cfg(feature = "ssr")]
mod server {
    use super::*;
    use crate::auth::TenantScope;
    use crate::data::devices::{self, TenantShard};
    use crate::domain::devices::{may_change_device, DeviceScope};
    use crate::domain::role::Permission;
    use crate::error::fail;
    use crate::headscale::{HeadscaleError, HeadscaleErrorKind, ShardAccess, ShardClient};
    use crate::state::AppState;

    pub struct Ctx {
        pub state: AppState,
        pub scope: TenantScope,
        pub shard: Option<TenantShard>,
        /// The person's own shard user, once the sync made it.
        pub own_user: Option<String>,
        own_user_id: Option<i64>,
    }

    impl Ctx {
        pub async fn new(slug: &str) -> Result<Ctx, AppError> {
            let principal = crate::auth::current_principal().map_err(fail)?;
            let scope = principal
                .tenant_scope(slug, Permission::View)
                .map_err(fail)?;
            let state = crate::state::app_state().map_err(fail)?;
            let (shard, own) = devices::shard_and_own_user(&state.pool, &scope)
                .await
                .map_err(|e| fail(e.into()))?;
            Ok(Ctx {
                state,
                scope,
                shard,
                own_user_id: own.as_ref().map(|(_, id)| *id),
                own_user: own.map(|(name, _)| name),
            })
        }

        pub fn sees_all(&self) -> bool {
            DeviceScope::of(self.scope.role()) == DeviceScope::All
        }

        /// For members: their own user (nothing at all before the sync made it).
        pub fn only_user(&self) -> Option<String> {
            if self.sees_all() {
                None
            } else {
                // No user yet: the empty name, which no device has.
                Some(self.own_user.clone().unwrap_or_default())
            }
        }

        pub fn code(&self) -> &str {
            self.shard
                .as_ref()
                .map(|s| s.tenant_code.as_str())
                .unwrap_or("")
        }

        pub fn placed(&self) -> Result<&TenantShard, AppError> {
            self.shard.as_ref().ok_or_else(|| {
                fail(AppError::Conflict(
                    "This tenant is not placed on a shard yet; the service operator places it."
                        .into(),
                ))
            })
        }

        /// A device the person may see, or not found.
        pub async fn device(&self, node_id: i64) -> Result<DeviceRow, AppError> {
            let not_found = || fail(AppError::NotFound(format!("Device {node_id}")));
            let device = devices::get(&self.state.pool, &self.scope, self.code(), node_id)
                .await
                .map_err(|e| fail(e.into()))?
                .ok_or_else(not_found)?
                .device;
            if !self.sees_all() && !self.owns(&device) {
                return Err(not_found());
            }
            Ok(device)
        }

        /// The shard user (name, id) a new key or device is for: the person's own
        /// (`owner` empty or `me`) or, for device managers, the member whose shard user is
        /// `owner`.
        pub async fn owner_user(&self, owner: &str) -> Result<(String, i64), AppError> {
            match owner.trim() {
                "" | "me" => self.own_user.clone().zip(self.own_user_id).ok_or_else(|| {
                    fail(AppError::Conflict(
                        "Your user on this tenant's shard is being set up; try again in a minute."
                            .into(),
                    ))
                }),
                other if self.scope.role().allows(Permission::ManageDevices) => {
                    crate::data::keys::member_users(&self.state.pool, &self.scope)
                        .await
                        .map_err(|e| fail(e.into()))?
                        .into_iter()
                        .find(|(u, _, _)| u == other)
                        .map(|(u, id, _)| (u, id))
                        .ok_or_else(|| {
                            fail(AppError::Invalid(format!(
                                "{other} is not a member of this tenant with a user on its shard."
                            )))
                        })
                }
                _ => Err(fail(AppError::Forbidden)),
            }
        }

        pub fn owns(&self, device: &DeviceRow) -> bool {
            self.own_user.is_some() && device.owner_user == self.own_user
        }

        /// A device the person may change: seen, theirs or theirs to manage, tenant
        /// active, shard in service.
        pub async fn changeable(&self, node_id: i64) -> Result<(DeviceRow, ShardClient), AppError> {
            let device = self.device(node_id).await?;
            if !may_change_device(self.scope.role(), self.owns(&device)) {
                return Err(fail(AppError::Forbidden));
            }
            self.scope.require_active().map_err(fail)?;
            let client = self.client()?;
            Ok((device, client))
        }

        pub fn client(&self) -> Result<ShardClient, AppError> {
            let shard = self.placed()?;
            if shard.shard_status == "disabled" {
                return Err(fail(AppError::Unavailable(format!(
                    "Shard {} is out of service; devices cannot be changed until the operator \
                     brings it back.",
                    shard.cluster_id
                ))));
            }
            self.state
                .shard_clients
                .get(
                    &self.state.secrets,
                    &ShardAccess {
                        shard_id: shard.shard_id,
                        cluster_id: &shard.cluster_id,
                        api_url: &shard.api_url,
                        api_key_sealed: &shard.api_key_sealed,
                    },
                )
                .map_err(|e| fail(AppError::Unavailable(e)))
        }
    }

    /// A shard's refusal or failure as the person should read it.
    pub fn shard_error(e: HeadscaleError) -> AppError {
        let message = e.to_string();
        fail(match e.kind() {
            HeadscaleErrorKind::Rejected => AppError::Conflict(message),
            HeadscaleErrorKind::NotFound => AppError::NotFound(message),
            _ => AppError::Unavailable(message),
        })
    }
}

#[cfg(feature = "ssr")]
use crate::data::audit::Event;
#[cfg(feature = "ssr")]
pub use server::{shard_error, Ctx};

#[server(prefix = "/api", endpoint = "list_devices")]
pub async fn list_devices(slug: String, query: DeviceQuery) -> Result<DevicesView, AppError> {
    use crate::data::devices;
    use crate::error::fail;
    let ctx = Ctx::new(&slug).await?;
    let Some(shard) = ctx.shard.clone() else {
        return Ok(DevicesView {
            page: DevicePage::empty(1),
            tags: vec![],
            owners: vec![],
            sees_all: ctx.sees_all(),
            tenant_devices: 0,
            device_quota: 0,
            as_of: None,
            placed: false,
            may_register: false,
            manages: false,
            over_quota_since: None,
        });
    };
    let only_user = ctx.only_user();
    let pool = &ctx.state.pool;
    let devices::ListView {
        page,
        tags,
        owners,
        tenant_devices,
        as_of,
        over_quota_since,
    } = devices::list_view(pool, &ctx.scope, ctx.code(), &query, only_user.as_deref())
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(DevicesView {
        page,
        tags,
        owners,
        sees_all: ctx.sees_all(),
        tenant_devices,
        device_quota: shard.device_quota,
        as_of,
        placed: true,
        may_register: ctx.scope.role() != crate::domain::role::TenantRole::Auditor
            && ctx.scope.require_active().is_ok(),
        manages: ctx
            .scope
            .role()
            .allows(crate::domain::role::Permission::ManageDevices),
        over_quota_since,
    })
}

#[server(prefix = "/api", endpoint = "get_device")]
pub async fn get_device(slug: String, node_id: i64) -> Result<DeviceView, AppError> {
    use crate::domain::devices::may_change_device;
    let ctx = Ctx::new(&slug).await?;
    let device = ctx.device(node_id).await?;
    Ok(DeviceView {
        may_change: may_change_device(ctx.scope.role(), ctx.owns(&device)),
        manages: ctx
            .scope
            .role()
            .allows(crate::domain::role::Permission::ManageDevices),
        login_server_url: ctx
            .shard
            .as_ref()
            .map(|s| s.login_server_url.clone())
            .unwrap_or_default(),
        device,
    })
}

/// Renames a device (its MagicDNS name). The name must be a DNS label and free on the
/// shard.
#[server(prefix = "/api", endpoint = "rename_device")]
pub async fn rename_device(slug: String, node_id: i64, name: String) -> Result<String, AppError> {
    use crate::data::devices;
    use crate::domain::devices::parse_device_name;
    use crate::error::fail;
    use crate::headscale::NodeId;
    let ctx = Ctx::new(&slug).await?;
    let name = parse_device_name(&name).map_err(|m| fail(AppError::Invalid(m)))?;
    let (device, client) = ctx.changeable(node_id).await?;
    if device.name == name {
        leptos_axum::redirect(&format!("/t/{slug}/devices/{node_id}"));
        return Ok(name);
    }
    let shard = ctx.placed()?;
    let taken = devices::name_taken(&ctx.state.pool, shard.shard_id, node_id, &name)
        .await
        .map_err(|e| fail(e.into()))?;
    if taken {
        return Err(fail(AppError::Conflict(format!(
            "Another device on this tailnet's shard is already called {name}. Choose another name."
        ))));
    }
    let node = client
        .rename_node(NodeId(node_id as u64), &name)
        .await
        .map_err(shard_error)?;
    let event = Event::new(
        "device.renamed",
        &node.given_name,
        serde_json::json!({ "node_id": node_id, "before": device.name, "after": node.given_name }),
    );
    devices::write_through(&ctx.state.pool, &ctx.scope, shard.shard_id, &node, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, node_id, from = %device.name, to = %node.given_name, "device renamed");
    tell_the_device_its_name(client, node_id, node.given_name.clone());
    leptos_axum::redirect(&format!("/t/{slug}/devices/{node_id}?done=renamed"));
    Ok(node.given_name)
}

/// Headscale 0.29 tells a renamed device its new name only if nothing else on the shard
/// changed its policy's view of the nodes at the same moment: otherwise the rename goes
/// out as a plain policy change, which updates the peers but not the device itself
/// (`persistNodeToDB` returns `PolicyChange()` in place of `NodeAdded(id)`, and only the
/// latter carries the self-update). On a shared shard another tenant's device joining in
/// that second is enough; seen once in our browser suite. Renaming to the same name a
/// moment later is free on the shard and, with the shard quiet again, reaches the device.
#[cfg(feature = "ssr")]
fn tell_the_device_its_name(client: crate::headscale::ShardClient, node_id: i64, name: String) {
    use crate::headscale::NodeId;
    const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);
    tokio::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        if let Err(error) = client.rename_node(NodeId(node_id as u64), &name).await {
            tracing::warn!(
                cluster_id = %client.cluster_id(),
                node_id,
                %error,
                "the renamed device may learn its new name only at its next reconnect"
            );
        }
    });
}

/// Expires a device's key: it is logged out and must log in again.
#[server(prefix = "/api", endpoint = "expire_device")]
pub async fn expire_device(slug: String, node_id: i64) -> Result<(), AppError> {
    use crate::data::devices;
    use crate::error::fail;
    use crate::headscale::NodeId;
    let ctx = Ctx::new(&slug).await?;
    let (device, client) = ctx.changeable(node_id).await?;
    let shard = ctx.placed()?;
    let node = client
        .expire_node(NodeId(node_id as u64))
        .await
        .map_err(shard_error)?;
    let event = Event::new(
        "device.expired",
        &device.name,
        serde_json::json!({ "node_id": node_id, "before": device.expiry, "after": crate::data::rfc3339(node.expiry) }),
    );
    devices::write_through(&ctx.state.pool, &ctx.scope, shard.shard_id, &node, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, node_id, "device expired");
    leptos_axum::redirect(&format!("/t/{slug}/devices/{node_id}?done=expired"));
    Ok(())
}

/// Deletes a device from the shard. `confirm` must be the device's name, typed.
#[server(prefix = "/api", endpoint = "delete_device")]
pub async fn delete_device(slug: String, node_id: i64, confirm: String) -> Result<(), AppError> {
    use crate::data::devices;
    use crate::error::fail;
    use crate::headscale::NodeId;
    let ctx = Ctx::new(&slug).await?;
    let (device, client) = ctx.changeable(node_id).await?;
    if confirm.trim() != device.name {
        return Err(fail(AppError::Invalid(format!(
            "To delete the device, type its name ({}) to confirm.",
            device.name
        ))));
    }
    let shard = ctx.placed()?;
    match client.delete_node(NodeId(node_id as u64)).await {
        Ok(()) => {}
        // Already gone on the shard: the mirror just has not seen it yet.
        Err(e) if e.kind() == crate::headscale::HeadscaleErrorKind::NotFound => {}
        Err(e) => return Err(shard_error(e)),
    }
    let event = Event::new(
        "device.deleted",
        &device.name,
        serde_json::json!({
            "node_id": node_id, "owner": device.owner_user, "tags": device.tags, "ips": device.ips,
        }),
    );
    devices::mark_removed(&ctx.state.pool, &ctx.scope, shard.shard_id, node_id, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, node_id, name = %device.name, "device deleted");
    leptos_axum::redirect(&format!("/t/{slug}/devices?deleted={}", device.name));
    Ok(())
}

/// Registers a device that is waiting after an interactive `tailscale up` (no key):
/// `registration` is the URL it printed or the ID in it (0.29: `hskey-authreq-…`,
/// 0.28: 24 characters). `owner`: a member's shard user (device managers), or empty for
/// oneself. Refused over the device quota, before the shard is asked.
#[server(prefix = "/api", endpoint = "register_device")]
pub async fn register_device(
    slug: String,
    registration: String,
    #[server(default)] owner: String,
) -> Result<i64, AppError> {
    use crate::data::{devices, keys};
    use crate::domain::role::TenantRole;
    use crate::error::fail;
    use crate::headscale::HeadscaleErrorKind;
    let ctx = Ctx::new(&slug).await?;
    if ctx.scope.role() == TenantRole::Auditor {
        return Err(fail(AppError::Forbidden));
    }
    ctx.scope.require_active().map_err(fail)?;
    let registration = registration.trim();
    if registration.is_empty() {
        return Err(fail(AppError::Invalid(
            "Paste the URL that tailscale up printed (or the ID at its end).".into(),
        )));
    }
    let (user_name, _) = ctx.owner_user(&owner).await?;
    let shard = ctx.placed()?.clone();
    let (_, devices_now) = keys::usage(&ctx.state.pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?;
    if devices_now >= i64::from(shard.device_quota) {
        return Err(fail(AppError::Conflict(format!(
            "This tenant already has {devices_now} devices, its quota is {}. Remove a device, \
             or ask the service operator for a larger quota.",
            shard.device_quota
        ))));
    }
    let client = ctx.client()?;
    let node = client
        .register_node(&user_name, registration)
        .await
        .map_err(|e| match e.kind() {
            HeadscaleErrorKind::NotFound => fail(AppError::Invalid(
                "No device is waiting with that registration ID. Registration URLs expire \
                 after a few minutes: run tailscale up again for a new one."
                    .into(),
            )),
            HeadscaleErrorKind::Rejected => fail(AppError::Invalid(e.to_string())),
            _ => shard_error(e),
        })?;
    let event = Event::new(
        "device.registered",
        &node.given_name,
        serde_json::json!({ "node_id": node.id.0, "user": user_name }),
    );
    devices::insert_registered(&ctx.state.pool, &ctx.scope, shard.shard_id, &node, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    let node_id = node.id.0 as i64;
    tracing::info!(tenant = %slug, node_id, user = %user_name, "device registered");
    leptos_axum::redirect(&format!("/t/{slug}/devices/{node_id}?done=registered"));
    Ok(node_id)
}

/// Approves (`approve` = `true`) or withdraws one route a device advertises: a subnet
/// route, or `0.0.0.0/0` / `::/0` (exit node; both are set together). A subnet route that
/// overlaps a route another tenant on the shard has approved is refused, with why.
#[server(prefix = "/api", endpoint = "set_device_route")]
pub async fn set_device_route(
    slug: String,
    node_id: i64,
    route: String,
    approve: bool,
) -> Result<(), AppError> {
    use crate::data::devices;
    use crate::domain::routes::{conflict, Prefix, EXIT_ROUTES};
    use crate::error::fail;
    use crate::headscale::NodeId;
    let ctx = Ctx::new(&slug).await?;
    let (device, client) = ctx.changeable(node_id).await?;
    let prefix = Prefix::parse(&route).map_err(|m| fail(AppError::Invalid(m)))?;
    let advertised: Vec<Prefix> = device
        .subnet_routes
        .iter()
        .chain(device.exit_node.then_some(&EXIT_ROUTES[0].to_string()))
        .filter_map(|r| Prefix::parse(r).ok())
        .collect();
    if !advertised.contains(&prefix) {
        return Err(fail(AppError::Invalid(format!(
            "{} does not advertise {prefix}; only routes a device advertises can be approved.",
            device.name
        ))));
    }
    let shard = ctx.placed()?.clone();
    // The routes to keep, then this one added or taken out (an exit node is both).
    let wanted: Vec<String> = if prefix.is_exit() {
        EXIT_ROUTES.iter().map(|r| r.to_string()).collect()
    } else {
        vec![prefix.to_string()]
    };
    let mut routes: Vec<String> = device
        .approved_routes
        .iter()
        .filter(|r| !wanted.contains(r))
        .cloned()
        .collect();
    if approve {
        let others = devices::other_tenants_routes(&ctx.state.pool, &ctx.scope, shard.shard_id)
            .await
            .map_err(|e| fail(e.into()))?;
        if let Some(taken) = conflict(&prefix, &others) {
            return Err(fail(AppError::Conflict(format!(
                "{prefix} overlaps {taken}, which another tenant on this shard already routes. \
                 Headscale elects one router per prefix for the whole shard, so approving it \
                 would break that tenant's route or yours. Use a non-overlapping subnet (for \
                 K3s, a different --cluster-cidr), or ask the service operator to move your \
                 tenant to another shard."
            ))));
        }
        routes.extend(wanted);
    }
    routes.sort();
    routes.dedup();
    let node = client
        .set_approved_routes(NodeId(node_id as u64), &routes)
        .await
        .map_err(shard_error)?;
    let event = Event::new(
        if approve {
            "device.route_approved"
        } else {
            "device.route_withdrawn"
        },
        &device.name,
        serde_json::json!({
            "node_id": node_id, "route": prefix.to_string(),
            "before": device.approved_routes, "after": node.approved_routes,
        }),
    );
    devices::write_through(&ctx.state.pool, &ctx.scope, shard.shard_id, &node, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, node_id, %prefix, approve, "device route changed");
    leptos_axum::redirect(&format!("/t/{slug}/devices/{node_id}?done=routes"));
    Ok(())
}

/// Sets a device's tags (in the tenant's own names, comma or space separated; empty is
/// refused: Headscale keeps a tagged device tagged). The shard's policy decides which
/// tags exist (tagOwners); its refusal comes back as a sentence.
#[server(prefix = "/api", endpoint = "set_device_tags")]
pub async fn set_device_tags(slug: String, node_id: i64, tags: String) -> Result<(), AppError> {
    use crate::data::devices;
    use crate::domain::role::Permission;
    use crate::domain::tags::shard_tag;
    use crate::error::fail;
    use crate::headscale::NodeId;
    let ctx = Ctx::new(&slug).await?;
    // Tags give a device to the tenant instead of its member: device managers only.
    if !ctx.scope.role().allows(Permission::ManageDevices) {
        let _ = ctx.device(node_id).await?;
        return Err(fail(AppError::Forbidden));
    }
    let (device, client) = ctx.changeable(node_id).await?;
    let mut shard_tags = Vec::new();
    for t in tags
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        let t = shard_tag(ctx.code(), t).map_err(|m| fail(AppError::Invalid(m)))?;
        if !shard_tags.contains(&t) {
            shard_tags.push(t);
        }
    }
    if shard_tags.is_empty() {
        return Err(fail(AppError::Invalid(
            "Give at least one tag, like tag:server.".into(),
        )));
    }
    shard_tags.sort();
    let shard = ctx.placed()?.clone();
    let node = client
        .set_tags(NodeId(node_id as u64), &shard_tags)
        .await
        .map_err(shard_error)?;
    let after: Vec<String> = node
        .tags
        .iter()
        .map(|t| crate::domain::tags::tenant_tag(ctx.code(), t).unwrap_or_else(|| t.clone()))
        .collect();
    let event = Event::new(
        "device.tags_set",
        &device.name,
        serde_json::json!({ "node_id": node_id, "before": device.tags, "after": after }),
    );
    devices::write_through(&ctx.state.pool, &ctx.scope, shard.shard_id, &node, &event)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, node_id, tags = ?shard_tags, "device tags set");
    leptos_axum::redirect(&format!("/t/{slug}/devices/{node_id}?done=tags"));
    Ok(())
}
