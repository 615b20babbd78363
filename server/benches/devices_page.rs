//! Devices page benchmark (issue 4; results and how to read them in docs/benchmarks.md).
//!
//! The portal's real router (`server::startup::router`: sessions in Postgres, the auth
//! layer, Leptos server-side rendering, the data layer under row-level security) serves
//! `GET /t/acme/devices?q=<term>` for a tenant with 5,000 devices in the mirror, next to
//! other tenants' devices on the same shard. In the same run, on the same runtime and
//! the same Postgres, a bare axum route runs `sqlx::query("select 1")` on a pool of its
//! own: the baseline the page is compared to. One load generator (in-process tokio tasks,
//! one reqwest client and so one keep-alive connection each) drives both in turn: a
//! warm-up, then a fixed measured window, counting requests, per-request latency (until
//! the whole body is read) and errors, and sampling the CPU of the server threads, the
//! load generator's threads and Postgres. Then the server function the page calls,
//! `POST /api/list_devices`, the same way. A benchmark, not a test: nothing here asserts
//! a time (STYLE.md, Tests); the targets are printed as met or not.
//!
//! Signing in: each connection carries its own session, made as the sign-in callback
//! makes one (`app::auth::session::establish` into the real `web_session` store) for a
//! person with an `admin` membership of acme, so the auth layer resolves it like any
//! other. Only the identity provider's round trip is skipped; it is not part of a page
//! view.
//!
//! Run it with `dev/bench-devices`, which starts a private Postgres. By hand:
//! `DATABASE_URL=postgres://owner… cargo bench -p server --bench devices_page`.
//!
//! Environment:
//! - `DATABASE_URL`: the owner role (it needs CREATEDB). The benchmark drops and creates
//!   the database `BENCH_DATABASE` (default `devices_bench`), runs the migrations as the
//!   owner, seeds as the owner, and serves as the application role
//!   (`BENCH_APP_DB_USER` / `BENCH_APP_DB_PASSWORD`, default `portal_app`), as the portal
//!   does, so row-level security is in force.
//! - `BENCH_DEVICES` (5000): acme's devices; `BENCH_OTHER_DEVICES` (5000): two other
//!   tenants' devices on the same shard; `BENCH_MEMBERS` (200): members per tenant, each
//!   with a shard user `<code>.<handle>`.
//! - `BENCH_QUERY` (`web`): the search term; `BENCH_CONNECTIONS` (64); `BENCH_WARMUP_SECS`
//!   (2); `BENCH_SECS` (10); `BENCH_TARGETS` (`baseline,page,api`; also `page-all`, the
//!   page without a search term).
//! - `BENCH_DB_CONNECTIONS` (20, the portal's default pool; the baseline gets the same);
//!   `BENCH_SERVER_THREADS` and `BENCH_CLIENT_THREADS` (the CPU count each: the runtime
//!   `#[tokio::main]` gives the portal, and as many for the load generator).
//! - `BENCH_BREAKDOWN_ITERS` (200): sequential calls of each data function the page makes,
//!   to show where one request's time goes (0 skips it).
//! - `BENCH_SETUP_SQL`: SQL run as the owner after seeding, to try an index, say, without
//!   a migration.
//! - `BENCH_CLK_TCK` (100): the kernel's clock ticks per second (`getconf CLK_TCK`).
//!
//! CPU comes from `/proc` (Linux): per thread, by the names the two runtimes give their
//! threads; Postgres's as the postmaster's and its children's, reaped ones included.

mod common;

