//! Postgres access. Server only.
//!
//! Every query runs in a transaction that first sets the row-level security scope
//! (DESIGN.md §6): `app.tenant_id` for tenant work, `app.person_id` for a person's own
//! rows, `app.operator` for operator screens. The settings are transaction-local
//! (`set_config(…, true)`), so a pooled connection never carries one into the next use.

pub mod audit;
pub mod devices;
pub mod idempotency;
pub mod keys;
pub mod members;
pub mod people;
pub mod policies;
pub mod secret;
pub mod shard_users;
pub mod shards;
pub mod sync;
pub mod tenants;
pub mod tokens;
pub mod usage;

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod members_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tokens_tests;
#[cfg(test)]
mod usage_tests;

use crate::auth::{OperatorScope, TenantScope};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub type Tx = Transaction<'static, Postgres>;

/// A database time as RFC 3339 (UTC), the form the API types carry.
pub fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

/// A transaction that sees only the rows of the scope's tenant.
pub async fn tenant_tx(pool: &PgPool, scope: &TenantScope) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "select set_config('app.tenant_id', $1, true), set_config('app.person_id', $2, true)",
    )
    .bind(scope.tenant_id().to_string())
    .bind(scope.person_id().to_string())
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// A transaction that sees the person's own memberships and the tenants they belong to.
pub async fn person_tx(pool: &PgPool, person_id: Uuid) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('app.person_id', $1, true)")
        .bind(person_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// A transaction for the operator screens: all tenants.
pub async fn operator_tx(pool: &PgPool, _scope: &OperatorScope) -> Result<Tx, sqlx::Error> {
    system_tx(pool).await
}

/// A transaction for trusted server-side work that is not on behalf of one tenant: the
/// sign-in callback mapping IdP groups onto tenants, and the admin command line. Never
/// reachable from a server function.
pub async fn system_tx(pool: &PgPool) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('app.operator', 'on', true)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
