//! What the benchmarks share: a fresh database migrated as the owner, the portal's
//! configuration for a benchmark, signed-in sessions as the sign-in callback makes them,
//! and CPU time read from `/proc`.
//!
//! Benchmarks are separate crates, each with its own copy of this module (`mod common;`),
//! and not each of them uses all of it.
#![allow(dead_code)]

use app::auth::clock::SystemClock;
use app::auth::session::establish;
use app::domain::groups::RoleMapping;
use base64::Engine;
use server::config::{Config, OidcConfig, Secret, SyncConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::error::Error;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tower_sessions::{Expiry, Session};
use tower_sessions_sqlx_store::PostgresStore;
use uuid::Uuid;

pub type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The names the runtimes give their threads (15 bytes at most: `/proc/*/comm`), so that
/// [`Probe`] can tell the portal's CPU from the client's.
pub const SERVER_THREAD: &str = "portal-server";
pub const CLIENT_THREAD: &str = "load-generator";

/// The variable's value parsed, `default` if it is unset or blank; an error if it does
/// not parse (a typo should not silently measure the default).
pub fn env_or<T: FromStr>(name: &str, default: T) -> BenchResult<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid value").into()),
        _ => Ok(default),
    }
}

/// `BENCH_DATABASE` or `default`, checked: it is interpolated into `create database`, so
/// a plain identifier only.
pub fn database_name(default: &str) -> BenchResult<String> {
    let database: String = env_or("BENCH_DATABASE", default.to_string())?;
    if database.is_empty()
        || !database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("BENCH_DATABASE must be lower-case letters, digits and _".into());
    }
    Ok(database)
}

/// Drops and creates `database` as the owner role of `owner_url` (it needs CREATEDB) and
/// runs the portal's migrations there as the owner. Returns a small owner pool on the new
/// database (for seeding) and its connect options (to derive the application role's).
pub async fn fresh_database(
    owner_url: &str,
    database: &str,
) -> BenchResult<(PgPool, PgConnectOptions)> {
    let admin_options = PgConnectOptions::from_str(owner_url)?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin_options.clone())
        .await?;
    sqlx::raw_sql(&format!("drop database if exists {database} with (force)"))
        .execute(&admin)
        .await?;
    sqlx::raw_sql(&format!("create database {database}"))
        .execute(&admin)
        .await?;
    admin.close().await;

    let owner_options = admin_options.database(database);
    let owner = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(owner_options.clone())
        .await?;
    server::startup::MIGRATOR.run(&owner).await?;
    Ok((owner, owner_options))
}

/// As `server/tests/common/mod.rs` configures the portal; the identity provider is never
/// contacted (nobody signs in through it here), and no background job runs.
pub fn portal_config(addr: SocketAddr) -> Result<Config, Box<dyn Error + Send + Sync>> {
    let base = format!("http://{addr}");
    Ok(Config {
        bind: addr,
        public_url: url::Url::parse(&base)?,
        database_url: Secret::new("unused: the pool is built by the benchmark"),
        migration_database_url: None,
        secret_key: Secret::new(base64::engine::general_purpose::STANDARD.encode([4u8; 32])),
        oidc: OidcConfig {
            issuer: "http://127.0.0.1:9/application/o/portal/".into(),
            client_id: "portal".into(),
            client_secret: Secret::new("unused"),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
        },
        role_mapping: RoleMapping::default(),
        session_idle: time::Duration::minutes(30),
        session_absolute: time::Duration::hours(12),
        // Server-side rendering needs no site assets.
        site_root: std::env::var("PORTAL_SITE_ROOT").unwrap_or_else(|_| "target/site".into()),
        log_json: false,
        db_max_connections: 20,
        resilience: Default::default(),
        sync: SyncConfig {
            interval: None,
            ..SyncConfig::default()
        },
        // Benchmarks measure the portal, not its rate limits.
        limits: server::config::Limits {
            api: server::rest::ratelimit::Rate {
                per_minute: u32::MAX / 2,
                burst: u32::MAX / 2,
            },
            ..Default::default()
        },
    })
}

/// The portal's session store (`web_session`), as `server::startup` configures it.
pub fn session_store(pool: &PgPool) -> BenchResult<PostgresStore> {
    PostgresStore::new(pool.clone())
        .with_schema_name("public")
        .and_then(|s| s.with_table_name("web_session"))
        .map_err(|e| format!("session store: {e}").into())
}

