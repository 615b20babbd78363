#!/usr/bin/env node
// Authentik-shaped OpenID Connect provider for development and tests.
//
//   node dev/oidc/server.mjs
//
// Environment:
//   OIDC_PORT        listen port (default 9400; 0 picks a free port, the
//                    issuer then uses the real one; read it from the ready line)
//   OIDC_HOST        listen address (default 127.0.0.1)
//   OIDC_ISSUER_BASE issuer origin (default http://127.0.0.1:$PORT)
//   OIDC_STATE_DIR   if set, the RS256 signing key is kept in
//                    $OIDC_STATE_DIR/rs256-signing-key.jwk.json across restarts
//   OIDC_EXTRA_REDIRECT_URIS              comma separated exact redirect URIs
//   OIDC_EXTRA_POST_LOGOUT_REDIRECT_URIS  comma separated exact post-logout URIs
//   OIDC_TRUST_PROXY=1  trust X-Forwarded-* headers (behind a reverse proxy)
//
// Like Authentik, every application lives under /application/o/<slug>/ and its
// issuer is http://127.0.0.1:PORT/application/o/<slug>/ (with trailing slash):
//   portal        RS256 ID tokens (generated RSA key)
//   portal-hs256  HS256 ID tokens signed with the client secret
// Users and passwords: dev/oidc/users.mjs.

import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import process from 'node:process';

import express from 'express';
import { calculateJwkThumbprint } from 'jose';
import Provider, { errors as oidcErrors } from 'oidc-provider';

import { createMemoryAdapter } from './memory_adapter.mjs';
import { authenticate, claimsFor, findUserBySub, users } from './users.mjs';

const PORT = Number.parseInt(process.env.OIDC_PORT ?? '9400', 10);
const HOST = process.env.OIDC_HOST || '127.0.0.1';

// Fixed development cookie signing keys: never use outside dev/test.
const COOKIE_KEYS = ['authentik-dev-cookie-key-2f1c9a7e', 'authentik-dev-cookie-key-previous'];

export const APPLICATIONS = [
  {
    slug: 'portal',
    clientId: 'portal',
    clientSecret: 'portal-dev-secret',
    idTokenAlg: 'RS256',
    name: 'Headscale Portal (RS256)',
  },
  {
    slug: 'portal-hs256',
    clientId: 'portal-hs256',
    clientSecret: 'portal-hs256-dev-secret',
    idTokenAlg: 'HS256',
    name: 'Headscale Portal (HS256)',
  },
];

// Loopback redirect URIs; any port matches (RFC 8252 section 7.3).
const LOOPBACK_REDIRECT_URIS = [
  'http://127.0.0.1/auth/callback',
  'http://localhost/auth/callback',
  'http://[::1]/auth/callback',
];
const LOOPBACK_POST_LOGOUT_REDIRECT_URIS = [
  'http://127.0.0.1/',
  'http://127.0.0.1/auth/logged-out',
  'http://localhost/',
  'http://localhost/auth/logged-out',
];
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function envList(name) {
  return (process.env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

const EXTRA_REDIRECT_URIS = envList('OIDC_EXTRA_REDIRECT_URIS');
const EXTRA_POST_LOGOUT_REDIRECT_URIS = envList('OIDC_EXTRA_POST_LOGOUT_REDIRECT_URIS');

/** The URL as http loopback, or undefined. No credentials or fragments. */
function parseLoopback(value) {
  const url = URL.parse(value);
  if (!url || url.protocol !== 'http:' || !LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  if (url.username || url.password || url.hash) return undefined;
  return url;
}

/** value without its port, if it is an http loopback URL. */
function stripLoopbackPort(value) {
  const url = parseLoopback(value);
  if (!url) return undefined;
  url.port = '';
  return url.href;
}

// Replacement for Client#redirectUriAllowed: exact match, or a registered
// loopback URI with any port.
function redirectUriAllowed(value) {
  if (typeof value !== 'string') return false;
  if (this.redirectUris.includes(value)) return true;
  const stripped = stripLoopbackPort(value);
  if (stripped === undefined) return false;
  return this.redirectUris.some((registered) => stripLoopbackPort(registered) === stripped);
}

// Replacement for Client#postLogoutRedirectUriAllowed: exact match, any http
// loopback URL (any port, any path), or the origin of a registered
// non-loopback redirect URI (e.g. from OIDC_EXTRA_REDIRECT_URIS).
function postLogoutRedirectUriAllowed(value) {
  if (typeof value !== 'string') return false;
  if ((this.postLogoutRedirectUris ?? []).includes(value)) return true;
  if (parseLoopback(value)) return true;
  const url = URL.parse(value);
  if (!url || url.hash || url.username || url.password) return false;
  return this.redirectUris.some((registered) => {
    const r = URL.parse(registered);
    return r && !parseLoopback(registered) && r.origin === url.origin;
  });
}

// ---------------------------------------------------------------------------
// Keys

function rsaJwkFromNewKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ format: 'jwk' });
}

