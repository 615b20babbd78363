//! Policy benchmark (issue 5; results in docs/benchmarks.md).
//!
//! 1. **Compile**: a shard of `BENCH_TENANTS` (100) tenants with `BENCH_RULES` (50) rules
//!    each (generated, every kind of principal), 20 members, 10 tags, 5 groups and two
//!    subnets per tenant. Times, over `BENCH_ITERS` (30) rounds: checking all tenants'
//!    texts (parse, check, their tests; what saves cost, one tenant at a time), the
//!    compile of the shard policy, and the isolation check, and the size of the result.
//! 2. **Save to live** (when `BENCH_HS_URL` and `BENCH_HS_APIKEY` name a real Headscale
//!    shard and `DATABASE_URL` a Postgres owner role, as `dev/bench-policy` sets up): the
//!    same 100 tenants in Postgres on that shard; the portal's real `PolicyPusher` (its
//!    default debounce and poll) runs; a new revision of one tenant is saved and the
//!    shard's policy is polled every 10 ms until it has the change. `BENCH_SAVES` (10)
//!    times.
//!
//! A benchmark, not a test: nothing here asserts a time (STYLE.md).

use app::data::secret::SecretBox;
use app::data::shards::{self, NewShard};
use app::domain::policy::compile::{compile, TenantInput};
use app::domain::policy::isolation::{self, ShardTenants};
use app::domain::policy::model::TenantContext;
use app::domain::policy::validate;
use app::domain::routes::Prefix;
use app::headscale::{ApiKey, ShardClient, ShardClientOptions};
use server::jobs::policy::{PolicyPusher, PushSettings};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Tenant {
    code: String,
    emails: Vec<String>,
    subnets: Vec<String>,
    text: String,
}

/// Tenant `i`'s policy: `rules` rules cycling through every kind of principal, with
/// `marker` as the port of the last rule (so a new revision is visible on the shard).
fn tenant(i: usize, rules: usize, marker: u16) -> Tenant {
    let code = format!("b{i:03}");
    let emails: Vec<String> = (0..20).map(|m| format!("m{m}@t{i}.example")).collect();
    let subnets = vec![
        format!("10.{}.0.0/16", i % 250),
        format!("172.{}.{}.0/24", 16 + i / 250, i % 250),
    ];
    let groups: Vec<String> = (0..5)
        .map(|g| {
            let members: Vec<String> = emails[g * 4..g * 4 + 4]
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect();
            format!("\"group:g{g}\": [{}]", members.join(", "))
        })
        .collect();
    let tags: Vec<String> = (0..10)
        .map(|t| format!("\"tag:t{t}\": [\"group:g{}\"]", t % 5))
        .collect();
    let sources = |r: usize| -> String {
        match r % 7 {
            0 => format!("\"{}\"", emails[r % 20]),
            1 => format!("\"group:g{}\"", r % 5),
            2 => format!("\"tag:t{}\"", r % 10),
            3 => "\"autogroup:member\"".into(),
            4 => format!("\"10.{}.{}.0/24\"", i % 250, r % 250),
            5 => "\"*\"".into(),
            _ => format!("\"group:g{}\", \"tag:t{}\"", (r + 1) % 5, (r + 3) % 10),
        }
    };
    let destinations = |r: usize| -> String {
        match r % 6 {
            0 => format!("\"tag:t{}:22,443\"", r % 10),
            1 => format!("\"group:g{}:*\"", r % 5),
            2 => "\"autogroup:self:*\"".into(),
            3 => format!("\"10.{}.{}.0/24:5432\"", i % 250, r % 250),
            4 => "\"nas:80,443\"".into(),
            _ => format!("\"{}:8000-8999\"", emails[(r * 3) % 20]),
        }
    };
    let acls: Vec<String> = (0..rules)
        .map(|r| {
            if r + 1 == rules {
                format!(
                    "{{\"action\": \"accept\", \"src\": [\"group:g0\"], \"dst\": [\"tag:t0:{marker}\"]}}"
                )
            } else {
                let proto = if r % 11 == 5 { "\"proto\": \"udp\", " } else { "" };
                format!(
                    "{{\"action\": \"accept\", {proto}\"src\": [{}], \"dst\": [{}]}}",
                    sources(r),
                    destinations(r)
                )
            }
        })
        .collect();
    let text = format!(
        "{{\n  // Tenant {i}, generated.\n  \"groups\": {{{}}},\n  \"hosts\": {{\"nas\": \"10.{}.9.9\"}},\n  \"tagOwners\": {{{}}},\n  \"acls\": [\n    {},\n  ],\n  \"tests\": [{{\"src\": \"{}\", \"accept\": [\"tag:t0:22\"]}}],\n}}\n",
        groups.join(", "),
        i % 250,
        tags.join(", "),
        acls.join(",\n    "),
        emails[0],
    );
    Tenant {
        code,
        emails,
        subnets,
        text,
    }
}

