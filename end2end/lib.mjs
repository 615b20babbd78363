// Helpers for the browser end-to-end suite: Playwright (playwright-core, no bundled
// browsers) driving Debian's Chromium, run by Node's built-in test runner.
//
//   node --test --test-concurrency=2 end2end/tests/      (or: node end2end/run.mjs)
//
// Environment:
//   PORTAL_URL       the portal under test (default http://127.0.0.1:3000)
//   SCREENSHOT_DIR   where screenshots go (default end2end/screenshots)
//   CHROMIUM_PATH    the browser (default /usr/bin/chromium)
//
// Every scenario runs twice, with JavaScript on and off (`scenario()`), each time in a
// fresh browser context. With JavaScript on, a scenario also fails on any console error,
// uncaught page error or failed (4xx/5xx) sub-resource on a portal page, and waits for
// the page to hydrate after each portal page load.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const PORTAL_URL = (process.env.PORTAL_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
export const PORTAL_ORIGIN = new URL(PORTAL_URL).origin;
export const SCREENSHOT_DIR = path.resolve(process.env.SCREENSHOT_DIR || path.join(HERE, 'screenshots'));

/** Generous: the portal is a debug build and the first wasm load is slow. */
export const TIMEOUT = 30_000;
export const TEST_TIMEOUT = 180_000;

export const USERS = {
  olivia: { username: 'olivia', password: 'olivia-demo', name: 'Olivia Operator' },
  alice: { username: 'alice', password: 'alice-demo', name: 'Alice Admin' },
  bob: { username: 'bob', password: 'bob-demo', name: 'Bob Member' },
  gina: { username: 'gina', password: 'gina-demo', name: 'Gina Globex' },
  carol: { username: 'carol', password: 'carol-demo', name: 'Carol Both' },
  bill: { username: 'bill', password: 'bill-demo', name: 'Bill Billing' },
  newbie: { username: 'newbie', password: 'newbie-demo', name: 'Nora Newbie' },
};

/** An absolute portal URL for a path. */
export function portal(p = '/') {
  return `${PORTAL_URL}${p}`;
}

