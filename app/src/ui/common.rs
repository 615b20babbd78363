//! Shared widgets: cards, badges, page headings and the error panel.

use crate::error::AppError;
use leptos::prelude::*;

#[component]
pub fn PageHeader(
    #[prop(into)] title: String,
    #[prop(optional, into)] subtitle: Option<String>,
) -> impl IntoView {
    view! {
        <div class="mb-6">
            <h1 class="text-2xl font-semibold tracking-tight">{title}</h1>
            {subtitle.map(|s| view! { <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">{s}</p> })}
        </div>
    }
}

#[component]
pub fn Card(#[prop(optional, into)] title: Option<String>, children: Children) -> impl IntoView {
    view! {
        <section class="rounded-lg border border-slate-200 bg-white p-5 shadow-sm dark:border-slate-800 dark:bg-slate-900">
            {title.map(|t| view! { <h2 class="mb-3 text-sm font-semibold uppercase tracking-wide text-slate-500 dark:text-slate-400">{t}</h2> })}
            {children()}
        </section>
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Neutral,
    Good,
    Warn,
    Bad,
    Info,
}

#[component]
pub fn Badge(tone: Tone, #[prop(into)] text: String) -> impl IntoView {
    let class = match tone {
        Tone::Neutral => "bg-slate-100 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
        Tone::Good => "bg-emerald-50 text-emerald-700 dark:bg-emerald-950 dark:text-emerald-300",
        Tone::Warn => "bg-amber-50 text-amber-800 dark:bg-amber-950 dark:text-amber-300",
        Tone::Bad => "bg-rose-50 text-rose-700 dark:bg-rose-950 dark:text-rose-300",
        Tone::Info => "bg-indigo-50 text-indigo-700 dark:bg-indigo-950 dark:text-indigo-300",
    };
    view! {
        <span class=format!("inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium {class}")>
            {text}
        </span>
    }
}

/// A friendly page for an error. The HTTP status was already set by the server function.
#[component]
pub fn ErrorPanel(error: AppError) -> impl IntoView {
    let (code, heading, body) = match &error {
        AppError::Forbidden => (
            "403",
            "You don't have access to this page",
            "Your account is signed in, but your role does not include this area. Ask an administrator if you need it.".to_string(),
        ),
        AppError::NotFound(what) => (
            "404",
            "Not found",
            format!("{what} does not exist, or you are not a member of it."),
        ),
        AppError::Unauthenticated => (
            "401",
            "Please sign in",
            "Your session has ended. Sign in again to continue.".to_string(),
        ),
        AppError::Unavailable(msg) => ("503", "Temporarily unavailable", msg.clone()),
        AppError::Invalid(msg) => ("422", "Check the address", msg.clone()),
        AppError::Conflict(msg) => ("409", "That cannot be done now", msg.clone()),
        other => ("500", "Something went wrong", other.to_string()),
    };
    let signed_out = matches!(error, AppError::Unauthenticated);
    view! {
        <div role="alert" class="mx-auto max-w-xl rounded-lg border border-slate-200 bg-white p-8 text-center shadow-sm dark:border-slate-800 dark:bg-slate-900">
            <p class="text-sm font-semibold text-indigo-600 dark:text-indigo-400">{code}</p>
            <h1 class="mt-2 text-2xl font-semibold tracking-tight">{heading}</h1>
            <p class="mt-3 text-sm text-slate-600 dark:text-slate-400">{body}</p>
            <div class="mt-6 flex justify-center gap-3">
                {if signed_out {
                    view! { <a rel="external" href="/auth/login" class="btn-primary">"Sign in"</a> }.into_any()
                } else {
                    view! { <a href="/" class="btn-secondary">"Go to your home page"</a> }.into_any()
                }}
            </div>
        </div>
    }
}

/// `2026-11-22T10:00:00.123Z` → `2026-11-22 10:00:00 UTC`.
pub fn utc(t: &str) -> String {
    format!(
        "{} UTC",
        t.replace('T', " ").chars().take(19).collect::<String>()
    )
}

/// `1 member`, `3 members`: a count with its noun, plural by an `s`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A moment in a table cell: `2026-11-22 10:00` on one line (the column header says
/// UTC), the exact second in the tooltip and in `datetime`.
#[component]
pub fn When(#[prop(into)] at: String) -> impl IntoView {
    let minute: String = at.replace('T', " ").chars().take(16).collect();
    view! {
        <time datetime=at.clone() title=utc(&at) class="whitespace-nowrap tabular-nums">{minute}</time>
    }
}

/// The look of a text input or select in a form.
pub const INPUT: &str = "mt-1 block w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-1 focus:ring-indigo-500 dark:border-slate-700 dark:bg-slate-950";

/// The error of a form's last submission, if any. With JavaScript off the error comes
/// back in the URL and the server action reads it from there, so this shows either way.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().map(|err| {
            view! {
                <p role="alert" class="rounded-md border border-rose-300 bg-rose-50 px-4 py-3 text-sm text-rose-800 dark:border-rose-800 dark:bg-rose-950 dark:text-rose-200">
                    {err.to_string()}
                </p>
            }
        })
    }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="text-sm text-slate-500" aria-live="polite">"Loading…"</p> }
}

