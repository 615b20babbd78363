//! `/`: sends people where they belong.

use crate::api::viewer::Viewer;
use crate::ui::app::ViewerResource;
use crate::ui::common::{ErrorPanel, PageHeader};
use leptos::prelude::*;
use leptos_router::components::Redirect;

#[component]
pub fn HomePage() -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    view! {
        <Transition fallback=crate::ui::common::Loading>
            {move || Suspend::new(async move {
                match viewer.await {
                    Err(e) => view! { <ErrorPanel error=e /> }.into_any(),
                    Ok(None) => view! { <Redirect path="/login" /> }.into_any(),
                    Ok(Some(v)) => home_for(v),
                }
            })}
        </Transition>
    }
}

fn home_for(viewer: Viewer) -> AnyView {
    if let Some(first) = viewer.memberships.first() {
        let path = format!("/t/{}", first.slug);
        return view! { <Redirect path=path /> }.into_any();
    }
    if viewer.is_operator {
        return view! { <Redirect path="/operator" /> }.into_any();
    }
    view! {
        <PageHeader title=format!("Welcome, {}", viewer.display_name) />
        <div class="rounded-lg border border-slate-200 bg-white p-6 text-sm dark:border-slate-800 dark:bg-slate-900">
            <p>"You are signed in, but you are not a member of any tenant yet."</p>
            <p class="mt-2 text-slate-600 dark:text-slate-400">
                "Ask your organisation's administrator to add you, or to add you to a "
                <code>"tenant:<slug>:<role>"</code>
                " group in your identity provider. Then sign in again."
            </p>
        </div>
    }
    .into_any()
}
