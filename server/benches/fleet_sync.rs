//! Fleet sync benchmark (issue 3; results and how to read them in docs/benchmarks.md).
//!
//! The portal's real `SyncWorker` (claims through Postgres leases, `ShardClient`,
//! `apply_snapshot`) against a real Postgres and a SIMULATED fleet (`fleet_sim`: one
//! in-process HTTP server answering as 200 Headscale v0.29.2 shards of 500 nodes). It
//! measures a first full pass, steady passes after 1 % churn, and a pass with nothing
//! changed: wall time, CPU of the portal, of Postgres and of the simulator, peak RSS,
//! and the rows each pass wrote. Then it splits a steady and a full pass into their read
//! half (HTTP + JSON) and their write half (`apply_snapshot`) to show what dominates.
//! A benchmark, not a test: nothing here asserts a time (STYLE.md, Tests).
//!
//! Run it with `dev/bench`, which starts a private Postgres. By hand:
//! `DATABASE_URL=postgres://owner… cargo bench -p server --bench fleet_sync`.
//!
//! Environment:
//! - `DATABASE_URL`: the owner role (it needs CREATEDB). The benchmark drops and creates
//!   the database `BENCH_DATABASE` (default `fleet_bench`) on that server, runs the
//!   migrations there as the owner, and syncs as the application role
//!   (`BENCH_APP_DB_USER` / `BENCH_APP_DB_PASSWORD`, default `portal_app`), as the portal
//!   does, so row-level security is in force.
//! - `BENCH_SHARDS` (200), `BENCH_NODES_PER_SHARD` (500), `BENCH_TENANTS_PER_SHARD` (5),
//!   `BENCH_MEMBERS_PER_TENANT` (20: portal members, each with a user on the shard that
//!   owns some of the tenant's nodes), `BENCH_CHURN` (0.01), `BENCH_STEADY_PASSES` (3), `BENCH_CONCURRENCY` (16, the
//!   worker's parallel syncs), `BENCH_DB_CONNECTIONS` (20, the portal's default pool).
//! - `BENCH_SETUP_SQL`: SQL run as the owner after seeding, to try a schema change (an
//!   index, say) without a migration.
//! - `BENCH_CLK_TCK` (100): the kernel's clock ticks per second (`getconf CLK_TCK`), the
//!   unit of the CPU times in `/proc`.
//!
//! CPU and memory come from `/proc` (Linux): the process's `utime + stime` (what
//! `getrusage(RUSAGE_SELF)` reports, without a new dependency), less the simulator's
//! thread; Postgres's as the postmaster's and its children's, reaped ones included; peak
//! RSS as `VmHWM`, reset before each pass through `/proc/self/clear_refs`.

mod fleet_sim;

use app::data::secret::SecretBox;
use app::data::shard_users::members_of_shard;
use app::data::shards::{self, NewShard};
use app::data::sync::{apply_snapshot, claim_next_due, Snapshot, SyncTiming};
use app::headscale::{ApiKey, ShardClient, ShardClientOptions};
use fleet_sim::{Churn, FleetConfig, FleetSim};
use server::jobs::sync::{SyncSettings, SyncWorker};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Long enough that no shard comes due again within a pass: each pass makes every shard
/// due itself. (It also sets `max_gap` to 3 hours, so no interval is closed as stale.)
const SYNC_INTERVAL: Duration = Duration::from_secs(3600);
/// A pass that takes longer has hung.
const PASS_LIMIT: Duration = Duration::from_secs(600);

struct Settings {
    shards: usize,
    nodes_per_shard: usize,
    tenants_per_shard: usize,
    members_per_tenant: usize,
    churn: f64,
    steady_passes: usize,
    concurrency: usize,
    db_connections: u32,
    clk_tck: f64,
    database: String,
    owner_url: String,
    app_user: String,
    app_password: String,
}

