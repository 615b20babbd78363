//! Configuration from environment variables (documented in docs/configuration.md).
//! Secrets are wrapped so `Debug` never prints them.

use app::domain::groups::RoleMapping;
use base64::Engine;
use std::net::SocketAddr;
use time::Duration;
use url::Url;

/// A value that must never reach a log line.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Exact issuer, e.g. `https://auth.example.com/application/o/portal/` (Authentik's
    /// issuers end with a slash; the ID token's `iss` must match byte for byte).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub public_url: Url,
    pub database_url: Secret,
    /// The owner role's URL. When set, `serve` applies migrations at start.
    pub migration_database_url: Option<Secret>,
    pub secret_key: Secret,
    pub oidc: OidcConfig,
    pub role_mapping: RoleMapping,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub site_root: String,
    pub log_json: bool,
    pub db_max_connections: u32,
    pub sync: SyncConfig,
    pub limits: Limits,
    pub resilience: Resilience,
}

/// Deadlines, draining and the metrics listener (docs/reliability.md, docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    /// `PORTAL_REQUEST_TIMEOUT_SECONDS` (default 15): a request without a response head
    /// by then is answered 503.
    pub request_timeout: std::time::Duration,
    /// `PORTAL_DB_ACQUIRE_TIMEOUT_SECONDS` (default 3): how long a request waits for a
    /// database connection before it is answered 503.
    pub db_acquire_timeout: std::time::Duration,
    /// `PORTAL_SHUTDOWN_GRACE_SECONDS` (default 20): after SIGTERM, how long requests in
    /// flight and background work may take to finish. Keep it below the pod's
    /// `terminationGracePeriodSeconds`.
    pub shutdown_grace: std::time::Duration,
    /// `PORTAL_METRICS_BIND` (e.g. `0.0.0.0:9464`): where `/metrics` is served; not on
    /// the public listener. Unset: no metrics listener.
    pub metrics_bind: Option<SocketAddr>,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            request_timeout: std::time::Duration::from_secs(15),
            db_acquire_timeout: std::time::Duration::from_secs(3),
            shutdown_grace: std::time::Duration::from_secs(20),
            metrics_bind: None,
        }
    }
}

/// Rate limits (docs/api.md): each API token, and sign-ins per client address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `PORTAL_API_RATE_PER_MINUTE`, `PORTAL_API_BURST` (default 600/min, burst 120).
    pub api: crate::rest::ratelimit::Rate,
    /// `PORTAL_LOGIN_RATE_PER_MINUTE`, `PORTAL_LOGIN_BURST` (default 30/min, burst 20).
    pub login: crate::rest::ratelimit::Rate,
    /// `PORTAL_TRUST_FORWARDED_FOR=true`: the client address is the last entry of
    /// `X-Forwarded-For` (set it behind exactly one proxy, e.g. the ingress).
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::rest::ratelimit::Rate;
        Limits {
            api: Rate {
                per_minute: 600,
                burst: 120,
            },
            login: Rate {
                per_minute: 30,
                burst: 20,
            },
            trust_forwarded_for: false,
        }
    }
}

