//! Billing export benchmark (issue 6; results and how to read them in
//! docs/benchmarks.md, "Billing export").
//!
//! The portal's real router (`server::startup::router`: sessions in Postgres, the auth
//! layer, the export handler `server::billing`, the data layer under row-level security)
//! streams `GET /t/acme/usage/export?month=2026-10&kind=detail` to acme's admin, and
//! `GET /operator/usage/export?month=2026-10&kind=detail` (every tenant's rows) to an
//! operator, over HTTP on 127.0.0.1 to a reqwest client in the same process. The client
//! counts `\r\n`-terminated lines and bytes as the chunks arrive and keeps none of them.
//! Per download: wall time, rows/s, MB/s, and the process's peak resident memory during
//! the export (the high-water mark is reset before each run by writing `5` to
//! `/proc/self/clear_refs`, and `VmHWM` read from `/proc/self/status` after it), with the
//! CPU of the portal's threads, the client's thread and Postgres.
//!
//! A benchmark, not a test: nothing here asserts a time (STYLE.md, Tests); the issue's
//! targets are printed as met or not. The run fails only if an export is not what was
//! seeded: the header line or the number of rows.
//!
//! Signing in: sessions are made as the sign-in callback makes them
//! (`app::auth::session::establish` into the real `web_session` store), one for a person
//! with an `admin` membership of acme, one for an operator (`person.is_operator`).
//!
//! Run it with `dev/bench-billing`, which starts a private Postgres. By hand:
//! `DATABASE_URL=postgres://owner… cargo bench -p server --bench billing_export`.
//!
//! Environment:
//! - `DATABASE_URL`: the owner role (it needs CREATEDB). The benchmark drops and creates
//!   the database `BENCH_DATABASE` (default `billing_bench`), runs the migrations and
//!   seeds as the owner, and serves as the application role (`BENCH_APP_DB_USER` /
//!   `BENCH_APP_DB_PASSWORD`, default `portal_app`), as the portal does.
//! - `BENCH_ROWS` (1000000): acme's device-days in October 2026, so the tenant export;
//!   `BENCH_OTHER_ROWS` (100000): two other tenants' device-days on the same shard, in
//!   the operator's export only. Postgres writes them itself (`generate_series`): this
//!   process never holds the rows.
//! - `BENCH_RUNS` (3): measured downloads of each export, after one warm-up download.
//! - `BENCH_SERVER_THREADS` (the CPU count: the runtime `#[tokio::main]` gives the
//!   portal); the client has a runtime of one thread of its own.
//! - `BENCH_CLK_TCK` (100): the kernel's clock ticks per second (`getconf CLK_TCK`).

mod common;

