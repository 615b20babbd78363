//! Usage rollups, closed months and the reads behind the usage pages and billing
//! exports (DESIGN.md §7, docs/billing-export.md). Server only.
//!
//! # Rolling up (`roll_next_due`, run by `server::jobs::usage`)
//! One shard per transaction, claimed with `for update skip locked`, so replicas never
//! roll the same shard at once. The shard's online intervals overlapping its days that
//! are not final yet are read and rolled up by `domain::usage::rollup` (per tenant, and
//! for the whole shard); the non-final rows of those days are replaced.
//!
//! # When a day is final
//! An open interval is known to last until the shard's `last_sync_at`; it only grows
//! beyond that if the next good sync comes within the sync's `max_gap` (else the sync
//! ends it at `last_sync_at`), and new intervals start at a sync's time, never earlier.
//! So once a day's end is `max_gap` in the past, either a sync saw the shard after the
//! day or the open intervals will end at the last sync before it: nothing observed later
//! changes the day, which is then *final*. Final rows are never written again; the
//! shard's `usage_final_before` moves past them.
//!
//! # Closing a month (`close_months`)
//! Once every shard's days of a month are final, its summary is frozen in `usage_month`
//! with the names of the time (tenant slug and name, shard, plan, quota), so a closed
//! month's export is the same bytes every time.

use crate::auth::{OperatorScope, TenantScope};
use crate::data::{operator_tx, system_tx, tenant_tx, Tx};
use crate::domain::usage::{self, DayTotals, DeviceDay, Interval, Month};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

/// What one rollup pass of a shard did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollOutcome {
    pub shard_id: Uuid,
    pub from: Option<Date>,
    /// Days in [from, today] rolled; the first of them not final yet.
    pub final_before: Option<Date>,
    pub intervals: usize,
    pub device_days: usize,
}

