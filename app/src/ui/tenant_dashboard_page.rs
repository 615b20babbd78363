//! `/t/:slug`: the tenant's home: who you are here, where the tailnet lives, who is in it.

use crate::api::tenant::{get_tenant_overview, TenantOverview};
use crate::ui::charts::QuotaBar;
use crate::ui::common::{Badge, Card, Loaded, PageHeader, Tone};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn TenantDashboardPage() -> impl IntoView {
    let params = use_params_map();
    let overview = Resource::new(
        move || params.read().get("slug").unwrap_or_default(),
        get_tenant_overview,
    );
    view! { <Loaded resource=overview render=|o| view! { <Dashboard overview=o /> } /> }
}

#[component]
fn Dashboard(overview: TenantOverview) -> impl IntoView {
    let o = overview;
    view! {
        <Title text=o.display_name.clone() />
        <PageHeader
            title=o.display_name.clone()
            subtitle=format!("Tenant {} · your role: {}", o.slug, o.your_role.label())
        />
        {o.suspended.then(|| view! {
            <p role="status" class="mb-6 rounded-md border border-amber-300 bg-amber-50 px-4 py-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">
                "This tenant is suspended. Devices stay as they are, but changes are paused. Contact the service operator."
            </p>
        })}
        <div class="grid gap-6 md:grid-cols-3">
            <Card title="Tailnet">
                <dl class="space-y-2 text-sm">
                    <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Tenant code"</dt><dd><code>{o.code.clone()}</code></dd></div>
                    <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Plan"</dt><dd>{o.plan.clone()}</dd></div>
                    <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Region"</dt><dd>{o.region.clone()}</dd></div>
                </dl>
            </Card>
            <Card title="Shard">
                {match o.shard.clone() {
                    Some(s) => view! {
                        {shard_notice(&s).map(|n| view! {
                            <p role="status" class="mb-3 rounded-md border border-amber-300 bg-amber-50 px-3 py-2 text-xs text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">{n}</p>
                        })}
                        <dl class="space-y-2 text-sm">
                            <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Cluster"</dt><dd><code>{s.cluster_id}</code></dd></div>
                            <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Name"</dt><dd>{s.name}</dd></div>
                            <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Region"</dt><dd>{s.region}</dd></div>
                            <div class="flex justify-between gap-4"><dt class="text-slate-500 dark:text-slate-400">"Devices as of"</dt><dd>{s.last_sync_at.as_deref().map(crate::ui::common::utc).unwrap_or_else(|| "not synced yet".into())}</dd></div>
                        </dl>
                        <p class="mt-3 text-xs text-slate-500 dark:text-slate-400">"Login server"</p>
                        <code class="block break-all rounded bg-slate-100 px-2 py-1 text-xs dark:bg-slate-800">{s.login_server_url}</code>
                    }.into_any(),
                    None => view! {
                        <p class="text-sm text-slate-600 dark:text-slate-400">"This tenant is not placed on a shard yet. The service operator places it."</p>
                    }.into_any(),
                }}
            </Card>
            <Card title="You">
                <p class="text-sm">"Role: " <Badge tone=Tone::Info text=o.your_role.label() /></p>
                <p class="mt-2 text-xs text-slate-500 dark:text-slate-400">{role_help(o.your_role)}</p>
            </Card>
        </div>
        <div class="mt-6">
            <Card title="Quotas">
                <div class="grid gap-6 md:grid-cols-2">
                    <QuotaBar
                        label="Devices"
                        used=o.quotas.devices
                        limit=i64::from(o.quotas.device_quota)
                        hint="Devices registered on the tenant's shard. Registering beyond the quota is refused."
                    />
                    <QuotaBar
                        label="Active pre-auth keys"
                        used=o.quotas.active_keys
                        limit=i64::from(o.quotas.key_quota)
                        hint="Keys that can still register a device (not expired; reusable or unused)."
                    />
                </div>
                <div class="mt-4 flex flex-wrap gap-3 text-sm">
                    <a class="btn-secondary" href=format!("/t/{}/devices", o.slug)>"Devices"</a>
                    <a class="btn-secondary" href=format!("/t/{}/keys", o.slug)>"Pre-auth keys"</a>
                    {o.your_role.allows(crate::domain::role::Permission::ViewBilling).then(|| view! {
                        <a class="btn-secondary" href=format!("/t/{}/usage", o.slug)>"Usage and billing"</a>
                    })}
                </div>
            </Card>
        </div>
        <div class="mt-6">
            <Card title=format!("Members ({})", o.members.len())>
                <table class="w-full text-left text-sm">
                    <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                        <tr><th scope="col" class="py-2">"Name"</th><th scope="col">"Email"</th><th scope="col">"Headscale user"</th><th scope="col">"Role"</th><th scope="col">"Managed by"</th></tr>
                    </thead>
                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                        {o.members.iter().map(|m| view! {
                            <tr>
                                <td class="py-2 font-medium">{m.display_name.clone()}</td>
                                <td class="text-slate-600 dark:text-slate-400">{m.email.clone().unwrap_or_default()}</td>
                                <td><code class="text-xs">{m.user_name.clone()}</code></td>
                                <td>{m.role.label()}</td>
                                <td>{if m.from_idp {
                                    view! { <Badge tone=Tone::Neutral text="Identity provider" /> }.into_any()
                                } else {
                                    view! { <Badge tone=Tone::Neutral text="Portal" /> }.into_any()
                                }}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </Card>
        </div>
    }
}

/// Why what the tenant sees of its shard may be old, if it may.
fn shard_notice(s: &crate::api::tenant::ShardSummary) -> Option<String> {
    let as_of = s
        .last_sync_at
        .as_deref()
        .map(crate::ui::common::utc)
        .unwrap_or_else(|| "never".into());
    match (s.status.as_str(), s.health.as_str()) {
        ("disabled", _) => Some(format!(
            "The service operator has taken this shard out of service. What you see is as of {as_of}."
        )),
        (_, "unhealthy") => Some(format!(
            "The portal cannot reach this shard right now and keeps trying. What you see is as of {as_of}."
        )),
        _ => None,
    }
}

fn role_help(role: crate::domain::role::TenantRole) -> &'static str {
    use crate::domain::role::TenantRole as R;
    match role {
        R::Owner => "Full control of this tenant, including billing and members.",
        R::Admin => "Manages devices, keys, policy and members.",
        R::NetworkAdmin => "Edits the access policy; can view everything else.",
        R::ItAdmin => "Manages devices and pre-auth keys; can view everything else.",
        R::BillingAdmin => "Sees usage and downloads billing exports.",
        R::Auditor => "Read-only access to everything, including the audit log.",
        R::Member => "Manages your own devices and keys.",
    }
}
