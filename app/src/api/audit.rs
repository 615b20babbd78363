//! The audit log: a tenant's for its admins and auditors, all of it for operators.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The filter as the page's form sends it (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub until: Option<String>,
    /// Operators: one tenant's slug.
    pub tenant: Option<String>,
    /// Older than this event id (the "Older" link).
    pub before: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    pub tenant: Option<String>,
    /// "Alice Admin <alice@acme.example>", "Portal (system)" or "API token".
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The event's details (before/after, reasons) as JSON text.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The id to pass as `before` for the next (older) page, when there is one.
    pub older: Option<i64>,
    pub actions: Vec<String>,
}

/// Events per page.
pub const PAGE: i64 = 50;

/// The filter a query asks for, or a sentence saying what is wrong with it.
#[cfg(feature = "ssr")]
pub fn parse_filter(q: &AuditQuery) -> Result<crate::data::audit::AuditFilter, AppError> {
    let day = |s: &Option<String>, what: &str| -> Result<Option<time::Date>, AppError> {
        match s.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => {
                time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                    .map(Some)
                    .map_err(|_| {
                        AppError::Invalid(format!(
                            "“{s}” is not a date for “{what}”; write it as YYYY-MM-DD."
                        ))
                    })
            }
        }
    };
    // Postgres refuses a NUL in text; no action, name or target contains control
    // characters, so a filter with one is a mistake, said as such (not a 500).
    for text in [&q.action, &q.actor, &q.target, &q.tenant]
        .into_iter()
        .flatten()
    {
        if text.chars().any(char::is_control) {
            return Err(AppError::Invalid(
                "A filter cannot contain control characters.".into(),
            ));
        }
    }
    let from = day(&q.from, "from")?;
    let until = day(&q.until, "until")?;
    if let (Some(f), Some(u)) = (from, until) {
        if u < f {
            return Err(AppError::Invalid(
                "“Until” is before “from”; swap them.".into(),
            ));
        }
    }
    Ok(crate::data::audit::AuditFilter {
        action: q.action.clone(),
        actor: q.actor.clone(),
        target: q.target.clone(),
        from: from.map(|d| d.midnight().assume_utc()),
        until: until
            .and_then(|d| d.next_day())
            .map(|d| d.midnight().assume_utc()),
        tenant: q.tenant.clone(),
        before_id: q.before,
    })
}

/// A page from up to `PAGE + 1` rows: the extra one only says there is an older page.
#[cfg(feature = "ssr")]
fn page_of(mut rows: Vec<crate::data::audit::AuditRow>, actions: Vec<String>) -> AuditPage {
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    AuditPage {
        older: more.then(|| rows.last().map(|r| r.id)).flatten(),
        events: rows.into_iter().map(to_event).collect(),
        actions,
    }
}

#[cfg(feature = "ssr")]
pub fn to_event(r: crate::data::audit::AuditRow) -> AuditEvent {
    let person = match (r.actor_name, r.actor_email) {
        (Some(n), Some(e)) if !n.is_empty() => format!("{n} <{e}>"),
        (_, Some(e)) => e,
        (Some(n), None) => n,
        (None, None) => "a person".into(),
    };
    let actor = match r.actor_kind.as_str() {
        "person" => person,
        "system" => "Portal (system)".into(),
        _ => format!(
            "API token “{}” (made by {person})",
            r.actor_token.as_deref().unwrap_or("?")
        ),
    };
    AuditEvent {
        id: r.id,
        at: crate::data::rfc3339(Some(r.at)).unwrap_or_default(),
        tenant: r.tenant_slug,
        actor,
        action: r.action,
        target: r.target,
        detail: r.detail,
    }
}

// The filter's fields are separate arguments: a nested struct does not survive the
// URL-encoded body a server function is called with from the browser.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "get_tenant_audit")]
pub async fn get_tenant_audit(
    slug: String,
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    from: Option<String>,
    until: Option<String>,
    before: Option<i64>,
) -> Result<AuditPage, AppError> {
    let query = AuditQuery {
        action,
        actor,
        target,
        from,
        until,
        tenant: None,
        before,
    };
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::ViewAudit)
        .map_err(fail)?;
    let filter = parse_filter(&query).map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let db = |e: sqlx::Error| fail(e.into());
    let rows = crate::data::audit::tenant_events(&state.pool, &scope, &filter, PAGE + 1)
        .await
        .map_err(db)?;
    let actions = crate::data::audit::actions(&state.pool, Some(&scope), None)
        .await
        .map_err(db)?;
    Ok(page_of(rows, actions))
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api", endpoint = "get_operator_audit")]
pub async fn get_operator_audit(
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    from: Option<String>,
    until: Option<String>,
    tenant: Option<String>,
    before: Option<i64>,
) -> Result<AuditPage, AppError> {
    let query = AuditQuery {
        action,
        actor,
        target,
        from,
        until,
        tenant,
        before,
    };
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal.operator_scope().map_err(fail)?;
    let filter = parse_filter(&query).map_err(fail)?;
    let state = crate::state::app_state().map_err(fail)?;
    let db = |e: sqlx::Error| fail(e.into());
    let rows = crate::data::audit::all_events(&state.pool, &scope, &filter, PAGE + 1)
        .await
        .map_err(db)?;
    let actions = crate::data::audit::actions(&state.pool, None, Some(&scope))
        .await
        .map_err(db)?;
    Ok(page_of(rows, actions))
}
