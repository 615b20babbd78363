//! The background sync of shards into Postgres, against real parts: fresh databases
//! (`#[sqlx::test]`, written through the application role, so row-level security is in
//! force), real Headscale shards and real tailscaled clients started through
//! dev/lib/headscale.sh and dev/lib/tailscale.sh.
//!
//! Environment (defaults suit dev/test):
//! - `TEST_HS_BIN`: the headscale binary (default `$PORTAL_CACHE/bin/headscale`,
//!   `PORTAL_CACHE` defaulting to `~/.cache/hsportal`); tailscaled and tailscale come
//!   from `$PORTAL_CACHE/bin` as dev/lib/tailscale.sh finds them.
//! - `TEST_HS_VERSION`: the version that binary reports (default 0.29.2).
//! - `TEST_HS028_BIN`, `TEST_HS028_VERSION`: the newest Headscale 0.28 (dev/test builds
//!   it with `ensure_headscale_version 0.28.x`) and its version (default 0.28.0).
//! - `TEST_SYNC_HTTP_PORT`, `TEST_SYNC_GRPC_PORT`, `TEST_SYNC_METRICS_PORT`: the first of
//!   6 consecutive ports each for the shards these tests start (defaults 18480, 28840,
//!   19480).
//! - `DATABASE_URL` (owner role) as for every `sqlx::test`; the application role from
//!   `TEST_APP_DB_USER` / `TEST_APP_DB_PASSWORD` (default `portal_app`).

mod common;

use common::stack::Stack;

use app::data::secret::SecretBox;
use app::data::shards::{self, NewShard};
use app::data::sync::{
    apply_snapshot, claim_next_due, mark_due, record_failure, release_leases, ShardClaim, Snapshot,
    SyncCounts, SyncError, SyncTiming,
};
use app::headscale::{
    NewPreAuthKey, NewUser, Node, PreAuthKey, ShardClient, ShardClientOptions, UserId,
};
use serde_json::json;
use server::jobs::sync::{SyncOutcome, SyncReport, SyncSettings, SyncWorker};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

// ------------------------------------------------------------------ fixtures --

const SECRET_KEY: [u8; 32] = [7u8; 32];

fn secrets() -> Arc<SecretBox> {
    Arc::new(SecretBox::new(&SECRET_KEY).expect("secret key"))
}

/// The test database as the application role, as the portal runs.
fn app_pool(owner: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(6)
        .connect_lazy_with(common::app_role_options(owner))
}

/// A sync that notices things within about a second, and gives up on a dead shard fast.
fn fast_settings() -> SyncSettings {
    let mut s = SyncSettings::new(Duration::from_secs(1), 4);
    s.sync_timeout = Duration::from_secs(20);
    s.lease = Duration::from_secs(30);
    s.shutdown_grace = Duration::from_secs(5);
    s.client_options = ShardClientOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 1,
        retry_backoff: Duration::from_millis(100),
        ..ShardClientOptions::default()
    };
    s
}

/// Tenants acme (`t7k2`) and globex (`g4x9`); returns their ids.
async fn seed_tenants(owner: &PgPool) -> (Uuid, Uuid) {
    common::seed_tenants(owner).await;
    let id = |slug: &'static str| async move {
        sqlx::query_scalar::<_, Uuid>("select id from tenant where slug = $1")
            .bind(slug)
            .fetch_one(owner)
            .await
            .expect("tenant id")
    };
    (id("acme").await, id("globex").await)
}

/// A shard row, its API key sealed as `portal shard upsert` seals it.
async fn seed_shard(pool: &PgPool, cluster_id: &str, url: &str, api_key: &str) -> Uuid {
    shards::upsert(
        pool,
        &SecretBox::new(&SECRET_KEY).expect("secret key"),
        &NewShard {
            cluster_id: cluster_id.into(),
            name: cluster_id.to_uppercase(),
            region: "local".into(),
            login_server_url: url.into(),
            api_url: url.into(),
            node_capacity: 100,
        },
        api_key,
    )
    .await
    .expect("seed shard")
}

async fn place(owner: &PgPool, tenant: Uuid, shard: Option<Uuid>) {
    sqlx::query("update tenant set shard_id = $2 where id = $1")
        .bind(tenant)
        .bind(shard)
        .execute(owner)
        .await
        .expect("place tenant");
}

/// Polls `check` until it gives a value; fails after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything logged on this test's thread (sqlx tests run on a current-thread
/// runtime, and the worker hands its subscriber to the tasks it spawns), at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Every row of the mirror and of the shard table, as text.
async fn all_sync_rows(owner: &PgPool) -> String {
    sqlx::query_scalar(
        "select coalesce(string_agg(t, E'\\n'), '') from (
           select row_to_json(n)::text as t from node n
           union all select row_to_json(k)::text from pre_auth_key k
           union all select row_to_json(i)::text from node_online_interval i
           union all select row_to_json(s)::text from shard s) rows",
    )
    .fetch_one(owner)
    .await
    .expect("dump rows")
}

/// The secret part of a Headscale key (`hskey-api-<prefix>-<secret>`): the prefix alone
/// is meant to be shown, the rest never.
fn secret_part(key: &str) -> &str {
    let rest = key
        .strip_prefix("hskey-api-")
        .or_else(|| key.strip_prefix("hskey-auth-"))
        .expect("a Headscale key");
    let secret = &rest[13..];
    assert!(secret.len() >= 16, "expected a long secret part in the key");
    secret
}

fn assert_no_secret(haystack: &str, secret: &str, place: &str) {
    assert!(
        !haystack.contains(secret),
        "a key's secret appears in {place}"
    );
    assert!(
        !haystack.contains(secret_part(secret)),
        "a key's secret part appears in {place}"
    );
}

#[derive(sqlx::FromRow, Debug)]
struct NodeRow {
    node_id: i64,
    tenant_id: Option<Uuid>,
    orphan_reason: Option<String>,
    user_name: Option<String>,
    tags: Vec<String>,
    online: bool,
    register_method: String,
    ip_count: i32,
    removed_at: Option<OffsetDateTime>,
}

async fn node_by_name(owner: &PgPool, shard: Uuid, name: &str) -> Option<NodeRow> {
    sqlx::query_as(
        "select node_id, tenant_id, orphan_reason, user_name, tags, online,
                register_method, coalesce(cardinality(ip_addresses), 0) as ip_count, removed_at
           from node where shard_id = $1 and name = $2",
    )
    .bind(shard)
    .bind(name)
    .fetch_optional(owner)
    .await
    .expect("node row")
}

#[derive(sqlx::FromRow, Debug, Clone)]
struct IntervalRow {
    tenant_id: Option<Uuid>,
    started_at: OffsetDateTime,
    ended_at: Option<OffsetDateTime>,
}

async fn intervals(owner: &PgPool, shard: Uuid, node_id: i64) -> Vec<IntervalRow> {
    sqlx::query_as(
        "select tenant_id, started_at, ended_at from node_online_interval
          where shard_id = $1 and node_id = $2 order by id",
    )
    .bind(shard)
    .bind(node_id)
    .fetch_all(owner)
    .await
    .expect("intervals")
}

