//! `/operator/quotas`: every shard's capacity, use, headroom and tenants, sortable
//! (links, so it sorts without JavaScript too).

use crate::api::usage::{get_shard_quotas, ShardQuota, QUOTA_SORTS};
use crate::ui::charts::QuotaBar;
use crate::ui::common::{Badge, Card, Loaded, PageHeader, Tone};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn QuotasPage() -> impl IntoView {
    let query = use_query_map();
    let key = move || {
        let q = query.read();
        (q.get("sort"), q.get("desc").map(|d| d == "1"))
    };
    let quotas = Resource::new(key, |(sort, desc)| get_shard_quotas(sort, desc));
    view! {
        <Title text="Shard quotas · Operator" />
        <PageHeader title="Shard quotas" subtitle="Capacity, devices and headroom of every shard, and each tenant's share." />
        <Loaded resource=quotas render=move |rows| {
            let (sort, desc) = key();
            view! { <Quotas rows=rows sort=sort.unwrap_or_else(|| "used".into()) desc=desc /> }
        } />
    }
}

fn state_badge(state: &str) -> impl IntoView {
    match state {
        "full" => view! { <Badge tone=Tone::Bad text="Full" /> }.into_any(),
        "warning" => view! { <Badge tone=Tone::Warn text="Near full" /> }.into_any(),
        _ => view! { <Badge tone=Tone::Good text="OK" /> }.into_any(),
    }
}

#[component]
fn Quotas(rows: Vec<ShardQuota>, sort: String, desc: Option<bool>) -> impl IntoView {
    let desc = desc.unwrap_or(sort != "cluster");
    let warn = rows.iter().filter(|r| r.state != "ok").count();
    let header = move |key: &'static str, label: &'static str| {
        let active = sort == key;
        let next_desc = if active { !desc } else { key != "cluster" };
        let arrow = if active {
            if desc {
                " ↓"
            } else {
                " ↑"
            }
        } else {
            ""
        };
        let aria = if active {
            if desc {
                "descending"
            } else {
                "ascending"
            }
        } else {
            "none"
        };
        view! {
            <th scope="col" aria-sort=aria>
                <a class="hover:underline" href=format!("/operator/quotas?sort={key}&desc={}", if next_desc { 1 } else { 0 })>{label}{arrow}</a>
            </th>
        }
    };
    let headers: Vec<_> = QUOTA_SORTS.iter().map(|(k, l)| header(k, l)).collect();
    view! {
        {(warn > 0).then(|| view! {
            <p role="status" class="mb-4 rounded-md border border-amber-300 bg-amber-50 px-4 py-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">
                {format!("{warn} shard(s) at 80 % of capacity or more: new tenants are placed elsewhere, and their tenants may hit the shard's limit before their own quota.")}
            </p>
        })}
        <Card>
            <table class="w-full text-left text-sm">
                <caption class="sr-only">"Shards by quota"</caption>
                <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                    <tr class="[&>th]:py-2">{headers}<th scope="col">"State"</th><th scope="col">"Tenants' share"</th></tr>
                </thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {rows.into_iter().map(|r| {
                        let total = r.nodes.max(1);
                        view! {
                            <tr class="align-top">
                                <td class="w-56 py-3 pr-8"><QuotaBar label=format!("{} %", r.used_pct) used=r.nodes limit=i64::from(r.node_capacity) /></td>
                                <td class="py-3 tabular-nums">{r.headroom}</td>
                                <td class="py-3 tabular-nums">{r.node_capacity}<div class="text-xs text-slate-500">{format!("quotas promise {}", r.promised)}</div></td>
                                <td class="py-3 tabular-nums">{r.tenants.len()}</td>
                                <td class="py-3">
                                    <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/shards/{}", r.cluster_id)><code>{r.cluster_id.clone()}</code></a>
                                    <div class="text-xs text-slate-500">{format!("{} · {} · {}", r.name, r.region, r.status)}</div>
                                </td>
                                <td class="py-3">{state_badge(&r.state)}</td>
                                <td class="py-3">
                                    <ul class="space-y-1 text-xs">
                                        {r.tenants.iter().take(5).map(|t| view! {
                                            <li class="flex items-center gap-2">
                                                <svg class="h-1.5 w-20" viewBox="0 0 100 2" preserveAspectRatio="none" aria-hidden="true">
                                                    <rect width="100" height="2" class="fill-slate-200 dark:fill-slate-700" />
                                                    <rect width=(t.devices * 100 / total).to_string() height="2" class="fill-indigo-500" />
                                                </svg>
                                                <a class="hover:underline" href=format!("/operator/tenants/{}", t.slug)>{t.slug.clone()}</a>
                                                <span class="tabular-nums text-slate-500">{format!("{} devices ({} %) · quota {}", t.devices, t.devices * 100 / total, t.device_quota)}</span>
                                            </li>
                                        }).collect_view()}
                                        {(r.tenants.len() > 5).then(|| view! { <li class="text-slate-500">{format!("and {} more", r.tenants.len() - 5)}</li> })}
                                    </ul>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </Card>
    }
}
