// Usage and quotas in the browser: a real device of acme is online on the test stack's
// shard; its time reaches acme's usage page (charts, devices table, quotas) and the CSV a
// billing admin downloads. A member gets neither. The operator sees every shard's quota
// (sortable without JavaScript too) and every tenant's month.

import { daemon } from '../tailscale.mjs';
import { assert, eventually, login, onPortalPage, open, portal, scenario, screenshot, shotName, visible } from '../lib.mjs';

function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

scenario('a billing admin sees a real device\'s time on the usage page and in the CSV', async (s) => {
  const { page, js } = s;
  const host = `e2e-use-${js ? 'js' : 'nojs'}-${Date.now().toString(36)}`;
  const client = daemon();
  try {
    // Alice (an admin) mints a key and a real device joins with it.
    await login(s, 'alice', { next: '/t/acme/keys' });
    await onPortalPage(s, '/t/acme/keys');
    // Alice may be signing in for the first time: the sync makes her user on the shard
    // within a few seconds, and until then the form says so.
    const shown = page.getByRole('dialog', { name: 'Your new key' });
    await eventually(
      async () => {
        await open(s, '/t/acme/keys');
        const form = page.getByRole('form', { name: 'Generate key' });
        await form.getByLabel('Expires after (days)').fill('1');
        await form.getByLabel('Description').fill(`usage ${host}`);
        s.expectStatus(portal('/api/create_key'), 409);
        await form.getByRole('button', { name: 'Generate key' }).click();
        await visible(shown);
      },
      { timeout: 60_000, interval: 2_000 },
    );
    const key = (await shown.getByTestId('minted-key').innerText()).trim();
    const up = (await shown.getByTestId('tailscale-up').innerText()).trim();
    const loginServer = /--login-server=(\S+)/.exec(up)[1];
    client.up(loginServer, key, host);

    // The dashboard shows the quotas as bars.
    await open(s, '/t/acme');
    await visible(page.getByRole('meter', { name: 'Devices' }));
    await visible(page.getByRole('meter', { name: 'Active pre-auth keys' }));

    // Its online time appears on the usage page within a few sync and rollup passes.
    await eventually(
      async () => {
        await open(s, '/t/acme/usage');
        const row = page.getByRole('row').filter({ hasText: host });
        assert.equal(await row.count(), 1, 'the device is in the month\'s table');
      },
      { timeout: 60_000, interval: 2_000 },
    );
    await onPortalPage(s, '/t/acme/usage');
    await visible(page.getByRole('heading', { name: thisMonth() }));
    await visible(page.getByRole('img', { name: 'Device-hours per day' }));
    await visible(page.getByRole('img', { name: 'Active devices per day' }));
    await visible(page.getByText('Open: still counting'));
    await screenshot(page, shotName('usage', js));

    // The detail CSV: the device's row, the tenant's only.
    const detailLink = page.getByRole('link', { name: 'Download per-device detail (CSV)' });
    const href = await detailLink.getAttribute('href');
    assert.equal(href, `/t/acme/usage/export?month=${thisMonth()}&kind=detail`);
    const res = await page.request.get(portal(href));
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-disposition'], new RegExp(`filename="usage-acme-${thisMonth()}-detail.csv"`));
    const text = await res.text();
    assert.ok(text.startsWith('date,tenant_code,shard,device_id,device,owner,online_seconds,online_hours,status\r\n'), text);
    const line = text.split('\r\n').find((l) => l.includes(host));
    assert.ok(line, `the device's row: ${text}`);
    assert.match(line, /,t7k2,hs-a,\d+,e2e-use-[a-z0-9-]+,alice@acme\.example,\d+,\d+\.\d\d,provisional$/);
    assert.ok(!text.includes(',g4x9,'), 'never globex\'s rows');

    // Another month: the picker goes back, and says the month is empty.
    await page.getByRole('link', { name: /^← / }).click();
    await onPortalPage(s, '/t/acme/usage');
    await visible(page.getByText('No device was online this month yet.'));
  } finally {
    client.stop();
  }
}, { timeout: 180_000 });

scenario('a member has no usage page and no export', async (s) => {
  const { page, js } = s;
  await login(s, 'bob', { next: '/t/acme' });
  assert.equal(await page.getByRole('link', { name: 'Usage', exact: true }).count(), 0, 'no Usage link');
  s.expectStatus(portal('/t/acme/usage'), 403);
  const res = await open(s, '/t/acme/usage');
  assert.equal(res.status(), 403);
  await screenshot(page, shotName('usage-forbidden', js));
  const csv = await page.request.get(portal(`/t/acme/usage/export?month=${thisMonth()}&kind=detail`));
  assert.equal(csv.status(), 403);
}, { modes: [true] });

scenario('the operator sorts shards by quota and sees every tenant\'s month', async (s) => {
  const { page, js } = s;
  await login(s, 'olivia', { next: '/operator' });
  await page.getByRole('link', { name: 'Shard quotas' }).click();
  await onPortalPage(s, '/operator/quotas');
  await visible(page.getByRole('heading', { name: 'Shard quotas' }));
  const clusters = async () =>
    page.locator('tbody tr td:nth-child(5) code').allInnerTexts();
  const byUse = await clusters();
  assert.ok(byUse.includes('hs-a') && byUse.includes('hs-b'), byUse.join());
  await visible(page.getByRole('columnheader', { name: /Use/ }).and(page.locator('[aria-sort="descending"]')));
  await screenshot(page, shotName('shard-quotas', js));
  // Sorting by cluster, ascending: a link, so it works without JavaScript.
  await page.getByRole('link', { name: 'Cluster' }).click();
  await onPortalPage(s, '/operator/quotas');
  await eventually(async () => {
    const byCluster = await clusters();
    assert.deepEqual(byCluster, [...byCluster].sort(), byCluster.join());
  });

  await page.goto(portal('/operator/shards/hs-a'));
  await onPortalPage(s, '/operator/shards/hs-a');
  await visible(page.getByRole('img', { name: 'Devices registered' }));
  await screenshot(page, shotName('shard-trend', js));

  await open(s, '/operator/usage');
  await visible(page.getByRole('heading', { name: 'Usage and billing' }));
  await visible(page.getByRole('link', { name: 'All tenants: summary (CSV)' }));
  const res = await page.request.get(portal(`/operator/usage/export?month=${thisMonth()}&kind=summary`));
  assert.equal(res.status(), 200);
  const text = await res.text();
  assert.ok(text.split('\r\n')[0].startsWith('month,tenant_code,tenant,'), text);
  assert.ok(text.includes(',acme,') && text.includes(',globex,'), text);
  await screenshot(page, shotName('operator-usage', js));
});
