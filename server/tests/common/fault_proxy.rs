//! `FaultProxy`: a FAULT INJECTOR, not a dependency. A TCP proxy of our own between the
//! portal and a real part (Postgres, a Headscale shard) that adds what the real part
//! cannot produce on demand: latency, a connection that stays open and never answers
//! (half-open: no FIN, no RST), or a reset. Everything else is the real part answering.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to bytes, for connections open now and later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Forward, each chunk held back this long.
    Delay(Duration),
    /// Keep every connection open and forward nothing (either way): a half-open peer.
    Hang,
    /// Close every connection at once with a reset, and reset new ones.
    Reset,
}

pub struct FaultProxy {
    pub addr: std::net::SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    bytes_up: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    /// Connections held open while hanging, so they are not closed by dropping them.
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl FaultProxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, watch_mode) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let bytes_up = Arc::new(AtomicU64::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (accepted, bytes_up, held) = (accepted.clone(), bytes_up.clone(), held.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mode = watch_mode.clone();
                    let (bytes_up, held) = (bytes_up.clone(), held.clone());
                    tokio::spawn(async move {
                        serve(client, upstream, mode, bytes_up, held).await;
                    });
                }
            })
        };
        FaultProxy {
            addr,
            mode,
            accepted,
            bytes_up,
            task,
            held,
        }
    }

    pub fn set(&self, mode: Mode) {
        let _ = self.mode.send(mode);
        if mode == Mode::Pass {
            self.held.lock().expect("held").clear();
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn bytes_up(&self) -> u64 {
        self.bytes_up.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A reset instead of a close: linger zero (which never blocks, unlike a positive one,
/// the reason for tokio's deprecation).
#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn serve(
    client: TcpStream,
    upstream: std::net::SocketAddr,
    mut mode: watch::Receiver<Mode>,
    bytes_up: Arc<AtomicU64>,
    held: Arc<Mutex<Vec<TcpStream>>>,
) {
    let now = *mode.borrow();
    match now {
        Mode::Reset => {
            reset(&client);
            return;
        }
        Mode::Hang => {
            held.lock().expect("held").push(client);
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = {
        let mut mode = mode.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !forward(&mut mode, &mut sw, &buf[..n]).await {
                    return;
                }
                bytes_up.fetch_add(n as u64, Ordering::SeqCst);
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
            if !forward(&mut mode, &mut cw, &buf[..n]).await {
                return;
            }
        }
    };
    // Either direction ending ends the connection (both halves dropped).
    tokio::select! { _ = up => {}, _ = down => {} }
}

/// Forwards one chunk as the current mode says; false when the connection must end.
/// While hanging, waits (holding the chunk) until the mode changes.
async fn forward(
    mode: &mut watch::Receiver<Mode>,
    out: &mut tokio::net::tcp::OwnedWriteHalf,
    chunk: &[u8],
) -> bool {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Pass => return out.write_all(chunk).await.is_ok(),
            Mode::Delay(d) => {
                tokio::time::sleep(d).await;
                return out.write_all(chunk).await.is_ok();
            }
            Mode::Reset => return false,
            Mode::Hang => {
                if mode.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}
