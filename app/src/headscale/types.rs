//! What the portal reads from and sends to a shard, shaped as Headscale's REST JSON
//! (grpc-gateway's protojson: lowerCamelCase names, 64-bit ids as strings of digits,
//! RFC 3339 timestamps, unset messages as `null`, enums by name).
//!
//! Normalised on the way in, so callers need not know Headscale's quirks:
//! - a tagged node has no user (`user: None`). Since 0.28 a node is owned by its tags
//!   XOR a user, but the API shows it three ways: ListNodes substitutes a pseudo-user
//!   `tagged-devices` (id 2147455555), 0.29's GetNode/SetTags send `user: null`, and
//!   0.28 keeps the former owner in the row ("created by") and shows it;
//! - a node that never expires has `expiry: None`, whether Headscale sent `null` or
//!   the zero time `0001-01-01T00:00:00Z` (0.28 stored that for "no expiry"; 0.29
//!   back-fills it to NULL — CHANGELOG 0.29.0, #3197, #3284);
//! - a pre-auth key never carries its secret: lists show `hskey-auth-<prefix>-***`
//!   (0.28+ stores only a hash), and keys from before 0.28, which Headscale still
//!   lists in full, are masked here.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The pseudo-user ListNodes shows as the owner of tagged nodes
/// (hscontrol/types/users.go `TaggedDevicesUserID`).
const TAGGED_DEVICES_USER_ID: u64 = 2_147_455_555;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_u64(d).map($name)
            }
        }
    };
}

id_type!(
    /// A Headscale user id.
    UserId
);
id_type!(
    /// A Headscale node id.
    NodeId
);
id_type!(
    /// A Headscale pre-auth key id.
    PreAuthKeyId
);
id_type!(
    /// A Headscale API key id.
    ApiKeyId
);

/// protojson writes uint64 as a string of digits; accept a bare number too.
fn deserialize_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().map_err(D::Error::custom)
        }
        Raw::Text(t) => Err(D::Error::custom(format!("not an id: {t:?}"))),
    }
}

/// `null` (or a missing field, with `#[serde(default)]`) as the type's default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Optional RFC 3339 timestamps (`null` → `None`).
mod timestamp {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&t.format(&Rfc3339).map_err(serde::ser::Error::custom)?),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| OffsetDateTime::parse(&t, &Rfc3339).map_err(D::Error::custom))
            .transpose()
    }
}

/// Whether a timestamp is Go's zero time (`0001-01-01T00:00:00Z`), i.e. "not set".
fn is_zero_time(t: &OffsetDateTime) -> bool {
    t.year() <= 1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub display_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub email: String,
    /// `oidc` for users created by an OIDC login; empty for users made through the API.
    #[serde(default, deserialize_with = "null_as_default")]
    pub provider: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub provider_id: String,
    #[serde(default, with = "timestamp")]
    pub created_at: Option<OffsetDateTime>,
}

/// A new user. Since 0.28 names need not be email-like; the portal uses
/// `<tenant code>.<member>` (DESIGN.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewUser {
    pub name: String,
    pub display_name: String,
    pub email: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RegisterMethod {
    #[serde(rename = "REGISTER_METHOD_AUTH_KEY")]
    AuthKey,
    #[serde(rename = "REGISTER_METHOD_CLI")]
    Cli,
    #[serde(rename = "REGISTER_METHOD_OIDC")]
    Oidc,
    #[default]
    #[serde(rename = "REGISTER_METHOD_UNSPECIFIED", other)]
    Unspecified,
}

/// A node (device) as the portal needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "NodeWire")]
pub struct Node {
    pub id: NodeId,
    /// The hostname the client reported.
    pub name: String,
    /// The MagicDNS name (unique on the shard; what `rename` changes).
    pub given_name: String,
    /// The owning user; `None` exactly when the node is tagged (tags XOR user, 0.28+).
    pub user: Option<User>,
    pub tags: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub online: bool,
    #[serde(serialize_with = "timestamp::serialize")]
    pub last_seen: Option<OffsetDateTime>,
    /// When the node key expires; `None`: never.
    #[serde(serialize_with = "timestamp::serialize")]
    pub expiry: Option<OffsetDateTime>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: Option<OffsetDateTime>,
    pub register_method: RegisterMethod,
    /// Routes the node advertises.
    pub available_routes: Vec<String>,
    /// Routes an administrator (or an autoApprover) allowed.
    pub approved_routes: Vec<String>,
    /// Routes the node actually serves now (Headscale elects one primary per prefix).
    pub subnet_routes: Vec<String>,
    /// The key the node registered with, if it did with one.
    pub pre_auth_key: Option<PreAuthKey>,
}

