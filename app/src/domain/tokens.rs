//! API tokens (docs/api.md): their text, what a new one may be, and the role a token
//! acts with. A token acts for the person who made it, never above that person's role
//! now: its role ceiling caps it, and a ceiling the maker no longer covers stops it.

use crate::domain::role::{Permission, TenantRole};

/// Every token starts with this, so secret scanners (and people) recognise one.
pub const PREFIX: &str = "hsp_";
/// Random bytes in a token (hex-encoded after the prefix).
pub const SECRET_BYTES: usize = 32;
/// Longest lifetime a token may be given, in days.
pub const MAX_EXPIRY_DAYS: u32 = 365;
/// Characters of the secret shown in lists to tell tokens apart.
pub const HINT_LEN: usize = 8;

/// A token's text from its random bytes.
pub fn format_secret(bytes: &[u8; SECRET_BYTES]) -> String {
    let mut s = String::with_capacity(PREFIX.len() + 2 * SECRET_BYTES);
    s.push_str(PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Whether `text` has the shape of a token (checked before any lookup).
pub fn looks_like_token(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|hex| {
        hex.len() == 2 * SECRET_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What a list shows of a token: `hsp_3f9a01c2…`.
pub fn hint(text: &str) -> String {
    let hex = text.strip_prefix(PREFIX).unwrap_or(text);
    format!("{PREFIX}{}…", &hex[..HINT_LEN.min(hex.len())])
}

/// Whether a person with role `holder` may do everything `ceiling` allows: the rule for
/// making a token with that ceiling, and for the token to keep working.
pub fn covers(holder: TenantRole, ceiling: TenantRole) -> bool {
    Permission::ALL
        .into_iter()
        .all(|p| !ceiling.allows(p) || holder.allows(p))
}

/// A new token, as asked for in the form or the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub name: String,
    pub expiry_days: u32,
    /// For tenant tokens; `None` for operator tokens.
    pub ceiling: Option<TenantRole>,
}

impl TokenRequest {
    /// Checks a tenant token's request made by someone with role `maker`.
    pub fn tenant(
        name: &str,
        ceiling: &str,
        expiry_days: &str,
        maker: TenantRole,
    ) -> Result<TokenRequest, String> {
        let name = parse_name(name)?;
        let ceiling = TenantRole::parse(ceiling.trim()).ok_or_else(|| {
            format!(
                "“{}” is not a role. Choose one of: {}.",
                ceiling.trim(),
                TenantRole::ALL.map(|r| r.as_str()).join(", ")
            )
        })?;
        if !covers(maker, ceiling) {
            return Err(format!(
                "A token cannot do more than the person who makes it: as {} you can give it \
                 at most your own role.",
                maker.label()
            ));
        }
        Ok(TokenRequest {
            name,
            expiry_days: parse_expiry(expiry_days)?,
            ceiling: Some(ceiling),
        })
    }

    /// Checks an operator token's request.
    pub fn operator(name: &str, expiry_days: &str) -> Result<TokenRequest, String> {
        Ok(TokenRequest {
            name: parse_name(name)?,
            expiry_days: parse_expiry(expiry_days)?,
            ceiling: None,
        })
    }
}

fn parse_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("Give the token a name that says where it is used, like “GitOps CI”.".into());
    }
    if name.chars().count() > 80 {
        return Err("A token's name can be at most 80 characters long.".into());
    }
    if name.chars().any(char::is_control) {
        return Err("A token's name cannot contain control characters.".into());
    }
    Ok(name.to_string())
}

fn parse_expiry(days: &str) -> Result<u32, String> {
    match days.trim().parse::<u32>() {
        Ok(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Ok(d),
        _ => Err(format!(
            "A token expires after 1 to {MAX_EXPIRY_DAYS} days; give a whole number of days."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_its_prefix_and_64_hex_digits() {
        let t = format_secret(&[0xab; SECRET_BYTES]);
        assert!(t.starts_with("hsp_abab"));
        assert_eq!(t.len(), 4 + 64);
        assert!(looks_like_token(&t));
        assert_eq!(hint(&t), "hsp_abababab…");
        for bad in [
            "",
            "hsp_",
            "hsp_ABAB",
            &t[..t.len() - 1],
            &format!("{t}0"),
            &t.replace("hsp_", "hsk_"),
        ] {
            assert!(!looks_like_token(bad), "{bad}");
        }
    }

    #[test]
    fn a_role_covers_itself_and_what_it_includes() {
        use TenantRole as R;
        for r in TenantRole::ALL {
            assert!(covers(r, r), "{r:?}");
            assert!(covers(R::Owner, r), "{r:?}");
            assert!(covers(r, R::Member), "{r:?}");
        }
        assert!(!covers(R::Member, R::Admin));
        assert!(!covers(R::NetworkAdmin, R::ItAdmin));
        assert!(!covers(R::Auditor, R::BillingAdmin));
        assert!(covers(R::Admin, R::NetworkAdmin));
    }

    #[test]
    fn a_request_is_checked_with_a_sentence() {
        let ok =
            TokenRequest::tenant(" GitOps ", "network_admin", "90", TenantRole::Admin).unwrap();
        assert_eq!(ok.name, "GitOps");
        assert_eq!(ok.ceiling, Some(TenantRole::NetworkAdmin));
        assert!(
            TokenRequest::tenant("x", "admin", "30", TenantRole::NetworkAdmin)
                .unwrap_err()
                .contains("at most your own role")
        );
        assert!(TokenRequest::tenant("x", "root", "30", TenantRole::Owner)
            .unwrap_err()
            .contains("not a role"));
        for days in ["0", "366", "-1", "soon", ""] {
            assert!(
                TokenRequest::tenant("x", "member", days, TenantRole::Owner).is_err(),
                "{days}"
            );
        }
        assert!(TokenRequest::operator("  ", "30").is_err());
        assert!(TokenRequest::operator(&"x".repeat(81), "30").is_err());
        assert!(TokenRequest::operator("ops", "365").is_ok());
    }
}
