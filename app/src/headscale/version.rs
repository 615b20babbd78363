//! Headscale versions and the API differences the client adapts to.
//!
//! Checked against the module sources of v0.28.0 and v0.29.2
//! (`proto/headscale/v1/*.proto`, `hscontrol/grpcv1.go`, `hscontrol/types/common.go`,
//! CHANGELOG.md). The portal supports 0.28 and later (DESIGN.md §3); 0.28 is where
//! pre-auth keys became hashed, listed for all users and expired by id.

use std::fmt;

/// A released Headscale version, ordered as versions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadscaleVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// How a node waiting for an administrator is registered by its registration ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationIdForm {
    /// 0.29+: `hskey-authreq-` and 24 random characters (38 in all), registered with
    /// `POST /api/v1/auth/register` and a JSON body `{"user", "authId"}`.
    AuthRequest,
    /// 0.28: 24 random URL-safe characters, registered with
    /// `POST /api/v1/node/register?user=…&key=…`.
    Legacy,
}

impl HeadscaleVersion {
    pub const V0_28_0: HeadscaleVersion = HeadscaleVersion::new(0, 28, 0);
    pub const V0_29_0: HeadscaleVersion = HeadscaleVersion::new(0, 29, 0);
    /// The oldest version whose API this client speaks.
    pub const OLDEST_SUPPORTED: HeadscaleVersion = HeadscaleVersion::V0_28_0;

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        HeadscaleVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses what `/version` reports: `v0.29.2`, `0.29.2`, also with a pre-release or
    /// build suffix (`v0.29.0-beta.1`, `v0.29.2-dirty`), which is ignored: a 0.29
    /// pre-release already speaks 0.29's API. Development builds report `dev` and
    /// have no version to compare, so they give `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut number = || -> Option<u32> {
            let part = parts.next()?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let version = HeadscaleVersion::new(number()?, number()?, number()?);
        if parts.next().is_some() {
            return None;
        }
        Some(version)
    }

    pub fn is_supported(&self) -> bool {
        *self >= Self::OLDEST_SUPPORTED
    }

    pub fn registration_id_form(&self) -> RegistrationIdForm {
        if *self >= Self::V0_29_0 {
            RegistrationIdForm::AuthRequest
        } else {
            RegistrationIdForm::Legacy
        }
    }

    /// `ExpireNodeRequest.disable_expiry` exists only since 0.29. Sent to 0.28 it is an
    /// unknown query parameter, which grpc-gateway ignores — and the node would be
    /// expired *now* instead. So the client refuses it on 0.28.
    pub fn can_disable_node_expiry(&self) -> bool {
        *self >= Self::V0_29_0
    }

    /// `POST /api/v1/policy/check` (validate a policy, running its `tests`, without
    /// storing it) exists only since 0.29.
    pub fn can_check_policy(&self) -> bool {
        *self >= Self::V0_29_0
    }
}

impl fmt::Display for HeadscaleVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_headscale_reports() {
        let v = HeadscaleVersion::new;
        assert_eq!(HeadscaleVersion::parse("v0.29.2"), Some(v(0, 29, 2)));
        assert_eq!(HeadscaleVersion::parse("0.28.0"), Some(v(0, 28, 0)));
        assert_eq!(
            HeadscaleVersion::parse(" v0.29.0-beta.1 "),
            Some(v(0, 29, 0))
        );
        assert_eq!(HeadscaleVersion::parse("v0.29.2-dirty"), Some(v(0, 29, 2)));
        assert_eq!(HeadscaleVersion::parse("v1.2.3+build.7"), Some(v(1, 2, 3)));
        assert_eq!(HeadscaleVersion::parse("v0.30.10"), Some(v(0, 30, 10)));
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for text in [
            "dev", "", "v", "0.29", "0.29.2.1", "v0.x.1", "0.29.-1", "(devel)",
        ] {
            assert_eq!(HeadscaleVersion::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn versions_compare_numerically() {
        let v = HeadscaleVersion::new;
        assert!(v(0, 29, 2) > v(0, 29, 0));
        assert!(v(0, 29, 0) > v(0, 28, 9));
        assert!(v(0, 28, 10) > v(0, 28, 9), "not lexicographic");
        assert!(v(1, 0, 0) > v(0, 99, 99));
        assert_eq!(v(0, 29, 2).to_string(), "0.29.2");
    }

    #[test]
    fn behaviour_switches_at_0_29() {
        let v028 = HeadscaleVersion::new(0, 28, 0);
        let v029 = HeadscaleVersion::new(0, 29, 2);
        assert_eq!(v028.registration_id_form(), RegistrationIdForm::Legacy);
        assert_eq!(v029.registration_id_form(), RegistrationIdForm::AuthRequest);
        assert!(!v028.can_disable_node_expiry() && v029.can_disable_node_expiry());
        assert!(!v028.can_check_policy() && v029.can_check_policy());
        assert!(v028.is_supported() && v029.is_supported());
        assert!(!HeadscaleVersion::new(0, 27, 1).is_supported());
    }
}