#[derive(sqlx::FromRow, Debug)]
struct ShardState {
    health: String,
    headscale_version: Option<String>,
    last_sync_at: Option<OffsetDateTime>,
    last_sync_attempt_at: Option<OffsetDateTime>,
    last_sync_error: Option<String>,
    last_sync_latency_ms: Option<i32>,
    consecutive_failures: i32,
    next_sync_at: OffsetDateTime,
    sync_lease_owner: Option<Uuid>,
}

async fn shard_state(owner: &PgPool, shard: Uuid) -> ShardState {
    sqlx::query_as(
        "select health, headscale_version, last_sync_at, last_sync_attempt_at, last_sync_error,
                last_sync_latency_ms, consecutive_failures, next_sync_at, sync_lease_owner
           from shard where id = $1",
    )
    .bind(shard)
    .fetch_one(owner)
    .await
    .expect("shard state")
}

fn synced(report: &SyncReport) -> SyncCounts {
    match &report.outcome {
        SyncOutcome::Synced(counts) => *counts,
        other => panic!("sync of {} did not succeed: {other:?}", report.cluster_id),
    }
}

/// Runs every due shard once, after making `shard` due.
async fn sync_now(worker: &SyncWorker, pool: &PgPool, shard: Uuid) -> SyncCounts {
    assert!(mark_due(pool, shard).await.expect("mark due"));
    let reports = worker.run_due_once().await.expect("sync");
    let report = reports
        .iter()
        .find(|r| r.shard_id == shard)
        .expect("the shard was synced");
    synced(report)
}

// ------------------------------------------------------- real shard and device --

/// The shard's nodes once `count` of them are online and nothing has changed for 3 s.
/// Headscale updates `lastSeen` at every connect, and a fresh tailscaled reconnects
/// once a few seconds after `tailscale up` returns; a test that expects a quiet shard
/// waits that out.
async fn settled_nodes(client: &ShardClient, count: usize) -> Vec<Node> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Option<(Vec<Node>, Instant)> = None;
    loop {
        let nodes = client.list_nodes().await.expect("list nodes");
        let ready = nodes.len() == count && nodes.iter().all(|n| n.online);
        match last {
            Some((ref before, since)) if ready && *before == nodes => {
                if since.elapsed() >= Duration::from_secs(3) {
                    return nodes;
                }
            }
            _ => last = Some((nodes, Instant::now())),
        }
        assert!(
            Instant::now() < deadline,
            "the shard's nodes did not settle: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A member's device joins a real shard with a key minted through `ShardClient`; the
/// background worker mirrors it within about a sync interval, gives it to the member's
/// tenant, opens an online interval, and closes it once Headscale sees the device go.
/// Neither the shard's API key nor the device's pre-auth key reaches a log or a table.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_members_device_is_mirrored_with_its_online_interval(owner: PgPool) {
    let expected = std::env::var("TEST_HS_VERSION").unwrap_or_else(|_| "0.29.2".into());
    device_lifecycle(owner, "hs-sync-a", 0, &Stack::headscale_bin(), &expected).await;
}

/// The same against the newest Headscale 0.28 (`TEST_HS028_BIN`, built by dev/test):
/// the client adapts to its API and the mirror comes out the same.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_members_device_on_a_headscale_028_shard_is_mirrored_alike(owner: PgPool) {
    let bin = std::env::var("TEST_HS028_BIN").expect(
        "TEST_HS028_BIN is not set: run the tests through dev/test, which builds Headscale 0.28",
    );
    let expected = std::env::var("TEST_HS028_VERSION").unwrap_or_else(|_| "0.28.0".into());
    device_lifecycle(owner, "hs-sync-f", 5, &bin, &expected).await;
}

async fn device_lifecycle(owner: PgPool, cluster_id: &str, slot: u16, bin: &str, expected: &str) {
    let (logs, _guard) = Logs::capture();
    let stack = Stack::new();
    let real = stack.start_shard_with(cluster_id, slot, bin).await;
    let pool = app_pool(&owner);
    let (acme, _globex) = seed_tenants(&owner).await;
    let shard = seed_shard(&pool, &real.cluster_id, &real.url, &real.api_key).await;
    place(&owner, acme, Some(shard)).await;
    seed_member(&owner, acme, "alice", "alice@acme.test").await;

    // The sync gives the member her user on the shard; the key is made for it.
    let sync = SyncWorker::new(pool.clone(), secrets(), fast_settings()).spawn();
    let alice_id: i64 = eventually(
        "alice's user on the shard",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar(
                "select headscale_user_id from shard_user where user_name = 't7k2.alice'",
            )
            .fetch_optional(&owner)
            .await
            .expect("shard user")
        },
    )
    .await;
    let client = real.client();
    let key = client
        .create_pre_auth_key(&NewPreAuthKey {
            user: Some(UserId(alice_id as u64)),
            reusable: false,
            ephemeral: false,
            expiration: OffsetDateTime::now_utc() + time::Duration::hours(1),
            acl_tags: vec![],
        })
        .await
        .expect("create pre-auth key");
    let prefix = key.pre_auth_key.prefix().expect("prefix").to_string();

    stack
        .join("alice", &real, key.secret.expose(), "alice-laptop")
        .await;
    let joined = Instant::now();

    let node = eventually(
        "the device online in the mirror",
        Duration::from_secs(15),
        || async {
            node_by_name(&owner, shard, "alice-laptop")
                .await
                .filter(|n| n.online)
        },
    )
    .await;
    eprintln!("mirrored online {:?} after tailscale up", joined.elapsed());
    assert_eq!(node.tenant_id, Some(acme));
    assert_eq!(node.orphan_reason, None);
    assert_eq!(node.user_name.as_deref(), Some("t7k2.alice"));
    assert!(node.tags.is_empty());
    assert_eq!(node.register_method, "auth_key");
    assert!(node.ip_count >= 1);
    let open = eventually("an open interval", Duration::from_secs(5), || async {
        let all = intervals(&owner, shard, node.node_id).await;
        (all.len() == 1 && all[0].ended_at.is_none()).then(|| all[0].clone())
    })
    .await;
    assert_eq!(open.tenant_id, Some(acme));

    // The key: its prefix only, used, the tenant's.
    let (key_tenant, key_prefix, used): (Option<Uuid>, Option<String>, bool) = eventually(
        "the used key in the mirror",
        Duration::from_secs(5),
        || async {
            sqlx::query_as(
                "select tenant_id, key_prefix, used from pre_auth_key
                  where shard_id = $1 and key_id = $2 and used",
            )
            .bind(shard)
            .bind(i64::try_from(key.pre_auth_key.id.0).expect("id"))
            .fetch_optional(&owner)
            .await
            .expect("key row")
        },
    )
    .await;
    assert_eq!(
        (key_tenant, key_prefix.as_deref(), used),
        (Some(acme), Some(prefix.as_str()), true)
    );

    let state = shard_state(&owner, shard).await;
    assert_eq!(state.health, "healthy");
    assert_eq!(state.headscale_version.as_deref(), Some(expected));
    assert!(state.last_sync_at.is_some() && state.last_sync_latency_ms.is_some());
    assert_eq!(state.last_sync_error, None);
    assert_eq!(state.consecutive_failures, 0);

    // The device goes away. Headscale marks a node offline about 10 s after its
    // connection drops (its disconnect grace period, measured on 0.29.2).
    stack.stop_daemon("alice").await;
    let stopped = Instant::now();
    let node = eventually(
        "the device offline in the mirror",
        Duration::from_secs(40),
        || async {
            node_by_name(&owner, shard, "alice-laptop")
                .await
                .filter(|n| !n.online)
        },
    )
    .await;
    eprintln!(
        "mirrored offline {:?} after stopping tailscaled",
        stopped.elapsed()
    );
    assert_eq!(node.removed_at, None, "offline, not removed");
    let all = intervals(&owner, shard, node.node_id).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let ended = all[0].ended_at.expect("the interval is closed");
    assert!(ended > all[0].started_at);
    assert!(
        ended - all[0].started_at >= time::Duration::seconds(5),
        "online for the seconds before the device stopped: {all:?}"
    );

    sync.shutdown().await;
    let logs = logs.text();
    assert!(
        logs.contains("shard synced") && logs.contains(cluster_id),
        "the capture works"
    );
    assert_no_secret(&logs, &real.api_key, "the logs");
    assert_no_secret(&logs, key.secret.expose(), "the logs");
    let rows = all_sync_rows(&owner).await;
    assert_no_secret(&rows, &real.api_key, "the mirror tables");
    assert_no_secret(&rows, key.secret.expose(), "the mirror tables");
}

