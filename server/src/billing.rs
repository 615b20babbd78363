//! The billing exports: a month's usage as CSV (docs/billing-export.md), for one tenant
//! (its billing admins, admins and owners) or for all tenants (operators).
//!
//! `GET /t/{slug}/usage/export?month=YYYY-MM&kind=summary|detail`
//! `GET /operator/usage/export?month=YYYY-MM&kind=summary|detail`
//!
//! Each request authorizes itself for the tenant of the rows (row-level security then
//! keeps the rows to that tenant). The detail export streams: rows are formatted in
//! chunks of about 64 KiB and handed to the response through a small bounded channel,
//! so memory stays constant whatever the number of rows.

use app::auth::principal::CurrentPrincipal;
use app::auth::Principal;
use app::data::usage::{
    for_each_detail, month_or_current, operator_summary, tenant_summary, DetailRow, ExportScope,
    SummaryRow,
};
use app::domain::csv::{push_raw, push_text};
use app::domain::role::Permission;
use app::domain::usage::{hours_2dp, Month};
use app::error::AppError;
use app::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    pub month: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Summary,
    Detail,
}

fn kind(q: &ExportQuery) -> Result<Kind, AppError> {
    match q.kind.as_deref().unwrap_or("summary") {
        "summary" => Ok(Kind::Summary),
        "detail" => Ok(Kind::Detail),
        other => Err(AppError::Invalid(format!(
            "“{other}” is not an export; ask for kind=summary or kind=detail."
        ))),
    }
}

/// The summary's columns, in order (docs/billing-export.md).
pub const SUMMARY_HEADER: &str = "month,tenant_code,tenant,tenant_name,plan,shard,region,device_quota,active_devices,device_hours,device_seconds,peak_devices,days_with_usage,status\r\n";
/// The detail's columns, in order (docs/billing-export.md).
pub const DETAIL_HEADER: &str =
    "date,tenant_code,shard,device_id,device,owner,online_seconds,online_hours,status\r\n";

fn status_text(closed: bool) -> &'static str {
    if closed {
        "final"
    } else {
        "provisional"
    }
}

/// One summary record, "\r\n"-terminated.
pub fn summary_record(out: &mut String, r: &SummaryRow) {
    push_raw(out, &r.month.to_string());
    for text in [
        &r.tenant_code,
        &r.tenant_slug,
        &r.tenant_name,
        &r.plan,
        &r.cluster_id,
        &r.region,
    ] {
        out.push(',');
        push_text(out, text);
    }
    for n in [
        r.device_quota.to_string(),
        r.active_devices.to_string(),
        hours_2dp(r.device_seconds),
        r.device_seconds.to_string(),
        r.peak_devices.to_string(),
        r.days_with_usage.to_string(),
    ] {
        out.push(',');
        push_raw(out, &n);
    }
    out.push(',');
    push_raw(out, status_text(r.closed));
    out.push_str("\r\n");
}

/// One detail record, "\r\n"-terminated.
pub fn detail_record(out: &mut String, r: &DetailRow) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02},",
        r.day.year(),
        u8::from(r.day.month()),
        r.day.day()
    );
    push_text(out, &r.tenant_code);
    out.push(',');
    push_text(out, &r.cluster_id);
    let _ = write!(out, ",{},", r.node_id);
    push_text(out, &r.device_name);
    out.push(',');
    push_text(out, &r.owner);
    let _ = write!(
        out,
        ",{},{},{}\r\n",
        r.seconds,
        hours_2dp(i64::from(r.seconds)),
        status_text(r.final_)
    );
}

/// An error as plain text with its status (the exports are files, not pages).
pub(crate) fn error_response(e: AppError) -> Response {
    (
        e.status(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        e.to_string(),
    )
        .into_response()
}

fn principal(current: &CurrentPrincipal) -> Result<Arc<Principal>, AppError> {
    current.0.clone().ok_or(AppError::Unauthenticated)
}

/// The headers of a CSV download named `filename`.
pub(crate) fn csv_headers(filename: &str) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        ),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

fn filename(who: &str, month: Month, kind: Kind) -> String {
    let kind = match kind {
        Kind::Summary => "summary",
        Kind::Detail => "detail",
    };
    format!("usage-{who}-{month}-{kind}.csv")
}

fn summary_body(rows: &[SummaryRow]) -> String {
    let mut out = String::with_capacity(SUMMARY_HEADER.len() + rows.len() * 128);
    out.push_str(SUMMARY_HEADER);
    for r in rows {
        summary_record(&mut out, r);
    }
    out
}

/// Streams the detail CSV of `scope`'s month.
fn detail_body(state: &AppState, scope: ExportScope, month: Month) -> Body {
    const CHUNK: usize = 64 * 1024;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let pool = state.pool.clone();
    tokio::spawn(async move {
        let mut buf = String::with_capacity(CHUNK + 1024);
        buf.push_str(DETAIL_HEADER);
        let result = for_each_detail(&pool, &scope, month, |row| {
            detail_record(&mut buf, &row);
            let full = (buf.len() >= CHUNK)
                .then(|| std::mem::replace(&mut buf, String::with_capacity(CHUNK + 1024)));
            let sender = sender.clone();
            async move {
                match full {
                    Some(chunk) => sender.send(Ok(chunk)).await.is_ok(),
                    None => true,
                }
            }
        })
        .await;
        match result {
            Ok(_) => {
                let _ = sender.send(Ok(buf)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, %month, "billing export failed midway");
                let _ = sender
                    .send(Err(std::io::Error::other("the export failed midway")))
                    .await;
            }
        }
    });
    channel_body(receiver)
}

/// A response body that yields what the channel receives (a producer task writes into
/// its bounded sender; the body waits for the client, and the producer for the body).
pub(crate) fn channel_body(
    mut receiver: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> Body {
    Body::from_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

pub async fn tenant_export(
    State(state): State<AppState>,
    Extension(current): Extension<CurrentPrincipal>,
    Path(slug): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let go = async {
        let principal = principal(&current)?;
        let scope = principal.tenant_scope(&slug, Permission::ViewBilling)?;
        let month = month_or_current(q.month.as_deref()).map_err(AppError::Invalid)?;
        let kind = kind(&q)?;
        let name = filename(&slug, month, kind);
        Ok::<_, AppError>(match kind {
            Kind::Summary => {
                let rows = tenant_summary(&state.pool, &scope, month).await?;
                (StatusCode::OK, csv_headers(&name), summary_body(&rows)).into_response()
            }
            Kind::Detail => (
                StatusCode::OK,
                csv_headers(&name),
                detail_body(&state, ExportScope::Tenant(scope), month),
            )
                .into_response(),
        })
    };
    go.await.unwrap_or_else(error_response)
}

pub async fn operator_export(
    State(state): State<AppState>,
    Extension(current): Extension<CurrentPrincipal>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let go = async {
        let principal = principal(&current)?;
        let scope = principal.operator_scope()?;
        let month = month_or_current(q.month.as_deref()).map_err(AppError::Invalid)?;
        let kind = kind(&q)?;
        let name = filename("all-tenants", month, kind);
        Ok::<_, AppError>(match kind {
            Kind::Summary => {
                let rows = operator_summary(&state.pool, &scope, month).await?;
                (StatusCode::OK, csv_headers(&name), summary_body(&rows)).into_response()
            }
            Kind::Detail => (
                StatusCode::OK,
                csv_headers(&name),
                detail_body(&state, ExportScope::Operator(scope), month),
            )
                .into_response(),
        })
    };
    go.await.unwrap_or_else(error_response)
}
