//! `FaultShard`: a TEST DOUBLE, not Headscale. A tiny axum server that produces the
//! faults a real shard cannot produce on demand — HTTP 5xx, a connection that is
//! accepted and never answered, an old or unknown version — and counts the requests
//! it gets, to prove the client's timeouts, retry rules and circuit breaker.
//! Everything a real Headscale can do is tested against the real binary in
//! `real_shard_tests`.

use super::*;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    /// Answer like a (very small) healthy Headscale.
    None,
    /// Answer every `/api/` request with this status (and a gRPC-style JSON body).
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// Answer 400 quoting the request's `Authorization` header, as a careless proxy
    /// might.
    EchoAuthorization,
}

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path_and_query: String,
    body: String,
    authorization: bool,
}

struct Shared {
    fault: Mutex<Fault>,
    version: Mutex<String>,
    api_hits: AtomicUsize,
    version_hits: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
}

struct FaultShard {
    url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FaultShard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FaultShard {
    async fn start(version: &str, fault: Fault) -> FaultShard {
        let shared = Arc::new(Shared {
            fault: Mutex::new(fault),
            version: Mutex::new(version.to_string()),
            api_hits: AtomicUsize::new(0),
            version_hits: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultShard {
            url,
            shared,
            server,
        }
    }

    fn set_fault(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    fn set_version(&self, version: &str) {
        *self.shared.version.lock().unwrap() = version.to_string();
    }

    /// Requests under `/api/` so far.
    fn api_hits(&self) -> usize {
        self.shared.api_hits.load(Ordering::SeqCst)
    }

    fn version_hits(&self) -> usize {
        self.shared.version_hits.load(Ordering::SeqCst)
    }

    fn last_request(&self) -> Recorded {
        self.shared
            .requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let path = request.uri().path().to_string();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    shared.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path_and_query,
        body: String::from_utf8_lossy(&body).into_owned(),
        authorization: authorization.is_some(),
    });

    if path == "/version" {
        shared.version_hits.fetch_add(1, Ordering::SeqCst);
        let version = shared.version.lock().unwrap().clone();
        return json(
            StatusCode::OK,
            serde_json::json!({ "version": version, "commit": "test-double" }),
        );
    }
    shared.api_hits.fetch_add(1, Ordering::SeqCst);
    let fault = shared.fault.lock().unwrap().clone();
    match fault {
        Fault::Hang => std::future::pending().await,
        Fault::Status(401) => (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
        Fault::Status(code) => json(
            StatusCode::from_u16(code).unwrap(),
            serde_json::json!({"code": 13, "message": "database is locked", "details": []}),
        ),
        Fault::EchoAuthorization => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({
                "code": 3,
                "message": format!("malformed header: {}", authorization.unwrap_or_default()),
                "details": []
            }),
        ),
        Fault::None => healthy(&method, &path),
    }
}

fn healthy(method: &str, path: &str) -> Response {
    let node = serde_json::json!({"node": {"id": "9", "name": "n9", "givenName": "n9", "user": null, "tags": []}});
    match (method, path) {
        ("GET", "/api/v1/user") => json(StatusCode::OK, serde_json::json!({"users": []})),
        ("POST", "/api/v1/user") => json(
            StatusCode::OK,
            serde_json::json!({"user": {"id": "1", "name": "u"}}),
        ),
        ("POST", "/api/v1/auth/register" | "/api/v1/node/register") => json(StatusCode::OK, node),
        _ => json(StatusCode::OK, serde_json::json!({})),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

const KEY: &str = "hskey-api-faultprefix-thisisthesecretpartofthekey";

fn options(timeout_ms: u64) -> ShardClientOptions {
    ShardClientOptions {
        timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(500),
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
        failure_threshold: 100,
        cool_down: Duration::from_secs(30),
        ..ShardClientOptions::default()
    }
}

fn client_for(shard: &FaultShard, options: ShardClientOptions) -> ShardClient {
    ShardClient::new("fault-a", &shard.url, ApiKey::new(KEY), options).unwrap()
}

fn new_user() -> NewUser {
    NewUser {
        name: "t1.alice".into(),
        ..NewUser::default()
    }
}

#[tokio::test]
async fn a_hung_shard_times_out_reads_are_retried_writes_are_not() {
    let shard = FaultShard::start("v0.29.2", Fault::Hang).await;
    let client = client_for(&shard, options(300));

    let started = Instant::now();
    let e = client.list_users().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Timeout);
    assert_eq!(e.to_string(), "Shard fault-a did not answer within 300 ms");
    assert_eq!(e.cluster_id(), "fault-a");
    assert_eq!(shard.api_hits(), 3, "a read is tried 1 + 2 times");
    assert!(started.elapsed() >= Duration::from_millis(900));

    let e = client.create_user(&new_user()).await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Timeout);
    assert_eq!(shard.api_hits(), 4, "a POST is never retried");
    client.set_policy("{}").await.unwrap_err();
    assert_eq!(shard.api_hits(), 5, "a PUT is never retried");
    client.delete_user(UserId(1)).await.unwrap_err();
    assert_eq!(shard.api_hits(), 6, "a DELETE is never retried");
}

#[tokio::test]
async fn reads_are_retried_on_502_503_504_but_not_on_500() {
    let shard = FaultShard::start("v0.29.2", Fault::Status(503)).await;
    let client = client_for(&shard, options(2000));

    let e = client.list_nodes().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::ServerError);
    assert_eq!(
        e.to_string(),
        "Shard fault-a failed with HTTP 503: database is locked"
    );
    assert_eq!(shard.api_hits(), 3);

    client.create_user(&new_user()).await.unwrap_err();
    assert_eq!(shard.api_hits(), 4, "POST is not retried, even on 503");

    for (status, hits) in [(502, 3), (504, 3), (500, 1)] {
        shard.set_fault(Fault::Status(status));
        let before = shard.api_hits();
        let e = client.list_api_keys().await.unwrap_err();
        assert_eq!(e.status(), Some(status));
        assert_eq!(shard.api_hits() - before, hits, "HTTP {status}");
    }
}

#[tokio::test]
async fn connect_errors_are_retried_for_reads() {
    // A port that was just free: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut opts = options(1000);
    opts.retry_backoff = Duration::from_millis(100);
    let client = ShardClient::new("fault-a", &url, ApiKey::new(KEY), opts).unwrap();

    let started = Instant::now();
    let e = client.version().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Unreachable);
    assert!(
        e.to_string()
            .starts_with("Shard fault-a could not be reached"),
        "{e}"
    );
    // Two pauses (100 ms, 200 ms) show that the read was tried three times.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!e.to_string().contains(KEY));
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_then_half_opens() {
    let shard = FaultShard::start("v0.29.2", Fault::Status(500)).await;
    let clock = Arc::new(ManualInstantClock::new());
    let mut opts = options(2000);
    opts.failure_threshold = 3;
    opts.clock = clock.clone();
    let client = client_for(&shard, opts);

    for _ in 0..3 {
        let e = client.list_users().await.unwrap_err();
        assert_eq!(e.kind(), HeadscaleErrorKind::ServerError);
    }
    assert_eq!(shard.api_hits(), 3);
    assert_eq!(client.breaker_state(), BreakerState::Open);

    // Open: fails fast, without touching the network (reads, writes, version).
    let requests_before = shard.requests().len();
    let e = client.list_users().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::CircuitOpen);
    assert_eq!(
        e.to_string(),
        "Shard fault-a is unavailable after 3 failed calls in a row; \
         the portal will try it again in 30 s"
    );
    client.create_user(&new_user()).await.unwrap_err();
    client.refresh_version().await.unwrap_err();
    clock.advance(Duration::from_secs(29));
    let e = client.list_users().await.unwrap_err();
    assert!(e.to_string().ends_with("again in 1 s"), "{e}");
    assert_eq!(
        shard.requests().len(),
        requests_before,
        "no request while open"
    );

    // Half-open: one trial goes through; the shard has recovered, so it closes.
    clock.advance(Duration::from_secs(1));
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    shard.set_fault(Fault::None);
    client.list_users().await.unwrap();
    assert_eq!(shard.api_hits(), 4);
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    assert_eq!(client.consecutive_failures(), 0);

    // Open again; a failed trial re-opens it for a full cool-down.
    shard.set_fault(Fault::Status(500));
    for _ in 0..3 {
        client.list_users().await.unwrap_err();
    }
    clock.advance(Duration::from_secs(30));
    let e = client.list_users().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::ServerError, "the trial");
    assert_eq!(shard.api_hits(), 8);
    let e = client.list_users().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::CircuitOpen);
    assert!(e.to_string().ends_with("again in 30 s"), "{e}");
    assert_eq!(shard.api_hits(), 8);
}

