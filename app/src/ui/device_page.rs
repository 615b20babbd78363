//! `/t/:slug/devices/:node_id`: one device, and what the person may do with it —
//! rename, expire, delete (typing the name to confirm). Plain forms: all of it works
//! without JavaScript.

use crate::api::devices::{
    get_device, DeleteDevice, DeviceView, ExpireDevice, RenameDevice, SetDeviceRoute, SetDeviceTags,
};
use crate::ui::common::{
    utc, Badge, Card, CopyButton, FormError, Loaded, Notice, PageHeader, Tone, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn DevicePage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let p = params.read();
        (
            p.get("slug").unwrap_or_default(),
            p.get("node_id")
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0),
        )
    };
    // The actions live here so the device is read again after each of them.
    let actions = DeviceActions {
        rename: ServerAction::<RenameDevice>::new(),
        expire: ServerAction::<ExpireDevice>::new(),
        delete: ServerAction::<DeleteDevice>::new(),
        route: ServerAction::<SetDeviceRoute>::new(),
        tags: ServerAction::<SetDeviceTags>::new(),
    };
    let device = Resource::new(
        move || {
            (
                key(),
                actions.rename.version().get(),
                actions.expire.version().get(),
                actions.route.version().get() + actions.tags.version().get(),
            )
        },
        |((slug, id), _, _, _)| get_device(slug, id),
    );
    view! {
        <Loaded resource=device render=move |v| {
            let (slug, _) = key();
            view! { <Device slug=slug view=v actions=actions /> }
        } />
    }
}

#[derive(Clone, Copy)]
struct DeviceActions {
    rename: ServerAction<RenameDevice>,
    expire: ServerAction<ExpireDevice>,
    delete: ServerAction<DeleteDevice>,
    route: ServerAction<SetDeviceRoute>,
    tags: ServerAction<SetDeviceTags>,
}

#[component]
fn Fact(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <div class="flex justify-between gap-4 py-1.5">
            <dt class="text-slate-500 dark:text-slate-400">{label}</dt>
            <dd class="text-right">{children()}</dd>
        </div>
    }
}