impl Node {
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeWire {
    id: NodeId,
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    given_name: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default, deserialize_with = "null_as_default")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    ip_addresses: Vec<IpAddr>,
    #[serde(default, deserialize_with = "null_as_default")]
    online: bool,
    #[serde(default, with = "timestamp")]
    last_seen: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp")]
    expiry: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp")]
    created_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "null_as_default")]
    register_method: RegisterMethod,
    #[serde(default, deserialize_with = "null_as_default")]
    available_routes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    approved_routes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    subnet_routes: Vec<String>,
    #[serde(default)]
    pre_auth_key: Option<PreAuthKey>,
}

impl From<NodeWire> for Node {
    fn from(w: NodeWire) -> Self {
        let tagged = !w.tags.is_empty();
        let user = w
            .user
            .filter(|u| !tagged && u.id.0 != TAGGED_DEVICES_USER_ID);
        Node {
            id: w.id,
            name: w.name,
            given_name: w.given_name,
            user,
            tags: w.tags,
            ip_addresses: w.ip_addresses,
            online: w.online,
            last_seen: w.last_seen.filter(|t| !is_zero_time(t)),
            expiry: w.expiry.filter(|t| !is_zero_time(t)),
            created_at: w.created_at.filter(|t| !is_zero_time(t)),
            register_method: w.register_method,
            available_routes: w.available_routes,
            approved_routes: w.approved_routes,
            subnet_routes: w.subnet_routes,
            pre_auth_key: w.pre_auth_key,
        }
    }
}

/// A pre-auth key as listed. The secret is never here (see `CreatedPreAuthKey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "PreAuthKeyWire")]
pub struct PreAuthKey {
    pub id: PreAuthKeyId,
    /// `hskey-auth-<12-char prefix>-***`; `***` for keys made before 0.28.
    #[serde(rename = "key")]
    pub masked_key: String,
    /// The owner; `None` for a tagged key.
    pub user: Option<User>,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    /// When the key stops working. `expire` sets it to now.
    #[serde(serialize_with = "timestamp::serialize")]
    pub expiration: Option<OffsetDateTime>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: Option<OffsetDateTime>,
    pub acl_tags: Vec<String>,
}

impl PreAuthKey {
    /// The 12-character prefix that identifies the key (what the portal stores).
    pub fn prefix(&self) -> Option<&str> {
        pre_auth_key_prefix(&self.masked_key)
    }

    /// Headscale's own rule (types.PreAuthKey.Validate): a key whose expiration is
    /// before now is expired — the zero time included.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// Whether a node could register with this key now.
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        !self.is_expired(now) && (self.reusable || !self.used)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreAuthKeyWire {
    id: PreAuthKeyId,
    #[serde(default, deserialize_with = "null_as_default")]
    key: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default, deserialize_with = "null_as_default")]
    reusable: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    ephemeral: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    used: bool,
    #[serde(default, with = "timestamp")]
    expiration: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp")]
    created_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "null_as_default")]
    acl_tags: Vec<String>,
}

impl From<PreAuthKeyWire> for PreAuthKey {
    fn from(w: PreAuthKeyWire) -> Self {
        PreAuthKey {
            id: w.id,
            masked_key: mask_pre_auth_key(&w.key),
            user: w.user,
            reusable: w.reusable,
            ephemeral: w.ephemeral,
            used: w.used,
            expiration: w.expiration,
            created_at: w.created_at,
            acl_tags: w.acl_tags,
        }
    }
}