#[tokio::test]
async fn answers_that_are_not_failures_of_the_shard_keep_the_breaker_closed() {
    let shard = FaultShard::start("v0.29.2", Fault::Status(401)).await;
    let mut opts = options(2000);
    opts.failure_threshold = 2;
    let client = client_for(&shard, opts);
    for _ in 0..4 {
        let e = client.list_users().await.unwrap_err();
        assert_eq!(e.kind(), HeadscaleErrorKind::Unauthorized);
        assert_eq!(e.to_string(), "Shard fault-a refused the API key (401)");
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    assert_eq!(shard.api_hits(), 4, "401 is not retried");
}

#[tokio::test]
async fn the_api_key_is_sent_only_to_the_api_and_never_shown() {
    let shard = FaultShard::start("v0.29.2", Fault::EchoAuthorization).await;
    let client = client_for(&shard, options(2000));
    let e = client.list_users().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Rejected);
    assert!(
        e.to_string().contains("malformed header: Bearer ***"),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains("thisisthesecretpart"));

    let requests = shard.requests();
    assert_eq!(requests[0].path_and_query, "/version");
    assert!(!requests[0].authorization, "/version needs no key");
    assert!(requests[1].authorization);
}

#[tokio::test(flavor = "current_thread")]
async fn logs_never_show_the_api_key() {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let shard = FaultShard::start("v0.29.2", Fault::EchoAuthorization).await;
    let mut opts = options(200);
    opts.failure_threshold = 2;
    let client = client_for(&shard, opts);
    client.list_users().await.unwrap_err();
    shard.set_fault(Fault::Status(503));
    client.list_users().await.unwrap_err();
    shard.set_fault(Fault::Hang);
    client.create_user(&new_user()).await.unwrap_err();
    client.list_users().await.unwrap_err();
    tracing::info!(client = ?client, "client state");

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("headscale call failed"),
        "logs were captured: {logs}"
    );
    assert!(logs.contains("fault-a"));
    assert!(!logs.contains("thisisthesecretpart"), "{logs}");
    assert!(!logs.contains("faultprefix"), "{logs}");
}

