//! The client against a REAL Headscale and real tailscaled clients (STYLE.md: shards are
//! tested with the real binary).
//!
//! The shard comes from the environment, as dev/test provides it:
//! - `TEST_HS_URL`: the shard's URL (`hs_url`), e.g. `http://127.0.0.1:18380`;
//! - `TEST_HS_APIKEY_FILE`: the file holding its API key (`$STATE/hs/NAME/apikey`);
//! - `TEST_HS_VERSION` (optional): the version it must report, default 0.29.2.
//!
//! Without them the tests fail (they do not skip): a green run must mean they ran. The
//! shard must be fresh — no policy set yet — because one test checks what a new shard
//! answers; start it on an empty state directory. Tests in this file share the shard:
//! each works with its own users and nodes, and only `policy_and_nodes_on_a_fresh_shard`
//! changes the policy.

use super::*;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::process::Command;

const CLUSTER: &str = "hs-test";
const TRIVIAL_POLICY: &str = r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#;
const TAG: &str = "tag:hsclient";

fn required_env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set. These tests need a real, fresh Headscale shard: run them \
                 through dev/test, or start one with dev/lib/headscale.sh (hs_start STATE NAME \
                 HTTP GRPC METRICS) and set TEST_HS_URL=http://127.0.0.1:HTTP and \
                 TEST_HS_APIKEY_FILE=STATE/hs/NAME/apikey"
            )
        })
}

fn shard_url() -> String {
    required_env("TEST_HS_URL")
}

fn api_key() -> ApiKey {
    let file = required_env("TEST_HS_APIKEY_FILE");
    let key = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read TEST_HS_APIKEY_FILE {file}: {e}"));
    ApiKey::new(key)
}

fn client() -> ShardClient {
    ShardClient::new(
        CLUSTER,
        &shard_url(),
        api_key(),
        ShardClientOptions::default(),
    )
    .unwrap()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[tokio::test]
async fn version_users_pre_auth_keys_and_errors_on_a_real_shard() {
    let client = client();
    let expected = std::env::var("TEST_HS_VERSION").unwrap_or_else(|_| "0.29.2".into());
    assert_eq!(
        client.version().await.unwrap(),
        HeadscaleVersion::parse(&expected).unwrap()
    );

    // Users.
    let name = unique("hsc-users");
    let user = client
        .create_user(&NewUser {
            name: name.clone(),
            display_name: "Alice Example".into(),
            email: format!("{name}@example.com"),
        })
        .await
        .unwrap();
    assert_eq!(user.name, name);
    assert_eq!(user.display_name, "Alice Example");
    assert_eq!(user.email, format!("{name}@example.com"));
    assert!(user.created_at.is_some());
    let users = client.list_users().await.unwrap();
    assert!(users.iter().any(|u| u == &user), "{users:?}");

    let duplicate = client
        .create_user(&NewUser {
            name: name.clone(),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        duplicate.kind(),
        HeadscaleErrorKind::Rejected,
        "{duplicate}"
    );

    let renamed = unique("hsc-renamed");
    let user = client.rename_user(user.id, &renamed).await.unwrap();
    assert_eq!(user.name, renamed);
    assert!(client
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.id == user.id && u.name == renamed));

    // Pre-auth keys: the full key once, masked afterwards.
    let created = client
        .create_pre_auth_key(&NewPreAuthKey {
            user: Some(user.id),
            reusable: false,
            ephemeral: false,
            expiration: OffsetDateTime::now_utc() + time::Duration::hours(1),
            acl_tags: vec![],
        })
        .await
        .unwrap();
    let secret = created.secret.expose().to_string();
    let key = &created.pre_auth_key;
    let prefix = key.prefix().expect("a 0.28+ key has a prefix").to_string();
    assert!(
        secret.starts_with(&format!("hskey-auth-{prefix}-")),
        "{key:?}"
    );
    assert!(secret.len() > 60);
    assert_eq!(key.masked_key, format!("hskey-auth-{prefix}-***"));
    assert_eq!(key.user.as_ref().map(|u| u.id), Some(user.id));
    assert!(key.is_usable(OffsetDateTime::now_utc()));
    assert!(!format!("{created:?}").contains(&secret[30..]));

    let keys = client.list_pre_auth_keys().await.unwrap();
    let listed = keys.iter().find(|k| k.id == key.id).expect("listed");
    assert_eq!(listed.masked_key, key.masked_key);
    assert_eq!(listed.prefix(), Some(prefix.as_str()));
    assert!(!listed.is_expired(OffsetDateTime::now_utc()));
    assert!(
        keys.iter().all(|k| k.masked_key.ends_with("***")),
        "no listed key is shown in full"
    );

    client.expire_pre_auth_key(key.id).await.unwrap();
    let keys = client.list_pre_auth_keys().await.unwrap();
    let listed = keys.iter().find(|k| k.id == key.id).expect("still listed");
    assert!(listed.is_expired(OffsetDateTime::now_utc()), "{listed:?}");
    assert!(!listed.is_usable(OffsetDateTime::now_utc()));

    client.delete_pre_auth_key(key.id).await.unwrap();
    let keys = client.list_pre_auth_keys().await.unwrap();
    assert!(keys.iter().all(|k| k.id != key.id));

    // Not found, however Headscale says it (404, or 500 "user not found").
    let e = client.get_node(NodeId(999_999_999)).await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::NotFound);
    assert_eq!(e.to_string(), "Shard hs-test has no node 999999999");
    for e in [
        client.delete_user(UserId(999_999_999)).await.unwrap_err(),
        client
            .rename_user(UserId(999_999_999), "nobody")
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.kind(), HeadscaleErrorKind::NotFound, "{e}");
        assert_eq!(e.to_string(), "Shard hs-test has no user 999999999");
    }

    // API keys: prefixes only.
    let api_keys = client.list_api_keys().await.unwrap();
    assert!(!api_keys.is_empty());
    assert!(api_keys
        .iter()
        .all(|k| k.prefix.starts_with("hskey-api-") && k.prefix.ends_with("-***")));

    // A wrong API key: unauthorized, naming the shard, never the key.
    let wrong = ShardClient::new(
        CLUSTER,
        &shard_url(),
        ApiKey::new("hskey-api-wrongprefix0-notthekeyatall"),
        ShardClientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        wrong.version().await.unwrap(),
        client.version().await.unwrap(),
        "/version needs no key"
    );
    let e = wrong.list_users().await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Unauthorized);
    assert_eq!(e.cluster_id(), CLUSTER);
    assert_eq!(e.to_string(), "Shard hs-test refused the API key (401)");
    assert!(!format!("{e:?}").contains("notthekeyatall"));

    client.delete_user(user.id).await.unwrap();
    assert!(client
        .list_users()
        .await
        .unwrap()
        .iter()
        .all(|u| u.id != user.id));
}

