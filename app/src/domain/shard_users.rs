//! Members on shards (DESIGN.md §2): which Headscale users a shard must have, and what
//! to do about each, given the users it has.
//!
//! The rule is by name only: a member's user is `<code>.<handle>`. A user of that name
//! already on the shard is adopted (it is the answer of an earlier create that got lost,
//! or one an operator made by hand; Headscale cannot move nodes between users anyway),
//! so reconciling is idempotent and needs no memory of earlier attempts. Users the portal
//! does not want are left alone: removing members is a separate, documented rule.

/// A member that must have a user on the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedUser<K> {
    pub key: K,
    /// `<code>.<handle>`.
    pub user_name: String,
    /// The Headscale user id the portal has on record for this member, if any.
    pub recorded: Option<u64>,
}

/// What to do for one wanted member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction<K> {
    /// The shard has the user and the portal's record says so.
    InPlace,
    /// The shard has the user; record its id (`recorded` was missing or different).
    Record { key: K, user_id: u64 },
    /// The shard has no such user: create it, then record it.
    Create { key: K, user_name: String },
}

/// `t7k2` + `alice` → `t7k2.alice`.
pub fn user_name(code: &str, handle: &str) -> String {
    format!("{code}.{handle}")
}

/// One action per wanted member, in the order given. `existing` is every user of the
/// shard as (name, id).
pub fn reconcile<K: Clone>(
    wanted: &[WantedUser<K>],
    existing: &[(String, u64)],
) -> Vec<UserAction<K>> {
    let by_name: std::collections::HashMap<&str, u64> =
        existing.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    wanted
        .iter()
        .map(|w| match by_name.get(w.user_name.as_str()) {
            Some(&id) if w.recorded == Some(id) => UserAction::InPlace,
            Some(&id) => UserAction::Record {
                key: w.key.clone(),
                user_id: id,
            },
            None => UserAction::Create {
                key: w.key.clone(),
                user_name: w.user_name.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(key: u8, name: &str, recorded: Option<u64>) -> WantedUser<u8> {
        WantedUser {
            key,
            user_name: name.into(),
            recorded,
        }
    }

    #[test]
    fn names_join_code_and_handle_with_a_dot() {
        assert_eq!(user_name("t7k2", "alice"), "t7k2.alice");
    }

    #[test]
    fn missing_users_are_created_and_present_ones_recorded_once() {
        let wanted = [
            want(1, "t7k2.alice", Some(4)),
            want(2, "t7k2.bob", None),
            want(3, "t7k2.carol", None),
            want(4, "abcd.alice", Some(9)),
        ];
        let existing = [
            ("t7k2.alice".to_string(), 4),
            ("t7k2.bob".to_string(), 5),
            ("abcd.alice".to_string(), 10),
            ("someone-else".to_string(), 11),
        ];
        assert_eq!(
            reconcile(&wanted, &existing),
            vec![
                UserAction::InPlace,
                UserAction::Record { key: 2, user_id: 5 },
                UserAction::Create {
                    key: 3,
                    user_name: "t7k2.carol".into()
                },
                // A user recreated by hand under the same name is the member's now.
                UserAction::Record {
                    key: 4,
                    user_id: 10
                },
            ]
        );
    }

    #[test]
    fn reconciling_what_reconciling_produced_does_nothing() {
        let wanted = [want(1, "t7k2.alice", None), want(2, "t7k2.bob", None)];
        // After the first round created both (ids 7, 8) and recorded them:
        let existing = [("t7k2.alice".to_string(), 7), ("t7k2.bob".to_string(), 8)];
        let recorded = [want(1, "t7k2.alice", Some(7)), want(2, "t7k2.bob", Some(8))];
        assert!(matches!(
            reconcile(&wanted, &[])[..],
            [UserAction::Create { .. }, UserAction::Create { .. }]
        ));
        assert!(reconcile(&recorded, &existing)
            .iter()
            .all(|a| *a == UserAction::InPlace));
    }

    #[test]
    fn a_user_deleted_on_the_shard_is_created_again() {
        let wanted = [want(1, "t7k2.alice", Some(7))];
        assert_eq!(
            reconcile(&wanted, &[]),
            vec![UserAction::Create {
                key: 1,
                user_name: "t7k2.alice".into()
            }]
        );
    }
}