#[tokio::test]
async fn versions_older_than_0_28_or_unknown_are_refused() {
    let shard = FaultShard::start("v0.27.1", Fault::None).await;
    let client = client_for(&shard, options(2000));
    assert_eq!(
        client.version().await.unwrap(),
        HeadscaleVersion::new(0, 27, 1)
    );
    let e = client.list_nodes().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Unsupported);
    assert_eq!(
        e.to_string(),
        "Shard fault-a runs Headscale 0.27.1; the portal needs 0.28.0 or later"
    );
    assert_eq!(shard.api_hits(), 0);

    shard.set_version("dev");
    assert_eq!(
        client.version().await.unwrap(),
        HeadscaleVersion::new(0, 27, 1),
        "cached"
    );
    let e = client.refresh_version().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Unsupported);
    assert!(e.to_string().contains("\"dev\""), "{e}");

    shard.set_version("v0.29.2");
    assert_eq!(
        client.refresh_version().await.unwrap(),
        HeadscaleVersion::new(0, 29, 2)
    );
    assert_eq!(shard.version_hits(), 3, "first use, then two refreshes");
    client.list_nodes().await.unwrap();
    assert_eq!(shard.version_hits(), 3, "cached");
}

#[tokio::test]
async fn registration_follows_the_shards_version() {
    let shard = FaultShard::start("v0.29.2", Fault::None).await;
    let client = client_for(&shard, options(2000));
    let new_id = "hskey-authreq-xSV9WaJdF3gwBVAJCxrMBrbr";
    let old_id = "xSV9WaJdF3gwBVAJCxrMBrbr";

    let node = client
        .register_node("t1.alice", &format!("http://hs/register/{new_id}"))
        .await
        .unwrap();
    assert_eq!(node.id, NodeId(9));
    let r = shard.last_request();
    assert_eq!(
        (r.method.as_str(), r.path_and_query.as_str()),
        ("POST", "/api/v1/auth/register")
    );
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"user": "t1.alice", "authId": new_id})
    );

    let hits = shard.api_hits();
    let e = client.register_node("t1.alice", old_id).await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Rejected);
    assert!(
        e.to_string().contains("hskey-authreq-<24 characters>"),
        "{e}"
    );
    assert_eq!(shard.api_hits(), hits, "refused before sending");

    shard.set_version("v0.28.0");
    client.refresh_version().await.unwrap();
    client.register_node("t1.alice", old_id).await.unwrap();
    let r = shard.last_request();
    assert_eq!(
        r.path_and_query,
        format!("/api/v1/node/register?user=t1.alice&key={old_id}")
    );
    assert!(client.register_node("t1.alice", new_id).await.is_err());
}

