//! Test harness: a portal on port 0 against a fresh database (`#[sqlx::test]`), the real
//! OIDC provider of the test stack (started by `dev/test`), and an HTTP client that
//! behaves like a browser without JavaScript (cookies, manual redirects).
#![allow(dead_code)]

pub mod fault_proxy;

pub mod fault_shard;

pub mod http_fault_proxy;

pub mod private_pg;

pub mod rogue_idp;

pub mod stack;

use app::auth::clock::ManualClock;
use app::domain::groups::RoleMapping;
use base64::Engine;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Client, StatusCode};
use server::config::{Config, OidcConfig, Secret};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Which identity provider the portal under test uses.
#[derive(Clone, Debug)]
pub struct Idp {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

fn real_provider_base() -> String {
    std::env::var("TEST_OIDC_BASE").unwrap_or_else(|_| {
        panic!("TEST_OIDC_BASE is not set: run the tests through dev/test, which starts the real OIDC provider")
    })
}

impl Idp {
    /// The real provider's RS256 application (Authentik with a signing key).
    pub fn real_rs256() -> Idp {
        Idp {
            issuer: format!("{}/application/o/portal/", real_provider_base()),
            client_id: "portal".into(),
            client_secret: "portal-dev-secret".into(),
        }
    }

    /// The real provider's HS256 application (Authentik without a signing key).
    pub fn real_hs256() -> Idp {
        Idp {
            issuer: format!("{}/application/o/portal-hs256/", real_provider_base()),
            client_id: "portal-hs256".into(),
            client_secret: "portal-hs256-dev-secret".into(),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub owner: PgPool,
    pub clock: Arc<ManualClock>,
    pub http: Client,
    pub idp: Idp,
}

/// A client that keeps cookies and does not follow redirects, so each hop is visible.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

pub async fn seed_tenants(owner: &PgPool) {
    sqlx::query(
        "insert into tenant (slug, code, display_name) values
           ('acme', 't7k2', 'Acme Corp'), ('globex', 'g4x9', 'Globex')",
    )
    .execute(owner)
    .await
    .expect("seed tenants");
}

/// The same database as `owner`, as the application role (subject to row-level security).
pub fn app_role_options(owner: &PgPool) -> PgConnectOptions {
    let user = std::env::var("TEST_APP_DB_USER").unwrap_or_else(|_| "portal_app".into());
    let password = std::env::var("TEST_APP_DB_PASSWORD").unwrap_or_else(|_| "portal_app".into());
    owner
        .connect_options()
        .as_ref()
        .clone()
        .username(&user)
        .password(&password)
}

impl TestApp {
    pub async fn spawn(owner: PgPool, idp: Idp) -> TestApp {
        Self::spawn_with(owner, idp, |_| {}).await
    }

    pub async fn spawn_with(owner: PgPool, idp: Idp, tweak: impl FnOnce(&mut Config)) -> TestApp {
        server::telemetry::init(false);
        seed_tenants(&owner).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mut config = Config {
            bind: addr,
            public_url: url::Url::parse(&base).expect("url"),
            database_url: Secret::new("unused: the pool is built below"),
            migration_database_url: None,
            secret_key: Secret::new(base64::engine::general_purpose::STANDARD.encode([9u8; 32])),
            oidc: OidcConfig {
                issuer: idp.issuer.clone(),
                client_id: idp.client_id.clone(),
                client_secret: Secret::new(idp.client_secret.clone()),
                scopes: vec!["openid".into(), "profile".into(), "email".into()],
            },
            role_mapping: RoleMapping::default(),
            session_idle: Duration::minutes(30),
            session_absolute: Duration::hours(12),
            site_root: std::env::var("PORTAL_SITE_ROOT")
                .unwrap_or_else(|_| "../target/site".into()),
            log_json: false,
            db_max_connections: 5,
            resilience: Default::default(),
            sync: server::config::SyncConfig::default(),
            limits: server::config::Limits::default(),
        };
        tweak(&mut config);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect_lazy_with(app_role_options(&owner));
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let router = server::startup::router(&config, pool, clock.clone()).expect("router");
        tokio::spawn(async move { axum::serve(listener, router).await });
        TestApp {
            base,
            owner,
            clock,
            http: browser(),
            idp,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// Walks the sign-in up to (not including) the provider's redirect back to the
    /// portal, filling the provider's login form like a person would. Returns the
    /// callback URL the provider sent the browser to.
    pub async fn sign_in_until_callback(&self, user: &str, password: &str) -> String {
        let mut url = self.url("/auth/login?next=/t/acme");
        let mut posted = false;
        for _ in 0..20 {
            if url.starts_with(&self.url("/auth/callback")) {
                return url;
            }
            let res = self
                .http
                .get(&url)
                .send()
                .await
                .expect("GET during sign-in");
            if res.status().is_redirection() {
                url = resolve(&url, res.headers());
                continue;
            }
            assert_eq!(res.status(), StatusCode::OK, "unexpected page at {url}");
            assert!(
                !posted,
                "the provider showed its form again at {url}: wrong password?"
            );
            let html = res.text().await.expect("body");
            let action =
                form_action(&html).unwrap_or_else(|| panic!("no login form at {url}: {html}"));
            let action = resolve_str(&url, &action);
            let res = self
                .http
                .post(&action)
                .form(&[("username", user), ("password", password)])
                .send()
                .await
                .expect("POST login form");
            posted = true;
            if res.status().is_redirection() {
                url = resolve(&action, res.headers());
            } else {
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                panic!(
                    "login form answered {status}: {}",
                    &body[..body.len().min(400)]
                );
            }
        }
        panic!("sign-in did not reach the callback");
    }

    /// Completes a sign-in by visiting the callback; returns where the portal sent us.
    pub async fn visit_callback(&self, callback: &str) -> String {
        let res = self.http.get(callback).send().await.expect("callback");
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "callback status");
        res.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("callback location")
            .to_string()
    }

    pub async fn sign_in(&self, user: &str) {
        let callback = self
            .sign_in_until_callback(user, &format!("{user}-demo"))
            .await;
        let location = self.visit_callback(&callback).await;
        assert_eq!(
            location, "/t/acme",
            "sign-in should return to the requested page"
        );
    }

    /// True when a protected page is served (not redirected to the login page).
    /// Another browser (its own cookies) on the same portal, signed in as `user`.
    pub async fn another_browser(&self, user: &str) -> TestApp {
        let other = TestApp {
            base: self.base.clone(),
            owner: self.owner.clone(),
            clock: self.clock.clone(),
            http: browser(),
            idp: self.idp.clone(),
        };
        other.sign_in(user).await;
        other
    }

    pub async fn is_signed_in(&self) -> bool {
        let res = self.get("/t/acme").await;
        match res.status() {
            StatusCode::OK | StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => true,
            StatusCode::SEE_OTHER => {
                let loc = res
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                assert!(loc.starts_with("/login"), "unexpected redirect to {loc}");
                false
            }
            other => panic!("unexpected status {other}"),
        }
    }

    pub async fn session_rows(&self) -> i64 {
        sqlx::query_scalar("select count(*) from web_session")
            .fetch_one(&self.owner)
            .await
            .expect("count sessions")
    }

    /// A POST as the portal's own pages send it (same origin).
    pub fn same_origin_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
    }
}

pub fn resolve(current: &str, headers: &HeaderMap) -> String {
    let loc = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("redirect without location");
    resolve_str(current, loc)
}

pub fn resolve_str(current: &str, target: &str) -> String {
    url::Url::parse(current)
        .and_then(|u| u.join(target))
        .expect("resolvable URL")
        .to_string()
}

fn form_action(html: &str) -> Option<String> {
    let start = html.find("<form")?;
    let rest = &html[start..];
    let a = rest.find("action=\"")? + "action=\"".len();
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

/// The portal's secret key in these tests (the same as `TestApp`'s configuration), so
/// shard API keys sealed by a test open in the portal.
pub fn secrets() -> Arc<app::data::secret::SecretBox> {
    Arc::new(app::data::secret::SecretBox::new(&[9u8; 32]).expect("secret key"))
}

/// The test database as the application role, as the portal runs (row-level security).
pub fn app_pool(owner: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy_with(app_role_options(owner))
}

/// Registers a shard (its API key sealed as `portal shard upsert` seals it) and places
/// every tenant on it.
pub async fn add_shard(owner: &PgPool, cluster_id: &str, url: &str, key: &str) -> uuid::Uuid {
    let id = register_shard(owner, cluster_id, url, url, key).await;
    sqlx::query("update tenant set shard_id = $1")
        .bind(id)
        .execute(owner)
        .await
        .expect("place tenants");
    id
}

/// Registers a shard without placing anyone: `api_url` is where the portal calls it
/// (a fault injector may stand there), `login_url` what devices are told.
pub async fn register_shard(
    owner: &PgPool,
    cluster_id: &str,
    api_url: &str,
    login_url: &str,
    key: &str,
) -> uuid::Uuid {
    app::data::shards::upsert(
        &app_pool(owner),
        &secrets(),
        &app::data::shards::NewShard {
            cluster_id: cluster_id.into(),
            name: cluster_id.into(),
            region: "local".into(),
            login_server_url: login_url.into(),
            api_url: api_url.into(),
            node_capacity: 100,
        },
        key,
    )
    .await
    .expect("shard")
}
