//! Issue 8: the portal under real database faults (docs/reliability.md). Each test has a
//! Postgres cluster of its own (`PrivatePg`) that it crashes, restarts or cuts off; the
//! only thing not real is the `FaultProxy`, a fault injector for a half-open connection.
//! Figures are printed as `FAULT <scenario>: …` lines for the report; the bounds the
//! issue states are asserted.

mod common;

use common::fault_proxy::{FaultProxy, Mode};
use common::private_pg::PrivatePg;
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::config::{Config, OidcConfig, Secret};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A portal (the real application: its pool, deadline and layers) on a private database.
struct Portal {
    base: String,
    pg: PrivatePg,
    owner: PgPool,
    tokens: Vec<String>,
}

struct Settings {
    pool: u32,
    acquire: Duration,
    deadline: Duration,
    /// Put a fault injector between the portal and Postgres.
    proxy: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pool: 5,
            acquire: Duration::from_secs(3),
            deadline: Duration::from_secs(15),
            proxy: false,
        }
    }
}

fn config(addr: std::net::SocketAddr, database_url: String, s: &Settings) -> Config {
    use base64::Engine;
    let base = format!("http://{addr}");
    let oidc_base = std::env::var("TEST_OIDC_BASE").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    Config {
        bind: addr,
        public_url: url::Url::parse(&base).expect("url"),
        database_url: Secret::new(database_url),
        migration_database_url: None,
        secret_key: Secret::new(base64::engine::general_purpose::STANDARD.encode([9u8; 32])),
        oidc: OidcConfig {
            issuer: format!("{oidc_base}/application/o/portal/"),
            client_id: "portal".into(),
            client_secret: Secret::new("portal-dev-secret"),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
        },
        role_mapping: Default::default(),
        session_idle: time::Duration::minutes(30),
        session_absolute: time::Duration::hours(12),
        site_root: std::env::var("PORTAL_SITE_ROOT").unwrap_or_else(|_| "../target/site".into()),
        log_json: false,
        db_max_connections: s.pool,
        sync: server::config::SyncConfig {
            interval: None,
            ..Default::default()
        },
        limits: server::config::Limits {
            api: server::rest::ratelimit::Rate {
                per_minute: 1_000_000,
                burst: 100_000,
            },
            ..Default::default()
        },
        resilience: server::config::Resilience {
            request_timeout: s.deadline,
            db_acquire_timeout: s.acquire,
            ..Default::default()
        },
    }
}

/// Tenants acme and globex, placed on a shard row (no shard runs: these tests touch
/// only the database), an admin in each, an API token for each.
async fn seed(owner: &PgPool) -> Vec<String> {
    sqlx::query(
        "insert into shard (cluster_id, name, region, login_server_url, api_url, api_key_sealed, node_capacity)
         values ('hs-none', 'hs-none', 'local', 'http://127.0.0.1:9', 'http://127.0.0.1:9', '\\x00', 100)",
    )
    .execute(owner)
    .await
    .expect("shard");
    sqlx::query(
        "insert into tenant (slug, code, display_name, shard_id)
         select v.slug, v.code, v.name, (select id from shard)
           from (values ('acme', 't7k2', 'Acme Corp'), ('globex', 'g4x9', 'Globex')) v(slug, code, name)",
    )
    .execute(owner)
    .await
    .expect("tenants");
    let mut tokens = Vec::new();
    for (slug, who) in [("acme", "alice"), ("globex", "gina")] {
        sqlx::query(
            "with p as (insert into person (issuer, subject, email, display_name)
                        values ('https://idp.test/', $2, $2 || '@example.com', $2) returning id)
             insert into membership (tenant_id, person_id, role, source)
             select t.id, p.id, 'admin', 'portal' from tenant t, p where t.slug = $1",
        )
        .bind(slug)
        .bind(who)
        .execute(owner)
        .await
        .expect("member");
        let app = common::app_pool(owner);
        let made = app::data::tokens::issue_for_member(
            &app,
            slug,
            &format!("{who}@example.com"),
            "admin",
            "fault test",
            "1",
        )
        .await
        .expect("token");
        tokens.push(made.secret);
    }
    tokens
}

