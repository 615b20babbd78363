//! Builds the application so that `main` and the tests start it the same way (tests bind
//! port 0 and pass their own clock).

use crate::config::Config;
use crate::jobs::policy::{PolicyPusher, PushHandle, PushSettings};
use crate::jobs::sync::{SyncHandle, SyncSettings, SyncWorker};
use crate::jobs::usage::{UsageHandle, UsageRoller, UsageSettings};
use crate::oidc::Oidc;
use crate::security::SiteOrigin;
use app::auth::clock::Clock;
use app::auth::session::SessionPolicy;
use app::data::secret::SecretBox;
use app::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::future::IntoFuture;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

/// State of the non-Leptos routes (sign-in).
#[derive(Clone)]
pub struct Portal {
    pub app: AppState,
    pub oidc: Arc<Oidc>,
    pub public_url: url::Url,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool for the application role. Lazy: the portal starts (and `/healthz` answers)
/// while the database is still coming up; `/readyz` tells when it is reachable.
pub fn app_pool(database_url: &str, max_connections: u32) -> Result<PgPool, StartupError> {
    app_pool_with(database_url, max_connections, Duration::from_secs(3))
}

/// `app_pool` with the acquire timeout: how long a request waits for a connection (an
/// exhausted pool, a database that is down) before it is answered 503.
pub fn app_pool_with(
    database_url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, StartupError> {
    let options = PgConnectOptions::from_str(database_url)?.application_name("headscale-portal");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A connection Postgres ended (a restart, `pg_terminate_backend`) is found by the
        // check before each use and replaced, instead of failing a request (the default,
        // stated because the fault tests rely on it).
        .test_before_acquire(true)
        .connect_lazy_with(options))
}

pub async fn migrate(database_url: &str) -> Result<(), StartupError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics`, on a listener of its own (`PORTAL_METRICS_BIND`).
    metrics: Option<(TcpListener, Router)>,
    draining: crate::resilience::Draining,
    shutdown_grace: Duration,
    /// The background shard sync, unless `PORTAL_SYNC_INTERVAL_SECONDS=0`.
    sync: Option<SyncHandle>,
    /// The policy push; runs whenever the sync does (they drive the same shards).
    push: Option<PushHandle>,
    /// The usage rollup; runs whenever the sync does.
    usage: Option<UsageHandle>,
}

impl Application {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Application, StartupError> {
        let listener = TcpListener::bind(config.bind).await?;
        Self::build_with_listener(config, clock, listener).await
    }

    pub async fn build_with_listener(
        config: Config,
        clock: Arc<dyn Clock>,
        listener: TcpListener,
    ) -> Result<Application, StartupError> {
        if let Some(url) = &config.migration_database_url {
            migrate(url.expose()).await?;
            tracing::info!("migrations applied");
        }
        let pool = app_pool_with(
            config.database_url.expose(),
            config.db_max_connections,
            config.resilience.db_acquire_timeout,
        )?;
        let state = app_state(&config, pool, clock)?;
        let draining = crate::resilience::Draining::default();
        let router = router_with(&config, state.clone(), draining.clone())?;
        let metrics = match config.resilience.metrics_bind {
            Some(addr) => Some((
                TcpListener::bind(addr).await?,
                crate::metrics::router(state.pool.clone()),
            )),
            None => None,
        };
        let sync = config.sync.interval.map(|interval| {
            SyncWorker::new(
                state.pool.clone(),
                state.secrets.clone(),
                SyncSettings::new(interval, config.sync.concurrency),
            )
            .spawn()
        });
        let push = config.sync.interval.map(|_| {
            PolicyPusher::new(
                state.pool.clone(),
                state.secrets.clone(),
                PushSettings::default(),
            )
            .spawn()
        });
        let usage = config.sync.interval.map(|interval| {
            UsageRoller::new(
                state.pool.clone(),
                UsageSettings {
                    every: config.sync.usage_every,
                    max_gap: app::data::sync::SyncTiming::new(interval).max_gap,
                },
            )
            .spawn()
        });
        Ok(Application {
            listener,
            router,
            metrics,
            draining,
            shutdown_grace: config.resilience.shutdown_grace,
            sync,
            push,
            usage,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until SIGTERM or Ctrl-C, then drains (docs/reliability.md): `/readyz` turns
    /// 503, no new connections are accepted, requests in flight finish, background jobs
    /// stop at their next safe point and give up their leases (another replica takes the
    /// work over), all within `PORTAL_SHUTDOWN_GRACE_SECONDS`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let jobs = crate::metrics::metrics();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let draining = self.draining.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            draining.start();
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Some((listener, router)) = self.metrics {
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
        }
        let mut serving = tokio::spawn(
            axum::serve(
                self.listener,
                self.router
                    .into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
        );
        for (job, on) in [
            ("sync", self.sync.is_some()),
            ("push", self.push.is_some()),
            ("usage", self.usage.is_some()),
        ] {
            jobs.jobs_running
                .with_label_values(&[job])
                .set(i64::from(on));
        }
        let served = tokio::select! {
            served = &mut serving => Some(served),
            _ = stopped(stop_rx.clone()) => None,
        };
        let grace = self.shutdown_grace;
        let (sync, push, usage) = (self.sync, self.push, self.usage);
        let background = async move {
            // Each stops at a safe point: a sync or push in progress finishes (or its
            // lease is released for another replica), nothing is left half written.
            tokio::join!(
                async {
                    if let Some(j) = sync {
                        j.shutdown().await;
                    }
                },
                async {
                    if let Some(j) = push {
                        j.shutdown().await;
                    }
                },
                async {
                    if let Some(j) = usage {
                        j.shutdown().await;
                    }
                },
            );
            for job in ["sync", "push", "usage"] {
                jobs.jobs_running.with_label_values(&[job]).set(0);
            }
            tracing::info!("background jobs stopped");
        };
        let drained = async {
            match served {
                Some(served) => served,
                None => (&mut serving).await,
            }
        };
        let finished =
            tokio::time::timeout(grace, async { tokio::join!(drained, background).0 }).await;
        match finished {
            Ok(Ok(result)) => {
                tracing::info!("drained; exiting");
                result
            }
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => {
                tracing::warn!(
                    grace_s = grace.as_secs(),
                    "requests still in flight after the shutdown grace; exiting anyway"
                );
                serving.abort();
                Ok(())
            }
        }
    }

    /// For tests: serve (and sync) until the returned handle is dropped with the runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some((listener, router)) = self.metrics {
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
        }
        tokio::spawn(async move {
            let _sync = self.sync;
            let _push = self.push;
            let _usage = self.usage;
            axum::serve(
                self.listener,
                self.router
                    .into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        })
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// The routes, without background jobs (tests that need the sync start a `SyncWorker`).
pub fn router(
    config: &Config,
    pool: PgPool,
    clock: Arc<dyn Clock>,
) -> Result<Router, StartupError> {
    router_with_state(config, app_state(config, pool, clock)?)
}

pub fn router_with_state(config: &Config, state: AppState) -> Result<Router, StartupError> {
    router_with(config, state, crate::resilience::Draining::default())
}

/// What every handler can reach; also what the background jobs need.
pub fn app_state(
    config: &Config,
    pool: PgPool,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartupError> {
    let secrets = SecretBox::new(&config.secret_key_bytes())
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let public_origin = config.public_origin();
    let leptos_options = LeptosOptions::builder()
        .output_name("portal")
        .site_root(config.site_root.clone())
        .site_pkg_dir("pkg")
        .site_addr(config.bind)
        .build();
    Ok(AppState {
        leptos_options,
        pool,
        clock,
        session_policy: SessionPolicy {
            idle_timeout: config.session_idle,
            absolute_lifetime: config.session_absolute,
        },
        role_mapping: Arc::new(config.role_mapping.clone()),
        secrets: Arc::new(secrets),
        public_origin: public_origin.into(),
        // Actions people take on a shard answer within 10 s, or fail with a sentence:
        // one attempt per call (the person can try again), so the first call to a hung
        // shard (the version probe, a read) fails at the timeout and not at the
        // request deadline after a retry; 7 s leaves a mint whose answer was lost the
        // time to find and expire the key it may have made (api/keys.rs, issue 8,
        // server/tests/faults_upstream.rs).
        shard_clients: Arc::new(app::headscale::ShardClients::new(
            app::headscale::ShardClientOptions {
                timeout: std::time::Duration::from_secs(7),
                max_retries: 0,
                ..Default::default()
            },
        )),
    })
}

fn idp_origin(issuer: &str) -> String {
    url::Url::parse(issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

fn router_with(
    config: &Config,
    state: AppState,
    draining: crate::resilience::Draining,
) -> Result<Router, StartupError> {
    let public_origin = config.public_origin();
    let leptos_options = state.leptos_options.clone();
    let pool = state.pool.clone();
    let oidc = Oidc::new(config.oidc.clone(), &config.public_url, config.is_https())
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let portal = Portal {
        app: state.clone(),
        oidc: Arc::new(oidc),
        public_url: config.public_url.clone(),
    };
    let site = SiteOrigin {
        origin: public_origin.into(),
        https: config.is_https(),
        // The sign-out form is answered with a redirect to the provider's logout page.
        form_action: format!("'self' {}", idp_origin(&config.oidc.issuer)).into(),
    };

    let store = PostgresStore::new(pool.clone())
        .with_schema_name("public")
        .and_then(|s| s.with_table_name("web_session"))
        .map_err(StartupError::Other)?;
    spawn_expired_session_cleanup(store.clone(), pool.clone());
    let sessions = SessionManagerLayer::new(store)
        .with_name(if config.is_https() {
            "__Host-portal_session"
        } else {
            "portal_session"
        })
        .with_secure(config.is_https())
        .with_http_only(true)
        // Lax, not Strict: a person following a link to the portal from chat or mail
        // should arrive signed in. Every state change is a POST checked for its origin
        // (security.rs), which is what Strict would add. See docs/decisions.
        .with_same_site(tower_sessions::cookie::SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(config.session_idle));

    let routes = generate_route_list(app::App);
    let leptos_router: Router = Router::<AppState>::new()
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let state = state.clone();
                move || provide_context(state.clone())
            },
            {
                let options = leptos_options.clone();
                move || app::shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(
            {
                let state = state.clone();
                move || provide_context(state.clone())
            },
            app::shell,
        ))
        .with_state(state.clone());

    let login_limit = crate::rest::ratelimit::PerClient {
        limiter: Arc::new(crate::rest::ratelimit::Limiter::new(config.limits.login)),
        trust_forwarded_for: config.limits.trust_forwarded_for,
    };
    let auth_router: Router = Router::new()
        .route("/auth/login", get(crate::oidc::login))
        .route("/auth/callback", get(crate::oidc::callback))
        // Guessing at sign-ins (or flooding the provider through us) is slowed down.
        .route_layer(axum::middleware::from_fn_with_state(
            login_limit,
            crate::rest::ratelimit::per_client,
        ))
        .route("/auth/logout", post(crate::oidc::logout))
        .with_state(portal);
    let export_router: Router = Router::new()
        .route("/t/{slug}/usage/export", get(crate::billing::tenant_export))
        .route(
            "/operator/usage/export",
            get(crate::billing::operator_export),
        )
        .route(
            "/t/{slug}/audit/export",
            get(crate::audit_export::tenant_export),
        )
        .route(
            "/operator/audit/export",
            get(crate::audit_export::operator_export),
        )
        .with_state(state.clone());

    let main = auth_router
        .merge(export_router)
        .merge(leptos_router)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth_layer::resolve_principal,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(
            site.clone(),
            crate::security::refuse_cross_site,
        ));

    let health: Router = Router::new()
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .with_state((pool, draining));

    // Token-authenticated, outside the session and same-site layers (docs/api.md).
    let api = crate::rest::router(
        state.clone(),
        crate::rest::ApiLimits {
            per_token: config.limits.api,
        },
    );

    // Outermost last: the request id is set first, so the log span and the response
    // carry it; the deadline is inside the metrics, so a request cut off by it is
    // counted as the 503 it was answered with.
    let request_id = http::HeaderName::from_static("x-request-id");
    Ok(health
        .merge(api)
        .merge(main)
        .layer(axum::middleware::from_fn_with_state(
            site,
            crate::security::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            crate::resilience::Deadline(config.resilience.request_timeout),
            crate::resilience::deadline,
        ))
        .layer(axum::middleware::from_fn(crate::resilience::retry_after))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::RequestSpan)
                .on_request(())
                .on_response(crate::telemetry::log_response),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            request_id.clone(),
        ))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            request_id,
            tower_http::request_id::MakeRequestUuid,
        )))
}

/// Every ten minutes: expired sessions and day-old idempotency keys go.
fn spawn_expired_session_cleanup(store: PostgresStore, pool: PgPool) {
    use tower_sessions::session_store::ExpiredDeletion;
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) = store.delete_expired().await {
                    tracing::warn!(error = %e, "could not delete expired sessions");
                }
                if let Err(e) = app::data::idempotency::purge(&pool).await {
                    tracing::warn!(error = %e, "could not delete old idempotency keys");
                }
            }
        });
    }
}
