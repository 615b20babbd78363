//! `FleetSim`: a SIMULATED Headscale fleet for the fleet sync benchmark, not Headscale.
//!
//! One axum listener on 127.0.0.1 answers for every virtual shard under a path prefix of
//! its own (`/s/<n>`): `ShardClient` keeps a path in its base URL and puts `/version` and
//! `/api/v1/…` under it. Each shard answers what the sync reads, in the JSON Headscale
//! v0.29.2 sends (grpc-gateway protojson, as `app::headscale::types` parses it):
//! `GET /version`, `GET /api/v1/node`, `GET /api/v1/preauthkey`, and `GET|POST
//! /api/v1/user` (members' users), with the shard's own bearer API key.
//!
//! A shard holds several tenants; their nodes belong to users `<code>.<member>`, some
//! are tagged `tag:<code>--server` (subnet routers), and a few belong to a user of no
//! tenant (orphans). `churn` changes a share of every shard's nodes between two passes:
//! nodes going online or offline, appearing, disappearing and being renamed.
//!
//! It runs on a thread and a current-thread runtime of its own, named `fleet-sim`, so the
//! benchmark can tell its CPU from the portal's; its state is compact and every answer
//! is rendered when asked, as a real shard does, so it adds little to the process's
//! memory.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What Headscale v0.29.2 reports on `/version`.
const VERSION: &str = "0.29.2";
/// ListNodes shows tagged nodes as owned by this pseudo-user
/// (hscontrol/types/users.go `TaggedDevicesUserID`).
const TAGGED_DEVICES_USER_ID: u64 = 2_147_455_555;
/// The user of no tenant that owns the orphan nodes.
const LEGACY_USER: &str = "legacy-admin";
/// Seconds of simulated time between two passes (the portal's default sync interval).
const PASS_SECONDS: i64 = 15;

/// The fleet's shape.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub shards: usize,
    pub nodes_per_shard: usize,
    pub tenants_per_shard: usize,
    pub members_per_tenant: usize,
    /// Share of nodes online at the start.
    pub online_share: f64,
    pub seed: u64,
}

/// What one `churn` changed, over the whole fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Churn {
    pub went_online: u64,
    pub went_offline: u64,
    pub appeared: u64,
    pub disappeared: u64,
    pub renamed: u64,
}

impl Churn {
    pub fn nodes_changed(&self) -> u64 {
        self.went_online + self.went_offline + self.appeared + self.disappeared + self.renamed
    }
}

