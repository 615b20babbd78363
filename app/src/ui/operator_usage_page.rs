//! `/operator/usage`: every tenant's month, and the all-tenants billing exports.

use crate::api::usage::{get_operator_usage, OperatorUsage};
use crate::ui::common::{Badge, Card, Loaded, PageHeader, Tone};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn OperatorUsagePage() -> impl IntoView {
    let query = use_query_map();
    let usage = Resource::new(move || query.read().get("month"), get_operator_usage);
    view! { <Loaded resource=usage render=|u| view! { <Usage usage=u /> } /> }
}

#[component]
fn Usage(usage: OperatorUsage) -> impl IntoView {
    let u = usage;
    let export = |kind: &str| format!("/operator/usage/export?month={}&kind={kind}", u.month);
    view! {
        <Title text="Usage · Operator" />
        <PageHeader title="Usage and billing" subtitle="Every tenant's month, per UTC day as observed by the sync." />
        <nav class="mb-6 flex flex-wrap items-center gap-3" aria-label="Month">
            <a class="btn-secondary" href=format!("/operator/usage?month={}", u.prev) rel="prev">"← " {u.prev.clone()}</a>
            <h2 class="text-lg font-semibold tabular-nums">{u.month.clone()}</h2>
            {if u.closed {
                view! { <Badge tone=Tone::Good text="Closed: final" /> }.into_any()
            } else {
                view! { <Badge tone=Tone::Warn text="Open: still counting" /> }.into_any()
            }}
            {u.next.clone().map(|n| view! { <a class="btn-secondary" href=format!("/operator/usage?month={n}") rel="next">{n.clone()} " →"</a> })}
            <span class="grow"></span>
            <a class="btn-secondary" href=export("summary") download>"All tenants: summary (CSV)"</a>
            <a class="btn-primary" href=export("detail") download>"All tenants: per-device detail (CSV)"</a>
        </nav>
        <Card title=format!("Tenants ({}) by device-hours · {} device-hours · {} active devices", u.rows.len(), u.device_hours, u.active_devices)>
            <table class="w-full text-left text-sm">
                <caption class="sr-only">"Usage by tenant"</caption>
                <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                    <tr>
                        <th scope="col" class="py-2">"Tenant"</th><th scope="col">"Plan"</th><th scope="col">"Shard"</th>
                        <th scope="col" class="text-right">"Active devices"</th><th scope="col" class="text-right">"Device quota"</th>
                        <th scope="col" class="text-right">"Device-hours"</th><th scope="col" class="text-right">"Peak"</th><th scope="col" class="text-right">"Days with usage"</th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {u.rows.iter().map(|r| view! {
                        <tr>
                            <td class="py-2"><a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/tenants/{}", r.tenant_slug)>{r.tenant_name.clone()}</a><div class="text-xs text-slate-500">{r.tenant_slug.clone()}</div></td>
                            <td>{r.plan.clone()}</td>
                            <td><code class="text-xs">{r.cluster_id.clone()}</code></td>
                            <td class="text-right tabular-nums">{r.active_devices}</td>
                            <td class="text-right tabular-nums">{r.device_quota}</td>
                            <td class="text-right tabular-nums">{r.device_hours.clone()}</td>
                            <td class="text-right tabular-nums">{r.peak_devices}</td>
                            <td class="text-right tabular-nums">{r.days_with_usage}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </Card>
    }
}