fn stats(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:>8.2}  p50 {:>8.2}  max {:>8.2} ms",
        ms[0],
        p(0.5),
        ms[ms.len() - 1]
    )
}

fn compile_bench(n: usize, rules: usize, iters: usize) -> BenchResult<()> {
    let tenants: Vec<Tenant> = (0..n).map(|i| tenant(i, rules, 9999)).collect();
    let bytes: usize = tenants.iter().map(|t| t.text.len()).sum();
    println!(
        "{n} tenants × {rules} rules: {:.1} KiB of tenant policy text",
        bytes as f64 / 1024.0
    );
    let ctx = |t: &Tenant| TenantContext {
        members: t.emails.clone(),
        subnets: t
            .subnets
            .iter()
            .map(|s| Prefix::parse(s).expect("subnet"))
            .collect(),
        dedicated_shard: false,
    };
    let (mut check_ms, mut compile_ms, mut isolation_ms, mut total_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..iters {
        let started = Instant::now();
        let mut inputs = Vec::new();
        for t in &tenants {
            let (v, policy) = validate(&t.text, &ctx(t));
            let policy = policy.ok_or_else(|| format!("{}: {:?}", t.code, v.errors))?;
            if !v.saveable() {
                return Err(format!("{}: tests fail: {:?}", t.code, v.tests).into());
            }
            inputs.push(TenantInput {
                code: t.code.clone(),
                policy,
                users: t
                    .emails
                    .iter()
                    .enumerate()
                    .map(|(m, e)| (e.clone(), format!("{}.m{m}", t.code)))
                    .collect(),
                subnets: ctx(t).subnets,
                device_ips: vec![],
            });
        }
        check_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let compiled = compile(&inputs, true).map_err(|e| format!("{e:?}"))?;
        let text = compiled.text();
        compile_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let shard = ShardTenants {
            subnets: inputs
                .iter()
                .map(|t| (t.code.clone(), t.subnets.clone()))
                .collect::<BTreeMap<_, _>>(),
        };
        let started = Instant::now();
        isolation::check_all(&compiled, &shard)
            .map_err(|v| format!("isolation: {:?}", &v[..v.len().min(3)]))?;
        isolation_ms.push(started.elapsed().as_secs_f64() * 1e3);
        total_ms.push(compile_ms.last().unwrap() + isolation_ms.last().unwrap());
        size = text.len();
    }
    println!("compiled shard policy: {:.1} KiB", size as f64 / 1024.0);
    println!("check all {n} tenants' texts   {}", stats(check_ms.clone()));
    println!(
        "  per tenant (a save)          {}",
        stats(check_ms.iter().map(|m| m / n as f64).collect())
    );
    println!("compile (with text)          {}", stats(compile_ms));
    println!("isolation check              {}", stats(isolation_ms));
    println!(
        "compile + isolation check    {}  (target <= 50 ms)",
        stats(total_ms)
    );
    Ok(())
}

async fn save_to_live(n: usize, rules: usize, saves: usize) -> BenchResult<()> {
    let (Ok(url), Ok(key_file)) = (
        std::env::var("BENCH_HS_URL"),
        std::env::var("BENCH_HS_APIKEY_FILE"),
    ) else {
        println!("save to live: skipped (BENCH_HS_URL / BENCH_HS_APIKEY_FILE not set; dev/bench-policy sets them)");
        return Ok(());
    };
    let api_key = std::fs::read_to_string(&key_file)?.trim().to_string();
    let owner_url = std::env::var("DATABASE_URL")?;
    let db = std::env::var("BENCH_DATABASE").unwrap_or_else(|_| "policy_bench".into());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&owner_url)
        .await?;
    sqlx::query(&format!("drop database if exists {db} with (force)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("create database {db}"))
        .execute(&admin)
        .await?;
    let owner_opts = PgConnectOptions::from_str(&owner_url)?.database(&db);
    let owner = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(owner_opts.clone())
        .await?;
    server::startup::MIGRATOR.run(&owner).await?;
    let app: PgPool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(owner_opts.username("portal_app").password("portal_app"))
        .await?;
    let secrets = Arc::new(SecretBox::new(&[5u8; 32])?);
    let shard = shards::upsert(
        &app,
        &secrets,
        &NewShard {
            cluster_id: "bench-policy".into(),
            name: "bench".into(),
            region: "local".into(),
            login_server_url: url.clone(),
            api_url: url.clone(),
            node_capacity: 10_000,
        },
        &api_key,
    )
    .await?;
    let started = Instant::now();
    for i in 0..n {
        let t = tenant(i, rules, 9999);
        sqlx::query(
            "with t as (insert into tenant (slug, code, display_name, shard_id, subnets)
                        values ($1, $1, $1, $2, $3::cidr[]) returning id),
                  p as (insert into person (issuer, subject, email, display_name)
                        select 'https://bench/', $1 || '-' || m, e, e from unnest($4::text[]) with ordinality as x(e, m)
                        returning id)
             insert into membership (tenant_id, person_id, role, source)
             select t.id, p.id, 'member', 'portal' from t, p",
        )
        .bind(&t.code)
        .bind(shard)
        .bind(&t.subnets)
        .bind(&t.emails)
        .execute(&owner)
        .await?;
        sqlx::query(
            "insert into policy_revision (tenant_id, revision, body, author_name)
             select id, 1, $2, 'bench' from tenant where code = $1",
        )
        .bind(&t.code)
        .bind(&t.text)
        .execute(&owner)
        .await?;
    }
    println!(
        "seeded {n} tenants × 20 members with their policies in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let settings = PushSettings::default();
    println!(
        "pusher: debounce {} ms, poll {} ms",
        settings.debounce.as_millis(),
        settings.poll.as_millis()
    );
    let handle = PolicyPusher::new(app.clone(), secrets, settings).spawn();
    let client = ShardClient::new(
        "bench-policy",
        &url,
        ApiKey::new(api_key),
        ShardClientOptions::default(),
    )?;
    let live = |marker: u16| {
        let client = client.clone();
        async move {
            client
                .get_policy()
                .await
                .ok()
                .flatten()
                .is_some_and(|p| p.policy.contains(&format!(":{marker}\"")))
        }
    };
    let wait = |marker: u16| async move {
        let started = Instant::now();
        while !live(marker).await {
            if started.elapsed() > Duration::from_secs(60) {
                return Err::<Duration, Box<dyn Error + Send + Sync>>(
                    format!("marker {marker} not live after 60 s").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(started.elapsed())
    };
    let first = wait(9999).await?;
    println!(
        "first push of all {n} tenants live after {:.0} ms",
        first.as_secs_f64() * 1e3
    );
    let mut ms = Vec::new();
    for k in 0..saves {
        let i = (k * 37) % n;
        let marker = 10_000 + k as u16;
        let t = tenant(i, rules, marker);
        sqlx::query(
            "insert into policy_revision (tenant_id, revision, body, author_name)
             select id, (select max(revision) + 1 from policy_revision r where r.tenant_id = tenant.id),
                    $2, 'bench'
               from tenant where code = $1",
        )
        .bind(&t.code)
        .bind(&t.text)
        .execute(&owner)
        .await?;
        let took = wait(marker).await?;
        ms.push(took.as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "save to live on the shard    {}  ({saves} saves)",
        stats(ms)
    );
    handle.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let n = env_usize("BENCH_TENANTS", 100);
    let rules = env_usize("BENCH_RULES", 50);
    let iters = env_usize("BENCH_ITERS", 30);
    let saves = env_usize("BENCH_SAVES", 10);
    if let Err(e) = compile_bench(n, rules, iters) {
        eprintln!("compile benchmark failed: {e}");
        return ExitCode::FAILURE;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(save_to_live(n, rules, saves)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("save-to-live benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
