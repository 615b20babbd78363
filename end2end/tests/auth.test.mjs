// Signing in through the real identity provider's form, and signing out again.

import {
  PORTAL_ORIGIN,
  absent,
  assert,
  login,
  logout,
  onPortalPage,
  open,
  portal,
  providerLoginForm,
  scenario,
  screenshot,
  shotName,
  visible,
} from '../lib.mjs';

scenario('signed out, a protected page sends you to /login and back after signing in', async (s) => {
  const { page } = s;
  const res = await open(s, '/t/acme');
  const first = res.request().redirectedFrom();
  assert.ok(first, 'expected a redirect from /t/acme');
  assert.equal((await first.response()).status(), 303);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/login');
  assert.equal(url.searchParams.get('next'), '/t/acme');
  await onPortalPage(s, '/login');
  await visible(page.getByRole('heading', { name: 'Sign in to Headscale Portal' }));
  await screenshot(page, shotName('login', s.js));

  await page.getByRole('link', { name: 'Sign in with SSO' }).click();
  await page.waitForURL((u) => u.origin !== PORTAL_ORIGIN);
  // A wrong password is refused by the provider, which shows its form again.
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('not-her-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await visible(page.getByText('Invalid username or password'));
  await providerLoginForm(s, { username: 'alice', password: 'alice-demo' });
  await onPortalPage(s, '/t/acme');
  await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
});

scenario('alice signs in, sees herself and Acme Corp, signs out, and is signed out', async (s) => {
  const { page } = s;
  await login(s, 'alice');
  // `/` took her to her (only) tenant.
  assert.equal(new URL(page.url()).pathname, '/t/acme');
  await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
  await visible(page.getByText('Tenant acme · your role: Admin'));
  const nav = page.getByRole('navigation', { name: 'Main' });
  await visible(nav.getByText('Alice Admin'), 'her name in the nav');
  for (const card of ['Tailnet', 'Shard', 'You']) {
    await visible(page.getByRole('heading', { name: card, exact: true }), `card ${card}`);
  }
  await visible(page.getByRole('heading', { name: /^Members \(\d+\)$/ }));
  await visible(page.getByRole('cell', { name: 'Alice Admin' }), 'alice in the members table');

  await logout(s);
  await absent(page.getByLabel('Account'), 'account menu after signing out');

  // The portal session is gone.
  const res = await open(s, '/t/acme');
  const url = new URL(page.url());
  assert.equal(url.pathname, '/login', `expected /login, got ${page.url()}`);
  assert.equal(url.searchParams.get('next'), '/t/acme');
  assert.equal(res.status(), 200);
  await onPortalPage(s, '/login');
  await visible(page.getByRole('link', { name: 'Sign in with SSO' }));
  await absent(page.getByText('Alice Admin'), 'her name after signing out');
});

scenario('signing in again after signing out asks the provider for the password again', async (s) => {
  const { page } = s;
  await login(s, 'bob');
  await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
  await logout(s);
  await page.getByRole('link', { name: 'Sign in again' }).click();
  // The provider's session ended too: its login form comes back.
  await page.waitForURL((u) => u.origin !== PORTAL_ORIGIN);
  await visible(page.getByLabel('Username'));
  await providerLoginForm(s, { username: 'bob', password: 'bob-demo' });
  await onPortalPage(s, '/t/acme');
  await visible(page.getByText('Tenant acme · your role: Member'));
});

scenario('the return path after signing in stays on the portal (no open redirect)', async (s) => {
  const { page } = s;
  for (const next of ['//example.com/', 'https://example.com/', '/\\example.com/']) {
    await page.goto(portal(`/login?next=${encodeURIComponent(next)}`));
    await onPortalPage(s, '/login');
    const href = await page.getByRole('link', { name: 'Sign in with SSO' }).getAttribute('href');
    assert.equal(href, '/auth/login?next=/', `the SSO link for next=${next}`);
  }
  // Straight to the sign-in route with a foreign target: still back to the portal.
  await page.goto(portal(`/auth/login?next=${encodeURIComponent('//example.com/')}`));
  await providerLoginForm(s, { username: 'alice', password: 'alice-demo' });
  await onPortalPage(s);
  assert.equal(new URL(page.url()).pathname, '/t/acme');
});

scenario('the login page of a signed-in person goes on to the return path', async (s) => {
  const { page } = s;
  await login(s, 'carol', { next: '/t/acme' });
  await page.goto(portal('/login?next=%2Ft%2Fglobex'));
  await onPortalPage(s, '/t/globex');
  await visible(page.getByText('Tenant globex · your role: Auditor'));
});

scenario(
  'the signed-out page does not claim you are signed out while you are signed in',
  async (s) => {
    const { page } = s;
    await login(s, 'alice');
    await open(s, '/signed-out');
    await onPortalPage(s);
    // Either it sends her on, or at least it does not say she is signed out.
    await absent(page.getByRole('heading', { name: 'You are signed out' }), '"You are signed out" while signed in');
  },
);