fn env_or<T: FromStr>(name: &str, default: T) -> BenchResult<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid value").into()),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> BenchResult<Settings> {
        let database: String = env_or("BENCH_DATABASE", "fleet_bench".to_string())?;
        // Interpolated into `create database`: a plain identifier only.
        if database.is_empty()
            || !database
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err("BENCH_DATABASE must be lower-case letters, digits and _".into());
        }
        Ok(Settings {
            shards: env_or("BENCH_SHARDS", 200)?,
            nodes_per_shard: env_or("BENCH_NODES_PER_SHARD", 500)?,
            tenants_per_shard: env_or("BENCH_TENANTS_PER_SHARD", 5)?,
            members_per_tenant: env_or("BENCH_MEMBERS_PER_TENANT", 20)?,
            churn: env_or("BENCH_CHURN", 0.01)?,
            steady_passes: env_or("BENCH_STEADY_PASSES", 3)?,
            concurrency: env_or("BENCH_CONCURRENCY", 16)?,
            db_connections: env_or("BENCH_DB_CONNECTIONS", 20)?,
            clk_tck: env_or("BENCH_CLK_TCK", 100.0)?,
            database,
            owner_url: std::env::var("DATABASE_URL")
                .map_err(|_| "DATABASE_URL (the owner role) is not set; run dev/bench")?,
            app_user: env_or("BENCH_APP_DB_USER", "portal_app".to_string())?,
            app_password: env_or("BENCH_APP_DB_PASSWORD", "portal_app".to_string())?,
        })
    }
}

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet_sync: {e}");
            return ExitCode::FAILURE;
        }
    };
    server::telemetry::init(false);
    let sim = match FleetSim::start(&FleetConfig {
        shards: settings.shards,
        nodes_per_shard: settings.nodes_per_shard,
        tenants_per_shard: settings.tenants_per_shard,
        members_per_tenant: settings.members_per_tenant,
        online_share: 0.6,
        seed: 3,
    }) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("fleet_sync: the simulator did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The runtime `#[tokio::main]` gives the portal: one worker thread per CPU.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet_sync: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(&settings, &sim));
    drop(runtime);
    drop(sim);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet_sync: {e}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------- measuring --

/// CPU seconds of the process, the simulator's thread and Postgres at one moment.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    process: f64,
    simulator: f64,
    postgres: Option<f64>,
}

/// What one measured stretch cost.
#[derive(Clone, Copy, Default)]
struct Cost {
    wall: f64,
    /// The process less the simulator: the portal's sync (and the benchmark's polling).
    portal: f64,
    simulator: f64,
    postgres: Option<f64>,
}

struct Probe {
    clk_tck: f64,
    /// Postgres's postmaster, when it runs on this machine.
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
    async fn new(owner: &PgPool, clk_tck: f64) -> Probe {
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

    fn sample(&self) -> Sample {
        let process = stat_fields("/proc/self/stat")
            .map(|f| self.ticks(&f, &[UTIME, STIME]))
            .unwrap_or(0.0);
        let mut simulator = 0.0;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let dir = task.path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if comm.trim() == FleetSim::THREAD_NAME {
                    if let Some(f) = stat_fields(&dir.join("stat").to_string_lossy()) {
                        simulator += self.ticks(&f, &[UTIME, STIME]);
                    }
                }
            }
        }
        Sample {
            at: Instant::now(),
            process,
            simulator,
            postgres: self.postmaster.map(|pm| self.postgres_cpu(pm)),
        }
    }

    /// The postmaster's own time, its reaped children's, and its live children's.
    fn postgres_cpu(&self, postmaster: u32) -> f64 {
        let mut total = stat_fields(&format!("/proc/{postmaster}/stat"))
            .map(|f| self.ticks(&f, &[UTIME, STIME, CUTIME, CSTIME]))
            .unwrap_or(0.0);
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let name = p.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                if let Some(f) = stat_fields(&format!("/proc/{pid}/stat")) {
                    if f.get(PPID).copied() == Some(u64::from(postmaster)) {
                        total += self.ticks(&f, &[UTIME, STIME]);
                    }
                }
            }
        }
        total
    }
}

