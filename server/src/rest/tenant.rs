//! `/api/v1/tenants/{slug}/…` and `/api/v1/bootstrap`: what a tenant's token reaches.
//! Each handler calls the server function the page uses (see `call`), so the rules —
//! who may do what, validation, quotas, the shard's confirmation, the audit record —
//! are the pages' rules.

use super::call::Caller;
use super::problem::Problem;
use app::api::{audit, devices, keys, policy, tenant, usage};
use app::auth::principal::CurrentPrincipal;
use app::domain::devices::DeviceQuery;
use app::error::AppError;
use app::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Ext = Extension<CurrentPrincipal>;
type ApiResult<T> = Result<T, Problem>;

pub fn routes() -> Router<AppState> {
    let t = |p: &str| format!("/api/v1/tenants/{{slug}}{p}");
    Router::new()
        .route("/api/v1/bootstrap", get(bootstrap))
        .route(&t("/devices"), get(list_devices))
        .route(&t("/devices/register"), post(register_device))
        .route(&t("/devices/{id}"), get(get_device).delete(delete_device))
        .route(&t("/devices/{id}/rename"), post(rename_device))
        .route(&t("/devices/{id}/expire"), post(expire_device))
        .route(&t("/devices/{id}/tags"), axum::routing::put(set_tags))
        .route(&t("/devices/{id}/routes"), post(set_route))
        .route(&t("/keys"), get(list_keys).post(create_key))
        .route(&t("/keys/{id}/expire"), post(expire_key))
        .route(&t("/policy"), get(get_policy).put(set_policy))
        .route(&t("/policy/validate"), post(validate_policy))
        .route(&t("/policy/preview"), post(preview_policy))
        .route(&t("/usage"), get(get_usage))
        .route(&t("/usage/export"), get(crate::billing::tenant_export))
        .route(&t("/audit"), get(get_audit))
}

// ------------------------------------------------------------------ bootstrap --

#[derive(Serialize)]
struct Bootstrap {
    tenant: String,
    display_name: String,
    cluster_id: String,
    login_server_url: String,
    shard_status: String,
}

/// What a client of the tenant needs to join its tailnet: which shard, where to log in.
async fn bootstrap(
    State(state): State<AppState>,
    Extension(cur): Ext,
) -> ApiResult<Json<Bootstrap>> {
    let caller = Caller::new(state, cur)?;
    let slug = caller.token_tenant()?;
    let o = caller
        .run(|| tenant::get_tenant_overview(slug.clone()))
        .await?;
    let shard = o.shard.ok_or_else(|| {
        Problem::from(AppError::Conflict(
            "This tenant is not placed on a shard yet; the service operator places it.".into(),
        ))
    })?;
    Ok(Json(Bootstrap {
        tenant: o.slug,
        display_name: o.display_name,
        cluster_id: shard.cluster_id,
        login_server_url: shard.login_server_url,
        shard_status: shard.status,
    }))
}

// -------------------------------------------------------------------- devices --

#[derive(Serialize)]
struct DeviceList {
    total: i64,
    page: u32,
    page_size: u32,
    devices: Vec<devices::DeviceRow>,
}

