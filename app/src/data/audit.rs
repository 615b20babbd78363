//! Reading the audit log (DESIGN.md §5): a tenant's events for its admins and auditors,
//! every event for operators. Rows are written by the changes themselves, in their own
//! transactions; the application role may insert and read them, never change or delete
//! them (no grant: migrations/20261122060000_audit_and_quota_state.sql).

use crate::auth::{Actor, OperatorScope, TenantScope};
use crate::data::{operator_tx, tenant_tx, Tx};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// What to show: every field narrows the list; all empty shows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// An action or its prefix: `policy` matches `policy.saved` and `policy.rejected`.
    pub action: Option<String>,
    /// Part of the actor's name or email (case-insensitive); `system` for the portal's own.
    pub actor: Option<String>,
    /// Part of the target (case-insensitive).
    pub target: Option<String>,
    /// Events at or after / before these times (UTC).
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Operators only: one tenant's events, by slug.
    pub tenant: Option<String>,
    /// Keyset paging: events older than this id.
    pub before_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub tenant_slug: Option<String>,
    pub actor_kind: String,
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    /// The API token's name when a token acted (its maker is `actor_name`).
    pub actor_token: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Records one event in the transaction of the change it describes, so the event exists
/// exactly when the change does. `tenant_id` is `None` for service-wide events (shards,
/// operators). `detail` carries what changed (before/after where there is one).
pub async fn record(
    tx: &mut Tx,
    actor: Actor,
    tenant_id: Option<Uuid>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let token = insert(tx, actor, tenant_id, action, target, detail).await?;
    // A change made through the API with an `Idempotency-Key`: the key is used by this
    // very transaction.
    super::idempotency::mark_committed(tx, token).await
}

/// Records an event that is not the request's change (the cleanup after a failed one),
/// in its own transaction: an `Idempotency-Key` of the request stays unused, so the
/// client may send the request again under it.
pub async fn record_aside(
    pool: &sqlx::PgPool,
    scope: &TenantScope,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let mut tx = super::tenant_tx(pool, scope).await?;
    insert(
        &mut tx,
        scope.actor(),
        Some(scope.tenant_id()),
        event.action,
        &event.target,
        event.detail.clone(),
    )
    .await?;
    tx.commit().await
}

/// Inserts the event; answers the acting token, if one acted.
async fn insert(
    tx: &mut Tx,
    actor: Actor,
    tenant_id: Option<Uuid>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<Option<Uuid>, sqlx::Error> {
    let (kind, person, token) = match actor {
        Actor::Person(p) => ("person", Some(p), None),
        Actor::Token {
            token_id,
            person_id,
        } => ("token", Some(person_id), Some(token_id)),
        Actor::System => ("system", None, None),
    };
    sqlx::query(
        "insert into audit_event (tenant_id, actor_kind, actor_person_id, actor_token_id,
                                  action, target, detail)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(kind)
    .bind(person)
    .bind(token)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

/// Records an event in a transaction of its own: for what is not a change of a row
/// (a failed sign-in, a sign-out).
pub async fn record_alone(
    pool: &PgPool,
    actor: Actor,
    tenant_id: Option<Uuid>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = crate::data::system_tx(pool).await?;
    insert(&mut tx, actor, tenant_id, action, target, detail).await?;
    tx.commit().await
}

/// The tenant the current request acts in, once `Principal::tenant_scope` found the
/// person's membership (so recording a refusal there reveals nothing).
#[derive(Debug, Clone, Copy)]
pub struct ScopeTenant(pub Uuid);

/// Records that the current request's person (or token) was refused something they
/// asked for (`auth.forbidden`, target: the endpoint). Called by `error::fail` for
/// every 403 of a server function; written in the background, so the answer is not
/// delayed, and a failed write is only logged.
pub fn record_forbidden() {
    use leptos::prelude::use_context;
    let Some(state) = use_context::<crate::state::AppState>() else {
        return;
    };
    let Some(parts) = use_context::<http::request::Parts>() else {
        return;
    };
    let Some(principal) = parts
        .extensions
        .get::<crate::auth::principal::CurrentPrincipal>()
        .and_then(|c| c.0.clone())
    else {
        return;
    };
    let tenant = use_context::<ScopeTenant>().map(|t| t.0);
    let actor = Actor::of(principal.person_id, principal.token);
    let endpoint = parts.uri.path().to_string();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let detail = serde_json::json!({ "method": parts.method.as_str() });
        if let Err(e) = record_alone(
            &state.pool,
            actor,
            tenant,
            "auth.forbidden",
            &endpoint,
            detail,
        )
        .await
        {
            tracing::warn!(error = %e, "could not record a refused request in the audit log");
        }
    });
}

