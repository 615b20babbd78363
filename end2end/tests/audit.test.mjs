// The audit log pages: a tenant's auditor reads (and filters) its tenant's log, a member
// has none, the operator reads everything. Filters are a GET form, so they work and can
// be linked without JavaScript.

import { assert, login, onPortalPage, open, portal, scenario, screenshot, shotName, visible } from '../lib.mjs';

scenario('an auditor filters the tenant\'s audit log; a member has none', async (s) => {
  const { page, js } = s;
  // carol: network admin of acme, auditor of globex.
  await login(s, 'carol', { next: '/t/globex' });
  await page.getByRole('link', { name: 'Audit log' }).click();
  await onPortalPage(s, '/t/globex/audit');
  await visible(page.getByRole('heading', { name: 'Audit log' }));
  const form = page.getByRole('form', { name: 'Filter the audit log' });
  await form.getByLabel('Actor').fill('system');
  await form.getByLabel('From (UTC)').fill('2026-01-01');
  await form.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL((u) => u.searchParams.get('actor') === 'system');
  await onPortalPage(s, '/t/globex/audit');
  assert.equal(await page.getByRole('form', { name: 'Filter the audit log' }).getByLabel('Actor').inputValue(), 'system');
  await screenshot(page, shotName('audit', js));
  // The export carries the same filters.
  const href = await page.getByRole('link', { name: 'Download CSV (these filters)' }).getAttribute('href');
  assert.match(href, /^\/t\/globex\/audit\/export\?.*actor=system/);
  const csv = await page.request.get(portal(href));
  assert.equal(csv.status(), 200);
  assert.match(csv.headers()['content-disposition'], /filename="audit-globex\.csv"/);
  const lines = (await csv.text()).split('\r\n');
  assert.equal(lines[0], 'id,at,tenant,actor,action,target,detail');
  assert.ok(lines.slice(1).filter(Boolean).every((l) => l.includes(',globex,Portal (system),')), lines.join('\n'));
  // A bad date is a sentence, not a crash.
  s.expectStatus(portal('/t/globex/audit?from=2026-13-45'), 422);
  const res = await open(s, '/t/globex/audit?from=2026-13-45');
  assert.equal(res.status(), 422);
  await visible(page.getByText(/is not a date for “from”; write it as YYYY-MM-DD/));
});

scenario('a member has no audit log', async (s) => {
  const { page } = s;
  await login(s, 'bob', { next: '/t/acme' });
  assert.equal(await page.getByRole('link', { name: 'Audit log' }).count(), 0);
  s.expectStatus(portal('/t/acme/audit'), 403);
  const res = await open(s, '/t/acme/audit');
  assert.equal(res.status(), 403);
  const csv = await page.request.get(portal('/t/acme/audit/export'));
  assert.equal(csv.status(), 403);
}, { modes: [true] });

scenario('the operator reads every tenant\'s log and the service\'s', async (s) => {
  const { page, js } = s;
  await login(s, 'olivia', { next: '/operator' });
  await page.getByRole('link', { name: 'Audit log' }).click();
  await onPortalPage(s, '/operator/audit');
  await visible(page.getByRole('form', { name: 'Filter the audit log' }).getByLabel('Tenant'));
  await screenshot(page, shotName('operator-audit', js));
});