fn day_start(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

/// Whether day `d` is final at `now` (see the module doc).
pub fn day_is_final(d: Date, now: OffsetDateTime, max_gap: Duration) -> bool {
    let end = day_start(d.next_day().expect("a day before 9999"));
    let gap = time::Duration::try_from(max_gap).unwrap_or(time::Duration::MINUTE);
    end + gap <= now
}

/// Rolls up the most overdue shard (last rolled longer than `every` ago), if any.
pub async fn roll_next_due(
    pool: &PgPool,
    every: Duration,
    max_gap: Duration,
) -> Result<Option<RollOutcome>, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let claimed: Option<(Uuid, Option<Date>, Option<OffsetDateTime>, OffsetDateTime)> =
        sqlx::query_as(
            "select id, usage_final_before, last_sync_at, now() from shard
              where usage_rolled_at is null or usage_rolled_at < now() - make_interval(secs => $1)
              order by usage_rolled_at nulls first, id
              limit 1 for update skip locked",
        )
        .bind(every.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
    let Some((shard_id, final_before, last_sync_at, now)) = claimed else {
        return Ok(None);
    };
    let outcome = roll_shard(&mut tx, shard_id, final_before, last_sync_at, now, max_gap).await?;
    tx.commit().await?;
    Ok(Some(outcome))
}

/// Rolls up one shard now, whatever its schedule (tests, and the operator's "roll up").
pub async fn roll_shard_now(
    pool: &PgPool,
    shard_id: Uuid,
    max_gap: Duration,
) -> Result<RollOutcome, sqlx::Error> {
    let mut tx = system_tx(pool).await?;
    let (final_before, last_sync_at, now): (Option<Date>, Option<OffsetDateTime>, OffsetDateTime) =
        sqlx::query_as(
            "select usage_final_before, last_sync_at, now() from shard where id = $1 for update",
        )
        .bind(shard_id)
        .fetch_one(&mut *tx)
        .await?;
    let outcome = roll_shard(&mut tx, shard_id, final_before, last_sync_at, now, max_gap).await?;
    tx.commit().await?;
    Ok(outcome)
}

type IntervalRow = (Option<Uuid>, i64, OffsetDateTime, Option<OffsetDateTime>);

async fn roll_shard(
    tx: &mut Tx,
    shard_id: Uuid,
    final_before: Option<Date>,
    last_sync_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    max_gap: Duration,
) -> Result<RollOutcome, sqlx::Error> {
    let today = now.date();
    let first_interval: Option<OffsetDateTime> =
        sqlx::query_scalar("select min(started_at) from node_online_interval where shard_id = $1")
            .bind(shard_id)
            .fetch_one(&mut **tx)
            .await?;
    let from = final_before
        .or(first_interval.map(|t| t.date()))
        .unwrap_or(today)
        .min(today);
    let to = today.next_day().expect("a day before 9999");
    let known_until = last_sync_at.unwrap_or(day_start(from));
    let rows: Vec<IntervalRow> = sqlx::query_as(
        "select tenant_id, node_id, started_at, ended_at from node_online_interval
          where shard_id = $1 and started_at < $3
            and (ended_at is null or ended_at > $2)",
    )
    .bind(shard_id)
    .bind(day_start(from))
    .bind(day_start(to))
    .fetch_all(&mut **tx)
    .await?;
    let mut by_tenant: BTreeMap<Option<Uuid>, Vec<Interval>> = BTreeMap::new();
    let mut all = Vec::with_capacity(rows.len());
    for (tenant, node, started, ended) in &rows {
        if let Some(i) = usage::resolve(*node, *started, *ended, known_until) {
            by_tenant.entry(*tenant).or_default().push(i);
            all.push(i);
        }
    }
    let days: Vec<Date> = {
        let mut d = from;
        let mut v = Vec::new();
        while d < to {
            v.push(d);
            d = d.next_day().expect("a day before 9999");
        }
        v
    };
    let finals: BTreeMap<Date, bool> = days
        .iter()
        .map(|&d| (d, day_is_final(d, now, max_gap)))
        .collect();
    // Final days form a prefix: a later day is final only if an earlier one is.
    let first_open_day = days.iter().copied().find(|d| !finals[d]).unwrap_or(to);

    // Replace what is not final yet.
    for table in ["usage_device_day", "usage_day", "usage_shard_day"] {
        sqlx::query(&format!(
            "delete from {table} where shard_id = $1 and day >= $2 and not final"
        ))
        .bind(shard_id)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    }

    let names = device_names(tx, shard_id).await?;
    let mut device_days = 0;
    let (
        mut dd_day,
        mut dd_tenant,
        mut dd_node,
        mut dd_secs,
        mut dd_name,
        mut dd_owner,
        mut dd_final,
    ) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut t_day, mut t_tenant, mut t_active, mut t_secs, mut t_peak, mut t_final) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (tenant, intervals) in &by_tenant {
        let (devices, totals): (Vec<DeviceDay>, Vec<DayTotals>) =
            usage::rollup(intervals, from, to);
        for d in devices {
            let (name, owner) = names
                .get(&d.node_id)
                .cloned()
                .unwrap_or_else(|| (format!("node {}", d.node_id), String::new()));
            dd_day.push(d.day);
            dd_tenant.push(*tenant);
            dd_node.push(d.node_id);
            dd_secs.push(d.seconds as i32);
            dd_name.push(name);
            dd_owner.push(owner);
            dd_final.push(finals[&d.day]);
            device_days += 1;
        }
        for t in totals.into_iter().filter(|t| t.active_devices > 0) {
            t_day.push(t.day);
            t_tenant.push(*tenant);
            t_active.push(t.active_devices);
            t_secs.push(t.device_seconds);
            t_peak.push(t.peak_devices);
            t_final.push(finals[&t.day]);
        }
    }
    sqlx::query(
        "insert into usage_device_day (shard_id, day, tenant_id, node_id, seconds, device_name, owner, final)
         select $1, * from unnest($2::date[], $3::uuid[], $4::int8[], $5::int4[], $6::text[], $7::text[], $8::bool[])",
    )
    .bind(shard_id)
    .bind(&dd_day)
    .bind(&dd_tenant)
    .bind(&dd_node)
    .bind(&dd_secs)
    .bind(&dd_name)
    .bind(&dd_owner)
    .bind(&dd_final)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "insert into usage_day (shard_id, day, tenant_id, active_devices, device_seconds, peak_devices, final)
         select $1, * from unnest($2::date[], $3::uuid[], $4::int4[], $5::int8[], $6::int4[], $7::bool[])",
    )
    .bind(shard_id)
    .bind(&t_day)
    .bind(&t_tenant)
    .bind(&t_active)
    .bind(&t_secs)
    .bind(&t_peak)
    .bind(&t_final)
    .execute(&mut **tx)
    .await?;
    let (_, shard_totals) = usage::rollup(&all, from, to);
    let shard_totals: Vec<&DayTotals> = shard_totals
        .iter()
        .filter(|t| t.active_devices > 0)
        .collect();
    sqlx::query(
        "insert into usage_shard_day (shard_id, day, active_devices, device_seconds, peak_devices, final)
         select $1, * from unnest($2::date[], $3::int4[], $4::int8[], $5::int4[], $6::bool[])",
    )
    .bind(shard_id)
    .bind(shard_totals.iter().map(|t| t.day).collect::<Vec<_>>())
    .bind(shard_totals.iter().map(|t| t.active_devices).collect::<Vec<_>>())
    .bind(shard_totals.iter().map(|t| t.device_seconds).collect::<Vec<_>>())
    .bind(shard_totals.iter().map(|t| t.peak_devices).collect::<Vec<_>>())
    .bind(shard_totals.iter().map(|t| finals[&t.day]).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    sqlx::query("update shard set usage_final_before = $2, usage_rolled_at = now() where id = $1")
        .bind(shard_id)
        .bind(first_open_day)
        .execute(&mut **tx)
        .await?;
    Ok(RollOutcome {
        shard_id,
        from: Some(from),
        final_before: Some(first_open_day),
        intervals: rows.len(),
        device_days,
    })
}

