#!/usr/bin/env node
// End-to-end self test for dev/oidc/server.mjs. Starts nothing: point it at a
// running server.
//
//   node dev/oidc/server.mjs &
//   node dev/oidc/selftest.mjs [BASE_URL]     # default http://127.0.0.1:$OIDC_PORT (9400)
//
// Drives the authorization-code + PKCE + nonce flow for both applications the
// way a browser without JavaScript would (plain HTML forms, manual cookies),
// then checks the tokens. Prints "N passed, N failed" and exits non-zero on
// any failure.

import { createHash, randomBytes } from 'node:crypto';
import process from 'node:process';

import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

const BASE = (process.argv[2] || process.env.OIDC_BASE_URL
  || `http://127.0.0.1:${process.env.OIDC_PORT || 9400}`).replace(/\/+$/, '');

const APPS = [
  { slug: 'portal', clientId: 'portal', secret: 'portal-dev-secret', alg: 'RS256' },
  { slug: 'portal-hs256', clientId: 'portal-hs256', secret: 'portal-hs256-dev-secret', alg: 'HS256' },
];
const USER = { username: 'alice', password: 'alice-demo', email: 'alice@acme.example', groups: ['tenant:acme:admin'] };

let passed = 0;
let failed = 0;

function check(name, cond, detail) {
  if (cond) {
    passed += 1;
    console.log(`ok   - ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL - ${name}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
  return cond;
}

// ---------------------------------------------------------------------------
// Tiny browser: cookie jar (single host, path-scoped) + manual redirects.

class Browser {
  jar = new Map(); // name -> { value, path }

  cookieHeader(url) {
    const { pathname } = new URL(url);
    const pairs = [];
    for (const [name, { value, path }] of this.jar) {
      const p = path || '/';
      if (pathname === p || pathname.startsWith(p.endsWith('/') ? p : `${p}/`)) pairs.push(`${name}=${value}`);
    }
    return pairs.join('; ');
  }

  store(res, url) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        const key = k.toLowerCase();
        if (key === 'path') path = v;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
      }
      if (expired) this.jar.delete(name);
      else this.jar.set(name, { value, path });
    }
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = {};
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.store(res, url);
    const text = await res.text();
    return { status: res.status, location: res.headers.get('location'), text, url };
  }

  // Follow redirects until a non-redirect response, or a Location that starts
  // with `stopAt` (the RP's callback, which is not listening).
  async navigate(url, { method = 'GET', form, stopAt } = {}) {
    let res = await this.request(url, { method, form });
    for (let hops = 0; hops < 20; hops += 1) {
      if (![301, 302, 303, 307, 308].includes(res.status)) return res;
      const next = new URL(res.location, res.url).href;
      if (stopAt && next.startsWith(stopAt)) return { ...res, callback: next };
      res = await this.request(next);
    }
    throw new Error('too many redirects');
  }
}

// ---------------------------------------------------------------------------
// HTML helpers (regex-level; our own pages are simple).

function decodeEntities(s) {
  return s
    .replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'").replaceAll('&amp;', '&');
}

function attr(tag, name) {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)')`, 'i'));
  return m ? decodeEntities(m[2] ?? m[3]) : undefined;
}

function parseForm(html, baseUrl) {
  const m = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!m) return undefined;
  const [, formAttrs, inner] = m;
  const fields = {};
  for (const [tag] of inner.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(tag, 'name');
    if (name) fields[name] = attr(tag, 'value') ?? '';
  }
  const buttons = [...inner.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)].map(([, a, text]) => ({
    text: text.replace(/<[^>]+>/g, '').trim(),
    name: attr(` ${a}`, 'name'),
    value: attr(` ${a}`, 'value'),
  }));
  return {
    action: new URL(attr(` ${formAttrs}`, 'action') ?? '', baseUrl).href,
    method: (attr(` ${formAttrs}`, 'method') ?? 'get').toUpperCase(),
    fields,
    buttons,
    inner,
  };
}

