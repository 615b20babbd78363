//! The one error type of the Headscale client.
//!
//! Every error names the shard (`cluster_id`) and reads as a plain sentence. The kind
//! tells callers what to do: retry later (unreachable, timeout, server error, circuit
//! open), fix the shard's configuration (unauthorized, misconfigured, unsupported), or
//! show the person why the shard said no (not found, rejected).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeadscaleErrorKind {
    /// No connection (refused, DNS, TLS, reset before an answer).
    Unreachable,
    /// Connected (or tried to), but no complete answer within the timeout.
    Timeout,
    /// The shard refused the API key (401; also 403 from a proxy in front).
    Unauthorized,
    /// The shard has no such user, node, key, policy or pending registration.
    NotFound,
    /// The shard understood the request and said no (invalid name, unknown tag, a
    /// policy that does not parse or whose tests fail, a duplicate user, …).
    Rejected,
    /// The shard failed on its side (5xx that is not one of the above).
    ServerError,
    /// The client stopped calling the shard for a while after repeated failures.
    CircuitOpen,
    /// The shard answered something the client cannot read.
    BadResponse,
    /// The shard runs a Headscale version that cannot do this (or no known version).
    Unsupported,
    /// The shard's settings in the portal are unusable (API URL, API key characters).
    Misconfigured,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HeadscaleError {
    cluster_id: String,
    kind: HeadscaleErrorKind,
    status: Option<u16>,
    detail: Option<String>,
    message: String,
}

impl HeadscaleError {
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn kind(&self) -> HeadscaleErrorKind {
        self.kind
    }

