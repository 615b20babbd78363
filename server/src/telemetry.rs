//! Structured logs with `tracing`. `RUST_LOG` filters; `PORTAL_LOG_FORMAT=json` for
//! machine-readable lines in production.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests building several apps) is harmless.
    let _ = result;
}