#[tokio::test]
async fn features_new_in_0_29_are_refused_on_0_28() {
    let shard = FaultShard::start("v0.28.0", Fault::None).await;
    let client = client_for(&shard, options(2000));

    let e = client.disable_node_expiry(NodeId(1)).await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Unsupported);
    assert!(e.to_string().contains("0.28.0"), "{e}");
    assert_eq!(
        client.check_policy("{}").await.unwrap_err().kind(),
        HeadscaleErrorKind::Unsupported
    );
    assert_eq!(shard.api_hits(), 0);

    shard.set_version("v0.29.2");
    client.refresh_version().await.unwrap();
    client.check_policy("{}").await.unwrap();
    assert_eq!(shard.last_request().path_and_query, "/api/v1/policy/check");
}

#[tokio::test]
async fn pre_auth_key_requests_have_headscales_shape() {
    let shard = FaultShard::start("v0.29.2", Fault::None).await;
    let client = client_for(&shard, options(2000));
    let expiration = time::macros::datetime!(2030-01-02 03:04:05 +02:00);
    // The double answers `{}`, which is not a created key: the client says so.
    let e = client
        .create_pre_auth_key(&NewPreAuthKey {
            user: Some(UserId(7)),
            reusable: true,
            ephemeral: false,
            expiration,
            acl_tags: vec!["tag:server".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::BadResponse);
    let body: serde_json::Value = serde_json::from_str(&shard.last_request().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "user": "7", "reusable": true, "ephemeral": false,
            "expiration": "2030-01-02T01:04:05Z", "aclTags": ["tag:server"]
        })
    );

    client.expire_pre_auth_key(PreAuthKeyId(5)).await.unwrap();
    let r = shard.last_request();
    assert_eq!(r.path_and_query, "/api/v1/preauthkey/expire");
    assert_eq!(r.body, r#"{"id":"5"}"#);
    client.delete_pre_auth_key(PreAuthKeyId(5)).await.unwrap();
    assert_eq!(
        shard.last_request().path_and_query,
        "/api/v1/preauthkey?id=5"
    );
}
