//! TEST DOUBLE — a fault-injecting identity provider.
//!
//! The real provider cannot be made to put a wrong nonce into an ID token or to sign
//! with a key it does not publish, so these faults come from this small provider. Its
//! `Honest` mode signs correctly; a test using it first proves the double itself works,
//! so a refusal in the other modes is the portal's doing.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Everything correct.
    Honest,
    /// The ID token carries a nonce other than the one the portal sent.
    WrongNonce,
    /// The ID token is signed with a key that is not in the published key set.
    UnpublishedKey,
    /// The ID token names another issuer.
    WrongIssuer,
}

struct Inner {
    issuer: String,
    client_id: String,
    published: RsaPrivateKey,
    unpublished: RsaPrivateKey,
    fault: Mutex<Fault>,
    last_nonce: Mutex<Option<String>>,
}

#[derive(Clone)]
pub struct RogueIdp(Arc<Inner>);

impl RogueIdp {
    pub async fn start(client_id: &str) -> RogueIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let issuer = format!("http://{addr}/application/o/rogue/");
        let mut rng = rand::thread_rng();
        let idp = RogueIdp(Arc::new(Inner {
            issuer,
            client_id: client_id.to_string(),
            published: RsaPrivateKey::new(&mut rng, 2048).expect("rsa key"),
            unpublished: RsaPrivateKey::new(&mut rng, 2048).expect("rsa key"),
            fault: Mutex::new(Fault::Honest),
            last_nonce: Mutex::new(None),
        }));
        let prefix = "/application/o/rogue";
        let router = Router::new()
            .route(
                &format!("{prefix}/.well-known/openid-configuration"),
                get(discovery),
            )
            .route(&format!("{prefix}/jwks"), get(jwks))
            .route(&format!("{prefix}/authorize"), get(authorize))
            .route(&format!("{prefix}/token"), post(token))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        idp
    }

    pub fn issuer(&self) -> String {
        self.0.issuer.clone()
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.0.fault.lock().unwrap() = fault;
    }
}

fn jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": B64.encode(public.n().to_bytes_be()),
        "e": B64.encode(public.e().to_bytes_be()),
    })
}

async fn discovery(State(idp): State<RogueIdp>) -> Json<Value> {
    let i = &idp.0.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}authorize"),
        "token_endpoint": format!("{i}token"),
        "jwks_uri": format!("{i}jwks"),
        "end_session_endpoint": format!("{i}end-session"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(idp): State<RogueIdp>) -> Json<Value> {
    Json(json!({ "keys": [jwk(&idp.0.published, "published")] }))
}

async fn authorize(
    State(idp): State<RogueIdp>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    *idp.0.last_nonce.lock().unwrap() = q.get("nonce").cloned();
    let mut target = url::Url::parse(q.get("redirect_uri").expect("redirect_uri")).expect("url");
    target
        .query_pairs_mut()
        .append_pair("code", "rogue-code")
        .append_pair("state", q.get("state").map(String::as_str).unwrap_or(""));
    Redirect::to(target.as_str())
}

async fn token(State(idp): State<RogueIdp>) -> Json<Value> {
    let inner = &idp.0;
    let fault = *inner.fault.lock().unwrap();
    let nonce = inner.last_nonce.lock().unwrap().clone().unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": if fault == Fault::WrongIssuer { "http://127.0.0.1:1/application/o/other/".to_string() } else { inner.issuer.clone() },
        "sub": "rogue-subject-1",
        "aud": inner.client_id,
        "iat": now,
        "exp": now + 300,
        "nonce": if fault == Fault::WrongNonce { "not-the-nonce-you-sent".to_string() } else { nonce },
        "email": "mallory@acme.example",
        "name": "Mallory",
        "groups": ["tenant:acme:owner", "portal-operators"],
    });
    let (key, kid) = if fault == Fault::UnpublishedKey {
        (&inner.unpublished, "published")
    } else {
        (&inner.published, "published")
    };
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signer = SigningKey::<Sha256>::new(key.clone());
    let signature = signer.sign(signing_input.as_bytes()).to_bytes();
    let id_token = format!("{signing_input}.{}", B64.encode(signature));
    Json(json!({
        "access_token": "rogue-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
}
