//! Rules of the background sync that need no I/O: which tenant a node or pre-auth key
//! belongs to, and how long to wait before trying a failing shard again.
//!
//! Attribution follows the naming on shards (DESIGN.md §2): a tenant's members are
//! Headscale users `<code>.<member>` (`t7k2.alice`), its tags are `tag:<code>--<name>`
//! (`tag:t7k2--server`). Tenant codes are `[a-z][a-z0-9]{3,7}` (see `TenantCode`), so
//! neither `.` nor `-` can be part of one and the code is always the text before the
//! first separator.

use std::time::Duration;

/// Why a node or key could not be given to a tenant. The operator sees these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrphanReason {
    /// Neither a user nor tags.
    NoOwner,
    /// The user's name does not start with the code of a known tenant.
    UnknownUser,
    /// A tag is not in a known tenant's namespace.
    UnknownTag,
    /// The tags (or the tags and the user) name more than one tenant.
    MixedTenants,
    /// The names point to a tenant that is placed on another shard (or on none).
    TenantNotOnShard,
}

impl OrphanReason {
    /// The value stored in `node.orphan_reason` / `pre_auth_key.orphan_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanReason::NoOwner => "no_owner",
            OrphanReason::UnknownUser => "unknown_user",
            OrphanReason::UnknownTag => "unknown_tag",
            OrphanReason::MixedTenants => "mixed_tenants",
            OrphanReason::TenantNotOnShard => "tenant_not_on_shard",
        }
    }

    /// Why, in a sentence for the operator.
    pub fn explain(self) -> &'static str {
        match self {
            OrphanReason::NoOwner => "It has neither an owning user nor tags.",
            OrphanReason::UnknownUser => {
                "Its user is not named <tenant code>.<member> after any tenant."
            }
            OrphanReason::UnknownTag => "A tag is not in any tenant's tag:<code>--… namespace.",
            OrphanReason::MixedTenants => "Its tags or its user name more than one tenant.",
            OrphanReason::TenantNotOnShard => {
                "Its names belong to a tenant placed on another shard."
            }
        }
    }

    pub fn parse(s: &str) -> Option<OrphanReason> {
        Some(match s {
            "no_owner" => OrphanReason::NoOwner,
            "unknown_user" => OrphanReason::UnknownUser,
            "unknown_tag" => OrphanReason::UnknownTag,
            "mixed_tenants" => OrphanReason::MixedTenants,
            "tenant_not_on_shard" => OrphanReason::TenantNotOnShard,
            _ => return None,
        })
    }
}

/// Where a tenant code points, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<T> {
    /// A tenant placed on the shard being synced.
    OnShard(T),
    /// A tenant that exists but is placed elsewhere, or not yet placed.
    Elsewhere,
    /// No tenant has this code.
    Unknown,
}