fn cost(before: &Sample, after: &Sample) -> Cost {
    let simulator = after.simulator - before.simulator;
    Cost {
        wall: after.at.duration_since(before.at).as_secs_f64(),
        portal: (after.process - before.process) - simulator,
        simulator,
        postgres: before.postgres.zip(after.postgres).map(|(b, a)| a - b),
    }
}

/// Starts a new peak for `VmHWM` (Linux ≥ 4.0); false where the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` (peak) or `VmRSS` (now) of the process.
fn rss_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

// ---------------------------------------------------------------- passes --

/// Rows the mirror got in one pass, from the rows' own timestamps.
#[derive(Clone, Copy, Default, sqlx::FromRow)]
struct Rows {
    nodes_inserted: i64,
    nodes_updated: i64,
    nodes_removed: i64,
    keys_inserted: i64,
    keys_updated: i64,
    keys_removed: i64,
    intervals_opened: i64,
    intervals_closed: i64,
    /// Members' shard users recorded (`shard_user`).
    users_recorded: i64,
}

impl Rows {
    fn total(&self) -> i64 {
        self.nodes_inserted
            + self.nodes_updated
            + self.nodes_removed
            + self.keys_inserted
            + self.keys_updated
            + self.keys_removed
            + self.intervals_opened
            + self.intervals_closed
            + self.users_recorded
    }
}

struct Pass {
    label: String,
    cost: Cost,
    peak_rss_mib: Option<f64>,
    /// RSS when the pass started.
    start_rss_mib: Option<f64>,
    rows: Rows,
    wal_mib: f64,
    failed: i64,
    /// Mean and longest `last_sync_latency_ms` (reading version, nodes and keys).
    read_ms: (f64, i64),
    churn: Option<Churn>,
}

struct Bench<'a> {
    settings: &'a Settings,
    sim: &'a FleetSim,
    owner: PgPool,
    pool: PgPool,
    probe: Probe,
    worker: SyncWorker,
    /// `cluster_id` → shard index in the simulator.
    cluster_index: HashMap<String, usize>,
}

