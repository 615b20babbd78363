//! `/operator/shards/:cluster_id`: a shard's settings and tenants.

use crate::api::shards::{get_shard, ShardDetail};
use crate::ui::common::{Badge, Card, Loaded, PageHeader, Tone};
use crate::ui::shard_form::ShardForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn ShardDetailPage() -> impl IntoView {
    let params = use_params_map();
    let shard = Resource::new(
        move || params.read().get("cluster_id").unwrap_or_default(),
        get_shard,
    );
    view! { <Loaded resource=shard render=|s| view! { <ShardDetailView shard=s /> } /> }
}

#[component]
fn ShardDetailView(shard: ShardDetail) -> impl IntoView {
    let query = use_query_map();
    let saved = move || query.read().get("saved");
    let tone = match shard.status.as_str() {
        "active" => Tone::Good,
        "draining" => Tone::Warn,
        _ => Tone::Bad,
    };
    let login_server_url = shard.login_server_url.clone();
    let title = format!("Shard {}", shard.cluster_id);
    let heading = format!("{} · {}", shard.cluster_id, shard.name);
    let subtitle = format!(
        "Region {} · capacity {} devices",
        shard.region, shard.node_capacity
    );
    let status = shard.status.clone();
    let tenants = shard.tenants.clone();
    let tenants_title = format!("Tenants ({})", tenants.len());
    view! {
        <Title text=title />
        <PageHeader title=heading subtitle=subtitle />
        {move || saved().map(|v| view! {
            <p role="status" class="mb-6 rounded-md border border-emerald-300 bg-emerald-50 px-4 py-3 text-sm text-emerald-900 dark:border-emerald-800 dark:bg-emerald-950 dark:text-emerald-200">
                "Saved. Connection test passed: Headscale " {v} "."
            </p>
        })}
        <div class="grid gap-6 md:grid-cols-3">
            <Card title="Status">
                <Badge tone=tone text=status />
            </Card>
            <Card title=tenants_title>
                {if tenants.is_empty() {
                    view! { <p class="text-sm text-slate-500">"No tenant is placed here yet."</p> }.into_any()
                } else {
                    view! { <ul class="text-sm">{tenants.iter().map(|t| view! { <li>{t.clone()}</li> }).collect_view()}</ul> }.into_any()
                }}
            </Card>
            <Card title="Login server">
                <code class="break-all text-xs">{login_server_url}</code>
            </Card>
        </div>
        <div class="mt-6">
            <Card title="Settings">
                <ShardForm existing=Some(shard) />
            </Card>
        </div>
    }
}
