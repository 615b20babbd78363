//! `FaultShard`: a TEST DOUBLE, not Headscale. A real Headscale cannot be made to answer
//! 500 or to hang on demand, so this tiny server does: in `Status` mode it reports a
//! Headscale version (`/version` does not touch Headscale's database) and answers every
//! `/api/` call with that status and a gRPC-gateway body as Headscale does when its
//! database fails; in `Hang` mode it accepts every connection and request and never
//! answers anything (a hung process). It counts the requests it gets.
//!
//! The app crate has a richer double (`app/src/headscale/fault_shard.rs`), but it is
//! compiled only into the app crate's own unit tests, out of reach of these integration
//! tests. Everything a real shard can do is tested against the real binary.
#![allow(dead_code)]

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `/version` answers; every `/api/` call gets this status.
    Status(u16),
    /// Nothing is ever answered.
    Hang,
}

struct Shared {
    fault: Mutex<Fault>,
    api_hits: AtomicUsize,
}

pub struct FaultShard {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultShard {
    pub async fn start(fault: Fault) -> FaultShard {
        let shared = Arc::new(Shared {
            fault: Mutex::new(fault),
            api_hits: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fault shard");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultShard {
            url,
            shared,
            server,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().expect("fault") = fault;
    }

    /// Requests under `/api/` so far (hung ones included).
    pub fn api_hits(&self) -> usize {
        self.shared.api_hits.load(Ordering::SeqCst)
    }
}

impl Drop for FaultShard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/api/") {
        shared.api_hits.fetch_add(1, Ordering::SeqCst);
    }
    let fault = *shared.fault.lock().expect("fault");
    match fault {
        Fault::Hang => std::future::pending().await,
        Fault::Status(_) if path == "/version" => axum::Json(serde_json::json!({
            "version": "v0.29.2",
            "commit": "test-double"
        }))
        .into_response(),
        Fault::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            // What Headscale's gRPC gateway sends when SQLite is busy (code 13: Internal).
            axum::Json(serde_json::json!({
                "code": 13,
                "message": "database is locked",
                "details": []
            })),
        )
            .into_response(),
    }
}
