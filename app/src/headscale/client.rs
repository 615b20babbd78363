//! `ShardClient`: typed calls to one shard's REST API (`/api/v1`, bearer API key).
//!
//! Endpoints and bodies follow Headscale's `proto/headscale/v1/headscale.proto` (the
//! REST routes are its `google.api.http` options), checked against v0.28.0 and v0.29.2
//! and against the real v0.29.2 server by the tests in `real_shard_tests`.
//!
//! Every call: a connect timeout and a total timeout per attempt; retries for reads
//! only (`retry`); a per-shard circuit breaker (`breaker`); errors as `HeadscaleError`
//! naming the shard. Keep one client per shard for the life of the process (it is
//! cheap to clone): the breaker and the detected version live in it.

use super::breaker::{BreakerState, CircuitBreaker, InstantClock, SystemInstantClock};
use super::error::HeadscaleError;
use super::retry::{self, AttemptFailure};
use super::secret::{ApiKey, PreAuthKeySecret};
use super::types::{
    mask_pre_auth_key, ApiKeyInfo, CreatedPreAuthKey, NewPreAuthKey, NewUser, Node, NodeId, Policy,
    PreAuthKey, PreAuthKeyId, User, UserId,
};
use super::version::{HeadscaleVersion, RegistrationIdForm};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::UtcOffset;

#[derive(Clone)]
pub struct ShardClientOptions {
    /// Time for one attempt, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// Time to establish the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Extra attempts for reads (GET) after a connect error, timeout or 502/503/504.
    /// A read can thus take up to `(1 + max_retries) × timeout` plus the pauses.
    pub max_retries: u32,
    /// Pause before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// Failed calls in a row (unreachable, timeout, 5xx) that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker fails calls fast before letting a trial through.
    pub cool_down: Duration,
    pub clock: Arc<dyn InstantClock>,
}

impl Default for ShardClientOptions {
    fn default() -> Self {
        ShardClientOptions {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_retries: 2,
            retry_backoff: Duration::from_millis(200),
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            clock: Arc::new(SystemInstantClock),
        }
    }
}

impl fmt::Debug for ShardClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardClientOptions")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("failure_threshold", &self.failure_threshold)
            .field("cool_down", &self.cool_down)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct ShardClient {
    inner: Arc<Inner>,
}

struct Inner {
    cluster_id: String,
    base: Url,
    api_key: ApiKey,
    authorization: HeaderValue,
    http: reqwest::Client,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    retry_backoff: Duration,
    breaker: CircuitBreaker,
    version: Mutex<Option<HeadscaleVersion>>,
}

impl fmt::Debug for ShardClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardClient")
            .field("cluster_id", &self.inner.cluster_id)
            .field("api_url", &self.inner.base.as_str())
            .field("api_key", &self.inner.api_key)
            .field("version", &self.cached_version())
            .field("breaker", &self.inner.breaker)
            .finish()
    }
}

/// One HTTP call, before it is sent.
struct Request {
    method: Method,
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    authenticated: bool,
    /// What the call is about, for messages: "node 7", "users".
    what: String,
}

impl Request {
    /// A call under `/api/v1/`, with the API key.
    fn api(method: Method, segments: &[&str], what: impl Into<String>) -> Self {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        Request {
            method,
            segments: all.into_iter().map(String::from).collect(),
            query: Vec::new(),
            body: None,
            authenticated: true,
            what: what.into(),
        }
    }

    /// `GET /version`: outside the API, and without the key (it needs none).
    fn version() -> Self {
        Request {
            method: Method::GET,
            segments: vec!["version".into()],
            query: Vec::new(),
            body: None,
            authenticated: false,
            what: "version information".into(),
        }
    }

    fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// For logs: the path without the query (which may hold a registration ID).
    fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

impl ShardClient {
    /// A client for the shard `cluster_id` whose API is at `api_url` (Headscale's
    /// `server_url`, e.g. `https://hs-a.example.net`). Fails only on unusable settings.
    pub fn new(
        cluster_id: impl Into<String>,
        api_url: &str,
        api_key: ApiKey,
        options: ShardClientOptions,
    ) -> Result<Self, HeadscaleError> {
        let cluster_id = cluster_id.into();
        let misconfigured = |why: &str| HeadscaleError::misconfigured(&cluster_id, why.into());

        let mut base = Url::parse(api_url.trim()).map_err(|e| {
            misconfigured(&format!("Shard {cluster_id} has an invalid API URL ({e})"))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(misconfigured(&format!(
                "Shard {cluster_id} has an API URL that is not http(s)"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(misconfigured(&format!(
                "Shard {cluster_id} has credentials in its API URL; use the API key setting"
            )));
        }
        base.set_query(None);
        base.set_fragment(None);

        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", api_key.expose()))
            .map_err(|_| {
                misconfigured(&format!(
                    "The API key of shard {cluster_id} contains characters that cannot be sent"
                ))
            })?;
        // Keeps the value out of the HTTP stack's own debug output.
        authorization.set_sensitive(true);

        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            // Headscale's API never redirects; following one could carry the key away.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hsportal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                misconfigured(&format!(
                    "The HTTP client for shard {cluster_id} could not be built ({e})"
                ))
            })?;

        Ok(ShardClient {
            inner: Arc::new(Inner {
                breaker: CircuitBreaker::new(
                    options.failure_threshold,
                    options.cool_down,
                    options.clock.clone(),
                ),
                cluster_id,
                base,
                api_key,
                authorization,
                http,
                timeout: options.timeout,
                connect_timeout: options.connect_timeout,
                max_retries: options.max_retries,
                retry_backoff: options.retry_backoff,
                version: Mutex::new(None),
            }),
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    /// The circuit breaker's state, for health pages.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Failed calls in a row (unreachable, timeout, 5xx) since the last good answer.
    pub fn consecutive_failures(&self) -> u32 {
        self.inner.breaker.consecutive_failures()
    }

    // ------------------------------------------------------------------ version --

    /// The shard's Headscale version: detected on first use (`GET /version`, which
    /// needs no API key) and cached.
    pub async fn version(&self) -> Result<HeadscaleVersion, HeadscaleError> {
        match self.cached_version() {
            Some(v) => Ok(v),
            None => self.refresh_version().await,
        }
    }

    /// Asks the shard again, e.g. after it was upgraded.
    pub async fn refresh_version(&self) -> Result<HeadscaleVersion, HeadscaleError> {
        #[derive(Deserialize)]
        struct VersionInfo {
            version: String,
        }
        let info: VersionInfo = self.json(Request::version()).await?;
        let version = HeadscaleVersion::parse(&info.version).ok_or_else(|| {
            let shown: String = info
                .version
                .chars()
                .filter(|c| !c.is_control())
                .take(40)
                .collect();
            HeadscaleError::unsupported(
                &self.inner.cluster_id,
                format!(
                    "Shard {} reports Headscale version {shown:?}, which the portal cannot \
                     match to an API; it needs a release, 0.28 or later",
                    self.inner.cluster_id
                ),
            )
        })?;
        *self.inner.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(version);
        Ok(version)
    }

    pub fn cached_version(&self) -> Option<HeadscaleVersion> {
        *self.inner.version.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every typed call first makes sure the shard speaks an API this client knows.
    async fn supported_version(&self) -> Result<HeadscaleVersion, HeadscaleError> {
        let version = self.version().await?;
        if !version.is_supported() {
            return Err(HeadscaleError::unsupported(
                &self.inner.cluster_id,
                format!(
                    "Shard {} runs Headscale {version}; the portal needs {} or later",
                    self.inner.cluster_id,
                    HeadscaleVersion::OLDEST_SUPPORTED
                ),
            ));
        }
        Ok(version)
    }

    fn unsupported_before(&self, version: HeadscaleVersion, feature: &str) -> HeadscaleError {
        HeadscaleError::unsupported(
            &self.inner.cluster_id,
            format!(
                "Shard {} runs Headscale {version}, which cannot {feature}; that needs {} or later",
                self.inner.cluster_id,
                HeadscaleVersion::V0_29_0
            ),
        )
    }

    // -------------------------------------------------------------------- users --

    /// `GET /api/v1/user`
    pub async fn list_users(&self) -> Result<Vec<User>, HeadscaleError> {
        self.supported_version().await?;
        #[derive(Deserialize)]
        struct Users {
            #[serde(default)]
            users: Vec<User>,
        }
        let r: Users = self
            .json(Request::api(Method::GET, &["user"], "users"))
            .await?;
        Ok(r.users)
    }

    /// `POST /api/v1/user` `{name, displayName, email}`
    pub async fn create_user(&self, user: &NewUser) -> Result<User, HeadscaleError> {
        self.supported_version().await?;
        let r: UserEnvelope = self
            .json(
                Request::api(Method::POST, &["user"], format!("user {}", user.name)).body(json!({
                    "name": user.name,
                    "displayName": user.display_name,
                    "email": user.email,
                })),
            )
            .await?;
        Ok(r.user)
    }

    /// `POST /api/v1/user/{id}/rename/{newName}`
    pub async fn rename_user(&self, id: UserId, new_name: &str) -> Result<User, HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        let r: UserEnvelope = self
            .json(Request::api(
                Method::POST,
                &["user", &id, "rename", new_name],
                format!("user {id}"),
            ))
            .await?;
        Ok(r.user)
    }

    /// `DELETE /api/v1/user/{id}`. Headscale refuses while the user still has nodes.
    pub async fn delete_user(&self, id: UserId) -> Result<(), HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.send(Request::api(
            Method::DELETE,
            &["user", &id],
            format!("user {id}"),
        ))
        .await?;
        Ok(())
    }

    // -------------------------------------------------------------------- nodes --

    /// `GET /api/v1/node`: every node of the shard.
    pub async fn list_nodes(&self) -> Result<Vec<Node>, HeadscaleError> {
        self.supported_version().await?;
        #[derive(Deserialize)]
        struct Nodes {
            #[serde(default)]
            nodes: Vec<Node>,
        }
        let r: Nodes = self
            .json(Request::api(Method::GET, &["node"], "nodes"))
            .await?;
        Ok(r.nodes)
    }

    /// `GET /api/v1/node/{id}`
    pub async fn get_node(&self, id: NodeId) -> Result<Node, HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.node_call(Request::api(
            Method::GET,
            &["node", &id],
            format!("node {id}"),
        ))
        .await
    }

    /// `POST /api/v1/node/{id}/rename/{newName}`: sets the given (MagicDNS) name, which
    /// must be a valid DNS label.
    pub async fn rename_node(&self, id: NodeId, new_name: &str) -> Result<Node, HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.node_call(Request::api(
            Method::POST,
            &["node", &id, "rename", new_name],
            format!("node {id}"),
        ))
        .await
    }

