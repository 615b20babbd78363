//! `/operator/tenants/:slug`: a tenant as operators manage it — placement, members and
//! their users on the shard, settings (slug, name, plan, region, quotas) and suspension.

use crate::api::tenants::{get_tenant_admin, SetTenantStatus, TenantAdmin, UpdateTenant};
use crate::domain::tenant::PLANS;
use crate::ui::common::{
    utc, Badge, Card, FormError, Loaded, Notice, PageHeader, TenantStatus, Tone, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn TenantAdminPage() -> impl IntoView {
    let params = use_params_map();
    let tenant = Resource::new(
        move || params.read().get("slug").unwrap_or_default(),
        get_tenant_admin,
    );
    view! { <Loaded resource=tenant render=|t| view! { <TenantAdminView tenant=t /> } /> }
}

#[component]
fn TenantAdminView(tenant: TenantAdmin) -> impl IntoView {
    let query = use_query_map();
    let notice = move || {
        let q = query.read();
        if q.get("saved").is_some() {
            Some("Saved.".to_string())
        } else {
            q.get("status").map(|s| match s.as_str() {
                "suspended" => {
                    "The tenant is suspended: its people can look, not change.".to_string()
                }
                _ => "The tenant is active again.".to_string(),
            })
        }
    };
    let t = tenant;
    let title = format!("Tenant {}", t.slug);
    let heading = format!("{} · {}", t.display_name, t.slug);
    let subtitle = format!("Code {} · created {}", t.code, utc(&t.created_at));
    let members_title = format!("Members ({})", t.members.len());
    let members = t.members.clone();
    let edit = t.clone();
    view! {
        <Title text=title />
        <PageHeader title=heading subtitle=subtitle />
        {move || notice().map(|n| view! {
            <Notice text=n />
        })}
        <div class="space-y-6">
            <div class="grid gap-6 md:grid-cols-3">
                <Card title="Status">
                    <TenantStatus suspended=t.suspended />
                    <SuspendForm slug=t.slug.clone() suspended=t.suspended />
                </Card>
                <Card title="Placement">
                    {match (&t.shard_cluster_id, &t.shard_name) {
                        (Some(c), Some(n)) => view! {
                            <p class="text-sm"><a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/operator/shards/{c}")><code>{c.clone()}</code></a>" · "{n.clone()}
                                {t.dedicated.then(|| view! { " " <Badge tone=Tone::Neutral text="dedicated" /> })}
                            </p>
                        }.into_any(),
                        _ => view! { <p class="text-sm text-slate-500">"Not placed on a shard."</p> }.into_any(),
                    }}
                    <p class="mt-2 text-xs text-slate-600 dark:text-slate-400">{t.placement_reason.clone().unwrap_or_default()}</p>
                </Card>
                <Card title="Devices">
                    <p class="text-2xl font-semibold">{t.devices}<span class="text-base font-normal text-slate-500">{format!(" / {}", t.device_quota)}</span></p>
                    <p class="text-xs text-slate-500">{format!("Active key quota {}", t.key_quota)}</p>
                </Card>
            </div>
            <Card title=members_title>
                {if members.is_empty() {
                    view! { <p class="text-sm text-slate-500">"No members yet. People join through the identity provider's tenant groups."</p> }.into_any()
                } else {
                    view! {
                        <table class="w-full text-left text-sm">
                            <caption class="sr-only">"Members"</caption>
                            <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                <tr><th scope="col" class="py-2">"Member"</th><th scope="col">"Role"</th><th scope="col">"Headscale user"</th></tr>
                            </thead>
                            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                {members.iter().map(|m| view! {
                                    <tr>
                                        <td class="py-2">{m.display_name.clone()}<div class="text-xs text-slate-500">{m.email.clone().unwrap_or_default()}</div></td>
                                        <td>{m.role.label()}{m.from_idp.then_some(" (from IdP)")}</td>
                                        <td>
                                            <code>{m.user_name.clone()}</code>" "
                                            {if m.on_shard {
                                                view! { <Badge tone=Tone::Good text="on shard" /> }.into_any()
                                            } else {
                                                view! { <Badge tone=Tone::Warn text="pending" /> }.into_any()
                                            }}
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        <p class="mt-3 text-xs text-slate-500">"The sync creates each member's user on the shard; a pending user is created at the shard's next successful sync."</p>
                    }.into_any()
                }}
            </Card>
            <Card title="Settings">
                <EditForm tenant=edit />
            </Card>
        </div>
    }
}

#[component]
fn SuspendForm(slug: String, suspended: bool) -> impl IntoView {
    let action = ServerAction::<SetTenantStatus>::new();
    let error = Signal::derive(move || action.value().get().and_then(|r| r.err()));
    let (value, label, class, help) = if suspended {
        (
            "active",
            "Reactivate",
            "btn-secondary",
            "Its people can make changes again.",
        )
    } else {
        (
            "suspended",
            "Suspend",
            "btn-danger",
            "Its people can still sign in and look, but every change (devices, keys, policy, members) is refused. Devices stay connected.",
        )
    };
    view! {
        <ActionForm action=action attr:class="mt-4">
            <FormError error=error />
            <input type="hidden" name="slug" value=slug />
            <input type="hidden" name="status" value=value />
            <button type="submit" class=class>{label}</button>
            <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">{help}</p>
        </ActionForm>
    }
}

#[component]
fn EditForm(tenant: TenantAdmin) -> impl IntoView {
    let action = ServerAction::<UpdateTenant>::new();
    let error = Signal::derive(move || action.value().get().and_then(|r| r.err()));
    let t = tenant;
    view! {
        <ActionForm action=action attr:class="space-y-5" attr:aria-label="Edit tenant">
            <FormError error=error />
            <input type="hidden" name="editing" value=t.slug.clone() />
            <div class="grid gap-5 md:grid-cols-2">
                <div>
                    <label for="slug" class="block text-sm font-medium">"Slug"</label>
                    <input id="slug" name="slug" required class=INPUT value=t.slug.clone() />
                    <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">"Used in URLs. Renaming changes links, not the code "<code>{t.code.clone()}</code>" that names the tenant on its shard."</p>
                </div>
                <div>
                    <label for="display_name" class="block text-sm font-medium">"Display name"</label>
                    <input id="display_name" name="display_name" required class=INPUT value=t.display_name.clone() />
                </div>
                <div>
                    <label for="plan" class="block text-sm font-medium">"Plan"</label>
                    <select id="plan" name="plan" class=INPUT>
                        {PLANS.into_iter().map(|p| view! { <option value=p selected=t.plan == p>{p}</option> }).collect_view()}
                    </select>
                </div>
                <div>
                    <label for="region" class="block text-sm font-medium">"Region"</label>
                    <input id="region" name="region" required class=INPUT value=t.region.clone() />
                    <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">"Placement is sticky: a new plan or region does not move the tenant off its shard."</p>
                </div>
                <div>
                    <label for="device_quota" class="block text-sm font-medium">"Device quota"</label>
                    <input id="device_quota" name="device_quota" type="number" min="1" required class=INPUT value=t.device_quota.to_string() />
                    <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">"Reserved on the shard; a raise must fit its capacity."</p>
                </div>
                <div>
                    <label for="key_quota" class="block text-sm font-medium">"Active key quota"</label>
                    <input id="key_quota" name="key_quota" type="number" min="0" required class=INPUT value=t.key_quota.to_string() />
                </div>
            </div>
            <div class="flex items-center gap-3">
                <button type="submit" class="btn-primary">"Save tenant"</button>
                <a href="/operator" class="btn-secondary">"Cancel"</a>
            </div>
        </ActionForm>
    }
}
