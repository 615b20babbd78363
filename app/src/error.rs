//! The one application error type, shared by server and browser.
//!
//! Server functions return `Result<T, AppError>`; the variant decides the HTTP status
//! and what a person reads. Internal details (SQL, upstream bodies) are logged on the
//! server and never put into this type.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No valid session: the person must sign in (again).
    #[error("Your session has ended. Please sign in again.")]
    Unauthenticated,
    /// Signed in, but not allowed to do this.
    #[error("You do not have permission to do that.")]
    Forbidden,
    /// The thing does not exist, or the person may not know that it exists.
    #[error("{0} was not found.")]
    NotFound(String),
    /// The change conflicts with the current state (a duplicate name, say).
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable; the message says why, in a sentence.
    #[error("{0}")]
    Invalid(String),
    /// Too many requests; try again later.
    #[error("Too many requests. Please wait a moment and try again.")]
    RateLimited,
    /// A dependency (database, shard, identity provider) is not available right now.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else. Details are in the server log under the given reference.
    #[error("Something went wrong on our side (reference {0}).")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AppError::Unauthenticated => S::UNAUTHORIZED,
            AppError::Forbidden => S::FORBIDDEN,
            AppError::NotFound(_) => S::NOT_FOUND,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::Invalid(_) => S::UNPROCESSABLE_ENTITY,
            AppError::RateLimited => S::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs an unexpected error with its chain and returns an `Internal` error that
    /// carries only a short reference the person can quote to support.
    #[cfg(feature = "ssr")]
    pub fn internal(context: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(reference = %reference, error = %chain, "{context}");
        AppError::Internal(reference)
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if database_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            DB_UNAVAILABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return AppError::Unavailable(
                "The database is not reachable right now. Please try again in a moment.".into(),
            );
        }
        AppError::internal("database error", &err)
    }
}

/// How many answers said "the database is not reachable" (`portal_db_unavailable_total`).
#[cfg(feature = "ssr")]
pub static DB_UNAVAILABLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether the error means the database could not be reached or went away (a retry
/// later may work), as opposed to a fault of the query. Postgres restarting terminates
/// every connection (`57P01`), refuses new ones while it starts (`57P03`), and a broken
/// connection is an I/O or protocol error.
#[cfg(feature = "ssr")]
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01–57P03: admin/crash shutdown, cannot
            // connect now; 53300: too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(msg) | ServerFnErrorErr::MissingArg(msg) => {
                AppError::Invalid(format!("The request was malformed: {msg}"))
            }
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => AppError::Unavailable(
                "The portal could not be reached. Check your connection and try again.".into(),
            ),
            other => AppError::Internal(format!("server function: {other}")),
        }
    }
}

/// Sets the HTTP status of the current server response to match the error and returns
/// the error, so server functions can `return Err(fail(e))`.
///
/// Except for a plain form post (JavaScript off) to a server function: Leptos answers
/// that with a redirect back to the form's page carrying the error in the URL, and a
/// browser only follows a redirect status.
#[cfg(feature = "ssr")]
pub fn fail(err: AppError) -> AppError {
    use leptos::prelude::use_context;
    if err == AppError::Forbidden {
        crate::data::audit::record_forbidden();
    }
    if !is_form_post() {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(err.status());
        }
    }
    err
}

/// Whether the current server function call is a plain HTML form post (JavaScript off):
/// the browser wants a page back, not data.
#[cfg(feature = "ssr")]
pub fn is_form_post() -> bool {
    leptos::prelude::use_context::<http::request::Parts>().is_some_and(|p| {
        p.uri.path().starts_with("/api/")
            && p.headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    })
}
