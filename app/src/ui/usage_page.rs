//! `/t/:slug/usage`: what the tenant used in a month (charts per UTC day, its devices),
//! its quotas, and the billing exports. For owners, admins and billing admins.

use crate::api::usage::{get_tenant_usage, TenantUsage};
use crate::ui::charts::{Bar, BarChart, QuotaBar};
use crate::ui::common::{Badge, Card, Loaded, PageHeader, Tone};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn UsagePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let usage = Resource::new(
        move || {
            (
                params.read().get("slug").unwrap_or_default(),
                query.read().get("month"),
            )
        },
        |(slug, month)| get_tenant_usage(slug, month),
    );
    view! { <Loaded resource=usage render=|u| view! { <Usage usage=u /> } /> }
}

/// "2026-11-05" → "5" (the chart's day labels).
fn day_of_month(day: &str) -> String {
    day.rsplit('-')
        .next()
        .unwrap_or(day)
        .trim_start_matches('0')
        .to_string()
}

fn hours(seconds: i64) -> f64 {
    seconds as f64 / 3600.0
}

#[component]
fn Usage(usage: TenantUsage) -> impl IntoView {
    let u = usage;
    let base = format!("/t/{}/usage", u.slug);
    let export = |kind: &str| format!("/t/{}/usage/export?month={}&kind={kind}", u.slug, u.month);
    let active: Vec<Bar> = u
        .days
        .iter()
        .map(|d| Bar {
            label: day_of_month(&d.day),
            value: f64::from(d.active_devices),
            shown: format!("{} active devices", d.active_devices),
        })
        .collect();
    let device_hours: Vec<Bar> = u
        .days
        .iter()
        .map(|d| Bar {
            label: day_of_month(&d.day),
            value: hours(d.device_seconds),
            shown: format!(
                "{} device-hours",
                crate::domain::usage::hours_2dp(d.device_seconds)
            ),
        })
        .collect();
    let peak: Vec<Bar> = u
        .days
        .iter()
        .map(|d| Bar {
            label: day_of_month(&d.day),
            value: f64::from(d.peak_devices),
            shown: format!("{} at once", d.peak_devices),
        })
        .collect();
    let quota_line = (
        f64::from(u.quotas.device_quota),
        format!("device quota {}", u.quotas.device_quota),
    );
    let status = if u.closed {
        view! { <Badge tone=Tone::Good text="Closed: final" /> }.into_any()
    } else {
        view! { <Badge tone=Tone::Warn text="Open: still counting" /> }.into_any()
    };
    view! {
        <Title text=format!("Usage · {}", u.display_name) />
        <PageHeader
            title="Usage and billing"
            subtitle=format!("{} · usage per UTC day, as the portal observed it", u.display_name)
        />
        <nav class="mb-6 flex flex-wrap items-center gap-3" aria-label="Month">
            <a class="btn-secondary" href=format!("{base}?month={}", u.prev) rel="prev">"← " {u.prev.clone()}</a>
            <h2 class="text-lg font-semibold tabular-nums" id="usage-month">{u.month.clone()}</h2>
            {status}
            {u.next.clone().map(|n| view! {
                <a class="btn-secondary" href=format!("{base}?month={n}") rel="next">{n.clone()} " →"</a>
            })}
            <span class="grow"></span>
            <a class="btn-secondary" href=export("summary") download>"Download summary (CSV)"</a>
            <a class="btn-primary" href=export("detail") download>"Download per-device detail (CSV)"</a>
        </nav>
        <div class="grid gap-6 md:grid-cols-4">
            <Card title="Device-hours">
                <p class="text-3xl font-semibold tabular-nums" data-testid="device-hours">{u.device_hours.clone()}</p>
                <p class="text-xs text-slate-500 dark:text-slate-400">"Online time of all devices, summed"</p>
            </Card>
            <Card title="Active devices">
                <p class="text-3xl font-semibold tabular-nums" data-testid="active-devices">{u.active_devices}</p>
                <p class="text-xs text-slate-500 dark:text-slate-400">"Devices online at least a second this month"</p>
            </Card>
            <Card title="Peak">
                <p class="text-3xl font-semibold tabular-nums">{u.peak_devices}</p>
                <p class="text-xs text-slate-500 dark:text-slate-400">"Most devices online at once"</p>
            </Card>
            <Card title="Quotas">
                <div class="space-y-3">
                    <QuotaBar label="Devices" used=u.quotas.devices limit=i64::from(u.quotas.device_quota) />
                    <QuotaBar label="Active keys" used=u.quotas.active_keys limit=i64::from(u.quotas.key_quota) />
                    {u.shard.clone().map(|(name, region)| view! {
                        <p class="text-xs text-slate-500 dark:text-slate-400">{format!("Shard {name} · {region}")}</p>
                    })}
                </div>
            </Card>
        </div>
        <div class="mt-6 grid gap-6 lg:grid-cols-3">
            <Card><BarChart title="Active devices per day" bars=active line=quota_line /></Card>
            <Card><BarChart title="Device-hours per day" bars=device_hours /></Card>
            <Card><BarChart title="Peak concurrent devices per day" bars=peak /></Card>
        </div>
        <div class="mt-6">
            <Card title="Devices this month">
                {if u.devices.is_empty() {
                    view! { <p class="text-sm text-slate-600 dark:text-slate-400">"No device was online this month yet."</p> }.into_any()
                } else {
                    view! {
                        <table class="w-full text-left text-sm">
                            <caption class="sr-only">"Devices by online time"</caption>
                            <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                <tr><th scope="col" class="py-2">"Device"</th><th scope="col">"Owner"</th><th scope="col" class="text-right">"Days online"</th><th scope="col" class="text-right">"Device-hours"</th></tr>
                            </thead>
                            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                {u.devices.iter().map(|d| view! {
                                    <tr>
                                        <td class="py-2 font-medium">{d.device_name.clone()}</td>
                                        <td class="text-slate-600 dark:text-slate-400">{d.owner.clone()}</td>
                                        <td class="text-right tabular-nums">{d.days}</td>
                                        <td class="text-right tabular-nums">{d.device_hours.clone()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            </Card>
        </div>
        <p class="mt-6 text-xs text-slate-500 dark:text-slate-400">
            "A device counts from the first sync that sees it online to the first that sees it offline; time when the portal could not see the shard is never counted. Days are UTC. "
            "The exports' columns are described in the operator's documentation (billing export)."
        </p>
    }
}
