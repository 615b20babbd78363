//! The add/edit form of a shard (operator). A plain ActionForm: works without JavaScript,
//! and errors come back into the form either way.

use crate::api::shards::{SaveShard, ShardSettings};
use crate::ui::common::{FormError, INPUT};
use leptos::prelude::*;

#[component]
fn Field(
    #[prop(into)] id: String,
    #[prop(into)] label: String,
    #[prop(into)] help: String,
    children: Children,
) -> impl IntoView {
    view! {
        <div>
            <label for=id.clone() class="block text-sm font-medium">{label}</label>
            {children()}
            <p id=format!("{id}-help") class="mt-1 text-xs text-slate-500 dark:text-slate-400">{help}</p>
        </div>
    }
}

#[component]
pub fn ShardForm(existing: Option<ShardSettings>) -> impl IntoView {
    let action = ServerAction::<SaveShard>::new();
    let editing = existing.is_some();
    let e = existing.unwrap_or(ShardSettings {
        cluster_id: String::new(),
        name: String::new(),
        region: "local".into(),
        login_server_url: String::new(),
        api_url: String::new(),
        node_capacity: 500,
    });
    let error = move || action.value().get().and_then(|r| r.err());
    view! {
        <ActionForm action=action attr:class="space-y-5" attr:aria-label=if editing { "Edit shard" } else { "Add shard" }>
            <input type="hidden" name="editing" value=if editing { e.cluster_id.clone() } else { String::new() } />
            <FormError error=Signal::derive(error) />
            <div class="grid gap-5 md:grid-cols-2">
                <Field id="cluster_id" label="Cluster ID" help="Stable name of the shard, e.g. hs-eu-1. Cannot change later.">
                    <input id="cluster_id" name="cluster_id" required class=INPUT value=e.cluster_id.clone() disabled=editing aria-describedby="cluster_id-help" />
                </Field>
                <Field id="name" label="Name" help="Shown to operators.">
                    <input id="name" name="name" required class=INPUT value=e.name.clone() aria-describedby="name-help" />
                </Field>
                <Field id="region" label="Region" help="Tenants are placed in their region first.">
                    <input id="region" name="region" required class=INPUT value=e.region.clone() aria-describedby="region-help" />
                </Field>
                <Field id="node_capacity" label="Node capacity" help="Devices this shard may hold. Headscale is comfortable with a few hundred.">
                    <input id="node_capacity" name="node_capacity" type="number" min="1" required class=INPUT value=e.node_capacity.to_string() aria-describedby="node_capacity-help" />
                </Field>
                <Field id="login_server_url" label="Login server URL" help="What clients pass to tailscale up --login-server.">
                    <input id="login_server_url" name="login_server_url" type="url" required class=INPUT value=e.login_server_url.clone() aria-describedby="login_server_url-help" />
                </Field>
                <Field id="api_url" label="API URL" help="Where the portal reaches Headscale's REST API (/api/v1).">
                    <input id="api_url" name="api_url" type="url" required class=INPUT value=e.api_url.clone() aria-describedby="api_url-help" />
                </Field>
                <Field id="api_key" label="API key" help=if editing { "Write-only. Leave empty to keep the stored key." } else { "From headscale apikeys create. Stored encrypted; never shown again." }>
                    <input id="api_key" name="api_key" type="password" autocomplete="off" required=!editing class=INPUT aria-describedby="api_key-help" />
                </Field>
            </div>
            <div class="flex items-center gap-3">
                <button type="submit" class="btn-primary">
                    {if editing { "Test connection and save" } else { "Test connection and add shard" }}
                </button>
                <a href="/operator" class="btn-secondary">"Cancel"</a>
                <span class="text-sm text-slate-500" aria-live="polite">
                    {move || action.pending().get().then_some("Testing the connection…")}
                </span>
            </div>
        </ActionForm>
    }
}