    /// The HTTP status, if the shard answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Headscale's own message (`{"message": …}`), if it sent one. Part of `to_string()`
    /// already; separate for callers that show it in a details box.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == HeadscaleErrorKind::NotFound
    }

    /// Whether this outcome says the shard is unhealthy (feeds the circuit breaker).
    /// A shard that answers "no" or "not found" is healthy; one that does not answer,
    /// or fails on its side, is not.
    pub(super) fn counts_against_shard(&self) -> bool {
        matches!(
            self.kind,
            HeadscaleErrorKind::Unreachable
                | HeadscaleErrorKind::Timeout
                | HeadscaleErrorKind::ServerError
        )
    }

    fn new(
        cluster_id: &str,
        kind: HeadscaleErrorKind,
        status: Option<u16>,
        detail: Option<String>,
        message: String,
    ) -> Self {
        HeadscaleError {
            cluster_id: cluster_id.to_string(),
            kind,
            status,
            detail,
            message,
        }
    }

    pub(super) fn unreachable(cluster_id: &str, reason: &str) -> Self {
        let message = if reason.is_empty() {
            format!("Shard {cluster_id} could not be reached")
        } else {
            format!("Shard {cluster_id} could not be reached ({reason})")
        };
        Self::new(
            cluster_id,
            HeadscaleErrorKind::Unreachable,
            None,
            None,
            message,
        )
    }

    pub(super) fn timeout(cluster_id: &str, after: Duration) -> Self {
        Self::new(
            cluster_id,
            HeadscaleErrorKind::Timeout,
            None,
            None,
            format!(
                "Shard {cluster_id} did not answer within {}",
                human_duration(after)
            ),
        )
    }

    pub(super) fn circuit_open(cluster_id: &str, failures: u32, retry_in: Duration) -> Self {
        let message = if retry_in.is_zero() {
            format!(
                "Shard {cluster_id} is unavailable after {failures} failed calls in a row; \
                 the portal is checking whether it is back"
            )
        } else {
            format!(
                "Shard {cluster_id} is unavailable after {failures} failed calls in a row; \
                 the portal will try it again in {}",
                human_duration(retry_in)
            )
        };
        Self::new(
            cluster_id,
            HeadscaleErrorKind::CircuitOpen,
            None,
            None,
            message,
        )
    }

    pub(super) fn bad_response(cluster_id: &str, status: Option<u16>, what: &str) -> Self {
        Self::new(
            cluster_id,
            HeadscaleErrorKind::BadResponse,
            status,
            None,
            format!("Shard {cluster_id} sent an answer the portal cannot read ({what})"),
        )
    }

    pub(super) fn unsupported(cluster_id: &str, message: String) -> Self {
        Self::new(
            cluster_id,
            HeadscaleErrorKind::Unsupported,
            None,
            None,
            message,
        )
    }

    pub(super) fn misconfigured(cluster_id: &str, message: String) -> Self {
        Self::new(
            cluster_id,
            HeadscaleErrorKind::Misconfigured,
            None,
            None,
            message,
        )
    }

    /// A request the client refuses before sending, because the shard would refuse it.
    pub(super) fn rejected_locally(cluster_id: &str, reason: &str) -> Self {
        Self::new(
            cluster_id,
            HeadscaleErrorKind::Rejected,
            None,
            Some(reason.to_string()),
            format!("Shard {cluster_id} cannot accept this request: {reason}"),
        )
    }

    /// Maps an error answer (status ≥ 300) to an error. `what` names the object of the
    /// call for not-found messages ("node 7", "user 3").
    ///
    /// Headscale's REST API is grpc-gateway: errors are `{"code": <gRPC code>,
    /// "message": …, "details": []}` with the HTTP status derived from the gRPC code
    /// (grpc-gateway `runtime.HTTPStatusFromCode`); the API-key check in front of it
    /// answers a plain-text `Unauthorized` (hscontrol/app.go). Many handlers return bare
    /// Go errors, which become gRPC `Unknown` (2) and HTTP 500 even when the request was
    /// at fault ("user not found", "setting policy: …", "… is not a valid DNS label");
    /// and CreateUser wraps every error, a duplicate name included, as `Internal` (13).
    /// Such 500s are re-classified by their message (see `CLIENT_FAULTS`), so that they
    /// read right and do not count against the shard's health.
    pub(super) fn from_response(cluster_id: &str, what: &str, status: u16, body: &[u8]) -> Self {
        let (grpc_code, detail) = parse_error_body(body);
        let reclassified = match (status, grpc_code) {
            (500, Some(2 | 13)) => detail.as_deref().and_then(client_fault),
            _ => None,
        };
        let kind = match status {
            401 | 403 => HeadscaleErrorKind::Unauthorized,
            404 => HeadscaleErrorKind::NotFound,
            400..=499 => HeadscaleErrorKind::Rejected,
            500..=599 => reclassified.unwrap_or(HeadscaleErrorKind::ServerError),
            _ => {
                return Self::bad_response(
                    cluster_id,
                    Some(status),
                    &format!("unexpected HTTP status {status}"),
                )
            }
        };
        let message = match kind {
            HeadscaleErrorKind::Unauthorized => {
                format!("Shard {cluster_id} refused the API key ({status})")
            }
            HeadscaleErrorKind::NotFound => format!("Shard {cluster_id} has no {what}"),
            HeadscaleErrorKind::Rejected => match &detail {
                Some(d) => format!("Shard {cluster_id} rejected the request: {d}"),
                None => format!("Shard {cluster_id} rejected the request (HTTP {status})"),
            },
            _ => match &detail {
                Some(d) => format!("Shard {cluster_id} failed with HTTP {status}: {d}"),
                None => format!("Shard {cluster_id} failed with HTTP {status}"),
            },
        };
        Self::new(cluster_id, kind, Some(status), detail, message)
    }

    /// Replaces every occurrence of `secret` in the texts of the error. Headscale never
    /// echoes the API key, but a proxy in front of it might.
    pub(super) fn redact(mut self, secret: &str) -> Self {
        if secret.len() >= 8 {
            self.message = self.message.replace(secret, "***");
            self.detail = self.detail.map(|d| d.replace(secret, "***"));
        }
        self
    }
}

