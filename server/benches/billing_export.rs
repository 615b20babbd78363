//! Billing export benchmark (issue 6; results in docs/benchmarks.md, "Billing export").
//!
//! The portal's real router serves `GET /t/acme/usage/export?month=2026-10&kind=detail`
//! (and the operator's all-tenants export) over HTTP to a streaming client in the same
//! process, from a database holding `BENCH_ROWS` (1,000,000) device-days of October
//! 2026. Measured per run: wall time, rows/s, MB/s, and the process's peak resident
//! memory during the export (the high-water mark is reset before each run by writing 5
//! to `/proc/self/clear_refs`, then `VmHWM` is read from `/proc/self/status`). The
//! client counts lines and bytes as they arrive and keeps nothing. A benchmark, not a
//! test: it prints the targets as met or not, and fails only if the CSV is not
//! what was seeded.
//!
//! Run it with `dev/bench-billing`. Environment: `DATABASE_URL` (owner role with
//! CREATEDB), `BENCH_DATABASE` (`billing_bench`), `BENCH_ROWS` (1000000), `BENCH_RUNS`
//! (3), `BENCH_APP_DB_USER` / `BENCH_APP_DB_PASSWORD` (`portal_app`).

use app::auth::clock::SystemClock;
use app::auth::session::establish;

