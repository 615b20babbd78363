//! `/t/:slug/devices`: the tenant's devices (Tailscale's Machines page). Search,
//! filters, sort and page live in the URL (`domain::devices::DeviceQuery`); the filter
//! form is a plain GET form, so all of it works without JavaScript.

use crate::api::devices::{list_devices, DeviceRow, DevicesView, RegisterDevice};
use crate::domain::devices::{DeviceQuery, Online, SortKey};
use crate::ui::common::{
    count, utc, Badge, Card, CopyButton, FormError, Loaded, Notice, PageHeader, Tone, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn DevicesPage() -> impl IntoView {
    let params = use_params_map();
    let query_map = use_query_map();
    let key = move || {
        let slug = params.read().get("slug").unwrap_or_default();
        let q = query_map.read();
        let query = DeviceQuery::from_params(|k| q.get_str(k));
        (slug, query)
    };
    let view_data = Resource::new(key, |(slug, query)| list_devices(slug, query));
    view! {
        <Title text="Devices" />
        <Loaded resource=view_data render=move |v| {
            let (slug, query) = key();
            view! { <Devices slug=slug query=query data=v /> }
        } />
    }
}

/// "3 minutes ago"-style text is left to the reader's clock: the page shows UTC times.
fn last_seen_text(d: &DeviceRow) -> String {
    if d.online {
        "Connected".into()
    } else {
        d.last_seen
            .as_deref()
            .map(utc)
            .unwrap_or_else(|| "never".into())
    }
}

#[component]
fn Devices(slug: String, query: DeviceQuery, data: DevicesView) -> impl IntoView {
    let qm = use_query_map();
    let deleted = move || qm.read().get("deleted");
    let base = format!("/t/{slug}/devices");
    let subtitle = if !data.placed {
        "This tenant is not placed on a shard yet.".to_string()
    } else {
        format!(
            "{} of {} devices in the tenant{} · as of {}",
            data.tenant_devices,
            data.device_quota,
            if data.sees_all {
                ""
            } else {
                " (you see your own)"
            },
            data.as_of
                .as_deref()
                .map(utc)
                .unwrap_or_else(|| "the first sync".into())
        )
    };
    let page = data.page.clone();
    let pages = page.pages();
    let first = if page.total == 0 {
        0
    } else {
        i64::from(page.page - 1) * i64::from(page.page_size) + 1
    };
    let last = (first + page.devices.len() as i64 - 1).max(0);
    let filtered = query
        != DeviceQuery {
            page: query.page,
            sort: query.sort,
            descending: query.descending,
            ..DeviceQuery::default()
        };
    let sort_link = {
        let base = base.clone();
        let query = query.clone();
        move |key: SortKey, label: &'static str| {
            let href = format!("{base}{}", query.sorted_by(key).to_query_string());
            let arrow = if query.sort == key {
                if query.descending {
                    " ↓"
                } else {
                    " ↑"
                }
            } else {
                ""
            };
            let sort = if query.sort == key {
                if query.descending {
                    "descending"
                } else {
                    "ascending"
                }
            } else {
                "none"
            };
            view! {
                <th scope="col" aria-sort=sort class="py-2">
                    <a class="hover:underline" href=href>{label}{arrow}</a>
                </th>
            }
        }
    };
    let prev = (page.page > 1)
        .then(|| format!("{base}{}", query.with_page(page.page - 1).to_query_string()));
    let next = (page.page < pages)
        .then(|| format!("{base}{}", query.with_page(page.page + 1).to_query_string()));
    let register = data.may_register.then(|| {
        view! { <RegisterCard slug=slug.clone() manages=data.manages owners=data.owners.clone() /> }
    });
    let over_quota = data.over_quota_since.clone().map(|since| {
        format!(
            "This tenant has {} devices, more than its quota of {} (since {}): devices joined \
             through reusable keys after the quota was reached. New keys and registrations are \
             refused until devices are removed; nothing is removed automatically.",
            data.tenant_devices,
            data.device_quota,
            utc(&since)
        )
    });
    view! {
        <PageHeader title="Devices" subtitle=subtitle />
        {over_quota.map(|m| view! {
            <p role="alert" class="mb-6 rounded-md border border-amber-300 bg-amber-50 px-4 py-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">{m}</p>
        })}
        {move || deleted().map(|name| view! {
            <Notice text=format!("Device {name} deleted.") />
        })}
        <Card>
            <form method="get" action=base.clone() class="grid gap-3 md:grid-cols-6" aria-label="Search and filter devices">
                <div class="md:col-span-2">
                    <label for="q" class="block text-sm font-medium">"Search"</label>
                    <input id="q" name="q" type="search" class=INPUT value=query.q.clone() placeholder="Name, IP, tag or owner" />
                </div>
                <div>
                    <label for="status" class="block text-sm font-medium">"Status"</label>
                    <select id="status" name="status" class=INPUT>
                        <option value="" selected=query.online == Online::Any>"Any"</option>
                        <option value="online" selected=query.online == Online::Online>"Online"</option>
                        <option value="offline" selected=query.online == Online::Offline>"Offline"</option>
                    </select>
                </div>
                <div>
                    <label for="tag" class="block text-sm font-medium">"Tag"</label>
                    <select id="tag" name="tag" class=INPUT>
                        <option value="">"Any"</option>
                        {data.tags.iter().map(|t| view! { <option value=t.clone() selected=query.tag.as_deref() == Some(t.as_str())>{t.clone()}</option> }).collect_view()}
                    </select>
                </div>
                <div>
                    <label for="owner" class="block text-sm font-medium">"Owner"</label>
                    <select id="owner" name="owner" class=INPUT>
                        <option value="">"Anyone"</option>
                        {data.owners.iter().map(|(user, name)| view! { <option value=user.clone() selected=query.owner.as_deref() == Some(user.as_str())>{name.clone()}</option> }).collect_view()}
                    </select>
                </div>
                <fieldset class="text-sm">
                    <legend class="block font-medium">"Only"</legend>
                    <label class="mt-1 flex items-center gap-2"><input type="checkbox" name="expiring" value="1" checked=query.expiring_soon />"Expiring soon"</label>
                    <label class="flex items-center gap-2"><input type="checkbox" name="routes" value="1" checked=query.has_routes />"Has routes"</label>
                    <label class="flex items-center gap-2"><input type="checkbox" name="exit" value="1" checked=query.exit_node />"Exit nodes"</label>
                </fieldset>
                {(query.sort != SortKey::Name).then(|| view! { <input type="hidden" name="sort" value=query.sort.as_str() /> })}
                {query.descending.then(|| view! { <input type="hidden" name="dir" value="desc" /> })}
                <div class="flex items-end gap-3 md:col-span-6">
                    <button type="submit" class="btn-primary">"Apply"</button>
                    {filtered.then(|| view! { <a class="btn-secondary" href=base.clone()>"Clear filters"</a> })}
                </div>
            </form>
        </Card>
        {register}
        <div class="mt-6">
            <Card>
                {if page.devices.is_empty() {
                    view! {
                        <p class="py-6 text-center text-sm text-slate-500">
                            {if filtered { "No device matches these filters." } else { "No devices yet. Create a pre-auth key and run tailscale up with it." }}
                        </p>
                    }.into_any()
                } else {
                    view! {
                        <table class="w-full text-left text-sm">
                            <caption class="sr-only">"Devices"</caption>
                            <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                <tr>
                                    {sort_link(SortKey::Name, "Device")}
                                    <th scope="col">"Addresses"</th>
                                    {sort_link(SortKey::Owner, "Owner")}
                                    {sort_link(SortKey::LastSeen, "Last seen")}
                                    {sort_link(SortKey::Expiry, "Key expiry")}
                                </tr>
                            </thead>
                            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                {page.devices.iter().map(|d| {
                                    let href = format!("/t/{slug}/devices/{}", d.node_id);
                                    view! {
                                        <tr>
                                            <td class="py-2 align-top">
                                                <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=href>{d.name.clone()}</a>
                                                {(d.hostname != d.name).then(|| view! { <div class="text-xs text-slate-500">{d.hostname.clone()}</div> })}
                                                <div class="mt-1 flex flex-wrap gap-1">
                                                    {d.tags.iter().map(|t| view! { <Badge tone=Tone::Info text=t.clone() /> }).collect_view()}
                                                    {d.exit_node.then(|| view! { <Badge tone=Tone::Neutral text=if d.exit_node_approved { "exit node" } else { "exit node (not approved)" } /> })}
                                                    {(!d.subnet_routes.is_empty()).then(|| view! { <Badge tone=Tone::Neutral text=count(d.subnet_routes.len(), "subnet route") /> })}
                                                </div>
                                            </td>
                                            <td class="align-top font-mono text-xs">
                                                {d.ips.iter().map(|ip| view! {
                                                    <div>{ip.clone()}<CopyButton text=ip.clone() label=format!("Copy {ip}") /></div>
                                                }).collect_view()}
                                            </td>
                                            <td class="align-top">{d.owner_name.clone().or(d.owner_user.clone()).unwrap_or_else(|| "tagged device".into())}</td>
                                            <td class="align-top">
                                                {if d.expired {
                                                    // Headscale keeps an expired device's control connection (it
                                                    // waits there to log in again), but it reaches no peer.
                                                    view! { <Badge tone=Tone::Bad text="logged out" /> }.into_any()
                                                } else if d.online {
                                                    view! { <Badge tone=Tone::Good text="online" /> }.into_any()
                                                } else {
                                                    view! { <span class="text-xs text-slate-600 dark:text-slate-400">{last_seen_text(d)}</span> }.into_any()
                                                }}
                                            </td>
                                            <td class="align-top text-xs">
                                                {if d.expired {
                                                    view! { <Badge tone=Tone::Bad text="expired" /> }.into_any()
                                                } else {
                                                    view! { <span>{d.expiry.as_deref().map(utc).unwrap_or_else(|| "never".into())}</span> }.into_any()
                                                }}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
                <nav class="mt-4 flex items-center justify-between text-sm" aria-label="Pages">
                    <span class="text-slate-600 dark:text-slate-400">{format!("{first}–{last} of {} · page {} of {pages}", page.total, page.page)}</span>
                    <span class="flex gap-2">
                        {prev.map(|h| view! { <a class="btn-secondary" rel="prev" href=h>"Previous"</a> })}
                        {next.map(|h| view! { <a class="btn-secondary" rel="next" href=h>"Next"</a> })}
                    </span>
                </nav>
            </Card>
        </div>
    }
}

/// Registers a device waiting after an interactive `tailscale up`.
#[component]
fn RegisterCard(slug: String, manages: bool, owners: Vec<(String, String)>) -> impl IntoView {
    let action = ServerAction::<RegisterDevice>::new();
    let error = Signal::derive(move || action.value().get().and_then(|r| r.err()));
    view! {
        <details class="mt-6 rounded-lg border border-slate-200 bg-white p-5 shadow-sm dark:border-slate-800 dark:bg-slate-900">
            <summary class="cursor-pointer text-sm font-semibold">"Register a device that is waiting (tailscale up without a key)"</summary>
            <ActionForm action=action attr:class="mt-4 grid gap-4 md:grid-cols-3" attr:aria-label="Register device">
                <div class="md:col-span-3"><FormError error=error /></div>
                <input type="hidden" name="slug" value=slug />
                <div class="md:col-span-2">
                    <label for="registration" class="block text-sm font-medium">"Registration URL or ID"</label>
                    <input id="registration" name="registration" required class=INPUT placeholder="http://…/register/hskey-authreq-…" aria-describedby="registration-help" />
                    <p id="registration-help" class="mt-1 text-xs text-slate-500">"What tailscale up --login-server=… printed. Both Headscale 0.28 and 0.29 forms work."</p>
                </div>
                {manages.then(|| view! {
                    <div>
                        <label for="reg-owner" class="block text-sm font-medium">"Owner"</label>
                        <select id="reg-owner" name="owner" class=INPUT>
                            <option value="me">"Me"</option>
                            {owners.iter().map(|(u, n)| view! { <option value=u.clone()>{format!("{n} ({u})")}</option> }).collect_view()}
                        </select>
                    </div>
                })}
                <div class="md:col-span-3"><button type="submit" class="btn-primary">"Register device"</button></div>
            </ActionForm>
        </details>
    }
}
