// Who may see what: the operator area, and tenants you are not a member of.

import {
  absent,
  assert,
  login,
  onPortalPage,
  open,
  portal,
  scenario,
  screenshot,
  shotName,
  visible,
} from '../lib.mjs';

/** Opens `path`, expecting the document itself to answer `status` (no redirect). */
async function openExpecting(s, path, status) {
  s.expectStatus(portal(path), status);
  const res = await open(s, path);
  assert.equal(res.status(), status, `HTTP status of ${path}`);
  assert.equal(res.request().redirectedFrom(), null, `${path} should not redirect`);
  assert.equal(new URL(s.page.url()).pathname, path);
  await onPortalPage(s, path);
  return res;
}

scenario('a tenant member gets no Operator link and a 403 page at /operator', async (s) => {
  const { page } = s;
  await login(s, 'bob');
  await visible(page.getByText('Tenant acme · your role: Member'));
  const nav = page.getByRole('navigation', { name: 'Main' });
  await visible(nav.getByRole('link', { name: 'Dashboard' }));
  await absent(nav.getByRole('link', { name: 'Operator' }), 'Operator link for a member');

  await openExpecting(s, '/operator', 403);
  await visible(page.getByRole('heading', { name: "You don't have access to this page" }));
  await absent(page.getByRole('heading', { name: 'Operator', exact: true }), 'the operator heading');
  await absent(page.getByText('hs-a'), 'shard names on the 403 page');
  await screenshot(page, shotName('forbidden', s.js));
  // Still signed in: the way home works.
  await visible(page.getByRole('link', { name: 'Go to your home page' }));
  await page.getByRole('link', { name: 'Go to your home page' }).click();
  await onPortalPage(s, '/t/acme');
  await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
});

scenario('the operator sees the Operator link, every shard and every tenant', async (s) => {
  const { page } = s;
  await login(s, 'olivia');
  // Olivia has no tenant: `/` takes her to the operator page.
  assert.equal(new URL(page.url()).pathname, '/operator');
  // Start from a fresh load and follow the nav link, as a person would.
  const res = await open(s, '/operator');
  assert.equal(res.status(), 200);
  await onPortalPage(s, '/operator');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await visible(nav.getByRole('link', { name: 'Operator' }));
  await nav.getByRole('link', { name: 'Operator' }).click();
  await onPortalPage(s, '/operator');
  await visible(page.getByRole('heading', { name: 'Operator', exact: true, level: 1 }));

  const shards = page.getByRole('table', { name: 'Shards' });
  const tenants = page.getByRole('table', { name: 'Tenants' });
  await visible(shards);
  await visible(tenants);
  for (const id of ['hs-a', 'hs-b']) {
    await visible(shards.getByRole('row').filter({ hasText: id }), `shard ${id}`);
  }
  await visible(tenants.getByRole('row').filter({ hasText: 'Acme Corp' }).filter({ hasText: 'acme' }), 'tenant acme');
  await visible(tenants.getByRole('row').filter({ hasText: 'Globex' }).filter({ hasText: 'globex' }), 'tenant globex');
  await screenshot(page, shotName('operator', s.js));
});

scenario('a tenant that does not exist is a 404 page', async (s) => {
  const { page } = s;
  await login(s, 'alice', { next: '/t/acme' });
  await openExpecting(s, '/t/nope', 404);
  await visible(page.getByRole('heading', { name: 'Not found' }));
  await absent(page.getByRole('heading', { name: 'Acme Corp' }), 'a tenant heading on the 404 page');
  await screenshot(page, shotName('not-found', s.js));
  // Still signed in.
  await visible(page.getByRole('navigation', { name: 'Main' }).getByText('Alice Admin'));
});

scenario("another tenant's dashboard is a 404 page too (its existence is hidden)", async (s) => {
  const { page } = s;
  await login(s, 'alice', { next: '/t/acme' });
  await openExpecting(s, '/t/globex', 404);
  await visible(page.getByRole('heading', { name: 'Not found' }));
  await absent(page.getByRole('heading', { name: 'Globex' }), 'the Globex heading');
  // Same answer as for a tenant that does not exist, apart from the slug.
  const body = (await page.getByRole('alert').innerText()).replaceAll('globex', 'SLUG');
  await openExpecting(s, '/t/nope', 404);
  const other = (await page.getByRole('alert').innerText()).replaceAll('nope', 'SLUG');
  assert.equal(body, other, 'the 404 for a foreign tenant differs from a missing one');
});

scenario('an unknown page is a 404 page', async (s) => {
  const { page } = s;
  await login(s, 'alice', { next: '/t/acme' });
  await openExpecting(s, '/no/such/page', 404);
  await visible(page.getByText(/not found/i));
  await screenshot(page, shotName('unknown-page', s.js));
});

scenario(
  "on a 404 tenant page the nav offers no Dashboard link to the missing tenant",
  async (s) => {
    const { page } = s;
    await login(s, 'alice', { next: '/t/acme' });
    await openExpecting(s, '/t/nope', 404);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await absent(nav.locator('a[href="/t/nope"]'), 'a Dashboard link to /t/nope');
  },
);