use app::auth::clock::SystemClock;
use app::data::devices;
use app::data::people::load_principal;
use app::data::secret::SecretBox;
use app::data::shards::{self, NewShard};
use app::domain::devices::DeviceQuery;
use app::domain::role::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::{
    database_name, env_or, fresh_database, mint_sessions, session_store, BenchResult, CpuDelta,
    Probe, CLIENT_THREAD, SERVER_THREAD,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_sessions::session_store::SessionStore;
use tower_sessions_sqlx_store::PostgresStore;
use uuid::Uuid;

const SLUG: &str = "acme";
const CODE: &str = "t7k2";

struct Settings {
    database: String,
    owner_url: String,
    app_user: String,
    app_password: String,
    devices: usize,
    other_devices: usize,
    members: usize,
    query: String,
    connections: usize,
    warmup: Duration,
    measure: Duration,
    targets: Vec<String>,
    db_connections: u32,
    server_threads: usize,
    client_threads: usize,
    breakdown_iters: usize,
    clk_tck: f64,
}

impl Settings {
    fn from_env() -> BenchResult<Settings> {
        let database = database_name("devices_bench")?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let targets: Vec<String> = env_or("BENCH_TARGETS", "baseline,page,api".to_string())?
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(t) = targets.iter().find(|t| Target::parse(t).is_none()) {
            return Err(format!(
                "BENCH_TARGETS: unknown target {t:?} (baseline, page, page-all, api)"
            )
            .into());
        }
        let settings = Settings {
            database,
            owner_url: std::env::var("DATABASE_URL")
                .map_err(|_| "DATABASE_URL (the owner role) is not set; run dev/bench-devices")?,
            app_user: env_or("BENCH_APP_DB_USER", "portal_app".to_string())?,
            app_password: env_or("BENCH_APP_DB_PASSWORD", "portal_app".to_string())?,
            devices: env_or("BENCH_DEVICES", 5000)?,
            other_devices: env_or("BENCH_OTHER_DEVICES", 5000)?,
            members: env_or("BENCH_MEMBERS", 200)?,
            query: env_or("BENCH_QUERY", "web".to_string())?,
            connections: env_or("BENCH_CONNECTIONS", 64)?,
            warmup: Duration::from_secs_f64(env_or("BENCH_WARMUP_SECS", 2.0)?),
            measure: Duration::from_secs_f64(env_or("BENCH_SECS", 10.0)?),
            targets,
            db_connections: env_or("BENCH_DB_CONNECTIONS", 20)?,
            server_threads: env_or("BENCH_SERVER_THREADS", cpus)?,
            client_threads: env_or("BENCH_CLIENT_THREADS", cpus)?,
            breakdown_iters: env_or("BENCH_BREAKDOWN_ITERS", 200)?,
            clk_tck: env_or("BENCH_CLK_TCK", 100.0)?,
        };
        if settings.connections == 0 || settings.members == 0 || settings.measure.is_zero() {
            return Err("BENCH_CONNECTIONS, BENCH_MEMBERS and BENCH_SECS must be positive".into());
        }
        Ok(settings)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devices_page: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    let settings = Settings::from_env()?;
    server::telemetry::init(false);
    // Two runtimes so the CPU of the portal and of the load generator can be told apart;
    // they share the machine's cores (and Postgres) all the same.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.server_threads.max(1))
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads.max(1))
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;

    let started = Instant::now();
    let env = server_rt.block_on(setup(&settings))?;
    println!(
        "seeded {} devices of {SLUG} ({CODE}) and {} of other tenants on one shard, \
         {} members per tenant, in {:.1} s",
        settings.devices,
        settings.other_devices,
        settings.members,
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

    let targets: Vec<Target> = settings
        .targets
        .iter()
        .filter_map(|t| Target::parse(t))
        .collect();
    // Every target answers as expected before anything is timed.
    for &target in &targets {
        let cookie = server_rt.block_on(mint_sessions(&env.store, env.person_id, 1))?;
        let check = client_rt.block_on(preflight(&env, &settings, target, &cookie[0]))?;
        println!("{:<34} {check}", target.label(&settings.query));
    }
    if settings.breakdown_iters > 0 {
        let rows = breakdown(&server_rt, &client_rt, &env, &settings)?;
        print_breakdown(&rows, settings.breakdown_iters);
    }

    let mut results = Vec::new();
    for &target in &targets {
        // Fresh sessions per target: no session reaches the minute after which the auth
        // layer records `last_seen_at` (a write every minute per person, not per request).
        let cookies = server_rt.block_on(mint_sessions(
            &env.store,
            env.person_id,
            settings.connections,
        ))?;
        let result = client_rt.block_on(load(&env, &settings, target, cookies, &probe))?;
        print_result(&result, &settings);
        results.push(result);
    }
    print_summary(&results, &settings);
    drop(client_rt);
    server_rt.block_on(async {
        env.pool.close().await;
        env.baseline_pool.close().await;
        env.owner.close().await;
    });
    Ok(())
}

// ----------------------------------------------------------------- setup --

struct Env {
    owner: PgPool,
    /// The portal's pool (application role).
    pool: PgPool,
    baseline_pool: PgPool,
    store: PostgresStore,
    person_id: Uuid,
    portal: SocketAddr,
    baseline: SocketAddr,
}

async fn setup(settings: &Settings) -> BenchResult<Env> {
    let (owner, owner_options) = fresh_database(&settings.owner_url, &settings.database).await?;
    let app_options = owner_options
        .clone()
        .username(&settings.app_user)
        .password(&settings.app_password)
        .application_name("headscale-portal");
    // As `server::startup::app_pool` builds the portal's pool (connected up front here,
    // so the first measured requests do not pay for connecting).
    let pool = PgPoolOptions::new()
        .max_connections(settings.db_connections)
        .min_connections(settings.db_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(app_options.clone())
        .await?;
    let baseline_pool = PgPoolOptions::new()
        .max_connections(settings.db_connections)
        .min_connections(settings.db_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(app_options.application_name("select-1-baseline"))
        .await?;

    let person_id = seed(settings, &owner, &pool).await?;
    if let Ok(extra) = std::env::var("BENCH_SETUP_SQL") {
        sqlx::raw_sql(&extra).execute(&owner).await?;
    }
    // The mirror is long synced and autovacuumed when people look at it.
    sqlx::raw_sql("vacuum analyze node, shard_user, person, membership, tenant, shard")
        .execute(&owner)
        .await?;

    let store = session_store(&pool)?;

    let portal_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal = portal_listener.local_addr()?;
    let config = common::portal_config(portal)?;
    let router = server::startup::router(&config, pool.clone(), Arc::new(SystemClock))
        .map_err(|e| format!("router: {e}"))?;
    tokio::spawn(async move { axum::serve(portal_listener, router).await });

    let baseline_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let baseline = baseline_listener.local_addr()?;
    let bare = Router::new()
        .route("/select1", get(select_one))
        .with_state(baseline_pool.clone());
    tokio::spawn(async move { axum::serve(baseline_listener, bare).await });

    Ok(Env {
        owner,
        pool,
        baseline_pool,
        store,
        person_id,
        portal,
        baseline,
    })
}

/// The baseline: the least a handler that touches the database can do.
async fn select_one(State(pool): State<PgPool>) -> Result<String, StatusCode> {
    let row = sqlx::query("select 1")
        .fetch_one(&pool)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let one: i32 = row
        .try_get(0)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(one.to_string())
}

/// Tenants, members with shard users, and the mirror as the sync leaves it. Returns the
/// person the load signs in as: an admin of acme, who sees all its devices.
async fn seed(settings: &Settings, owner: &PgPool, pool: &PgPool) -> BenchResult<Uuid> {
    let secrets = SecretBox::new(&[4u8; 32]).map_err(|e| format!("{e:?}"))?;
    let shard_id = shards::upsert(
        pool,
        &secrets,
        &NewShard {
            cluster_id: "eu-central-7".into(),
            name: "EU Central 7".into(),
            region: "eu-central".into(),
            // Never contacted: the devices page reads the mirror only.
            login_server_url: "https://hs7.example.invalid".into(),
            api_url: "https://hs7.example.invalid".into(),
            node_capacity: 50_000,
        },
        "hskey-api-benchbenchben-unused",
    )
    .await?;
    sqlx::query(
        "update shard set health = 'healthy', headscale_version = '0.29.2',
                last_sync_at = now() - interval '7 seconds', last_sync_latency_ms = 180
          where id = $1",
    )
    .bind(shard_id)
    .execute(owner)
    .await?;
    sqlx::query(
        "insert into tenant (code, slug, display_name, plan, shard_id, device_quota, placement_reason)
         values ('t7k2', 'acme', 'Acme Corp', 'enterprise', $1, 10000, 'benchmark'),
                ('g4x9', 'globex', 'Globex', 'enterprise', $1, 10000, 'benchmark'),
                ('i3n8', 'initech', 'Initech', 'enterprise', $1, 10000, 'benchmark')",
    )
    .bind(shard_id)
    .execute(owner)
    .await?;

    // Members as sign-in makes them (the handle trigger turns `maria.garcia@…` into
    // `maria-garcia`), a few admins among them, and the Headscale user the sync gives
    // each member on the shard.
    sqlx::query(
        "with names as (
           select t.slug, m,
                  (array['maria','james','li','fatima','olga','kwame','sofia','arjun',
                         'emma','noah','yuki','omar','lena','diego','priya','jonas',
                         'chloe','mateo','aisha','viktor'])[1 + m % 20] as first_name,
                  (array['garcia','smith','chen','khan','ivanova','mensah','rossi','patel',
                         'muller','silva','tanaka','haddad','novak','lopez','sharma',
                         'berg','martin','kowalski','okafor','petrov'])[1 + (m / 20) % 20]
                    || case when m >= 400 then (m / 400)::text else '' end as last_name
             from tenant t, generate_series(0, $1 - 1) m),
         p as (
           insert into person (issuer, subject, email, display_name, last_login_at)
           select 'https://idp.bench.invalid/application/o/portal/', slug || '-' || m,
                  first_name || '.' || last_name || '@' || slug || '.example.com',
                  initcap(first_name) || ' ' || initcap(last_name),
                  now() - make_interval(hours => m % 500)
             from names
           returning id, subject)
         insert into membership (tenant_id, person_id, role, source)
         select t.id, p.id,
                case when split_part(p.subject, '-', 2)::int < 3 then 'admin'
                     when split_part(p.subject, '-', 2)::int < 6 then 'network_admin'
                     else 'member' end,
                'idp'
           from p join tenant t on t.slug = split_part(p.subject, '-', 1)",
    )
    .bind(i32::try_from(settings.members)?)
    .execute(owner)
    .await?;
    let person_id: Uuid = sqlx::query_scalar(
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
    sqlx::query(
        "insert into shard_user (shard_id, tenant_id, person_id, user_name, headscale_user_id,
                                 created_by_portal)
         select $1, m.tenant_id, m.person_id, t.code || '.' || m.handle,
                row_number() over (order by t.code, m.handle), true
           from membership m join tenant t on t.id = m.tenant_id",
    )
    .bind(shard_id)
    .execute(owner)
    .await?;

    // The mirror. Per tenant: servers of a few kinds, tagged in the tenant's namespace
    // (`tag:t7k2--web`), owned by no member; and members' laptops and phones, owned by
    // their `<code>.<handle>` user, with key expiries (a few past). About 40 % online;
    // gateways advertise subnet routes, some an exit node. Addresses from Headscale's
    // default prefixes, unique on the shard.
    let other = settings.other_devices;
    let quotas = [
        ("t7k2", settings.devices, 0usize),
        ("g4x9", other / 2, settings.devices),
        ("i3n8", other - other / 2, settings.devices + other / 2),
    ];
    for (code, count, offset) in quotas {
        sqlx::query(
            "with t as (select id from tenant where code = $2),
             members as (
               select array_agg(su.user_name order by su.user_name) as names
                 from shard_user su join tenant t2 on t2.id = su.tenant_id where t2.code = $2),
             d as (
               select i, $4 + i + 1 as node_id,
                      (array['web','db','api','cache','worker','ci-runner','k8s-node',
                             'laptop','phone','gw'])[1 + i % 10] as kind,
                      (i * 7919) % 100 as r
                 from generate_series(0, $3 - 1) i)
             insert into node (shard_id, node_id, tenant_id, given_name, name, user_id, user_name,
                               ip_addresses, tags, online, last_seen, expiry, approved_routes,
                               available_routes, subnet_routes, register_method,
                               shard_created_at, first_synced_at, changed_at)
             select $1, d.node_id, t.id,
                    case when d.kind in ('laptop', 'phone')
                         then replace(m.owner, $2 || '.', '') || '-' || d.kind || '-' || (d.i / 10 % 7)
                         else d.kind || '-' || lpad((d.i / 10)::text, 4, '0') end,
                    case when d.kind = 'laptop' then replace(m.owner, $2 || '.', '') || 's-MacBook-Pro'
                         when d.kind = 'phone' then 'iPhone'
                         when d.r < 50 then 'ip-10-' || (d.i % 250) || '-' || (d.i / 250 % 250) || '-' || (d.i % 7 + 10)
                         else d.kind || '-' || lpad((d.i / 10)::text, 4, '0') end,
                    case when m.owner is null then null else 1000 + d.i % $5 end,
                    m.owner,
                    array['100.64.0.0'::inet + d.node_id, 'fd7a:115c:a1e0::'::inet + d.node_id],
                    case when m.owner is not null then '{}'::text[]
                         when d.r < 60 then array['tag:' || $2 || '--' || d.kind, 'tag:' || $2 || '--prod']
                         else array['tag:' || $2 || '--' || d.kind, 'tag:' || $2 || '--staging'] end,
                    d.r < 40,
                    case when d.r < 40 then now() else now() - make_interval(mins => (d.i * 37) % 20000) end,
                    case when m.owner is null then null
                         else now() + make_interval(days => (d.i * 13) % 180 - 10) end,
                    case when d.kind = 'gw' and d.r < 70
                         then array['10.' || (d.i / 10 % 250) || '.0.0/16'] else '{}' end,
                    case when d.kind = 'gw' and d.r < 30
                         then array['10.' || (d.i / 10 % 250) || '.0.0/16', '0.0.0.0/0', '::/0']
                         when d.kind = 'gw' then array['10.' || (d.i / 10 % 250) || '.0.0/16']
                         else '{}' end,
                    case when d.kind = 'gw'
                         then array['10.' || (d.i / 10 % 250) || '.0.0/16'] else '{}' end,
                    case when m.owner is null then 'auth_key' else 'oidc' end,
                    now() - make_interval(hours => (d.i * 31) % 17000),
                    now() - interval '30 days',
                    now() - make_interval(mins => d.i % 600)
               from d cross join t cross join members
               left join lateral (
                 select case when d.kind in ('laptop', 'phone')
                             then members.names[1 + (d.i / 10) % cardinality(members.names)]
                        end as owner) m on true",
        )
        .bind(shard_id)
        .bind(code)
        .bind(i32::try_from(count)?)
        .bind(i32::try_from(offset)?)
        .bind(i32::try_from(settings.members)?)
        .execute(owner)
        .await?;
    }
    Ok(person_id)
}

// -------------------------------------------------------------- requests --

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The bare axum + sqlx `select 1` route.
    Baseline,
    /// `GET /t/acme/devices?q=<term>`.
    Page,
    /// `GET /t/acme/devices`: no search term, the first 50 of all devices.
    PageAll,
    /// `POST /api/list_devices` with the same search.
    Api,
}

impl Target {
    fn parse(s: &str) -> Option<Target> {
        Some(match s {
            "baseline" => Target::Baseline,
            "page" => Target::Page,
            "page-all" => Target::PageAll,
            "api" => Target::Api,
            _ => return None,
        })
    }

    fn label(self, query: &str) -> String {
        match self {
            Target::Baseline => "GET /select1 (baseline)".into(),
            Target::Page => format!("GET /t/{SLUG}/devices?q={query}"),
            Target::PageAll => format!("GET /t/{SLUG}/devices"),
            Target::Api => "POST /api/list_devices".into(),
        }
    }

    fn request(
        self,
        client: &reqwest::Client,
        env: &Env,
        settings: &Settings,
        cookie: &str,
    ) -> reqwest::RequestBuilder {
        let portal = format!("http://{}", env.portal);
        match self {
            Target::Baseline => client.get(format!("http://{}/select1", env.baseline)),
            Target::Page | Target::PageAll => {
                let mut url = format!("{portal}/t/{SLUG}/devices");
                if self == Target::Page {
                    url.push_str("?q=");
                    url.extend(url::form_urlencoded::byte_serialize(
                        settings.query.as_bytes(),
                    ));
                }
                client
                    .get(url)
                    .header("cookie", cookie)
                    .header("accept", "text/html")
            }
            // The arguments as the hydrated page posts them (server_fn's URL encoding of
            // `ListDevices { slug, query }`), from the page's own origin.
            Target::Api => client
                .post(format!("{portal}/api/list_devices"))
                .header("cookie", cookie)
                .header("origin", &portal)
                .header("sec-fetch-site", "same-origin")
                .header("accept", "application/json")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(api_body(&settings.query)),
        }
    }
}

fn api_body(q: &str) -> String {
    let d = DeviceQuery {
        q: q.to_string(),
        page: 1,
        ..DeviceQuery::default()
    };
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("slug", SLUG)
        .append_pair("query[q]", &d.q)
        .append_pair("query[online]", "Any")
        .append_pair("query[expiring_soon]", &d.expiring_soon.to_string())
        .append_pair("query[has_routes]", &d.has_routes.to_string())
        .append_pair("query[exit_node]", &d.exit_node.to_string())
        .append_pair("query[sort]", "Name")
        .append_pair("query[descending]", &d.descending.to_string())
        .append_pair("query[page]", &d.page.to_string());
    form.finish()
}

fn client() -> BenchResult<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// One request of each target, checked: the page must be the signed-in page with a full
/// page of rows, the server function the same page as JSON.
async fn preflight(
    env: &Env,
    settings: &Settings,
    target: Target,
    cookie: &str,
) -> BenchResult<String> {
    let http = client()?;
    let res = target.request(&http, env, settings, cookie).send().await?;
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = res.text().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "{}: {status} {location} {}",
            target.label(&settings.query),
            &body[..body.len().min(300)]
        )
        .into());
    }
    let want = settings.devices.min(50);
    match target {
        Target::Baseline => Ok(format!("ok, {} bytes", body.len())),
        Target::Page | Target::PageAll => {
            // Each row links to its device; the pager's links have no trailing slash.
            let rows = body.matches(&format!("href=\"/t/{SLUG}/devices/")).count();
            if rows == 0 || (target == Target::PageAll && rows != want) {
                return Err(format!(
                    "{}: {rows} device rows in the page",
                    target.label(&settings.query)
                )
                .into());
            }
            // The pager's "1–50 of 512 · page 1 of 11".
            let of = body
                .find(" · page ")
                .map(|at| {
                    let start = body[..at].rfind('>').map_or(at, |s| s + 1);
                    let end = body[at..].find('<').map_or(body.len(), |e| at + e);
                    body[start..end].to_string()
                })
                .unwrap_or_default();
            Ok(format!(
                "ok, {rows} rows{}, {:.0} KiB of HTML; \"{of}\"",
                if rows < want {
                    " (fewer than a full page: the term matches few devices)"
                } else {
                    ""
                },
                body.len() as f64 / 1024.0
            ))
        }
        Target::Api => {
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let rows = v["page"]["devices"].as_array().map_or(0, |a| a.len());
            let total = v["page"]["total"].as_i64().unwrap_or(0);
            if rows == 0 {
                return Err(format!("{}: no devices in {body:.300}", target.label("")).into());
            }
            Ok(format!(
                "ok, {rows} rows of {total}, {:.0} KiB of JSON",
                body.len() as f64 / 1024.0
            ))
        }
    }
}