use app::auth::clock::SystemClock;
use common::{
    database_name, env_or, fresh_database, mint_sessions, session_store, BenchResult, CpuDelta,
    Probe, CLIENT_THREAD, SERVER_THREAD,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const MONTH: &str = "2026-10";
const DAYS: i64 = 31;
/// The detail export's header (docs/billing-export.md; `server::billing::DETAIL_HEADER`).
const HEADER: &[u8] =
    b"date,tenant_code,shard,device_id,device,owner,online_seconds,online_hours,status\r\n";
/// Issue 6's targets.
const TARGET_ROWS_PER_S: f64 = 300_000.0;
const TARGET_PEAK_RSS_MB: f64 = 64.0;

struct Settings {
    database: String,
    owner_url: String,
    app_user: String,
    app_password: String,
    rows: i64,
    other_rows: i64,
    runs: usize,
    server_threads: usize,
    clk_tck: f64,
}

impl Settings {
    fn from_env() -> BenchResult<Settings> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let settings = Settings {
            database: database_name("billing_bench")?,
            owner_url: std::env::var("DATABASE_URL")
                .map_err(|_| "DATABASE_URL (the owner role) is not set; run dev/bench-billing")?,
            app_user: env_or("BENCH_APP_DB_USER", "portal_app".to_string())?,
            app_password: env_or("BENCH_APP_DB_PASSWORD", "portal_app".to_string())?,
            rows: env_or("BENCH_ROWS", 1_000_000)?,
            other_rows: env_or("BENCH_OTHER_ROWS", 100_000)?,
            runs: env_or("BENCH_RUNS", 3)?,
            server_threads: env_or("BENCH_SERVER_THREADS", cpus)?,
            clk_tck: env_or("BENCH_CLK_TCK", 100.0)?,
        };
        if settings.rows <= 0 || settings.other_rows < 0 || settings.runs == 0 {
            return Err("BENCH_ROWS and BENCH_RUNS must be positive".into());
        }
        Ok(settings)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("billing_export: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    let settings = Settings::from_env()?;
    server::telemetry::init(false);
    // Two runtimes so the CPU of the portal and of the client can be told apart.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.server_threads.max(1))
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;

    let started = Instant::now();
    let env = server_rt.block_on(setup(&settings))?;
    println!(
        "seeded {} device-days of {MONTH}: {} of acme, {} of two other tenants, in {:.1} s",
        env.acme_rows + env.other_rows,
        env.acme_rows,
        env.other_rows,
        started.elapsed().as_secs_f64()
    );
    let probe = server_rt.block_on(Probe::new(&env.owner, settings.clk_tck));
    println!(
        "{} CPUs; load average before the run: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "n/a".into())
    );

    let exports = [
        Export {
            label: "tenant (acme)",
            path: format!("/t/acme/usage/export?month={MONTH}&kind=detail"),
            cookie: env.admin_cookie.clone(),
            rows: env.acme_rows,
        },
        Export {
            label: "operator (all)",
            path: format!("/operator/usage/export?month={MONTH}&kind=detail"),
            cookie: env.operator_cookie.clone(),
            rows: env.acme_rows + env.other_rows,
        },
    ];
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .timeout(Duration::from_secs(600))
        .build()?;
    println!(
        "\n{:<15} {:>4} {:>10} {:>7} {:>8} {:>6} {:>9} {:>9}   CPU s: portal / client / \
         Postgres / other programs",
        "export", "run", "rows", "s", "rows/s", "MB/s", "peak RSS", "RSS bef."
    );
    let mut medians = Vec::new();
    for export in &exports {
        // Unmeasured: the pool's connections, Postgres's caches, the allocator's arenas.
        client_rt.block_on(download(&http, env.portal, export))?;
        let mut runs = Vec::with_capacity(settings.runs);
        for run in 1..=settings.runs {
            let before = status_mib("VmRSS:");
            reset_peak_rss()?;
            let cpu_from = probe.sample();
            let at = Instant::now();
            let got = client_rt.block_on(download(&http, env.portal, export))?;
            let seconds = at.elapsed().as_secs_f64();
            let cpu = probe.sample().since(&cpu_from);
            let peak = status_mib("VmHWM:");
            let r = Run {
                seconds,
                bytes: got.bytes,
                rows: got.rows,
                peak,
                before,
                cpu,
            };
            println!("{:<15} {run:>4} {}", export.label, r.line());
            runs.push(r);
        }
        // The highest peak of the runs, not the median's.
        let peak = runs
            .iter()
            .filter_map(|r| r.peak)
            .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        medians.push((export.label, runs.swap_remove(runs.len() / 2), peak));
    }
    print_summary(&medians, &settings);

    drop(client_rt);
    server_rt.block_on(async {
        env.pool.close().await;
        env.owner.close().await;
    });
    Ok(())
}

// ----------------------------------------------------------------- setup --

struct Env {
    owner: PgPool,
    /// The portal's pool (application role).
    pool: PgPool,
    portal: SocketAddr,
    admin_cookie: String,
    operator_cookie: String,
    acme_rows: i64,
    other_rows: i64,
}

async fn setup(settings: &Settings) -> BenchResult<Env> {
    let (owner, owner_options) = fresh_database(&settings.owner_url, &settings.database).await?;
    let (admin, operator) = seed(settings, &owner).await?;
    // A closed month's rows are long written and autovacuumed when someone exports them.
    // A statement of its own: VACUUM cannot run inside a transaction.
    sqlx::raw_sql("vacuum analyze usage_device_day, usage_month_closed, tenant, shard, person")
        .execute(&owner)
        .await?;
    let count = |scope: &'static str| {
        let owner = owner.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!(
                "select count(*) from usage_device_day d join tenant t on t.id = d.tenant_id
                  where d.day >= '{MONTH}-01' and d.day < date '{MONTH}-01' + interval '1 month'
                    and {scope}"
            ))
            .fetch_one(&owner)
            .await
        }
    };
    let acme_rows = count("t.slug = 'acme'").await?;
    let other_rows = count("t.slug <> 'acme'").await?;
    if acme_rows != settings.rows || other_rows != settings.other_rows {
        return Err(format!(
            "seeded {acme_rows} + {other_rows} rows, wanted {} + {}",
            settings.rows, settings.other_rows
        )
        .into());
    }

    // As `server::startup::app_pool` builds the portal's pool.
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(
            owner_options
                .username(&settings.app_user)
                .password(&settings.app_password)
                .application_name("headscale-portal"),
        )
        .await?;
    let store = session_store(&pool)?;
    let admin_cookie = mint_sessions(&store, admin, 1).await?.remove(0);
    let operator_cookie = mint_sessions(&store, operator, 1).await?.remove(0);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal = listener.local_addr()?;
    let router = server::startup::router(
        &common::portal_config(portal)?,
        pool.clone(),
        Arc::new(SystemClock),
    )
    .map_err(|e| format!("router: {e}"))?;
    tokio::spawn(async move { axum::serve(listener, router).await });

    Ok(Env {
        owner,
        pool,
        portal,
        admin_cookie,
        operator_cookie,
        acme_rows,
        other_rows,
    })
}

