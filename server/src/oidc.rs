//! Sign-in with OpenID Connect (Authentik in production): authorization code flow with
//! PKCE, nonce and state (RFC 6749, RFC 7636, OpenID Connect Core 1.0 §3.1), and
//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
//!
//! The pending sign-in lives in Postgres (`oidc_login`), keyed by a random id in a
//! short-lived SameSite=Lax cookie that survives the cross-site redirect back from the
//! provider. The callback consumes the row, so a state value works exactly once.

use crate::config::OidcConfig;
use crate::startup::Portal;
use app::data::people::{record_login, LoginFacts};
use app::ui::login_page::safe_return_path;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, IdToken, IdTokenClaims, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, RequestTokenError, Scope,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use tower_sessions::Session;
use uuid::Uuid;

/// How long a started sign-in may take before the callback refuses it.
const LOGIN_TTL_SECONDS: i64 = 600;
/// How long discovery (including the signing keys) is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);
/// The most one sign-in step (`/auth/login`, the callback, sign-out) waits on the
/// provider in all: a refused sign-in must reach the person within 10 s (issue 8), and
/// one step may make several calls (discovery is two: the document, then the keys).
/// A provider that accepts connections and never answers (a hung process) costs this.
const PROVIDER_BUDGET: Duration = Duration::from_secs(8);

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct LogoutMetadata {
    end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for LogoutMetadata {}

type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Authentik's `groups` claim (profile scope).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct GroupsClaims {
    #[serde(default)]
    groups: Vec<String>,
}
impl AdditionalClaims for GroupsClaims {}

type PortalIdToken = IdToken<
    GroupsClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

