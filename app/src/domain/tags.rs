//! Tags in a tenant's own names (`tag:server`) and on its shard (`tag:t7k2--server`,
//! DESIGN.md §2). A tenant can only ever name its own tags: every tag it gives is put
//! in its namespace, and shard tags of other namespaces are invisible to it.

/// `tag:server` → `tag:t7k2--server`. The name is 1–50 characters of a–z, 0–9 and `-`
/// (no `--`, which is the namespace separator).
pub fn shard_tag(code: &str, tenant_tag: &str) -> Result<String, String> {
    let name = tenant_tag
        .trim()
        .strip_prefix("tag:")
        .ok_or_else(|| format!("“{tenant_tag}” is not a tag: tags start with tag:"))?;
    if !is_name(name) {
        return Err(format!(
            "“{tenant_tag}” is not a valid tag: after tag: use lowercase letters, digits and \
             single hyphens (at most 50)."
        ));
    }
    Ok(format!("tag:{code}--{name}"))
}

/// A tenant's own name for a tag, group or host: 1–50 characters of a–z, 0–9 and single
/// hyphens (never `--`, the namespace separator on shards).
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// `tag:t7k2--server` → `tag:server` for tenant `t7k2`; another tenant's tag → `None`.
pub fn tenant_tag(code: &str, shard_tag: &str) -> Option<String> {
    let rest = shard_tag.strip_prefix("tag:")?;
    let name = rest.strip_prefix(code)?.strip_prefix("--")?;
    (!name.is_empty()).then(|| format!("tag:{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_move_into_the_tenants_namespace_and_back() {
        assert_eq!(shard_tag("t7k2", "tag:server").unwrap(), "tag:t7k2--server");
        assert_eq!(
            tenant_tag("t7k2", "tag:t7k2--server").as_deref(),
            Some("tag:server")
        );
        for bad in [
            "server",
            "tag:",
            "tag:Server",
            "tag:a--b",
            "tag:-a",
            "tag:a b",
        ] {
            assert!(shard_tag("t7k2", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn another_tenants_tags_are_invisible() {
        assert_eq!(tenant_tag("t7k2", "tag:g4x9--server"), None);
        // A code that is a prefix of another is not confused with it.
        assert_eq!(tenant_tag("t7k2", "tag:t7k2x--server"), None);
        assert_eq!(tenant_tag("t7k2", "tag:server"), None);
    }
}
