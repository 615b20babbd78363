//! The frame around every page: top navigation, tenant switcher, theme and account.

use crate::api::preferences::SetTheme;
use crate::api::viewer::Viewer;
use crate::domain::theme::Theme;
use crate::ui::app::ViewerResource;
use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// The tenant slug of the current URL (`/t/<slug>/…`), if any.
pub fn current_slug() -> Memo<Option<String>> {
    let location = use_location();
    Memo::new(move |_| {
        let path = location.pathname.get();
        let mut parts = path.trim_start_matches('/').split('/');
        match (parts.next(), parts.next()) {
            (Some("t"), Some(slug)) if !slug.is_empty() => Some(slug.to_string()),
            _ => None,
        }
    })
}

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    view! {
        <div class="flex min-h-screen flex-col">
            <header class="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
                <nav
                    aria-label="Main"
                    class="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3"
                >
                    // The name shows on wide screens; below that the mark alone keeps the
                    // tenant's navigation on one line (its label names the link).
                    <a
                        href="/"
                        aria-label="Headscale Portal"
                        class="flex items-center gap-2 font-semibold tracking-tight"
                    >
                        <span
                            aria-hidden="true"
                            class="grid h-7 w-7 place-items-center rounded-md bg-indigo-600 text-sm font-bold text-white"
                        >
                            "H"
                        </span>
                        <span class="hidden 2xl:inline">"Headscale Portal"</span>
                    </a>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            match viewer.await {
                                Ok(Some(v)) => view! { <SignedInNav viewer=v /> }.into_any(),
                                _ => view! { <div class="ml-auto"><ThemeSwitcher /></div> }.into_any(),
                            }
                        })}
                    </Transition>
                </nav>
            </header>
            <main id="main" class="mx-auto w-full max-w-6xl flex-1 px-4 py-8">
                {children()}
            </main>
            <footer class="border-t border-slate-200 py-4 text-center text-xs text-slate-500 dark:border-slate-800 dark:text-slate-400">
                "Headscale Portal · multi-tenant control for Headscale shards"
            </footer>
        </div>
    }
}

#[component]
fn SignedInNav(viewer: Viewer) -> impl IntoView {
    let slug = current_slug();
    let is_operator = viewer.is_operator;
    let memberships = viewer.memberships.clone();
    let current_name = {
        let memberships = memberships.clone();
        move || {
            slug.get()
                .and_then(|s| {
                    memberships
                        .iter()
                        .find(|m| m.slug == s)
                        .map(|m| m.display_name.clone())
                })
                .unwrap_or_else(|| "Choose a tenant".to_string())
        }
    };
    let show_switcher = !memberships.is_empty();
    let own_slugs: Vec<String> = memberships.iter().map(|m| m.slug.clone()).collect();
    // Only a tenant of the person's own gets a Dashboard link: `/t/<anything>` in the
    // address bar is not a reason to link back to it.
    let own_slug = move || slug.get().filter(|s| own_slugs.contains(s));
    let slugs_allowing = |p: crate::domain::role::Permission| -> Vec<String> {
        memberships
            .iter()
            .filter(|m| m.role.allows(p))
            .map(|m| m.slug.clone())
            .collect()
    };
    let billing_slugs = slugs_allowing(crate::domain::role::Permission::ViewBilling);
    let audit_slugs = slugs_allowing(crate::domain::role::Permission::ViewAudit);
    let member_slugs = slugs_allowing(crate::domain::role::Permission::ViewAll);
    view! {
        <Show when=move || show_switcher>
            <TenantSwitcher current_name=current_name.clone() memberships=memberships.clone() />
        </Show>
        <div class="flex flex-wrap items-center gap-1 text-sm">
            {move || {
                own_slug()
                    .map(|s| {
                        view! {
                            <a
                                href=format!("/t/{s}")
                                class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                            >
                                "Dashboard"
                            </a>
                            <a
                                href=format!("/t/{s}/devices")
                                class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                            >
                                "Devices"
                            </a>
                            <a
                                href=format!("/t/{s}/keys")
                                class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                            >
                                "Keys"
                            </a>
                            <a
                                href=format!("/t/{s}/policy")
                                class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                            >
                                "Access controls"
                            </a>
                            {billing_slugs.contains(&s).then(|| view! {
                                <a
                                    href=format!("/t/{s}/usage")
                                    class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                                >
                                    "Usage"
                                </a>
                            })}
                            {member_slugs.contains(&s).then(|| view! {
                                <a
                                    href=format!("/t/{s}/members")
                                    class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                                >
                                    "Members"
                                </a>
                            })}
                            {audit_slugs.contains(&s).then(|| view! {
                                <a
                                    href=format!("/t/{s}/audit")
                                    class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                                >
                                    "Audit log"
                                </a>
                            })}
                            <a
                                href=format!("/t/{s}/tokens")
                                class="rounded px-2 py-1 font-medium text-slate-700 hover:bg-slate-100 dark:text-slate-200 dark:hover:bg-slate-800"
                            >
                                "API tokens"
                            </a>
                        }
                    })
            }}
            <Show when=move || is_operator>
                <a
                    href="/operator"
                    class="rounded px-2 py-1 font-medium text-amber-700 hover:bg-amber-50 dark:text-amber-300 dark:hover:bg-slate-800"
                >
                    "Operator"
                </a>
            </Show>
        </div>
        <div class="ml-auto flex items-center gap-4">
            <ThemeSwitcher />
            <UserMenu viewer=viewer.clone() />
        </div>
    }
}