/// Nodes that belong to no tenant of the shard are orphans, visible only to operators;
/// a tagged node follows its tags; a sync that finds nothing new writes no row; and a
/// node that changes tenant closes its interval and opens one for the new owner.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn orphans_are_flagged_and_an_unchanged_shard_costs_no_writes(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-sync-b", 1).await;
    let pool = app_pool(&owner);
    let (acme, globex) = seed_tenants(&owner).await;
    let shard = seed_shard(&pool, &real.cluster_id, &real.url, &real.api_key).await;
    place(&owner, acme, Some(shard)).await;
    // globex lives elsewhere (not placed at all here).

    let client = real.client();
    client
        .set_policy(
            r#"{"tagOwners":{"tag:t7k2--server":[],"tag:g4x9--db":[],"tag:other":[]},
                "acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#,
        )
        .await
        .expect("policy with the tags");
    let eve = client
        .create_user(&NewUser {
            name: "zz99.eve".into(),
            ..NewUser::default()
        })
        .await
        .expect("user of no tenant");
    let gina = client
        .create_user(&NewUser {
            name: "g4x9.gina".into(),
            ..NewUser::default()
        })
        .await
        .expect("user of a tenant elsewhere");
    let expiration = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let mint = |user, acl_tags: Vec<String>| NewPreAuthKey {
        user,
        reusable: false,
        ephemeral: false,
        expiration,
        acl_tags,
    };
    let eve_key = client
        .create_pre_auth_key(&mint(Some(eve.id), vec![]))
        .await
        .expect("eve's key");
    let tag_key = client
        .create_pre_auth_key(&mint(None, vec!["tag:t7k2--server".into()]))
        .await
        .expect("a tagged key");
    let gina_key = client
        .create_pre_auth_key(&mint(Some(gina.id), vec![]))
        .await
        .expect("gina's key");

    let (a, b) = tokio::join!(
        stack.join("eve", &real, eve_key.secret.expose(), "eve-box"),
        stack.join("srv", &real, tag_key.secret.expose(), "acme-server"),
    );
    let ((), ()) = (a, b);
    let nodes = settled_nodes(&client, 2).await;
    let server_id = nodes
        .iter()
        .find(|n| n.name == "acme-server")
        .expect("server node")
        .id;

    let worker = SyncWorker::new(pool.clone(), secrets(), fast_settings());
    let first = sync_now(&worker, &pool, shard).await;
    assert_eq!(first.nodes.inserted, 2, "{first:?}");
    assert_eq!(first.pre_auth_keys.inserted, 3, "{first:?}");
    assert_eq!(first.intervals_opened, 2);
    assert_eq!(first.orphan_nodes, 1);

    let eve_node = node_by_name(&owner, shard, "eve-box")
        .await
        .expect("eve-box");
    assert_eq!(eve_node.tenant_id, None);
    assert_eq!(eve_node.orphan_reason.as_deref(), Some("unknown_user"));
    let server = node_by_name(&owner, shard, "acme-server")
        .await
        .expect("acme-server");
    assert_eq!(
        server.tenant_id,
        Some(acme),
        "a tagged node follows its tags"
    );
    assert_eq!(server.user_name, None);
    assert_eq!(server.tags, vec!["tag:t7k2--server".to_string()]);
    let keys: HashMap<i64, (Option<Uuid>, Option<String>)> =
        sqlx::query_as::<_, (i64, Option<Uuid>, Option<String>)>(
            "select key_id, tenant_id, orphan_reason from pre_auth_key where shard_id = $1",
        )
        .bind(shard)
        .fetch_all(&owner)
        .await
        .expect("keys")
        .into_iter()
        .map(|(id, tenant, reason)| (id, (tenant, reason)))
        .collect();
    let key_id =
        |k: &app::headscale::CreatedPreAuthKey| i64::try_from(k.pre_auth_key.id.0).unwrap();
    assert_eq!(keys[&key_id(&tag_key)], (Some(acme), None));
    assert_eq!(keys[&key_id(&eve_key)], (None, Some("unknown_user".into())));
    assert_eq!(
        keys[&key_id(&gina_key)],
        (None, Some("tenant_not_on_shard".into())),
        "globex's names on a shard globex is not placed on"
    );

    // Nothing changed on the shard: nothing is written, not even an identical row.
    let versions = |table: &'static str| {
        let owner = owner.clone();
        async move {
            sqlx::query_scalar::<_, String>(&format!(
                "select string_agg(xmin::text || ':' || ctid::text, ',' order by ctid) from {table}"
            ))
            .fetch_one(&owner)
            .await
            .expect("row versions")
        }
    };
    let before = (
        versions("node").await,
        versions("pre_auth_key").await,
        versions("node_online_interval").await,
    );
    let second = sync_now(&worker, &pool, shard).await;
    assert_eq!(second.rows_written(), 0, "{second:?}");
    assert_eq!(
        (second.nodes.unchanged, second.pre_auth_keys.unchanged),
        (2, 3)
    );
    let after = (
        versions("node").await,
        versions("pre_auth_key").await,
        versions("node_online_interval").await,
    );
    assert_eq!(before, after, "no row version changed");

    // Row-level security: acme sees its server and its key, never the orphans; globex
    // nothing; operators everything.
    let seen = |tenant: Option<Uuid>, table: &'static str| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("tx");
            match tenant {
                Some(t) => {
                    sqlx::query("select set_config('app.tenant_id', $1, true)").bind(t.to_string())
                }
                None => sqlx::query("select set_config('app.operator', 'on', true)"),
            }
            .execute(&mut *tx)
            .await
            .expect("scope");
            let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
                .fetch_one(&mut *tx)
                .await
                .expect("count");
            n
        }
    };
    assert_eq!(seen(Some(acme), "node").await, 1);
    assert_eq!(seen(Some(acme), "pre_auth_key").await, 1);
    assert_eq!(seen(Some(acme), "node_online_interval").await, 1);
    assert_eq!(seen(Some(globex), "node").await, 0);
    assert_eq!(seen(Some(globex), "pre_auth_key").await, 0);
    assert_eq!(seen(None, "node").await, 2);
    assert_eq!(seen(None, "pre_auth_key").await, 3);
    let unscoped: i64 = sqlx::query_scalar("select count(*) from node")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(unscoped, 0, "no scope, no rows");

    // Tags of two tenants: an orphan; acme's interval ends, an orphan one begins.
    client
        .set_tags(
            server_id,
            &["tag:t7k2--server".to_string(), "tag:g4x9--db".to_string()],
        )
        .await
        .expect("mixed tags");
    let third = sync_now(&worker, &pool, shard).await;
    assert_eq!(
        (third.nodes.updated, third.nodes.unchanged),
        (1, 1),
        "{third:?}"
    );
    assert_eq!((third.intervals_closed, third.intervals_opened), (1, 1));
    let server = node_by_name(&owner, shard, "acme-server")
        .await
        .expect("acme-server");
    assert_eq!(server.tenant_id, None);
    assert_eq!(server.orphan_reason.as_deref(), Some("mixed_tenants"));
    let history = intervals(&owner, shard, server.node_id).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].tenant_id, Some(acme));
    assert!(history[0].ended_at.is_some());
    assert_eq!((history[1].tenant_id, history[1].ended_at), (None, None));

    client
        .set_tags(server_id, &["tag:other".to_string()])
        .await
        .expect("a tag of no tenant");
    client
        .delete_pre_auth_key(gina_key.pre_auth_key.id)
        .await
        .expect("delete gina's key");
    let fourth = sync_now(&worker, &pool, shard).await;
    assert_eq!(fourth.nodes.updated, 1, "{fourth:?}");
    assert_eq!(fourth.pre_auth_keys.removed, 1, "{fourth:?}");
    assert_eq!(
        (fourth.intervals_closed, fourth.intervals_opened),
        (0, 0),
        "an orphan staying an orphan keeps its interval"
    );
    let server = node_by_name(&owner, shard, "acme-server")
        .await
        .expect("acme-server");
    assert_eq!(server.orphan_reason.as_deref(), Some("unknown_tag"));
}