/// Each node's name and owner as billed, in its tenant's names: the member's email for
/// a member's device, its tags (`tag:db`) for a tagged one.
async fn device_names(
    tx: &mut Tx,
    shard_id: Uuid,
) -> Result<BTreeMap<i64, (String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "select n.node_id, n.given_name,
                coalesce(p.email, p.display_name,
                         nullif(array_to_string(array(
                           select regexp_replace(t, '^tag:[a-z0-9]+--', 'tag:')
                             from unnest(n.tags) t order by 1), ' '), ''),
                         n.user_name, '')
           from node n
           left join shard_user su on su.shard_id = n.shard_id and su.user_name = n.user_name
           left join person p on p.id = su.person_id
          where n.shard_id = $1",
    )
    .bind(shard_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(id, n, o)| (id, (n, o))).collect())
}

/// A month's summary columns per tenant and shard (`$1` the month's first day, `$2` the
/// next month's), as `SummarySql` reads them and `usage_month` stores them: one row per
/// shard the tenant used, or one on its own shard with zeros.
const MONTH_COLUMNS: &str = "t.code, t.slug, t.display_name, t.plan, coalesce(s.cluster_id, ''),
                    coalesce(s.region, t.region), t.device_quota,
                    coalesce(u.active_devices, 0), coalesce(u.device_seconds, 0)::int8,
                    coalesce(u.peak_devices, 0), coalesce(u.days, 0)";
const MONTH_FROM: &str = "from tenant t
               left join lateral (
                 select d.shard_id,
                        (select count(distinct dd.node_id)::int from usage_device_day dd
                          where dd.tenant_id = t.id and dd.shard_id = d.shard_id
                            and dd.day >= $1 and dd.day < $2) as active_devices,
                        sum(d.device_seconds)::int8 as device_seconds,
                        max(d.peak_devices) as peak_devices,
                        count(*)::int as days
                   from usage_day d
                  where d.tenant_id = t.id and d.day >= $1 and d.day < $2
                  group by d.shard_id) u on true
               left join shard s on s.id = coalesce(u.shard_id, t.shard_id)
              where t.created_at < $2::timestamp at time zone 'UTC'";