#[tokio::test]
async fn policy_and_nodes_on_a_fresh_shard() {
    let client = client();
    let version = client.version().await.unwrap();
    let url = shard_url();

    // Policy: none on a fresh database-mode shard, then what was set.
    let none = client.get_policy().await.unwrap();
    assert!(
        none.is_none(),
        "TEST_HS_URL must point to a fresh shard (no policy set yet); found {none:?}"
    );
    let set = client.set_policy(TRIVIAL_POLICY).await.unwrap();
    assert_eq!(set.policy, TRIVIAL_POLICY);
    let got = client.get_policy().await.unwrap().expect("a policy now");
    assert_eq!(got.policy, TRIVIAL_POLICY);
    assert!(got.updated_at.is_some());

    let bad = r#"{"acls":[{"action":"bogus","src":["*"],"dst":["*:*"]}]}"#;
    let e = client.set_policy(bad).await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Rejected, "{e}");
    assert!(
        e.to_string()
            .starts_with("Shard hs-test rejected the request: setting policy:"),
        "{e}"
    );
    assert_eq!(
        client.get_policy().await.unwrap().unwrap().policy,
        TRIVIAL_POLICY,
        "a rejected policy leaves the previous one in force"
    );
    if version.can_check_policy() {
        let e = client.check_policy(bad).await.unwrap_err();
        assert_eq!(e.kind(), HeadscaleErrorKind::Rejected, "{e}");
        client.check_policy(TRIVIAL_POLICY).await.unwrap();
    }
    // Tags must exist in the policy before a node can carry them.
    let tagged_policy = format!(
        r#"{{"tagOwners":{{"{TAG}":[]}},"acls":[{{"action":"accept","src":["*"],"dst":["*:*"]}}]}}"#
    );
    client.set_policy(&tagged_policy).await.unwrap();

    // A user, a key, and two real devices.
    let user = client
        .create_user(&NewUser {
            name: unique("hsc-nodes"),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let key = client
        .create_pre_auth_key(&NewPreAuthKey {
            user: Some(user.id),
            reusable: false,
            ephemeral: false,
            expiration: OffsetDateTime::now_utc() + time::Duration::hours(1),
            acl_tags: vec![],
        })
        .await
        .unwrap();
    let tailscaleds = Tailscaleds::new();
    let (a, b) = tokio::join!(tailscaleds.start("a"), tailscaleds.start("b"));
    a.unwrap();
    b.unwrap();

    // Device A joins with the pre-auth key; meanwhile device B starts an interactive
    // login and waits for an administrator.
    let host_a = unique("hsc-a");
    let host_b = unique("hsc-b");
    let (up_a, up_b) = tokio::join!(
        tailscaleds.up_with_key("a", &url, key.secret.expose(), &host_a),
        tailscaleds.up_interactive("b", &url, &host_b)
    );
    up_a.unwrap();
    let (pending, auth_url) = up_b.unwrap();
    let node_a = wait_for_node(&client, &host_a).await;
    assert_eq!(node_a.user.as_ref().map(|u| u.id), Some(user.id));
    assert_eq!(node_a.register_method, RegisterMethod::AuthKey);
    assert_eq!(
        node_a.pre_auth_key.as_ref().map(|k| k.id),
        Some(key.pre_auth_key.id)
    );
    assert!(!node_a.ip_addresses.is_empty());
    assert!(node_a.online);
    assert_eq!(node_a.expiry, None);
    assert!(!node_a.is_tagged());
    let listed_key = client
        .list_pre_auth_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.id == key.pre_auth_key.id)
        .unwrap();
    assert!(listed_key.used);

    // The portal registers device B by the ID from its registration URL.
    let form = version.registration_id_form();
    if form == RegistrationIdForm::AuthRequest {
        assert!(auth_url.contains("/register/hskey-authreq-"), "{auth_url}");
    }
    let node_b = client.register_node(&user.name, &auth_url).await.unwrap();
    assert_eq!(node_b.name, host_b);
    assert_eq!(node_b.register_method, RegisterMethod::Cli);
    assert_eq!(node_b.user.as_ref().map(|u| u.id), Some(user.id));
    let e = client
        .register_node(&user.name, &auth_url)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::NotFound, "used up: {e}");

    // Rename.
    let new_name = unique("renamed");
    let renamed = client.rename_node(node_a.id, &new_name).await.unwrap();
    assert_eq!(renamed.given_name, new_name);
    assert_eq!(
        client.get_node(node_a.id).await.unwrap().given_name,
        new_name
    );
    let e = client.rename_node(node_a.id, "Bad_Name").await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Rejected, "{e}");

    // Tags: a tagged node has no user, in every view of it.
    let tagged = client
        .set_tags(node_a.id, &[TAG.to_string()])
        .await
        .unwrap();
    assert_eq!(tagged.tags, vec![TAG.to_string()]);
    assert_eq!(tagged.user, None);
    let listed = client
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id == node_a.id)
        .unwrap();
    assert_eq!(listed.tags, vec![TAG.to_string()]);
    assert_eq!(listed.user, None, "not the tagged-devices pseudo-user");
    assert_eq!(client.get_node(node_a.id).await.unwrap().user, None);
    let e = client
        .set_tags(node_b.id, &["tag:not-in-policy".to_string()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Rejected, "{e}");
    assert_eq!(
        client.set_tags(node_b.id, &[]).await.unwrap_err().kind(),
        HeadscaleErrorKind::Rejected
    );

    // Device B's `tailscale up` (running meanwhile) succeeds once it is registered (before
    // the expiry below: 0.28 cannot undo an expiry, and an expired node never comes up).
    let up = tokio::time::timeout(Duration::from_secs(60), pending.wait_with_output())
        .await
        .expect("tailscale up finishes once registered")
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    // Routes and expiry.
    let routed = client
        .set_approved_routes(node_b.id, &["10.201.0.0/24".to_string()])
        .await
        .unwrap();
    assert_eq!(routed.approved_routes, vec!["10.201.0.0/24".to_string()]);
    let expired = client.expire_node(node_b.id).await.unwrap();
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert!(expired.is_expired(now), "{:?}", expired.expiry);
    if version.can_disable_node_expiry() {
        let forever = client.disable_node_expiry(node_b.id).await.unwrap();
        assert_eq!(forever.expiry, None);
    }

    // A user with nodes cannot be deleted.
    let e = client.delete_user(user.id).await.unwrap_err();
    assert_eq!(e.kind(), HeadscaleErrorKind::Rejected, "{e}");

    // Delete both devices.
    for id in [node_a.id, node_b.id] {
        client.delete_node(id).await.unwrap();
        let e = client.get_node(id).await.unwrap_err();
        assert_eq!(e.to_string(), format!("Shard hs-test has no node {id}"));
    }
    let nodes = client.list_nodes().await.unwrap();
    assert!(nodes.iter().all(|n| n.id != node_a.id && n.id != node_b.id));

    client.set_policy(TRIVIAL_POLICY).await.unwrap();
    client.delete_user(user.id).await.unwrap();
}

