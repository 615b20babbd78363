//! Prometheus metrics (docs/operations.md, deploy/grafana). Served on a listener of its
//! own (`PORTAL_METRICS_BIND`) so the public ingress never exposes them: they name shards.
//!
//! Counters of work (requests, syncs, pushes) are per replica and summed by Prometheus.
//! What describes the fleet rather than this process (each shard's sync lag and health)
//! is read from Postgres at scrape time, so every replica reports the same, current value
//! whichever replica did the sync.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sqlx::PgPool;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every metric of the process, registered once.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    pub db_pool: IntGaugeVec,
    pub db_pool_max: IntGauge,
    pub db_unavailable: IntCounter,
    pub shard_sync: IntCounterVec,
    pub shard_sync_duration: HistogramVec,
    shard_sync_lag: prometheus::GaugeVec,
    shard_up: IntGaugeVec,
    pub policy_push: IntCounterVec,
    pub jobs_running: IntGaugeVec,
}

const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SYNC_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new("portal_http_requests_total", "HTTP requests answered"),
                &["method", "route", "status"],
            )
            .expect("metric"),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "portal_http_request_duration_seconds",
                    "Time to answer an HTTP request (until the response head)",
                )
                .buckets(HTTP_BUCKETS.to_vec()),
                &["method", "route"],
            )
            .expect("metric"),
            http_in_flight: IntGauge::new(
                "portal_http_requests_in_flight",
                "HTTP requests being answered",
            )
            .expect("metric"),
            db_pool: IntGaugeVec::new(
                Opts::new(
                    "portal_db_pool_connections",
                    "Database connections of this replica's pool",
                ),
                &["state"],
            )
            .expect("metric"),
            db_pool_max: IntGauge::new("portal_db_pool_max_connections", "The pool's maximum size")
                .expect("metric"),
            db_unavailable: IntCounter::new(
                "portal_db_unavailable_total",
                "Requests answered 503 because the database could not be reached in time",
            )
            .expect("metric"),
            shard_sync: IntCounterVec::new(
                Opts::new("portal_shard_sync_total", "Shard syncs run by this replica"),
                &["shard", "outcome"],
            )
            .expect("metric"),
            shard_sync_duration: HistogramVec::new(
                HistogramOpts::new(
                    "portal_shard_sync_duration_seconds",
                    "Time to read a shard's snapshot and write the mirror",
                )
                .buckets(SYNC_BUCKETS.to_vec()),
                &["shard"],
            )
            .expect("metric"),
            shard_sync_lag: prometheus::GaugeVec::new(
                Opts::new(
                    "portal_shard_sync_lag_seconds",
                    "Seconds since the shard's last successful sync (by any replica)",
                ),
                &["shard"],
            )
            .expect("metric"),
            shard_up: IntGaugeVec::new(
                Opts::new(
                    "portal_shard_up",
                    "1 when the shard's last sync succeeded, else 0",
                ),
                &["shard"],
            )
            .expect("metric"),
            policy_push: IntCounterVec::new(
                Opts::new(
                    "portal_policy_push_total",
                    "Policy pushes to shards by this replica",
                ),
                &["shard", "outcome"],
            )
            .expect("metric"),
            jobs_running: IntGaugeVec::new(
                Opts::new(
                    "portal_background_jobs_running",
                    "1 while this replica runs the background task",
                ),
                // Not `job`: Prometheus sets that label to the scrape job's name.
                &["task"],
            )
            .expect("metric"),
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new("portal_build_info", "The portal's version"),
            &["version"],
        )
        .expect("metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(m.http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.http_duration.clone()),
            Box::new(m.http_in_flight.clone()),
            Box::new(m.db_pool.clone()),
            Box::new(m.db_pool_max.clone()),
            Box::new(m.db_unavailable.clone()),
            Box::new(m.shard_sync.clone()),
            Box::new(m.shard_sync_duration.clone()),
            Box::new(m.shard_sync_lag.clone()),
            Box::new(m.shard_up.clone()),
            Box::new(m.policy_push.clone()),
            Box::new(m.jobs_running.clone()),
            Box::new(build),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// A sync of `shard` ended after `took`.
    pub fn sync_done(&self, shard: &str, ok: bool, took: Duration) {
        self.shard_sync
            .with_label_values(&[shard, if ok { "ok" } else { "error" }])
            .inc();
        self.shard_sync_duration
            .with_label_values(&[shard])
            .observe(took.as_secs_f64());
    }

    /// A policy push to `shard` ended: `live`, `refused` (some revision refused by the
    /// shard; the others went live) or `error`.
    pub fn push_done(&self, shard: &str, outcome: &'static str) {
        self.policy_push.with_label_values(&[shard, outcome]).inc();
    }

    /// The text exposition, after refreshing what is read at scrape time.
    async fn render(&self, pool: &PgPool) -> String {
        let unavailable = app::error::DB_UNAVAILABLE.load(std::sync::atomic::Ordering::Relaxed);
        self.db_unavailable
            .inc_by(unavailable.saturating_sub(self.db_unavailable.get()));
        self.db_pool
            .with_label_values(&["idle"])
            .set(pool.num_idle() as i64);
        self.db_pool
            .with_label_values(&["in_use"])
            .set(i64::from(pool.size()) - pool.num_idle() as i64);
        self.db_pool_max
            .set(i64::from(pool.options().get_max_connections()));
        // The fleet's sync state; a scrape during an outage keeps the last values.
        let fleet = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query_as::<_, (String, Option<f64>, bool)>(
                "select cluster_id,
                        extract(epoch from now() - last_sync_at)::float8,
                        health = 'healthy'
                   from shard where status <> 'disabled'",
            )
            .fetch_all(pool),
        )
        .await;
        if let Ok(Ok(rows)) = fleet {
            self.shard_sync_lag.reset();
            self.shard_up.reset();
            for (shard, lag, up) in rows {
                if let Some(lag) = lag {
                    self.shard_sync_lag
                        .with_label_values(&[&shard])
                        .set(lag.max(0.0));
                }
                self.shard_up
                    .with_label_values(&[&shard])
                    .set(i64::from(up));
            }
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Counts and times every request by its route template (never the raw path: a path
/// holds ids and slugs, which would make a series per tenant and device).
pub async fn track(request: Request, next: Next) -> Response {
    let m = metrics();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = request.method().as_str().to_owned();
    m.http_in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    m.http_in_flight.dec();
    m.http_duration
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics` on the metrics listener.
pub async fn serve(State(pool): State<PgPool>) -> Response {
    let body = metrics().render(&pool).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The router of the metrics listener.
pub fn router(pool: PgPool) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .with_state(pool)
}