async function loadRsaSigningKey() {
  const dir = process.env.OIDC_STATE_DIR;
  const file = dir ? path.join(dir, 'rs256-signing-key.jwk.json') : undefined;
  let jwk;
  if (file) {
    try {
      jwk = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }
  if (!jwk) {
    jwk = rsaJwkFromNewKey();
    jwk.kid = await calculateJwkThumbprint(jwk);
    jwk.alg = 'RS256';
    jwk.use = 'sig';
    if (file) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
    }
  }
  return jwk;
}

// ---------------------------------------------------------------------------
// HTML

function esc(value) {
  return String(value ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#1c1e21;color:#222;margin:0}
main{max-width:360px;margin:64px auto;background:#fff;border-radius:6px;padding:24px 32px;box-shadow:0 2px 8px rgba(0,0,0,.4)}
h1{font-size:1.3em;font-weight:500;margin:0 0 16px}
label{display:block;margin:12px 0 4px;font-weight:600}
input{width:100%;box-sizing:border-box;padding:8px;font-size:1em}
button{margin-top:16px;width:100%;padding:10px;font-size:1em;background:#fd4b2d;color:#fff;border:0;border-radius:3px;cursor:pointer}
button.secondary{background:#6a6e73}
.error{background:#fdecea;color:#a4201b;border:1px solid #f5c2c0;padding:8px;border-radius:3px}
.muted{color:#666;font-size:.9em}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function loginPage({ action, abort, appName, username = '', error }) {
  return page('Sign in to authentik-dev', `<h1>Sign in to authentik-dev</h1>
<p class="muted">to continue to ${esc(appName)}</p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="${esc(action)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autofocus value="${esc(username)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit">Log in</button>
</form>
<p class="muted"><a href="${esc(abort)}">Cancel</a></p>`);
}

// ---------------------------------------------------------------------------
// Provider per application

function buildProvider({ issuerBase, app, rsaJwk }) {
  const mountPath = `/application/o/${app.slug}`;
  const issuer = `${issuerBase}${mountPath}/`;
  const hs = app.idTokenAlg === 'HS256';

  const cookieSuffix = app.slug.replaceAll(/[^A-Za-z0-9]/g, '_');

  const provider = new Provider(issuer, {
    adapter: createMemoryAdapter(),
    clients: [
      {
        client_id: app.clientId,
        client_secret: app.clientSecret,
        client_name: app.name,
        application_type: 'web',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic', // client_secret_post works too
        id_token_signed_response_alg: app.idTokenAlg,
        redirect_uris: [...LOOPBACK_REDIRECT_URIS, ...EXTRA_REDIRECT_URIS],
        post_logout_redirect_uris: [
          ...LOOPBACK_POST_LOGOUT_REDIRECT_URIS,
          ...EXTRA_POST_LOGOUT_REDIRECT_URIS,
        ],
      },
    ],
    // Authentik without a signing key: HS256 only, empty JWKS.
    jwks: { keys: hs ? [] : [rsaJwk] },
    enabledJWA: {
      idTokenSigningAlgValues: hs ? ['HS256'] : ['RS256'],
    },
    cookies: {
      keys: COOKIE_KEYS,
      // Distinct names: both applications share one host, so their cookies
      // must not collide (no SSO between the two apps).
      names: {
        session: `authentik_dev_session_${cookieSuffix}`,
        interaction: `authentik_dev_interaction_${cookieSuffix}`,
        resume: `authentik_dev_resume_${cookieSuffix}`,
      },
    },
    routes: {
      authorization: '/authorize',
      token: '/token',
      userinfo: '/userinfo',
      jwks: '/jwks',
      end_session: '/end-session',
      revocation: '/revoke',
      introspection: '/introspect',
    },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      // Authentik's default "profile" scope mapping carries the groups.
      profile: ['name', 'given_name', 'preferred_username', 'nickname', 'groups'],
    },
    // Scope-requested claims go into the ID token too, as Authentik does.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource,
        postLogoutSuccessSource,
      },
    },
    interactions: {
      url: (_ctx, interaction) => `${mountPath}/interaction/${interaction.uid}`,
    },
    async findAccount(_ctx, sub) {
      const user = findUserBySub(sub);
      if (!user) return undefined;
      return {
        accountId: user.sub,
        async claims() {
          return claimsFor(user);
        },
      };
    },
    renderError,
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 3600,
      Grant: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      RefreshToken: 30 * 24 * 3600,
    },
  });

  if (process.env.OIDC_TRUST_PROXY === '1') provider.proxy = true;

  provider.Client.prototype.redirectUriAllowed = redirectUriAllowed;
  provider.Client.prototype.postLogoutRedirectUriAllowed = postLogoutRedirectUriAllowed;

  provider.on('server_error', (_ctx, err) => {
    console.error(`[${app.slug}] server_error`, err);
  });

  return { provider, mountPath, issuer };
}

async function logoutSource(ctx, form) {
  // `form` is <form id="op.logoutForm" ...><input type="hidden" name="xsrf" ...></form>.
  // Put the buttons inside it so it works without JS and without the
  // `form=` attribute.
  const buttons = `
<button type="submit" name="logout" value="yes" autofocus>Log out</button>
<button type="submit" class="secondary">Stay signed in</button>`;
  const formWithButtons = form.replace(/<\/form>\s*$/, `${buttons}\n</form>`);
  const app = ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId;
  ctx.type = 'html';
  ctx.body = page('Log out of authentik-dev', `<h1>Log out of authentik-dev?</h1>
${app ? `<p class="muted">Requested by ${esc(app)}</p>` : ''}
<p>Yes, sign me out: end your authentik-dev session.</p>
${formWithButtons}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out', `<h1>You have been signed out</h1>
<p>Your authentik-dev session has ended.</p>`);
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('authentik-dev error', `<h1>Something went wrong</h1>
<p class="error" role="alert"><strong>${esc(out.error)}</strong>${out.error_description ? `: ${esc(out.error_description)}` : ''}</p>`);
}

// ---------------------------------------------------------------------------
// Interaction routes (login form, implicit consent)

function interactionRouter({ provider, mountPath, app }) {
  const router = express.Router();
  const urlencoded = express.urlencoded({ extended: false, limit: '16kb' });

  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  async function autoConsent(req, res, details) {
    const { prompt, params, session, grantId } = details;
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const savedId = await grant.save();
    const consent = grantId ? {} : { grantId: savedId };
    await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }

  function renderLogin(res, uid, extra = {}) {
    res.type('html').send(loginPage({
      action: `${mountPath}/interaction/${uid}/login`,
      abort: `${mountPath}/interaction/${uid}/abort`,
      appName: app.name,
      ...extra,
    }));
  }

  router.get('/interaction/:uid', async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== req.params.uid) throw new oidcErrors.SessionNotFound('interaction mismatch');
    switch (details.prompt.name) {
      case 'login':
        return renderLogin(res, details.uid);
      case 'consent':
        // Authentik's implicit consent: no page, grant what was asked for.
        return autoConsent(req, res, details);
      default:
        throw new Error(`unsupported prompt ${details.prompt.name}`);
    }
  });

  router.post('/interaction/:uid/login', urlencoded, async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== req.params.uid) throw new oidcErrors.SessionNotFound('interaction mismatch');
    if (details.prompt.name !== 'login') {
      return res.redirect(303, `${mountPath}/interaction/${details.uid}`);
    }
    const { username, password } = req.body ?? {};
    const user = authenticate(username, password);
    if (!user) {
      return renderLogin(res, details.uid, {
        username: typeof username === 'string' ? username : '',
        error: 'Invalid username or password',
      });
    }
    return provider.interactionFinished(req, res, {
      login: { accountId: user.sub, amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
  });

  router.get('/interaction/:uid/abort', async (req, res) => {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  });

  // Express 5 forwards async errors here.
  router.use((err, _req, res, _next) => {
    const expired = err instanceof oidcErrors.SessionNotFound;
    if (!expired) console.error(`[${app.slug}] interaction error`, err);
    res.status(expired ? 400 : 500).type('html').send(page('authentik-dev error', `<h1>Something went wrong</h1>
<p class="error" role="alert">${expired
    ? 'This login request has expired or is invalid. Start again from the application.'
    : esc(err.message)}</p>`));
  });

  return router;
}

// ---------------------------------------------------------------------------

function indexPage(mounted) {
  return page('authentik-dev', `<h1>authentik-dev OIDC provider</h1>
<ul>
${mounted.map(({ app, issuer }) => `<li><strong>${esc(app.slug)}</strong> (${esc(app.idTokenAlg)}):
<a href="${esc(issuer)}.well-known/openid-configuration">${esc(issuer)}.well-known/openid-configuration</a></li>`).join('\n')}
</ul>
<p>Users: ${users.map((u) => esc(u.username)).join(', ')} (password: &lt;username&gt;-demo)</p>`);
}

async function main() {
  const app = express();
  app.disable('x-powered-by');
  // Filled in once the port is known (OIDC_PORT=0 support).
  let appRouter = (_req, _res, next) => next();
  app.get('/healthz', (_req, res) => res.type('text').send('ok\n'));
  app.use((req, res, next) => appRouter(req, res, next));

  const server = createServer(app);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, HOST, resolve);
  });
  const { port } = server.address();
  const issuerBase = (process.env.OIDC_ISSUER_BASE || `http://127.0.0.1:${port}`).replace(/\/+$/, '');

  const rsaJwk = await loadRsaSigningKey();
  const router = express.Router();
  const mounted = [];
  for (const application of APPLICATIONS) {
    const built = buildProvider({ issuerBase, app: application, rsaJwk });
    router.use(built.mountPath, interactionRouter({ ...built, app: application }));
    router.use(built.mountPath, built.provider.callback());
    mounted.push({ ...built, app: application });
  }
  router.get('/', (_req, res) => res.type('html').send(indexPage(mounted)));
  appRouter = router;

  console.log(`oidc-provider ready on http://${HOST.includes(':') ? `[${HOST}]` : HOST}:${port}`);
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