// ------------------------------------------------------------- breakdown --

/// Sequential timings of one request's parts, single-threaded: where a page's time goes
/// when nothing else competes.
fn breakdown(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    env: &Env,
    settings: &Settings,
) -> BenchResult<Vec<(String, Vec<f64>)>> {
    let n = settings.breakdown_iters;
    let mut rows = Vec::new();
    let cookie = server_rt
        .block_on(mint_sessions(&env.store, env.person_id, 1))?
        .remove(0);
    let session_id = cookie
        .strip_prefix("portal_session=")
        .and_then(|id| tower_sessions::session::Id::from_str(id).ok())
        .ok_or("malformed session cookie")?;
    for target in [Target::Baseline, Target::Page, Target::Api] {
        let http = client()?;
        let times = client_rt.block_on(time_n(n, || async {
            let res = target.request(&http, env, settings, &cookie).send().await?;
            res.bytes().await?;
            Ok(())
        }))?;
        rows.push((format!("whole: {}", target.label(&settings.query)), times));
    }
    let pool = &env.pool;
    let principal = server_rt
        .block_on(load_principal(pool, env.person_id))?
        .ok_or("the bench person is gone")?;
    let scope = principal
        .tenant_scope(SLUG, Permission::View)
        .map_err(|e| format!("{e:?}"))?;
    let query = DeviceQuery {
        q: settings.query.clone(),
        page: 1,
        ..DeviceQuery::default()
    };
    let all = DeviceQuery {
        page: 1,
        ..DeviceQuery::default()
    };
    server_rt.block_on(async {
        rows.push((
            "auth: session from web_session".into(),
            time_n(n, || async {
                env.store.load(&session_id).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            "auth: load_principal".into(),
            time_n(n, || async {
                load_principal(pool, env.person_id).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            "data: shard_and_own_user".into(),
            time_n(n, || async {
                devices::shard_and_own_user(pool, &scope).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            format!("data: list (q={})", settings.query),
            time_n(n, || async {
                devices::list(pool, &scope, CODE, &query, None).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            "data: list (no q)".into(),
            time_n(n, || async {
                devices::list(pool, &scope, CODE, &all, None).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            format!(
                "data: list_view (q={}; list, filters, count)",
                settings.query
            ),
            time_n(n, || async {
                devices::list_view(pool, &scope, CODE, &query, None).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            "data: filter_options".into(),
            time_n(n, || async {
                devices::filter_options(pool, &scope, CODE, None).await?;
                Ok(())
            })
            .await?,
        ));
        rows.push((
            "data: count_and_as_of".into(),
            time_n(n, || async {
                devices::count_and_as_of(pool, &scope).await?;
                Ok(())
            })
            .await?,
        ));
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    })?;
    Ok(rows)
}

/// Milliseconds of each of `n` sequential calls (after 10 % as many unmeasured).
async fn time_n<F, Fut>(n: usize, mut f: F) -> BenchResult<Vec<f64>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BenchResult<()>>,
{
    for _ in 0..n.div_ceil(10) {
        f().await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

// ------------------------------------------------------------------ load --

struct LoadResult {
    target: Target,
    seconds: f64,
    ok: usize,
    errors: usize,
    /// Milliseconds of the successful requests, sorted.
    latencies: Vec<f64>,
    bytes: u64,
    cpu: CpuDelta,
}

/// Requests of one connection that completed inside the measured window.
#[derive(Default)]
struct ConnStats {
    latencies: Vec<f64>,
    errors: usize,
    bytes: u64,
}

async fn load(
    env: &Env,
    settings: &Settings,
    target: Target,
    cookies: Vec<String>,
    probe: &Probe,
) -> BenchResult<LoadResult> {
    let begin = Instant::now();
    let measure_from = begin + settings.warmup;
    let measure_to = measure_from + settings.measure;
    let mut tasks = tokio::task::JoinSet::new();
    for cookie in cookies {
        let http = client()?;
        let request = target.request(&http, env, settings, &cookie);
        tasks.spawn(async move {
            let mut stats = ConnStats::default();
            loop {
                let start = Instant::now();
                if start >= measure_to {
                    break;
                }
                let Some(req) = request.try_clone() else {
                    stats.errors += 1;
                    break;
                };
                let outcome = match req.send().await {
                    Ok(res) if res.status() == reqwest::StatusCode::OK => {
                        res.bytes().await.map(|b| b.len() as u64).ok()
                    }
                    _ => None,
                };
                let end = Instant::now();
                if end < measure_from || end > measure_to {
                    continue;
                }
                match outcome {
                    Some(len) => {
                        stats
                            .latencies
                            .push(end.duration_since(start).as_secs_f64() * 1e3);
                        stats.bytes += len;
                    }
                    None => stats.errors += 1,
                }
            }
            stats
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_from = probe.sample();
    tokio::time::sleep_until(measure_to.into()).await;
    let cpu_to = probe.sample();
    let mut latencies = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    while let Some(stats) = tasks.join_next().await {
        let stats = stats?;
        latencies.extend(stats.latencies);
        errors += stats.errors;
        bytes += stats.bytes;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(LoadResult {
        target,
        seconds: settings.measure.as_secs_f64(),
        ok: latencies.len(),
        errors,
        latencies,
        bytes,
        cpu: cpu_to.since(&cpu_from),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------- output --

fn print_breakdown(rows: &[(String, Vec<f64>)], n: usize) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<52} {:>8} {:>8} {:>8}",
        format!("one request at a time ({n} calls each)"),
        "mean ms",
        "p50 ms",
        "p99 ms"
    );
    for (label, times) in rows {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
        let _ = writeln!(
            out,
            "{label:<52} {mean:>8.2} {:>8.2} {:>8.2}",
            percentile(&sorted, 50.0),
            percentile(&sorted, 99.0)
        );
    }
    print!("{out}");
}

fn print_result(r: &LoadResult, settings: &Settings) {
    let rate = r.ok as f64 / r.seconds;
    let per_req = |cpu: f64| {
        if r.ok == 0 {
            f64::NAN
        } else {
            cpu / r.ok as f64 * 1e3
        }
    };
    let c = &r.cpu;
    let pg = c.postgres.map_or_else(
        || "n/a".to_string(),
        |p| format!("{p:.1} s ({:.2} ms/req)", per_req(p)),
    );
    println!(
        "\n{} — {} connections, {:.0} s after {:.0} s warm-up\n  \
         {rate:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} ms, \
         {} ok, {} errors, {:.1} KiB/response\n  \
         CPU over {:.1} s wall: portal {:.1} s ({:.2} ms/req), load generator {:.1} s, \
         other threads {:.1} s, Postgres {pg}, other programs {}",
        r.target.label(&settings.query),
        settings.connections,
        settings.measure.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        percentile(&r.latencies, 50.0),
        percentile(&r.latencies, 90.0),
        percentile(&r.latencies, 99.0),
        r.latencies.last().copied().unwrap_or(f64::NAN),
        r.ok,
        r.errors,
        if r.ok == 0 {
            0.0
        } else {
            r.bytes as f64 / r.ok as f64 / 1024.0
        },
        c.wall,
        c.server,
        per_req(c.server),
        c.client,
        c.other_threads,
        c.elsewhere()
            .map_or_else(|| "n/a".to_string(), |e| format!("{e:.1} s")),
    );
}

fn print_summary(results: &[LoadResult], settings: &Settings) {
    let find = |t: Target| results.iter().find(|r| r.target == t);
    let rate = |r: &LoadResult| r.ok as f64 / r.seconds;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<34} {:>9} {:>8} {:>8} {:>8} {:>11}",
        format!(
            "summary ({} connections, {} CPUs)",
            settings.connections,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "of baseline"
    );
    let baseline = find(Target::Baseline).map(rate);
    for r in results {
        let _ = writeln!(
            out,
            "{:<34} {:>9.0} {:>8.2} {:>8.2} {:>8} {:>11}",
            r.target.label(&settings.query),
            rate(r),
            percentile(&r.latencies, 50.0),
            percentile(&r.latencies, 99.0),
            r.errors,
            baseline.map_or_else(
                || "n/a".to_string(),
                |b| format!("{:.1} %", rate(r) / b * 100.0)
            ),
        );
    }
    if let (Some(b), Some(page)) = (baseline, find(Target::Page)) {
        let share = rate(page) / b * 100.0;
        let p99 = percentile(&page.latencies, 99.0);
        let _ = writeln!(
            out,
            "issue 4 targets for the page: throughput {share:.1} % of the baseline \
             (target >= 25 %: {}), p99 {p99:.2} ms (target <= 25 ms: {})",
            if share >= 25.0 { "met" } else { "NOT met" },
            if p99 <= 25.0 { "met" } else { "NOT met" },
        );
    }
    print!("{out}");
}