/// Closes every month whose days are final on every shard, oldest first; returns the
/// months closed. Idempotent; two replicas closing at once insert nothing twice (the
/// closed-month row is taken first).
pub async fn close_months(pool: &PgPool) -> Result<Vec<Month>, sqlx::Error> {
    let mut closed = Vec::new();
    loop {
        let mut tx = system_tx(pool).await?;
        // The oldest month not closed that has tenants, if all shards are final past it.
        let next: Option<Date> = sqlx::query_scalar(
            "with bounds as (
               select min(usage_final_before) as final_before,
                      bool_and(usage_final_before is not null) as all_rolled
                 from shard),
             first as (
               select date_trunc('month', min(created_at) at time zone 'UTC')::date as m from tenant),
             candidate as (
               select coalesce(
                 (select (max(month) + interval '1 month')::date from usage_month_closed),
                 (select m from first)) as m)
             select c.m from candidate c, bounds b
              where c.m is not null and b.all_rolled
                and (c.m + interval '1 month')::date <= b.final_before",
        )
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        let Some(first_day) = next else {
            return Ok(closed);
        };
        let month = Month::containing(first_day);
        let taken = sqlx::query(
            "insert into usage_month_closed (month) values ($1) on conflict do nothing",
        )
        .bind(first_day)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(closed);
        }
        sqlx::query(&format!(
            "insert into usage_month (month, tenant_id, shard_id, tenant_code, tenant_slug,
                 tenant_name, plan, cluster_id, region, device_quota, active_devices,
                 device_seconds, peak_devices, days_with_usage)
             select $1, t.id, s.id, {MONTH_COLUMNS} {MONTH_FROM}"
        ))
        .bind(first_day)
        .bind(month.end_exclusive())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(%month, "billing month closed");
        closed.push(month);
    }
}

/// One row of a month's summary: a tenant on a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub month: Month,
    pub tenant_code: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub plan: String,
    pub cluster_id: String,
    pub region: String,
    pub device_quota: i32,
    pub active_devices: i32,
    pub device_seconds: i64,
    pub peak_devices: i32,
    pub days_with_usage: i32,
    /// Whether the month is closed (the row is frozen) or still provisional.
    pub closed: bool,
}

type SummarySql = (
    String,
    String,
    String,
    String,
    String,
    String,
    i32,
    i32,
    i64,
    i32,
    i32,
);

/// Whether the month is closed.
pub async fn is_closed(tx: &mut Tx, month: Month) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists(select 1 from usage_month_closed where month = $1)")
        .bind(month.first_day())
        .fetch_one(&mut **tx)
        .await
}

/// The month's summary rows the transaction may see (RLS: one tenant's, or all for an
/// operator), ordered by tenant code and shard. Closed months read the frozen rows;
/// open ones are computed from the rollups so far, with today's names.
async fn summary(tx: &mut Tx, month: Month) -> Result<Vec<SummaryRow>, sqlx::Error> {
    let closed = is_closed(tx, month).await?;
    let rows: Vec<SummarySql> = if closed {
        sqlx::query_as(
            "select tenant_code, tenant_slug, tenant_name, plan, cluster_id, region, device_quota,
                    active_devices, device_seconds, peak_devices, days_with_usage
               from usage_month where month = $1
              order by tenant_code, cluster_id",
        )
        .bind(month.first_day())
        .fetch_all(&mut **tx)
        .await?
    } else {
        sqlx::query_as(&format!(
            "select {MONTH_COLUMNS} {MONTH_FROM}
                -- A tenant transaction also shows the person's other tenants: only its own.
                and (t.id = app_tenant_id() or app_is_operator())
              order by t.code, 5"
        ))
        .bind(month.first_day())
        .bind(month.end_exclusive())
        .fetch_all(&mut **tx)
        .await?
    };
    Ok(rows
        .into_iter()
        .map(|r| SummaryRow {
            month,
            tenant_code: r.0,
            tenant_slug: r.1,
            tenant_name: r.2,
            plan: r.3,
            cluster_id: r.4,
            region: r.5,
            device_quota: r.6,
            active_devices: r.7,
            device_seconds: r.8,
            peak_devices: r.9,
            days_with_usage: r.10,
            closed,
        })
        .collect())
}

pub async fn tenant_summary(
    pool: &PgPool,
    scope: &TenantScope,
    month: Month,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows = summary(&mut tx, month).await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn operator_summary(
    pool: &PgPool,
    scope: &OperatorScope,
    month: Month,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows = summary(&mut tx, month).await?;
    tx.commit().await?;
    Ok(rows)
}

/// One device-day of the detail export.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DetailRow {
    pub day: Date,
    pub tenant_code: String,
    pub cluster_id: String,
    pub node_id: i64,
    pub device_name: String,
    pub owner: String,
    pub seconds: i32,
    pub final_: bool,
}