mod common;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tower_sessions::{Expiry, Session};
use tower_sessions_sqlx_store::PostgresStore;
use uuid::Uuid;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const DAYS: i64 = 31;
const TARGET_ROWS_PER_S: f64 = 300_000.0;
const TARGET_RSS_MB: f64 = 64.0;

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("billing export benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status_kib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn reset_peak_rss() {
    // Linux: "5" resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn run() -> BenchResult<()> {
    let owner_url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let database: String = env_or("BENCH_DATABASE", "billing_bench".to_string());
    let rows: i64 = env_or("BENCH_ROWS", 1_000_000);
    let runs: usize = env_or("BENCH_RUNS", 3);
    let app_user: String = env_or("BENCH_APP_DB_USER", "portal_app".to_string());
    let app_password: String = env_or("BENCH_APP_DB_PASSWORD", "portal_app".to_string());

    let admin_options = PgConnectOptions::from_str(&owner_url)?;
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
    let owner_options = admin_options.database(&database);
    let owner = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(owner_options.clone())
        .await?;
    server::startup::MIGRATOR.run(&owner).await?;

    let seeded = Instant::now();
    let (acme_rows, person) = seed(&owner, rows).await?;
    println!(
        "seeded {rows} device-days ({acme_rows} of acme) in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(
            owner_options
                .clone()
                .username(&app_user)
                .password(&app_password),
        )
        .await?;
    let store = PostgresStore::new(pool.clone())
        .with_schema_name("public")
        .and_then(|s| s.with_table_name("web_session"))
        .map_err(|e| format!("session store: {e}"))?;
    let session = Session::new(
        None,
        Arc::new(store),
        Some(Expiry::OnInactivity(time::Duration::minutes(30))),
    );
    establish(&session, person, "bench-id-token".into(), &SystemClock).await?;
    session.save().await?;
    let cookie = format!(
        "portal_session={}",
        session.id().ok_or("the session has no id")?
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = server::startup::router(
        &common::portal_config(addr)?,
        pool.clone(),
        Arc::new(SystemClock),
    )
    .map_err(|e| format!("router: {e}"))?;
    tokio::spawn(async move { axum::serve(listener, router).await });

    let client = reqwest::Client::builder().build()?;
    println!(
        "\n{:<10} {:>3} {:>10} {:>8} {:>10} {:>8} {:>12} {:>12}",
        "export", "run", "rows", "secs", "rows/s", "MB/s", "peak RSS MB", "RSS before"
    );
    let mut best: Vec<(String, f64, f64)> = Vec::new();
    for (label, path, expected) in [
        (
            "tenant",
            "/t/acme/usage/export?month=2026-10&kind=detail",
            acme_rows,
        ),
        (
            "operator",
            "/operator/usage/export?month=2026-10&kind=detail",
            rows,
        ),
    ] {
        // A warm-up run, not reported: caches and the pool's connections.
        export(&client, addr, &cookie, path).await?;
        let mut rates = Vec::new();
        let mut peaks = Vec::new();
        for run in 1..=runs {
            let before = status_kib("VmRSS:").unwrap_or(0.0) / 1024.0;
            reset_peak_rss();
            let started = Instant::now();
            let (lines, bytes) = export(&client, addr, &cookie, path).await?;
            let secs = started.elapsed().as_secs_f64();
            let peak = status_kib("VmHWM:").unwrap_or(0.0) / 1024.0;
            let data_rows = lines - 1;
            if data_rows != expected {
                return Err(
                    format!("{label}: {data_rows} rows exported, {expected} seeded").into(),
                );
            }
            let rate = data_rows as f64 / secs;
            println!(
                "{label:<10} {run:>3} {data_rows:>10} {secs:>8.2} {rate:>10.0} {:>8.1} {peak:>12.1} {before:>12.1}",
                bytes as f64 / secs / 1e6
            );
            rates.push(rate);
            peaks.push(peak);
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let peak = peaks.iter().copied().fold(0.0, f64::max);
        best.push((label.to_string(), median, peak));
    }
    println!();
    for (label, rate, peak) in best {
        println!(
            "{label}: median {rate:.0} rows/s (target ≥ {TARGET_ROWS_PER_S:.0}: {}), peak RSS {peak:.1} MB (target ≤ {TARGET_RSS_MB:.0}: {})",
            if rate >= TARGET_ROWS_PER_S { "met" } else { "NOT met" },
            if peak <= TARGET_RSS_MB { "met" } else { "NOT met" },
        );
    }
    Ok(())
}

/// Downloads one export, counting lines and bytes as they arrive; checks the header.
async fn export(
    client: &reqwest::Client,
    addr: SocketAddr,
    cookie: &str,
    path: &str,
) -> BenchResult<(i64, u64)> {
    let mut res = client
        .get(format!("http://{addr}{path}"))
        .header("cookie", cookie)
        .send()
        .await?;
    if res.status() != reqwest::StatusCode::OK {
        return Err(format!("{path}: {} {}", res.status(), res.text().await?).into());
    }
    let (mut lines, mut bytes) = (0i64, 0u64);
    let mut first = true;
    while let Some(chunk) = res.chunk().await? {
        if first {
            let header = b"date,tenant_code,shard,device_id,device,owner,online_seconds,online_hours,status\r\n";
            if !chunk.starts_with(header) {
                return Err(format!("{path}: unexpected header").into());
            }
            first = false;
        }
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as i64;
    }
    Ok((lines, bytes))
}

/// One shard, three tenants (acme with nine tenths of the rows), an operator who is
/// also acme's admin, and the device-days as the rollup leaves a closed month.
async fn seed(owner: &PgPool, rows: i64) -> BenchResult<(i64, Uuid)> {
    let nodes = (rows + DAYS - 1) / DAYS;
    sqlx::raw_sql(
        "insert into shard (cluster_id, name, region, login_server_url, api_url, api_key_sealed, node_capacity)
         values ('eu-central-7', 'EU Central 7', 'eu-central', 'https://hs7.example.invalid',
                 'https://hs7.example.invalid', '\\x00', 50000);
         insert into tenant (code, slug, display_name, plan, shard_id, device_quota)
         select c, s, n, 'enterprise', (select id from shard), 100000
           from (values ('t7k2', 'acme', 'Acme Corp'), ('g4x9', 'globex', 'Globex'),
                        ('i3n8', 'initech', 'Initech')) v(c, s, n);",
    )
    .execute(owner)
    .await?;
    // Node n belongs to acme unless n % 10 = 0 (globex) or 5 (initech); every 100th
    // device's name starts with `=`, so the formula guard runs too.
    let inserted = sqlx::query(
        "insert into usage_device_day (day, shard_id, tenant_id, node_id, seconds, device_name, owner, final)
         select d::date, s.id,
                case n % 10 when 0 then g.id when 5 then i.id else a.id end,
                n, 60 + (n * 7919 + extract(day from d)::int * 104729) % 86000,
                case when n % 100 = 1 then '=cmd|calc-' || n else 'device-' || n end,
                'user' || (n % 500) || '@acme.example.com', true
           from generate_series(1, $1::int8) n,
                generate_series('2026-10-01'::date, '2026-10-31'::date, interval '1 day') d,
                shard s,
                (select id from tenant where slug = 'acme') a,
                (select id from tenant where slug = 'globex') g,
                (select id from tenant where slug = 'initech') i
          limit $2",
    )
    .bind(nodes)
    .bind(rows)
    .execute(owner)
    .await?
    .rows_affected();
    if inserted as i64 != rows {
        return Err(format!("seeded {inserted} rows, wanted {rows}").into());
    }
    sqlx::query("insert into usage_month_closed (month) values ('2026-10-01')")
        .execute(owner)
        .await?;
    // A statement of its own: VACUUM cannot run in the implicit transaction of a batch.
    sqlx::query("vacuum analyze usage_device_day, tenant, shard")
        .execute(owner)
        .await?;
    let acme_rows: i64 = sqlx::query_scalar(
        "select count(*) from usage_device_day d join tenant t on t.id = d.tenant_id
          where t.slug = 'acme'",
    )
    .fetch_one(owner)
    .await?;
    let person: Uuid = sqlx::query_scalar(
        "with p as (
           insert into person (issuer, subject, email, display_name, is_operator, last_login_at)
           values ('https://idp.bench.invalid/application/o/portal/', 'bench-operator',
                   'olivia@ops.example.com', 'Olivia Operator', true, now())
           returning id)
         insert into membership (tenant_id, person_id, role, source)
         select t.id, p.id, 'admin', 'idp' from p, tenant t where t.slug = 'acme'
         returning person_id",
    )
    .fetch_one(owner)
    .await?;
    Ok((acme_rows, person))
}
