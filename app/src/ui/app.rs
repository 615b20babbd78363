//! The HTML shell and the router.

use crate::api::viewer::{get_viewer, Viewer};
use crate::domain::theme::Theme;
use crate::error::AppError;
use crate::ui::audit_page::{OperatorAuditPage, TenantAuditPage};
use crate::ui::device_page::DevicePage;
use crate::ui::devices_page::DevicesPage;
use crate::ui::home_page::HomePage;
use crate::ui::keys_page::KeysPage;
use crate::ui::layout::Layout;
use crate::ui::login_page::{LoginPage, SignedOutPage};
use crate::ui::members_page::MembersPage;
use crate::ui::not_found_page::NotFoundPage;
use crate::ui::operator_page::OperatorPage;
use crate::ui::operator_usage_page::OperatorUsagePage;
use crate::ui::policy_page::PolicyPage;
use crate::ui::quotas_page::QuotasPage;
use crate::ui::shard_detail_page::ShardDetailPage;
use crate::ui::shard_new_page::ShardNewPage;
use crate::ui::tenant_admin_page::TenantAdminPage;
use crate::ui::tenant_dashboard_page::TenantDashboardPage;
use crate::ui::tenant_new_page::TenantNewPage;
use crate::ui::tokens_page::{OperatorTokensPage, TokensPage};
use crate::ui::usage_page::UsagePage;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Html, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The whole document. Rendered on the server only; `App` inside it is hydrated.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App />
            </body>
        </html>
    }
}

/// Uses the nonce the server's security middleware generated for this response (and put
/// into its Content-Security-Policy header), so Leptos' inline scripts carry the very
/// nonce the header allows, whichever way the page is rendered.
#[cfg(feature = "ssr")]
fn set_security_policy() {
    if let Some(nonce) = use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<crate::state::CspNonce>().cloned())
    {
        provide_context(leptos::nonce::Nonce::from_value(nonce.0));
    }
}

/// The viewer resource, shared by the navigation and the pages.
pub type ViewerResource = Resource<Result<Option<Viewer>, AppError>>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let theme = RwSignal::new(initial_theme());
    provide_context(theme);
    let viewer: ViewerResource = Resource::new(|| (), |_| get_viewer());
    provide_context(viewer);

    view! {
        <Html {..} class=move || theme.get().as_str() />
        <Stylesheet id="portal" href="/pkg/portal.css" />
        <Title formatter=|text: String| {
            if text.is_empty() { "Headscale Portal".to_string() } else { format!("{text} · Headscale Portal") }
        } />
        <Router>
            <Layout>
                <Routes fallback=NotFoundPage>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/signed-out") view=SignedOutPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug") view=TenantDashboardPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/devices") view=DevicesPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/devices/:node_id") view=DevicePage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/keys") view=KeysPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/policy") view=PolicyPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/usage") view=UsagePage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/audit") view=TenantAuditPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/members") view=MembersPage ssr=SsrMode::Async />
                    <Route path=path!("/t/:slug/tokens") view=TokensPage ssr=SsrMode::Async />
                    <Route path=path!("/operator") view=OperatorPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/shards/new") view=ShardNewPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/quotas") view=QuotasPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/usage") view=OperatorUsagePage ssr=SsrMode::Async />
                    <Route path=path!("/operator/audit") view=OperatorAuditPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/tokens") view=OperatorTokensPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/tenants/new") view=TenantNewPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/shards/:cluster_id") view=ShardDetailPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/tenants/:slug") view=TenantAdminPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}

/// The scheme the server rendered: from the cookie on the server, from the `<html>`
/// class in the browser (so hydration agrees with the server).
fn initial_theme() -> Theme {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|p| {
                p.headers
                    .get(http::header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .map(Theme::from_cookie_header)
            })
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        document()
            .document_element()
            .and_then(|e| Theme::parse(e.class_name().trim()))
            .unwrap_or_default()
    }
}
