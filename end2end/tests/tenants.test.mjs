// A person in two tenants switches between them.

import { absent, assert, login, onPortalPage, scenario, visible } from '../lib.mjs';

scenario('carol switches from Acme Corp to Globex and sees her role there', async (s) => {
  const { page } = s;
  await login(s, 'carol', { next: '/t/acme' });
  await visible(page.getByRole('heading', { name: 'Acme Corp', level: 1 }));
  await visible(page.getByText('Tenant acme · your role: Network admin'));

  const switcher = page.getByRole('group').filter({ has: page.getByLabel('Switch tenant') });
  const summary = page.getByLabel('Switch tenant');
  await visible(summary);
  assert.match(await summary.innerText(), /Acme Corp/);
  await summary.click();
  // Both of her tenants are offered, each with her role.
  const acme = switcher.getByRole('link', { name: /Acme Corp/ });
  const globex = switcher.getByRole('link', { name: /Globex/ });
  await visible(acme);
  await visible(globex);
  assert.match(await globex.innerText(), /Auditor/);
  assert.equal(await globex.getAttribute('href'), '/t/globex');

  await globex.click();
  await onPortalPage(s, '/t/globex');
  await visible(page.getByRole('heading', { name: 'Globex', level: 1 }));
  await visible(page.getByText('Tenant globex · your role: Auditor'));
  await absent(page.getByRole('heading', { name: 'Acme Corp', level: 1 }), 'the Acme heading');
  assert.match(await summary.innerText(), /Globex/, 'the switcher names the current tenant');
  // The nav's Dashboard link follows the current tenant.
  const dashboard = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' });
  assert.equal(await dashboard.getAttribute('href'), '/t/globex');

  // And back.
  if (!(await acme.isVisible())) await summary.click();
  await acme.click();
  await onPortalPage(s, '/t/acme');
  await visible(page.getByText('Tenant acme · your role: Network admin'));
});

scenario('the tenant switcher of a one-tenant person lists only that tenant', async (s) => {
  const { page } = s;
  await login(s, 'gina');
  assert.equal(new URL(page.url()).pathname, '/t/globex');
  await visible(page.getByText('Tenant globex · your role: Admin'));
  await page.getByLabel('Switch tenant').click();
  const switcher = page.getByRole('group').filter({ has: page.getByLabel('Switch tenant') });
  await visible(switcher.getByRole('link', { name: /Globex/ }));
  await absent(switcher.getByRole('link', { name: /Acme/ }), 'Acme in her switcher');
});

async function switcherCloses(s) {
  const { page } = s;
  await login(s, 'carol', { next: '/t/acme' });
  await page.getByLabel('Switch tenant').click();
  await page.getByRole('link', { name: /Globex/ }).click();
  await onPortalPage(s, '/t/globex');
  await visible(page.getByText('Tenant globex · your role: Auditor'));
  const details = page.locator('details', { has: page.getByLabel('Switch tenant') });
  assert.equal(await details.getAttribute('open'), null, 'the switcher menu is still open over the new page');
}
scenario('the tenant switcher closes after choosing a tenant', switcherCloses);