/// A disclosure menu (`<details>`), so it opens without JavaScript.
/// A `<details>` menu stays open across a client-side navigation; close it whenever the
/// location changes (without JavaScript every navigation is a new page anyway).
fn close_on_navigation(menu: NodeRef<leptos::html::Details>) {
    let location = use_location();
    Effect::new(move |_| {
        location.pathname.track();
        location.search.track();
        if let Some(details) = menu.get_untracked() {
            let _ = details.remove_attribute("open");
        }
    });
}

#[component]
fn TenantSwitcher(
    current_name: impl Fn() -> String + Send + Sync + 'static,
    memberships: Vec<crate::api::viewer::MembershipView>,
) -> impl IntoView {
    let menu = NodeRef::<leptos::html::Details>::new();
    close_on_navigation(menu);
    view! {
        <details node_ref=menu class="group relative">
            <summary
                class="flex cursor-pointer list-none items-center gap-2 rounded-md border border-slate-300 px-3 py-1.5 text-sm hover:bg-slate-50 dark:border-slate-700 dark:hover:bg-slate-800"
                aria-label="Switch tenant"
            >
                <span class="font-medium">{current_name}</span>
                <span aria-hidden="true" class="text-slate-400">"▾"</span>
            </summary>
            <ul class="absolute left-0 z-10 mt-1 w-64 rounded-md border border-slate-200 bg-white p-1 shadow-lg dark:border-slate-700 dark:bg-slate-900">
                {memberships
                    .into_iter()
                    .map(|m| {
                        view! {
                            <li>
                                <a
                                    href=format!("/t/{}", m.slug)
                                    class="flex items-center justify-between rounded px-3 py-2 text-sm hover:bg-slate-100 dark:hover:bg-slate-800"
                                >
                                    <span>{m.display_name.clone()}</span>
                                    <span class="text-xs text-slate-500 dark:text-slate-400">{m.role.label()}</span>
                                </a>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </details>
    }
}

#[component]
fn UserMenu(viewer: Viewer) -> impl IntoView {
    let initial = viewer
        .display_name
        .chars()
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_else(|| "?".into());
    let menu = NodeRef::<leptos::html::Details>::new();
    close_on_navigation(menu);
    view! {
        <details node_ref=menu class="relative">
            <summary
                class="flex cursor-pointer list-none items-center gap-2 text-sm"
                aria-label="Account"
            >
                <span
                    aria-hidden="true"
                    class="grid h-8 w-8 place-items-center rounded-full bg-slate-200 font-semibold text-slate-700 dark:bg-slate-700 dark:text-slate-100"
                >
                    {initial}
                </span>
                <span class="hidden sm:inline" data-testid="viewer-name">{viewer.display_name.clone()}</span>
            </summary>
            <div class="absolute right-0 z-10 mt-1 w-64 rounded-md border border-slate-200 bg-white p-3 shadow-lg dark:border-slate-700 dark:bg-slate-900">
                <p class="text-sm font-medium">{viewer.display_name.clone()}</p>
                <p class="truncate text-xs text-slate-500 dark:text-slate-400">
                    {viewer.email.clone().unwrap_or_default()}
                </p>
                {viewer
                    .is_operator
                    .then(|| {
                        view! {
                            <p class="mt-1 text-xs font-medium text-amber-700 dark:text-amber-300">
                                "Service operator"
                            </p>
                        }
                    })}
                // A plain form: signing out changes state, so it is a POST, and it
                // must leave the single-page router for the provider's logout page.
                <form method="post" action="/auth/logout" class="mt-3">
                    <button
                        type="submit"
                        class="w-full rounded-md bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 dark:bg-slate-100 dark:text-slate-900 dark:hover:bg-slate-300"
                    >
                        "Sign out"
                    </button>
                </form>
            </div>
        </details>
    }
}

/// Three small forms, one per scheme, so it works as plain form posts too.
#[component]
pub fn ThemeSwitcher() -> impl IntoView {
    let theme = expect_context::<RwSignal<Theme>>();
    let action = ServerAction::<SetTheme>::new();
    Effect::new(move |_| {
        if let Some(Ok(chosen)) = action.value().get() {
            if let Some(t) = Theme::parse(&chosen) {
                theme.set(t);
            }
        }
    });
    let option = move |value: Theme, label: &'static str, icon: &'static str| {
        view! {
            <ActionForm action=action>
                <input type="hidden" name="theme" value=value.as_str() />
                <button
                    type="submit"
                    title=label
                    aria-label=label
                    aria-pressed=move || (theme.get() == value).to_string()
                    class="rounded px-1.5 py-1 text-sm text-slate-500 hover:bg-slate-100 aria-pressed:bg-slate-200 aria-pressed:text-slate-900 dark:text-slate-400 dark:hover:bg-slate-800 dark:aria-pressed:bg-slate-700 dark:aria-pressed:text-white"
                >
                    {icon}
                </button>
            </ActionForm>
        }
    };
    view! {
        <div role="group" aria-label="Colour scheme" class="flex items-center rounded-md border border-slate-200 p-0.5 dark:border-slate-700">
            {option(Theme::System, "Use system colour scheme", "◐")}
            {option(Theme::Light, "Use light colour scheme", "☀")}
            {option(Theme::Dark, "Use dark colour scheme", "☾")}
        </div>
    }
}
