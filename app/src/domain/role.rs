//! Tenant roles, modelled on Tailscale's admin console (DESIGN.md §5).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A person's role inside one tenant. Operators are not a tenant role: they are
/// service-wide and live on the person (see `Principal::is_operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantRole {
    Owner,
    Admin,
    NetworkAdmin,
    ItAdmin,
    BillingAdmin,
    Auditor,
    Member,
}

/// What a request wants to do inside a tenant. Each server function asks for exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See the tenant's dashboard and one's own devices and keys.
    View,
    /// See everything in the tenant, read-only (devices, policy, audit log).
    ViewAll,
    /// Edit the ACL policy.
    ManagePolicy,
    /// Manage all devices and pre-auth keys.
    ManageDevices,
    /// See usage and download billing exports.
    ViewBilling,
    /// Read the tenant's audit log (admins of every kind and auditors, as Tailscale).
    ViewAudit,
    /// Invite and remove members, change roles.
    ManageMembers,
}

impl Permission {
    pub const ALL: [Permission; 7] = [
        Permission::View,
        Permission::ViewAll,
        Permission::ManagePolicy,
        Permission::ManageDevices,
        Permission::ViewBilling,
        Permission::ViewAudit,
        Permission::ManageMembers,
    ];

    /// Whether acting under the permission changes the tenant (paused while it is
    /// suspended).
    pub fn changes(self) -> bool {
        matches!(
            self,
            Permission::ManagePolicy | Permission::ManageDevices | Permission::ManageMembers
        )
    }
}

impl TenantRole {
    pub const ALL: [TenantRole; 7] = [
        TenantRole::Owner,
        TenantRole::Admin,
        TenantRole::NetworkAdmin,
        TenantRole::ItAdmin,
        TenantRole::BillingAdmin,
        TenantRole::Auditor,
        TenantRole::Member,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantRole::Owner => "owner",
            TenantRole::Admin => "admin",
            TenantRole::NetworkAdmin => "network_admin",
            TenantRole::ItAdmin => "it_admin",
            TenantRole::BillingAdmin => "billing_admin",
            TenantRole::Auditor => "auditor",
            TenantRole::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<TenantRole> {
        TenantRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Human label, as Tailscale's console writes it.
    pub fn label(self) -> &'static str {
        match self {
            TenantRole::Owner => "Owner",
            TenantRole::Admin => "Admin",
            TenantRole::NetworkAdmin => "Network admin",
            TenantRole::ItAdmin => "IT admin",
            TenantRole::BillingAdmin => "Billing admin",
            TenantRole::Auditor => "Auditor",
            TenantRole::Member => "Member",
        }
    }

    /// Precedence when one person is given several roles in the same tenant (e.g. by
    /// two IdP groups): the lower the rank, the more the role may do.
    pub fn rank(self) -> u8 {
        TenantRole::ALL
            .iter()
            .position(|r| *r == self)
            .map(|p| p as u8)
            .unwrap_or(u8::MAX)
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        use TenantRole as R;
        match permission {
            P::View => true,
            P::ViewAll => !matches!(self, R::Member),
            P::ManagePolicy => matches!(self, R::Owner | R::Admin | R::NetworkAdmin),
            P::ManageDevices => matches!(self, R::Owner | R::Admin | R::ItAdmin),
            P::ViewBilling => matches!(self, R::Owner | R::Admin | R::BillingAdmin),
            P::ViewAudit => matches!(
                self,
                R::Owner | R::Admin | R::NetworkAdmin | R::ItAdmin | R::Auditor
            ),
            P::ManageMembers => matches!(self, R::Owner | R::Admin),
        }
    }
}

impl fmt::Display for TenantRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in TenantRole::ALL {
            assert_eq!(TenantRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(TenantRole::parse("Admin"), None);
        assert_eq!(TenantRole::parse("operator"), None);
    }

    #[test]
    fn members_and_auditors_cannot_change_things() {
        for p in [
            Permission::ManagePolicy,
            Permission::ManageDevices,
            Permission::ManageMembers,
        ] {
            assert!(!TenantRole::Member.allows(p));
            assert!(!TenantRole::Auditor.allows(p));
        }
        assert!(TenantRole::Auditor.allows(Permission::ViewAll));
        assert!(!TenantRole::Member.allows(Permission::ViewAll));
        assert!(!TenantRole::Member.allows(Permission::ViewBilling));
    }

    #[test]
    fn specialised_admins_stay_in_their_lane() {
        assert!(TenantRole::NetworkAdmin.allows(Permission::ManagePolicy));
        assert!(!TenantRole::NetworkAdmin.allows(Permission::ManageDevices));
        assert!(TenantRole::ItAdmin.allows(Permission::ManageDevices));
        assert!(!TenantRole::ItAdmin.allows(Permission::ManagePolicy));
        assert!(TenantRole::BillingAdmin.allows(Permission::ViewBilling));
        assert!(!TenantRole::BillingAdmin.allows(Permission::ManageMembers));
    }

    #[test]
    fn admins_and_auditors_read_the_audit_log_and_nobody_else() {
        let readers: Vec<TenantRole> = TenantRole::ALL
            .into_iter()
            .filter(|r| r.allows(Permission::ViewAudit))
            .collect();
        assert_eq!(
            readers,
            [
                TenantRole::Owner,
                TenantRole::Admin,
                TenantRole::NetworkAdmin,
                TenantRole::ItAdmin,
                TenantRole::Auditor
            ]
        );
    }
}
