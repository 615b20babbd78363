// A page on another origin tries to change state in the portal while the person is
// signed in. The portal must refuse (403) and change nothing.

import { createServer } from 'node:http';
import { after, before } from 'node:test';

import {
  PORTAL_URL,
  assert,
  eventually,
  htmlClass,
  login,
  onPortalPage,
  open,
  portal,
  scenario,
  visible,
} from '../lib.mjs';

const TARGET = portal('/api/set_theme');

function attackerPage() {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head>
<body>
<h1>Win a prize</h1>
<form method="post" action="${TARGET}">
  <input type="hidden" name="theme" value="dark">
  <button type="submit">Claim it</button>
</form>
<button type="button" id="sneaky">Claim it quietly</button>
<p id="out"></p>
<script>
  document.getElementById('sneaky').addEventListener('click', async () => {
    const out = document.getElementById('out');
    try {
      await fetch(${JSON.stringify(TARGET)}, {
        method: 'POST', mode: 'no-cors', credentials: 'include',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'theme=dark',
      });
      out.textContent = 'sent';
    } catch (e) {
      out.textContent = 'failed: ' + e;
    }
  });
</script>
</body></html>`;
}

let server;
let port;
before(async () => {
  server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(attackerPage());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = server.address().port;
});
after(() => new Promise((resolve) => server.close(resolve)));

// Same host, other port: another origin but the same site, so the portal's Lax session
// cookie IS sent along. Only the Origin / Sec-Fetch-Site check stands in the way.
// `localhost` vs `127.0.0.1`: another site; the Lax cookie is not sent on a POST.
const portalHost = new URL(PORTAL_URL).hostname;
const VARIANTS = [
  { name: 'same-site, other origin', host: portalHost },
  { name: 'cross-site', host: portalHost === 'localhost' ? '127.0.0.1' : 'localhost' },
];

async function themeCookies(s) {
  return (await s.context.cookies(PORTAL_URL)).filter((c) => ['system', 'light', 'dark'].includes(c.value));
}

for (const variant of VARIANTS) {
  scenario(`a form on another origin cannot change the colour scheme (${variant.name})`, async (s) => {
    const { page } = s;
    await login(s, 'alice', { next: '/t/acme' });
    assert.equal(await htmlClass(page), 'system');
    const cookiesBefore = await s.context.cookies(PORTAL_URL);
    assert.deepEqual(await themeCookies(s), []);

    await page.goto(`http://${variant.host}:${port}/`);
    await visible(page.getByRole('heading', { name: 'Win a prize' }));
    s.expectStatus(TARGET, 403);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url() === TARGET && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Claim it', exact: true }).click(),
    ]);
    assert.equal(res.status(), 403, `the portal answered ${res.status()} to a cross-origin form post`);
    await page.waitForURL(TARGET);
    await visible(page.getByRole('heading', { name: 'Request refused' }));
    assert.equal(res.headers()['set-cookie'], undefined, 'the refusal sets no cookie');

    // Nothing changed: no scheme cookie, the session intact and still in the system scheme.
    assert.deepEqual(await themeCookies(s), []);
    const sessionCookies = (cs) => cs.map((c) => `${c.name}=${c.value}`).sort();
    assert.deepEqual(sessionCookies(await s.context.cookies(PORTAL_URL)), sessionCookies(cookiesBefore));
    const back = await open(s, '/t/acme');
    assert.equal(back.status(), 200);
    await onPortalPage(s, '/t/acme');
    assert.equal(await htmlClass(page), 'system');
    await visible(page.getByText('Tenant acme · your role: Admin'));

    // Control: the same change from the portal's own page is accepted.
    const dark = page.getByRole('button', { name: 'Use dark colour scheme' });
    if (s.js) await dark.click();
    else await Promise.all([page.waitForEvent('load'), dark.click()]);
    await eventually(async () => assert.equal(await htmlClass(page), 'dark'));
    assert.equal((await themeCookies(s))[0]?.value, 'dark');
  });
}

for (const variant of VARIANTS) {
  scenario(
    `a no-cors fetch from another origin cannot change the colour scheme (${variant.name})`,
    async (s) => {
      const { page } = s;
      await login(s, 'alice', { next: '/t/acme' });
      await page.goto(`http://${variant.host}:${port}/`);
      s.expectStatus(TARGET, 403);
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url() === TARGET && r.request().method() === 'POST'),
        page.getByRole('button', { name: 'Claim it quietly' }).click(),
      ]);
      assert.equal(res.status(), 403);
      await visible(page.getByText('sent'));
      assert.deepEqual(await themeCookies(s), []);
      await open(s, '/t/acme');
      await onPortalPage(s, '/t/acme');
      assert.equal(await htmlClass(page), 'system');
    },
    { modes: [true] }, // the attacker's page needs JavaScript
  );
}
