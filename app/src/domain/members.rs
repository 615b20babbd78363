//! Member management rules (docs/members.md): who may invite whom with which role,
//! change a role, or remove a member. Pure: the data layer gathers the facts (under a
//! lock on the tenant) and asks these functions; the API turns a refusal into the HTTP
//! answer.

use crate::domain::role::TenantRole;
use crate::error::AppError;
use std::fmt;

/// Invitations expire after this many days (as Tailscale's).
pub const INVITATION_DAYS: i64 = 7;

/// An email address as invitations store it: trimmed, lower case, one `@` with
/// something on both sides and a dot in the domain, no spaces or angle brackets, at most
/// 254 characters (RFC 5321's path limit). Not a full RFC 5322 parser on purpose: the
/// identity provider is the authority on addresses; this catches typos.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, String> {
        let s = input.trim().to_lowercase();
        if s.is_empty() {
            return Err("Enter the email address of the person to invite.".into());
        }
        if s.chars().count() > 254 {
            return Err("That email address is too long (at most 254 characters).".into());
        }
        let bad = || {
            format!(
                "“{}” is not an email address like name@example.com.",
                input.trim()
            )
        };
        if s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        }) {
            return Err(bad());
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(bad());
        };
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a member change is refused. Nothing changes on a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The acting role may not manage members at all.
    NotAllowed,
    /// Only owners grant, change or remove the owner role.
    OwnerOnly,
    /// The membership comes from the identity provider's groups.
    FromIdp {
        name: String,
    },
    /// Nobody changes their own role or removes themselves.
    Oneself,
    /// The tenant would be left without an owner.
    LastOwner,
    AlreadyMember {
        email: String,
    },
    AlreadyInvited {
        email: String,
    },
    /// Not a member of this tenant (or another tenant's: not revealed).
    NoSuchMember,
    /// No open invitation of this tenant with that id.
    NoSuchInvitation,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::NotAllowed => "Only owners and admins manage members.".into(),
            Refusal::OwnerOnly => {
                "Only an owner can make someone an owner, or change or remove an owner.".into()
            }
            Refusal::FromIdp { name } => format!(
                "{name}'s membership comes from a group in your identity provider, so it cannot \
                 be changed or removed here. Change their tenant group in the identity \
                 provider; it applies at their next sign-in."
            ),
            Refusal::Oneself => "You cannot change your own role or remove yourself; ask \
                                 another owner or admin."
                .into(),
            Refusal::LastOwner => "This is the tenant's last owner. Make someone else an owner \
                                   first, so the tenant always has one."
                .into(),
            Refusal::AlreadyMember { email } => {
                format!("{email} is already a member of this tenant.")
            }
            Refusal::AlreadyInvited { email } => format!(
                "{email} already has a pending invitation. Revoke it first to invite them \
                 with another role."
            ),
            Refusal::NoSuchMember => "Member".into(),
            Refusal::NoSuchInvitation => "Invitation".into(),
        }
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> AppError {
        match r {
            Refusal::NotAllowed | Refusal::OwnerOnly => AppError::Forbidden,
            Refusal::NoSuchMember | Refusal::NoSuchInvitation => AppError::NotFound(r.message()),
            _ => AppError::Conflict(r.message()),
        }
    }
}

/// The member a change is about, as the database has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub is_actor: bool,
    pub role: TenantRole,
    pub from_idp: bool,
    pub name: String,
}

fn may_manage(actor: TenantRole) -> Result<(), Refusal> {
    if actor.allows(crate::domain::role::Permission::ManageMembers) {
        Ok(())
    } else {
        Err(Refusal::NotAllowed)
    }
}

/// May `actor` invite someone with `role`?
pub fn check_invite(actor: TenantRole, role: TenantRole) -> Result<(), Refusal> {
    may_manage(actor)?;
    if role == TenantRole::Owner && actor != TenantRole::Owner {
        return Err(Refusal::OwnerOnly);
    }
    Ok(())
}

/// May `actor` give `target` the role `new`? `owners` counts the tenant's owners now
/// (every source).
pub fn check_role_change(
    actor: TenantRole,
    target: &Target,
    new: TenantRole,
    owners: i64,
) -> Result<(), Refusal> {
    may_manage(actor)?;
    if target.is_actor {
        return Err(Refusal::Oneself);
    }
    if (target.role == TenantRole::Owner || new == TenantRole::Owner) && actor != TenantRole::Owner
    {
        return Err(Refusal::OwnerOnly);
    }
    if target.from_idp {
        return Err(Refusal::FromIdp {
            name: target.name.clone(),
        });
    }
    if target.role == TenantRole::Owner && new != TenantRole::Owner && owners <= 1 {
        return Err(Refusal::LastOwner);
    }
    Ok(())
}

