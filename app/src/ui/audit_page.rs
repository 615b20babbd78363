//! `/t/:slug/audit` (the tenant's admins and auditors) and `/operator/audit` (every
//! tenant): the audit log, newest first, with filters in the address (a GET form, so it
//! works without JavaScript and a filtered view can be linked).

use crate::api::audit::{get_operator_audit, get_tenant_audit, AuditPage, AuditQuery};
use crate::ui::common::{utc, Card, Loaded, PageHeader, INPUT};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::params::ParamsMap;

fn query_of(q: &ParamsMap) -> AuditQuery {
    AuditQuery {
        action: q.get("action"),
        actor: q.get("actor"),
        target: q.get("target"),
        from: q.get("from"),
        until: q.get("until"),
        tenant: q.get("tenant"),
        before: q.get("before").and_then(|b| b.parse().ok()),
    }
}

#[component]
pub fn TenantAuditPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let page = Resource::new(
        move || (slug(), query_of(&query.read())),
        |(slug, q)| get_tenant_audit(slug, q.action, q.actor, q.target, q.from, q.until, q.before),
    );
    view! {
        <Title text="Audit log" />
        <PageHeader title="Audit log" subtitle="Every change in this tenant: who, when (UTC), what and to what." />
        <Loaded resource=page render=move |p| view! {
            <AuditView page=p base=format!("/t/{}/audit", slug()) query=query_of(&query.read_untracked()) operator=false />
        } />
    }
}

#[component]
pub fn OperatorAuditPage() -> impl IntoView {
    let query = use_query_map();
    let page = Resource::new(
        move || query_of(&query.read()),
        |q| {
            get_operator_audit(
                q.action, q.actor, q.target, q.from, q.until, q.tenant, q.before,
            )
        },
    );
    view! {
        <Title text="Audit log · Operator" />
        <PageHeader title="Audit log" subtitle="Every change in every tenant and in the service itself." />
        <Loaded resource=page render=move |p| view! {
            <AuditView page=p base="/operator/audit".to_string() query=query_of(&query.read_untracked()) operator=true />
        } />
    }
}

#[component]
fn AuditView(page: AuditPage, base: String, query: AuditQuery, operator: bool) -> impl IntoView {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("action", &query.action),
        ("actor", &query.actor),
        ("target", &query.target),
        ("from", &query.from),
        ("until", &query.until),
        ("tenant", &query.tenant),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.clone()));
        }
    }
    let encode = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let export = format!("{base}/export?{}", encode(&pairs));
    let older = page.older.map(|id| {
        let mut with_before = pairs.clone();
        with_before.push(("before", id.to_string()));
        format!("{base}?{}", encode(&with_before))
    });
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let empty = page.events.is_empty();
    view! {
        <Card>
            <form method="get" action=base.clone() class="grid gap-3 md:grid-cols-6" aria-label="Filter the audit log">
                <label class="text-xs font-medium">"Action"
                    <select name="action" class=INPUT>
                        <option value="">"All actions"</option>
                        {page.actions.iter().map(|a| {
                            let selected = query.action.as_deref() == Some(a.as_str());
                            view! { <option value=a.clone() selected=selected>{a.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <label class="text-xs font-medium">"Actor"
                    <input name="actor" class=INPUT placeholder="name, email or system" value=value(&query.actor) />
                </label>
                <label class="text-xs font-medium">"Target"
                    <input name="target" class=INPUT value=value(&query.target) />
                </label>
                <label class="text-xs font-medium">"From (UTC)"
                    <input name="from" type="date" class=INPUT value=value(&query.from) />
                </label>
                <label class="text-xs font-medium">"Until (UTC)"
                    <input name="until" type="date" class=INPUT value=value(&query.until) />
                </label>
                {operator.then(|| view! {
                    <label class="text-xs font-medium">"Tenant"
                        <input name="tenant" class=INPUT placeholder="slug" value=value(&query.tenant) />
                    </label>
                })}
                <div class="flex items-end gap-2 md:col-span-6">
                    <button type="submit" class="btn-primary">"Filter"</button>
                    <a class="btn-secondary" href=base.clone()>"Clear"</a>
                    <span class="grow"></span>
                    <a class="btn-secondary" href=export download>"Download CSV (these filters)"</a>
                </div>
            </form>
        </Card>
        <div class="mt-6">
            <Card>
                {if empty {
                    view! { <p class="text-sm text-slate-600 dark:text-slate-400">"No events match."</p> }.into_any()
                } else {
                    view! {
                        <table class="w-full text-left text-sm">
                            <caption class="sr-only">"Audit events, newest first"</caption>
                            <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                <tr>
                                    <th scope="col" class="py-2">"When (UTC)"</th>
                                    {operator.then(|| view! { <th scope="col">"Tenant"</th> })}
                                    <th scope="col">"Actor"</th><th scope="col">"Action"</th><th scope="col">"Target"</th><th scope="col">"Details"</th>
                                </tr>
                            </thead>
                            <tbody class="divide-y divide-slate-100 align-top dark:divide-slate-800">
                                {page.events.iter().map(|e| view! {
                                    <tr>
                                        <td class="whitespace-nowrap py-2 pr-3 text-xs tabular-nums">{utc(&e.at)}</td>
                                        {operator.then(|| view! { <td class="pr-3 text-xs">{e.tenant.clone().unwrap_or_else(|| "service".into())}</td> })}
                                        <td class="pr-3 text-xs">{e.actor.clone()}</td>
                                        <td class="pr-3"><code class="text-xs">{e.action.clone()}</code></td>
                                        <td class="pr-3 text-xs break-all">{e.target.clone()}</td>
                                        <td class="text-xs">
                                            {(e.detail != "{}").then(|| view! {
                                                <details><summary class="cursor-pointer text-slate-600 dark:text-slate-400">"Show"</summary>
                                                    <pre class="mt-1 max-w-md overflow-x-auto whitespace-pre-wrap break-all rounded bg-slate-100 p-2 dark:bg-slate-800">{pretty(&e.detail)}</pre>
                                                </details>
                                            })}
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
                {older.map(|href| view! {
                    <div class="mt-4"><a class="btn-secondary" href=href rel="next">"Older events"</a></div>
                })}
            </Card>
        </div>
    }
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| json.to_string())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
