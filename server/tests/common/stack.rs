//! Real Headscale shards and tailscaled daemons for integration tests, started through
//! dev/lib/headscale.sh and dev/lib/tailscale.sh in a state directory of the test's own.
//!
//! Ports: shard slot `n` uses `TEST_SYNC_HTTP_PORT + n` (default 18480), and the same
//! offset from `TEST_SYNC_GRPC_PORT` (28840) and `TEST_SYNC_METRICS_PORT` (19480). Slots
//! in use: sync.rs 0–5, devices.rs 6–8, policy.rs 9–10, usage.rs 11, api.rs 12,
//! faults_upstream.rs 20–21, faults.rs 24.
#![allow(dead_code)]

use app::headscale::{ApiKey, ShardClient, ShardClientOptions};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::Command;
use uuid::Uuid;

pub fn env_port(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Real Headscale shards and tailscaled daemons of one test, in a state directory of
/// their own. Dropping it stops them all and removes the directory, also when the test
/// fails.
pub struct Stack {
    state: PathBuf,
}

/// A shard the test started.
pub struct RealShard {
    pub cluster_id: String,
    pub url: String,
    pub api_key: String,
    /// Which block of ports it uses (0–5), to start it again after a stop.
    slot: u16,
    bin: String,
}

impl RealShard {
    pub fn client(&self) -> ShardClient {
        ShardClient::new(
            self.cluster_id.clone(),
            &self.url,
            ApiKey::new(self.api_key.clone()),
            ShardClientOptions::default(),
        )
        .expect("shard client")
    }
}

impl Stack {
    pub fn new() -> Stack {
        // Short: unix socket paths are limited to 107 bytes.
        let state =
            std::env::temp_dir().join(format!("hss-{}", &Uuid::new_v4().simple().to_string()[..8]));
        std::fs::create_dir_all(&state).expect("state dir");
        Stack { state }
    }

    pub fn state(&self) -> &str {
        self.state.to_str().expect("utf-8 path")
    }

    pub fn lib(file: &str) -> String {
        format!("{}/../dev/lib/{file}", env!("CARGO_MANIFEST_DIR"))
    }

    /// `bash -c 'source LIB; FUNCTION ARGS…'`; fails the test with the output.
    pub async fn helper(lib: &str, function: &str, args: &[&str]) {
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; source "$1"; shift; "$@""#)
            .arg("bash")
            .arg(Self::lib(lib))
            .arg(function)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert!(
            out.status.success(),
            "{function} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn headscale_bin() -> String {
        std::env::var("TEST_HS_BIN").unwrap_or_else(|_| {
            let cache = std::env::var("PORTAL_CACHE").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/hsportal",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            format!("{cache}/bin/headscale")
        })
    }

    /// Starts shard `cluster_id` on the ports of `slot` (see the module's list).
    pub async fn start_shard(&self, cluster_id: &str, slot: u16) -> RealShard {
        self.start_shard_with(cluster_id, slot, &Self::headscale_bin())
            .await
    }

    /// Starts shard `cluster_id` from the headscale binary `bin`.
    pub async fn start_shard_with(&self, cluster_id: &str, slot: u16, bin: &str) -> RealShard {
        let http = env_port("TEST_SYNC_HTTP_PORT", 18480) + slot;
        let grpc = env_port("TEST_SYNC_GRPC_PORT", 28840) + slot;
        let metrics = env_port("TEST_SYNC_METRICS_PORT", 19480) + slot;
        Self::helper(
            "headscale.sh",
            "hs_start",
            &[
                self.state(),
                cluster_id,
                &http.to_string(),
                &grpc.to_string(),
                &metrics.to_string(),
                bin,
            ],
        )
        .await;
        let key_file = self.state.join("hs").join(cluster_id).join("apikey");
        let api_key = std::fs::read_to_string(&key_file)
            .unwrap_or_else(|e| panic!("{}: {e}", key_file.display()))
            .trim()
            .to_string();
        RealShard {
            cluster_id: cluster_id.into(),
            url: format!("http://127.0.0.1:{http}"),
            api_key,
            slot,
            bin: bin.to_string(),
        }
    }

    pub async fn restart_shard(&self, shard: &RealShard) {
        let again = self
            .start_shard_with(&shard.cluster_id, shard.slot, &shard.bin)
            .await;
        assert_eq!(again.api_key, shard.api_key, "same state, same API key");
    }

    pub async fn stop_shard(&self, shard: &RealShard) {
        Self::helper(
            "headscale.sh",
            "hs_stop",
            &[self.state(), &shard.cluster_id],
        )
        .await;
    }

    /// Starts tailscaled `name` and joins it to `shard` with `key` as `hostname`.
    pub async fn join(&self, name: &str, shard: &RealShard, key: &str, hostname: &str) {
        self.join_with(name, shard, key, hostname, &[]).await;
    }

    /// `join` with extra `tailscale up` flags (`--advertise-routes=…`).
    pub async fn join_with(
        &self,
        name: &str,
        shard: &RealShard,
        key: &str,
        hostname: &str,
        extra: &[&str],
    ) {
        Self::helper("tailscale.sh", "ts_start", &[self.state(), name]).await;
        let mut args = vec![self.state(), name, &shard.url, key, hostname];
        args.extend_from_slice(extra);
        Self::helper("tailscale.sh", "ts_up", &args).await;
    }

    /// Starts tailscaled `name` and an interactive `tailscale up` (no key) against
    /// `shard`; returns the still-running `tailscale up` and the registration URL the
    /// device shows.
    pub async fn up_interactive(
        &self,
        name: &str,
        shard: &RealShard,
        hostname: &str,
    ) -> (tokio::process::Child, String) {
        Self::helper("tailscale.sh", "ts_start", &[self.state(), name]).await;
        let cli = || {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(r#"source "$1"; shift; ts_cli "$@""#)
                .arg("bash")
                .arg(Self::lib("tailscale.sh"))
                .arg(self.state())
                .arg(name)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            c
        };
        let child = cli()
            .args([
                "up",
                &format!("--login-server={}", shard.url),
                &format!("--hostname={hostname}"),
                "--accept-dns=false",
                "--timeout=90s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tailscale up");
        for _ in 0..150 {
            let out = cli()
                .args(["status", "--json"])
                .output()
                .await
                .expect("status");
            if let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                if let Some(url) = status["AuthURL"].as_str().filter(|u| !u.is_empty()) {
                    return (child, url.to_string());
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("tailscaled {name} showed no registration URL");
    }

    /// `tailscale status --json` of daemon `name`.
    pub async fn status_json(&self, name: &str) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; source "$1"; shift; ts_status_json "$@""#)
            .arg("bash")
            .arg(Self::lib("tailscale.sh"))
            .arg(self.state())
            .arg(name)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("tailscale status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `tailscale ping` from daemon `name` to `ip` (one try, 5 s): whether a pong came.
    #[allow(dead_code)]
    pub async fn ping(&self, name: &str, ip: &str) -> bool {
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"source "$1"; shift; ts_cli "$@""#)
            .arg("bash")
            .arg(Self::lib("tailscale.sh"))
            .arg(self.state())
            .arg(name)
            .args(["ping", "-c", "1", "--timeout", "5s", ip])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("tailscale ping");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pong")
    }

    /// Stops tailscaled `name` (the device goes away without logging out).
    pub async fn stop_daemon(&self, name: &str) {
        Self::helper("tailscale.sh", "ts_stop", &[self.state(), name]).await;
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Blocking is fine: the test is over.
        let _ = std::process::Command::new("bash")
            .arg("-c")
            .arg(r#"source "$1"; stop_all "$2""#)
            .arg("bash")
            .arg(Self::lib("common.sh"))
            .arg(&self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