    /// `POST /api/v1/node/{id}/tags` `{tags}`. Each tag must be defined in the policy's
    /// `tagOwners`, and the list must not be empty. A tagged node is owned by its tags
    /// and has no user from then on (0.28+; it cannot go back to a user).
    pub async fn set_tags(&self, id: NodeId, tags: &[String]) -> Result<Node, HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.node_call(
            Request::api(Method::POST, &["node", &id, "tags"], format!("node {id}"))
                .body(json!({ "tags": tags })),
        )
        .await
    }

    /// `POST /api/v1/node/{id}/approve_routes` `{routes}`: replaces the approved set
    /// (an empty list withdraws every approval).
    pub async fn set_approved_routes(
        &self,
        id: NodeId,
        routes: &[String],
    ) -> Result<Node, HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.node_call(
            Request::api(
                Method::POST,
                &["node", &id, "approve_routes"],
                format!("node {id}"),
            )
            .body(json!({ "routes": routes })),
        )
        .await
    }

    /// `POST /api/v1/node/{id}/expire`: expires the node key now (the device must log
    /// in again).
    pub async fn expire_node(&self, id: NodeId) -> Result<Node, HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.node_call(Request::api(
            Method::POST,
            &["node", &id, "expire"],
            format!("node {id}"),
        ))
        .await
    }

    /// `POST /api/v1/node/{id}/expire?disableExpiry=true` (0.29+): the node key never
    /// expires. Refused on 0.28, which would ignore the flag and expire the node now.
    pub async fn disable_node_expiry(&self, id: NodeId) -> Result<Node, HeadscaleError> {
        let version = self.supported_version().await?;
        if !version.can_disable_node_expiry() {
            return Err(self.unsupported_before(version, "turn off a node's key expiry"));
        }
        let id = id.to_string();
        self.node_call(
            Request::api(Method::POST, &["node", &id, "expire"], format!("node {id}"))
                .query("disableExpiry", "true"),
        )
        .await
    }

    /// `DELETE /api/v1/node/{id}`
    pub async fn delete_node(&self, id: NodeId) -> Result<(), HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.send(Request::api(
            Method::DELETE,
            &["node", &id],
            format!("node {id}"),
        ))
        .await?;
        Ok(())
    }

    /// Registers a node that is waiting for an administrator (interactive `tailscale
    /// up` without a key) to the user named `user_name`. `registration_id` is the ID
    /// from the `…/register/<id>` URL the device showed, or that whole URL.
    ///
    /// 0.29+: `hskey-authreq-…` (38 characters) via `POST /api/v1/auth/register`
    /// `{user, authId}`. 0.28: a 24-character ID via
    /// `POST /api/v1/node/register?user=…&key=…`. An ID of the other form is refused
    /// before anything is sent.
    pub async fn register_node(
        &self,
        user_name: &str,
        registration_id: &str,
    ) -> Result<Node, HeadscaleError> {
        let version = self.supported_version().await?;
        let id = registration_id_from(registration_id);
        let form = version.registration_id_form();
        if let Err(expected) = check_registration_id(form, id) {
            return Err(HeadscaleError::rejected_locally(
                &self.inner.cluster_id,
                &format!("Headscale {version} expects a registration ID of the form {expected}"),
            ));
        }
        let what = "pending registration with that ID";
        let request = match form {
            RegistrationIdForm::AuthRequest => {
                Request::api(Method::POST, &["auth", "register"], what)
                    .body(json!({ "user": user_name, "authId": id }))
            }
            RegistrationIdForm::Legacy => Request::api(Method::POST, &["node", "register"], what)
                .query("user", user_name)
                .query("key", id),
        };
        self.node_call(request).await
    }

    async fn node_call(&self, request: Request) -> Result<Node, HeadscaleError> {
        #[derive(Deserialize)]
        struct NodeEnvelope {
            node: Node,
        }
        let r: NodeEnvelope = self.json(request).await?;
        Ok(r.node)
    }

    // ------------------------------------------------------------ pre-auth keys --

    /// `POST /api/v1/preauthkey` `{user, reusable, ephemeral, expiration, aclTags}`.
    /// The answer holds the full key, the only time Headscale (0.28+) reveals it.
    pub async fn create_pre_auth_key(
        &self,
        key: &NewPreAuthKey,
    ) -> Result<CreatedPreAuthKey, HeadscaleError> {
        self.supported_version().await?;
        let expiration = key
            .expiration
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|_| {
                HeadscaleError::rejected_locally(
                    &self.inner.cluster_id,
                    "the expiration cannot be written as an RFC 3339 time",
                )
            })?;
        let mut body = json!({
            "reusable": key.reusable,
            "ephemeral": key.ephemeral,
            "expiration": expiration,
            "aclTags": key.acl_tags,
        });
        if let Some(user) = key.user {
            body["user"] = json!(user.to_string());
        }
        let what = "new pre-auth key";
        let bytes = self
            .send(Request::api(Method::POST, &["preauthkey"], what).body(body))
            .await?;

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created<T> {
            pre_auth_key: T,
        }
        #[derive(Deserialize)]
        struct RawKey {
            key: String,
        }
        let raw: Created<RawKey> = self.decode(what, &bytes)?;
        let pre_auth_key: Created<PreAuthKey> = self.decode(what, &bytes)?;
        let secret = raw.pre_auth_key.key;
        if secret.is_empty() || mask_pre_auth_key(&secret) == secret {
            return Err(HeadscaleError::bad_response(
                &self.inner.cluster_id,
                Some(200),
                "the new pre-auth key is missing from the answer",
            ));
        }
        Ok(CreatedPreAuthKey {
            pre_auth_key: pre_auth_key.pre_auth_key,
            secret: PreAuthKeySecret::new(secret),
        })
    }

    /// `GET /api/v1/preauthkey`: every key of the shard (0.28+), masked.
    pub async fn list_pre_auth_keys(&self) -> Result<Vec<PreAuthKey>, HeadscaleError> {
        self.supported_version().await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Keys {
            #[serde(default)]
            pre_auth_keys: Vec<PreAuthKey>,
        }
        let r: Keys = self
            .json(Request::api(Method::GET, &["preauthkey"], "pre-auth keys"))
            .await?;
        Ok(r.pre_auth_keys)
    }

    /// `POST /api/v1/preauthkey/expire` `{id}` (by id since 0.28). Note: Headscale
    /// answers success for an id it does not have.
    pub async fn expire_pre_auth_key(&self, id: PreAuthKeyId) -> Result<(), HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.send(
            Request::api(
                Method::POST,
                &["preauthkey", "expire"],
                format!("pre-auth key {id}"),
            )
            .body(json!({ "id": id })),
        )
        .await?;
        Ok(())
    }

    /// `DELETE /api/v1/preauthkey?id=…`. Also answers success for an unknown id.
    pub async fn delete_pre_auth_key(&self, id: PreAuthKeyId) -> Result<(), HeadscaleError> {
        self.supported_version().await?;
        let id = id.to_string();
        self.send(
            Request::api(
                Method::DELETE,
                &["preauthkey"],
                format!("pre-auth key {id}"),
            )
            .query("id", id),
        )
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------------- policy --

    /// `GET /api/v1/policy`; `None` while no policy has been set. A database-mode shard
    /// without a policy answers HTTP 500 `{"code":2,"message":"loading ACL from
    /// database: acl policy not found"}` (hscontrol/grpcv1.go GetPolicy).
    pub async fn get_policy(&self) -> Result<Option<Policy>, HeadscaleError> {
        self.supported_version().await?;
        match self
            .json(Request::api(Method::GET, &["policy"], "policy"))
            .await
        {
            Ok(policy) => Ok(Some(policy)),
            Err(e)
                if e.is_not_found()
                    && e.detail()
                        .is_some_and(|d| d.to_lowercase().contains("policy not found")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `PUT /api/v1/policy` `{policy}`: only with `policy.mode: database`. Headscale
    /// validates the policy (0.29: also runs its `tests`) and keeps the previous one if
    /// it fails; the failure is a `Rejected` error with Headscale's reason.
    pub async fn set_policy(&self, policy: &str) -> Result<Policy, HeadscaleError> {
        self.supported_version().await?;
        self.json(
            Request::api(Method::PUT, &["policy"], "policy").body(json!({ "policy": policy })),
        )
        .await
    }

    /// `POST /api/v1/policy/check` `{policy}` (0.29+): validates a policy against the
    /// shard's users and nodes, running its `tests`, without storing it.
    pub async fn check_policy(&self, policy: &str) -> Result<(), HeadscaleError> {
        let version = self.supported_version().await?;
        if !version.can_check_policy() {
            return Err(self.unsupported_before(version, "check a policy without storing it"));
        }
        self.send(
            Request::api(Method::POST, &["policy", "check"], "policy")
                .body(json!({ "policy": policy })),
        )
        .await?;
        Ok(())
    }

    // ----------------------------------------------------------------- API keys --

    /// `GET /api/v1/apikey`: the shard's API keys (prefixes only).
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, HeadscaleError> {
        self.supported_version().await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Keys {
            #[serde(default)]
            api_keys: Vec<ApiKeyInfo>,
        }
        let r: Keys = self
            .json(Request::api(Method::GET, &["apikey"], "API keys"))
            .await?;
        Ok(r.api_keys)
    }

    // --------------------------------------------------------------- transport --

    async fn json<T: DeserializeOwned>(&self, request: Request) -> Result<T, HeadscaleError> {
        let what = request.what.clone();
        let bytes = self.send(request).await?;
        self.decode(&what, &bytes)
    }

    /// Parses an answer. serde's messages can quote the offending value (a key, say),
    /// so only the error's category and position are reported.
    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, HeadscaleError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let category = match e.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "not JSON",
                serde_json::error::Category::Data => "unexpected JSON",
                serde_json::error::Category::Eof => "cut short",
            };
            HeadscaleError::bad_response(
                &self.inner.cluster_id,
                Some(200),
                &format!(
                    "{what}: {category} at line {}, column {}",
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// Sends through the circuit breaker, with retries; returns the body of a 2xx.
    async fn send(&self, request: Request) -> Result<Vec<u8>, HeadscaleError> {
        let inner = &self.inner;
        let permit = match inner.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(
                    cluster_id = %inner.cluster_id,
                    path = %request.path(),
                    "shard circuit open; failing fast"
                );
                return Err(HeadscaleError::circuit_open(
                    &inner.cluster_id,
                    refusal.failures,
                    refusal.retry_in,
                ));
            }
        };
        let result = self
            .with_retries(&request)
            .await
            .map_err(|e| e.redact(inner.api_key.expose()));
        match &result {
            Err(e) if e.counts_against_shard() => {
                permit.failed();
                tracing::warn!(
                    cluster_id = %inner.cluster_id,
                    method = %request.method,
                    path = %request.path(),
                    kind = ?e.kind(),
                    error = %e,
                    "headscale call failed"
                );
            }
            Err(e) => {
                permit.succeeded();
                tracing::debug!(
                    cluster_id = %inner.cluster_id,
                    method = %request.method,
                    path = %request.path(),
                    kind = ?e.kind(),
                    error = %e,
                    "headscale refused the call"
                );
            }
            Ok(_) => permit.succeeded(),
        }
        result
    }

    async fn with_retries(&self, request: &Request) -> Result<Vec<u8>, HeadscaleError> {
        let url = self.url(request);
        let mut retry = 0;
        loop {
            match self.attempt(request, &url).await {
                Ok(body) => return Ok(body),
                Err((failure, error)) => {
                    if retry >= self.inner.max_retries
                        || !retry::is_retryable(&request.method, failure)
                    {
                        return Err(error);
                    }
                    let pause = retry::backoff(self.inner.retry_backoff, retry);
                    tracing::debug!(
                        cluster_id = %self.inner.cluster_id,
                        path = %request.path(),
                        ?failure,
                        retry = retry + 1,
                        "retrying a read"
                    );
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
            }
        }
    }

    async fn attempt(
        &self,
        request: &Request,
        url: &Url,
    ) -> Result<Vec<u8>, (AttemptFailure, HeadscaleError)> {
        let inner = &self.inner;
        let mut builder = inner
            .http
            .request(request.method.clone(), url.clone())
            .timeout(inner.timeout);
        if request.authenticated {
            builder = builder.header(AUTHORIZATION, inner.authorization.clone());
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        Err((
            AttemptFailure::Status(status),
            HeadscaleError::from_response(&inner.cluster_id, &request.what, status, &body),
        ))
    }

    fn transport_error(&self, e: &reqwest::Error) -> (AttemptFailure, HeadscaleError) {
        let cluster_id = &self.inner.cluster_id;
        if e.is_connect() {
            let reason = if e.is_timeout() {
                format!(
                    "no connection within {}",
                    super::error::human_duration(self.inner.connect_timeout)
                )
            } else {
                root_cause(e)
            };
            (
                AttemptFailure::Connect,
                HeadscaleError::unreachable(cluster_id, &reason),
            )
        } else if e.is_timeout() {
            (
                AttemptFailure::Timeout,
                HeadscaleError::timeout(cluster_id, self.inner.timeout),
            )
        } else {
            (
                AttemptFailure::Other,
                HeadscaleError::unreachable(
                    cluster_id,
                    &format!("the connection broke off: {}", root_cause(e)),
                ),
            )
        }
    }

    fn url(&self, request: &Request) -> Url {
        let mut url = self.inner.base.clone();
        // `new` checked that the base can have a path, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(&request.segments);
        }
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        url
    }
}

#[derive(Deserialize)]
struct UserEnvelope {
    user: User,
}

/// The innermost error's text ("Connection refused (os error 111)"): reqwest's own
/// message repeats the URL and says less.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The ID from what a person pasted: the ID, or the `…/register/<id>` URL.
fn registration_id_from(input: &str) -> &str {
    let input = input.trim().trim_end_matches('/');
    input.rsplit('/').next().unwrap_or(input)
}

const AUTH_REQUEST_PREFIX: &str = "hskey-authreq-";
/// hscontrol/types/common.go: `RegistrationIDLength` (0.28), `authIDRandomLength` (0.29).
const REGISTRATION_ID_RANDOM_LEN: usize = 24;

/// `Err` carries the expected form, for the message.
fn check_registration_id(form: RegistrationIdForm, id: &str) -> Result<(), &'static str> {
    let random_part_ok = |s: &str| {
        s.len() == REGISTRATION_ID_RANDOM_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match form {
        RegistrationIdForm::AuthRequest => id
            .strip_prefix(AUTH_REQUEST_PREFIX)
            .filter(|rest| random_part_ok(rest))
            .map(|_| ())
            .ok_or("hskey-authreq-<24 characters>"),
        RegistrationIdForm::Legacy => {
            if random_part_ok(id) && !id.starts_with(AUTH_REQUEST_PREFIX) {
                Ok(())
            } else {
                Err("<24 characters>")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_ids_follow_the_shards_version() {
        let new = "hskey-authreq-xSV9WaJdF3gwBVAJCxrMBrbr";
        let old = "xSV9WaJdF3gwBVAJCxrMBrbr";
        assert_eq!(new.len(), 38);
        assert!(check_registration_id(RegistrationIdForm::AuthRequest, new).is_ok());
        assert!(check_registration_id(RegistrationIdForm::AuthRequest, old).is_err());
        assert!(check_registration_id(RegistrationIdForm::Legacy, old).is_ok());
        assert!(check_registration_id(RegistrationIdForm::Legacy, new).is_err());
        assert!(check_registration_id(RegistrationIdForm::Legacy, "short").is_err());
        assert!(check_registration_id(
            RegistrationIdForm::AuthRequest,
            "hskey-authreq-xSV9WaJdF3gwBVAJCxrMBrb!"
        )
        .is_err());
    }

    #[test]
    fn registration_ids_can_be_pasted_as_urls() {
        assert_eq!(
            registration_id_from(" http://127.0.0.1:18380/register/hskey-authreq-abc/ "),
            "hskey-authreq-abc"
        );
        assert_eq!(
            registration_id_from("hskey-authreq-abc"),
            "hskey-authreq-abc"
        );
    }

    fn client(url: &str) -> Result<ShardClient, HeadscaleError> {
        ShardClient::new(
            "hs-a",
            url,
            ApiKey::new("hskey-api-abcdefghijkl-verysecretpart"),
            ShardClientOptions::default(),
        )
    }

    #[test]
    fn urls_are_built_from_encoded_segments() {
        let c = client("http://127.0.0.1:8080/").unwrap();
        let r = Request::api(Method::POST, &["node", "7", "rename", "a b/c"], "node 7");
        assert_eq!(
            c.url(&r).as_str(),
            "http://127.0.0.1:8080/api/v1/node/7/rename/a%20b%2Fc"
        );
        let c = client("https://hs.example.net/prefix?x=1").unwrap();
        let r = Request::api(Method::POST, &["node", "register"], "x")
            .query("user", "t1.al ice")
            .query("key", "abc&d");
        assert_eq!(
            c.url(&r).as_str(),
            "https://hs.example.net/prefix/api/v1/node/register?user=t1.al+ice&key=abc%26d"
        );
    }

    #[test]
    fn unusable_settings_are_refused_without_echoing_the_key() {
        for url in [
            "not a url",
            "ftp://x",
            "mailto:a@b",
            "https://user:pw@hs.example",
        ] {
            let e = client(url).unwrap_err();
            assert_eq!(
                e.kind(),
                super::super::HeadscaleErrorKind::Misconfigured,
                "{url}"
            );
            assert!(e.to_string().contains("hs-a"));
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        let e = ShardClient::new(
            "hs-a",
            "http://x",
            ApiKey::new("hskey-api-bad\u{1}key"),
            ShardClientOptions::default(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("bad"), "{e}");
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let c = client("http://127.0.0.1:8080").unwrap();
        let shown = format!("{c:?} {c:#?} {:?}", ShardClientOptions::default());
        assert!(shown.contains("hs-a"));
        assert!(!shown.contains("verysecretpart"), "{shown}");
        assert!(!shown.contains("abcdefghijkl"), "{shown}");
    }
}