/// One shard, three tenants, acme's admin and an operator, and the month's device-days
/// as the rollup leaves them once final. Returns the two people's ids.
async fn seed(settings: &Settings, owner: &PgPool) -> BenchResult<(Uuid, Uuid)> {
    sqlx::raw_sql(
        "insert into shard (cluster_id, name, region, login_server_url, api_url, api_key_sealed,
                            node_capacity)
         values ('eu-central-7', 'EU Central 7', 'eu-central', 'https://hs7.example.invalid',
                 'https://hs7.example.invalid', '\\x00', 50000);
         insert into tenant (code, slug, display_name, plan, shard_id, device_quota,
                             placement_reason)
         select c, s, n, 'enterprise', (select id from shard), 100000, 'benchmark'
           from (values ('t7k2', 'acme', 'Acme Corp'), ('g4x9', 'globex', 'Globex'),
                        ('i3n8', 'initech', 'Initech')) v(c, s, n);",
    )
    .execute(owner)
    .await?;

    // Per tenant: ceil(rows / 31) devices with a device-day on every day of the month,
    // the last device fewer days so the count is exact; node ids unique on the shard, in
    // a range per tenant. Every 100th device's name starts with `=`, so the formula guard
    // (`app::domain::csv`) runs too. One statement writes the shard's days in the order
    // the rollup writes them (`data::usage`: by day, then node, every tenant of the shard
    // together); the heap's order matters to the export's sort: seeded device by device,
    // the same export cost Postgres twice the CPU (docs/benchmarks.md).
    let other = settings.other_rows;
    let tenants = [
        ("acme", settings.rows),
        ("globex", other / 2),
        ("initech", other - other / 2),
    ];
    let (mut slugs, mut firsts, mut counts, mut rows) = (vec![], vec![], vec![], vec![]);
    let mut first_node = 1;
    for (slug, n) in tenants {
        let nodes = (n + DAYS - 1) / DAYS;
        slugs.push(slug);
        firsts.push(first_node);
        counts.push(nodes);
        rows.push(n);
        first_node += nodes;
    }
    sqlx::query(
        "insert into usage_device_day (day, shard_id, tenant_id, node_id, seconds, device_name,
                                       owner, final)
         select d.day, s.id, t.id, n,
                1 + (n * 7919 + extract(day from d.day)::int8 * 104729) % 86400,
                case when n % 100 = 0 then '=cmd|calc-' || n else 'device-' || n end,
                'user' || (n % 500) || '@' || t.slug || '.example', true
           from unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
                  r(slug, first_node, nodes, rows)
           join tenant t on t.slug = r.slug
          cross join generate_series(r.first_node, r.first_node + r.nodes - 1) n
          cross join generate_series(date '2026-10-01', date '2026-10-31', interval '1 day') d(day)
          cross join shard s
          -- The tenant's device-days counted device by device: the first `rows` of them.
          where (n - r.first_node) * 31 + extract(day from d.day)::int8 - 1 < r.rows
          order by d.day, n",
    )
    .bind(&slugs)
    .bind(&firsts)
    .bind(&counts)
    .bind(&rows)
    .execute(owner)
    .await?;
    sqlx::query("insert into usage_month_closed (month) values (date '2026-10-01')")
        .execute(owner)
        .await?;

    let admin: Uuid = sqlx::query_scalar(
        "with p as (
           insert into person (issuer, subject, email, display_name, last_login_at)
           values ('https://idp.bench.invalid/application/o/portal/', 'acme-bench-admin',
                   'pat.admin@acme.example.com', 'Pat Admin', now())
           returning id)
         insert into membership (tenant_id, person_id, role, source)
         select t.id, p.id, 'admin', 'idp' from p, tenant t where t.slug = 'acme'
         returning person_id",
    )
    .fetch_one(owner)
    .await?;
    let operator: Uuid = sqlx::query_scalar(
        "insert into person (issuer, subject, email, display_name, is_operator, last_login_at)
         values ('https://idp.bench.invalid/application/o/portal/', 'bench-operator',
                 'olivia@ops.example.com', 'Olivia Operator', true, now())
         returning id",
    )
    .fetch_one(owner)
    .await?;
    Ok((admin, operator))
}

