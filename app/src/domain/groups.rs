//! Roles from the identity provider's `groups` claim (DESIGN.md §4).
//!
//! Authentik puts a person's group names into the `groups` claim of the `profile` scope.
//! The mapping is configuration: which groups make someone an operator, and the prefix of
//! groups that grant a tenant role, `tenant:<slug>:<role>` by default.

use super::role::TenantRole;
use super::tenant::TenantSlug;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    /// Any of these groups makes the person an operator (service-wide).
    pub operator_groups: Vec<String>,
    /// Groups `<prefix><slug>:<role>` grant `role` in tenant `slug`.
    pub tenant_group_prefix: String,
}

impl Default for RoleMapping {
    fn default() -> Self {
        RoleMapping {
            operator_groups: vec!["portal-operators".into()],
            tenant_group_prefix: "tenant:".into(),
        }
    }
}

/// What a person's groups mean to the portal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MappedRoles {
    pub is_operator: bool,
    /// One role per tenant; when several groups name the same tenant the most capable
    /// role wins (see `TenantRole::rank`).
    pub tenant_roles: BTreeMap<TenantSlug, TenantRole>,
    /// Groups that looked like tenant groups but could not be read, for the log.
    pub ignored: Vec<String>,
}

impl RoleMapping {
    pub fn map(&self, groups: &[String]) -> MappedRoles {
        let mut out = MappedRoles::default();
        for group in groups {
            if self.operator_groups.iter().any(|g| g == group) {
                out.is_operator = true;
                continue;
            }
            let Some(rest) = group.strip_prefix(self.tenant_group_prefix.as_str()) else {
                continue;
            };
            let parsed = rest.rsplit_once(':').and_then(|(slug, role)| {
                Some((TenantSlug::parse(slug).ok()?, TenantRole::parse(role)?))
            });
            match parsed {
                Some((slug, role)) => {
                    let entry = out.tenant_roles.entry(slug).or_insert(role);
                    if role.rank() < entry.rank() {
                        *entry = role;
                    }
                }
                None => out.ignored.push(group.clone()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn slug(s: &str) -> TenantSlug {
        TenantSlug::parse(s).unwrap()
    }

    #[test]
    fn operator_group_makes_an_operator() {
        let m = RoleMapping::default().map(&groups(&["portal-operators", "staff"]));
        assert!(m.is_operator);
        assert!(m.tenant_roles.is_empty());
    }

    #[test]
    fn tenant_groups_give_tenant_roles() {
        let m = RoleMapping::default().map(&groups(&[
            "tenant:acme:admin",
            "tenant:globex:auditor",
            "unrelated",
        ]));
        assert!(!m.is_operator);
        assert_eq!(m.tenant_roles.get(&slug("acme")), Some(&TenantRole::Admin));
        assert_eq!(
            m.tenant_roles.get(&slug("globex")),
            Some(&TenantRole::Auditor)
        );
        assert!(m.ignored.is_empty());
    }

    #[test]
    fn the_most_capable_role_wins_whatever_the_order() {
        for order in [
            ["tenant:acme:member", "tenant:acme:it_admin"],
            ["tenant:acme:it_admin", "tenant:acme:member"],
        ] {
            let m = RoleMapping::default().map(&groups(&order));
            assert_eq!(
                m.tenant_roles.get(&slug("acme")),
                Some(&TenantRole::ItAdmin)
            );
        }
    }

    #[test]
    fn malformed_tenant_groups_are_ignored_not_guessed() {
        let m = RoleMapping::default().map(&groups(&[
            "tenant:acme",
            "tenant:acme:superuser",
            "tenant:Acme:admin",
            "tenant::admin",
        ]));
        assert!(m.tenant_roles.is_empty());
        assert_eq!(m.ignored.len(), 4);
    }

    #[test]
    fn mapping_is_configurable() {
        let mapping = RoleMapping {
            operator_groups: vec!["ops".into(), "sre".into()],
            tenant_group_prefix: "hs/".into(),
        };
        let m = mapping.map(&groups(&["sre", "hs/acme:owner", "tenant:globex:admin"]));
        assert!(m.is_operator);
        assert_eq!(m.tenant_roles.len(), 1);
        assert_eq!(m.tenant_roles.get(&slug("acme")), Some(&TenantRole::Owner));
    }
}