#[component]
fn Device(slug: String, view: DeviceView, actions: DeviceActions) -> impl IntoView {
    let qm = use_query_map();
    let done = move || {
        qm.read().get("done").map(|d| match d.as_str() {
            "renamed" => "Renamed. Clients see the new name at their next map update.",
            "expired" => "The device's key is expired: it is logged out until it logs in again.",
            "registered" => "Registered. The device finishes logging in on its own.",
            "routes" => "Routes updated.",
            "tags" => "Tags set. The device is now owned by its tags.",
            _ => "Done.",
        })
    };
    let d = view.device.clone();
    let title = d.name.clone();
    let status = if d.expired {
        view! { <Badge tone=Tone::Bad text="expired: logged out" /> }.into_any()
    } else if d.online {
        view! { <Badge tone=Tone::Good text="online" /> }.into_any()
    } else {
        view! { <Badge tone=Tone::Neutral text="offline" /> }.into_any()
    };
    let subtitle = format!("Hostname {} · node {}", d.hostname, d.node_id);
    let back = format!("/t/{slug}/devices");
    let owner = d
        .owner_name
        .clone()
        .or(d.owner_user.clone())
        .unwrap_or_else(|| "Tagged device (owned by its tags)".into());
    let tags_form = (view.may_change && view.manages).then(|| {
        view! { <TagsForm slug=slug.clone() node_id=d.node_id tags=d.tags.clone() action=actions.tags /> }
    });
    let routes = if d.subnet_routes.is_empty() && !d.exit_node {
        view! { <p class="text-sm text-slate-500">"This device advertises no routes."</p> }
            .into_any()
    } else {
        view! {
                        <ul class="text-sm">
                            {d.subnet_routes.iter().map(|r| {
                                let approved = d.approved_routes.contains(r);
                                view! {
                                    <li class="flex items-center justify-between gap-2 py-1">
                                        <span><code>{r.clone()}</code>" "{if approved { view! { <Badge tone=Tone::Good text="approved" /> }.into_any() } else { view! { <Badge tone=Tone::Warn text="awaiting approval" /> }.into_any() }}</span>
                                        {view.may_change.then(|| view! { <RouteButton slug=slug.clone() node_id=d.node_id route=r.clone() approved=approved action=actions.route /> })}
                                    </li>
                                }
                            }).collect_view()}
                            {d.exit_node.then(|| view! {
                                <li class="flex items-center justify-between gap-2 py-1">
                                    <span>"Exit node "{if d.exit_node_approved { view! { <Badge tone=Tone::Good text="approved" /> }.into_any() } else { view! { <Badge tone=Tone::Warn text="awaiting approval" /> }.into_any() }}</span>
                                    {view.may_change.then(|| view! { <RouteButton slug=slug.clone() node_id=d.node_id route="0.0.0.0/0".to_string() approved=d.exit_node_approved action=actions.route /> })}
                                </li>
                            })}
                        </ul>
                    }.into_any()
    };
    view! {
        <Title text=title.clone() />
        <p class="mb-2 text-sm"><a class="text-indigo-700 hover:underline dark:text-indigo-300" href=back>"← All devices"</a></p>
        <PageHeader title=title subtitle=subtitle />
        {move || done().map(|m| view! {
            <Notice text=m />
        })}
        <div class="grid gap-6 md:grid-cols-2">
            <Card title="Device">
                <dl class="divide-y divide-slate-100 text-sm dark:divide-slate-800">
                    <Fact label="Status">{status}</Fact>
                    <Fact label="Last seen">{if d.online { "Connected now".to_string() } else { d.last_seen.as_deref().map(utc).unwrap_or_else(|| "never".into()) }}</Fact>
                    <Fact label="Owner">{owner}{d.owner_user.clone().map(|u| view! { <div class="text-xs text-slate-500"><code>{u}</code></div> })}</Fact>
                    <Fact label="Tags">{if d.tags.is_empty() { view! { <span class="text-slate-500">"none"</span> }.into_any() } else { view! { <span class="flex flex-wrap justify-end gap-1">{d.tags.iter().map(|t| view! { <Badge tone=Tone::Info text=t.clone() /> }).collect_view()}</span> }.into_any() }}</Fact>
                    <Fact label="Key expiry">{d.expiry.as_deref().map(utc).unwrap_or_else(|| "never".into())}</Fact>
                    <Fact label="Registered">{format!("{} · {}", d.created_at.as_deref().map(utc).unwrap_or_else(|| "unknown".into()), match d.register_method.as_str() { "auth_key" => "with a pre-auth key", "cli" => "interactively", "oidc" => "through OIDC", _ => "unknown way" })}</Fact>
                </dl>
            </Card>
            <Card title="Addresses">
                <ul class="space-y-1 font-mono text-sm">
                    {d.ips.iter().map(|ip| view! { <li>{ip.clone()}<CopyButton text=ip.clone() label=format!("Copy {ip}") /></li> }).collect_view()}
                </ul>
                <h3 class="mt-4 text-xs font-semibold uppercase tracking-wide text-slate-500">"Routes"</h3>
                {routes}
                <FormError error=Signal::derive(move || actions.route.value().get().and_then(|r| r.err())) />
            </Card>
        </div>
        {tags_form}
        {if view.may_change {
            view! { <Actions slug=slug.clone() node_id=d.node_id name=d.name.clone() expired=d.expired actions=actions /> }.into_any()
        } else {
            view! { <p class="mt-6 text-sm text-slate-500">"You can look at this device but not change it."</p> }.into_any()
        }}
    }
}