/// A shard that stops answering turns unhealthy at its first failed sync, with a
/// sentence saying why, and is retried with a growing pause; the other shard keeps
/// syncing every interval meanwhile. Started again, it recovers.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_dead_shard_backs_off_while_the_others_keep_syncing(owner: PgPool) {
    let (logs, _guard) = Logs::capture();
    let stack = Stack::new();
    let (alive, dying) = tokio::join!(
        stack.start_shard("hs-sync-c", 2),
        stack.start_shard("hs-sync-d", 3)
    );
    let pool = app_pool(&owner);
    seed_tenants(&owner).await;
    let alive_id = seed_shard(&pool, &alive.cluster_id, &alive.url, &alive.api_key).await;
    let dying_id = seed_shard(&pool, &dying.cluster_id, &dying.url, &dying.api_key).await;

    let sync = SyncWorker::new(pool.clone(), secrets(), fast_settings()).spawn();
    for id in [alive_id, dying_id] {
        eventually("both shards healthy", Duration::from_secs(10), || async {
            (shard_state(&owner, id).await.health == "healthy").then_some(())
        })
        .await;
    }

    stack.stop_shard(&dying).await;
    let failed = eventually(
        "the stopped shard unhealthy after two failures",
        Duration::from_secs(20),
        || async {
            let s = shard_state(&owner, dying_id).await;
            (s.consecutive_failures >= 2).then_some(s)
        },
    )
    .await;
    assert_eq!(failed.health, "unhealthy");
    let error = failed.last_sync_error.clone().expect("an error sentence");
    assert!(
        error.starts_with("Shard hs-sync-d could not be reached"),
        "{error}"
    );
    assert!(failed.last_sync_at.is_some(), "the last good sync is kept");
    // The pause doubles: after the n-th failure the next try is interval × 2^n away.
    let attempt = failed.last_sync_attempt_at.expect("attempted");
    let pause = (failed.next_sync_at - attempt).as_seconds_f64();
    let expected = 2f64.powi(failed.consecutive_failures);
    assert!(
        pause >= expected - 0.01 && pause < expected + 5.0,
        "pause {pause} s after {} failures",
        failed.consecutive_failures
    );

    // Meanwhile the live shard keeps its rhythm.
    let since = shard_state(&owner, alive_id)
        .await
        .last_sync_at
        .expect("synced");
    for _ in 0..2 {
        let last = shard_state(&owner, alive_id).await.last_sync_at;
        eventually(
            "the live shard synced again",
            Duration::from_secs(5),
            || async {
                let s = shard_state(&owner, alive_id).await;
                (s.last_sync_at > last && s.health == "healthy").then_some(())
            },
        )
        .await;
    }
    assert!(shard_state(&owner, alive_id).await.last_sync_at > Some(since));
    let dead = shard_state(&owner, dying_id).await;
    assert_eq!(dead.health, "unhealthy");
    assert!(
        dead.consecutive_failures <= failed.consecutive_failures + 1,
        "backing off, not retrying every interval: {} then {}",
        failed.consecutive_failures,
        dead.consecutive_failures
    );

    // Back up: the next try (made due now, as an operator's "sync now" would) heals it.
    stack.restart_shard(&dying).await;
    assert!(mark_due(&pool, dying_id).await.expect("mark due"));
    let healed = eventually(
        "the shard healthy again",
        Duration::from_secs(15),
        || async {
            let s = shard_state(&owner, dying_id).await;
            (s.health == "healthy").then_some(s)
        },
    )
    .await;
    assert_eq!(healed.consecutive_failures, 0);
    assert_eq!(healed.last_sync_error, None);

    sync.shutdown().await;
    let after = shard_state(&owner, alive_id).await;
    assert_eq!(after.sync_lease_owner, None, "no lease left behind");
    let logs = logs.text();
    assert!(
        logs.contains("shard sync failed") && logs.contains("hs-sync-d"),
        "the failure is logged"
    );
    for key in [&alive.api_key, &dying.api_key] {
        assert_no_secret(&logs, key, "the logs");
        assert_no_secret(&all_sync_rows(&owner).await, key, "the sync tables");
    }
}

