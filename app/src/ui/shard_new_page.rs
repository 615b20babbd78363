//! `/operator/shards/new`.

use crate::ui::common::{Card, PageHeader};
use crate::ui::shard_form::ShardForm;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ShardNewPage() -> impl IntoView {
    view! {
        <Title text="Add shard" />
        <PageHeader title="Add shard" subtitle="Register a Headscale server. The portal tests the connection and the API key before saving." />
        <Card><ShardForm existing=None /></Card>
    }
}