/// The transaction a detail export streams from; the caller scopes it.
pub enum ExportScope {
    Tenant(TenantScope),
    Operator(OperatorScope),
}

/// Streams the month's device-days the scope may see, ordered by day, tenant, shard and
/// node, to `each` in constant memory: rows are read from the socket as `each` takes
/// them (it awaits, e.g. on a bounded channel to the HTTP body). Stops early, without an
/// error, when `each` returns false. Returns the rows handed over.
pub async fn for_each_detail<F, Fut>(
    pool: &PgPool,
    scope: &ExportScope,
    month: Month,
    mut each: F,
) -> Result<u64, sqlx::Error>
where
    F: FnMut(DetailRow) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    use futures::TryStreamExt;
    let mut tx = match scope {
        ExportScope::Tenant(s) => tenant_tx(pool, s).await?,
        ExportScope::Operator(s) => operator_tx(pool, s).await?,
    };
    let mut n = 0;
    {
        let mut rows = sqlx::query_as::<_, DetailRow>(
            "select d.day, coalesce(t.code, '') as tenant_code, s.cluster_id, d.node_id,
                    d.device_name, d.owner, d.seconds, d.final as final_
               from usage_device_day d
               join shard s on s.id = d.shard_id
               left join tenant t on t.id = d.tenant_id
              where d.day >= $1 and d.day < $2
              order by d.day, tenant_code, s.cluster_id, d.node_id",
        )
        .bind(month.first_day())
        .bind(month.end_exclusive())
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            n += 1;
            if !each(row).await {
                break;
            }
        }
    }
    tx.commit().await?;
    Ok(n)
}

/// A tenant's days of a month, for the usage page's charts (every day of the month up to
/// today, zeros included).
pub async fn tenant_days(
    pool: &PgPool,
    scope: &TenantScope,
    month: Month,
) -> Result<Vec<DayTotals>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows: Vec<(Date, i32, i64, i32)> = sqlx::query_as(
        "select day, sum(active_devices)::int, sum(device_seconds)::int8, max(peak_devices)
           from usage_day where tenant_id = $1 and day >= $2 and day < $3
          group by day order by day",
    )
    .bind(scope.tenant_id())
    .bind(month.first_day())
    .bind(month.end_exclusive())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(fill_days(month, &rows))
}

fn fill_days(month: Month, rows: &[(Date, i32, i64, i32)]) -> Vec<DayTotals> {
    let by_day: BTreeMap<Date, &(Date, i32, i64, i32)> = rows.iter().map(|r| (r.0, r)).collect();
    let today = OffsetDateTime::now_utc().date();
    month
        .days()
        .take_while(|d| *d <= today)
        .map(|day| match by_day.get(&day) {
            Some(r) => DayTotals {
                day,
                active_devices: r.1,
                device_seconds: r.2,
                peak_devices: r.3,
            },
            None => DayTotals {
                day,
                active_devices: 0,
                device_seconds: 0,
                peak_devices: 0,
            },
        })
        .collect()
}

/// A device's month, for the usage page's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMonth {
    pub node_id: i64,
    pub device_name: String,
    pub owner: String,
    pub seconds: i64,
    pub days: i32,
}

/// The tenant's devices by online time in the month, most first, at most `limit`.
pub async fn tenant_devices(
    pool: &PgPool,
    scope: &TenantScope,
    month: Month,
    limit: i64,
) -> Result<Vec<DeviceMonth>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let rows: Vec<(i64, String, String, i64, i32)> = sqlx::query_as(
        "select node_id, (array_agg(device_name order by day desc))[1],
                (array_agg(owner order by day desc))[1], sum(seconds)::int8, count(*)::int
           from usage_device_day where tenant_id = $1 and day >= $2 and day < $3
          group by node_id order by 4 desc, 1 limit $4",
    )
    .bind(scope.tenant_id())
    .bind(month.first_day())
    .bind(month.end_exclusive())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| DeviceMonth {
            node_id: r.0,
            device_name: r.1,
            owner: r.2,
            seconds: r.3,
            days: r.4,
        })
        .collect())
}

