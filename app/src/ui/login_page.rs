//! `/login` and `/signed-out`: the only pages without a session.

use crate::ui::app::ViewerResource;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;

/// Only same-site paths may be a return target (no open redirect).
pub fn safe_return_path(next: Option<String>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/".to_string(),
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let viewer = expect_context::<ViewerResource>();
    let next = move || safe_return_path(query.read().get("next"));
    let error = move || query.read().get("error");
    let login_href = move || url_escape("/auth/login?next=", &next());
    view! {
        <Title text="Sign in" />
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match viewer.await {
                    Ok(Some(_)) => view! { <Redirect path=next() /> }.into_any(),
                    _ => ().into_any(),
                }
            })}
        </Transition>
        <div class="mx-auto mt-16 max-w-sm rounded-xl border border-slate-200 bg-white p-8 text-center shadow-sm dark:border-slate-800 dark:bg-slate-900">
            <div aria-hidden="true" class="mx-auto grid h-12 w-12 place-items-center rounded-lg bg-indigo-600 text-xl font-bold text-white">"H"</div>
            <h1 class="mt-4 text-xl font-semibold tracking-tight">"Sign in to Headscale Portal"</h1>
            <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">
                "Use your organisation's single sign-on account."
            </p>
            {move || error().map(|e| view! {
                <p role="alert" class="mt-4 rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-700 dark:bg-rose-950 dark:text-rose-300">
                    {login_error_text(&e)}
                </p>
            })}
            <a rel="external" href=login_href class="btn-primary mt-6 w-full">"Sign in with SSO"</a>
        </div>
    }
}

fn url_escape(prefix: &str, path: &str) -> String {
    let mut out = String::from(prefix);
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The callback reports failures by a short code; the text lives here.
pub fn login_error_text(code: &str) -> &'static str {
    match code {
        "expired" => "The sign-in took too long or was already used. Please try again.",
        "denied" => "The identity provider did not sign you in.",
        "provider" => "The identity provider could not be reached. Please try again in a moment.",
        _ => "Sign-in could not be completed. Please try again.",
    }
}

#[component]
pub fn SignedOutPage() -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    view! {
        <Title text="Signed out" />
        // Someone who is (again) signed in has nothing to read here.
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match viewer.await {
                    Ok(Some(_)) => view! { <Redirect path="/" /> }.into_any(),
                    _ => ().into_any(),
                }
            })}
        </Transition>
        <div class="mx-auto mt-16 max-w-sm rounded-xl border border-slate-200 bg-white p-8 text-center shadow-sm dark:border-slate-800 dark:bg-slate-900">
            <h1 class="text-xl font-semibold tracking-tight">"You are signed out"</h1>
            <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">
                "Your portal session has ended."
            </p>
            <a rel="external" href="/auth/login" class="btn-primary mt-6 w-full">"Sign in again"</a>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_return_targets() {
        assert_eq!(safe_return_path(Some("/t/acme".into())), "/t/acme");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "t/acme",
        ] {
            assert_eq!(safe_return_path(Some(bad.into())), "/", "{bad}");
        }
        assert_eq!(safe_return_path(None), "/");
    }

    #[test]
    fn return_paths_are_escaped_into_the_login_link() {
        assert_eq!(
            url_escape("/auth/login?next=", "/t/a b?x=1&y"),
            "/auth/login?next=/t/a%20b%3Fx%3D1%26y"
        );
    }
}
