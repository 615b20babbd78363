//! `/t/:slug/keys`: pre-auth keys (Tailscale's Keys page). Mint a key — shown once, with
//! copy buttons and ready-to-paste commands for this tenant's shard — list keys with
//! their state, expire them. Without JavaScript the minted key comes back on this page
//! through a one-time token (see `api::keys`).

use crate::api::keys::{list_keys, take_minted_key, CreateKey, ExpireKey, KeysView, MintedKey};
use crate::domain::keys::{KeyState, MAX_EXPIRY_DAYS};
use crate::ui::common::{
    utc, Badge, Card, CopyButton, FormError, Loaded, Notice, PageHeader, Tone, When, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn KeysPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let create = ServerAction::<CreateKey>::new();
    let expire = ServerAction::<ExpireKey>::new();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let keys = Resource::new(
        move || (slug(), create.version().get(), expire.version().get()),
        |(slug, _, _)| list_keys(slug),
    );
    // A key minted without JavaScript, handed over once.
    let minted_elsewhere = Resource::new(
        move || (slug(), query.read().get("minted")),
        |(slug, token)| async move {
            match token {
                Some(t) => take_minted_key(slug, t).await.map(|k| k.map(|k| (k, true))),
                None => Ok(None),
            }
        },
    );
    view! {
        <Title text="Keys" />
        <Loaded resource=keys render=move |v| view! {
            <Keys slug=slug() data=v create=create expire=expire minted_elsewhere=minted_elsewhere />
        } />
    }
}