async fn run(settings: &Settings, sim: &FleetSim) -> BenchResult<()> {
    let admin_options = PgConnectOptions::from_str(&settings.owner_url)?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin_options.clone())
        .await?;
    let db = &settings.database;
    sqlx::raw_sql(&format!("drop database if exists {db} with (force)"))
        .execute(&admin)
        .await?;
    sqlx::raw_sql(&format!("create database {db}"))
        .execute(&admin)
        .await?;
    admin.close().await;

    let owner_options = admin_options.database(db);
    let owner = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(owner_options.clone())
        .await?;
    server::startup::MIGRATOR.run(&owner).await?;
    // As `server::startup::app_pool` builds the portal's pool.
    let pool = PgPoolOptions::new()
        .max_connections(settings.db_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(
            owner_options
                .clone()
                .username(&settings.app_user)
                .password(&settings.app_password)
                .application_name("headscale-portal"),
        )
        .await?;

    let secrets = Arc::new(SecretBox::new(&[3u8; 32]).map_err(|e| format!("{e:?}"))?);
    let seeded = Instant::now();
    let mut cluster_index = HashMap::new();
    let (mut codes, mut shard_ids) = (Vec::new(), Vec::new());
    for n in 0..sim.shards() {
        let cluster_id = format!("sim-{n:03}");
        let url = sim.api_url(n);
        let id = shards::upsert(
            &pool,
            &secrets,
            &NewShard {
                cluster_id: cluster_id.clone(),
                name: cluster_id.to_uppercase(),
                region: "sim".into(),
                login_server_url: url.clone(),
                api_url: url,
                node_capacity: i32::try_from(settings.nodes_per_shard * 2).unwrap_or(i32::MAX),
            },
            &sim.api_key(n),
        )
        .await?;
        for code in sim.tenant_codes(n) {
            codes.push(code);
            shard_ids.push(id);
        }
        cluster_index.insert(cluster_id, n);
    }
    sqlx::query(
        "insert into tenant (code, slug, display_name, shard_id, placement_reason)
         select code, code, 'Tenant ' || upper(code), shard_id, 'fleet benchmark'
           from unnest($1::text[], $2::uuid[]) as t(code, shard_id)",
    )
    .bind(&codes)
    .bind(&shard_ids)
    .execute(&owner)
    .await?;
    // Members as sign-in makes them; the handle trigger turns `member07@…` into
    // `member07`, so each has the shard user `<code>.member07` the simulator shows.
    sqlx::query(
        "with p as (
           insert into person (issuer, subject, email, display_name)
           select 'https://idp.fleet-bench.invalid', t.code || '-' || m,
                  'member' || lpad(m::text, 2, '0') || '@' || t.code || '.example.com',
                  'Member ' || m
             from tenant t, generate_series(0, $1 - 1) m
           returning id, subject)
         insert into membership (tenant_id, person_id, role, source)
         select t.id, p.id, 'member', 'portal'
           from p join tenant t on t.code = split_part(p.subject, '-', 1)",
    )
    .bind(i32::try_from(settings.members_per_tenant)?)
    .execute(&owner)
    .await?;
    if let Ok(extra) = std::env::var("BENCH_SETUP_SQL") {
        sqlx::raw_sql(&extra).execute(&owner).await?;
    }
    // Tenants and members exist long before a shard's first sync.
    vacuum(&owner).await?;
    let seeded = seeded.elapsed();

    let probe = Probe::new(&owner, settings.clk_tck).await;
    let worker = SyncWorker::new(
        pool.clone(),
        secrets,
        SyncSettings::new(SYNC_INTERVAL, settings.concurrency),
    );
    let bench = Bench {
        settings,
        sim,
        owner,
        pool,
        probe,
        worker,
        cluster_index,
    };
    bench.header(codes.len(), seeded).await?;

    let mut passes = vec![bench.worker_pass("full pass", None).await?];
    let mirrored: i64 = sqlx::query_scalar("select count(*) from node where removed_at is null")
        .fetch_one(&bench.owner)
        .await?;
    if mirrored != sim.nodes() as i64 || passes[0].failed > 0 {
        return Err(format!(
            "the first pass mirrored {mirrored} of {} nodes ({} shards failed); see the log",
            sim.nodes(),
            passes[0].failed
        )
        .into());
    }
    for i in 1..=settings.steady_passes {
        let churn = sim.churn(settings.churn);
        let label = format!("steady #{i} ({} % churn)", settings.churn * 100.0);
        passes.push(bench.worker_pass(&label, Some(churn)).await?);
    }
    passes.push(bench.worker_pass("no change", None).await?);
    print_passes(&passes);

    // The same work in two halves, to see what dominates.
    let mut halves = Vec::new();
    let churn = sim.churn(settings.churn);
    println!(
        "\nsplitting a steady pass ({} nodes changed) and a full pass into read and write…",
        churn.nodes_changed()
    );
    halves.extend(bench.split_pass("steady").await?);
    sqlx::raw_sql(
        "truncate node_online_interval, node, pre_auth_key;
         update shard set last_sync_at = null, health = 'unknown';",
    )
    .execute(&bench.owner)
    .await?;
    halves.extend(bench.split_pass("full").await?);
    print_halves(&halves);
    print_targets(&passes);
    Ok(())
}

/// `vacuum analyze` of the portal's tables (the shared catalogs are the superuser's).
async fn vacuum(owner: &PgPool) -> BenchResult<()> {
    let tables: String = sqlx::query_scalar(
        "select string_agg(format('%I', tablename), ', ') from pg_tables
          where schemaname = 'public'",
    )
    .fetch_one(owner)
    .await?;
    sqlx::raw_sql(&format!("vacuum analyze {tables}"))
        .execute(owner)
        .await?;
    Ok(())
}