/// A shard's trend for the operator: per day, the devices registered at the day's end
/// (from the mirror), the peak online and the capacity now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardTrendDay {
    pub day: Date,
    pub registered: i64,
    pub peak_online: i32,
    pub device_seconds: i64,
}

pub async fn shard_trend(
    pool: &PgPool,
    scope: &OperatorScope,
    shard_id: Uuid,
    days: i64,
) -> Result<Vec<ShardTrendDay>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows: Vec<(Date, i64, Option<i32>, Option<i64>)> = sqlx::query_as(
        "with days as (
           select d::date as day
             from generate_series((now() at time zone 'UTC')::date - ($2::int - 1),
                                  (now() at time zone 'UTC')::date, interval '1 day') d)
         select days.day,
                (select count(*) from node n
                  where n.shard_id = $1
                    and coalesce(n.shard_created_at, n.first_synced_at)
                        < (days.day + 1)::timestamp at time zone 'UTC'
                    and (n.removed_at is null
                         or n.removed_at >= (days.day + 1)::timestamp at time zone 'UTC')),
                u.peak_devices, u.device_seconds
           from days
           left join usage_shard_day u on u.shard_id = $1 and u.day = days.day
          order by days.day",
    )
    .bind(shard_id)
    .bind(days as i32)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| ShardTrendDay {
            day: r.0,
            registered: r.1,
            peak_online: r.2.unwrap_or(0),
            device_seconds: r.3.unwrap_or(0),
        })
        .collect())
}

/// The month of a date given as "YYYY-MM", or the current month.
pub fn month_or_current(s: Option<&str>) -> Result<Month, String> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Month::parse(s),
        None => Ok(Month::containing(OffsetDateTime::now_utc().date())),
    }
}

/// A shard's id and capacity by its cluster id.
pub async fn shard_by_cluster(
    pool: &PgPool,
    scope: &OperatorScope,
    cluster_id: &str,
) -> Result<Option<(Uuid, i32)>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let row = sqlx::query_as("select id, node_capacity from shard where cluster_id = $1")
        .bind(cluster_id)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Every shard's capacity, use and tenants (by devices, most first), for the operator's
/// quota view. Devices are the mirror's (orphans count against capacity too).
pub async fn shard_quotas(
    pool: &PgPool,
    scope: &OperatorScope,
) -> Result<Vec<crate::api::usage::ShardQuota>, sqlx::Error> {
    use crate::api::usage::{ShardQuota, TenantShare};
    let mut tx = operator_tx(pool, scope).await?;
    let shards: Vec<(Uuid, String, String, String, String, i32, i64)> = sqlx::query_as(
        "select s.id, s.cluster_id, s.name, s.region, s.status, s.node_capacity,
                (select count(*) from node n where n.shard_id = s.id and n.removed_at is null)
           from shard s order by s.cluster_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let shares: Vec<(Uuid, String, String, i64, i32)> = sqlx::query_as(
        "select t.shard_id, t.slug, t.display_name,
                (select count(*) from node n
                  where n.tenant_id = t.id and n.shard_id = t.shard_id and n.removed_at is null),
                t.device_quota
           from tenant t where t.shard_id is not null
          order by 4 desc, t.slug",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(shards
        .into_iter()
        .map(|(id, cluster_id, name, region, status, capacity, nodes)| {
            let tenants: Vec<TenantShare> = shares
                .iter()
                .filter(|s| s.0 == id)
                .map(|s| TenantShare {
                    slug: s.1.clone(),
                    display_name: s.2.clone(),
                    devices: s.3,
                    device_quota: s.4,
                })
                .collect();
            let cap = i64::from(capacity);
            let used_pct = if cap > 0 {
                nodes * 100 / cap
            } else if nodes > 0 {
                100
            } else {
                0
            };
            ShardQuota {
                cluster_id,
                name,
                region,
                status,
                node_capacity: capacity,
                nodes,
                headroom: cap - nodes,
                used_pct,
                state: crate::domain::shard::capacity_state(nodes, cap).into(),
                promised: tenants.iter().map(|t| i64::from(t.device_quota)).sum(),
                tenants,
            }
        })
        .collect())
}