/// ListNodes right after `tailscale up` returns: the node is there, but its `online`
/// flag follows the map session a moment later.
async fn wait_for_node(client: &ShardClient, hostname: &str) -> Node {
    let mut last = None;
    for _ in 0..50 {
        let nodes = client.list_nodes().await.unwrap();
        if let Some(node) = nodes.into_iter().find(|n| n.name == hostname) {
            if node.online {
                return node;
            }
            last = Some(node);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("node {hostname} did not show up online: {last:?}");
}

/// Real tailscaled daemons for one test, through dev/lib/tailscale.sh, in their own
/// state directory. Dropping it stops them and removes the directory, also when the
/// test fails.
struct Tailscaleds {
    state: PathBuf,
    started: std::sync::Mutex<Vec<String>>,
}

impl Tailscaleds {
    fn new() -> Self {
        // Short: unix socket paths are limited to 107 bytes.
        let state = std::env::temp_dir().join(unique("hsc-ts"));
        std::fs::create_dir_all(&state).unwrap();
        Tailscaleds {
            state,
            started: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn lib() -> String {
        format!("{}/../dev/lib/tailscale.sh", env!("CARGO_MANIFEST_DIR"))
    }

    /// `bash -c 'source tailscale.sh; FUNCTION ARGS…'`
    fn helper(function: &str, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(r#"set -euo pipefail; source "$1"; shift; "$@""#)
            .arg("bash")
            .arg(Self::lib())
            .arg(function)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(mut command: Command, what: &str) -> Result<(), String> {
        let out = command.output().await.map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn state(&self) -> &str {
        self.state.to_str().unwrap()
    }

    async fn start(&self, name: &str) -> Result<(), String> {
        self.started.lock().unwrap().push(name.to_string());
        Self::run(
            Self::helper("ts_start", &[self.state(), name]),
            &format!("ts_start {name}"),
        )
        .await
    }

    async fn up_with_key(
        &self,
        name: &str,
        login_server: &str,
        key: &str,
        hostname: &str,
    ) -> Result<(), String> {
        Self::run(
            Self::helper("ts_up", &[self.state(), name, login_server, key, hostname]),
            &format!("ts_up {name}"),
        )
        .await
    }

    /// The tailscale CLI for daemon `name` (the binary dev/lib/common.sh installs).
    fn cli(&self, name: &str) -> Command {
        let cache = std::env::var("PORTAL_CACHE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/hsportal",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let mut command = Command::new(format!("{cache}/bin/tailscale"));
        command
            .arg(format!("--socket={}/ts/{name}/sock", self.state()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts an interactive `tailscale up` (no key) and returns the still-running
    /// process and the registration URL the device shows.
    async fn up_interactive(
        &self,
        name: &str,
        login_server: &str,
        hostname: &str,
    ) -> Result<(tokio::process::Child, String), String> {
        let child = self
            .cli(name)
            .args([
                "up",
                &format!("--login-server={login_server}"),
                &format!("--hostname={hostname}"),
                "--accept-dns=false",
                "--reset",
                "--timeout=60s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("tailscale up: {e}"))?;
        for _ in 0..150 {
            let out = self
                .cli(name)
                .args(["status", "--json"])
                .output()
                .await
                .map_err(|e| format!("tailscale status: {e}"))?;
            if let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                if let Some(url) = status["AuthURL"].as_str().filter(|u| !u.is_empty()) {
                    return Ok((child, url.to_string()));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("tailscaled {name} showed no registration URL"))
    }
}

impl Drop for Tailscaleds {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.started.lock().unwrap_or_else(|p| p.into_inner()));
        if !names.is_empty() {
            // Blocking is fine here: the test is over. The daemons stop in parallel.
            let _ = std::process::Command::new("bash")
                .arg("-c")
                .arg(
                    r#"source "$1"; state="$2"; shift 2
                    for n in "$@"; do ts_stop "$state" "$n" & done; wait"#,
                )
                .arg("bash")
                .arg(Self::lib())
                .arg(&self.state)
                .args(&names)
                .stdin(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