impl Bench<'_> {
    async fn header(&self, tenants: usize, seeded: Duration) -> BenchResult<()> {
        let version: String = sqlx::query_scalar("show server_version")
            .fetch_one(&self.owner)
            .await?;
        let s = self.settings;
        println!(
            "Fleet sync benchmark: {} simulated shards × {} nodes ({} nodes, {tenants} tenants), \
             real Postgres {version}, real SyncWorker",
            s.shards,
            s.nodes_per_shard,
            self.sim.nodes()
        );
        println!(
            "  concurrency {}, pool {} connections, {} CPUs; seeded in {:.1} s; Postgres CPU {}",
            s.concurrency,
            s.db_connections,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            seeded.as_secs_f64(),
            if self.probe.postmaster.is_some() {
                "measured (postmaster and children)"
            } else {
                "not measured (Postgres is not on this machine)"
            }
        );
        Ok(())
    }

    /// Makes every shard due and lets the real worker loop sync them all once.
    async fn worker_pass(&self, label: &str, churn: Option<Churn>) -> BenchResult<Pass> {
        // What autovacuum would have done by the next pass in a running portal.
        vacuum(&self.owner).await?;
        let (mark, due): (OffsetDateTime, i64) = sqlx::query_as(
            "with due as (update shard set next_sync_at = now() where status <> 'disabled'
                          returning 1)
             select now(), count(*) from due",
        )
        .fetch_one(&self.owner)
        .await?;
        let wal_before = self.wal_lsn().await?;
        let peak_reset = reset_peak_rss();
        let start_rss_mib = rss_mib("VmRSS:");
        let requests = self.sim.requests();
        let before = self.probe.sample();

        let handle = self.worker.clone().spawn();
        let failed = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (done, failed): (i64, i64) = sqlx::query_as(
                "select count(*) filter (where last_sync_at >= $1),
                        count(*) filter (where last_sync_attempt_at >= $1
                                           and sync_lease_owner is null
                                           and last_sync_error is not null
                                           and (last_sync_at is null or last_sync_at < $1))
                   from shard",
            )
            .bind(mark)
            .fetch_one(&self.owner)
            .await?;
            if done + failed >= due {
                break failed;
            }
            if before.at.elapsed() > PASS_LIMIT {
                return Err(
                    format!("{label}: {done} of {due} shards synced after {PASS_LIMIT:?}").into(),
                );
            }
        };
        let after = self.probe.sample();
        let peak_rss_mib = if peak_reset { rss_mib("VmHWM:") } else { None };
        handle.shutdown().await;

        let wal_mib = self.wal_mib_since(&wal_before).await?;
        let rows = self.rows_since(mark).await?;
        let read_ms: (Option<f64>, Option<i32>) = sqlx::query_as(
            "select avg(last_sync_latency_ms)::float8, max(last_sync_latency_ms)
               from shard where last_sync_at >= $1",
        )
        .bind(mark)
        .fetch_one(&self.owner)
        .await?;
        let pass = Pass {
            label: label.into(),
            cost: cost(&before, &after),
            peak_rss_mib,
            start_rss_mib,
            rows,
            wal_mib,
            failed,
            read_ms: (read_ms.0.unwrap_or(0.0), i64::from(read_ms.1.unwrap_or(0))),
            churn,
        };
        eprintln!(
            "  {label}: {:.2} s wall, {:.2} s portal CPU, {} rows, {} requests to the shards",
            pass.cost.wall,
            pass.cost.portal,
            pass.rows.total(),
            self.sim.requests() - requests
        );
        Ok(pass)
    }

    async fn wal_lsn(&self) -> BenchResult<String> {
        Ok(sqlx::query_scalar("select pg_current_wal_lsn()::text")
            .fetch_one(&self.owner)
            .await?)
    }

    async fn wal_mib_since(&self, lsn: &str) -> BenchResult<f64> {
        let bytes: f64 = sqlx::query_scalar(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::float8",
        )
        .bind(lsn)
        .fetch_one(&self.owner)
        .await?;
        Ok(bytes / (1024.0 * 1024.0))
    }

    async fn rows_since(&self, mark: OffsetDateTime) -> BenchResult<Rows> {
        Ok(sqlx::query_as(
            "select
               (select count(*) from node where first_synced_at >= $1) as nodes_inserted,
               (select count(*) from node where changed_at >= $1 and first_synced_at < $1
                   and (removed_at is null or removed_at < $1)) as nodes_updated,
               (select count(*) from node where removed_at >= $1) as nodes_removed,
               (select count(*) from pre_auth_key where first_synced_at >= $1) as keys_inserted,
               (select count(*) from pre_auth_key where changed_at >= $1
                   and first_synced_at < $1
                   and (removed_at is null or removed_at < $1)) as keys_updated,
               (select count(*) from pre_auth_key where removed_at >= $1) as keys_removed,
               (select count(*) from node_online_interval where started_at >= $1)
                 as intervals_opened,
               (select count(*) from node_online_interval where ended_at >= $1)
                 as intervals_closed,
               (select count(*) from shard_user where created_at >= $1) as users_recorded",
        )
        .bind(mark)
        .fetch_one(&self.owner)
        .await?)
    }

    /// One pass done in two measured halves with the same concurrency: first every
    /// shard is read (version, nodes, keys, users: HTTP and JSON, what `SyncWorker`
    /// reads), then every snapshot is applied under a claim (the members read for the
    /// user reconciliation, which finds nothing to do by now, and `apply_snapshot`:
    /// building the rows, sqlx, and Postgres).
    async fn split_pass(&self, label: &str) -> BenchResult<[(String, Cost); 2]> {
        vacuum(&self.owner).await?;
        let clients: Vec<ShardClient> = (0..self.sim.shards())
            .map(|n| {
                ShardClient::new(
                    format!("sim-{n:03}"),
                    &self.sim.api_url(n),
                    ApiKey::new(self.sim.api_key(n)),
                    ShardClientOptions::default(),
                )
            })
            .collect::<Result<_, _>>()?;
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));

        let before = self.probe.sample();
        let mut reads = JoinSet::new();
        for (n, client) in clients.into_iter().enumerate() {
            let slots = slots.clone();
            reads.spawn(async move {
                let _slot = slots.acquire_owned().await?;
                let started = Instant::now();
                let version = client.refresh_version().await?;
                let (nodes, pre_auth_keys, _users) = tokio::try_join!(
                    client.list_nodes(),
                    client.list_pre_auth_keys(),
                    client.list_users()
                )?;
                BenchResult::Ok((
                    n,
                    Snapshot {
                        version: version.to_string(),
                        latency: started.elapsed(),
                        nodes,
                        pre_auth_keys,
                    },
                ))
            });
        }
        let mut snapshots: Vec<Option<Snapshot>> = vec![None; self.sim.shards()];
        while let Some(read) = reads.join_next().await {
            let (n, snapshot) = read??;
            snapshots[n] = Some(snapshot);
        }
        let read = cost(&before, &self.probe.sample());
        let snapshots = Arc::new(snapshots);

        sqlx::query("update shard set next_sync_at = now()")
            .execute(&self.owner)
            .await?;
        let timing = SyncTiming::new(SYNC_INTERVAL);
        let me = Uuid::new_v4();
        let lease = Duration::from_secs(120);
        let before = self.probe.sample();
        let mut writers = JoinSet::new();
        for _ in 0..self.settings.concurrency {
            let (pool, snapshots, index) = (
                self.pool.clone(),
                snapshots.clone(),
                self.cluster_index.clone(),
            );
            writers.spawn(async move {
                while let Some(claim) = claim_next_due(&pool, me, lease).await? {
                    let snapshot = index
                        .get(&claim.cluster_id)
                        .and_then(|&n| snapshots[n].as_ref())
                        .ok_or("a shard the simulator does not know")?;
                    members_of_shard(&pool, claim.shard_id).await?;
                    apply_snapshot(&pool, &claim, snapshot, &timing).await?;
                }
                BenchResult::Ok(())
            });
        }
        while let Some(done) = writers.join_next().await {
            done??;
        }
        let write = cost(&before, &self.probe.sample());
        Ok([
            (format!("{label}: read (HTTP + JSON)"), read),
            (format!("{label}: write (apply_snapshot)"), write),
        ])
    }
}