/// `n` signed-in sessions of `person_id`, each as the sign-in callback leaves it; returns
/// their `Cookie` header values.
pub async fn mint_sessions(
    store: &PostgresStore,
    person_id: Uuid,
    n: usize,
) -> BenchResult<Vec<String>> {
    let store = Arc::new(store.clone());
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let session = Session::new(
            None,
            store.clone(),
            Some(Expiry::OnInactivity(time::Duration::minutes(30))),
        );
        establish(&session, person_id, "bench-id-token".into(), &SystemClock).await?;
        session.save().await?;
        let id = session.id().ok_or("the session has no id after saving")?;
        // `portal_session`: the cookie's name over plain HTTP (server/src/startup.rs).
        cookies.push(format!("portal_session={id}"));
    }
    Ok(cookies)
}

// ------------------------------------------------------------------- CPU --

/// CPU seconds at one moment.
#[derive(Clone, Copy, Default)]
pub struct CpuSample {
    at: Option<Instant>,
    pub server: f64,
    pub client: f64,
    pub other_threads: f64,
    pub postgres: Option<f64>,
    /// Every CPU of the machine busy (`/proc/stat`), whoever used it.
    pub machine: Option<f64>,
}

#[derive(Clone, Copy, Default)]
pub struct CpuDelta {
    pub wall: f64,
    pub server: f64,
    pub client: f64,
    pub other_threads: f64,
    pub postgres: Option<f64>,
    pub machine: Option<f64>,
}

impl CpuDelta {
    /// CPU the machine spent on neither this process nor Postgres: other programs on a
    /// shared machine, which the measured numbers then also paid for.
    pub fn elsewhere(&self) -> Option<f64> {
        let ours = self.server + self.client + self.other_threads + self.postgres?;
        Some((self.machine? - ours).max(0.0))
    }
}

impl CpuSample {
    pub fn since(&self, earlier: &CpuSample) -> CpuDelta {
        let wall = match (self.at, earlier.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
            _ => 0.0,
        };
        CpuDelta {
            wall,
            server: self.server - earlier.server,
            client: self.client - earlier.client,
            other_threads: self.other_threads - earlier.other_threads,
            postgres: self.postgres.zip(earlier.postgres).map(|(a, b)| a - b),
            machine: self.machine.zip(earlier.machine).map(|(a, b)| a - b),
        }
    }
}

/// Samples the CPU time of this process's threads (by the names the runtimes give
/// them), of Postgres and of the whole machine.
pub struct Probe {
    clk_tck: f64,
    postmaster: Option<u32>,
}

/// Fields 3… of `/proc/<pid>/stat` (after the command name, which may hold spaces).
fn stat_fields(path: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // The state letter (field 3) is not a number; keep the slot so indices match.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

// Indices into `stat_fields` (field number − 3; see proc(5)).
const PPID: usize = 1;
const UTIME: usize = 11;
const STIME: usize = 12;
const CUTIME: usize = 13;
const CSTIME: usize = 14;

impl Probe {
    pub async fn new(owner: &PgPool, clk_tck: f64) -> Probe {
        let backend: Option<i32> = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(owner)
            .await
            .ok();
        let postmaster = backend
            .and_then(|pid| stat_fields(&format!("/proc/{pid}/stat")))
            .and_then(|f| u32::try_from(*f.get(PPID)?).ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "postgres")
            });
        Probe {
            clk_tck,
            postmaster,
        }
    }

    fn ticks(&self, f: &[u64], fields: &[usize]) -> f64 {
        fields
            .iter()
            .map(|&i| f.get(i).copied().unwrap_or(0))
            .sum::<u64>() as f64
            / self.clk_tck
    }

    pub fn sample(&self) -> CpuSample {
        let mut s = CpuSample {
            at: Some(Instant::now()),
            ..CpuSample::default()
        };
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let dir = task.path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                let cpu = stat_fields(&dir.join("stat").to_string_lossy())
                    .map_or(0.0, |f| self.ticks(&f, &[UTIME, STIME]));
                match comm.trim() {
                    SERVER_THREAD => s.server += cpu,
                    CLIENT_THREAD => s.client += cpu,
                    _ => s.other_threads += cpu,
                }
            }
        }
        s.postgres = self.postmaster.and_then(|pm| {
            let own = stat_fields(&format!("/proc/{pm}/stat"))?;
            let mut total = self.ticks(&own, &[UTIME, STIME, CUTIME, CSTIME]);
            for entry in std::fs::read_dir("/proc").ok()?.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(f) = stat_fields(&format!("/proc/{pid}/stat")) {
                    if f.get(PPID).copied() == Some(u64::from(pm)) {
                        total += self.ticks(&f, &[UTIME, STIME]);
                    }
                }
            }
            Some(total)
        });
        s.machine = self.machine_busy();
        s
    }

    /// Busy time of all CPUs: the first line of `/proc/stat` less idle and iowait.
    fn machine_busy(&self) -> Option<f64> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let busy = f.iter().take(8).sum::<u64>() - f.get(3)? - f.get(4)?;
        Some(busy as f64 / self.clk_tck)
    }
}
