// API tokens: carol (network admin of acme) makes a token for GitOps from CI, sees it
// once, uses it against the REST API, sees its last use, revokes it, and the API refuses
// it from then on. With and without JavaScript (the token comes back once through a
// one-time handle). A member cannot give a token more than their own role.

import { assert, eventually, login, onPortalPage, open, portal, scenario, screenshot, shotName, visible } from '../lib.mjs';

async function api(page, token, path) {
  return page.request.get(portal(path), { headers: { Authorization: `Bearer ${token}` } });
}

scenario('a network admin makes a token, uses it with the API and revokes it', async (s) => {
  const { page, js } = s;
  const name = `GitOps ${js ? 'js' : 'nojs'} ${Date.now() % 100000}`;
  await login(s, 'carol', { next: '/t/acme' });
  await page.getByRole('link', { name: 'API tokens' }).click();
  await onPortalPage(s, '/t/acme/tokens');
  await visible(page.getByRole('heading', { name: 'API tokens' }));
  const form = page.getByRole('form', { name: 'Make token' });
  // No role above her own is offered.
  const roles = await form.getByLabel('Role ceiling').locator('option').allTextContents();
  assert.ok(roles.includes('Network admin') && roles.includes('Member'), roles.join());
  assert.ok(!roles.includes('Owner') && !roles.includes('Admin') && !roles.includes('IT admin'), roles.join());
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Role ceiling').selectOption('network_admin');
  await form.getByLabel('Expires after (days)').fill('30');
  await form.getByRole('button', { name: 'Make token' }).click();
  const shown = page.getByTestId('made-token');
  await visible(shown);
  const token = (await shown.textContent()).trim();
  assert.match(token, /^hsp_[0-9a-f]{64}$/);
  await screenshot(page, shotName('token-made', js));

  // The token works against the REST API: where to log in, and the policy (read).
  const boot = await api(page, token, '/api/v1/bootstrap');
  assert.equal(boot.status(), 200, await boot.text());
  const b = await boot.json();
  assert.equal(b.tenant, 'acme');
  assert.ok(b.cluster_id && b.login_server_url.startsWith('http'), JSON.stringify(b));
  const policy = await api(page, token, '/api/v1/tenants/acme/policy');
  assert.equal(policy.status(), 200);
  // Not another tenant's.
  const other = await api(page, token, '/api/v1/tenants/globex/policy');
  assert.equal(other.status(), 404);
  assert.equal(other.headers()['content-type'], 'application/problem+json');

  // Shown once: a reload lists it by its hint only, with its last use.
  await open(s, '/t/acme/tokens');
  await onPortalPage(s, '/t/acme/tokens');
  assert.equal(await page.getByTestId('made-token').count(), 0);
  const row = page.getByRole('row').filter({ hasText: name });
  await visible(row);
  assert.ok(!(await row.textContent()).includes(token.slice(12)), 'the secret is not listed');
  await visible(row.getByText(token.slice(0, 12) + '…'));
  await visible(row.getByText('Active'));
  assert.ok(!(await row.textContent()).includes('never'), 'last use is shown');
  await screenshot(page, shotName('tokens', js));

  // Revoked: the API refuses it at once.
  await row.getByRole('button', { name: `Revoke token ${name}` }).click();
  await eventually(async () => {
    const r = page.getByRole('row').filter({ hasText: name });
    assert.ok((await r.textContent()).includes('Revoked'));
  });
  const refused = await api(page, token, '/api/v1/bootstrap');
  assert.equal(refused.status(), 401);
  assert.match((await refused.json()).detail, /revoked/);
  // The audit log has both, by carol.
  await open(s, '/t/acme/audit?action=token');
  await visible(page.getByRole('cell', { name: 'token.revoked' }).first());
  await visible(page.getByRole('cell', { name: 'token.created' }).first());
});

scenario('the API document is public; the API needs a token', async (s) => {
  const { page } = s;
  const doc = await page.request.get(portal('/api/v1/openapi.json'));
  assert.equal(doc.status(), 200);
  const spec = await doc.json();
  assert.equal(spec.openapi, '3.0.3');
  assert.ok(spec.paths['/api/v1/tenants/{slug}/policy'].put, 'the GitOps operation is documented');
  const res = await page.request.get(portal('/api/v1/bootstrap'));
  assert.equal(res.status(), 401);
  assert.match(res.headers()['www-authenticate'], /^Bearer/);
}, { modes: [true] });