// ------------------------------------------------------------ members' users --

/// A person with an email, a member of `tenant` (the handle is derived by the database).
async fn seed_member(owner: &PgPool, tenant: Uuid, subject: &str, email: &str) -> Uuid {
    let person = sqlx::query_scalar::<_, Uuid>(
        "insert into person (issuer, subject, email, display_name)
         values ('https://idp.test/', $1, $2, $1) returning id",
    )
    .bind(subject)
    .bind(email)
    .fetch_one(owner)
    .await
    .expect("seed person");
    sqlx::query(
        "insert into membership (tenant_id, person_id, role, source) values ($1, $2, 'member', 'portal')",
    )
    .bind(tenant)
    .bind(person)
    .execute(owner)
    .await
    .expect("seed membership");
    person
}

async fn shard_users(owner: &PgPool, shard: Uuid) -> Vec<(String, i64, bool)> {
    sqlx::query_as(
        "select user_name, headscale_user_id, created_by_portal from shard_user
          where shard_id = $1 order by user_name",
    )
    .bind(shard)
    .fetch_all(owner)
    .await
    .expect("shard users")
}

/// Every member of a tenant gets a Headscale user `<code>.<handle>` on the tenant's
/// shard: handles come from the email and are unique within the tenant; members of a
/// tenant on another shard get none here. Members added while the shard is down get
/// their user once it is back; reconciling again changes nothing, and a user found
/// already on the shard (a lost answer, a hand-made user) is adopted, not duplicated.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn members_get_their_own_user_on_the_tenants_shard(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-sync-e", 4).await;
    let pool = app_pool(&owner);
    let (acme, globex) = seed_tenants(&owner).await;
    let shard = seed_shard(&pool, &real.cluster_id, &real.url, &real.api_key).await;
    place(&owner, acme, Some(shard)).await;
    seed_member(&owner, acme, "alice", "alice@acme.test").await;
    // Same local part in another domain: a different member, a different handle.
    seed_member(&owner, acme, "alice2", "Alice@other.test").await;
    seed_member(&owner, acme, "ops", "ops+pager@acme.test").await;
    // Globex is not placed on this shard.
    seed_member(&owner, globex, "gina", "gina@globex.test").await;
    let handles: Vec<String> = sqlx::query_scalar(
        "select handle from membership where tenant_id = $1 order by created_at, handle",
    )
    .bind(acme)
    .fetch_all(&owner)
    .await
    .expect("handles");
    assert_eq!(handles, ["alice", "alice-2", "ops-pager"]);

    let worker = SyncWorker::new(pool.clone(), secrets(), fast_settings());
    assert!(mark_due(&pool, shard).await.expect("mark due"));
    let reports = worker.run_due_once().await.expect("sync");
    assert_eq!(reports[0].members.created, 3, "{:?}", reports[0]);
    let on_shard: Vec<String> = {
        let mut names: Vec<String> = real
            .client()
            .list_users()
            .await
            .expect("users")
            .into_iter()
            .map(|u| u.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(on_shard, ["t7k2.alice", "t7k2.alice-2", "t7k2.ops-pager"]);
    let recorded = shard_users(&owner, shard).await;
    assert_eq!(
        recorded.iter().map(|u| u.0.as_str()).collect::<Vec<_>>(),
        ["t7k2.alice", "t7k2.alice-2", "t7k2.ops-pager"]
    );
    assert!(recorded.iter().all(|u| u.2), "created by the portal");

    // Idempotent: a second pass creates and records nothing.
    assert!(mark_due(&pool, shard).await.expect("mark due"));
    let again = worker.run_due_once().await.expect("sync");
    assert_eq!(again[0].members, Default::default());

    // A member joins while the shard is down: the sync fails, nothing is recorded…
    stack.stop_shard(&real).await;
    seed_member(&owner, acme, "bob", "bob@acme.test").await;
    assert!(mark_due(&pool, shard).await.expect("mark due"));
    let down = worker.run_due_once().await.expect("sync");
    assert!(matches!(down[0].outcome, SyncOutcome::Failed { .. }));
    assert_eq!(shard_users(&owner, shard).await.len(), 3);
    // …and an operator creates one member's user by hand meanwhile (or an earlier
    // create's answer was lost): it must be adopted, not created twice.
    stack.restart_shard(&real).await;
    let by_hand = real
        .client()
        .create_user(&NewUser {
            name: "t7k2.bob".into(),
            ..NewUser::default()
        })
        .await
        .expect("create by hand");
    sqlx::query("delete from shard_user where user_name = 't7k2.ops-pager'")
        .execute(&owner)
        .await
        .expect("forget one record");
    assert!(mark_due(&pool, shard).await.expect("mark due"));
    let back = worker.run_due_once().await.expect("sync");
    assert!(matches!(back[0].outcome, SyncOutcome::Synced(_)));
    assert_eq!(back[0].members.created, 0, "{:?}", back[0]);
    assert_eq!(
        back[0].members.recorded, 2,
        "bob adopted, ops-pager re-recorded"
    );
    let recorded = shard_users(&owner, shard).await;
    assert_eq!(recorded.len(), 4);
    let bob = recorded.iter().find(|u| u.0 == "t7k2.bob").expect("bob");
    assert_eq!((bob.1, bob.2), (by_hand.id.0 as i64, false));
    assert_eq!(real.client().list_users().await.expect("users").len(), 4);

    // The tenant sees its own members' users, nobody else's.
    let mut tx = app::data::system_tx(&pool).await.expect("tx");
    sqlx::query(
        "select set_config('app.operator', '', true), set_config('app.tenant_id', $1, true)",
    )
    .bind(globex.to_string())
    .execute(&mut *tx)
    .await
    .expect("scope");
    let seen: i64 = sqlx::query_scalar("select count(*) from shard_user")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(seen, 0, "globex sees none of acme's shard users");
}

// ------------------------------------------------------------------- claims --

async fn seed_fake_shards(pool: &PgPool, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            seed_shard(
                pool,
                &format!("hs-fake-{i}"),
                "http://127.0.0.1:9",
                "hskey-api-fakefakefake-notarealkeyatallreally",
            )
            .await,
        );
    }
    ids
}

fn timing(interval: Duration) -> SyncTiming {
    SyncTiming::new(interval)
}