#[component]
fn Keys(
    slug: String,
    data: KeysView,
    create: ServerAction<CreateKey>,
    expire: ServerAction<ExpireKey>,
    minted_elsewhere: Resource<Result<Option<(MintedKey, bool)>, crate::error::AppError>>,
) -> impl IntoView {
    let qm = use_query_map();
    let expired_notice = move || {
        qm.read()
            .get("expired")
            .map(|id| format!("Key {id} expired: it registers no further device."))
    };
    let token_given = move || qm.read().get("minted").is_some();
    let subtitle = if data.placed {
        format!(
            "{} of {} active keys · {} of {} devices",
            data.active_keys, data.key_quota, data.devices, data.device_quota
        )
    } else {
        "This tenant is not placed on a shard yet.".into()
    };
    let at_quota = data.active_keys >= i64::from(data.key_quota)
        || data.devices >= i64::from(data.device_quota);
    // The key minted with JavaScript: shown until dismissed.
    let (dismissed, set_dismissed) = signal(0usize);
    let minted_here = move || {
        create
            .value()
            .get()
            .and_then(|r| r.ok())
            .filter(|_| dismissed.get() < create.version().get())
    };
    let create_error = Signal::derive(move || create.value().get().and_then(|r| r.err()));
    let (keys, may_mint, manages, own_user) = (
        data.keys.clone(),
        data.may_mint,
        data.manages,
        data.own_user.clone(),
    );
    let slug_rows = slug.clone();
    let rows = keys.into_iter().map(|k| {
                                        let slug = slug_rows.clone();
                                        let prefix = k.prefix.clone().unwrap_or_default();
                                        let key_id = k.key_id.to_string();
                                        let tone = match k.state { KeyState::Active => Tone::Good, KeyState::Used => Tone::Neutral, KeyState::Expired => Tone::Bad };
                                        let may_expire = k.state == KeyState::Active && may_mint && (manages || k.created_by_me || (own_user.is_some() && k.owner_user == own_user));
                                        let kind = match (k.reusable, k.ephemeral) { (true, true) => "reusable, ephemeral", (true, false) => "reusable", (false, true) => "single use, ephemeral", (false, false) => "single use" };
                                        view! {
                                            <tr>
                                                <td class="py-2 pr-4 align-top">
                                                    <code class="text-xs">{format!("hskey-auth-{}-…", k.prefix.clone().unwrap_or_else(|| "?".into()))}</code>
                                                    <div class="text-xs text-slate-500">{kind}{(!k.description.is_empty()).then(|| format!(" · {}", k.description))}</div>
                                                </td>
                                                <td class="pr-4 align-top text-xs">
                                                    {k.owner_user.clone().map(|u| view! { <code>{u}</code> })}
                                                    <div class="flex flex-wrap gap-1">{k.tags.iter().map(|t| view! { <Badge tone=Tone::Info text=t.clone() /> }).collect_view()}</div>
                                                </td>
                                                <td class="pr-4 align-top text-xs">{k.created_at.clone().map(|at| view! { <When at /> })}<div class="text-slate-500">{k.created_by.clone().map(|b| format!("by {b}")).unwrap_or_else(|| "outside the portal".into())}</div></td>
                                                <td class="pr-4 align-top text-xs">{k.expiration.clone().map(|at| view! { <When at /> })}</td>
                                                <td class="pr-2 align-top"><Badge tone=tone text=k.state.label() /></td>
                                                <td class="align-top text-right">
                                                    {may_expire.then(move || view! {
                                                        <ActionForm action=expire>
                                                            <input type="hidden" name="slug" value=slug />
                                                            <input type="hidden" name="key_id" value=key_id />
                                                            <button type="submit" class="btn-secondary px-2 py-1 text-xs" aria-label=format!("Expire key {prefix}")>"Expire"</button>
                                                        </ActionForm>
                                                    })}
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view();
    let keys_title = format!("Keys ({})", data.keys.len());
    let no_keys = data.keys.is_empty();
    let members: Vec<(String, String)> = data
        .members
        .iter()
        .filter(|(u, _)| Some(u) != data.own_user.as_ref())
        .cloned()
        .collect();
    let expire_error = Signal::derive(move || expire.value().get().and_then(|r| r.err()));
    view! {
        <PageHeader title="Keys" subtitle=subtitle />
        {move || expired_notice().map(|n| view! {
            <Notice text=n />
        })}
        <Suspense>
            {move || minted_elsewhere.get().map(|r| match r {
                Ok(Some((k, _))) => view! { <ShownOnce key=k on_done=None /> }.into_any(),
                Ok(None) if token_given() => view! {
                    <p role="alert" class="mb-6 rounded-md border border-amber-300 bg-amber-50 px-4 py-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">
                        "That key was already shown (it is shown only once) or its five minutes are over. The key itself still works; expire it below if you did not keep it."
                    </p>
                }.into_any(),
                _ => ().into_any(),
            })}
        </Suspense>
        {move || minted_here().map(|k| view! {
            <ShownOnce key=k on_done=Some(Callback::new(move |_| set_dismissed.set(create.version().get_untracked()))) />
        })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="lg:col-span-1">
                <Card title="Generate a key">
                    {if !data.may_mint || !data.placed {
                        view! { <p class="text-sm text-slate-500">"You can look at keys but not generate them."</p> }.into_any()
                    } else {
                        view! {
                            <ActionForm action=create attr:class="space-y-4" attr:aria-label="Generate key">
                                <FormError error=create_error />
                                <input type="hidden" name="slug" value=slug.clone() />
                                {at_quota.then(|| view! {
                                    <p class="rounded-md bg-amber-50 px-3 py-2 text-xs text-amber-900 dark:bg-amber-950 dark:text-amber-200">"This tenant is at a quota; a new key will be refused."</p>
                                })}
                                {data.manages.then(|| view! {
                                    <div>
                                        <label for="owner" class="block text-sm font-medium">"Owner"</label>
                                        <select id="owner" name="owner" class=INPUT>
                                            <option value="me">"Me"</option>
                                            {members.iter().map(|(u, n)| view! { <option value=u.clone()>{n.clone()}</option> }).collect_view()}
                                            <option value="tags">"No owner: tags only"</option>
                                        </select>
                                    </div>
                                    <div>
                                        <label for="tags" class="block text-sm font-medium">"Tags"</label>
                                        <input id="tags" name="tags" class=INPUT placeholder="tag:server, tag:ci" aria-describedby="tags-help" />
                                        <p id="tags-help" class="mt-1 text-xs text-slate-500">"Devices registered with the key carry these tags (the tenant's policy must define them)."</p>
                                    </div>
                                })}
                                <div>
                                    <label for="expiry_days" class="block text-sm font-medium">"Expires after (days)"</label>
                                    <input id="expiry_days" name="expiry_days" type="number" min="1" max=MAX_EXPIRY_DAYS.to_string() value="7" required class=INPUT />
                                </div>
                                <label class="flex items-start gap-2 text-sm"><input type="checkbox" name="reusable" value="on" class="mt-1" /><span>"Reusable"<span class="block text-xs text-slate-500">"Registers any number of devices until it expires."</span></span></label>
                                <label class="flex items-start gap-2 text-sm"><input type="checkbox" name="ephemeral" value="on" class="mt-1" /><span>"Ephemeral"<span class="block text-xs text-slate-500">"Devices are removed when they go offline."</span></span></label>
                                <div>
                                    <label for="description" class="block text-sm font-medium">"Description"</label>
                                    <input id="description" name="description" maxlength="200" class=INPUT placeholder="CI runners" />
                                </div>
                                <button type="submit" class="btn-primary">"Generate key"</button>
                            </ActionForm>
                        }.into_any()
                    }}
                </Card>
            </div>
            <div class="lg:col-span-2">
                <Card title=keys_title>
                    <FormError error=expire_error />
                    {if no_keys {
                        view! { <p class="py-6 text-center text-sm text-slate-500">"No keys yet."</p> }.into_any()
                    } else {
                        view! {
                            <div class="overflow-x-auto"><table class="w-full text-left text-sm">
                                <caption class="sr-only">"Pre-auth keys"</caption>
                                <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                    <tr><th scope="col" class="py-2 pr-4">"Key"</th><th scope="col" class="pr-4">"Owner"</th><th scope="col" class="pr-4">"Created (UTC)"</th><th scope="col" class="pr-4">"Expires (UTC)"</th><th scope="col" class="pr-2">"State"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr>
                                </thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                    {rows}
                                </tbody>
                            </table></div>
                        }.into_any()
                    }}
                </Card>
            </div>
        </div>
    }
}

/// The new key, its commands and copy buttons; shown once.
#[component]
fn ShownOnce(key: MintedKey, on_done: Option<Callback<()>>) -> impl IntoView {
    view! {
        <section role="dialog" aria-modal="false" aria-labelledby="minted-title" class="mb-6 rounded-lg border-2 border-indigo-400 bg-indigo-50 p-5 dark:border-indigo-700 dark:bg-indigo-950">
            <h2 id="minted-title" class="text-base font-semibold">"Your new key"</h2>
            <p class="mt-1 text-sm text-slate-700 dark:text-slate-300">"Copy it now: it is shown only this once. The portal keeps only its prefix "<code>{key.prefix.clone()}</code>"."</p>
            <div class="mt-3">
                <p class="text-xs font-medium uppercase text-slate-500">"Key"</p>
                <code data-testid="minted-key" class="block break-all rounded bg-white px-2 py-1 text-sm dark:bg-slate-900">{key.key.clone()}</code>
                <CopyButton text=key.key.clone() label="Copy key" />
            </div>
            <div class="mt-3">
                <p class="text-xs font-medium uppercase text-slate-500">"Join a device"</p>
                <code data-testid="tailscale-up" class="block break-all rounded bg-white px-2 py-1 text-xs dark:bg-slate-900">{key.tailscale_up.clone()}</code>
                <CopyButton text=key.tailscale_up.clone() label="Copy tailscale up command" />
            </div>
            <div class="mt-3">
                <p class="text-xs font-medium uppercase text-slate-500">"K3s (--vpn-auth)"</p>
                <code data-testid="k3s" class="block break-all rounded bg-white px-2 py-1 text-xs dark:bg-slate-900">{key.k3s.clone()}</code>
                <CopyButton text=key.k3s.clone() label="Copy K3s flag" />
            </div>
            <p class="mt-3 text-xs text-slate-600 dark:text-slate-400">{format!("Expires {}.", key.expiration.as_deref().map(utc).unwrap_or_else(|| "never".into()))}</p>
            {on_done.map(|done| view! {
                <button type="button" class="btn-secondary mt-3" on:click=move |_| done.run(())>"I have copied it"</button>
            })}
        </section>
    }
}
