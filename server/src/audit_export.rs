//! The audit log as CSV, with the page's filters:
//! `GET /t/{slug}/audit/export?action=&actor=&target=&from=&until=` (the tenant's admins
//! and auditors) and `GET /operator/audit/export?…&tenant=` (operators).
//!
//! Read in pages of 1,000 events by id (keyset), each in its own short transaction, and
//! streamed: memory stays constant however long the log.

use app::api::audit::{parse_filter, to_event, AuditQuery};
use app::auth::principal::CurrentPrincipal;
use app::data::audit::{all_events, tenant_events, AuditFilter};
use app::domain::csv::{push_raw, push_text};
use app::domain::role::Permission;
use app::error::AppError;
use app::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;

/// The export's columns, in order.
pub const HEADER: &str = "id,at,tenant,actor,action,target,detail\r\n";
const BATCH: i64 = 1_000;

enum Who {
    Tenant(app::auth::TenantScope),
    Operator(app::auth::OperatorScope),
}

fn record(out: &mut String, e: &app::api::audit::AuditEvent) {
    push_raw(out, &e.id.to_string());
    out.push(',');
    push_raw(out, &e.at);
    for text in [
        e.tenant.as_deref().unwrap_or(""),
        &e.actor,
        &e.action,
        &e.target,
        &e.detail,
    ] {
        out.push(',');
        push_text(out, text);
    }
    out.push_str("\r\n");
}

fn stream(state: &AppState, who: Who, filter: AuditFilter) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let pool = state.pool.clone();
    tokio::spawn(async move {
        let mut filter = filter;
        let mut first = true;
        loop {
            let rows = match &who {
                Who::Tenant(s) => tenant_events(&pool, s, &filter, BATCH).await,
                Who::Operator(s) => all_events(&pool, s, &filter, BATCH).await,
            };
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed midway");
                    let _ = sender
                        .send(Err(std::io::Error::other("the export failed midway")))
                        .await;
                    return;
                }
            };
            let mut chunk = String::with_capacity(256 * rows.len() + HEADER.len());
            if first {
                chunk.push_str(HEADER);
                first = false;
            }
            let done = (rows.len() as i64) < BATCH;
            filter.before_id = rows.last().map(|r| r.id);
            for r in rows {
                record(&mut chunk, &to_event(r));
            }
            if sender.send(Ok(chunk)).await.is_err() || done {
                return;
            }
        }
    });
    crate::billing::channel_body(receiver)
}

fn csv_response(name: &str, body: Body) -> Response {
    (StatusCode::OK, crate::billing::csv_headers(name), body).into_response()
}

pub async fn tenant_export(
    State(state): State<AppState>,
    Extension(current): Extension<CurrentPrincipal>,
    Path(slug): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let go = || {
        let principal = current.0.clone().ok_or(AppError::Unauthenticated)?;
        let scope = principal.tenant_scope(&slug, Permission::ViewAudit)?;
        let filter = parse_filter(&AuditQuery {
            tenant: None,
            ..q.clone()
        })?;
        Ok::<_, AppError>(csv_response(
            &format!("audit-{slug}.csv"),
            stream(&state, Who::Tenant(scope), filter),
        ))
    };
    go().unwrap_or_else(crate::billing::error_response)
}

pub async fn operator_export(
    State(state): State<AppState>,
    Extension(current): Extension<CurrentPrincipal>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let go = || {
        let principal = current.0.clone().ok_or(AppError::Unauthenticated)?;
        let scope = principal.operator_scope()?;
        let filter = parse_filter(&q)?;
        Ok::<_, AppError>(csv_response(
            "audit-all-tenants.csv",
            stream(&state, Who::Operator(scope), filter),
        ))
    };
    go().unwrap_or_else(crate::billing::error_response)
}