async function submit(browser, page, values, buttonText, opts = {}) {
  const form = parseForm(page.text, page.url);
  const button = form.buttons.find((b) => b.text === buttonText);
  if (!button) throw new Error(`no button "${buttonText}" in form`);
  const data = { ...form.fields, ...values };
  if (button.name) data[button.name] = button.value ?? '';
  return browser.navigate(form.action, { method: form.method, form: data, ...opts });
}

// ---------------------------------------------------------------------------
// OAuth helpers

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function newPkce() {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

function loopbackCallback(host = '127.0.0.1') {
  const port = 20000 + Math.floor(Math.random() * 40000);
  return `http://${host}:${port}/auth/callback`;
}

function authorizeUrl(disc, app, { redirectUri, state, nonce, challenge, extra = {} }) {
  const u = new URL(disc.authorization_endpoint);
  const params = {
    client_id: app.clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: 'openid profile email',
    state,
    nonce,
    ...(challenge ? { code_challenge: challenge, code_challenge_method: 'S256' } : {}),
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.href;
}

async function tokenRequest(disc, app, params, { auth = 'basic', secret = app.secret } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = new URLSearchParams(params);
  if (auth === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(app.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  } else {
    body.set('client_id', app.clientId);
    body.set('client_secret', secret);
  }
  const res = await fetch(disc.token_endpoint, { method: 'POST', headers, body });
  return { status: res.status, json: await res.json().catch(() => ({})) };
}

/** Runs an authorization request in `browser`; logs in if a form shows up. */
async function authorize(browser, disc, app, { password = USER.password, redirectUri = loopbackCallback() } = {}) {
  const state = b64url(randomBytes(12));
  const nonce = b64url(randomBytes(12));
  const pkce = newPkce();
  let page = await browser.navigate(
    authorizeUrl(disc, app, { redirectUri, state, nonce, challenge: pkce.challenge }),
    { stopAt: redirectUri },
  );
  let sawLoginForm = false;
  if (!page.callback) {
    sawLoginForm = /<button[^>]*>\s*Log in\s*<\/button>/.test(page.text);
    if (!sawLoginForm) throw new Error(`expected login form, got ${page.status}: ${page.text.slice(0, 300)}`);
    page = await submit(browser, page, { username: USER.username, password }, 'Log in', { stopAt: redirectUri });
  }
  const cb = page.callback ? new URL(page.callback) : undefined;
  return {
    page, sawLoginForm, state, nonce, pkce, redirectUri, cb,
    code: cb?.searchParams.get('code'),
  };
}

// ---------------------------------------------------------------------------

async function testApp(app) {
  const t = (name) => `[${app.slug}] ${name}`;
  const issuer = `${BASE}/application/o/${app.slug}/`;
  const discUrl = `${issuer}.well-known/openid-configuration`;

  const discRes = await fetch(discUrl);
  if (!check(t(`discovery ${discUrl} -> 200`), discRes.status === 200, discRes.status)) return;
  const disc = await discRes.json();
  check(t('discovery issuer has trailing slash and matches'), disc.issuer === issuer, disc.issuer);
  const endpoints = ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint'];
  check(
    t('all endpoints under the issuer prefix'),
    endpoints.every((k) => typeof disc[k] === 'string' && disc[k].startsWith(issuer)),
    Object.fromEntries(endpoints.map((k) => [k, disc[k]])),
  );
  check(t(`id_token_signing_alg_values_supported has ${app.alg}`), disc.id_token_signing_alg_values_supported?.includes(app.alg));
  check(t('S256 PKCE advertised'), disc.code_challenge_methods_supported?.includes('S256'));

  // --- wrong password: form again with an error, no login
  {
    const browser = new Browser();
    const redirectUri = loopbackCallback();
    const url = authorizeUrl(disc, app, {
      redirectUri, state: 's', nonce: 'n', challenge: newPkce().challenge,
    });
    const loginPage = await browser.navigate(url, { stopAt: redirectUri });
    check(t('login page is HTML 200'), loginPage.status === 200 && !loginPage.callback, loginPage.status);
    check(t('login page title'), /<title>Sign in to authentik-dev<\/title>/.test(loginPage.text));
    check(t('login page labels'), /<label for="username">Username<\/label>/.test(loginPage.text)
      && /<label for="password">Password<\/label>/.test(loginPage.text));
    const form = parseForm(loginPage.text, loginPage.url);
    check(t('login form posts under the mount'), form?.method === 'POST'
      && new URL(form.action).pathname.startsWith(`/application/o/${app.slug}/interaction/`), form?.action);
    check(t('login form has no script'), !/<script/i.test(loginPage.text));
    const bad = await submit(browser, loginPage, { username: USER.username, password: 'wrong' }, 'Log in', { stopAt: redirectUri });
    check(t('wrong password: no redirect to callback'), !bad.callback, bad.callback);
    check(t('wrong password: error shown'), bad.status === 200 && bad.text.includes('Invalid username or password'), bad.status);
    check(t('wrong password: form shown again'), /<button[^>]*>\s*Log in\s*<\/button>/.test(bad.text));
    const unknown = await submit(browser, bad, { username: 'nobody', password: 'alice-demo' }, 'Log in', { stopAt: redirectUri });
    check(t('unknown user: error shown'), !unknown.callback && unknown.text.includes('Invalid username or password'));
    // a fresh request in the same browser still asks for credentials
    const again = await browser.navigate(authorizeUrl(disc, app, {
      redirectUri, state: 's2', nonce: 'n2', challenge: newPkce().challenge,
    }), { stopAt: redirectUri });
    check(t('wrong password left no session'), !again.callback && /Log in/.test(again.text));
    // "Cancel" on the login page -> access_denied at the callback
    const cancel = again.text.match(/<a href="([^"]*\/abort)">Cancel<\/a>/);
    const aborted = cancel
      ? await browser.navigate(new URL(decodeEntities(cancel[1]), again.url).href, { stopAt: redirectUri })
      : {};
    check(t('cancel -> error=access_denied at callback'), aborted.callback
      && new URL(aborted.callback).searchParams.get('error') === 'access_denied'
      && new URL(aborted.callback).searchParams.get('state') === 's2', aborted.callback ?? aborted.status);
  }

  // --- the real login
  const browser = new Browser();
  const flow = await authorize(browser, disc, app);
  check(t('login form shown, then redirected to callback'), flow.sawLoginForm && !!flow.cb, flow.page.status);
  if (!flow.cb) return;
  check(t('callback on the requested loopback port'), flow.cb.href.startsWith(flow.redirectUri));
  check(t('state round-trips'), flow.cb.searchParams.get('state') === flow.state);
  check(t('iss parameter in callback'), flow.cb.searchParams.get('iss') === issuer, flow.cb.searchParams.get('iss'));
  check(t('code present'), !!flow.code);

  const tokenParams = {
    grant_type: 'authorization_code',
    code: flow.code,
    redirect_uri: flow.redirectUri,
    code_verifier: flow.pkce.verifier,
  };
  const tok = await tokenRequest(disc, app, tokenParams);
  check(t('token endpoint 200 (client_secret_basic)'), tok.status === 200, tok.json);
  const idToken = tok.json.id_token;
  if (!check(t('id_token issued'), typeof idToken === 'string')) return;

  const header = decodeProtectedHeader(idToken);
  check(t(`id_token alg is ${app.alg}`), header.alg === app.alg, header);
  let claims;
  try {
    if (app.alg === 'HS256') {
      ({ payload: claims } = await jwtVerify(idToken, new TextEncoder().encode(app.secret), {
        issuer, audience: app.clientId, algorithms: ['HS256'],
      }));
    } else {
      const jwks = createRemoteJWKSet(new URL(disc.jwks_uri));
      ({ payload: claims } = await jwtVerify(idToken, jwks, {
        issuer, audience: app.clientId, algorithms: ['RS256'],
      }));
    }
    check(t(`id_token signature verifies (${app.alg === 'HS256' ? 'client secret' : 'JWKS'})`), true);
  } catch (err) {
    check(t('id_token signature verifies'), false, err.message);
    return;
  }
  check(t('id_token iss equals issuer with trailing slash'), claims.iss === issuer, claims.iss);
  check(t('id_token nonce matches'), claims.nonce === flow.nonce, claims.nonce);
  check(t('id_token groups claim'), JSON.stringify(claims.groups) === JSON.stringify(USER.groups), claims.groups);
  check(t('id_token email/name/preferred_username'), claims.email === USER.email && claims.email_verified === true
    && claims.name === 'Alice Admin' && claims.preferred_username === 'alice', claims);
  check(t('id_token sub is opaque hex'), /^[0-9a-f]{64}$/.test(claims.sub), claims.sub);

  if (app.alg === 'HS256') {
    const jwks = await (await fetch(disc.jwks_uri)).json();
    check(t('jwks empty (HS256 only, like Authentik without a signing key)'), Array.isArray(jwks.keys) && jwks.keys.length === 0, jwks);
  }

  const ui = await fetch(disc.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.json.access_token}` } });
  const uiJson = await ui.json().catch(() => ({}));
  check(t('userinfo returns sub and groups'), ui.status === 200 && uiJson.sub === claims.sub
    && Array.isArray(uiJson.groups), uiJson);

  const replay = await tokenRequest(disc, app, tokenParams);
  check(t('code redeemed twice -> invalid_grant'), replay.status === 400 && replay.json.error === 'invalid_grant', replay);

  // --- second authorization in the same browser: SSO, implicit consent; localhost callback;
  //     wrong PKCE verifier must fail
  const flow2 = await authorize(browser, disc, app, { redirectUri: loopbackCallback('localhost') });
  check(t('second authorize skips login (session) and consent'), !flow2.sawLoginForm && !!flow2.code);
  const badPkce = await tokenRequest(disc, app, {
    grant_type: 'authorization_code', code: flow2.code, redirect_uri: flow2.redirectUri, code_verifier: newPkce().verifier,
  });
  check(t('wrong code_verifier -> invalid_grant'), badPkce.status === 400 && badPkce.json.error === 'invalid_grant', badPkce);

  // --- client_secret_post works, wrong secret does not
  const flow3 = await authorize(browser, disc, app);
  const wrongSecret = await tokenRequest(disc, app, {
    grant_type: 'authorization_code', code: flow3.code, redirect_uri: flow3.redirectUri, code_verifier: flow3.pkce.verifier,
  }, { secret: 'nope' });
  check(t('wrong client secret -> invalid_client'), wrongSecret.status === 401 && wrongSecret.json.error === 'invalid_client', wrongSecret);
  const post = await tokenRequest(disc, app, {
    grant_type: 'authorization_code', code: flow3.code, redirect_uri: flow3.redirectUri, code_verifier: flow3.pkce.verifier,
  }, { auth: 'post' });
  check(t('token endpoint 200 (client_secret_post)'), post.status === 200 && !!post.json.id_token, post);
  check(t('no refresh_token without offline_access'), post.json.refresh_token === undefined);

  // --- offline_access (+ prompt=consent, as OIDC requires) yields a refresh token that works
  {
    const redirectUri = loopbackCallback();
    const pkce = newPkce();
    const res = await browser.navigate(authorizeUrl(disc, app, {
      redirectUri, state: 'r', nonce: 'rn', challenge: pkce.challenge,
      extra: { scope: 'openid profile email offline_access', prompt: 'consent' },
    }), { stopAt: redirectUri });
    const code = res.callback ? new URL(res.callback).searchParams.get('code') : undefined;
    const tr = await tokenRequest(disc, app, {
      grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pkce.verifier,
    });
    check(t('offline_access -> refresh_token issued'), tr.status === 200 && typeof tr.json.refresh_token === 'string', tr);
    const rr = await tokenRequest(disc, app, { grant_type: 'refresh_token', refresh_token: tr.json.refresh_token });
    check(t('refresh_token grant -> new id_token with groups'), rr.status === 200 && typeof rr.json.id_token === 'string'
      && Array.isArray(JSON.parse(Buffer.from(rr.json.id_token.split('.')[1], 'base64url')).groups), rr);
  }

  // --- PKCE is required
  {
    const redirectUri = loopbackCallback();
    const res = await browser.navigate(authorizeUrl(disc, app, { redirectUri, state: 'x', nonce: 'y' }), { stopAt: redirectUri });
    const err = res.callback ? new URL(res.callback).searchParams : undefined;
    check(t('missing code_challenge -> invalid_request'), err?.get('error') === 'invalid_request', res.callback ?? res.status);
  }

  // --- redirect URIs outside the loopback rule are refused (error page, no redirect)
  for (const bad of ['http://evil.example/auth/callback', 'http://127.0.0.1:8080/not-callback', 'https://127.0.0.1:8080/auth/callback']) {
    const res = await browser.navigate(authorizeUrl(disc, app, {
      redirectUri: bad, state: 'x', nonce: 'y', challenge: newPkce().challenge,
    }), { stopAt: bad });
    check(t(`redirect_uri ${bad} refused`), !res.callback && res.status === 400 && res.text.includes('redirect_uri'), res.status);
  }

  // --- RP-initiated logout without JS
  {
    const postLogout = `http://127.0.0.1:${20000 + Math.floor(Math.random() * 40000)}/auth/logged-out`;
    const u = new URL(disc.end_session_endpoint);
    u.searchParams.set('id_token_hint', post.json.id_token);
    u.searchParams.set('post_logout_redirect_uri', postLogout);
    u.searchParams.set('state', 'bye');
    const confirm = await browser.navigate(u.href, { stopAt: postLogout });
    const form = parseForm(confirm.text, confirm.url);
    check(t('logout confirmation page has a form with "Log out" inside it'), confirm.status === 200
      && form?.buttons.some((b) => b.text === 'Log out') && !/<script/i.test(confirm.text), confirm.status);
    const done = await submit(browser, confirm, {}, 'Log out', { stopAt: postLogout });
    check(t('logout redirects to post_logout_redirect_uri with state'), !!done.callback
      && new URL(done.callback).searchParams.get('state') === 'bye', done.callback ?? done.status);
    const after = await authorize(browser, disc, app);
    check(t('after logout the login form is shown again'), after.sawLoginForm && !!after.code);

    // post logout to any loopback path/port; no redirect URI -> success page
    const u2 = new URL(disc.end_session_endpoint);
    u2.searchParams.set('client_id', app.clientId);
    const confirm2 = await browser.navigate(u2.href);
    const done2 = await submit(browser, confirm2, {}, 'Log out');
    check(t('logout without post_logout_redirect_uri shows the signed-out page'), done2.status === 200
      && done2.text.includes('You have been signed out'), done2.status);
    const u3 = new URL(disc.end_session_endpoint);
    u3.searchParams.set('client_id', app.clientId);
    u3.searchParams.set('post_logout_redirect_uri', 'http://evil.example/');
    const refused = await browser.navigate(u3.href);
    check(t('post_logout_redirect_uri off loopback refused'), refused.status === 400, refused.status);
  }
}

async function main() {
  const health = await fetch(`${BASE}/healthz`).catch((err) => ({ status: err.message }));
  if (!check(`GET ${BASE}/healthz -> 200`, health.status === 200, health.status)) {
    console.log(`0 passed, ${failed} failed`);
    process.exit(1);
  }
  for (const app of APPS) {
    try {
      await testApp(app);
    } catch (err) {
      check(`[${app.slug}] flow completed without exception`, false, err.stack);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
