// The colour scheme switch: screenshots in light and dark, hydration (no page load with
// JS on), and a plain form post that reloads the page with JS off.

import {
  assert,
  eventually,
  htmlClass,
  login,
  onPortalPage,
  open,
  scenario,
  screenshot,
  shotName,
  visible,
} from '../lib.mjs';

const BUTTONS = {
  system: 'Use system colour scheme',
  light: 'Use light colour scheme',
  dark: 'Use dark colour scheme',
};

/** Whether a computed CSS colour (rgb() or oklch(), as Tailwind 4 emits) is light. */
function isLightColour(css) {
  const n = css.match(/[\d.]+/g).map(Number);
  if (css.startsWith('oklch') || css.startsWith('oklab')) return n[0] > 0.5;
  if (css.startsWith('rgb')) return (n[0] + n[1] + n[2]) / 3 > 128;
  throw new Error(`unexpected colour ${css}`);
}

/**
 * Clicks a scheme button and waits for the `<html>` class. Returns how many times the
 * main frame navigated meanwhile and whether a window marker set before the click
 * survived (JS on only).
 */
async function chooseScheme(s, scheme) {
  const { page } = s;
  let navigations = 0;
  const onNav = (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  };
  page.on('framenavigated', onNav);
  const marker = `m${Math.random().toString(36).slice(2)}`;
  if (s.js) await page.evaluate((m) => (window.__e2eMarker = m), marker);
  try {
    const schemes = page.getByRole('group', { name: 'Colour scheme' });
    const button = schemes.getByRole('button', { name: BUTTONS[scheme] });
    if (s.js) {
      await button.click();
    } else {
      // Without JS the form post answers with a redirect back to the page.
      await Promise.all([page.waitForEvent('load'), button.click()]);
    }
    await eventually(async () => assert.equal(await htmlClass(page), scheme));
    await eventually(async () => assert.equal(await button.getAttribute('aria-pressed'), 'true'));
    for (const other of Object.keys(BUTTONS).filter((k) => k !== scheme)) {
      assert.equal(
        await schemes.getByRole('button', { name: BUTTONS[other] }).getAttribute('aria-pressed'),
        'false',
        `${other} still pressed`,
      );
    }
    const survived = s.js ? (await page.evaluate(() => window.__e2eMarker)) === marker : false;
    return { navigations, survived };
  } finally {
    page.off('framenavigated', onNav);
  }
}

scenario("alice's dashboard in light and dark", async (s) => {
  const { page } = s;
  await login(s, 'alice');
  await onPortalPage(s, '/t/acme');
  await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
  assert.equal(await htmlClass(page), 'system', 'a new browser starts with the system scheme');

  for (const scheme of ['light', 'dark']) {
    const { navigations, survived } = await chooseScheme(s, scheme);
    if (s.js) {
      assert.equal(navigations, 0, `choosing ${scheme} loaded a page; the click should stay in the hydrated page`);
      assert.ok(survived, `choosing ${scheme} lost the page's state (not hydrated?)`);
    } else {
      assert.ok(navigations >= 1, `with JS off, choosing ${scheme} should post the form and reload`);
      assert.equal(new URL(page.url()).pathname, '/t/acme', 'the form post returns to the same page');
    }
    await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
    await visible(page.getByText('Tenant acme · your role: Admin'));
    // The page really is painted in the scheme (Tailwind's `dark:` variant on <body>).
    const bg = await page.locator('body').evaluate((el) => getComputedStyle(el).backgroundColor);
    const light = isLightColour(bg);
    assert.equal(light, scheme === 'light', `body background ${bg} in ${scheme}`);
    await screenshot(page, shotName(`dashboard-${scheme}`, s.js));
  }

  // The choice is kept in a cookie: a new page load renders dark on the server.
  const res = await open(s, '/t/acme');
  assert.equal(res.status(), 200);
  await onPortalPage(s, '/t/acme');
  assert.equal(await htmlClass(page), 'dark');
  const cookies = await s.context.cookies();
  assert.ok(
    cookies.some((c) => c.value === 'dark' && c.sameSite === 'Lax'),
    `a Lax cookie with the scheme: ${JSON.stringify(cookies.map((c) => [c.name, c.value, c.sameSite]))}`,
  );

  // Back to system.
  await chooseScheme(s, 'system');
});

scenario('the colour scheme also works signed out, on the login page', async (s) => {
  const { page } = s;
  await open(s, '/login');
  await onPortalPage(s, '/login');
  const { navigations, survived } = await chooseScheme(s, 'dark');
  if (s.js) {
    assert.equal(navigations, 0);
    assert.ok(survived);
  }
  await visible(page.getByRole('link', { name: 'Sign in with SSO' }));
  await screenshot(page, shotName('login-dark', s.js));
  await open(s, '/login');
  assert.equal(await htmlClass(page), 'dark');
});

scenario('after a client-side page change the scheme switch still works', async (s) => {
  const { page } = s;
  await login(s, 'carol', { next: '/t/acme' });
  await page.getByLabel('Switch tenant').click();
  await page.getByRole('link', { name: /Globex/ }).click();
  await onPortalPage(s, '/t/globex');
  await visible(page.getByText('Tenant globex · your role: Auditor'));
  const { navigations } = await chooseScheme(s, 'dark');
  if (s.js) assert.equal(navigations, 0);
  assert.equal(new URL(page.url()).pathname, '/t/globex');
  await visible(page.getByRole('heading', { name: 'Globex', level: 1 }));
});

scenario('the system scheme follows the operating system', async (s) => {
  const { page } = s;
  for (const os of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: os });
    await open(s, '/login');
    await onPortalPage(s, '/login');
    assert.equal(await htmlClass(page), 'system');
    const bg = await page.locator('body').evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.equal(isLightColour(bg), os === 'light', `body ${bg} with the OS in ${os}`);
  }
});