// -------------------------------------------------------------- download --

struct Export {
    label: &'static str,
    path: String,
    cookie: String,
    /// Data rows the export must have (the header not counted).
    rows: i64,
}

struct Downloaded {
    rows: i64,
    bytes: u64,
}

/// Downloads one export as a browser saving it would, reading the body chunk by chunk
/// and keeping only counts; checks the header line and the number of rows.
async fn download(
    http: &reqwest::Client,
    portal: SocketAddr,
    export: &Export,
) -> BenchResult<Downloaded> {
    let mut res = http
        .get(format!("http://{portal}{}", export.path))
        .header("cookie", &export.cookie)
        .send()
        .await?;
    if res.status() != reqwest::StatusCode::OK {
        let status = res.status();
        let body = res.text().await?;
        return Err(format!("{}: {status} {:.300}", export.path, body).into());
    }
    let mut first_line: Vec<u8> = Vec::with_capacity(HEADER.len());
    let mut header_done = false;
    let (mut lines, mut bytes) = (0i64, 0u64);
    // `\r\n` may straddle two chunks.
    let mut after_cr = false;
    while let Some(chunk) = res.chunk().await? {
        bytes += chunk.len() as u64;
        if !header_done {
            let end = chunk
                .iter()
                .position(|&b| b == b'\n')
                .map_or(chunk.len(), |i| i + 1);
            first_line.extend_from_slice(&chunk[..end]);
            header_done = first_line.ends_with(b"\n") || first_line.len() > HEADER.len();
        }
        for &b in chunk.iter() {
            if b == b'\n' && after_cr {
                lines += 1;
            }
            after_cr = b == b'\r';
        }
    }
    if first_line != HEADER {
        return Err(format!(
            "{}: the first line is {:?}, not the detail header",
            export.path,
            String::from_utf8_lossy(&first_line)
        )
        .into());
    }
    let rows = lines - 1;
    if rows != export.rows {
        return Err(format!(
            "{}: {rows} rows exported, {} seeded",
            export.path, export.rows
        )
        .into());
    }
    Ok(Downloaded { rows, bytes })
}

// ---------------------------------------------------------------- memory --

/// A `kB` field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Resets the process's peak resident set size (`VmHWM`) to its current one (proc(5),
/// `/proc/pid/clear_refs`, since Linux 4.0).
fn reset_peak_rss() -> BenchResult<()> {
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("resetting the peak RSS (/proc/self/clear_refs): {e}").into())
}

// ---------------------------------------------------------------- output --

struct Run {
    seconds: f64,
    bytes: u64,
    rows: i64,
    /// MiB.
    peak: Option<f64>,
    before: Option<f64>,
    cpu: CpuDelta,
}

impl Run {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    fn line(&self) -> String {
        let mib = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} MB"));
        let c = &self.cpu;
        let opt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"));
        format!(
            "{:>10} {:>7.2} {:>8.0} {:>6.1} {:>9} {:>9}   {:.2} / {:.2} / {} / {}",
            self.rows,
            self.seconds,
            self.rate(),
            self.bytes as f64 / self.seconds / 1e6,
            mib(self.peak),
            mib(self.before),
            c.server,
            c.client,
            opt(c.postgres),
            opt(c.elsewhere()),
        )
    }
}

fn print_summary(medians: &[(&str, Run, Option<f64>)], settings: &Settings) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmedian of {} runs ({} CPUs)   rows/s (target >= {:.0})   peak RSS, highest run \
         (target <= {:.0} MB)",
        settings.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        TARGET_ROWS_PER_S,
        TARGET_PEAK_RSS_MB
    );
    for (label, r, peak) in medians {
        let rate = r.rate();
        let _ = writeln!(
            out,
            "{label:<15} {:>10} rows   {rate:>9.0} rows/s {:<8} {:>6.1} MB/s   {} {}",
            r.rows,
            if rate >= TARGET_ROWS_PER_S {
                "(met)"
            } else {
                "(NOT met)"
            },
            r.bytes as f64 / r.seconds / 1e6,
            peak.map_or_else(|| "n/a".to_string(), |p| format!("{p:.1} MB")),
            match peak {
                Some(p) if *p <= TARGET_PEAK_RSS_MB => "(met)",
                Some(_) => "(NOT met)",
                None => "(not measured)",
            },
        );
    }
    print!("{out}");
}