pub struct Oidc {
    cfg: OidcConfig,
    redirect_url: RedirectUrl,
    http: openidconnect::reqwest::Client,
    discovered: RwLock<Option<(Instant, Arc<Metadata>)>>,
    pub login_cookie: &'static str,
    secure_cookies: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider discovery failed: {0}")]
    Discovery(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl Oidc {
    pub fn new(
        cfg: OidcConfig,
        public_url: &url::Url,
        secure_cookies: bool,
    ) -> Result<Oidc, OidcError> {
        let redirect = public_url
            .join("/auth/callback")
            .map_err(|e| OidcError::Config(e.to_string()))?;
        let http = openidconnect::reqwest::Client::builder()
            // Following redirects would open the client to SSRF (openidconnect docs).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(PROVIDER_BUDGET)
            .build()
            .map_err(|e| OidcError::Config(e.to_string()))?;
        Ok(Oidc {
            cfg,
            redirect_url: RedirectUrl::new(redirect.to_string())
                .map_err(|e| OidcError::Config(e.to_string()))?,
            http,
            discovered: RwLock::new(None),
            login_cookie: if secure_cookies {
                "__Host-portal_login"
            } else {
                "portal_login"
            },
            secure_cookies,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.cfg.issuer
    }

    /// Discovery document and signing keys, cached. `refresh` forces a new fetch (used
    /// once when a token names a key we do not know: the provider may have rotated).
    async fn metadata(&self, refresh: bool) -> Result<Arc<Metadata>, OidcError> {
        if !refresh {
            if let Some((at, md)) = self.discovered.read().await.as_ref() {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(md.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| OidcError::Config(e.to_string()))?;
        // Discovery checks that the document's issuer equals ours exactly.
        let md = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let md = Arc::new(md);
        *self.discovered.write().await = Some((Instant::now(), md.clone()));
        Ok(md)
    }

    fn client(&self, md: &Metadata) -> CoreClientFor {
        CoreClient::from_provider_metadata(
            md.clone(),
            ClientId::new(self.cfg.client_id.clone()),
            Some(ClientSecret::new(
                self.cfg.client_secret.expose().to_string(),
            )),
        )
        .set_redirect_uri(self.redirect_url.clone())
    }

    fn cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            self.login_cookie
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

type CoreClientFor = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn to_login_page(code: &str) -> Response {
    Redirect::to(&format!("/login?error={code}")).into_response()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /auth/login`: starts a sign-in and sends the browser to the provider.
pub async fn login(State(portal): State<Portal>, Query(q): Query<LoginQuery>) -> Response {
    let oidc = &portal.oidc;
    let md = match tokio::time::timeout(PROVIDER_BUDGET, oidc.metadata(false)).await {
        Ok(Ok(md)) => md,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "sign-in unavailable");
            return to_login_page("provider");
        }
        Err(_) => {
            tracing::error!(
                budget_s = PROVIDER_BUDGET.as_secs(),
                "sign-in unavailable: the identity provider did not answer in time"
            );
            return to_login_page("provider");
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = oidc.client(&md);
    let mut request = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in oidc.cfg.scopes.iter().filter(|s| s.as_str() != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();

    let id = Uuid::new_v4();
    let stored = sqlx::query(
        "insert into oidc_login (id, state, nonce, pkce_verifier, return_to) values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(state.secret())
    .bind(nonce.secret())
    .bind(verifier.secret())
    .bind(safe_return_path(q.next))
    .execute(&portal.app.pool)
    .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store the pending sign-in");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "The portal's database is not reachable. Please try again shortly.",
        )
            .into_response();
    }
    // Abandoned sign-ins are removed here rather than by a separate job.
    let _ = sqlx::query("delete from oidc_login where created_at < now() - interval '1 hour'")
        .execute(&portal.app.pool)
        .await;

    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        oidc.cookie(&id.to_string(), LOGIN_TTL_SECONDS),
    );
    res
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PendingLogin {
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
}

fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares secrets without revealing where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /auth/callback`: the provider sends the browser back here.
pub async fn callback(
    State(portal): State<Portal>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let mut res = match finish_login(&portal, &session, &headers, q).await {
        Ok(return_to) => Redirect::to(&return_to).into_response(),
        Err(code) => {
            // Who tried is not known (no valid ID token): the portal records the refusal.
            let recorded = app::data::audit::record_alone(
                &portal.app.pool,
                app::auth::Actor::System,
                None,
                "auth.sign_in_failed",
                "sign-in",
                serde_json::json!({ "reason": code }),
            )
            .await;
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "could not record a failed sign-in");
            }
            to_login_page(code)
        }
    };
    // The pending sign-in is single-use whatever happened.
    res.headers_mut()
        .append(header::SET_COOKIE, portal.oidc.cookie("", 0));
    res
}

async fn finish_login(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<String, &'static str> {
    let oidc = &portal.oidc;
    let id = read_cookie(headers, oidc.login_cookie)
        .and_then(|v| Uuid::parse_str(v).ok())
        .ok_or_else(|| {
            tracing::warn!("sign-in callback without a pending sign-in cookie");
            "expired"
        })?;
    let pending: Option<PendingLogin> = sqlx::query_as(
        "delete from oidc_login where id = $1 and created_at > now() - make_interval(secs => $2)
         returning state, nonce, pkce_verifier, return_to",
    )
    .bind(id)
    .bind(LOGIN_TTL_SECONDS as f64)
    .fetch_optional(&portal.app.pool)
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "could not read the pending sign-in");
        "failed"
    })?;
    let pending = pending.ok_or_else(|| {
        tracing::warn!("sign-in callback for an unknown, used or expired sign-in");
        "expired"
    })?;
    if let Some(err) = q.error {
        tracing::info!(error = %err, "identity provider refused the sign-in");
        return Err("denied");
    }
    let state_ok = q
        .state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s.as_bytes(), pending.state.as_bytes()));
    if !state_ok {
        tracing::warn!("sign-in callback with a wrong state");
        return Err("failed");
    }
    let code = q.code.ok_or("failed")?;

    // Everything the provider must answer for this sign-in, within one budget.
    let verified = tokio::time::timeout(
        PROVIDER_BUDGET,
        redeem(oidc, code, pending.pkce_verifier, Nonce::new(pending.nonce)),
    )
    .await
    .unwrap_or_else(|_| {
        tracing::error!(
            budget_s = PROVIDER_BUDGET.as_secs(),
            "sign-in unavailable: the identity provider did not answer in time"
        );
        Err("provider")
    });
    let (raw, claims) = verified?;

    let display_name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.to_string())
        .or_else(|| claims.preferred_username().map(|u| u.to_string()))
        .or_else(|| claims.email().map(|e| e.to_string()))
        .unwrap_or_else(|| claims.subject().to_string());
    let facts = LoginFacts {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified() == Some(true),
        display_name,
        roles: portal
            .app
            .role_mapping
            .map(&claims.additional_claims().groups),
    };
    let person_id = record_login(&portal.app.pool, &facts).await.map_err(|e| {
        tracing::error!(error = %e, "could not record the sign-in");
        "failed"
    })?;
    app::auth::session::establish(session, person_id, raw, portal.app.clock.as_ref())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not start the session");
            "failed"
        })?;
    tracing::info!(person_id = %person_id, operator = facts.roles.is_operator, tenants = facts.roles.tenant_roles.len(), "signed in");
    Ok(pending.return_to)
}

