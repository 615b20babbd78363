//! The usage rollup, closed months and the billing reads against a real database,
//! through the application role (row-level security in force).

use super::tests::{app_pool, login, shard, tenant};
use crate::auth::{OperatorScope, TenantScope};
use crate::data::usage::{
    close_months, day_is_final, for_each_detail, operator_summary, roll_shard_now, tenant_summary,
    DetailRow, ExportScope,
};
use crate::domain::role::TenantRole;
use crate::domain::usage::Month;
use sqlx::PgPool;
use std::time::Duration;
use time::macros::{date, datetime};
use uuid::Uuid;

const GAP: Duration = Duration::from_secs(60);

async fn node(owner: &PgPool, id: i64, tenant: Option<Uuid>, name: &str, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    sqlx::query(
        "insert into node (shard_id, node_id, tenant_id, orphan_reason, given_name, name,
                           tags, online, register_method)
         select id, $1, $2, case when $2::uuid is null then 'unknown_tag' end, $3, $3, $4,
                false, 'cli' from shard",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .bind(&tags)
    .execute(owner)
    .await
    .unwrap();
}

async fn online(
    owner: &PgPool,
    node_id: i64,
    tenant: Option<Uuid>,
    from: time::OffsetDateTime,
    to: Option<time::OffsetDateTime>,
) {
    sqlx::query(
        "insert into node_online_interval (tenant_id, shard_id, node_id, started_at, ended_at)
         select $1, id, $2, $3, $4 from shard",
    )
    .bind(tenant)
    .bind(node_id)
    .bind(from)
    .bind(to)
    .execute(owner)
    .await
    .unwrap();
}

async fn detail(pool: &PgPool, scope: ExportScope, month: Month) -> Vec<DetailRow> {
    let mut rows = Vec::new();
    for_each_detail(pool, &scope, month, |r| {
        rows.push(r);
        async { true }
    })
    .await
    .unwrap();
    rows
}

struct Fleet {
    pool: PgPool,
    shard: Uuid,
    acme: TenantScope,
    globex: TenantScope,
    operator: OperatorScope,
}