/// The claim's rules, step by step: a leased shard is not claimed again; a lease that
/// ran out (a crashed worker) is; the worker that lost its lease writes nothing; a
/// disabled shard is never claimed; leases are released at shutdown.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_shard_is_claimed_by_one_worker_until_its_lease_ends(owner: PgPool) {
    let pool = app_pool(&owner);
    let ids = seed_fake_shards(&pool, 2).await;
    let (a, b) = (ids[0], ids[1]);
    sqlx::query("update shard set status = 'disabled' where id = $1")
        .bind(b)
        .execute(&owner)
        .await
        .unwrap();
    let (w1, w2) = (Uuid::new_v4(), Uuid::new_v4());
    let lease = Duration::from_secs(60);

    let first = claim_next_due(&pool, w1, lease)
        .await
        .unwrap()
        .expect("due");
    assert_eq!(first.shard_id, a);
    assert_eq!(first.worker, w1);
    assert!(
        claim_next_due(&pool, w2, lease).await.unwrap().is_none(),
        "leased, and the other shard is disabled"
    );

    // w1 "crashes": its lease runs out, and w2 takes the shard over.
    sqlx::query("update shard set sync_lease_until = now() - interval '1 second' where id = $1")
        .bind(a)
        .execute(&owner)
        .await
        .unwrap();
    let second = claim_next_due(&pool, w2, lease)
        .await
        .unwrap()
        .expect("free again");
    assert_eq!(second.shard_id, a);

    // w1 comes back late: it may not write, neither a snapshot nor a failure.
    let t = timing(Duration::from_secs(15));
    assert!(matches!(
        apply_snapshot(&pool, &first, &Snapshot::default(), &t).await,
        Err(SyncError::LeaseLost)
    ));
    assert!(matches!(
        record_failure(&pool, &first, "Shard hs-fake-0 could not be reached", &t).await,
        Err(SyncError::LeaseLost)
    ));
    let state = shard_state(&owner, a).await;
    assert_eq!(state.health, "unknown");
    assert_eq!(state.sync_lease_owner, Some(w2));

    // w2 finishes: the lease is released and the shard is due an interval later.
    let counts = apply_snapshot(&pool, &second, &Snapshot::default(), &t)
        .await
        .unwrap();
    assert_eq!(counts, SyncCounts::default());
    let state = shard_state(&owner, a).await;
    assert_eq!(
        (state.health.as_str(), state.sync_lease_owner),
        ("healthy", None)
    );
    assert!(claim_next_due(&pool, w1, lease).await.unwrap().is_none());

    // "Sync now", then a shutdown in the middle: the lease is handed back at once.
    assert!(mark_due(&pool, a).await.unwrap());
    let third = claim_next_due(&pool, w1, lease)
        .await
        .unwrap()
        .expect("due now");
    assert_eq!(release_leases(&pool, w1).await.unwrap(), 1);
    assert!(matches!(
        apply_snapshot(&pool, &third, &Snapshot::default(), &t).await,
        Err(SyncError::LeaseLost)
    ));
    assert!(claim_next_due(&pool, w2, lease).await.unwrap().is_some());
}

/// Two workers, each with its own runtime and pool as two replicas would have, claim
/// and finish shards as fast as they can; no shard is ever held by both at once.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn two_workers_never_hold_the_same_shard_at_once(owner: PgPool) {
    let pool = app_pool(&owner);
    seed_fake_shards(&pool, 3).await;
    let options = common::app_role_options(&owner);
    let holders: Arc<Mutex<HashMap<Uuid, Uuid>>> = Arc::default();
    let overlaps = Arc::new(std::sync::atomic::AtomicU64::new(0));

    let replica = |holders: Arc<Mutex<HashMap<Uuid, Uuid>>>,
                   overlaps: Arc<std::sync::atomic::AtomicU64>| {
        let options = options.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .connect_with(options)
                    .await
                    .expect("replica pool");
                let me = Uuid::new_v4();
                // Interval zero: a finished shard is due again at once, the most contention.
                let t = timing(Duration::ZERO);
                let mut claims = 0u32;
                let deadline = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < deadline {
                    let Some(claim) = claim_next_due(&pool, me, Duration::from_secs(30))
                        .await
                        .expect("claim")
                    else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    claims += 1;
                    let before = holders.lock().unwrap().insert(claim.shard_id, me);
                    if before.is_some() {
                        overlaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    // Let go in the map before the lease, so a quick re-claim by the other
                    // worker is never mistaken for an overlap.
                    holders.lock().unwrap().remove(&claim.shard_id);
                    if !finish(&pool, &claim, &t, claims).await {
                        // Someone else took the shard while this worker held it.
                        overlaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                pool.close().await;
                claims
            })
        })
    };
    let one = replica(holders.clone(), overlaps.clone());
    let two = replica(holders.clone(), overlaps.clone());
    let (one, two) = (
        one.join().expect("replica 1"),
        two.join().expect("replica 2"),
    );
    assert_eq!(overlaps.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(
        one > 10 && two > 10,
        "both replicas worked: {one} and {two}"
    );
    eprintln!("claims: {one} and {two}, no overlap");
}

/// Finishes a claim, alternately as a success and as a failure; false if the lease was
/// no longer the worker's.
async fn finish(pool: &PgPool, claim: &ShardClaim, t: &SyncTiming, n: u32) -> bool {
    let mut t = *t;
    t.max_backoff = Duration::ZERO;
    let result = if n.is_multiple_of(2) {
        apply_snapshot(pool, claim, &Snapshot::default(), &t)
            .await
            .map(|_| ())
    } else {
        record_failure(pool, claim, "Shard could not be reached", &t)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => true,
        Err(SyncError::LeaseLost) => false,
        Err(e) => panic!("finishing a claim: {e}"),
    }
}

// ---------------------------------------------------------- interval rules --

/// A node as a v0.29.2 server lists it.
fn node(id: u64, user: Option<&str>, tags: &[&str], online: bool) -> Node {
    serde_json::from_value(json!({
        "id": id.to_string(),
        "name": format!("host-{id}"),
        "givenName": format!("host-{id}"),
        "user": user.map(|u| json!({"id": "1", "name": u})),
        "ipAddresses": [format!("100.64.0.{id}"), format!("fd7a:115c:a1e0::{id}")],
        "online": online,
        "lastSeen": "2026-11-22T00:42:27.987792115Z",
        "expiry": null,
        "createdAt": "2026-11-22T00:42:23.185008316Z",
        "registerMethod": "REGISTER_METHOD_AUTH_KEY",
        "tags": tags,
        "approvedRoutes": [],
        "availableRoutes": [],
        "subnetRoutes": []
    }))
    .expect("node JSON")
}

fn key(id: u64, user: &str) -> PreAuthKey {
    serde_json::from_value(json!({
        "id": id.to_string(),
        "key": "hskey-auth-VXDxAkKVgUkL-***",
        "user": {"id": "1", "name": user},
        "reusable": false, "ephemeral": false, "used": true,
        "expiration": "2026-11-22T01:42:12Z",
        "createdAt": "2026-11-22T00:42:12.570108360Z",
        "aclTags": []
    }))
    .expect("key JSON")
}

async fn apply(
    pool: &PgPool,
    shard: Uuid,
    nodes: Vec<Node>,
    t: &SyncTiming,
) -> Result<SyncCounts, SyncError> {
    mark_due(pool, shard).await?;
    let claim = claim_next_due(pool, Uuid::new_v4(), Duration::from_secs(60))
        .await?
        .expect("due");
    apply_snapshot(
        pool,
        &claim,
        &Snapshot {
            version: "0.29.2".into(),
            latency: Duration::from_millis(12),
            nodes,
            pre_auth_keys: vec![key(4, "t7k2.alice")],
        },
        t,
    )
    .await
}