export function isPortalUrl(url) {
  try {
    return new URL(url).origin === PORTAL_ORIGIN;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Browser

let browserPromise;
const assetLogs = new WeakMap();

/** One Chromium per test file (each test gets its own context). */
export function launch() {
  browserPromise ??= chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  return browserPromise;
}

after(async () => {
  if (browserPromise) {
    const browser = await browserPromise.catch(() => undefined);
    await browser?.close();
  }
});

// ---------------------------------------------------------------------------
// Sessions: a fresh context and page, with error collection

/**
 * A fresh browser context with one page. `js` turns JavaScript on or off.
 * Returns { browser, context, page, js, problems, expectStatus(...), close() }.
 */
export async function openSession({ js }) {
  const browser = await launch();
  const context = await browser.newContext({
    javaScriptEnabled: js,
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(TIMEOUT * 2);
  const page = await context.newPage();
  const problems = [];
  // Documents that are expected to answer 403/404 (their own "Failed to load resource"
  // console line is then not a problem).
  const expectedStatus = new Map();

  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url || '';
    const pageUrl = page.url();
    const onPortal = where ? isPortalUrl(where) : isPortalUrl(pageUrl);
    if (!onPortal && !isPortalUrl(pageUrl)) return; // the identity provider's pages
    const m = /status of (\d{3})/.exec(msg.text());
    if (m && expectedStatus.get(stripHash(where)) === Number(m[1])) return;
    problems.push(`console error on ${pageUrl} (${where || 'no location'}): ${msg.text()}`);
  });
  page.on('pageerror', (err) => {
    const pageUrl = page.url();
    if (!isPortalUrl(pageUrl)) return;
    problems.push(`page error on ${pageUrl}: ${err.stack || err.message || err}`);
  });
  // What happened to the app's own scripts (for a readable "did not hydrate" failure).
  const assets = [];
  assetLogs.set(page, assets);
  const asset = (url) => isPortalUrl(url) && new URL(url).pathname.startsWith('/pkg/portal');
  page.on('request', (req) => asset(req.url()) && assets.push(`requested ${req.url()}`));
  page.on('requestfinished', async (req) => {
    if (!asset(req.url())) return;
    const res = await req.response().catch(() => null);
    assets.push(`finished ${req.url()} ${res?.status() ?? '?'} ${res?.fromServiceWorker() ? '(sw)' : ''}`);
  });
  page.on('requestfailed', (req) => asset(req.url()) && assets.push(`FAILED ${req.url()} ${req.failure()?.errorText}`));
  page.on('framenavigated', (frame) => frame === page.mainFrame() && assets.splice(0, assets.length, `navigated ${frame.url()}`));

  page.on('response', async (res) => {
    const req = res.request();
    if (!isPortalUrl(res.url()) || !req.isNavigationRequest() || req.frame() !== page.mainFrame()) return;
    const csp = await res.headerValue('content-security-policy').catch(() => '?');
    assets.push(`document ${res.status()} ${res.url()} CSP: ${csp}`);
  });
  page.on('response', (res) => {
    const url = res.url();
    if (!isPortalUrl(url) || res.status() < 400) return;
    if (res.request().isNavigationRequest()) return; // pages are checked by the tests
    if (expectedStatus.get(stripHash(url)) === res.status()) return;
    problems.push(`HTTP ${res.status()} for ${res.request().method()} ${url} (on ${page.url()})`);
  });

  return {
    browser,
    context,
    page,
    js,
    problems,
    /** The document at `url` is expected to answer `status` (403, 404). */
    expectStatus(url, status) {
      expectedStatus.set(stripHash(url), status);
    },
    /** Fails if anything went wrong on a portal page (JS on only; JS off has no console). */
    assertClean() {
      assert.deepEqual(problems, [], `problems on portal pages:\n${problems.join('\n')}`);
    },
    async close() {
      await context.close().catch(() => {});
    },
  };
}

function stripHash(url) {
  return String(url).replace(/#.*$/, '');
}

/**
 * Registers one test per JavaScript mode: `name [JS on]` and `name [JS off]`.
 * `body(session, t)` runs in a fresh context; with JS on, console errors and page
 * errors on portal pages fail it afterwards. On failure a screenshot goes to
 * SCREENSHOT_DIR/failures/. Options: `modes` ([true, false]: JS on, off), `timeout`.
 */
export function scenario(name, body, { modes = [true, false], timeout = TEST_TIMEOUT } = {}) {
  for (const js of modes) {
    const label = `${name} [JS ${js ? 'on' : 'off'}]`;
    test(label, { timeout }, async (t) => {
      const session = await openSession({ js });
      try {
        await body(session, t);
        session.assertClean();
      } catch (err) {
        await failureScreenshot(session.page, label);
        if (session.problems.length && err instanceof Error && !err.message.startsWith('problems on portal pages')) {
          err.message += `\nAlso seen on portal pages:\n${session.problems.join('\n')}`;
        }
        throw err;
      } finally {
        await session.close();
      }
    });
  }
}

async function failureScreenshot(page, label) {
  try {
    const dir = path.join(SCREENSHOT_DIR, 'failures');
    mkdirSync(dir, { recursive: true });
    const file = label.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase();
    await page.screenshot({ path: path.join(dir, `${file}.png`), fullPage: true, timeout: 10_000 });
  } catch {
    // the page may be gone
  }
}

/** Saves a full-page screenshot as SCREENSHOT_DIR/<name>; returns the path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  return file;
}

/** `-nojs` suffix for the JS-off run of a screenshot name. */
export function shotName(base, js) {
  return js ? `${base}.png` : `${base}-nojs.png`;
}

// ---------------------------------------------------------------------------
// Waiting (no @playwright/test `expect`: poll until the assertions hold)

/** Retries `fn` (which throws while not yet true) until it passes or `timeout` ms pass. */
export async function eventually(fn, { timeout = TIMEOUT, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Waits until the locator is visible (throws a readable error otherwise). */
export async function visible(locator, what = String(locator)) {
  try {
    await locator.first().waitFor({ state: 'visible' });
  } catch (err) {
    throw new Error(`not visible: ${what}\n${err.message}`);
  }
  return locator;
}

/** Asserts that the locator is not in the page (waits briefly for it to go). */
export async function absent(locator, what = String(locator)) {
  await eventually(async () => assert.equal(await locator.count(), 0, `should not be shown: ${what}`), {
    timeout: 5_000,
  });
}

/** The `<html>` class (the colour scheme: system, light or dark). */
export async function htmlClass(page) {
  return ((await page.locator('html').getAttribute('class')) ?? '').trim();
}

/** Waits for a page of the portal: its URL path, and with JS on, its hydration. */
export async function onPortalPage(session, pathname) {
  const { page } = session;
  await page.waitForURL((u) => u.origin === PORTAL_ORIGIN && (!pathname || u.pathname === pathname));
  await page.waitForLoadState('load');
  if (session.js) await waitForHydration(page);
}

/**
 * With JavaScript on: waits until Leptos has hydrated the page. The colour scheme
 * forms (on every page) are `ActionForm`s; hydration attaches their `submit` listener,
 * which the DevTools protocol can see (`getEventListeners`). Server-rendered HTML alone
 * has none.
 */
export async function waitForHydration(page, timeout = TIMEOUT) {
  await page.locator('form[action="/api/set_theme"]').first().waitFor({ state: 'attached' });
  const cdp = await page.context().newCDPSession(page);
  try {
    await eventually(
      async () => {
        const { result, exceptionDetails } = await cdp.send('Runtime.evaluate', {
          expression: `getEventListeners(document.querySelector('form[action="/api/set_theme"]')).submit?.length ?? 0`,
          includeCommandLineAPI: true,
          returnByValue: true,
        });
        assert.ok(
          result.value > 0,
          `${page.url()} did not hydrate (no submit listener on the theme form)` +
            (exceptionDetails ? `; evaluate: ${exceptionDetails.exception?.description ?? exceptionDetails.text}` : '') +
            `\nthe app's scripts: ${(assetLogs.get(page) ?? []).join('; ') || 'none'}`,
        );
      },
      { timeout, interval: 100 },
    );
  } finally {
    await cdp.detach().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Signing in and out

/**
 * Signs in through the portal's login page and the provider's real form.
 * Starts at `/login?next=<next>`, ends on the portal page the sign-in returned to.
 */
export async function login(session, user, { next = '/' } = {}) {
  const { page } = session;
  const u = typeof user === 'string' ? USERS[user] : user;
  await page.goto(portal(`/login?next=${encodeURIComponent(next)}`));
  await onPortalPage(session, '/login');
  await page.getByRole('link', { name: 'Sign in with SSO' }).click();
  await providerLoginForm(session, u);
  await onPortalPage(session);
}

/** Fills and submits the identity provider's login form (already on it). */
export async function providerLoginForm(session, u) {
  const { page } = session;
  await page.waitForURL((url) => url.origin !== PORTAL_ORIGIN);
  await page.getByLabel('Username').fill(u.username);
  await page.getByLabel('Password').fill(u.password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** Opens the account menu and signs out, confirming on the provider if it asks. */
export async function logout(session) {
  const { page } = session;
  await page.getByLabel('Account').click();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL((u) => u.origin !== PORTAL_ORIGIN || u.pathname === '/signed-out');
  if (!isPortalUrl(page.url())) {
    const confirm = page.getByRole('button', { name: 'Log out' });
    if (await confirm.count()) await confirm.click();
  }
  await onPortalPage(session, '/signed-out');
  await visible(page.getByRole('heading', { name: 'You are signed out' }));
}

/** Navigates and returns the final document's response (after redirects). */
export async function open(session, p) {
  const res = await session.page.goto(portal(p));
  assert.ok(res, `no response for ${p}`);
  return res;
}

export { assert };