// ---------------------------------------------------------------- output --

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

fn print_passes(passes: &[Pass]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<24} {:>8} {:>10} {:>10} {:>10} {:>15} {:>9} {:>8} {:>7} {:>12}",
        "pass (real SyncWorker)",
        "wall s",
        "portal CPU",
        "Postgres",
        "simulator",
        "RSS start/peak",
        "rows",
        "WAL MiB",
        "failed",
        "read ms avg/max"
    );
    for p in passes {
        let _ = writeln!(
            out,
            "{:<24} {:>8.2} {:>10.2} {:>10} {:>10.2} {:>15} {:>9} {:>8.1} {:>7} {:>8.0}/{}",
            p.label,
            p.cost.wall,
            p.cost.portal,
            secs(p.cost.postgres),
            p.cost.simulator,
            format!(
                "{}/{} MiB",
                p.start_rss_mib
                    .map_or_else(|| "n/a".into(), |m| format!("{m:.0}")),
                p.peak_rss_mib
                    .map_or_else(|| "n/a".into(), |m| format!("{m:.0}"))
            ),
            p.rows.total(),
            p.wal_mib,
            p.failed,
            p.read_ms.0,
            p.read_ms.1
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:>22} {:>22} {:>20} {:>6}  simulated churn",
        "rows written",
        "nodes ins/upd/removed",
        "keys ins/upd/removed",
        "intervals open/close",
        "users"
    );
    for p in passes {
        let churn = p.churn.map_or_else(String::new, |c| {
            format!(
                "+{} on, +{} off, +{} new, -{} gone, {} renamed",
                c.went_online, c.went_offline, c.appeared, c.disappeared, c.renamed
            )
        });
        let _ = writeln!(
            out,
            "{:<24} {:>22} {:>22} {:>20} {:>6}  {}",
            p.label,
            format!(
                "{}/{}/{}",
                p.rows.nodes_inserted, p.rows.nodes_updated, p.rows.nodes_removed
            ),
            format!(
                "{}/{}/{}",
                p.rows.keys_inserted, p.rows.keys_updated, p.rows.keys_removed
            ),
            format!("{}/{}", p.rows.intervals_opened, p.rows.intervals_closed),
            p.rows.users_recorded,
            churn
        );
    }
    let _ = writeln!(
        out,
        "(plus 2 updates of each shard's row per pass: the lease, then the result)"
    );
    print!("{out}");
}

