// Member management (docs/members.md): acme's admin invites a person who is in no tenant
// group, that person signs in and lands in acme and joins a real device (tailscaled)
// with a key of their own; the admin changes their role, then removes them: their
// session ends, their key and device are expired on the shard. A membership from the identity provider shows
// no controls. Every step is a plain form, so the scenario runs with JavaScript on and
// off (one after the other: they share the demo user `newbie`).

import {
  assert,
  absent,
  eventually,
  login,
  onPortalPage,
  open,
  openSession,
  portal,
  scenario,
  screenshot,
  shotName,
  visible,
} from '../lib.mjs';
import { daemon } from '../tailscale.mjs';

const NEWBIE_EMAIL = 'newbie@acme.example';

function row(page, text) {
  return page.getByTestId('member-row').filter({ hasText: text });
}

async function membersPage(s) {
  await open(s, '/t/acme/members');
  await onPortalPage(s, '/t/acme/members');
  await visible(s.page.getByRole('heading', { name: 'Members', exact: true }));
}

/** Leaves acme without newbie and without an invitation for them (a rerun after a failure). */
async function reset(s) {
  const { page } = s;
  if (await row(page, NEWBIE_EMAIL).count()) {
    await row(page, NEWBIE_EMAIL).getByText('Remove…').click();
    await row(page, NEWBIE_EMAIL).getByRole('button', { name: 'Remove Nora Newbie' }).click();
    await page.waitForURL((u) => u.searchParams.get('done') === 'removed');
    await membersPage(s);
  }
  const invitation = page.getByRole('button', { name: `Revoke the invitation of ${NEWBIE_EMAIL}` });
  if (await invitation.count()) {
    await invitation.click();
    await page.waitForURL((u) => u.searchParams.get('done') === 'revoked');
    await membersPage(s);
  }
}

