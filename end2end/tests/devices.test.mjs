// A member's whole device lifecycle in the browser, against the test stack's real shard
// (acme lives on hs-a) and a real tailscaled: mint a key (shown once), join with it,
// find the device online, rename it (the client learns the new name), expire it (it goes
// offline), delete it.

import { daemon } from '../tailscale.mjs';
import { assert, eventually, login, logout, onPortalPage, open, portal, scenario, screenshot, shotName, visible } from '../lib.mjs';

scenario('a member mints a key, joins a device with it, renames, expires and deletes it', async (s) => {
  const { page, js } = s;
  // Unique per run: the dev stack keeps devices of earlier runs.
  const host = `e2e-${js ? 'js' : 'nojs'}-${Date.now().toString(36)}`;
  const renamed = `${host}-renamed`;
  const client = daemon();
  try {
    await login(s, 'bob', { next: '/t/acme/keys' });
    await onPortalPage(s, '/t/acme/keys');

    // Mint: shown once, with the commands for acme's shard.
    const form = page.getByRole('form', { name: 'Generate key' });
    await form.getByLabel('Expires after (days)').fill('1');
    await form.getByLabel('Description').fill(`browser ${host}`);
    await form.getByRole('button', { name: 'Generate key' }).click();
    const shown = page.getByRole('dialog', { name: 'Your new key' });
    await visible(shown);
    const key = (await shown.getByTestId('minted-key').innerText()).trim();
    assert.match(key, /^hskey-auth-/);
    const up = (await shown.getByTestId('tailscale-up').innerText()).trim();
    const loginServer = /--login-server=(\S+)/.exec(up)[1];
    assert.equal(up, `tailscale up --login-server=${loginServer} --authkey=${key}`);
    assert.match(await shown.getByTestId('k3s').innerText(), new RegExp(`joinKey=${key},controlServerURL=`));
    await screenshot(page, shotName('keys-shown-once', js));

    // Shown once: the page again (a reload, or the one-time link again) does not show it.
    await page.reload();
    await onPortalPage(s, '/t/acme/keys');
    assert.ok(!(await page.content()).includes(key), 'the key is shown only once');
    await visible(page.getByText(`browser ${host}`));

    // A real device joins with the key and is listed online.
    client.up(loginServer, key, host);
    await eventually(
      async () => {
        await open(s, `/t/acme/devices?q=${host}`);
        const row = page.getByRole('row').filter({ hasText: host });
        assert.equal(await row.count(), 1, 'the device is listed');
        assert.match(await row.innerText(), /online/);
      },
      { timeout: 40_000, interval: 1_000 },
    );
    await onPortalPage(s, '/t/acme/devices');
    await screenshot(page, shotName('devices', js));

    // Its page; rename it, and the client learns the new name.
    await page.getByRole('link', { name: host, exact: true }).click();
    await onPortalPage(s);
    await visible(page.getByRole('heading', { name: host, level: 1 }));
    await screenshot(page, shotName('device-detail', js));
    s.expectStatus(portal('/api/rename_device'), 422);
    const rename = page.getByRole('form', { name: 'Rename device' });
    await rename.getByLabel('New name').fill('Not A Name!');
    await rename.getByRole('button', { name: 'Rename' }).click();
    await visible(page.getByText(/only letters, digits and hyphens/));
    await page.getByRole('form', { name: 'Rename device' }).getByLabel('New name').fill(renamed);
    await page.getByRole('form', { name: 'Rename device' }).getByRole('button', { name: 'Rename' }).click();
    await visible(page.getByText(/^Renamed\./));
    await visible(page.getByRole('heading', { name: renamed, level: 1 }));
    // `tailscale status` shows the device under its new (MagicDNS) name.
    await eventually(() => assert.match(client.status(), new RegExp(`"DNSName": "${renamed}\\.`)), {
      timeout: 30_000,
      interval: 500,
    });

    // Expire it: the client is logged out (it keeps only its control connection, to log
    // in again), and the list no longer shows it online.
    await page.getByRole('form', { name: 'Expire device key' }).getByRole('button', { name: 'Expire key' }).click();
    await visible(page.getByText(/key is expired/));
    await eventually(() => assert.match(client.status(), /"BackendState": "NeedsLogin"/), {
      timeout: 30_000,
      interval: 500,
    });
    await open(s, `/t/acme/devices?q=${renamed}`);
    const row = page.getByRole('row').filter({ hasText: renamed });
    assert.equal(await row.count(), 1);
    assert.doesNotMatch(await row.innerText(), /online/);
    assert.match(await row.innerText(), /logged out/);
    await onPortalPage(s, '/t/acme/devices');

    // Delete it, typing its name.
    await page.getByRole('link', { name: renamed, exact: true }).click();
    await onPortalPage(s);
    const del = page.getByRole('form', { name: 'Delete device' });
    await del.getByLabel(/Type/).fill(renamed);
    await del.getByRole('button', { name: 'Delete device' }).click();
    await onPortalPage(s, '/t/acme/devices');
    await visible(page.getByText(`Device ${renamed} deleted.`));
    assert.equal(await page.getByRole('link', { name: renamed, exact: true }).count(), 0);
  } finally {
    client.stop();
  }
}, { timeout: 240_000 });

scenario('an admin registers a device waiting after tailscale up without a key, for a member', async (s) => {
  const { page, js } = s;
  const host = `e2e-reg-${js ? 'js' : 'nojs'}-${Date.now().toString(36)}`;
  const client = daemon();
  try {
    // Bob signs in once, so he is a member with a user on acme's shard.
    await login(s, 'bob', { next: '/t/acme' });
    await logout(s);
    await login(s, 'alice', { next: '/t/acme/devices' });
    await onPortalPage(s, '/t/acme/devices');
    // acme's shard (hs-a of the stack), where the device asks to be let in.
    const loginServer = process.env.E2E_ACME_LOGIN_SERVER;
    assert.ok(loginServer, 'E2E_ACME_LOGIN_SERVER is not set: run through dev/test');
    // The sync makes bob's user within seconds: he is then offered as an owner.
    await eventually(
      async () => {
        await open(s, '/t/acme/devices');
        assert.equal(await page.locator('#reg-owner option[value="t7k2.bob"]').count(), 1, "bob's user");
      },
      { timeout: 30_000, interval: 1_000 },
    );
    await onPortalPage(s, '/t/acme/devices');

    const { url, exited } = await client.upInteractive(loginServer, host);
    assert.match(url, /\/register\//);
    await page.getByText('Register a device that is waiting').click();
    const form = page.getByRole('form', { name: 'Register device' });
    await form.getByLabel('Registration URL or ID').fill(url);
    await form.getByLabel('Owner').selectOption('t7k2.bob');
    await form.getByRole('button', { name: 'Register device' }).click();
    await onPortalPage(s);
    await visible(page.getByText(/^Registered\./));
    await visible(page.getByRole('heading', { name: host, level: 1 }));
    assert.match(await page.getByText('t7k2.bob').first().innerText(), /t7k2\.bob/);
    assert.equal(await exited, 0, 'tailscale up finished once registered');
  } finally {
    client.stop();
  }
}, { timeout: 240_000 });
