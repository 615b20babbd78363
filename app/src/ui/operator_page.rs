//! `/operator`: the service-wide view, only for operators.

use crate::api::operator::{get_operator_overview, OperatorOverview};
use crate::ui::common::{
    Badge, CapacityBar, Card, HealthBadge, Loaded, PageHeader, TenantStatus, Tone,
};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn OperatorPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| get_operator_overview());
    view! { <Loaded resource=overview render=|o| view! { <Overview overview=o /> } /> }
}

#[component]
fn Overview(overview: OperatorOverview) -> impl IntoView {
    let o = overview;
    let query = leptos_router::hooks::use_query_map();
    let created = move || query.read().get("created");
    view! {
        <Title text="Operator" />
        <PageHeader title="Operator" subtitle="Every shard and tenant of the service." />
        <div class="space-y-6">
            {move || created().map(|slug| view! {
                <p role="status" class="rounded-md border border-emerald-300 bg-emerald-50 px-4 py-3 text-sm text-emerald-900 dark:border-emerald-800 dark:bg-emerald-950 dark:text-emerald-200">
                    "Tenant " {slug} " created and placed."
                </p>
            })}
            <div class="flex justify-end gap-3">
                <a href="/operator/quotas" class="btn-secondary">"Shard quotas"</a>
                <a href="/operator/usage" class="btn-secondary">"Usage and billing"</a>
                <a href="/operator/audit" class="btn-secondary">"Audit log"</a>
                <a href="/operator/tokens" class="btn-secondary">"API tokens"</a>
                <a href="/operator/tenants/new" class="btn-secondary">"Create tenant"</a>
                <a href="/operator/shards/new" class="btn-primary">"Add shard"</a>
            </div>
            <Card title=format!("Shards ({})", o.shards.len())>
                <table class="w-full text-left text-sm">
                    <caption class="sr-only">"Shards"</caption>
                    <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                        <tr><th scope="col" class="py-2">"Cluster"</th><th scope="col">"Region"</th><th scope="col">"Health"</th><th scope="col">"Devices / capacity"</th><th scope="col">"Tenants"</th><th scope="col">"Last sync"</th><th scope="col">"Status"</th></tr>
                    </thead>
                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                        {o.shards.iter().map(|s| {
                            let tone = match s.status.as_str() { "active" => Tone::Good, "draining" => Tone::Warn, _ => Tone::Bad };
                            view! {
                                <tr>
                                    <td class="py-2">
                                        <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/shards/{}", s.cluster_id)><code>{s.cluster_id.clone()}</code></a>
                                        <div class="text-xs text-slate-500">{s.name.clone()}</div>
                                    </td>
                                    <td>{s.region.clone()}</td>
                                    <td><HealthBadge health=s.health.clone() version=s.headscale_version.clone() latency_ms=s.last_sync_latency_ms error=s.last_sync_error.clone() /></td>
                                    <td><CapacityBar used=s.nodes capacity=s.node_capacity orphans=s.orphans /></td>
                                    <td>{s.tenants}</td>
                                    <td class="text-xs text-slate-600 dark:text-slate-400">{s.last_sync_at.clone().map(|t| t.replace('T', " ").chars().take(19).collect::<String>() + " UTC").unwrap_or_else(|| "never".into())}</td>
                                    <td><Badge tone=tone text=s.status.clone() /></td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </Card>
            <Card title=format!("Tenants ({})", o.tenants.len())>
                <table class="w-full text-left text-sm">
                    <caption class="sr-only">"Tenants"</caption>
                    <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                        <tr><th scope="col" class="py-2">"Tenant"</th><th scope="col">"Code"</th><th scope="col">"Plan"</th><th scope="col">"Region"</th><th scope="col">"Shard"</th><th scope="col">"Devices quota"</th><th scope="col">"Members"</th><th scope="col">"Status"</th></tr>
                    </thead>
                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                        {o.tenants.iter().map(|t| view! {
                            <tr>
                                <td class="py-2"><a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/tenants/{}", t.slug)>{t.display_name.clone()}</a>" "<span class="text-slate-500">{t.slug.clone()}</span></td>
                                <td><code>{t.code.clone()}</code></td>
                                <td>{t.plan.clone()}</td>
                                <td>{t.region.clone()}</td>
                                <td title=t.placement_reason.clone().unwrap_or_default()>{t.shard_cluster_id.clone().unwrap_or_else(|| "not placed".into())}</td>
                                <td>{t.device_quota}</td>
                                <td>{t.members}</td>
                                <td><TenantStatus suspended=t.suspended /></td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </Card>
        </div>
    }
}