/// The background sync of shards into Postgres (`jobs::sync`).
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Time between two syncs of a healthy shard; `None` (`PORTAL_SYNC_INTERVAL_SECONDS=0`):
    /// this replica runs no sync (other replicas do the work).
    pub interval: Option<std::time::Duration>,
    /// Shards synced at once by this replica.
    pub concurrency: usize,
    /// How often each shard's usage is rolled up (`PORTAL_USAGE_ROLLUP_SECONDS`); runs
    /// with the sync, `None` when the sync is off.
    pub usage_every: std::time::Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval: Some(std::time::Duration::from_secs(15)),
            concurrency: 4,
            usage_every: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> Result<String, ConfigError> {
    var(name).ok_or_else(|| ConfigError(format!("{name} is required")))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be a whole number, got {v:?}"))),
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let public_url =
            Url::parse(&var("PORTAL_PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:3000".into()))
                .map_err(|e| ConfigError(format!("PORTAL_PUBLIC_URL is not a URL: {e}")))?;
        if !matches!(public_url.scheme(), "http" | "https") {
            return Err(ConfigError(
                "PORTAL_PUBLIC_URL must be http or https".into(),
            ));
        }
        let bind = var("PORTAL_BIND")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|_| ConfigError("PORTAL_BIND must be host:port, e.g. 0.0.0.0:3000".into()))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(required("PORTAL_SECRET_KEY")?.trim())
            .map_err(|_| {
                ConfigError("PORTAL_SECRET_KEY must be base64 (openssl rand -base64 32)".into())
            })?;
        if key.len() != 32 {
            return Err(ConfigError(
                "PORTAL_SECRET_KEY must decode to exactly 32 bytes".into(),
            ));
        }
        let issuer = required("OIDC_ISSUER_URL")?;
        Url::parse(&issuer)
            .map_err(|e| ConfigError(format!("OIDC_ISSUER_URL is not a URL: {e}")))?;
        let split = |s: String| -> Vec<String> {
            s.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let idle_minutes: i64 = number("PORTAL_SESSION_IDLE_MINUTES", 30)?;
        let absolute_hours: i64 = number("PORTAL_SESSION_ABSOLUTE_HOURS", 12)?;
        if idle_minutes <= 0 || absolute_hours <= 0 {
            return Err(ConfigError("session timeouts must be positive".into()));
        }
        let sync_seconds: u64 = number("PORTAL_SYNC_INTERVAL_SECONDS", 15)?;
        let sync_concurrency: usize = number("PORTAL_SYNC_CONCURRENCY", 4)?;
        if !(1..=64).contains(&sync_concurrency) {
            return Err(ConfigError(
                "PORTAL_SYNC_CONCURRENCY must be from 1 to 64".into(),
            ));
        }
        let usage_seconds: u64 = number("PORTAL_USAGE_ROLLUP_SECONDS", 60)?;
        if !(1..=3600).contains(&usage_seconds) {
            return Err(ConfigError(
                "PORTAL_USAGE_ROLLUP_SECONDS must be from 1 to 3600".into(),
            ));
        }
        Ok(Config {
            bind,
            public_url,
            database_url: Secret::new(required("DATABASE_URL")?),
            migration_database_url: var("DATABASE_MIGRATION_URL").map(Secret::new),
            secret_key: Secret::new(base64::engine::general_purpose::STANDARD.encode(key)),
            oidc: OidcConfig {
                issuer,
                client_id: required("OIDC_CLIENT_ID")?,
                client_secret: Secret::new(required("OIDC_CLIENT_SECRET")?),
                scopes: split(var("OIDC_SCOPES").unwrap_or_else(|| "openid profile email".into())),
            },
            role_mapping: RoleMapping {
                operator_groups: split(
                    var("PORTAL_OPERATOR_GROUPS").unwrap_or_else(|| "portal-operators".into()),
                ),
                tenant_group_prefix: var("PORTAL_TENANT_GROUP_PREFIX")
                    .unwrap_or_else(|| "tenant:".into()),
            },
            session_idle: Duration::minutes(idle_minutes),
            session_absolute: Duration::hours(absolute_hours),
            site_root: var("PORTAL_SITE_ROOT").unwrap_or_else(|| "target/site".into()),
            log_json: var("PORTAL_LOG_FORMAT").as_deref() == Some("json"),
            db_max_connections: number("PORTAL_DB_MAX_CONNECTIONS", 20)?,
            sync: SyncConfig {
                interval: (sync_seconds > 0).then(|| std::time::Duration::from_secs(sync_seconds)),
                concurrency: sync_concurrency,
                usage_every: std::time::Duration::from_secs(usage_seconds),
            },
            limits: {
                use crate::rest::ratelimit::Rate;
                let d = Limits::default();
                let rate = |per: &str, burst: &str, default: Rate| -> Result<Rate, ConfigError> {
                    let r = Rate {
                        per_minute: number(per, default.per_minute)?,
                        burst: number(burst, default.burst)?,
                    };
                    if r.per_minute == 0 || r.burst == 0 {
                        return Err(ConfigError(format!("{per} and {burst} must be positive")));
                    }
                    Ok(r)
                };
                Limits {
                    api: rate("PORTAL_API_RATE_PER_MINUTE", "PORTAL_API_BURST", d.api)?,
                    login: rate(
                        "PORTAL_LOGIN_RATE_PER_MINUTE",
                        "PORTAL_LOGIN_BURST",
                        d.login,
                    )?,
                    trust_forwarded_for: var("PORTAL_TRUST_FORWARDED_FOR").as_deref()
                        == Some("true"),
                }
            },
            resilience: {
                let seconds = |name: &str, default: u64, max: u64| -> Result<_, ConfigError> {
                    let v: u64 = number(name, default)?;
                    if !(1..=max).contains(&v) {
                        return Err(ConfigError(format!("{name} must be from 1 to {max}")));
                    }
                    Ok(std::time::Duration::from_secs(v))
                };
                Resilience {
                    request_timeout: seconds("PORTAL_REQUEST_TIMEOUT_SECONDS", 15, 600)?,
                    db_acquire_timeout: seconds("PORTAL_DB_ACQUIRE_TIMEOUT_SECONDS", 3, 60)?,
                    shutdown_grace: seconds("PORTAL_SHUTDOWN_GRACE_SECONDS", 20, 3600)?,
                    metrics_bind: match var("PORTAL_METRICS_BIND") {
                        None => None,
                        Some(v) => Some(v.parse().map_err(|_| {
                            ConfigError(
                                "PORTAL_METRICS_BIND must be host:port, e.g. 0.0.0.0:9464".into(),
                            )
                        })?),
                    },
                }
            },
        })
    }

    pub fn secret_key_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(self.secret_key.expose())
            .unwrap_or_default()
    }

    /// `https://portal.example.com` — no path, no trailing slash.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Served over https: secure cookies with the `__Host-` prefix, and HSTS.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let oidc = OidcConfig {
            issuer: "https://idp/".into(),
            client_id: "portal".into(),
            client_secret: Secret::new("very-secret"),
            scopes: vec![],
        };
        assert!(!format!("{oidc:?}").contains("very-secret"));
    }
}