async fn list_devices(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<DeviceList>> {
    let caller = Caller::new(state, cur)?;
    let query = DeviceQuery::from_params(|k| params.get(k).map(String::as_str));
    let view = caller
        .run(|| devices::list_devices(slug.clone(), query))
        .await?;
    Ok(Json(DeviceList {
        total: view.page.total,
        page: view.page.page,
        page_size: view.page.page_size,
        devices: view.page.devices,
    }))
}

async fn device(caller: &Caller, slug: &str, id: i64) -> ApiResult<devices::DeviceRow> {
    Ok(caller
        .run(|| devices::get_device(slug.to_string(), id))
        .await?
        .device)
}

async fn get_device(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
) -> ApiResult<Json<devices::DeviceRow>> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(device(&caller, &slug, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename_device(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
    Json(body): Json<Rename>,
) -> ApiResult<Json<devices::DeviceRow>> {
    let caller = Caller::new(state, cur)?;
    caller
        .run(|| devices::rename_device(slug.clone(), id, body.name))
        .await?;
    Ok(Json(device(&caller, &slug, id).await?))
}

async fn expire_device(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
) -> ApiResult<Json<devices::DeviceRow>> {
    let caller = Caller::new(state, cur)?;
    caller
        .run(|| devices::expire_device(slug.clone(), id))
        .await?;
    Ok(Json(device(&caller, &slug, id).await?))
}

async fn delete_device(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let caller = Caller::new(state, cur)?;
    // The page asks a person to type the name; an API call names the device by its id.
    let name = device(&caller, &slug, id).await?.name;
    caller
        .run(|| devices::delete_device(slug.clone(), id, name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tags {
    tags: Vec<String>,
}

async fn set_tags(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
    Json(body): Json<Tags>,
) -> ApiResult<Json<devices::DeviceRow>> {
    let caller = Caller::new(state, cur)?;
    caller
        .run(|| devices::set_device_tags(slug.clone(), id, body.tags.join(",")))
        .await?;
    Ok(Json(device(&caller, &slug, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteChange {
    route: String,
    approve: bool,
}

async fn set_route(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
    Json(body): Json<RouteChange>,
) -> ApiResult<Json<devices::DeviceRow>> {
    let caller = Caller::new(state, cur)?;
    caller
        .run(|| devices::set_device_route(slug.clone(), id, body.route, body.approve))
        .await?;
    Ok(Json(device(&caller, &slug, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    registration: String,
    #[serde(default)]
    owner: String,
}

async fn register_device(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Json(body): Json<Register>,
) -> ApiResult<Response> {
    let caller = Caller::new(state, cur)?;
    let id = caller
        .run(|| devices::register_device(slug.clone(), body.registration, body.owner))
        .await?;
    Ok((StatusCode::CREATED, Json(device(&caller, &slug, id).await?)).into_response())
}

// ----------------------------------------------------------------------- keys --

#[derive(Serialize)]
struct KeyList {
    keys: Vec<keys::KeyRow>,
}

async fn list_keys(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let caller = Caller::new(state, cur)?;
    let view = caller.run(|| keys::list_keys(slug.clone())).await?;
    Ok(Json(KeyList { keys: view.keys }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    reusable: bool,
    #[serde(default)]
    ephemeral: bool,
    expiry_days: u32,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    description: String,
    /// A member's shard user, `me` (default) or `tags` for a tags-only key.
    #[serde(default)]
    owner: String,
}

async fn create_key(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Json(body): Json<NewKey>,
) -> ApiResult<Response> {
    let caller = Caller::new(state, cur)?;
    let on = |b: bool| b.then(|| "on".to_string());
    let minted = caller
        .run(|| {
            keys::create_key(
                slug.clone(),
                on(body.reusable),
                on(body.ephemeral),
                body.expiry_days.to_string(),
                body.tags.join(","),
                body.description,
                body.owner,
            )
        })
        .await?;
    Ok((StatusCode::CREATED, Json(minted)).into_response())
}

async fn expire_key(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path((slug, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let caller = Caller::new(state, cur)?;
    caller.run(|| keys::expire_key(slug.clone(), id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --------------------------------------------------------------------- policy --

#[derive(Serialize)]
struct PolicyDoc {
    /// The newest saved revision (`null`: none yet, the default policy applies).
    revision: Option<i32>,
    text: String,
    /// The revision live on the shard (`null`: the default policy; absent: unknown).
    live_revision: Option<Option<i32>>,
    pushed_at: Option<String>,
    pending_since: Option<String>,
    push_failed: bool,
    history: Vec<policy::RevisionSummary>,
}

async fn get_policy(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
) -> ApiResult<Json<PolicyDoc>> {
    let caller = Caller::new(state, cur)?;
    let view = caller.run(|| policy::get_policy(slug.clone())).await?;
    // The page may show its maker's unsaved draft; the API shows what is saved.
    let text = match (view.draft, view.revision) {
        (false, _) => view.text,
        (true, Some(n)) => {
            caller
                .run(|| policy::get_policy_revision(slug.clone(), n))
                .await?
                .0
                .body
        }
        (true, None) => app::domain::policy::compile::DEFAULT_POLICY_TEXT.to_string(),
    };
    Ok(Json(PolicyDoc {
        revision: view.revision,
        text,
        live_revision: view.live.live_revision,
        pushed_at: view.live.pushed_at,
        pending_since: view.live.pending_since,
        push_failed: view.live.push_failed,
        history: view.history,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyText {
    text: String,
}

#[derive(Serialize)]
struct PolicyValidation {
    /// No errors and every test passes: `PUT` would save it.
    valid: bool,
    errors: Vec<app::domain::policy::Problem>,
    tests: Vec<app::domain::policy::eval::TestOutcome>,
    /// Against the policy live on the shard.
    diff: Vec<app::domain::policy::diff::DiffLine>,
}

async fn validate_policy(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Json(body): Json<PolicyText>,
) -> ApiResult<Json<PolicyValidation>> {
    let caller = Caller::new(state, cur)?;
    let check = caller
        .run(|| policy::check_policy(slug.clone(), body.text, String::new()))
        .await?;
    Ok(Json(PolicyValidation {
        valid: check.validation.saveable(),
        errors: check.validation.errors,
        tests: check.validation.tests,
        diff: check.diff,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPolicy {
    text: String,
    #[serde(default)]
    comment: String,
    /// The revision this text was based on: refused (409) if another was saved since.
    based_on: Option<i32>,
}

#[derive(Serialize)]
struct Saved {
    revision: i32,
}

async fn set_policy(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Json(body): Json<SetPolicy>,
) -> ApiResult<Json<Saved>> {
    let caller = Caller::new(state, cur)?;
    // A refused text comes back with its errors and failed tests, line by line.
    let check = caller
        .run(|| policy::check_policy(slug.clone(), body.text.clone(), String::new()))
        .await?;
    if !check.validation.saveable() {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-policy",
            "The policy was not saved: it has errors or failing tests (see `errors`, `tests`).",
        );
        p.extensions.insert(
            "errors".into(),
            serde_json::to_value(&check.validation.errors).unwrap_or_default(),
        );
        p.extensions.insert(
            "tests".into(),
            serde_json::to_value(&check.validation.tests).unwrap_or_default(),
        );
        return Err(p);
    }
    let based_on = body.based_on.map(|n| n.to_string()).unwrap_or_default();
    let revision = caller
        .run(|| policy::save_policy(slug.clone(), body.text, body.comment, based_on))
        .await?;
    Ok(Json(Saved { revision }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewAsk {
    #[serde(default)]
    text: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    target: String,
}

async fn preview_policy(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Json(body): Json<PreviewAsk>,
) -> ApiResult<Json<policy::Preview>> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller
            .run(|| policy::preview_policy(slug.clone(), body.text, body.source, body.target))
            .await?,
    ))
}

// ---------------------------------------------------------------- usage, audit --

#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

async fn get_usage(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Json<usage::TenantUsage>> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller
            .run(|| usage::get_tenant_usage(slug.clone(), q.month))
            .await?,
    ))
}

/// The audit log's filters (all optional), as the page's.
#[derive(Deserialize)]
pub(super) struct AuditAsk {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub tenant: Option<String>,
    pub before: Option<i64>,
}

async fn get_audit(
    State(state): State<AppState>,
    Extension(cur): Ext,
    Path(slug): Path<String>,
    Query(q): Query<AuditAsk>,
) -> ApiResult<Json<audit::AuditPage>> {
    let caller = Caller::new(state, cur)?;
    Ok(Json(
        caller
            .run(|| {
                audit::get_tenant_audit(
                    slug.clone(),
                    q.action,
                    q.actor,
                    q.target,
                    q.from,
                    q.until,
                    q.before,
                )
            })
            .await?,
    ))
}