scenario('an admin invites, re-roles and removes a member; IdP members show no controls', async (admin) => {
  const { page, js } = admin;
  // bob's membership comes from his groups claim at sign-in: make sure he signed in once.
  const bobSession = await openSession({ js });
  try {
    await login(bobSession, 'bob', { next: '/t/acme' });
  } finally {
    await bobSession.close();
  }
  await login(admin, 'alice', { next: '/t/acme' });
  await page.getByRole('link', { name: 'Members' }).click();
  await onPortalPage(admin, '/t/acme/members');
  await reset(admin);

  // An IdP membership (bob's, from the group tenant:acme:member): no controls.
  const bob = row(page, 'Bob Member');
  await visible(bob.getByText('Identity provider'));
  await visible(bob.getByText('Managed in the identity provider'));
  assert.equal(await bob.getByRole('button').count(), 0);

  // A bad email is a sentence (422), and nothing is created.
  const form = page.getByRole('form', { name: 'Invite a member' });
  if (!js) {
    // The browser's own check would stop the post with JavaScript on too; without it the
    // server answers.
    await form.getByLabel('Email').evaluate((e) => e.setAttribute('type', 'text'));
    await form.getByLabel('Email').fill('newbie at acme');
    await form.getByRole('button', { name: 'Invite' }).click();
    await visible(page.getByText('“newbie at acme” is not an email address like name@example.com.'));
    assert.equal(await page.getByTestId('invitation-row').filter({ hasText: 'newbie' }).count(), 0);
  }

  // Invite.
  await page.getByRole('form', { name: 'Invite a member' }).getByLabel('Email').fill(NEWBIE_EMAIL);
  await page.getByRole('form', { name: 'Invite a member' }).getByLabel('Role').selectOption('member');
  await page.getByRole('form', { name: 'Invite a member' }).getByRole('button', { name: 'Invite' }).click();
  await visible(page.getByTestId('invitation-row').filter({ hasText: NEWBIE_EMAIL }));
  // Inviting again is refused with a sentence (with JavaScript: a 409 answer).
  admin.expectStatus(portal('/api/invite_member'), 409);
  await page.getByRole('form', { name: 'Invite a member' }).getByLabel('Email').fill(NEWBIE_EMAIL);
  await page.getByRole('form', { name: 'Invite a member' }).getByRole('button', { name: 'Invite' }).click();
  await visible(page.getByText(`${NEWBIE_EMAIL} already has a pending invitation.`, { exact: false }));
  await screenshot(page, shotName('members-invited', js));

  // The invited person signs in and lands in acme.
  const newbie = await openSession({ js });
  const device = daemon();
  try {
    await login(newbie, 'newbie');
    await newbie.page.waitForURL((u) => u.pathname === '/t/acme');
    await onPortalPage(newbie, '/t/acme');
    await screenshot(newbie.page, shotName('members-newbie-landed', js));

    // As a member they mint a key of their own, once the sync made their user on acme's
    // shard (every 15 s in the dev stack).
    // A reusable key (the kind that would keep registering devices) and a real device
    // joined with it.
    const host = `e2e-newbie-${js ? 'js' : 'nojs'}-${Date.now().toString(36)}`;
    const description = `newbie ${host}`;
    newbie.expectStatus(portal('/api/create_key'), 409);
    await eventually(
      async () => {
        await open(newbie, '/t/acme/keys');
        await onPortalPage(newbie, '/t/acme/keys');
        const mint = newbie.page.getByRole('form', { name: 'Generate key' });
        await mint.getByLabel('Description').fill(description);
        await mint.getByLabel('Reusable').check();
        await mint.getByRole('button', { name: 'Generate key' }).click();
        await newbie.page.getByTestId('minted-key').waitFor({ state: 'visible', timeout: 5_000 });
      },
      { timeout: 60_000, interval: 2_000 },
    );
    const key = (await newbie.page.getByTestId('minted-key').first().innerText()).trim();
    const up = (await newbie.page.getByTestId('tailscale-up').first().innerText()).trim();
    const loginServer = /--login-server=(\S+)/.exec(up)[1];
    device.up(loginServer, key, host);
    await eventually(
      async () => {
        await open(admin, `/t/acme/devices?q=${host}`);
        const row = page.getByRole('row').filter({ hasText: host });
        assert.equal(await row.count(), 1, 'the device is listed');
        assert.match(await row.innerText(), /online/);
      },
      { timeout: 40_000, interval: 1_000 },
    );

    // The admin sees them as a portal member, and makes them an IT admin.
    await membersPage(admin);
    const line = row(page, NEWBIE_EMAIL);
    await visible(line.getByText('Portal'));
    await line.getByLabel('New role for Nora Newbie').selectOption('it_admin');
    await line.getByRole('button', { name: 'Change role of Nora Newbie' }).click();
    await visible(page.getByText('Role changed.'));
    await visible(row(page, NEWBIE_EMAIL).getByRole('cell', { name: 'IT admin', exact: true }));
    await screenshot(page, shotName('members-role-changed', js));

    // Removed: the row goes, and newbie's session ends at their next request.
    await row(page, NEWBIE_EMAIL).getByText('Remove…').click();
    await row(page, NEWBIE_EMAIL).getByRole('button', { name: 'Remove Nora Newbie' }).click();
    await visible(page.getByText('Member removed', { exact: false }));
    await absent(row(page, NEWBIE_EMAIL));
    await screenshot(page, shotName('members-removed', js));

    // Their key and device were expired on the shard before the removal was reported;
    // the device stays listed (logged out) until an admin deletes it.
    await open(admin, '/t/acme/keys');
    await onPortalPage(admin, '/t/acme/keys');
    await visible(page.getByRole('row').filter({ hasText: description }).getByText('expired', { exact: true }));
    await open(admin, `/t/acme/devices?q=${host}`);
    await onPortalPage(admin, '/t/acme/devices');
    await visible(page.getByRole('row').filter({ hasText: host }).getByText('logged out'));
    await screenshot(page, shotName('members-removed-device', js));

    await newbie.page.goto(portal('/t/acme'));
    await newbie.page.waitForURL((u) => u.pathname === '/login');
    await visible(newbie.page.getByRole('link', { name: 'Sign in with SSO' }));
    newbie.assertClean();
  } finally {
    device.stop();
    await newbie.close();
  }
});

scenario('a member has no members page; an auditor reads it without controls', async (s) => {
  const { page, js } = s;
  await login(s, 'bob', { next: '/t/acme' });
  assert.equal(await page.getByRole('link', { name: 'Members' }).count(), 0);
  s.expectStatus(portal('/t/acme/members'), 403);
  const res = await open(s, '/t/acme/members');
  assert.equal(res.status(), 403);

  // carol is globex's auditor: the list, read-only.
  const carol = await openSession({ js });
  try {
    await login(carol, 'carol', { next: '/t/globex/members' });
    await onPortalPage(carol, '/t/globex/members');
    await visible(carol.page.getByText('Only owners and admins invite members and change roles.'));
    assert.equal(await carol.page.getByRole('button', { name: /Change role|Remove|Invite/ }).count(), 0);
    await screenshot(carol.page, shotName('members-readonly', js));
    carol.assertClean();
  } finally {
    await carol.close();
  }
});
