//! What the benchmarks share: the portal's configuration for a benchmark.

use app::domain::groups::RoleMapping;
use base64::Engine;
use server::config::{Config, OidcConfig, Secret, SyncConfig};
use std::error::Error;
use std::net::SocketAddr;

/// As `server/tests/common/mod.rs` configures the portal; the identity provider is never
/// contacted (nobody signs in through it here), and no background job runs.
pub fn portal_config(addr: SocketAddr) -> Result<Config, Box<dyn Error + Send + Sync>> {
    let base = format!("http://{addr}");
    Ok(Config {
        bind: addr,
        public_url: url::Url::parse(&base)?,
        database_url: Secret::new("unused: the pool is built by the benchmark"),
        migration_database_url: None,
        secret_key: Secret::new(base64::engine::general_purpose::STANDARD.encode([4u8; 32])),
        oidc: OidcConfig {
            issuer: "http://127.0.0.1:9/application/o/portal/".into(),
            client_id: "portal".into(),
            client_secret: Secret::new("unused"),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
        },
        role_mapping: RoleMapping::default(),
        session_idle: time::Duration::minutes(30),
        session_absolute: time::Duration::hours(12),
        // Server-side rendering needs no site assets.
        site_root: std::env::var("PORTAL_SITE_ROOT").unwrap_or_else(|_| "target/site".into()),
        log_json: false,
        db_max_connections: 20,
        sync: SyncConfig {
            interval: None,
            ..SyncConfig::default()
        },
    })
}