/// Devices that slip over a tenant's device quota (through a reusable key) are noticed by
/// the sync: the tenant is marked over quota, with one audit entry; syncing the same
/// again writes nothing; back within the quota, the mark goes, with another entry.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_tenant_over_its_device_quota_is_marked_and_logged_once(owner: PgPool) {
    let pool = app_pool(&owner);
    let (acme, _) = seed_tenants(&owner).await;
    let shard = seed_fake_shards(&pool, 1).await[0];
    place(&owner, acme, Some(shard)).await;
    sqlx::query("update tenant set device_quota = 2 where id = $1")
        .bind(acme)
        .execute(&owner)
        .await
        .unwrap();
    let t = timing(Duration::from_secs(15));
    let nodes = |n: u64| {
        (1..=n)
            .map(|i| node(i, Some("t7k2.alice"), &[], false))
            .collect::<Vec<_>>()
    };
    let state = || async {
        let since: Option<OffsetDateTime> =
            sqlx::query_scalar("select over_quota_since from tenant where id = $1")
                .bind(acme)
                .fetch_one(&owner)
                .await
                .unwrap();
        let events: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "select action, detail from audit_event where tenant_id = $1 order by id",
        )
        .bind(acme)
        .fetch_all(&owner)
        .await
        .unwrap();
        (since, events)
    };

    let c = apply(&pool, shard, nodes(2), &t).await.unwrap();
    assert_eq!(c.quota_changes, 0, "at the quota is within it");
    assert_eq!(state().await, (None, vec![]));

    let c = apply(&pool, shard, nodes(3), &t).await.unwrap();
    assert_eq!(c.quota_changes, 1);
    let (since, events) = state().await;
    assert!(since.is_some());
    assert_eq!(
        events,
        [(
            "tenant.quota_exceeded".to_string(),
            json!({"devices": 3, "device_quota": 2})
        )]
    );
    let again = apply(&pool, shard, nodes(3), &t).await.unwrap();
    assert_eq!((again.quota_changes, again.rows_written()), (0, 0));

    let c = apply(&pool, shard, nodes(1), &t).await.unwrap();
    assert_eq!(c.quota_changes, 1);
    let (since, events) = state().await;
    assert_eq!(since, None);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0, "tenant.quota_restored");

    // The application role may add to the audit log, never change or remove from it.
    for statement in [
        "update audit_event set action = 'x'",
        "delete from audit_event",
    ] {
        let err = sqlx::query(statement).execute(&pool).await.unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{statement}: {err}"
        );
    }
}

/// A sync whose snapshot was read before the portal's own write (a rename, an expiry, a
/// registered device, an expired key) does not undo that write; the next pass, reading
/// the shard afresh, writes what the shard says.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_snapshot_older_than_the_portals_own_write_leaves_it_alone(owner: PgPool) {
    let pool = app_pool(&owner);
    let (acme, _) = seed_tenants(&owner).await;
    let shard = seed_fake_shards(&pool, 1).await[0];
    place(&owner, acme, Some(shard)).await;
    let t = timing(Duration::from_secs(15));
    apply(
        &pool,
        shard,
        vec![node(1, Some("t7k2.alice"), &[], true)],
        &t,
    )
    .await
    .unwrap();

    // The worker claims the shard and reads it; meanwhile the portal writes through.
    mark_due(&pool, shard).await.unwrap();
    let claim = claim_next_due(&pool, Uuid::new_v4(), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("due");
    tokio::time::sleep(Duration::from_millis(20)).await;
    for statement in [
        "update node set given_name = 'renamed', expiry = now(), changed_at = now()
          where node_id = 1",
        "insert into node (shard_id, node_id, tenant_id, given_name, name, user_name, online,
                           register_method)
         select id, 2, (select id from tenant where code = 't7k2'), 'fresh', 'fresh',
                't7k2.alice', false, 'cli' from shard",
        "update pre_auth_key set expiration = now(), changed_at = now() where key_id = 4",
    ] {
        sqlx::query(statement).execute(&owner).await.unwrap();
    }
    let stale = Snapshot {
        version: "0.29.2".into(),
        latency: Duration::from_millis(12),
        nodes: vec![node(1, Some("t7k2.alice"), &[], true)],
        pre_auth_keys: vec![key(4, "t7k2.alice")],
    };
    let counts = apply_snapshot(&pool, &claim, &stale, &t).await.unwrap();
    assert_eq!(counts.rows_written(), 0, "{counts:?}");
    let rows: Vec<(i64, String, bool, bool)> = sqlx::query_as(
        "select node_id, given_name, expiry is not null, removed_at is not null
           from node order by node_id",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (1, "renamed".to_string(), true, false),
            (2, "fresh".to_string(), false, false)
        ],
        "the portal's writes stand"
    );
    let key_expired: bool =
        sqlx::query_scalar("select expiration <= now() from pre_auth_key where key_id = 4")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert!(key_expired, "the expired key stays expired");

    // The next pass reads the shard again, and the shard is the truth.
    let counts = apply(
        &pool,
        shard,
        vec![node(1, Some("t7k2.alice"), &[], true)],
        &t,
    )
    .await
    .unwrap();
    assert_eq!(counts.nodes.updated + counts.nodes.removed, 2, "{counts:?}");
    let rows: Vec<(i64, String, bool)> = sqlx::query_as(
        "select node_id, given_name, removed_at is not null from node order by node_id",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (1, "host-1".to_string(), false),
            (2, "fresh".to_string(), true)
        ]
    );
}