/// Messages of gRPC `Unknown`/`Internal` errors that are the request's fault, as seen
/// from Headscale 0.28/0.29 (hscontrol/grpcv1.go, hscontrol/state, hscontrol/db).
/// The first match wins.
const CLIENT_FAULTS: &[(&str, HeadscaleErrorKind)] = &[
    // SetPolicy: parse errors, failing `tests`, SSH rule checks (whatever they say,
    // "user not found" included); policy mode is not database.
    ("setting policy:", HeadscaleErrorKind::Rejected),
    ("verifying ssh rules", HeadscaleErrorKind::Rejected),
    ("update is disabled", HeadscaleErrorKind::Rejected),
    // DeleteUser while the user has nodes: "user not empty: node(s) found".
    ("not empty", HeadscaleErrorKind::Rejected),
    ("already exists", HeadscaleErrorKind::Rejected),
    ("cannot edit oidc user", HeadscaleErrorKind::Rejected),
    // "user not found", "record not found", "node not found in registration cache",
    // "acl policy not found"
    ("not found", HeadscaleErrorKind::NotFound),
    // "node no longer exists in NodeStore: 7"
    ("no longer exists", HeadscaleErrorKind::NotFound),
    // SQLite and Postgres unique violations (duplicate user name).
    ("unique constraint failed", HeadscaleErrorKind::Rejected),
    ("duplicate key value", HeadscaleErrorKind::Rejected),
    // RenameNode/RenameUser: "… is not a valid DNS label", invalid user names.
    ("not a valid", HeadscaleErrorKind::Rejected),
    // Registration IDs: "auth ID has invalid prefix", "registration ID must be 24 …";
    // routes: "parsing route: …".
    ("invalid", HeadscaleErrorKind::Rejected),
    ("must be", HeadscaleErrorKind::Rejected),
    ("parsing", HeadscaleErrorKind::Rejected),
];

fn client_fault(detail: &str) -> Option<HeadscaleErrorKind> {
    let lower = detail.to_lowercase();
    CLIENT_FAULTS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, kind)| *kind)
}