const AUTH_KEY_PREFIX: &str = "hskey-auth-";
/// hscontrol/db/preauth_keys.go `authKeyPrefixLength`.
const AUTH_KEY_PREFIX_LEN: usize = 12;

fn is_url_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn pre_auth_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(AUTH_KEY_PREFIX)?;
    let prefix = rest.get(..AUTH_KEY_PREFIX_LEN)?;
    (is_url_safe(prefix) && rest[AUTH_KEY_PREFIX_LEN..].starts_with('-')).then_some(prefix)
}

/// `hskey-auth-<prefix>-<secret>` or Headscale's masked form → `hskey-auth-<prefix>-***`;
/// anything else (a pre-0.28 plaintext key) → `***`.
pub(super) fn mask_pre_auth_key(key: &str) -> String {
    match pre_auth_key_prefix(key) {
        Some(prefix) => format!("{AUTH_KEY_PREFIX}{prefix}-***"),
        None => "***".to_string(),
    }
}

/// A new pre-auth key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPreAuthKey {
    /// The owner; `None` for a tagged key, whose nodes are owned by `acl_tags`.
    pub user: Option<UserId>,
    pub reusable: bool,
    pub ephemeral: bool,
    /// Required: Headscale stores a missing expiration as the zero time, which makes
    /// the key expired from the start.
    pub expiration: OffsetDateTime,
    pub acl_tags: Vec<String>,
}

impl NewPreAuthKey {
    /// Whether `key` is the one this request made, known only by what was sent: when a
    /// mint's answer is lost (a timeout, a reset connection), the shard may have made
    /// the key and nobody has its secret. The expiration was sent to the nanosecond and
    /// comes back within a millisecond; with the owner, flags and tags, no other mint
    /// matches.
    pub fn made(&self, key: &PreAuthKey) -> bool {
        let owner = key.user.as_ref().map(|u| u.id);
        let mut sent = self.acl_tags.clone();
        let mut has = key.acl_tags.clone();
        sent.sort();
        has.sort();
        owner == self.user
            && key.reusable == self.reusable
            && key.ephemeral == self.ephemeral
            && sent == has
            && key
                .expiration
                .is_some_and(|e| (e - self.expiration).abs() < time::Duration::milliseconds(1))
    }
}

/// A key just minted: its full text, shown once, and what the list will show later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPreAuthKey {
    pub pre_auth_key: PreAuthKey,
    pub secret: super::secret::PreAuthKeySecret,
}

/// An API key of the shard (never its secret; Headscale lists only a masked prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    /// `hskey-api-<prefix>-***`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub prefix: String,
    #[serde(default, with = "timestamp")]
    pub expiration: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "timestamp")]
    pub last_seen: Option<OffsetDateTime>,
}