/// Intervals open and close at sync times; a failed sync or a long gap ends them at the
/// last good sync (no usage is invented); a node gone from the shard ends its interval.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn online_intervals_count_only_observed_time(owner: PgPool) {
    let pool = app_pool(&owner);
    let (acme, _) = seed_tenants(&owner).await;
    let shard = seed_fake_shards(&pool, 1).await[0];
    place(&owner, acme, Some(shard)).await;
    let t = timing(Duration::from_secs(15));
    let last_sync = || async {
        shard_state(&owner, shard)
            .await
            .last_sync_at
            .expect("synced")
    };

    // Online: opens. The tagged node is offline: nothing.
    let c = apply(
        &pool,
        shard,
        vec![
            node(1, Some("t7k2.alice"), &[], true),
            node(2, None, &["tag:t7k2--db"], false),
        ],
        &t,
    )
    .await
    .unwrap();
    assert_eq!((c.nodes.inserted, c.intervals_opened), (2, 1));
    let opened = last_sync().await;
    let all = intervals(&owner, shard, 1).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].tenant_id, all[0].started_at, all[0].ended_at),
        (Some(acme), opened, None)
    );

    // Offline: closes at that sync.
    apply(
        &pool,
        shard,
        vec![node(1, Some("t7k2.alice"), &[], false)],
        &t,
    )
    .await
    .unwrap();
    let closed = last_sync().await;
    let all = intervals(&owner, shard, 1).await;
    assert_eq!(all[0].ended_at, Some(closed));

    // Online again, then the shard cannot be read: the interval ends at the last good
    // sync, not at the failure.
    apply(
        &pool,
        shard,
        vec![node(1, Some("t7k2.alice"), &[], true)],
        &t,
    )
    .await
    .unwrap();
    let good = last_sync().await;
    mark_due(&pool, shard).await.unwrap();
    let claim = claim_next_due(&pool, Uuid::new_v4(), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("due");
    let failure = record_failure(
        &pool,
        &claim,
        "Shard hs-fake-0 could not be reached (Connection refused (os error 111))",
        &t,
    )
    .await
    .unwrap();
    assert_eq!(failure.consecutive_failures, 1);
    assert_eq!(failure.retry_in, Duration::from_secs(30));
    assert_eq!(failure.intervals_closed, 1);
    let all = intervals(&owner, shard, 1).await;
    assert_eq!(all.len(), 2);
    assert_eq!((all[1].started_at, all[1].ended_at), (good, Some(good)));
    let state = shard_state(&owner, shard).await;
    assert_eq!(state.health, "unhealthy");
    assert_eq!(state.last_sync_at, Some(good));

    // Back: a new interval from this sync; health restored.
    let c = apply(
        &pool,
        shard,
        vec![node(1, Some("t7k2.alice"), &[], true)],
        &t,
    )
    .await
    .unwrap();
    assert_eq!((c.intervals_opened, c.intervals_closed), (1, 0));
    assert_eq!(shard_state(&owner, shard).await.health, "healthy");

    // The portal was away for ten minutes: the open interval ends at the last sync
    // before the gap, and a new one starts now.
    sqlx::query(
        "update shard set last_sync_at = last_sync_at - interval '10 minutes' where id = $1;",
    )
    .bind(shard)
    .execute(&owner)
    .await
    .unwrap();
    let before_gap = last_sync().await;
    let c = apply(
        &pool,
        shard,
        vec![node(1, Some("t7k2.alice"), &[], true)],
        &t,
    )
    .await
    .unwrap();
    assert_eq!((c.intervals_closed, c.intervals_opened), (1, 1), "{c:?}");
    let all = intervals(&owner, shard, 1).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[2].ended_at, Some(all[2].started_at.max(before_gap)));
    assert_eq!(all[3].ended_at, None);

    // Gone from the shard: removed, offline, interval closed; the key too.
    mark_due(&pool, shard).await.unwrap();
    let claim = claim_next_due(&pool, Uuid::new_v4(), Duration::from_secs(60))
        .await
        .unwrap()
        .expect("due");
    let c = apply_snapshot(
        &pool,
        &claim,
        &Snapshot {
            version: "0.29.2".into(),
            ..Snapshot::default()
        },
        &t,
    )
    .await
    .unwrap();
    assert_eq!((c.nodes.removed, c.pre_auth_keys.removed), (1, 1), "{c:?}");
    assert_eq!(c.intervals_closed, 1);
    let gone = node_by_name(&owner, shard, "host-1").await.expect("kept");
    assert!(gone.removed_at.is_some() && !gone.online);
    let open: i64 =
        sqlx::query_scalar("select count(*) from node_online_interval where ended_at is null")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(open, 0);

    // The database itself refuses a whole key in the mirror.
    let refused = sqlx::query(
        "update pre_auth_key set key_prefix = 'VXDxAkKVgUkL-AneLAPPewmNVAMoZ1dXyAlwWDVgaV4A4i4Xnt'",
    )
    .execute(&owner)
    .await;
    assert!(refused.is_err(), "only a 12-character prefix fits");
}

// ---------------------------------------------------------------- startup --

/// `portal serve` (the `Application` path) runs the sync; `router()` alone, as most
/// tests use it, does not.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn the_served_portal_runs_the_sync(owner: PgPool) {
    use base64::Engine;
    let pool = app_pool(&owner);
    let shard = seed_fake_shards(&pool, 1).await[0];
    let options = owner.connect_options();
    let database_url = format!(
        "postgres://{}:{}@{}:{}/{}",
        std::env::var("TEST_APP_DB_USER").unwrap_or_else(|_| "portal_app".into()),
        std::env::var("TEST_APP_DB_PASSWORD").unwrap_or_else(|_| "portal_app".into()),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("the test database's name"),
    );
    let config = |sync_interval: Option<Duration>| server::config::Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        public_url: url::Url::parse("http://127.0.0.1:1").expect("url"),
        database_url: server::config::Secret::new(database_url.clone()),
        migration_database_url: None,
        secret_key: server::config::Secret::new(
            base64::engine::general_purpose::STANDARD.encode(SECRET_KEY),
        ),
        oidc: server::config::OidcConfig {
            // Discovery is lazy: no provider is needed to start.
            issuer: "http://127.0.0.1:1/application/o/portal/".into(),
            client_id: "portal".into(),
            client_secret: server::config::Secret::new("unused"),
            scopes: vec!["openid".into()],
        },
        role_mapping: app::domain::groups::RoleMapping::default(),
        session_idle: time::Duration::minutes(30),
        session_absolute: time::Duration::hours(12),
        site_root: "../target/site".into(),
        log_json: false,
        db_max_connections: 3,
        resilience: Default::default(),
        sync: server::config::SyncConfig {
            interval: sync_interval,
            concurrency: 2,
            ..server::config::SyncConfig::default()
        },
        limits: server::config::Limits::default(),
    };
    let clock = Arc::new(app::auth::clock::SystemClock);

    // The routes alone: nothing claims the shard.
    let _router =
        server::startup::router(&config(Some(Duration::from_secs(1))), pool, clock.clone())
            .expect("router");
    // A replica with the sync switched off starts none either.
    let quiet = server::startup::Application::build(config(None), clock.clone())
        .await
        .expect("application without sync")
        .spawn();
    // The shard is due at once; give a stray worker time enough to have claimed it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let untouched = shard_state(&owner, shard).await;
    assert_eq!(
        (untouched.health.as_str(), untouched.last_sync_attempt_at),
        ("unknown", None),
        "no sync without the Application's worker"
    );

    let served = server::startup::Application::build(config(Some(Duration::from_secs(1))), clock)
        .await
        .expect("application");
    let base = format!("http://{}", served.local_addr().expect("address"));
    let served = served.spawn();

    let state = eventually(
        "the served portal's first sync",
        Duration::from_secs(15),
        || async {
            let s = shard_state(&owner, shard).await;
            (s.health == "unhealthy").then_some(s)
        },
    )
    .await;
    assert!(
        state
            .last_sync_error
            .as_deref()
            .is_some_and(|e| e.starts_with("Shard hs-fake-0 could not be reached")),
        "{state:?}"
    );
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    served.abort();
    quiet.abort();
}
