//! Usage and quotas: the tenant's usage page, the operator's usage overview, the shard
//! quota view and a shard's trend. The CSV exports are plain GET routes
//! (`server::billing`), authorized the same way.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One day of usage, for the charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub active_devices: i32,
    pub device_seconds: i64,
    pub peak_devices: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDevice {
    pub node_id: i64,
    pub device_name: String,
    pub owner: String,
    pub device_hours: String,
    pub days: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub slug: String,
    pub display_name: String,
    /// `YYYY-MM`, and its neighbours for the month picker (`next` none after this month).
    pub month: String,
    pub prev: String,
    pub next: Option<String>,
    /// Closed months are final; an open month's numbers still grow.
    pub closed: bool,
    pub days: Vec<UsageDay>,
    pub active_devices: i32,
    pub device_hours: String,
    pub peak_devices: i32,
    pub days_with_usage: i32,
    /// The devices with the most online time this month (at most 100).
    pub devices: Vec<UsageDevice>,
    pub quotas: crate::api::tenant::Quotas,
    pub shard: Option<(String, String)>,
}

#[cfg(feature = "ssr")]
fn month_param(month: Option<String>) -> Result<crate::domain::usage::Month, AppError> {
    let month = month.filter(|m| !m.trim().is_empty());
    let current = crate::domain::usage::Month::containing(time::OffsetDateTime::now_utc().date());
    match month {
        None => Ok(current),
        Some(m) => {
            let m = crate::domain::usage::Month::parse(m.trim()).map_err(AppError::Invalid)?;
            if m > current {
                return Err(AppError::Invalid(format!(
                    "{m} has not begun yet; usage is known up to {current}."
                )));
            }
            Ok(m)
        }
    }
}

#[cfg(feature = "ssr")]
fn day_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[server(prefix = "/api", endpoint = "get_tenant_usage")]
pub async fn get_tenant_usage(
    slug: String,
    month: Option<String>,
) -> Result<TenantUsage, AppError> {
    use crate::data::usage as data;
    use crate::domain::role::Permission;
    use crate::domain::usage::{hours_2dp, Month};
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ViewBilling)
        .map_err(fail)?;
    let month = month_param(month).map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let pool = &state.pool;
    let db = |e: sqlx::Error| fail(e.into());
    let days = data::tenant_days(pool, &scope, month).await.map_err(db)?;
    let summary = data::tenant_summary(pool, &scope, month)
        .await
        .map_err(db)?;
    let devices = data::tenant_devices(pool, &scope, month, 100)
        .await
        .map_err(db)?;
    let overview = crate::data::tenants::overview(pool, &scope)
        .await
        .map_err(db)?
        .ok_or_else(|| fail(AppError::NotFound(format!("Tenant “{slug}”"))))?;
    let closed = summary.first().map(|r| r.closed).unwrap_or(false);
    let current = Month::containing(time::OffsetDateTime::now_utc().date());
    Ok(TenantUsage {
        slug: overview.slug.clone(),
        display_name: overview.display_name.clone(),
        month: month.to_string(),
        prev: month.prev().to_string(),
        next: (month < current).then(|| month.next().to_string()),
        closed,
        active_devices: summary.iter().map(|r| r.active_devices).sum(),
        device_hours: hours_2dp(summary.iter().map(|r| r.device_seconds).sum()),
        peak_devices: summary.iter().map(|r| r.peak_devices).max().unwrap_or(0),
        days_with_usage: days.iter().filter(|d| d.active_devices > 0).count() as i32,
        days: days
            .iter()
            .map(|d| UsageDay {
                day: day_text(d.day),
                active_devices: d.active_devices,
                device_seconds: d.device_seconds,
                peak_devices: d.peak_devices,
            })
            .collect(),
        devices: devices
            .into_iter()
            .map(|d| UsageDevice {
                node_id: d.node_id,
                device_name: d.device_name,
                owner: d.owner,
                device_hours: hours_2dp(d.seconds),
                days: d.days,
            })
            .collect(),
        quotas: overview.quotas,
        shard: overview.shard.map(|s| (s.name, s.region)),
    })
}

/// One tenant's month for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorUsageRow {
    pub tenant_slug: String,
    pub tenant_name: String,
    pub plan: String,
    pub cluster_id: String,
    pub active_devices: i32,
    pub device_hours: String,
    pub peak_devices: i32,
    pub days_with_usage: i32,
    pub device_quota: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorUsage {
    pub month: String,
    pub prev: String,
    pub next: Option<String>,
    pub closed: bool,
    pub rows: Vec<OperatorUsageRow>,
    pub device_hours: String,
    pub active_devices: i32,
}