/// A running simulated fleet. Dropping it stops the server.
pub struct FleetSim {
    base: String,
    fleet: Arc<Fleet>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FleetSim {
    /// Name of the thread the simulator runs on (`/proc/self/task/*/comm`).
    pub const THREAD_NAME: &'static str = "fleet-sim";

    /// Builds the fleet and starts answering on an ephemeral port.
    pub fn start(config: &FleetConfig) -> std::io::Result<FleetSim> {
        let fleet = Arc::new(Fleet::new(config));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = fleet.clone();
        let thread = std::thread::Builder::new()
            .name(Self::THREAD_NAME.into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(listener.local_addr());
                    let _ = axum::serve(listener, router(served))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        let addr = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the simulator thread ended before listening"))??;
        Ok(FleetSim {
            base: format!("http://{addr}"),
            fleet,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn shards(&self) -> usize {
        self.fleet.shards.len()
    }

    /// The API URL of shard `n`, as an operator would store it.
    pub fn api_url(&self, n: usize) -> String {
        format!("{}/s/{n}", self.base)
    }

    pub fn api_key(&self, n: usize) -> String {
        self.fleet.shard(n).api_key.clone()
    }

    /// The codes of the tenants whose nodes shard `n` holds.
    pub fn tenant_codes(&self, n: usize) -> Vec<String> {
        self.fleet.shard(n).tenants.clone()
    }

    /// Nodes on the fleet now.
    pub fn nodes(&self) -> usize {
        (0..self.shards())
            .map(|n| self.fleet.shard(n).nodes.len())
            .sum()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.fleet.requests.load(Ordering::Relaxed)
    }

    /// Moves every shard's clock one sync interval on and changes `share` of its nodes
    /// (at least one node per shard when `share > 0`): in every five changes two nodes go
    /// online or offline, one appears, one disappears and one is renamed.
    pub fn churn(&self, share: f64) -> Churn {
        let mut total = Churn::default();
        for n in 0..self.shards() {
            let mut shard = self.fleet.shard(n);
            shard.clock += PASS_SECONDS;
            let changes = if share > 0.0 {
                ((shard.nodes.len() as f64 * share).round() as usize).max(1)
            } else {
                0
            };
            for i in 0..changes {
                match i % 5 {
                    0 | 1 => {
                        if shard.toggle_random() {
                            total.went_online += 1;
                        } else {
                            total.went_offline += 1;
                        }
                    }
                    2 => {
                        shard.appear();
                        total.appeared += 1;
                    }
                    3 => {
                        shard.disappear_random();
                        total.disappeared += 1;
                    }
                    _ => {
                        shard.rename_random();
                        total.renamed += 1;
                    }
                }
            }
        }
        total
    }
}

impl Drop for FleetSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ----------------------------------------------------------------- the fleet --

struct Fleet {
    shards: Vec<Mutex<SimShard>>,
    requests: AtomicU64,
}

impl Fleet {
    fn new(config: &FleetConfig) -> Fleet {
        Fleet {
            shards: (0..config.shards)
                .map(|n| Mutex::new(SimShard::new(n, config)))
                .collect(),
            requests: AtomicU64::new(0),
        }
    }

    fn shard(&self, n: usize) -> MutexGuard<'_, SimShard> {
        self.shards[n].lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct SimUser {
    id: u64,
    name: String,
    /// Index of the user's tenant on the shard; `None` for the legacy user.
    tenant: Option<usize>,
    created: i64,
}

struct SimKey {
    id: u64,
    /// 12 characters, as Headscale 0.28+ shows before `-***`.
    prefix: String,
    /// Index into the shard's users; `None` for a tagged key.
    user: Option<usize>,
    tenant: usize,
    reusable: bool,
    used: bool,
    created: i64,
    expires: i64,
}

#[derive(Clone, Copy)]
enum Owner {
    User(usize),
    /// Tagged `tag:<code>--server` of the tenant at this index.
    Tagged(usize),
}

struct SimNode {
    id: u64,
    owner: Owner,
    hostname: String,
    given_name: String,
    online: bool,
    last_seen: i64,
    created: i64,
    /// Index into the shard's keys; `None`: registered interactively (OIDC).
    key: Option<usize>,
    renames: u32,
    /// Seeds the node's machine, node and disco keys.
    noise: u64,
}

struct SimShard {
    api_key: String,
    tenants: Vec<String>,
    users: Vec<SimUser>,
    keys: Vec<SimKey>,
    /// Ordered by id, as Headscale lists them.
    nodes: Vec<SimNode>,
    /// Index into `users` of the user of no tenant.
    legacy_user: usize,
    next_node_id: u64,
    members_per_tenant: usize,
    online_share: f64,
    /// Seconds since the fleet's epoch (`epoch()`); churn moves it.
    clock: i64,
    rng: StdRng,
}

/// 2026-11-22T00:00:00Z: when the simulated fleet's shards were set up.
fn epoch() -> OffsetDateTime {
    time::macros::datetime!(2026-11-22 00:00 UTC)
}

impl SimShard {
    fn new(index: usize, config: &FleetConfig) -> SimShard {
        let mut rng = StdRng::seed_from_u64(config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
        // Tenant codes `s<shard><letter>`: valid codes (`[a-z][a-z0-9]{3,7}`), unique.
        let tenants: Vec<String> = (0..config.tenants_per_shard)
            .map(|t| format!("s{index:04}{}", tenant_letter(t)))
            .collect();
        let mut users = Vec::new();
        for (t, code) in tenants.iter().enumerate() {
            for m in 0..config.members_per_tenant {
                users.push(SimUser {
                    id: users.len() as u64 + 1,
                    name: format!("{code}.member{m:02}"),
                    tenant: Some(t),
                    created: 60 + users.len() as i64,
                });
            }
        }
        let legacy_user = users.len();
        users.push(SimUser {
            id: users.len() as u64 + 1,
            name: LEGACY_USER.into(),
            tenant: None,
            created: 30,
        });
        // Per tenant: a reusable key for the members' devices, two used single-use keys,
        // and a reusable tagged key for the tenant's servers.
        let mut keys = Vec::new();
        for t in 0..tenants.len() {
            let first_member = t * config.members_per_tenant;
            for (user, reusable) in [
                (Some(first_member), true),
                (Some(first_member), false),
                (Some(first_member + 1), false),
                (None, true),
            ] {
                let id = keys.len() as u64 + 1;
                keys.push(SimKey {
                    id,
                    prefix: format!("k{index:05}x{id:05}"),
                    user,
                    tenant: t,
                    reusable,
                    used: true,
                    created: 120 + id as i64,
                    expires: 120 + id as i64 + 90 * 86_400,
                });
            }
        }
        let mut shard = SimShard {
            api_key: format!("hskey-api-sim{index:09}-{:032x}", rng.gen::<u128>()),
            tenants,
            users,
            keys,
            nodes: Vec::with_capacity(config.nodes_per_shard + config.nodes_per_shard / 50),
            legacy_user,
            next_node_id: 1,
            members_per_tenant: config.members_per_tenant,
            online_share: config.online_share,
            clock: 3_600,
            rng,
        };
        for i in 0..config.nodes_per_shard {
            let node = shard.make_node(i);
            shard.nodes.push(node);
        }
        shard
    }

    /// The `i`-th node of the shard: tenants in turn; every 10th a tagged server, every
    /// 100th the legacy user's (an orphan); the others spread over the members.
    fn make_node(&mut self, i: usize) -> SimNode {
        let id = self.next_node_id;
        self.next_node_id += 1;
        let tenant = i % self.tenants.len();
        let member = (i / self.tenants.len()) % self.members_per_tenant;
        let (owner, key, kind) = if i % 100 == 99 {
            (Owner::User(self.legacy_user), None, "legacy")
        } else if i % 10 == 3 {
            (Owner::Tagged(tenant), Some(tenant * 4 + 3), "server")
        } else {
            let user = tenant * self.members_per_tenant + member;
            let key = if i.is_multiple_of(7) {
                None
            } else {
                Some(tenant * 4)
            };
            (Owner::User(user), key, "laptop")
        };
        let created = 600 + id as i64 * 7;
        let online = self.rng.gen_bool(self.online_share);
        SimNode {
            id,
            owner,
            hostname: format!("{kind}-{id}"),
            given_name: format!("{kind}-{id}"),
            online,
            last_seen: self.clock - self.rng.gen_range(0..3_000),
            created: created.min(self.clock),
            key,
            renames: 0,
            noise: self.rng.gen(),
        }
    }

    fn random_node(&mut self) -> usize {
        self.rng.gen_range(0..self.nodes.len())
    }

    /// Returns whether the node went online.
    fn toggle_random(&mut self) -> bool {
        let i = self.random_node();
        let clock = self.clock;
        let node = &mut self.nodes[i];
        node.online = !node.online;
        // Headscale moves `lastSeen` when a node connects or disconnects.
        node.last_seen = clock;
        node.online
    }

    fn appear(&mut self) {
        let i = self.rng.gen_range(0..self.nodes.len().max(1));
        let mut node = self.make_node(i);
        node.created = self.clock;
        node.last_seen = self.clock;
        node.online = true;
        self.nodes.push(node);
    }

    fn disappear_random(&mut self) {
        if !self.nodes.is_empty() {
            let i = self.random_node();
            self.nodes.remove(i);
        }
    }

    fn rename_random(&mut self) {
        let i = self.random_node();
        let node = &mut self.nodes[i];
        node.renames += 1;
        node.given_name = format!("{}-r{}", node.hostname, node.renames);
    }

    fn tag(&self, tenant: usize) -> String {
        format!("tag:{}--server", self.tenants[tenant])
    }

    fn user_json(&self, user: usize) -> UserJson {
        let u = &self.users[user];
        let member = u.name.split_once('.').map_or(u.name.as_str(), |(_, m)| m);
        UserJson {
            id: u.id.to_string(),
            name: u.name.clone(),
            created_at: timestamp(u.created, u.id),
            display_name: member.to_string(),
            email: match u.tenant {
                Some(t) => format!("{member}@{}.example.com", self.tenants[t]),
                None => String::new(),
            },
            provider_id: String::new(),
            provider: String::new(),
            profile_pic_url: String::new(),
        }
    }

    fn key_json(&self, key: usize) -> KeyJson {
        let k = &self.keys[key];
        KeyJson {
            user: k.user.map(|u| self.user_json(u)),
            id: k.id.to_string(),
            key: format!("hskey-auth-{}-***", k.prefix),
            reusable: k.reusable,
            ephemeral: false,
            used: k.used,
            expiration: timestamp(k.expires, 0),
            created_at: timestamp(k.created, k.id),
            acl_tags: if k.user.is_none() {
                vec![self.tag(k.tenant)]
            } else {
                Vec::new()
            },
        }
    }

    fn node_json(&self, node: &SimNode) -> NodeJson {
        let (user, tags, routes) = match node.owner {
            Owner::User(u) => (self.user_json(u), Vec::new(), Vec::new()),
            Owner::Tagged(t) => (
                tagged_devices_user(),
                vec![self.tag(t)],
                vec![format!("10.{}.{}.0/24", t + 1, node.id % 250)],
            ),
        };
        let tagged = !tags.is_empty();
        NodeJson {
            id: node.id.to_string(),
            machine_key: format!("mkey:{}", hex_key(node.noise, 1)),
            node_key: format!("nodekey:{}", hex_key(node.noise, 2)),
            disco_key: format!("discokey:{}", hex_key(node.noise, 3)),
            ip_addresses: [
                format!("100.64.{}.{}", node.id / 256, node.id % 256),
                format!("fd7a:115c:a1e0::{:x}", node.id),
            ],
            name: node.hostname.clone(),
            user,
            last_seen: Some(timestamp(node.last_seen, node.noise)),
            // Members' devices log in again after 180 days; tagged ones never expire.
            expiry: (!tagged).then(|| timestamp(node.created + 180 * 86_400, 0)),
            pre_auth_key: node.key.map(|k| self.key_json(k)),
            created_at: timestamp(node.created, node.noise >> 7),
            register_method: if node.key.is_some() {
                "REGISTER_METHOD_AUTH_KEY"
            } else {
                "REGISTER_METHOD_OIDC"
            },
            given_name: node.given_name.clone(),
            online: node.online,
            approved_routes: routes.clone(),
            available_routes: routes.clone(),
            subnet_routes: routes,
            tags,
        }
    }

    fn create_user(&mut self, new: NewUserJson) -> UserJson {
        let id = self.users.iter().map(|u| u.id).max().unwrap_or(0) + 1;
        let tenant = new
            .name
            .split_once('.')
            .and_then(|(code, _)| self.tenants.iter().position(|t| t == code));
        self.users.push(SimUser {
            id,
            name: new.name,
            tenant,
            created: self.clock,
        });
        self.user_json(self.users.len() - 1)
    }
}

fn tenant_letter(t: usize) -> String {
    // a..z, then za..zz: enough tenants per shard for any benchmark.
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if t < 26 {
        (letters[t] as char).to_string()
    } else {
        format!("z{}", letters[(t - 26) % 26] as char)
    }
}

/// 64 hex digits, as Headscale shows a public key.
fn hex_key(noise: u64, salt: u64) -> String {
    let mut x = noise ^ salt.wrapping_mul(0xA076_1D64_78BD_642F);
    (0..4)
        .map(|_| {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// RFC 3339 with nanoseconds, as Go writes it: `seconds` after the epoch, `noise`
/// picking the sub-second part.
fn timestamp(seconds: i64, noise: u64) -> String {
    let t = epoch()
        + time::Duration::seconds(seconds)
        + time::Duration::nanoseconds((noise % 1_000_000_000) as i64);
    t.format(&Rfc3339).unwrap_or_default()
}

fn tagged_devices_user() -> UserJson {
    UserJson {
        id: TAGGED_DEVICES_USER_ID.to_string(),
        name: "tagged-devices".into(),
        created_at: "0001-01-01T00:00:00Z".into(),
        display_name: "Tagged Devices".into(),
        email: String::new(),
        provider_id: String::new(),
        provider: String::new(),
        profile_pic_url: String::new(),
    }
}

// ------------------------------------------------------------ wire shapes --

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserJson {
    id: String,
    name: String,
    created_at: String,
    display_name: String,
    email: String,
    provider_id: String,
    provider: String,
    profile_pic_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    user: Option<UserJson>,
    id: String,
    key: String,
    reusable: bool,
    ephemeral: bool,
    used: bool,
    expiration: String,
    created_at: String,
    acl_tags: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeJson {
    id: String,
    machine_key: String,
    node_key: String,
    disco_key: String,
    ip_addresses: [String; 2],
    name: String,
    user: UserJson,
    last_seen: Option<String>,
    expiry: Option<String>,
    pre_auth_key: Option<KeyJson>,
    created_at: String,
    register_method: &'static str,
    given_name: String,
    online: bool,
    approved_routes: Vec<String>,
    available_routes: Vec<String>,
    subnet_routes: Vec<String>,
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct NewUserJson {
    name: String,
}

// ------------------------------------------------------------------ server --

fn router(fleet: Arc<Fleet>) -> Router {
    Router::new()
        .route("/s/{shard}/version", get(version))
        .route("/s/{shard}/api/v1/node", get(list_nodes))
        .route("/s/{shard}/api/v1/preauthkey", get(list_pre_auth_keys))
        .route("/s/{shard}/api/v1/user", get(list_users).post(create_user))
        .fallback(|| async { grpc_error(StatusCode::NOT_FOUND, 5, "Not Found") })
        .with_state(fleet)
}

fn grpc_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message, "details": [] });
    (status, axum::Json(body)).into_response()
}

fn json_bytes(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response()
}

/// Why a request gets no answer from a shard.
enum Refused {
    NoSuchShard,
    /// Headscale answers a missing or wrong API key with a plain-text 401.
    Unauthorized,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NoSuchShard => grpc_error(StatusCode::NOT_FOUND, 5, "Not Found"),
            Refused::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
        }
    }
}

/// The shard, if the path names one and the request carries its API key.
fn authorized<'a>(
    fleet: &'a Fleet,
    shard: usize,
    headers: &HeaderMap,
) -> Result<MutexGuard<'a, SimShard>, Refused> {
    fleet.requests.fetch_add(1, Ordering::Relaxed);
    if shard >= fleet.shards.len() {
        return Err(Refused::NoSuchShard);
    }
    let guard = fleet.shard(shard);
    let expected = format!("Bearer {}", guard.api_key);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return Err(Refused::Unauthorized);
    }
    Ok(guard)
}

async fn version(State(fleet): State<Arc<Fleet>>, Path(shard): Path<usize>) -> Response {
    fleet.requests.fetch_add(1, Ordering::Relaxed);
    if shard >= fleet.shards.len() {
        return Refused::NoSuchShard.into_response();
    }
    let body = serde_json::json!({
        "version": VERSION,
        "commit": "fleet-sim",
        "buildTime": "2026-11-20T00:00:00Z",
        "go": "go1.26.0",
        "dirty": false,
    });
    axum::Json(body).into_response()
}

async fn list_nodes(
    State(fleet): State<Arc<Fleet>>,
    Path(shard): Path<usize>,
    headers: HeaderMap,
) -> Response {
    let shard = match authorized(&fleet, shard, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    #[derive(Serialize)]
    struct Nodes {
        nodes: Vec<NodeJson>,
    }
    let nodes = Nodes {
        nodes: shard.nodes.iter().map(|n| shard.node_json(n)).collect(),
    };
    drop(shard);
    json_bytes(serde_json::to_vec(&nodes).unwrap_or_default())
}

async fn list_pre_auth_keys(
    State(fleet): State<Arc<Fleet>>,
    Path(shard): Path<usize>,
    headers: HeaderMap,
) -> Response {
    let shard = match authorized(&fleet, shard, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Keys {
        pre_auth_keys: Vec<KeyJson>,
    }
    let keys = Keys {
        pre_auth_keys: (0..shard.keys.len()).map(|k| shard.key_json(k)).collect(),
    };
    drop(shard);
    json_bytes(serde_json::to_vec(&keys).unwrap_or_default())
}

async fn list_users(
    State(fleet): State<Arc<Fleet>>,
    Path(shard): Path<usize>,
    headers: HeaderMap,
) -> Response {
    let shard = match authorized(&fleet, shard, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let users: Vec<UserJson> = (0..shard.users.len()).map(|u| shard.user_json(u)).collect();
    drop(shard);
    json_bytes(serde_json::to_vec(&serde_json::json!({ "users": users })).unwrap_or_default())
}

async fn create_user(
    State(fleet): State<Arc<Fleet>>,
    Path(shard): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shard = match authorized(&fleet, shard, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Ok(new) = serde_json::from_slice::<NewUserJson>(&body) else {
        return grpc_error(StatusCode::BAD_REQUEST, 3, "invalid request body");
    };
    if shard.users.iter().any(|u| u.name == new.name) {
        return grpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "creating user: constraint failed: UNIQUE constraint failed: users.name",
        );
    }
    let user = shard.create_user(new);
    drop(shard);
    axum::Json(serde_json::json!({ "user": user })).into_response()
}