/// The shard's policy as stored (HuJSON text, exactly as it was set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default, deserialize_with = "null_as_default")]
    pub policy: String,
    #[serde(default, with = "timestamp")]
    pub updated_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    // Shapes as the real v0.29.2 server sends them.
    const USER: &str = r#"{"id":"1", "name":"t1.alice", "createdAt":"2026-11-22T00:40:55.211817117Z", "displayName":"Alice", "email":"alice@acme.com", "providerId":"", "provider":"", "profilePicUrl":""}"#;

    #[test]
    fn a_lost_mint_is_known_by_what_was_sent() {
        let sent = NewPreAuthKey {
            user: Some(UserId(1)),
            reusable: false,
            ephemeral: true,
            expiration: datetime!(2026-11-29 00:42:12.570108360 UTC),
            acl_tags: vec!["tag:t1-b".into(), "tag:t1-a".into()],
        };
        let key = |user: &str, ephemeral: bool, expiration: &str, tags: &str| -> PreAuthKey {
            serde_json::from_str(&format!(
                r#"{{"user":{user}, "id":"4", "key":"hskey-auth-VXDxAkKVgUkL-***", "reusable":false,
                "ephemeral":{ephemeral}, "used":false, "expiration":"{expiration}",
                "createdAt":"2026-11-22T00:42:12.570108360Z", "aclTags":{tags}}}"#
            ))
            .unwrap()
        };
        let tags = r#"["tag:t1-a","tag:t1-b"]"#;
        // Stored to the microsecond, tags in another order: still the same mint.
        assert!(sent.made(&key(USER, true, "2026-11-29T00:42:12.570108Z", tags)));
        assert!(sent.made(&key(USER, true, "2026-11-29T00:42:12.570108360Z", tags)));
        // Anything else differs: another mint.
        assert!(!sent.made(&key(USER, false, "2026-11-29T00:42:12.570108Z", tags)));
        assert!(!sent.made(&key(USER, true, "2026-11-29T00:42:12.580108Z", tags)));
        assert!(!sent.made(&key(
            USER,
            true,
            "2026-11-29T00:42:12.570108Z",
            r#"["tag:t1-a"]"#
        )));
        assert!(!sent.made(&key("null", true, "2026-11-29T00:42:12.570108Z", tags)));
        let other = USER.replace(r#""id":"1""#, r#""id":"2""#);
        assert!(!sent.made(&key(&other, true, "2026-11-29T00:42:12.570108Z", tags)));
    }

    fn node_json(user: &str, tags: &str, expiry: &str) -> String {
        format!(
            r#"{{"id":"2", "machineKey":"mkey:49", "nodeKey":"nodekey:f7", "discoKey":"discokey:49",
            "ipAddresses":["100.64.0.2", "fd7a:115c:a1e0::2"], "name":"hsc-n2", "user":{user},
            "lastSeen":"2026-11-22T00:42:27.987792115Z", "expiry":{expiry},
            "preAuthKey":{{"user":{USER}, "id":"4", "key":"hskey-auth-VXDxAkKVgUkL-***", "reusable":false,
              "ephemeral":false, "used":true, "expiration":"2026-11-22T01:42:12Z",
              "createdAt":"2026-11-22T00:42:12.570108360Z", "aclTags":[]}},
            "createdAt":"2026-11-22T00:42:23.185008316Z", "registerMethod":"REGISTER_METHOD_CLI",
            "givenName":"good-name", "online":true, "approvedRoutes":["10.9.0.0/24"],
            "availableRoutes":[], "subnetRoutes":[], "tags":{tags}}}"#
        )
    }

    #[test]
    fn ids_are_strings_of_digits() {
        let id: NodeId = serde_json::from_str(r#""42""#).unwrap();
        assert_eq!(id, NodeId(42));
        assert_eq!(serde_json::from_str::<NodeId>("42").unwrap(), NodeId(42));
        assert_eq!(serde_json::to_string(&UserId(7)).unwrap(), r#""7""#);
        assert!(serde_json::from_str::<NodeId>(r#""-1""#).is_err());
        assert!(serde_json::from_str::<NodeId>(r#""""#).is_err());
    }

    #[test]
    fn a_user_owned_node_reads_fully() {
        let node: Node = serde_json::from_str(&node_json(USER, "[]", "null")).unwrap();
        assert_eq!(node.id, NodeId(2));
        assert_eq!(node.name, "hsc-n2");
        assert_eq!(node.given_name, "good-name");
        assert_eq!(node.user.as_ref().unwrap().name, "t1.alice");
        assert_eq!(node.ip_addresses.len(), 2);
        assert!(node.online);
        assert_eq!(node.expiry, None);
        assert_eq!(
            node.last_seen,
            Some(datetime!(2026-11-22 00:42:27.987792115 UTC))
        );
        assert_eq!(node.register_method, RegisterMethod::Cli);
        assert_eq!(node.approved_routes, vec!["10.9.0.0/24".to_string()]);
        let key = node.pre_auth_key.as_ref().unwrap();
        assert_eq!(key.id, PreAuthKeyId(4));
        assert_eq!(key.prefix(), Some("VXDxAkKVgUkL"));
        assert!(!node.is_tagged());
    }

    #[test]
    fn a_tagged_node_has_no_user_however_headscale_shows_it() {
        let pseudo = r#"{"id":"2147455555", "name":"tagged-devices", "createdAt":"0001-01-01T00:00:00Z", "displayName":"Tagged Devices"}"#;
        for user in [pseudo, "null", USER] {
            let node: Node =
                serde_json::from_str(&node_json(user, r#"["tag:server"]"#, "null")).unwrap();
            assert_eq!(node.user, None, "user {user}");
            assert!(node.is_tagged());
        }
    }

    #[test]
    fn zero_or_null_expiry_means_never() {
        for expiry in ["null", r#""0001-01-01T00:00:00Z""#] {
            let node: Node = serde_json::from_str(&node_json(USER, "[]", expiry)).unwrap();
            assert_eq!(node.expiry, None, "{expiry}");
            assert!(!node.is_expired(OffsetDateTime::now_utc()));
        }
        let node: Node = serde_json::from_str(&node_json(
            USER,
            "[]",
            r#""2026-11-22T00:42:28.566218865Z""#,
        ))
        .unwrap();
        assert!(node.is_expired(datetime!(2026-11-23 0:00 UTC)));
    }

    #[test]
    fn nodes_survive_a_round_trip() {
        let node: Node = serde_json::from_str(&node_json(USER, "[]", "null")).unwrap();
        let again: Node = serde_json::from_str(&serde_json::to_string(&node).unwrap()).unwrap();
        assert_eq!(node, again);
    }

    #[test]
    fn unknown_register_methods_read_as_unspecified() {
        let m: RegisterMethod = serde_json::from_str(r#""REGISTER_METHOD_SOMETHING_NEW""#).unwrap();
        assert_eq!(m, RegisterMethod::Unspecified);
    }

    #[test]
    fn pre_auth_keys_never_hold_the_secret() {
        let full = r#"{"id":"1","key":"hskey-auth-rPnH4c_VPyab-AneLAPPewmNVAMoZ1dXyAlwWDVgaV4A4i4Xnt","reusable":false,"ephemeral":false,"used":false,"expiration":"0001-01-01T00:00:00Z","aclTags":[]}"#;
        let key: PreAuthKey = serde_json::from_str(full).unwrap();
        assert_eq!(key.masked_key, "hskey-auth-rPnH4c_VPyab-***");
        assert_eq!(key.prefix(), Some("rPnH4c_VPyab"));
        // The zero time is a real expiration for keys: Headscale treats it as expired.
        assert!(key.is_expired(OffsetDateTime::now_utc()));
        assert!(!key.is_usable(OffsetDateTime::now_utc()));

        let legacy = r#"{"id":"2","key":"4f2b0e1c9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f00","user":null,"expiration":null}"#;
        let key: PreAuthKey = serde_json::from_str(legacy).unwrap();
        assert_eq!(key.masked_key, "***");
        assert_eq!(key.prefix(), None);
        assert!(key.is_usable(OffsetDateTime::now_utc()));
    }

    #[test]
    fn masking_keeps_only_the_prefix() {
        assert_eq!(
            mask_pre_auth_key("hskey-auth-VXDxAkKVgUkL--RKXsQB4g"),
            "hskey-auth-VXDxAkKVgUkL-***"
        );
        assert_eq!(
            mask_pre_auth_key("hskey-auth-VXDxAkKVgUkL-***"),
            "hskey-auth-VXDxAkKVgUkL-***"
        );
        assert_eq!(mask_pre_auth_key("hskey-auth-short"), "***");
        assert_eq!(mask_pre_auth_key("hskey-auth-VXDxAkKVgUkLx"), "***");
        assert_eq!(mask_pre_auth_key(""), "***");
    }

    #[test]
    fn api_keys_and_policies_read() {
        let k: ApiKeyInfo = serde_json::from_str(r#"{"id":"1", "prefix":"hskey-api-4qmwArIBbS5Z-***", "expiration":"2027-11-22T00:40:52.029929080Z", "createdAt":"2026-11-22T00:40:52.089604124Z", "lastSeen":null}"#).unwrap();
        assert_eq!(k.id, ApiKeyId(1));
        assert_eq!(k.last_seen, None);
        let p: Policy = serde_json::from_str(
            r#"{"policy":"{}", "updatedAt":"2026-11-22T00:41:04.715344894Z"}"#,
        )
        .unwrap();
        assert_eq!(p.policy, "{}");
    }
}
