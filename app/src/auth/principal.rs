//! The person behind the current request and the scopes they may act in.

use crate::api::viewer::{MembershipView, Viewer};
use crate::domain::role::{Permission, TenantRole};
use crate::error::AppError;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub tenant_id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub role: TenantRole,
    pub from_idp: bool,
    /// The tenant is suspended: its people may look, not change (docs/tenants.md).
    pub suspended: bool,
}

/// A signed-in person as loaded for this request (session checked, roles from the
/// database). Placed in the request's extensions by the server's auth middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub person_id: Uuid,
    pub display_name: String,
    pub email: Option<String>,
    pub is_operator: bool,
    pub memberships: Vec<Membership>,
    /// Set when the request is authenticated by an API token instead of a session: the
    /// token acts for its maker (`person_id`), capped by its role ceiling.
    pub token: Option<Uuid>,
}

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A person in the portal.
    Person(Uuid),
    /// An API token, made by `person_id`.
    Token { token_id: Uuid, person_id: Uuid },
    /// The portal itself (the sync, the push, the rollup).
    System,
}

impl Actor {
    pub fn of(person_id: Uuid, token: Option<Uuid>) -> Actor {
        match token {
            Some(token_id) => Actor::Token {
                token_id,
                person_id,
            },
            None => Actor::Person(person_id),
        }
    }
}

/// The request extension the auth middleware sets: `None` when nobody is signed in.
#[derive(Debug, Clone, Default)]
pub struct CurrentPrincipal(pub Option<Arc<Principal>>);

/// Permission to act inside one tenant. Only `Principal::tenant_scope` makes one, after
/// checking membership and role; data functions take it and set the row-level security
/// setting from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: Uuid,
    person_id: Uuid,
    role: TenantRole,
    suspended: bool,
    token: Option<Uuid>,
}

impl TenantScope {
    /// Tests of the data layer make scopes directly; nothing else may.
    #[cfg(test)]
    pub(crate) fn for_test(tenant_id: Uuid, person_id: Uuid, role: TenantRole) -> TenantScope {
        TenantScope {
            tenant_id,
            person_id,
            role,
            suspended: false,
            token: None,
        }
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }
    pub fn person_id(&self) -> Uuid {
        self.person_id
    }
    pub fn role(&self) -> TenantRole {
        self.role
    }
    /// Who acts under this scope, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::of(self.person_id, self.token)
    }

    /// Refuses changes while the tenant is suspended. `Principal::tenant_scope` applies
    /// it to every changing permission; a change made under a reading permission (a
    /// member's own device) must call it itself.
    pub fn require_active(&self) -> Result<(), AppError> {
        if self.suspended {
            Err(AppError::Conflict(
                "This tenant is suspended, so changes are paused. Contact the service operator."
                    .into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Permission to use the operator screens (all tenants, all shards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorScope {
    person_id: Uuid,
    token: Option<Uuid>,
}

impl OperatorScope {
    #[cfg(test)]
    pub(crate) fn for_test(person_id: Uuid) -> OperatorScope {
        OperatorScope {
            person_id,
            token: None,
        }
    }

    pub fn person_id(&self) -> Uuid {
        self.person_id
    }
    /// Who acts under this scope, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::of(self.person_id, self.token)
    }
}

impl Principal {
    /// The scope for acting in tenant `slug` with `permission`. A tenant the person does
    /// not belong to is reported as not found, so its existence is not revealed.
    pub fn tenant_scope(
        &self,
        slug: &str,
        permission: Permission,
    ) -> Result<TenantScope, AppError> {
        let m = self
            .memberships
            .iter()
            .find(|m| m.slug == slug)
            .ok_or_else(|| AppError::NotFound(format!("Tenant “{slug}”")))?;
        #[cfg(feature = "ssr")]
        leptos::prelude::provide_context(crate::data::audit::ScopeTenant(m.tenant_id));
        if !m.role.allows(permission) {
            tracing::info!(person_id = %self.person_id, tenant = %slug, ?permission, "forbidden");
            return Err(AppError::Forbidden);
        }
        let scope = TenantScope {
            tenant_id: m.tenant_id,
            person_id: self.person_id,
            role: m.role,
            suspended: m.suspended,
            token: self.token,
        };
        if permission.changes() {
            scope.require_active()?;
        }
        Ok(scope)
    }

    pub fn operator_scope(&self) -> Result<OperatorScope, AppError> {
        if self.is_operator {
            Ok(OperatorScope {
                person_id: self.person_id,
                token: self.token,
            })
        } else {
            tracing::info!(person_id = %self.person_id, "forbidden: not an operator");
            Err(AppError::Forbidden)
        }
    }

    pub fn to_viewer(&self) -> Viewer {
        Viewer {
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            is_operator: self.is_operator,
            memberships: self
                .memberships
                .iter()
                .map(|m| MembershipView {
                    slug: m.slug.clone(),
                    display_name: m.display_name.clone(),
                    role: m.role,
                    from_idp: m.from_idp,
                })
                .collect(),
        }
    }
}

/// The signed-in person of the current request, or `Unauthenticated`.
pub fn current_principal() -> Result<Arc<Principal>, AppError> {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CurrentPrincipal>().cloned())
        .and_then(|c| c.0)
        .ok_or(AppError::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            person_id: Uuid::from_u128(1),
            display_name: "Alice".into(),
            email: Some("alice@acme.example".into()),
            is_operator: false,
            memberships: vec![Membership {
                tenant_id: Uuid::from_u128(10),
                slug: "acme".into(),
                display_name: "Acme".into(),
                role: TenantRole::Member,
                from_idp: true,
                suspended: false,
            }],
            token: None,
        }
    }

    #[test]
    fn a_member_gets_a_scope_for_their_own_tenant_only() {
        let p = alice();
        let scope = p.tenant_scope("acme", Permission::View).unwrap();
        assert_eq!(scope.tenant_id(), Uuid::from_u128(10));
        assert!(matches!(
            p.tenant_scope("globex", Permission::View),
            Err(AppError::NotFound(_))
        ));
        assert_eq!(
            p.tenant_scope("acme", Permission::ManagePolicy),
            Err(AppError::Forbidden)
        );
    }

    #[test]
    fn a_suspended_tenant_can_be_read_not_changed() {
        let mut p = alice();
        p.memberships[0].role = TenantRole::Admin;
        p.memberships[0].suspended = true;
        let scope = p.tenant_scope("acme", Permission::ViewAll).unwrap();
        assert!(matches!(scope.require_active(), Err(AppError::Conflict(_))));
        for change in [
            Permission::ManagePolicy,
            Permission::ManageDevices,
            Permission::ManageMembers,
        ] {
            assert!(
                matches!(p.tenant_scope("acme", change), Err(AppError::Conflict(m)) if m.contains("suspended")),
                "{change:?}"
            );
        }
        p.memberships[0].suspended = false;
        assert!(p.tenant_scope("acme", Permission::ManagePolicy).is_ok());
    }

    #[test]
    fn only_operators_get_the_operator_scope() {
        let mut p = alice();
        assert_eq!(p.operator_scope(), Err(AppError::Forbidden));
        p.is_operator = true;
        assert!(p.operator_scope().is_ok());
    }
}