fn is_tenant_code(s: &str) -> bool {
    (4..=8).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `t7k2.alice` → `t7k2`. The member part must not be empty.
pub fn code_of_user(user_name: &str) -> Option<&str> {
    let (code, member) = user_name.split_once('.')?;
    (is_tenant_code(code) && !member.is_empty()).then_some(code)
}

/// `tag:t7k2--server` → `t7k2`. The name part must not be empty.
pub fn code_of_tag(tag: &str) -> Option<&str> {
    let (code, name) = tag.strip_prefix("tag:")?.split_once("--")?;
    (is_tenant_code(code) && !name.is_empty()).then_some(code)
}

/// The tenant of a node or pre-auth key, from its owning user and its tags.
///
/// - Tags, if any, decide (a tagged node is owned by its tags since Headscale 0.28):
///   every tag must be in the namespace of one and the same tenant. A key may carry a
///   user as well; it must then belong to that same tenant.
/// - Otherwise the user decides: `<code>.<member>`.
/// - The tenant must be placed on the shard being synced: a tenant's names on a shard it
///   does not live on are somebody's mistake, for the operator to look at.
///
/// Anything else is an orphan, with the reason.
pub fn attribute<T: Copy>(
    user_name: Option<&str>,
    tags: &[String],
    placement: impl Fn(&str) -> Placement<T>,
) -> Result<T, OrphanReason> {
    let user_name = user_name.filter(|u| !u.is_empty());
    let code = if tags.is_empty() {
        let Some(user) = user_name else {
            return Err(OrphanReason::NoOwner);
        };
        code_of_user(user).ok_or(OrphanReason::UnknownUser)?
    } else {
        let mut code: Option<&str> = None;
        for tag in tags {
            let this = code_of_tag(tag).ok_or(OrphanReason::UnknownTag)?;
            match code {
                Some(c) if c != this => return Err(OrphanReason::MixedTenants),
                _ => code = Some(this),
            }
        }
        let code = code.ok_or(OrphanReason::NoOwner)?;
        if let Some(user) = user_name {
            if code_of_user(user) != Some(code) {
                return Err(OrphanReason::MixedTenants);
            }
        }
        code
    };
    match placement(code) {
        Placement::OnShard(tenant) => Ok(tenant),
        Placement::Elsewhere => Err(OrphanReason::TenantNotOnShard),
        Placement::Unknown if tags.is_empty() => Err(OrphanReason::UnknownUser),
        Placement::Unknown => Err(OrphanReason::UnknownTag),
    }
}

/// How long to wait before syncing a shard again after `failures` failed syncs in a
/// row: `interval × 2^failures`, at most `cap` (but never less than `interval`).
/// 15 s → 30 s, 1 min, 2 min, 4 min, then 5 min with the default cap.
pub fn backoff(interval: Duration, failures: u32, cap: Duration) -> Duration {
    let cap = cap.max(interval);
    let factor = 2u32.saturating_pow(failures.min(31));
    interval.checked_mul(factor).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(code: &str) -> Placement<u8> {
        match code {
            "t7k2" => Placement::OnShard(1),
            "a1b2" => Placement::OnShard(2),
            "g4x9" => Placement::Elsewhere,
            _ => Placement::Unknown,
        }
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn members_belong_to_the_tenant_of_their_code() {
        assert_eq!(attribute(Some("t7k2.alice"), &[], placement), Ok(1));
        assert_eq!(attribute(Some("a1b2.bob.smith"), &[], placement), Ok(2));
        assert_eq!(
            attribute(Some("zz99.bob"), &[], placement),
            Err(OrphanReason::UnknownUser)
        );
        for user in [
            "t7k2",
            "t7k2.",
            ".alice",
            "T7K2.alice",
            "alice@acme.com",
            "t7.x",
        ] {
            assert_eq!(
                attribute(Some(user), &[], placement),
                Err(OrphanReason::UnknownUser),
                "{user}"
            );
        }
        assert_eq!(
            attribute(Some("g4x9.gina"), &[], placement),
            Err(OrphanReason::TenantNotOnShard)
        );
    }

    #[test]
    fn tagged_nodes_belong_to_the_one_tenant_of_all_their_tags() {
        let one = tags(&["tag:t7k2--server", "tag:t7k2--db"]);
        assert_eq!(attribute(None, &one, placement), Ok(1));
        assert_eq!(
            attribute(
                None,
                &tags(&["tag:t7k2--server", "tag:a1b2--db"]),
                placement
            ),
            Err(OrphanReason::MixedTenants)
        );
        for bad in [
            "tag:server",
            "tag:t7k2-server",
            "tag:t7k2--",
            "t7k2--server",
            "tag:--x",
        ] {
            assert_eq!(
                attribute(None, &tags(&["tag:t7k2--ok", bad]), placement),
                Err(OrphanReason::UnknownTag),
                "{bad}"
            );
        }
        assert_eq!(
            attribute(None, &tags(&["tag:zz99--server"]), placement),
            Err(OrphanReason::UnknownTag)
        );
        assert_eq!(
            attribute(None, &tags(&["tag:g4x9--server"]), placement),
            Err(OrphanReason::TenantNotOnShard)
        );
    }

    #[test]
    fn a_key_with_tags_and_a_user_needs_both_in_one_tenant() {
        let t = tags(&["tag:t7k2--server"]);
        assert_eq!(attribute(Some("t7k2.alice"), &t, placement), Ok(1));
        assert_eq!(
            attribute(Some("a1b2.bob"), &t, placement),
            Err(OrphanReason::MixedTenants)
        );
        assert_eq!(
            attribute(Some("someone"), &t, placement),
            Err(OrphanReason::MixedTenants)
        );
    }

    #[test]
    fn nothing_to_go_by_is_an_orphan() {
        assert_eq!(attribute(None, &[], placement), Err(OrphanReason::NoOwner));
        assert_eq!(
            attribute(Some(""), &[], placement),
            Err(OrphanReason::NoOwner)
        );
    }

    #[test]
    fn orphan_reasons_round_trip() {
        for r in [
            OrphanReason::NoOwner,
            OrphanReason::UnknownUser,
            OrphanReason::UnknownTag,
            OrphanReason::MixedTenants,
            OrphanReason::TenantNotOnShard,
        ] {
            assert_eq!(OrphanReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(OrphanReason::parse("other"), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        let cap = s(300);
        assert_eq!(backoff(s(15), 0, cap), s(15));
        assert_eq!(backoff(s(15), 1, cap), s(30));
        assert_eq!(backoff(s(15), 2, cap), s(60));
        assert_eq!(backoff(s(15), 4, cap), s(240));
        assert_eq!(backoff(s(15), 5, cap), s(300));
        assert_eq!(backoff(s(15), 1000, cap), s(300));
        assert_eq!(backoff(s(1), 3, cap), s(8));
        // An interval above the cap is never shortened by it.
        assert_eq!(backoff(s(600), 3, cap), s(600));
        assert_eq!(backoff(Duration::MAX, 3, cap), Duration::MAX);
    }
}