fn print_halves(halves: &[(String, Cost)]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<36} {:>8} {:>11} {:>13} {:>11}",
        "half of a pass", "wall s", "portal CPU", "Postgres CPU", "simulator"
    );
    for (label, c) in halves {
        let _ = writeln!(
            out,
            "{label:<36} {:>8.2} {:>11.2} {:>13} {:>11.2}",
            c.wall,
            c.portal,
            secs(c.postgres),
            c.simulator
        );
    }
    print!("{out}");
}

fn print_targets(passes: &[Pass]) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(full) = passes.first() {
        println!(
            "\ntarget: full pass ≤ 10 s wall: {:.2} s — {}",
            full.cost.wall,
            verdict(full.cost.wall <= 10.0)
        );
    }
    let steady: Vec<&Pass> = passes.iter().filter(|p| p.churn.is_some()).collect();
    if !steady.is_empty() {
        let mut portal: Vec<f64> = steady.iter().map(|p| p.cost.portal).collect();
        portal.sort_by(f64::total_cmp);
        let median = portal[portal.len() / 2];
        let with_pg: Vec<f64> = steady
            .iter()
            .filter_map(|p| p.cost.postgres.map(|pg| pg + p.cost.portal))
            .collect();
        println!(
            "target: steady pass ≤ 1 s CPU: portal {median:.2} s (median of {}) — {}{}",
            steady.len(),
            verdict(median <= 1.0),
            if with_pg.is_empty() {
                String::new()
            } else {
                let mut with_pg = with_pg;
                with_pg.sort_by(f64::total_cmp);
                format!(
                    "; portal + Postgres {:.2} s — {}",
                    with_pg[with_pg.len() / 2],
                    verdict(with_pg[with_pg.len() / 2] <= 1.0)
                )
            }
        );
    }
}
