//! `/operator/shards/:cluster_id`: a shard's sync state, tenants, orphans, status
//! actions and settings. Everything shown comes from Postgres (the sync's mirror); the
//! page never waits on the shard.

use crate::api::shards::{get_shard, SetShardStatus, ShardDetail, SyncShardNow};
use crate::api::usage::{get_shard_trend, ShardTrend};
use crate::ui::charts::{Bar, BarChart};
use crate::ui::common::{
    utc, Badge, CapacityBar, Card, FormError, HealthBadge, Loaded, Notice, PageHeader,
    TenantStatus, Tone,
};
use crate::ui::shard_form::ShardForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn ShardDetailPage() -> impl IntoView {
    let params = use_params_map();
    let shard = Resource::new(
        move || params.read().get("cluster_id").unwrap_or_default(),
        get_shard,
    );
    view! { <Loaded resource=shard render=|s| view! { <ShardDetailView shard=s /> } /> }
}

/// The trend, loaded on its own so the rest of the page does not wait for it.
#[component]
fn TrendCard() -> impl IntoView {
    let params = use_params_map();
    let trend = Resource::new(
        move || params.read().get("cluster_id").unwrap_or_default(),
        get_shard_trend,
    );
    view! { <Loaded resource=trend render=|t| view! { <Trend trend=t /> } /> }
}

/// The last 30 days: devices registered at each day's end against the capacity, and the
/// most online at once.
#[component]
fn Trend(trend: ShardTrend) -> impl IntoView {
    let registered: Vec<Bar> = trend
        .days
        .iter()
        .map(|(day, registered, _, _)| Bar {
            label: day[8..].trim_start_matches('0').to_string(),
            value: *registered as f64,
            shown: format!("{day}: {registered} devices registered"),
        })
        .collect();
    let peak: Vec<Bar> = trend
        .days
        .iter()
        .map(|(day, _, peak, hours)| Bar {
            label: day[8..].trim_start_matches('0').to_string(),
            value: f64::from(*peak),
            shown: format!("{day}: {peak} online at once, {hours} device-hours"),
        })
        .collect();
    let capacity = (
        f64::from(trend.node_capacity),
        format!("capacity {}", trend.node_capacity),
    );
    view! {
        <Card title="Trend · last 30 days (UTC)">
            <div class="grid gap-6 lg:grid-cols-2">
                <BarChart title="Devices registered" bars=registered line=capacity />
                <BarChart title="Peak devices online" bars=peak />
            </div>
        </Card>
    }
}

fn status_tone(status: &str) -> Tone {
    match status {
        "active" => Tone::Good,
        "draining" => Tone::Warn,
        _ => Tone::Bad,
    }
}

#[component]
fn Fact(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <div>
            <dt class="text-xs uppercase tracking-wide text-slate-500 dark:text-slate-400">{label}</dt>
            <dd class="mt-1 text-sm">{children()}</dd>
        </div>
    }
}

