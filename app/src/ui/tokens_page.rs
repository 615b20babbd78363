//! `/t/:slug/tokens` and `/operator/tokens`: API tokens for the REST API (docs/api.md).
//! Make one (name, role ceiling, expiry) — its text is shown once, with a `curl` line —
//! list them with their state and last use, revoke. Without JavaScript the new token
//! comes back on this page through a one-time handle (`api::handoff`).

use crate::api::tokens::{
    list_operator_tokens, list_tokens, take_made_token, CreateOperatorToken, CreateToken,
    MadeToken, RevokeOperatorToken, RevokeToken, TokenView, TokensView,
};
use crate::ui::common::{
    utc, Badge, Card, CopyButton, FormError, Loaded, Notice, PageHeader, Tone, When, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

type Handed = Resource<Result<Option<MadeToken>, crate::error::AppError>>;

fn handed_over() -> Handed {
    let query = use_query_map();
    Resource::new(
        move || query.read().get("made"),
        |handle| async move {
            match handle {
                Some(h) => take_made_token(h).await,
                None => Ok(None),
            }
        },
    )
}

#[component]
pub fn TokensPage() -> impl IntoView {
    let params = use_params_map();
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let tokens = Resource::new(
        move || (slug(), create.version().get(), revoke.version().get()),
        |(slug, _, _)| list_tokens(slug),
    );
    let handed = handed_over();
    view! {
        <Title text="API tokens" />
        <Loaded resource=tokens render=move |v| {
            let slug = slug();
            let form = {
                let slug = slug.clone();
                let ceilings = v.ceilings.clone();
                let max = v.max_expiry_days;
                let error = Signal::derive(move || create.value().get().and_then(|r| r.err()));
                view! {
                    <ActionForm action=create attr:class="space-y-4" attr:aria-label="Make token">
                        <FormError error=error />
                        <input type="hidden" name="slug" value=slug />
                        <NameField />
                        <div>
                            <label for="role" class="block text-sm font-medium">"Role ceiling"</label>
                            <select id="role" name="role" class=INPUT aria-describedby="role-help">
                                {ceilings.into_iter().map(|(value, label)| {
                                    let selected = value == "member";
                                    view! { <option value=value selected=selected>{label}</option> }
                                }).collect_view()}
                            </select>
                            <p id="role-help" class="mt-1 text-xs text-slate-500">"The token acts for you with at most this role, and stops working if you no longer have it."</p>
                        </div>
                        <ExpiryField max=max />
                        <button type="submit" class="btn-primary">"Make token"</button>
                    </ActionForm>
                }
            };
            let made = Signal::derive(move || create.value().get().and_then(|r| r.ok()));
            view! {
                <Tokens
                    subtitle="Tokens for the portal's REST API (/api/v1): GitOps of your access controls from CI, device inventory, usage exports."
                    data=v
                    form=form.into_any()
                    made=made
                    handed=handed
                    revoke_form=move |t: TokenView| {
                        let slug = slug.clone();
                        view! {
                            <ActionForm action=revoke>
                                <input type="hidden" name="slug" value=slug />
                                <input type="hidden" name="token_id" value=t.id.clone() />
                                <button type="submit" class="btn-secondary px-2 py-1 text-xs" aria-label=format!("Revoke token {}", t.name)>"Revoke"</button>
                            </ActionForm>
                        }.into_any()
                    }
                    revoke_error=Signal::derive(move || revoke.value().get().and_then(|r| r.err()))
                />
            }
        } />
    }
}

#[component]
pub fn OperatorTokensPage() -> impl IntoView {
    let create = ServerAction::<CreateOperatorToken>::new();
    let revoke = ServerAction::<RevokeOperatorToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_operator_tokens(),
    );
    let handed = handed_over();
    view! {
        <Title text="Operator API tokens" />
        <Loaded resource=tokens render=move |v| {
            let max = v.max_expiry_days;
            let error = Signal::derive(move || create.value().get().and_then(|r| r.err()));
            let form = view! {
                <ActionForm action=create attr:class="space-y-4" attr:aria-label="Make token">
                    <FormError error=error />
                    <NameField />
                    <ExpiryField max=max />
                    <p class="text-xs text-slate-500">"An operator token reaches the operator endpoints (/api/v1/operator/…) for all tenants, and stops working if you are no longer an operator."</p>
                    <button type="submit" class="btn-primary">"Make token"</button>
                </ActionForm>
            };
            let made = Signal::derive(move || create.value().get().and_then(|r| r.ok()));
            view! {
                <Tokens
                    subtitle="Tokens for the operator endpoints of the REST API: all tenants' usage and billing exports, shards, the audit log."
                    data=v
                    form=form.into_any()
                    made=made
                    handed=handed
                    revoke_form=move |t: TokenView| view! {
                        <ActionForm action=revoke>
                            <input type="hidden" name="token_id" value=t.id.clone() />
                            <button type="submit" class="btn-secondary px-2 py-1 text-xs" aria-label=format!("Revoke token {}", t.name)>"Revoke"</button>
                        </ActionForm>
                    }.into_any()
                    revoke_error=Signal::derive(move || revoke.value().get().and_then(|r| r.err()))
                />
            }
        } />
    }
}

#[component]
fn NameField() -> impl IntoView {
    view! {
        <div>
            <label for="name" class="block text-sm font-medium">"Name"</label>
            <input id="name" name="name" required maxlength="80" class=INPUT placeholder="GitOps CI" />
        </div>
    }
}

#[component]
fn ExpiryField(max: u32) -> impl IntoView {
    view! {
        <div>
            <label for="expiry_days" class="block text-sm font-medium">"Expires after (days)"</label>
            <input id="expiry_days" name="expiry_days" type="number" min="1" max=max.to_string() value="90" required class=INPUT />
        </div>
    }
}