/// The gRPC code and a printable message from an error body: Headscale's JSON, or a
/// short plain-text body (the API-key check's `Unauthorized`). HTML pages and other
/// long bodies from proxies are not worth quoting.
fn parse_error_body(body: &[u8]) -> (Option<i64>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct GrpcStatus {
        code: Option<i64>,
        message: Option<String>,
    }
    if let Ok(status) = serde_json::from_slice::<GrpcStatus>(body) {
        let message = status.message.map(|m| clean(&m)).filter(|m| !m.is_empty());
        return (status.code, message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.len() > 200 || text.starts_with('<') {
        return (None, None);
    }
    (None, Some(clean(text)))
}

const MAX_DETAIL_CHARS: usize = 600;

/// Drops control characters other than newlines and caps the length.
fn clean(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .take(MAX_DETAIL_CHARS)
        .collect();
    if text.trim().chars().count() > MAX_DETAIL_CHARS {
        out.push('…');
    }
    out
}

/// "10 s", "300 ms", "1.5 s".
pub(super) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HeadscaleErrorKind as K;

    fn map(status: u16, body: &str) -> HeadscaleError {
        HeadscaleError::from_response("hs-a", "node 7", status, body.as_bytes())
    }

    #[test]
    fn plain_text_401_is_unauthorized() {
        let e = map(401, "Unauthorized");
        assert_eq!(e.kind(), K::Unauthorized);
        assert_eq!(e.to_string(), "Shard hs-a refused the API key (401)");
        assert_eq!(e.cluster_id(), "hs-a");
        assert_eq!(e.status(), Some(401));
        assert_eq!(map(403, "<html>forbidden</html>").kind(), K::Unauthorized);
    }

    #[test]
    fn grpc_not_found_names_the_object() {
        let e = map(
            404,
            r#"{"code":5, "message":"node not found", "details":[]}"#,
        );
        assert_eq!(e.kind(), K::NotFound);
        assert_eq!(e.to_string(), "Shard hs-a has no node 7");
        assert_eq!(e.detail(), Some("node not found"));
        assert!(e.is_not_found());
    }

    #[test]
    fn client_errors_carry_headscales_message() {
        let e = map(
            400,
            r#"{"code":3, "message":"requested tags [tag:x] are invalid or not permitted", "details":[]}"#,
        );
        assert_eq!(e.kind(), K::Rejected);
        assert_eq!(
            e.to_string(),
            "Shard hs-a rejected the request: requested tags [tag:x] are invalid or not permitted"
        );
        assert_eq!(
            map(409, "").to_string(),
            "Shard hs-a rejected the request (HTTP 409)"
        );
    }

    #[test]
    fn headscales_500s_for_bad_requests_are_reclassified() {
        // Bodies as the real v0.29.2 server sends them.
        let cases = [
            (
                r#"{"code":2, "message":"user not found", "details":[]}"#,
                K::NotFound,
            ),
            (
                r#"{"code":2, "message":"loading ACL from database: acl policy not found", "details":[]}"#,
                K::NotFound,
            ),
            (
                r#"{"code":2, "message":"node no longer exists in NodeStore: 1", "details":[]}"#,
                K::NotFound,
            ),
            (
                r#"{"code":13, "message":"creating user: creating user: constraint failed: UNIQUE constraint failed: users.name (2067)", "details":[]}"#,
                K::Rejected,
            ),
            (
                r#"{"code":2, "message":"setting policy: parsing policy: parsing HuJSON: hujson: line 1, column 1: invalid literal: not", "details":[]}"#,
                K::Rejected,
            ),
            (
                r#"{"code":2, "message":"renaming node: \"Bad_Name\" is not a valid DNS label", "details":[]}"#,
                K::Rejected,
            ),
            (
                r#"{"code":2, "message":"auth ID has invalid prefix: expected prefix \"hskey-authreq-\"", "details":[]}"#,
                K::Rejected,
            ),
            (
                r#"{"code":2, "message":"user not empty: node(s) found", "details":[]}"#,
                K::Rejected,
            ),
            (
                r#"{"code":13, "message":"database is locked", "details":[]}"#,
                K::ServerError,
            ),
            (
                r#"{"code":2, "message":"setting policy: test(s) failed: user not found", "details":[]}"#,
                K::Rejected,
            ),
            (
                r#"{"code":14, "message":"user not found", "details":[]}"#,
                K::ServerError,
            ),
        ];
        for (body, kind) in cases {
            assert_eq!(map(500, body).kind(), kind, "{body}");
        }
        let e = map(
            500,
            r#"{"code":13, "message":"database is locked", "details":[]}"#,
        );
        assert_eq!(
            e.to_string(),
            "Shard hs-a failed with HTTP 500: database is locked"
        );
        assert!(e.counts_against_shard());
        assert!(!map(500, r#"{"code":2, "message":"user not found"}"#).counts_against_shard());
    }

    #[test]
    fn proxy_errors_are_server_errors_without_quoting_html() {
        let e = map(502, "<html><body>Bad Gateway</body></html>");
        assert_eq!(e.kind(), K::ServerError);
        assert_eq!(e.to_string(), "Shard hs-a failed with HTTP 502");
        assert_eq!(e.detail(), None);
        assert_eq!(map(302, "").kind(), K::BadResponse);
    }

    #[test]
    fn long_or_odd_messages_are_cleaned() {
        let long = format!(r#"{{"code":3,"message":"{}\u0007"}}"#, "x".repeat(2000));
        let e = map(400, &long);
        let detail = e.detail().unwrap();
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(!detail.contains('\u{7}'));
    }

    #[test]
    fn redaction_removes_an_echoed_key() {
        let e = map(
            400,
            r#"{"code":3,"message":"bad header Bearer hskey-api-abc-secret"}"#,
        )
        .redact("hskey-api-abc-secret");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(!e.detail().unwrap().contains("secret"));
        assert!(!format!("{e:?}").contains("hskey-api-abc-secret"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(
            HeadscaleError::timeout("hs-a", Duration::from_secs(10)).to_string(),
            "Shard hs-a did not answer within 10 s"
        );
    }
}