/// Two tenants on one shard, created in September 2026; acme's laptop is online across
/// the October/November boundary, its server for half an hour inside that, globex's
/// device ten hours on 1 November, and an orphan an hour on 2 November.
async fn fleet(owner: &PgPool) -> Fleet {
    let pool = app_pool(owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    // Alice also belongs to globex (as a member): her acme exports must still hold
    // acme's rows only, though the tenant table shows her both tenants.
    let alice = login(
        &pool,
        "alice",
        &["tenant:acme:billing_admin", "tenant:globex:member"],
    )
    .await;
    let gina = login(&pool, "gina", &["tenant:globex:admin"]).await;
    let olivia = login(&pool, "olivia", &["portal-operators"]).await;
    let shard = shard(&pool).await;
    for statement in [
        "update tenant set shard_id = (select id from shard),
                           created_at = '2026-09-01T00:00:00Z'",
        "update shard set last_sync_at = now(), health = 'healthy'",
        "insert into shard_user (shard_id, tenant_id, person_id, user_name, headscale_user_id,
                                 created_by_portal)
         select s.id, t.id, p.id, 't7k2.alice', 1, true from shard s, tenant t, person p
          where t.code = 't7k2' and p.display_name = 'alice'",
    ] {
        sqlx::query(statement).execute(owner).await.unwrap();
    }
    node(owner, 1, Some(acme), "laptop", &[]).await;
    sqlx::query("update node set user_name = 't7k2.alice' where node_id = 1")
        .execute(owner)
        .await
        .unwrap();
    node(
        owner,
        2,
        Some(acme),
        "=HYPERLINK(\"http://x\",\"y\")",
        &["tag:t7k2--db"],
    )
    .await;
    node(owner, 4, Some(globex), "globex-1", &["tag:g4x9--web"]).await;
    node(owner, 9, None, "stray", &["tag:nobody--x"]).await;
    online(
        owner,
        1,
        Some(acme),
        datetime!(2026-10-31 22:00 UTC),
        Some(datetime!(2026-11-01 02:00 UTC)),
    )
    .await;
    online(
        owner,
        2,
        Some(acme),
        datetime!(2026-11-01 01:00 UTC),
        Some(datetime!(2026-11-01 01:30 UTC)),
    )
    .await;
    online(
        owner,
        4,
        Some(globex),
        datetime!(2026-11-01 00:00 UTC),
        Some(datetime!(2026-11-01 10:00 UTC)),
    )
    .await;
    online(
        owner,
        9,
        None,
        datetime!(2026-11-02 00:00 UTC),
        Some(datetime!(2026-11-02 01:00 UTC)),
    )
    .await;
    Fleet {
        pool,
        shard,
        acme: TenantScope::for_test(acme, alice, TenantRole::BillingAdmin),
        globex: TenantScope::for_test(globex, gina, TenantRole::Admin),
        operator: OperatorScope::for_test(olivia),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn intervals_roll_up_per_tenant_and_utc_day_and_each_tenant_sees_its_own(owner: PgPool) {
    let f = fleet(&owner).await;
    let outcome = roll_shard_now(&f.pool, f.shard, GAP).await.unwrap();
    assert_eq!(outcome.from, Some(date!(2026 - 10 - 31)));
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(outcome.final_before, Some(today), "every past day is final");

    let november = Month::parse("2026-11").unwrap();
    let october = Month::parse("2026-10").unwrap();
    let acme = detail(&f.pool, ExportScope::Tenant(f.acme.clone()), november).await;
    let rows: Vec<(String, i64, String, String, i32, bool)> = acme
        .iter()
        .map(|r| {
            (
                r.day.to_string(),
                r.node_id,
                r.device_name.clone(),
                r.owner.clone(),
                r.seconds,
                r.final_,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "2026-11-01".into(),
                1,
                "laptop".into(),
                "alice@example.com".into(),
                7200,
                true
            ),
            (
                "2026-11-01".into(),
                2,
                "=HYPERLINK(\"http://x\",\"y\")".into(),
                "tag:db".into(),
                1800,
                true
            ),
        ],
        "the laptop's four hours split at midnight; tags in the tenant's names"
    );
    let acme_october = detail(&f.pool, ExportScope::Tenant(f.acme.clone()), october).await;
    assert_eq!(acme_october.len(), 1);
    assert_eq!(acme_october[0].seconds, 7200);

    // Globex sees only its own device; the operator sees everything, orphans included.
    let globex = detail(&f.pool, ExportScope::Tenant(f.globex.clone()), november).await;
    assert_eq!(
        globex.iter().map(|r| r.node_id).collect::<Vec<_>>(),
        [4],
        "never acme's rows"
    );
    let all = detail(&f.pool, ExportScope::Operator(f.operator.clone()), november).await;
    assert_eq!(
        all.iter().map(|r| r.node_id).collect::<Vec<_>>(),
        [4, 1, 2, 9],
        "by day, then tenant code (g4x9 before t7k2)"
    );
    assert_eq!(all[3].tenant_code, "", "an orphan has no tenant");

    // The day's totals: two devices, 2.5 hours, two online at once (01:00-01:30).
    let days = crate::data::usage::tenant_days(&f.pool, &f.acme, november)
        .await
        .unwrap();
    let first = &days[0];
    assert_eq!(
        (
            first.active_devices,
            first.device_seconds,
            first.peak_devices
        ),
        (2, 9000, 2)
    );
    assert!(days[1..].iter().all(|d| d.active_devices == 0));

    // Row-level security, straight: acme's transaction counts acme's rows only.
    let mut tx = crate::data::tenant_tx(&f.pool, &f.acme).await.unwrap();
    let seen: (i64, i64) = sqlx::query_as(
        "select (select count(*) from usage_device_day), (select count(*) from usage_day)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(seen, (3, 2), "acme's device-days and days, nobody else's");
    let shard_days: i64 = sqlx::query_scalar("select count(*) from usage_shard_day")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(shard_days, 0, "whole-shard totals are the operator's");
    let forged = sqlx::query(
        "insert into usage_device_day (day, shard_id, tenant_id, node_id, seconds, device_name, owner)
         values ('2026-11-03', $1, $2, 1, 10, 'x', 'y')",
    )
    .bind(f.shard)
    .bind(f.acme.tenant_id())
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "a tenant never writes usage");
}

#[sqlx::test(migrations = "../migrations")]
async fn final_days_never_change_and_a_closed_month_stays_as_it_was(owner: PgPool) {
    let f = fleet(&owner).await;
    roll_shard_now(&f.pool, f.shard, GAP).await.unwrap();
    let closed = close_months(&f.pool).await.unwrap();
    assert_eq!(
        closed,
        [
            Month::parse("2026-09").unwrap(),
            Month::parse("2026-10").unwrap()
        ],
        "every month before this one, from the first tenant's"
    );
    assert!(
        close_months(&f.pool).await.unwrap().is_empty(),
        "idempotent"
    );
    let october = Month::parse("2026-10").unwrap();
    let before = operator_summary(&f.pool, &f.operator, october)
        .await
        .unwrap();
    assert_eq!(before.len(), 2, "a row per tenant, with or without usage");
    assert!(before.iter().all(|r| r.closed));
    let acme = &before[1];
    assert_eq!(
        (
            acme.tenant_slug.as_str(),
            acme.active_devices,
            acme.device_seconds,
            acme.peak_devices,
            acme.days_with_usage
        ),
        ("acme", 1, 7200, 1, 1)
    );
    assert_eq!(before[0].tenant_slug, "globex", "ordered by tenant code");
    assert_eq!(before[0].device_seconds, 0);
    let detail_before = detail(&f.pool, ExportScope::Operator(f.operator.clone()), october).await;

    // Afterwards: the tenant is renamed, the device too, and an interval of October is
    // (impossibly) edited. A closed month and final days do not move.
    for statement in [
        "update tenant set slug = 'acme-corp', display_name = 'Acme Corp' where code = 't7k2'",
        "update node set given_name = 'renamed' where node_id = 1",
        "update node_online_interval set started_at = '2026-10-30T00:00:00Z' where node_id = 1",
    ] {
        sqlx::query(statement).execute(&owner).await.unwrap();
    }
    roll_shard_now(&f.pool, f.shard, GAP).await.unwrap();
    close_months(&f.pool).await.unwrap();
    let after = operator_summary(&f.pool, &f.operator, october)
        .await
        .unwrap();
    assert_eq!(
        before, after,
        "the closed month is the same, names included"
    );
    let detail_after = detail(&f.pool, ExportScope::Operator(f.operator.clone()), october).await;
    assert_eq!(detail_before, detail_after);
    // The open month shows today's names.
    let november = tenant_summary(&f.pool, &f.acme, Month::parse("2026-11").unwrap())
        .await
        .unwrap();
    assert_eq!(november.len(), 1);
    assert_eq!(november[0].tenant_slug, "acme-corp");
    assert!(!november[0].closed);
    assert_eq!(november[0].device_seconds, 9000);
}

#[sqlx::test(migrations = "../migrations")]
async fn today_is_recounted_until_it_is_final(owner: PgPool) {
    let f = fleet(&owner).await;
    let now: time::OffsetDateTime = sqlx::query_scalar("select now()")
        .fetch_one(&owner)
        .await
        .unwrap();
    let midnight = now.date().midnight().assume_utc();
    // The laptop came online at midnight and is still online (an open interval): it
    // counts up to the shard's last sync, not up to now.
    online(&owner, 1, Some(f.acme.tenant_id()), midnight, None).await;
    sqlx::query("update shard set last_sync_at = $1")
        .bind(midnight + time::Duration::seconds(100))
        .execute(&owner)
        .await
        .unwrap();
    roll_shard_now(&f.pool, f.shard, GAP).await.unwrap();
    let seconds = || async {
        sqlx::query_scalar::<_, i32>(
            "select seconds from usage_device_day where node_id = 1 and day = $1",
        )
        .bind(now.date())
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    assert_eq!(seconds().await, 100);
    sqlx::query("update shard set last_sync_at = $1")
        .bind(midnight + time::Duration::seconds(250))
        .execute(&owner)
        .await
        .unwrap();
    roll_shard_now(&f.pool, f.shard, GAP).await.unwrap();
    assert_eq!(seconds().await, 250, "today is not final: counted again");
}

#[test]
fn a_day_is_final_once_nothing_observed_later_can_change_it() {
    let d = date!(2026 - 11 - 01);
    let end = datetime!(2026-11-02 00:00 UTC);
    let day_is_final = |d, now| day_is_final(d, now, GAP);
    let seconds = time::Duration::seconds;
    // Within the gap after the day's end a sync may still extend an open interval into
    // it, or one in flight may still open one: not final.
    assert!(!day_is_final(d, end + seconds(59)));
    assert!(!day_is_final(d, end - seconds(1)));
    // After it, either a sync saw the shard after the day, or the open intervals will
    // end at the last sync: final.
    assert!(day_is_final(d, end + seconds(60)));
}