#[component]
fn ShardDetailView(shard: ShardDetail) -> impl IntoView {
    let query = use_query_map();
    let notice = move || {
        let q = query.read();
        if let Some(v) = q.get("saved") {
            Some(format!("Saved. Connection test passed: Headscale {v}."))
        } else if let Some(s) = q.get("status") {
            Some(format!("The shard is {s} now."))
        } else if q.get("sync").is_some() {
            Some("A sync is queued; reload in a moment to see it.".to_string())
        } else {
            None
        }
    };
    let s = shard;
    let title = format!("Shard {}", s.settings.cluster_id);
    let heading = format!("{} · {}", s.settings.cluster_id, s.settings.name);
    let subtitle = format!(
        "Region {} · login server {}",
        s.settings.region, s.settings.login_server_url
    );
    let tenants_title = format!("Tenants ({})", s.tenants.len());
    let orphans_title = format!("Orphaned devices ({})", s.orphans.len());
    let cluster_id = s.settings.cluster_id.clone();
    let status = s.status.clone();
    let status_badge = view! { <Badge tone=status_tone(&status) text=status.clone() /> };
    let health = view! {
        <HealthBadge health=s.health.clone() version=s.headscale_version.clone() latency_ms=s.last_sync_latency_ms error=None />
    };
    let capacity = view! {
        <CapacityBar used=s.nodes capacity=s.settings.node_capacity orphans=s.orphans.len() as i64 />
    };
    let online = format!("{} online", s.online);
    let last_sync = s
        .last_sync_at
        .as_deref()
        .map(utc)
        .unwrap_or_else(|| "never".into());
    let next_sync = match (&s.next_sync_at, status.as_str()) {
        (_, "disabled") => "Not synced while disabled.".to_string(),
        (Some(n), _) => format!("Next: {}", utc(n)),
        _ => String::new(),
    };
    let failure = s.last_sync_error.clone().map(|e| {
        let heading = format!(
            "Last sync failed ({} in a row{})",
            s.consecutive_failures,
            s.last_sync_attempt_at
                .as_deref()
                .map(|t| format!(", last try {}", utc(t)))
                .unwrap_or_default()
        );
        (heading, e)
    });
    let dedicated_to = s.dedicated_to.clone();
    let policy_line = match (&s.policy_pending_since, &s.policy_pushed_at) {
        (Some(since), _) => format!("A change waits to be pushed (since {}).", utc(since)),
        (None, Some(at)) => format!("Pushed {}; nothing waits.", utc(at)),
        (None, None) => "Never pushed.".to_string(),
    };
    let policy_error = s.policy_push_error.clone().map(|e| {
        (
            format!(
                "The last policy push failed ({} in a row); the shard keeps its previous policy",
                s.policy_push_failures
            ),
            e,
        )
    });
    let tenants = s.tenants.clone();
    let orphans = s.orphans.clone();
    let settings = s.settings.clone();
    view! {
        <Title text=title />
        <PageHeader title=heading subtitle=subtitle />
        {move || notice().map(|n| view! {
            <Notice text=n />
        })}
        <div class="space-y-6">
            <Card title="Sync and health">
                <dl class="grid gap-5 sm:grid-cols-2 lg:grid-cols-4">
                    <Fact label="Status">{status_badge}</Fact>
                    <Fact label="Health">{health}</Fact>
                    <Fact label="Devices / capacity">
                        {capacity}
                        <div class="text-xs text-slate-500">{online}</div>
                    </Fact>
                    <Fact label="Last sync">
                        <span data-testid="last-sync">{last_sync}</span>
                        <div class="text-xs text-slate-500">{next_sync}</div>
                    </Fact>
                </dl>
                {failure.map(|(heading, e)| view! {
                    <div role="alert" class="mt-5 rounded-md border border-rose-300 bg-rose-50 px-4 py-3 text-sm text-rose-900 dark:border-rose-800 dark:bg-rose-950 dark:text-rose-200">
                        <p class="font-medium">{heading}</p>
                        <p class="mt-1">{e}</p>
                    </div>
                })}
                {dedicated_to.map(|t| view! {
                    <p class="mt-4 text-sm">"Reserved for tenant " <a class="text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/tenants/{t}")>{t.clone()}</a> "."</p>
                })}
                <StatusActions cluster_id=cluster_id.clone() status=status.clone() />
            </Card>
            <Card title="Policy">
                <p class="text-sm" data-testid="policy-push">{policy_line}</p>
                {policy_error.map(|(heading, e)| view! {
                    <div role="alert" class="mt-3 rounded-md border border-rose-300 bg-rose-50 px-4 py-3 text-sm text-rose-900 dark:border-rose-800 dark:bg-rose-950 dark:text-rose-200">
                        <p class="font-medium">{heading}</p>
                        <p class="mt-1 whitespace-pre-wrap break-words font-mono text-xs">{e}</p>
                    </div>
                })}
            </Card>
            <Card title=tenants_title>
                {if tenants.is_empty() {
                    view! { <p class="text-sm text-slate-500">"No tenant is placed here yet."</p> }.into_any()
                } else {
                    view! {
                        <table class="w-full text-left text-sm">
                            <caption class="sr-only">"Tenants on this shard"</caption>
                            <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                <tr><th scope="col" class="py-2">"Tenant"</th><th scope="col">"Code"</th><th scope="col">"Devices / quota"</th><th scope="col">"Members on shard"</th><th scope="col">"Live policy"</th><th scope="col">"Status"</th></tr>
                            </thead>
                            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                {tenants.iter().map(|t| view! {
                                    <tr>
                                        <td class="py-2"><a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/tenants/{}", t.slug)>{t.display_name.clone()}</a>" "<span class="text-slate-500">{t.slug.clone()}</span></td>
                                        <td><code>{t.code.clone()}</code></td>
                                        <td>{format!("{} / {}", t.devices, t.device_quota)}</td>
                                        <td>
                                            {format!("{} / {}", t.members_on_shard, t.members)}
                                            {(t.members_on_shard < t.members).then(|| view! { <span class="ml-1 text-xs text-amber-700 dark:text-amber-300">"(rest at next sync)"</span> })}
                                        </td>
                                        <td class="text-xs">{match t.live_revision {
                                            None => "not pushed".to_string(),
                                            Some(None) => "default".to_string(),
                                            Some(Some(n)) => format!("revision {n}"),
                                        }}</td>
                                        <td><TenantStatus suspended=t.suspended /></td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            </Card>
            {(!orphans.is_empty()).then(|| view! {
                <Card title=orphans_title.clone()>
                    <p class="mb-3 text-sm text-slate-600 dark:text-slate-400">"Devices on this shard that belong to no tenant placed here. They count against the shard's capacity and are not billed; remove them on the shard or fix their owner."</p>
                    <table class="w-full text-left text-sm">
                        <caption class="sr-only">"Orphaned devices"</caption>
                        <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                            <tr><th scope="col" class="py-2">"Device"</th><th scope="col">"User"</th><th scope="col">"Tags"</th><th scope="col">"Why"</th></tr>
                        </thead>
                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                            {orphans.iter().map(|o| view! {
                                <tr>
                                    <td class="py-2">{o.name.clone()}" "<span class="text-xs text-slate-500">{format!("#{}", o.node_id)}</span></td>
                                    <td><code>{o.user_name.clone().unwrap_or_else(|| "—".into())}</code></td>
                                    <td class="text-xs">{o.tags.join(", ")}</td>
                                    <td class="text-xs">{o.reason.clone()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </Card>
            })}
            <TrendCard />
            <Card title="Settings">
                <ShardForm existing=Some(settings) />
            </Card>
        </div>
    }
}

/// Drain, disable, reactivate and "sync now", each a small form (works without JS).
#[component]
fn StatusActions(cluster_id: String, status: String) -> impl IntoView {
    let set_status = ServerAction::<SetShardStatus>::new();
    let sync_now = ServerAction::<SyncShardNow>::new();
    let error = Signal::derive(move || {
        set_status
            .value()
            .get()
            .and_then(|r| r.err())
            .or_else(|| sync_now.value().get().and_then(|r| r.err()))
    });
    let choices: Vec<(&'static str, &'static str, &'static str)> = [
        ("active", "Reactivate", "Takes new tenants again."),
        ("draining", "Drain", "Keeps its tenants and their devices, takes no new tenants."),
        ("disabled", "Disable", "Takes no new tenants and is no longer synced: its tenants' pages show the last mirror."),
    ]
    .into_iter()
    .filter(|(s, _, _)| *s != status)
    .collect();
    view! {
        <div class="mt-5 border-t border-slate-100 pt-4 dark:border-slate-800">
            <FormError error=error />
            <div class="flex flex-wrap items-start gap-3">
                {choices.into_iter().map(|(value, label, help)| {
                    let cluster_id = cluster_id.clone();
                    let class = if value == "disabled" { "btn-danger" } else { "btn-secondary" };
                    view! {
                        <ActionForm action=set_status attr:class="max-w-xs">
                            <input type="hidden" name="cluster_id" value=cluster_id />
                            <input type="hidden" name="status" value=value />
                            <button type="submit" class=class title=help>{label}</button>
                            <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">{help}</p>
                        </ActionForm>
                    }
                }).collect_view()}
                {(status != "disabled").then(|| view! {
                    <ActionForm action=sync_now attr:class="max-w-xs">
                        <input type="hidden" name="cluster_id" value=cluster_id />
                        <button type="submit" class="btn-secondary">"Sync now"</button>
                        <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">"Reads the shard within a second or two."</p>
                    </ActionForm>
                })}
            </div>
        </div>
    }
}