#[component]
fn Actions(
    slug: String,
    node_id: i64,
    name: String,
    expired: bool,
    actions: DeviceActions,
) -> impl IntoView {
    let DeviceActions {
        rename,
        expire,
        delete,
        ..
    } = actions;
    let rename_error = Signal::derive(move || rename.value().get().and_then(|r| r.err()));
    let expire_error = Signal::derive(move || expire.value().get().and_then(|r| r.err()));
    let delete_error = Signal::derive(move || delete.value().get().and_then(|r| r.err()));
    let id = node_id.to_string();
    let (slug_rename, slug_expire, slug_delete) = (slug.clone(), slug.clone(), slug);
    let (id_rename, id_expire, id_delete) = (id.clone(), id.clone(), id);
    let (name_rename, name_delete) = (name.clone(), name);
    view! {
        <div class="mt-6 grid gap-6 md:grid-cols-3">
            <Card title="Rename">
                <ActionForm action=rename attr:aria-label="Rename device">
                    <FormError error=rename_error />
                    <input type="hidden" name="slug" value=slug_rename />
                    <input type="hidden" name="node_id" value=id_rename />
                    <label for="name" class="block text-sm font-medium">"New name"</label>
                    <input id="name" name="name" required class=INPUT value=name_rename aria-describedby="name-help" />
                    <p id="name-help" class="mt-1 text-xs text-slate-500">"Letters, digits and hyphens; it becomes the device's DNS name."</p>
                    <button type="submit" class="btn-primary mt-3">"Rename"</button>
                </ActionForm>
            </Card>
            <Card title="Expire key">
                <ActionForm action=expire attr:aria-label="Expire device key">
                    <FormError error=expire_error />
                    <input type="hidden" name="slug" value=slug_expire />
                    <input type="hidden" name="node_id" value=id_expire />
                    <p class="text-sm text-slate-600 dark:text-slate-400">"Logs the device out now; it must log in again to reconnect."</p>
                    <button type="submit" class="btn-secondary mt-3" disabled=expired>{if expired { "Already expired" } else { "Expire key" }}</button>
                </ActionForm>
            </Card>
            <Card title="Delete">
                <ActionForm action=delete attr:aria-label="Delete device">
                    <FormError error=delete_error />
                    <input type="hidden" name="slug" value=slug_delete />
                    <input type="hidden" name="node_id" value=id_delete />
                    <label for="confirm" class="block text-sm text-slate-600 dark:text-slate-400">"Removes the device from the tailnet. Type "<code>{name_delete}</code>" to confirm."</label>
                    <input id="confirm" name="confirm" required autocomplete="off" class=INPUT />
                    <button type="submit" class="btn-danger mt-3">"Delete device"</button>
                </ActionForm>
            </Card>
        </div>
    }
}

#[component]
fn RouteButton(
    slug: String,
    node_id: i64,
    route: String,
    approved: bool,
    action: ServerAction<SetDeviceRoute>,
) -> impl IntoView {
    let label = if approved { "Withdraw" } else { "Approve" };
    let aria = format!("{label} {route}");
    view! {
        <ActionForm action=action>
            <input type="hidden" name="slug" value=slug />
            <input type="hidden" name="node_id" value=node_id.to_string() />
            <input type="hidden" name="route" value=route />
            <input type="hidden" name="approve" value=(!approved).to_string() />
            <button type="submit" class="btn-secondary px-2 py-1 text-xs" aria-label=aria>{label}</button>
        </ActionForm>
    }
}

#[component]
fn TagsForm(
    slug: String,
    node_id: i64,
    tags: Vec<String>,
    action: ServerAction<SetDeviceTags>,
) -> impl IntoView {
    let error = Signal::derive(move || action.value().get().and_then(|r| r.err()));
    view! {
        <div class="mt-6">
            <Card title="Tags">
                <ActionForm action=action attr:aria-label="Set device tags" attr:class="flex flex-wrap items-end gap-3">
                    <div class="w-full"><FormError error=error /></div>
                    <input type="hidden" name="slug" value=slug />
                    <input type="hidden" name="node_id" value=node_id.to_string() />
                    <div class="grow">
                        <label for="tags" class="block text-sm font-medium">"Tags"</label>
                        <input id="tags" name="tags" class=INPUT value=tags.join(", ") placeholder="tag:server, tag:db" aria-describedby="tags-help" />
                        <p id="tags-help" class="mt-1 text-xs text-slate-500">"A tagged device belongs to the tenant, not to a member. Tags must be defined in your policy's tagOwners."</p>
                    </div>
                    <button type="submit" class="btn-primary">"Set tags"</button>
                </ActionForm>
            </Card>
        </div>
    }
}