/// Shows a server-function resource: a loading line, then `render` of its value or the
/// error page for its error (with the HTTP status the server function set).
#[component]
pub fn Loaded<T, F, V>(resource: Resource<Result<T, AppError>>, render: F) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: Fn(T) -> V + Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    view! {
        <Transition fallback=Loading>
            {move || {
                let render = render.clone();
                Suspend::new(async move {
                    match resource.await {
                        Ok(value) => render(value).into_any(),
                        Err(e) => {
                            view! {
                                <leptos_meta::Title text="Error" />
                                <ErrorPanel error=e />
                            }
                                .into_any()
                        }
                    }
                })
            }}
        </Transition>
    }
}

/// A shard's health from the sync, with version and latency, and the last error.
#[component]
pub fn HealthBadge(
    health: String,
    version: Option<String>,
    latency_ms: Option<i32>,
    error: Option<String>,
) -> impl IntoView {
    let (tone, label) = match health.as_str() {
        "healthy" => (Tone::Good, "healthy"),
        "unhealthy" => (Tone::Bad, "unhealthy"),
        _ => (Tone::Neutral, "not synced yet"),
    };
    let detail = match (&version, latency_ms) {
        (Some(v), Some(ms)) => format!("v{} · {ms} ms", v.trim_start_matches('v')),
        (Some(v), None) => format!("v{}", v.trim_start_matches('v')),
        _ => String::new(),
    };
    view! {
        <Badge tone=tone text=label />
        <div class="text-xs text-slate-500 dark:text-slate-400">{detail}</div>
        {error.map(|e| view! { <div class="max-w-xs text-xs text-rose-700 dark:text-rose-300">{e}</div> })}
    }
}

/// Devices on the shard against its capacity, as a bar (warning from 80 %).
#[component]
pub fn CapacityBar(used: i64, capacity: i32, orphans: i64) -> impl IntoView {
    let cap = i64::from(capacity.max(1));
    let pct = (used * 100 / cap).clamp(0, 100);
    let colour = if pct >= 95 {
        "fill-rose-500"
    } else if pct >= 80 {
        "fill-amber-500"
    } else {
        "fill-emerald-500"
    };
    view! {
        <div class="w-40">
            <div class="text-xs">{format!("{used} / {capacity}")}{(orphans > 0).then(|| format!(" · {orphans} orphaned"))}</div>
            // An SVG bar: its width is an attribute, which the strict CSP (no inline
            // styles) allows.
            <svg
                class="mt-1 h-1.5 w-full"
                viewBox="0 0 100 2"
                preserveAspectRatio="none"
                role="meter"
                aria-label="Devices used of capacity"
                aria-valuemin="0"
                aria-valuemax=capacity.to_string()
                aria-valuenow=used.to_string()
            >
                <rect width="100" height="2" rx="1" class="fill-slate-200 dark:fill-slate-700" />
                <rect width=pct.to_string() height="2" rx="1" class=colour />
            </svg>
        </div>
    }
}

/// True once the page is hydrated (never during server rendering): for controls that
/// only work with JavaScript, so the page without it shows none of them.
pub fn hydrated() -> ReadSignal<bool> {
    let (on, set_on) = signal(false);
    Effect::new(move |_| set_on.set(true));
    on
}

/// A small "Copy" button for `text`, shown only with JavaScript (the text itself stays
/// selectable without).
#[component]
pub fn CopyButton(#[prop(into)] text: String, #[prop(into)] label: String) -> impl IntoView {
    let ready = hydrated();
    let (copied, set_copied) = signal(false);
    let on_click = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if let Some(window) = web_sys::window() {
                let _ = window.navigator().clipboard().write_text(&text);
                set_copied.set(true);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (&text, set_copied);
        }
    };
    view! {
        <Show when=move || ready.get()>
            <button
                type="button"
                class="ml-1 rounded px-1 text-xs text-indigo-700 hover:bg-indigo-50 dark:text-indigo-300 dark:hover:bg-slate-800"
                aria-label=label.clone()
                on:click=on_click.clone()
            >
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </Show>
    }
}

/// A green "done" banner (a change went through).
#[component]
pub fn Notice(#[prop(into)] text: String) -> impl IntoView {
    view! {
        <p role="status" class="mb-6 rounded-md border border-emerald-300 bg-emerald-50 px-4 py-3 text-sm text-emerald-900 dark:border-emerald-800 dark:bg-emerald-950 dark:text-emerald-200">{text}</p>
    }
}

/// A tenant's status: active or suspended.
#[component]
pub fn TenantStatus(suspended: bool) -> impl IntoView {
    if suspended {
        view! { <Badge tone=Tone::Bad text="suspended" /> }
    } else {
        view! { <Badge tone=Tone::Good text="active" /> }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_says_its_noun_in_the_singular_only_for_one() {
        assert_eq!(count(0, "member"), "0 members");
        assert_eq!(count(1, "open invitation"), "1 open invitation");
        assert_eq!(count(12, "problem"), "12 problems");
    }

    #[test]
    fn utc_times_keep_the_second() {
        assert_eq!(utc("2026-11-22T10:00:59.123Z"), "2026-11-22 10:00:59 UTC");
    }
}