/// Exchanges the code at the token endpoint and verifies the ID token: its raw form and
/// its claims. `Err` is the code for the login page: "provider" when the provider could
/// not be asked (unreachable, no answer), "failed" when it or its token said no.
async fn redeem(
    oidc: &Oidc,
    code: String,
    pkce_verifier: String,
    nonce: Nonce,
) -> Result<(String, IdTokenClaims<GroupsClaims, CoreGenderClaim>), &'static str> {
    let md = oidc.metadata(false).await.map_err(|e| {
        tracing::error!(error = %e, "sign-in unavailable");
        "provider"
    })?;
    let client = oidc.client(&md);
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| {
            tracing::error!(error = %e, "provider has no token endpoint");
            "provider"
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
        .request_async(&oidc.http)
        .await
        .map_err(|e| match e {
            // The request did not get an answer: the provider is down or unreachable,
            // which the person should read as such (and try again later).
            RequestTokenError::Request(_) => {
                tracing::error!(error = %error_chain(&e), "token endpoint unreachable");
                "provider"
            }
            _ => {
                tracing::warn!(error = %error_chain(&e), "code exchange refused");
                "failed"
            }
        })?;
    use openidconnect::TokenResponse;
    let raw = token.id_token().map(|t| t.to_string()).ok_or_else(|| {
        tracing::warn!("token response without an ID token");
        "failed"
    })?;
    let id_token = PortalIdToken::from_str(&raw).map_err(|e| {
        tracing::warn!(error = %e, "unreadable ID token");
        "failed"
    })?;
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        Err(ClaimsVerificationError::SignatureVerification(first)) => {
            // Maybe the provider rotated its keys since we fetched them: refresh once.
            let fresh = oidc.metadata(true).await.map_err(|_| "provider")?;
            let fresh_client = oidc.client(&fresh);
            let verifier = fresh_client.id_token_verifier();
            let claims = id_token.claims(&verifier, &nonce).map_err(|e| {
                tracing::warn!(error = %e, earlier = %first, "ID token signature refused");
                "failed"
            })?;
            claims.clone()
        }
        Err(e) => {
            tracing::warn!(error = %e, "ID token refused");
            return Err("failed");
        }
    };
    Ok((raw, claims))
}

/// `POST /auth/logout`: ends the portal session, then the provider's (RP-initiated logout).
pub async fn logout(State(portal): State<Portal>, session: Session) -> Response {
    if let Some(person_id) = app::auth::session::person(&session).await {
        let recorded = app::data::audit::record_alone(
            &portal.app.pool,
            app::auth::Actor::Person(person_id),
            None,
            "auth.signed_out",
            "session",
            serde_json::json!({}),
        )
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a sign-out");
        }
    }
    let id_token = match app::auth::session::end(&session).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "could not end the session");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "Signing out failed because the portal's database is not reachable. Please try again.").into_response();
        }
    };
    let signed_out = portal
        .public_url
        .join("/signed-out")
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "/signed-out".into());
    let end_session = match tokio::time::timeout(PROVIDER_BUDGET, portal.oidc.metadata(false)).await
    {
        Ok(Ok(md)) => md.additional_metadata().end_session_endpoint.clone(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "provider unreachable at sign-out; portal session ended anyway");
            None
        }
        Err(_) => {
            tracing::warn!("provider did not answer at sign-out; portal session ended anyway");
            None
        }
    };
    let Some(endpoint) = end_session.and_then(|e| url::Url::parse(&e).ok()) else {
        return Redirect::to("/signed-out").into_response();
    };
    let mut url = endpoint;
    {
        let mut q = url.query_pairs_mut();
        if let Some(t) = &id_token {
            q.append_pair("id_token_hint", t);
        }
        q.append_pair("client_id", &portal.oidc.cfg.client_id);
        q.append_pair("post_logout_redirect_uri", &signed_out);
    }
    Redirect::to(url.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xportal_login=1; portal_login=abc; y=2"),
        );
        assert_eq!(read_cookie(&h, "portal_login"), Some("abc"));
        assert_eq!(read_cookie(&h, "missing"), None);
    }

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(constant_time_eq(b"state-1", b"state-1"));
        assert!(!constant_time_eq(b"state-1", b"state-2"));
        assert!(!constant_time_eq(b"state", b"state-1"));
    }
}