impl Portal {
    async fn start(s: Settings) -> (Portal, Option<FaultProxy>) {
        server::telemetry::init(false);
        let pg = PrivatePg::start().await;
        let owner = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect(&pg.owner_url())
            .await
            .expect("owner pool");
        let tokens = seed(&owner).await;
        let proxy = if s.proxy {
            Some(FaultProxy::start(pg.addr()).await)
        } else {
            None
        };
        let db_addr = proxy.as_ref().map(|p| p.addr).unwrap_or_else(|| pg.addr());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = server::startup::Application::build_with_listener(
            config(addr, pg.app_url_at(db_addr), &s),
            Arc::new(app::auth::clock::SystemClock),
            listener,
        )
        .await
        .expect("portal");
        app.spawn();
        (
            Portal {
                base: format!("http://{addr}"),
                pg,
                owner,
                tokens,
            },
            proxy,
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// What one request got.
#[derive(Debug, Clone)]
struct Answer {
    status: Option<StatusCode>,
    retry_after: Option<String>,
    took: Duration,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    match req.send().await {
        Ok(res) => {
            let status = res.status();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body = res.json().await.unwrap_or(Value::Null);
            Answer {
                status: Some(status),
                retry_after,
                took: started.elapsed(),
                body,
            }
        }
        Err(_) => Answer {
            status: None,
            retry_after: None,
            took: started.elapsed(),
            body: Value::Null,
        },
    }
}

fn policy_text(n: u32) -> String {
    format!(
        "// write {n}\n{{\"acls\": [{{\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"autogroup:member:*\"]}}]}}"
    )
}

/// One writer: saves revision after revision of its tenant's policy until `stop`, each
/// save retried with its `Idempotency-Key` until it is acknowledged. Returns the
/// acknowledged writes (n, revision) and every answer seen.
async fn writer(
    base: String,
    slug: &'static str,
    token: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<(u32, i64)>, Vec<(Instant, Answer)>) {
    let http = client();
    let mut acked = Vec::new();
    let mut seen = Vec::new();
    let mut based_on: Option<i64> = None;
    let mut n = 0u32;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        n += 1;
        let key = format!("{slug}-write-{n}");
        let body = json!({ "text": policy_text(n), "comment": format!("write {n}"), "based_on": based_on });
        loop {
            let a = send(
                http.put(format!("{base}/api/v1/tenants/{slug}/policy"))
                    .bearer_auth(&token)
                    .header("idempotency-key", &key)
                    .json(&body),
            )
            .await;
            seen.push((Instant::now(), a.clone()));
            match a.status {
                Some(StatusCode::OK) => {
                    let rev = a.body["revision"].as_i64().expect("revision");
                    acked.push((n, rev));
                    based_on = Some(rev);
                    break;
                }
                // Carried out, answer lost: the revision is the newest one now.
                Some(StatusCode::CONFLICT)
                    if a.body["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("idempotency-committed")) =>
                {
                    let cur = send(
                        http.get(format!("{base}/api/v1/tenants/{slug}/policy"))
                            .bearer_auth(&token),
                    )
                    .await;
                    if let Some(rev) = cur.body["revision"].as_i64() {
                        acked.push((n, rev));
                        based_on = Some(rev);
                        break;
                    }
                }
                _ => {}
            }
            // As a client would: wait (Retry-After, shortened for the test) and again.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    (acked, seen)
}

#[tokio::test]
async fn postgres_crash_under_write_load_loses_and_duplicates_nothing() {
    let (portal, _) = Portal::start(Settings::default()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = [("acme", 0), ("globex", 1)]
        .into_iter()
        .map(|(slug, i)| {
            tokio::spawn(writer(
                portal.base.clone(),
                slug,
                portal.tokens[i].clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let crashed_at = Instant::now();
    portal.pg.crash().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    portal.pg.start_again().await;
    let up_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut all_acked = Vec::new();
    let mut answers = Vec::new();
    for (w, slug) in writers.into_iter().zip(["acme", "globex"]) {
        let (acked, seen) = w.await.expect("writer");
        all_acked.push((slug, acked));
        answers.extend(seen);
    }

    // While it was down: 503 with Retry-After, within the acquire timeout (3 s) and
    // some slack; never a 500, never a hang.
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|(at, _)| *at > crashed_at && *at < up_at)
        .map(|(_, a)| a)
        .collect();
    assert!(
        !during.is_empty(),
        "requests were made while Postgres was down"
    );
    for a in &during {
        let status = a
            .status
            .expect("the portal answers while the database is down");
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status.is_success(),
            "while down: {status} {}",
            a.body
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(a.retry_after.is_some(), "503 without Retry-After");
            assert_eq!(a.body["type"], "/api/v1/problems/unavailable", "{}", a.body);
        }
        assert!(
            a.took < Duration::from_secs(5),
            "an answer took {:?}",
            a.took
        );
    }
    let errors_5xx_not_503 = answers
        .iter()
        .filter(|(_, a)| {
            a.status
                .is_some_and(|s| s.is_server_error() && s != StatusCode::SERVICE_UNAVAILABLE)
        })
        .count();
    assert_eq!(errors_5xx_not_503, 0, "no 500s: {answers:#?}");
    // Recovered by itself: the first success after the restart.
    let recovered = answers
        .iter()
        .find(|(at, a)| *at > up_at && a.status == Some(StatusCode::OK))
        .map(|(at, _)| at.duration_since(up_at))
        .expect("writes succeed again after the restart");
    assert!(
        recovered < Duration::from_secs(5),
        "recovery took {recovered:?}"
    );

    // Every acknowledged write is there, exactly once; nothing unacknowledged is.
    let mut total = 0;
    for (slug, acked) in &all_acked {
        let rows: Vec<(i32, String)> = sqlx::query_as(
            "select r.revision, r.comment from policy_revision r join tenant t on t.id = r.tenant_id
              where t.slug = $1 order by r.revision",
        )
        .bind(slug)
        .fetch_all(&portal.owner)
        .await
        .expect("revisions");
        let expected: Vec<(i32, String)> = acked
            .iter()
            .map(|(n, rev)| (*rev as i32, format!("write {n}")))
            .collect();
        assert_eq!(
            rows, expected,
            "{slug}: the saved revisions are exactly the acknowledged writes"
        );
        total += acked.len();
    }
    let down_answers = during.len();
    let max_wait = during.iter().map(|a| a.took).max().unwrap_or_default();
    println!(
        "FAULT postgres-crash: writes acknowledged {total}, lost 0, duplicated 0; requests while down {down_answers} (all 503 + Retry-After, slowest {max_wait:?}); down {:?}; first success {recovered:?} after Postgres was back; answers {}",
        up_at.duration_since(crashed_at),
        answers.len()
    );
}

#[tokio::test]
async fn terminated_connections_are_replaced_within_two_seconds() {
    let (portal, _) = Portal::start(Settings::default()).await;
    let http = client();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers keep every pooled connection in use.
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (http, base, token, stop) = (
                http.clone(),
                portal.base.clone(),
                portal.tokens[i % 2].clone(),
                stop.clone(),
            );
            let slug = ["acme", "globex"][i % 2];
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let a = send(
                        http.get(format!("{base}/api/v1/tenants/{slug}/policy"))
                            .bearer_auth(&token),
                    )
                    .await;
                    seen.push((Instant::now(), a.status));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    let killed = portal
        .pg
        .psql(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity
              where usename = 'portal_app' and pid <> pg_backend_pid()",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen = Vec::new();
    for r in readers {
        seen.extend(r.await.expect("reader"));
    }
    let failed: Vec<_> = seen
        .iter()
        .filter(|(_, s)| *s != Some(StatusCode::OK))
        .collect();
    let last_failure = failed
        .iter()
        .map(|(at, _)| at.saturating_duration_since(killed_at))
        .max()
        .unwrap_or_default();
    let ratio = failed.len() as f64 / seen.len() as f64;
    println!(
        "FAULT terminate-backends: {killed} connections terminated; {} requests, {} failed ({:.2} %), last failure {last_failure:?} after the kill",
        seen.len(),
        failed.len(),
        ratio * 100.0
    );
    assert!(
        killed.parse::<u32>().unwrap_or(0) >= 1,
        "connections were terminated"
    );
    assert!(
        ratio < 0.01,
        "{} of {} requests failed",
        failed.len(),
        seen.len()
    );
    assert!(
        last_failure < Duration::from_secs(2),
        "still failing {last_failure:?} after the kill"
    );
}

#[tokio::test]
async fn a_hung_database_connection_holds_no_request_past_its_deadline() {
    // The deadline, not the pool's acquire timeout, must be what ends the wait: a
    // request may hang on a connection it already holds.
    let deadline = Duration::from_secs(3);
    let (portal, proxy) = Portal::start(Settings {
        deadline,
        acquire: Duration::from_secs(30),
        proxy: true,
        ..Default::default()
    })
    .await;
    let proxy = proxy.expect("proxy");
    let http = client();
    let get = || {
        send(
            http.get(portal.url("/api/v1/tenants/acme/policy"))
                .bearer_auth(&portal.tokens[0]),
        )
    };
    assert_eq!(get().await.status, Some(StatusCode::OK));
    // Every connection to Postgres goes silent: open, no answer, no reset.
    proxy.set(Mode::Hang);
    let hung: Vec<Answer> = futures::future::join_all((0..6).map(|_| get())).await;
    let health = send(http.get(portal.url("/healthz"))).await;
    for a in &hung {
        assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{:?}", a);
        assert!(a.retry_after.is_some());
        assert!(
            a.took < deadline + Duration::from_secs(1),
            "waited {:?} (deadline {deadline:?})",
            a.took
        );
    }
    assert_eq!(health.status, Some(StatusCode::OK));
    // The database answers again: so does the portal, without a restart.
    proxy.set(Mode::Pass);
    let back = Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(20) {
        if get().await.status == Some(StatusCode::OK) {
            recovered = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the portal recovers from hung connections");
    let slowest = hung.iter().map(|a| a.took).max().unwrap_or_default();
    println!(
        "FAULT hung-db: {} requests on a hung database all 503 by {slowest:?} (deadline {deadline:?}); /healthz {:?}; recovered {recovered:?} after the database answered again",
        hung.len(),
        health.took
    );
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_quickly_and_healthz_stays_fast() {
    let acquire = Duration::from_secs(2);
    let (portal, _) = Portal::start(Settings {
        pool: 3,
        acquire,
        deadline: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let http = client();
    // Slow requests: a lock taken by the test blocks every reader of the policies, each
    // holding one of the pool's three connections.
    let mut locker = portal.owner.begin().await.expect("tx");
    sqlx::query("lock table policy_revision in access exclusive mode")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let slow: Vec<_> = (0..8)
        .map(|i| {
            let req = http
                .get(portal.url(&format!(
                    "/api/v1/tenants/{}/policy",
                    ["acme", "globex"][i % 2]
                )))
                .bearer_auth(&portal.tokens[i % 2]);
            tokio::spawn(send(req))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = send(http.get(portal.url("/healthz"))).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    locker.rollback().await.expect("unlock");
    let mut answers = Vec::new();
    for s in slow {
        answers.push(s.await.expect("request"));
    }
    let refused: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == Some(StatusCode::SERVICE_UNAVAILABLE))
        .collect();
    let served = answers
        .iter()
        .filter(|a| a.status == Some(StatusCode::OK))
        .count();
    assert_eq!(health.status, Some(StatusCode::OK));
    assert!(
        health.took < Duration::from_millis(200),
        "/healthz took {:?}",
        health.took
    );
    assert!(
        !refused.is_empty(),
        "excess requests are refused: {answers:?}"
    );
    for a in &refused {
        assert!(a.retry_after.is_some());
        assert!(
            a.took < acquire + Duration::from_secs(1),
            "refused only after {:?}",
            a.took
        );
    }
    assert_eq!(
        refused.len() + served,
        answers.len(),
        "every request is served or refused: {answers:?}"
    );
    println!(
        "FAULT pool-exhausted: pool 3, 8 slow requests: {served} served after the lock, {} refused 503 in {:?}–{:?} (acquire timeout {acquire:?}); /healthz {:?}",
        refused.len(),
        refused.iter().map(|a| a.took).min().unwrap_or_default(),
        refused.iter().map(|a| a.took).max().unwrap_or_default(),
        health.took
    );
}

// ------------------------------------------------------------------ replicas --

/// A portal process (the real binary, as a pod runs it) with JSON logs in a file.
struct Replica {
    child: tokio::process::Child,
    base: String,
    metrics: String,
    log: std::path::PathBuf,
}

impl Replica {
    async fn start(name: &str, pg: &PrivatePg, dir: &std::path::Path) -> Replica {
        use base64::Engine;
        let port = common::private_pg::free_port();
        let metrics_port = common::private_pg::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let oidc = std::env::var("TEST_OIDC_BASE").expect("TEST_OIDC_BASE (run through dev/test)");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portal"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sqlx=error")
            .env("PORTAL_LOG_FORMAT", "json")
            .env("PORTAL_BIND", format!("127.0.0.1:{port}"))
            .env("PORTAL_METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
            .env("PORTAL_PUBLIC_URL", &base)
            .env("DATABASE_URL", pg.app_url_at(pg.addr()))
            .env(
                "PORTAL_SECRET_KEY",
                base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
            )
            .env("OIDC_ISSUER_URL", format!("{oidc}/application/o/portal/"))
            .env("OIDC_CLIENT_ID", "portal")
            .env("OIDC_CLIENT_SECRET", "portal-dev-secret")
            .env(
                "PORTAL_SITE_ROOT",
                std::env::var("PORTAL_SITE_ROOT").unwrap_or_else(|_| "../target/site".into()),
            )
            .env("PORTAL_SYNC_INTERVAL_SECONDS", "1")
            .env("PORTAL_SHUTDOWN_GRACE_SECONDS", "10")
            .env("PORTAL_API_RATE_PER_MINUTE", "1000000")
            .env("PORTAL_API_BURST", "100000")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("portal binary");
        let r = Replica {
            child,
            base,
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            log,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(res) = reqwest::get(format!("{}/readyz", r.base)).await {
                if res.status() == StatusCode::OK {
                    return r;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica {name} did not become ready: {}", r.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines.
    fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn metric_sum(&self, name: &str, label: &str) -> f64 {
        let text = reqwest::get(&self.metrics)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[tokio::test]
async fn two_replicas_share_sessions_run_jobs_once_and_drain_on_sigterm() {
    let stack = common::stack::Stack::new();
    let real = stack.start_shard("hs-rep", 24).await;
    let (pg, owner) = {
        let pg = PrivatePg::start().await;
        let owner = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect(&pg.owner_url())
            .await
            .expect("owner pool");
        (pg, owner)
    };
    let tokens = seed(&owner).await;
    sqlx::query("update shard set status = 'disabled' where cluster_id = 'hs-none'")
        .execute(&owner)
        .await
        .expect("retire the placeholder shard");
    common::add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    let dir = std::path::PathBuf::from(stack.state());
    let mut a = Replica::start("a", &pg, &dir).await;
    let b = Replica::start("b", &pg, &dir).await;

    // Sessions: signed in through A, the same browser is signed in on B (the session
    // lives in Postgres), and signing out on B ends it on A too.
    let browser = common::TestApp {
        base: a.base.clone(),
        owner: owner.clone(),
        clock: Arc::new(app::auth::clock::ManualClock::new(
            time::OffsetDateTime::now_utc(),
        )),
        http: common::browser(),
        idp: common::Idp::real_rs256(),
    };
    browser.sign_in("alice").await;
    let on_b = browser
        .http
        .get(format!("{}/t/acme", b.base))
        .send()
        .await
        .expect("B");
    assert_eq!(
        on_b.status(),
        StatusCode::OK,
        "the session works on replica B"
    );

    // Background work runs once: the shard is synced about once a second in all, not
    // once a second by each replica.
    let label = format!("shard=\"{}\"", real.cluster_id);
    let before = a.metric_sum("portal_shard_sync_total", &label).await
        + b.metric_sum("portal_shard_sync_total", &label).await;
    let window = Duration::from_secs(8);
    tokio::time::sleep(window).await;
    let (on_a, on_b_syncs) = (
        a.metric_sum("portal_shard_sync_total", &label).await,
        b.metric_sum("portal_shard_sync_total", &label).await,
    );
    let syncs = on_a + on_b_syncs - before;
    println!(
        "FAULT two-replicas: {syncs} syncs of the shard in {window:?} at a 1 s interval (A ran {on_a} in all, B {on_b_syncs}); session from A used on B"
    );
    assert!(syncs >= 3.0, "the shard is synced ({syncs})");
    assert!(
        syncs <= window.as_secs_f64() + 3.0,
        "{syncs} syncs in {window:?}: both replicas synced the shard"
    );
    // Metrics: on their own listener, not on the public one.
    let public = reqwest::get(format!("{}/metrics", a.base))
        .await
        .expect("A")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        !public.contains("portal_http_requests_total"),
        "/metrics is not on the public listener"
    );
    for name in [
        "portal_http_requests_total",
        "portal_http_request_duration_seconds_bucket",
        "portal_db_pool_connections",
        "portal_shard_sync_lag_seconds",
        "portal_shard_up",
        "portal_background_jobs_running",
    ] {
        let text = reqwest::get(&b.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    // Requests are counted by route template, never by raw path (ids, slugs).
    let text = reqwest::get(&b.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"route="/t/{slug}""#),
        "requests by route template:\n{text}"
    );
    assert!(!text.contains("/t/acme"), "no raw paths in labels");
    assert_eq!(
        b.metric_sum("portal_shard_up", &label).await,
        1.0,
        "the healthy shard is up"
    );

    // SIGTERM to A under load: requests in flight finish (no 5xx), A exits by itself,
    // its jobs stop, and B carries on with the shard.
    let mut locker = owner.begin().await.expect("tx");
    sqlx::query("lock table policy_revision in access exclusive mode")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let in_flight: Vec<_> = (0..5)
        .map(|i| {
            tokio::spawn(send(
                fresh
                    .get(format!(
                        "{}/api/v1/tenants/{}/policy",
                        a.base,
                        ["acme", "globex"][i % 2]
                    ))
                    .bearer_auth(&tokens[i % 2]),
            ))
        })
        .collect();
    // And a steady load of reads that need no locked table, on new connections.
    let load_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|i| {
            let (http, base, token, stop) = (
                fresh.clone(),
                a.base.clone(),
                tokens[i % 2].clone(),
                load_stop.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let a = send(
                        http.get(format!("{base}/api/v1/bootstrap"))
                            .bearer_auth(&token),
                    )
                    .await;
                    seen.push(a.status);
                    if a.status.is_none() {
                        // Refused: a load balancer would now send it to another replica.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = a.child.id().expect("pid");
    let term_at = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    // New requests after SIGTERM: A takes none (a load balancer sends them to B).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = send(fresh.get(format!("{}/healthz", a.base))).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    locker.rollback().await.expect("unlock");
    let mut finished = Vec::new();
    for f in in_flight {
        finished.push(f.await.expect("in flight"));
    }
    let status = tokio::time::timeout(Duration::from_secs(15), a.child.wait())
        .await
        .expect("A exits within its grace")
        .expect("exit status");
    let exited_after = term_at.elapsed();
    load_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut load_seen = Vec::new();
    for l in load {
        load_seen.extend(l.await.expect("load"));
    }
    let load_answered = load_seen.iter().filter(|s| s.is_some()).count();
    let load_5xx = load_seen
        .iter()
        .filter(|s| s.is_some_and(|s| s.is_server_error()))
        .count();
    assert_eq!(
        load_5xx, 0,
        "no 5xx under load while draining: {load_seen:?}"
    );
    assert!(load_answered > 10, "the load was served until SIGTERM");
    for f in &finished {
        assert_eq!(
            f.status,
            Some(StatusCode::OK),
            "a request in flight at SIGTERM finishes: {f:?}"
        );
    }
    assert!(status.success(), "A exits cleanly: {status:?}");
    assert!(
        late.status.is_none(),
        "A accepts no new connection after SIGTERM"
    );
    let lines = a.log_lines();
    let said = |msg: &str| lines.iter().any(|l| l["message"] == msg);
    assert!(said("background jobs stopped"), "{}", a.log_text());
    assert!(said("drained; exiting"), "{}", a.log_text());
    assert!(!a.log_text().contains("panicked"));
    // JSON access log lines carry the request id.
    assert!(
        lines.iter().any(|l| l["message"] == "request answered"
            && l["span"]["request_id"]
                .as_str()
                .is_some_and(|id| id.len() == 36)),
        "JSON logs with request ids: {}",
        a.log_text()
    );

    // B takes over: the shard keeps being synced after A is gone.
    let synced_at = || async {
        sqlx::query_scalar::<_, time::OffsetDateTime>(
            "select last_sync_at from shard where cluster_id = $1",
        )
        .bind(&real.cluster_id)
        .fetch_one(&owner)
        .await
        .expect("shard")
    };
    let at_exit = synced_at().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        synced_at().await > at_exit,
        "B syncs the shard after A stopped"
    );
    let answered_5xx = finished
        .iter()
        .filter(|f| f.status.is_some_and(|s| s.is_server_error()))
        .count();
    println!(
        "FAULT sigterm: load {load_answered} requests answered, 5xx {load_5xx}, {} refused connections after SIGTERM; {} requests in flight at SIGTERM, all 200 (slowest {:?}), 5xx {answered_5xx}; A exited {exited_after:?} after SIGTERM with {status}; B synced the shard after A stopped",
        load_seen.len() - load_answered,
        finished.len(),
        finished.iter().map(|f| f.took).max().unwrap_or_default()
    );
    drop(b);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_answer_and_refuses_another_request() {
    let (portal, _) = Portal::start(Settings::default()).await;
    let http = client();
    let put = |key: &str, n: u32| {
        http.put(portal.url("/api/v1/tenants/acme/policy"))
            .bearer_auth(&portal.tokens[0])
            .header("idempotency-key", key)
            .json(&json!({ "text": policy_text(n), "comment": format!("write {n}"), "based_on": null }))
    };
    let first = put("k-1", 1).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    // The retry gets the first answer back; nothing is saved twice.
    let again = put("k-1", 1).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let revisions: i64 = sqlx::query_scalar("select count(*) from policy_revision")
        .fetch_one(&portal.owner)
        .await
        .unwrap();
    assert_eq!(revisions, 1);
    // The same key with another request is refused, and changes nothing.
    let other = put("k-1", 2).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["type"], "/api/v1/problems/idempotency-key-reused");
    // Another token's key of the same name is its own.
    let globex = http
        .put(portal.url("/api/v1/tenants/globex/policy"))
        .bearer_auth(&portal.tokens[1])
        .header("idempotency-key", "k-1")
        .json(&json!({ "text": policy_text(1), "based_on": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(globex.status(), StatusCode::OK);
    assert!(globex.headers().get("idempotent-replayed").is_none());
    // A refusal is kept too: the retry is refused the same way, not run again.
    let stale = put("k-2", 3).send().await.unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::CONFLICT,
        "based_on null is stale now"
    );
    let stale_again = put("k-2", 3).send().await.unwrap();
    assert_eq!(stale_again.status(), StatusCode::CONFLICT);
    assert!(stale_again.headers().get("idempotent-replayed").is_some());
    // A malformed key is refused before anything runs.
    let bad = put("with space", 4).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let revisions: i64 = sqlx::query_scalar("select count(*) from policy_revision")
        .fetch_one(&portal.owner)
        .await
        .unwrap();
    assert_eq!(revisions, 2, "acme's one revision and globex's");
    // The stored answer is sealed, never plain text. Compared as bytes: sealed bytes may
    // hold a NUL, which no text encoding accepts.
    let plain: i64 = sqlx::query_scalar(
        "select count(*) from api_idempotency \
         where position(convert_to('revision', 'UTF8') in body_sealed) > 0",
    )
    .fetch_one(&portal.owner)
    .await
    .unwrap();
    assert_eq!(plain, 0);
}

/// Managed Postgres services demand TLS: with `sslmode=require` the portal's own pool
/// talks TLS; `verify-full` refuses a certificate nobody vouches for and accepts it once
/// it is trusted (`sslrootcert`); `disable` stays in plain text.
#[tokio::test]
async fn the_database_connection_can_require_and_verify_tls() {
    let pg = PrivatePg::start().await;
    let cert = pg.enable_tls().await;
    let pool = |query: String| {
        server::startup::app_pool_with(
            &format!("{}?{query}", pg.app_url_at(pg.addr())),
            1,
            Duration::from_secs(3),
        )
        .expect("pool")
    };
    let over_tls = |pool: PgPool| async move {
        sqlx::query_scalar::<_, bool>("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
    };
    assert!(over_tls(pool("sslmode=require".into())).await.unwrap());
    assert!(!over_tls(pool("sslmode=disable".into())).await.unwrap());
    let refused = over_tls(pool("sslmode=verify-full".into()))
        .await
        .expect_err("a self-signed certificate is not trusted");
    println!("FAULT database-tls: verify-full without the certificate: {refused}");
    let trusted = format!("sslmode=verify-full&sslrootcert={}", cert.display());
    assert!(over_tls(pool(trusted)).await.unwrap());
}
