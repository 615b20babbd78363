//! `/operator/tenants/new`: create a tenant; it is placed on a shard at once.

use crate::api::tenants::CreateTenant;
use crate::ui::common::{Card, FormError, PageHeader, INPUT};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TenantNewPage() -> impl IntoView {
    let action = ServerAction::<CreateTenant>::new();
    let error = move || action.value().get().and_then(|r| r.err());
    view! {
        <Title text="Create tenant" />
        <PageHeader title="Create tenant" subtitle="The tenant gets an immutable short code and is placed on a shard by plan, region and free capacity (docs/placement.md)." />
        <Card>
            <ActionForm action=action attr:class="space-y-5" attr:aria-label="Create tenant">
                <FormError error=Signal::derive(error) />
                <div class="grid gap-5 md:grid-cols-2">
                    <div>
                        <label for="slug" class="block text-sm font-medium">"Slug"</label>
                        <input id="slug" name="slug" required class=INPUT placeholder="acme" />
                        <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">"Used in URLs; lowercase letters, digits and hyphens. Can be renamed later."</p>
                    </div>
                    <div>
                        <label for="display_name" class="block text-sm font-medium">"Display name"</label>
                        <input id="display_name" name="display_name" required class=INPUT placeholder="Acme Corp" />
                    </div>
                    <div>
                        <label for="plan" class="block text-sm font-medium">"Plan"</label>
                        <select id="plan" name="plan" class=INPUT>
                            <option value="starter">"starter"</option>
                            <option value="business">"business"</option>
                            <option value="enterprise">"enterprise (dedicated shard)"</option>
                        </select>
                    </div>
                    <div>
                        <label for="region" class="block text-sm font-medium">"Region"</label>
                        <input id="region" name="region" required class=INPUT value="local" />
                    </div>
                    <div>
                        <label for="device_quota" class="block text-sm font-medium">"Device quota"</label>
                        <input id="device_quota" name="device_quota" type="number" min="1" required class=INPUT value="100" />
                        <p class="mt-1 text-xs text-slate-500 dark:text-slate-400">"Reserved on the shard at placement."</p>
                    </div>
                    <div>
                        <label for="key_quota" class="block text-sm font-medium">"Active key quota"</label>
                        <input id="key_quota" name="key_quota" type="number" min="0" required class=INPUT value="20" />
                    </div>
                </div>
                <label class="flex items-center gap-2 text-sm">
                    <input type="checkbox" name="dedicated" value="on" />
                    "Needs a dedicated shard (an empty shard reserved for this tenant)"
                </label>
                <div class="flex items-center gap-3">
                    <button type="submit" class="btn-primary">"Create and place tenant"</button>
                    <a href="/operator" class="btn-secondary">"Cancel"</a>
                </div>
            </ActionForm>
        </Card>
    }
}