/// A change to record with the write that makes it: what (`device.renamed`), on what
/// (the device's name) and the details (before/after). The data function that opens
/// the transaction records it there, with the scope's actor.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub action: &'static str,
    pub target: String,
    pub detail: serde_json::Value,
}

impl Event {
    pub fn new(
        action: &'static str,
        target: impl Into<String>,
        detail: serde_json::Value,
    ) -> Event {
        Event {
            action,
            target: target.into(),
            detail,
        }
    }

    /// Records the event in `tx` for the scope's tenant and actor.
    pub async fn record(&self, tx: &mut Tx, scope: &TenantScope) -> Result<(), sqlx::Error> {
        record(
            tx,
            scope.actor(),
            Some(scope.tenant_id()),
            self.action,
            &self.target,
            self.detail.clone(),
        )
        .await
    }
}

const SELECT: &str = "select e.id, e.at, t.slug as tenant_slug, e.actor_kind,
            p.display_name as actor_name, p.email as actor_email, k.name as actor_token,
            e.action, e.target, e.detail::text as detail
       from audit_event e
       left join tenant t on t.id = e.tenant_id
       left join person p on p.id = e.actor_person_id
       left join api_token k on k.id = e.actor_token_id
      where ($1::text is null or e.action = $1 or left(e.action, length($1) + 1) = $1 || '.')
        and ($2::text is null
             or (lower($2) = 'system' and e.actor_kind = 'system')
             or (lower($2) = 'token' and e.actor_kind = 'token')
             or strpos(lower(coalesce(p.display_name, '') || ' ' || coalesce(p.email, '')
                             || ' ' || coalesce(k.name, '')), lower($2)) > 0)
        and ($3::text is null or strpos(lower(e.target), lower($3)) > 0)
        and ($4::timestamptz is null or e.at >= $4)
        and ($5::timestamptz is null or e.at < $5)
        and ($6::text is null or t.slug = $6)
        and ($7::int8 is null or e.id < $7)
        and ($8::uuid is null or e.tenant_id = $8)
      order by e.id desc";

fn blank(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn list(
    tx: &mut Tx,
    filter: &AuditFilter,
    tenant_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>(&format!("{SELECT} limit $9"))
        .bind(blank(&filter.action))
        .bind(blank(&filter.actor))
        .bind(blank(&filter.target))
        .bind(filter.from)
        .bind(filter.until)
        .bind(blank(&filter.tenant))
        .bind(filter.before_id)
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
}

/// The tenant's events, newest first, at most `limit`. Row-level security keeps them to
/// the tenant; the explicit tenant condition also keeps out service-wide events.
pub async fn tenant_events(
    pool: &PgPool,
    scope: &TenantScope,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut tx = tenant_tx(pool, scope).await?;
    let filter = AuditFilter {
        tenant: None,
        ..filter.clone()
    };
    let rows = list(&mut tx, &filter, Some(scope.tenant_id()), limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Every event, newest first, at most `limit`.
pub async fn all_events(
    pool: &PgPool,
    scope: &OperatorScope,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut tx = operator_tx(pool, scope).await?;
    let rows = list(&mut tx, filter, None, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The actions recorded so far in the scope, for the filter's choices.
pub async fn actions(
    pool: &PgPool,
    scope: Option<&TenantScope>,
    operator: Option<&OperatorScope>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = match (scope, operator) {
        (Some(s), _) => tenant_tx(pool, s).await?,
        (None, Some(o)) => operator_tx(pool, o).await?,
        (None, None) => return Ok(Vec::new()),
    };
    let rows: Vec<String> = sqlx::query_scalar(
        "select distinct action from audit_event
          where $1::uuid is null or tenant_id = $1 order by action",
    )
    .bind(scope.map(|s| s.tenant_id()))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}
