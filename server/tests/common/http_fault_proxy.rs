//! `HttpFaultProxy`: a FAULT INJECTOR, not a dependency. A TCP proxy of our own between
//! the portal and a real Headscale shard that spoils the answer to chosen HTTP requests
//! (by their request line, e.g. `POST /api/v1/preauthkey`), which the real shard cannot
//! do on demand. The request itself always reaches the shard, so the shard carries it
//! out; only its answer is delayed, withheld or replaced by a reset. That is the case
//! where a client cannot know whether a change happened.
//!
//! `common::fault_proxy` acts on whole connections (it holds the request too); this one
//! reads the request lines going up. A new request is recognised by a chunk that starts
//! with an HTTP method: the portal's client (hyper) sends one request at a time on a
//! connection and waits for its answer, and a JSON body never starts with a method.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to the answer of a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded as it comes.
    Pass,
    /// Forwarded this much later.
    Delay(Duration),
    /// Never forwarded; the connection stays open (no FIN, no RST) until the client
    /// gives up.
    Hang,
    /// The connection is reset once the shard has answered (the answer is dropped).
    Reset,
}

struct Rule {
    /// The start of the request line: `POST /api/v1/preauthkey`.
    prefix: String,
    fault: Fault,
    /// How many more matching requests it applies to.
    times: usize,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    /// Every request line seen, in order.
    seen: Vec<String>,
}

pub struct HttpFaultProxy {
    pub addr: std::net::SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpFaultProxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> HttpFaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(serve(client, upstream, shared.clone()));
                }
            })
        };
        HttpFaultProxy { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to the answers of the next `times` requests whose request line
    /// starts with `prefix`.
    pub fn next(&self, prefix: &str, fault: Fault, times: usize) {
        self.shared.lock().expect("rules").rules.push(Rule {
            prefix: prefix.to_string(),
            fault,
            times,
        });
    }

    /// How many requests so far had a request line starting with `prefix`.
    pub fn seen(&self, prefix: &str) -> usize {
        let shared = self.shared.lock().expect("seen");
        shared.seen.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const METHODS: [&str; 7] = [
    "GET ", "POST ", "PUT ", "DELETE ", "PATCH ", "HEAD ", "OPTIONS ",
];

/// The request line if `chunk` starts a request, and the fault for its answer.
fn classify(shared: &Mutex<Shared>, chunk: &[u8]) -> Option<Fault> {
    if !METHODS.iter().any(|m| chunk.starts_with(m.as_bytes())) {
        return None;
    }
    let end = chunk
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(chunk.len());
    let line = String::from_utf8_lossy(&chunk[..end]).into_owned();
    let mut shared = shared.lock().expect("rules");
    let fault = match shared
        .rules
        .iter_mut()
        .find(|r| r.times > 0 && line.starts_with(&r.prefix))
    {
        Some(rule) => {
            rule.times -= 1;
            rule.fault
        }
        None => Fault::Pass,
    };
    shared.seen.push(line);
    Some(fault)
}

/// A reset instead of a close: linger zero (which never blocks, unlike a positive one,
/// the reason for tokio's deprecation).
#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn serve(client: TcpStream, upstream: std::net::SocketAddr, shared: Arc<Mutex<Shared>>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // The fault for the answer now awaited on this connection.
    let answer = Arc::new(Mutex::new(Fault::Pass));
    let up = {
        let answer = answer.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if let Some(fault) = classify(&shared, &buf[..n]) {
                    *answer.lock().expect("answer") = fault;
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let fault = *answer.lock().expect("answer");
            match fault {
                Fault::Pass => {}
                Fault::Delay(d) => {
                    // Once per answer: its later chunks follow without a pause.
                    tokio::time::sleep(d).await;
                    *answer.lock().expect("answer") = Fault::Pass;
                }
                // Read on so the shard finishes, forward nothing.
                Fault::Hang => continue,
                Fault::Reset => {
                    reset(cw.as_ref());
                    // No FIN first: the socket closes with the read half, as a reset.
                    cw.forget();
                    return;
                }
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either direction ending ends the connection (both halves dropped).
    tokio::select! { _ = up => {}, _ = down => {} }
}