#[server(prefix = "/api", endpoint = "get_operator_usage")]
pub async fn get_operator_usage(month: Option<String>) -> Result<OperatorUsage, AppError> {
    use crate::domain::usage::{hours_2dp, Month};
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let month = month_param(month).map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let mut rows = crate::data::usage::operator_summary(&state.pool, &scope, month)
        .await
        .map_err(|e| fail(e.into()))?;
    // The page lists the biggest users first (the export keeps its documented order).
    rows.sort_by(|a, b| {
        b.device_seconds
            .cmp(&a.device_seconds)
            .then_with(|| a.tenant_slug.cmp(&b.tenant_slug))
    });
    let current = Month::containing(time::OffsetDateTime::now_utc().date());
    Ok(OperatorUsage {
        month: month.to_string(),
        prev: month.prev().to_string(),
        next: (month < current).then(|| month.next().to_string()),
        closed: rows.first().map(|r| r.closed).unwrap_or(false),
        device_hours: hours_2dp(rows.iter().map(|r| r.device_seconds).sum()),
        active_devices: rows.iter().map(|r| r.active_devices).sum(),
        rows: rows
            .into_iter()
            .map(|r| OperatorUsageRow {
                tenant_slug: r.tenant_slug,
                tenant_name: r.tenant_name,
                plan: r.plan,
                cluster_id: r.cluster_id,
                active_devices: r.active_devices,
                device_hours: hours_2dp(r.device_seconds),
                peak_devices: r.peak_devices,
                days_with_usage: r.days_with_usage,
                device_quota: r.device_quota,
            })
            .collect(),
    })
}

/// A tenant's share of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantShare {
    pub slug: String,
    pub display_name: String,
    pub devices: i64,
    pub device_quota: i32,
}

/// A shard's quota: capacity, use, headroom and who uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardQuota {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    pub status: String,
    pub node_capacity: i32,
    pub nodes: i64,
    pub headroom: i64,
    /// Devices used of capacity, in whole percent (0 for a shard of capacity 0 and no nodes).
    pub used_pct: i64,
    /// `ok`, `warning` (80 % or more) or `full`.
    pub state: String,
    /// The sum of its tenants' device quotas: how much it has promised.
    pub promised: i64,
    pub tenants: Vec<TenantShare>,
}

/// Sorts for the quota table.
pub const QUOTA_SORTS: [(&str, &str); 5] = [
    ("used", "Use"),
    ("headroom", "Headroom"),
    ("capacity", "Capacity"),
    ("tenants", "Tenants"),
    ("cluster", "Cluster"),
];

#[server(prefix = "/api", endpoint = "get_shard_quotas")]
pub async fn get_shard_quotas(
    sort: Option<String>,
    desc: Option<bool>,
) -> Result<Vec<ShardQuota>, AppError> {
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let sort = sort.unwrap_or_else(|| "used".into());
    if !QUOTA_SORTS.iter().any(|(k, _)| *k == sort) {
        return Err(fail(AppError::Invalid(format!(
            "“{sort}” is not a column to sort by."
        ))));
    }
    let state = crate::state::app_state().map_err(fail)?;
    let mut rows = crate::data::usage::shard_quotas(&state.pool, &scope)
        .await
        .map_err(|e| fail(e.into()))?;
    sort_quotas(&mut rows, &sort, desc.unwrap_or(sort != "cluster"));
    Ok(rows)
}

/// Sorts shards by a column; ties by cluster id, so the order is stable.
pub fn sort_quotas(rows: &mut [ShardQuota], sort: &str, desc: bool) {
    rows.sort_by(|a, b| {
        let primary = match sort {
            "headroom" => a.headroom.cmp(&b.headroom),
            "capacity" => a.node_capacity.cmp(&b.node_capacity),
            "tenants" => a.tenants.len().cmp(&b.tenants.len()),
            "cluster" => a.cluster_id.cmp(&b.cluster_id),
            _ => a.used_pct.cmp(&b.used_pct).then(a.nodes.cmp(&b.nodes)),
        };
        let primary = if desc { primary.reverse() } else { primary };
        primary.then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
}

/// A shard's trend over the last `days` days (registered devices, peak online).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTrend {
    pub cluster_id: String,
    pub node_capacity: i32,
    pub days: Vec<(String, i64, i32, String)>,
}

#[server(prefix = "/api", endpoint = "get_shard_trend")]
pub async fn get_shard_trend(cluster_id: String) -> Result<ShardTrend, AppError> {
    use crate::domain::usage::hours_2dp;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let (shard_id, capacity) =
        crate::data::usage::shard_by_cluster(&state.pool, &scope, &cluster_id)
            .await
            .map_err(|e| fail(e.into()))?
            .ok_or_else(|| fail(AppError::NotFound(format!("Shard “{cluster_id}”"))))?;
    let days = crate::data::usage::shard_trend(&state.pool, &scope, shard_id, 30)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(ShardTrend {
        cluster_id,
        node_capacity: capacity,
        days: days
            .into_iter()
            .map(|d| {
                (
                    day_text(d.day),
                    d.registered,
                    d.peak_online,
                    hours_2dp(d.device_seconds),
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(cluster: &str, nodes: i64, cap: i32) -> ShardQuota {
        ShardQuota {
            cluster_id: cluster.into(),
            name: cluster.into(),
            region: "r".into(),
            status: "active".into(),
            node_capacity: cap,
            nodes,
            headroom: i64::from(cap) - nodes,
            used_pct: nodes * 100 / i64::from(cap.max(1)),
            state: "ok".into(),
            promised: 0,
            tenants: vec![],
        }
    }

    #[test]
    fn quotas_sort_by_the_column_asked_and_then_by_cluster() {
        let mut rows = vec![q("b", 50, 100), q("a", 50, 100), q("c", 90, 100)];
        sort_quotas(&mut rows, "used", true);
        let ids: Vec<&str> = rows.iter().map(|r| r.cluster_id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        sort_quotas(&mut rows, "headroom", false);
        let ids: Vec<&str> = rows.iter().map(|r| r.cluster_id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        sort_quotas(&mut rows, "cluster", false);
        let ids: Vec<&str> = rows.iter().map(|r| r.cluster_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