#[component]
fn Tokens<R>(
    subtitle: &'static str,
    data: TokensView,
    form: AnyView,
    made: Signal<Option<MadeToken>>,
    handed: Handed,
    revoke_form: R,
    revoke_error: Signal<Option<crate::error::AppError>>,
) -> impl IntoView
where
    R: Fn(TokenView) -> AnyView + Clone + Send + Sync + 'static,
{
    let qm = use_query_map();
    let revoked_notice = move || {
        qm.read()
            .get("revoked")
            .map(|hint| format!("Token {hint} revoked: requests with it are refused from now on."))
    };
    let handle_given = move || qm.read().get("made").is_some();
    let title = format!("Tokens ({})", data.tokens.len());
    let empty = data.tokens.is_empty();
    let rows = data
        .tokens
        .into_iter()
        .map(|t| {
            let tone = match t.state.as_str() {
                "Active" => Tone::Good,
                "Expired" => Tone::Neutral,
                _ => Tone::Bad,
            };
            let revoke = t.may_revoke.then(|| revoke_form(t.clone()));
            view! {
                <tr>
                    <td class="py-2 pr-4 align-top">
                        <div class="font-medium">{t.name.clone()}</div>
                        <code class="text-xs text-slate-500">{t.hint.clone()}</code>
                    </td>
                    <td class="pr-4 align-top text-xs">{t.role.clone().unwrap_or_else(|| "Operator".into())}</td>
                    <td class="pr-4 align-top text-xs"><When at=t.created_at.clone() /><div class="text-slate-500">{format!("by {}", t.created_by)}</div></td>
                    <td class="pr-4 align-top text-xs"><When at=t.expires_at.clone() /></td>
                    <td class="pr-4 align-top text-xs">{match t.last_used_at.clone() {
                        Some(at) => view! { <When at /> }.into_any(),
                        None => "never".into_any(),
                    }}</td>
                    <td class="pr-2 align-top"><Badge tone=tone text=t.state.clone() /></td>
                    <td class="align-top text-right">{revoke}</td>
                </tr>
            }
        })
        .collect_view();
    let may_create = data.may_create;
    view! {
        <PageHeader title="API tokens" subtitle=subtitle />
        {move || revoked_notice().map(|n| view! { <Notice text=n /> })}
        <Suspense>
            {move || handed.get().map(|r| match r {
                Ok(Some(t)) => view! { <ShownOnce made=t /> }.into_any(),
                Ok(None) if handle_given() => view! {
                    <p role="alert" class="mb-6 rounded-md border border-amber-300 bg-amber-50 px-4 py-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">
                        "That token was already shown (it is shown only once) or its five minutes are over. It still works; revoke it below if you did not keep it."
                    </p>
                }.into_any(),
                _ => ().into_any(),
            })}
        </Suspense>
        {move || made.get().map(|t| view! { <ShownOnce made=t /> })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="lg:col-span-1">
                <Card title="Make a token">
                    {if may_create {
                        form
                    } else {
                        view! { <p class="text-sm text-slate-500">"Tokens cannot be made here right now (the tenant is suspended, or you are using a token)."</p> }.into_any()
                    }}
                </Card>
            </div>
            <div class="lg:col-span-2">
                <Card title=title>
                    <FormError error=revoke_error />
                    {if empty {
                        view! { <p class="py-6 text-center text-sm text-slate-500">"No tokens yet."</p> }.into_any()
                    } else {
                        view! {
                            <div class="overflow-x-auto"><table class="w-full text-left text-sm">
                                <caption class="sr-only">"API tokens"</caption>
                                <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                    <tr><th scope="col" class="py-2 pr-4">"Token"</th><th scope="col" class="pr-4">"Role"</th><th scope="col" class="pr-4">"Made (UTC)"</th><th scope="col" class="pr-4">"Expires (UTC)"</th><th scope="col" class="pr-4">"Last used (UTC)"</th><th scope="col" class="pr-2">"State"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr>
                                </thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">{rows}</tbody>
                            </table></div>
                        }.into_any()
                    }}
                </Card>
            </div>
        </div>
    }
}

/// The new token and how to use it; shown once.
#[component]
fn ShownOnce(made: MadeToken) -> impl IntoView {
    let curl = format!(
        "curl -H \"Authorization: Bearer {}\" {}/api/v1/bootstrap",
        made.secret, made.api_base
    );
    view! {
        <section role="dialog" aria-modal="false" aria-labelledby="made-title" class="mb-6 rounded-lg border-2 border-indigo-400 bg-indigo-50 p-5 dark:border-indigo-700 dark:bg-indigo-950">
            <h2 id="made-title" class="text-base font-semibold">{format!("Your new token “{}”", made.token.name)}</h2>
            <p class="mt-1 text-sm text-slate-700 dark:text-slate-300">"Copy it now: it is shown only this once. The portal keeps only a hash of it."</p>
            <div class="mt-3">
                <p class="text-xs font-medium uppercase text-slate-500">"Token"</p>
                <code data-testid="made-token" class="block break-all rounded bg-white px-2 py-1 text-sm dark:bg-slate-900">{made.secret.clone()}</code>
                <CopyButton text=made.secret.clone() label="Copy token" />
            </div>
            <div class="mt-3">
                <p class="text-xs font-medium uppercase text-slate-500">"Try it"</p>
                <code class="block break-all rounded bg-white px-2 py-1 text-xs dark:bg-slate-900">{curl.clone()}</code>
                <CopyButton text=curl label="Copy curl command" />
            </div>
            <p class="mt-3 text-xs text-slate-600 dark:text-slate-400">{format!("Expires {}. API reference: /api/v1/openapi.json", utc(&made.token.expires_at))}</p>
        </section>
    }
}
