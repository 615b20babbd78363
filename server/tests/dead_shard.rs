//! Pages never wait on a shard (DESIGN.md §1): every page and server function a person
//! uses reads the mirror in Postgres. Proved with a shard that accepts connections and
//! never answers — the worst kind of dead — by counting the connections it gets while
//! tenants and operators use the portal: none. The background sync, by contrast, does
//! reach it, gives up within its deadline, and marks it unhealthy; the pages then show
//! that, still without touching the shard.

mod common;

use app::data::secret::SecretBox;
use app::data::shards::{self, NewShard};
use app::data::sync::mark_due;
use app::headscale::ShardClientOptions;
use common::{Idp, TestApp};
use reqwest::StatusCode;
use server::jobs::sync::{SyncOutcome, SyncSettings, SyncWorker};
use sqlx::PgPool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// TEST DOUBLE, not Headscale: a shard that accepts TCP connections and never answers
/// (a hung process, a half-open path), which a real Headscale cannot be made to do on
/// demand. It counts the connections it accepted and keeps them open.
struct HungShard {
    url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HungShard {
    async fn start() -> HungShard {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        HungShard {
            url,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HungShard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pages and server functions of a tenant on the shard and of the operator.
async fn use_the_portal(alice: &TestApp, olivia: &TestApp) {
    for (who, path) in [
        (alice, "/t/acme"),
        (olivia, "/operator"),
        (olivia, "/operator/shards/hs-hung"),
        (olivia, "/operator/tenants/acme"),
    ] {
        let res = who.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    for (who, path, form) in [
        (alice, "/api/get_tenant_overview", [("slug", "acme")]),
        (olivia, "/api/get_shard", [("cluster_id", "hs-hung")]),
        (olivia, "/api/get_tenant_admin", [("slug", "acme")]),
    ] {
        let res = who.same_origin_post(path).form(&form).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn pages_never_wait_on_a_dead_shard(owner: PgPool) {
    let hung = HungShard::start().await;
    let alice = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    // The same secret key as the TestApp's portal, so the sync can open the shard's key.
    let secrets = Arc::new(SecretBox::new(&[9u8; 32]).expect("secret key"));
    let app_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy_with(common::app_role_options(&owner));
    let shard = shards::upsert(
        &app_pool,
        &secrets,
        &NewShard {
            cluster_id: "hs-hung".into(),
            name: "Hung".into(),
            region: "local".into(),
            login_server_url: hung.url.clone(),
            api_url: hung.url.clone(),
            node_capacity: 100,
        },
        "hskey-api-hungshard00-notarealkeyatall",
    )
    .await
    .expect("shard");
    sqlx::query("update tenant set shard_id = $1 where slug = 'acme'")
        .bind(shard)
        .execute(&owner)
        .await
        .unwrap();
    alice.sign_in("alice").await;
    let olivia = alice.another_browser("olivia").await;

    use_the_portal(&alice, &olivia).await;
    assert_eq!(
        hung.accepted(),
        0,
        "a page or server function contacted the shard"
    );

    // The background sync does reach the shard, and gives up within its deadline.
    let mut settings = SyncSettings::new(Duration::from_secs(1), 2);
    settings.sync_timeout = Duration::from_secs(2);
    settings.lease = Duration::from_secs(10);
    settings.client_options = ShardClientOptions {
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        max_retries: 0,
        ..ShardClientOptions::default()
    };
    let worker = SyncWorker::new(app_pool.clone(), secrets, settings);
    assert!(mark_due(&app_pool, shard).await.unwrap());
    let reports = worker.run_due_once().await.unwrap();
    let SyncOutcome::Failed { error, .. } = &reports[0].outcome else {
        panic!("the sync of a hung shard fails: {:?}", reports[0]);
    };
    assert!(error.contains("hs-hung"), "{error}");
    let contacted = hung.accepted();
    assert!(contacted >= 1, "the double counts connections");
    let health: String = sqlx::query_scalar("select health from shard where id = $1")
        .bind(shard)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(health, "unhealthy");

    // The pages show that, still from Postgres alone.
    use_the_portal(&alice, &olivia).await;
    assert_eq!(hung.accepted(), contacted, "pages contacted the shard");
    let page = olivia
        .get("/operator/shards/hs-hung")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("unhealthy") && page.contains("Last sync failed"),
        "{page}"
    );
    // The tenant is told why what it sees may be old, and who its shard user is.
    let dashboard = alice.get("/t/acme").await.text().await.unwrap();
    assert!(
        dashboard.contains("The portal cannot reach this shard right now"),
        "{dashboard}"
    );
    assert!(dashboard.contains("t7k2.alice"), "{dashboard}");
    assert_eq!(hung.accepted(), contacted, "pages contacted the shard");
}