/// May `actor` remove `target` from the tenant?
pub fn check_removal(actor: TenantRole, target: &Target, owners: i64) -> Result<(), Refusal> {
    may_manage(actor)?;
    if target.is_actor {
        return Err(Refusal::Oneself);
    }
    if target.role == TenantRole::Owner && actor != TenantRole::Owner {
        return Err(Refusal::OwnerOnly);
    }
    if target.from_idp {
        return Err(Refusal::FromIdp {
            name: target.name.clone(),
        });
    }
    if target.role == TenantRole::Owner && owners <= 1 {
        return Err(Refusal::LastOwner);
    }
    Ok(())
}

/// May `actor` revoke an invitation with `role`? (Same rule as making it.)
pub fn check_revoke(actor: TenantRole, role: TenantRole) -> Result<(), Refusal> {
    check_invite(actor, role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TenantRole as R;

    fn target(role: TenantRole, from_idp: bool) -> Target {
        Target {
            is_actor: false,
            role,
            from_idp,
            name: "Zed".into(),
        }
    }

    #[test]
    fn emails_are_lower_cased_and_typos_refused() {
        assert_eq!(
            Email::parse("  Newbie@Acme.Example ").unwrap().as_str(),
            "newbie@acme.example"
        );
        for bad in [
            "",
            "newbie",
            "@acme.example",
            "newbie@",
            "newbie@acme",
            "a@b@c.example",
            "new bie@acme.example",
            "<a@b.example>",
            "a@b..example",
            "a@.example",
            "a@example.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn only_owners_touch_the_owner_role() {
        assert_eq!(check_invite(R::Admin, R::Owner), Err(Refusal::OwnerOnly));
        assert_eq!(check_invite(R::Owner, R::Owner), Ok(()));
        assert_eq!(check_invite(R::Admin, R::Admin), Ok(()));
        assert_eq!(
            check_role_change(R::Admin, &target(R::Member, false), R::Owner, 1),
            Err(Refusal::OwnerOnly)
        );
        assert_eq!(
            check_role_change(R::Admin, &target(R::Owner, false), R::Admin, 3),
            Err(Refusal::OwnerOnly)
        );
        assert_eq!(
            check_removal(R::Admin, &target(R::Owner, false), 3),
            Err(Refusal::OwnerOnly)
        );
        assert_eq!(
            check_role_change(R::Owner, &target(R::Owner, false), R::Admin, 2),
            Ok(())
        );
    }

    #[test]
    fn the_last_owner_stays() {
        assert_eq!(
            check_role_change(R::Owner, &target(R::Owner, false), R::Admin, 1),
            Err(Refusal::LastOwner)
        );
        assert_eq!(
            check_removal(R::Owner, &target(R::Owner, false), 1),
            Err(Refusal::LastOwner)
        );
        assert_eq!(check_removal(R::Owner, &target(R::Owner, false), 2), Ok(()));
    }

    #[test]
    fn idp_memberships_and_oneself_are_refused() {
        assert!(matches!(
            check_role_change(R::Owner, &target(R::Member, true), R::Admin, 1),
            Err(Refusal::FromIdp { .. })
        ));
        assert!(matches!(
            check_removal(R::Owner, &target(R::Member, true), 1),
            Err(Refusal::FromIdp { .. })
        ));
        let me = Target {
            is_actor: true,
            ..target(R::Admin, false)
        };
        assert_eq!(
            check_role_change(R::Admin, &me, R::Member, 1),
            Err(Refusal::Oneself)
        );
        assert_eq!(check_removal(R::Admin, &me, 1), Err(Refusal::Oneself));
        let msg = Refusal::FromIdp { name: "Zed".into() }.message();
        assert!(msg.contains("identity provider"), "{msg}");
        assert_eq!(
            AppError::from(Refusal::FromIdp { name: "Zed".into() }).status(),
            http::StatusCode::CONFLICT
        );
    }

    fn role() -> impl Strategy<Value = TenantRole> {
        prop::sample::select(TenantRole::ALL.to_vec())
    }

    proptest! {
        /// Whatever the roles, a permitted change never leaves the tenant without an
        /// owner, and never lets a non-owner touch the owner role.
        #[test]
        fn no_permitted_change_breaks_the_owner_rules(
            actor in role(), current in role(), new in role(), owners in 0i64..3, idp: bool
        ) {
            let t = target(current, idp);
            if check_role_change(actor, &t, new, owners).is_ok() {
                prop_assert!(actor.allows(crate::domain::role::Permission::ManageMembers));
                prop_assert!(!idp);
                let after = owners - i64::from(current == R::Owner) + i64::from(new == R::Owner);
                prop_assert!(after >= 1 || owners < 1);
                if current == R::Owner || new == R::Owner {
                    prop_assert_eq!(actor, R::Owner);
                }
            }
            if check_removal(actor, &t, owners).is_ok() {
                prop_assert!(!idp);
                prop_assert!(current != R::Owner || (actor == R::Owner && owners > 1));
            }
        }
    }
}
