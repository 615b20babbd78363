// Access controls in the browser (globex, so acme's devices in the other tests keep
// their policy): write a policy with a mistake, see the problem at its line and column,
// fix it, see the tests pass and the changes against the live policy, save with a
// comment, find the revision in the history, restore the one before. A member reads
// the policy but has no Save button.

import { assert, eventually, login, onPortalPage, open, scenario, screenshot, shotName, visible } from '../lib.mjs';

const BROKEN = `{
  // Engineers reach the database.
  "groups": {"group:eng": ["gina@globex.example"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
  ],
}`;

const fixed = (mark) => `{
  // Engineers reach the database (${mark}).
  "groups": {"group:eng": ["gina@globex.example"]},
  "tagOwners": {"tag:db": ["group:eng"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
  ],
  "tests": [
    {"src": "gina@globex.example", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]},
  ],
}`;

scenario('a network admin edits, checks, saves and restores the policy', async (s) => {
  const { page, js } = s;
  await login(s, 'gina', { next: '/t/globex/policy' });
  await onPortalPage(s, '/t/globex/policy');
  await visible(page.getByRole('heading', { name: 'Access controls', level: 1 }));
  const before = await page.getByRole('link', { name: /^Revision \d+$/ }).count();

  // A mistake: the problem is reported at its line and column, nothing is saved.
  const editor = page.getByLabel('Policy (HuJSON)');
  await editor.fill(BROKEN);
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  if (!js) await onPortalPage(s, '/t/globex/policy');
  await visible(page.getByText('1 problem'));
  await visible(page.getByText(/Line 5, column 56/));
  await visible(page.getByText(/tag:db is not defined in this policy's tagOwners/));
  assert.equal(await editor.inputValue(), BROKEN, 'the draft is kept');
  if (!js) await visible(page.getByRole('button', { name: 'Discard draft' }));
  await screenshot(page, shotName('policy-error', js));

  // Fixed: the tests pass and the changes show; saved with a comment.
  const FIXED = fixed(`${js ? 'js' : 'nojs'} ${Date.now()}`);
  await editor.fill(FIXED);
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  if (!js) await onPortalPage(s, '/t/globex/policy');
  await visible(page.getByText('Tests: all 2 pass'));
  await visible(page.getByText(/Changes against the live policy \(\d+ lines\)/));
  await page.getByLabel('What changed (for the history)').fill(`e2e ${js ? 'js' : 'nojs'}`);
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await onPortalPage(s, '/t/globex/policy');
  await visible(page.getByText(/^Saved\./));
  await eventually(async () => {
    assert.equal(await page.getByRole('link', { name: /^Revision \d+$/ }).count(), before + 1);
  });
  await visible(page.getByText(`e2e ${js ? 'js' : 'nojs'}`));
  assert.equal(await page.getByLabel('Policy (HuJSON)').inputValue(), FIXED);
  await screenshot(page, shotName('policy', js));

  // Preview: what gina can reach, by rule line.
  await page.getByLabel('What can this reach?').fill('gina@globex.example');
  await page.getByRole('button', { name: 'Preview' }).click();
  await onPortalPage(s, '/t/globex/policy');
  await visible(page.getByRole('list', { name: 'Reachable' }).getByText('tag:db:5432'));
  await visible(page.getByText('rule at line 6').first());

  // Restore the revision before: a new revision with the old text.
  const newest = before + 1;
  if (newest >= 2) {
    await open(s, `/t/globex/policy?view=${newest - 1}`);
    await page.getByRole('button', { name: `Restore revision ${newest - 1}` }).click();
    await onPortalPage(s, '/t/globex/policy');
    await visible(page.getByText(/^Restored as a new revision/));
    await eventually(async () => {
      assert.equal(await page.getByRole('link', { name: /^Revision \d+$/ }).count(), newest + 1);
    });
    await visible(page.getByText(`Restore revision ${newest - 1}`).first());
  }
});

scenario('a member reads the policy and cannot save it', async (s) => {
  const { page } = s;
  await login(s, 'bob', { next: '/t/acme/policy' });
  await onPortalPage(s, '/t/acme/policy');
  await visible(page.getByRole('heading', { name: 'Access controls', level: 1 }));
  await visible(page.getByText(/owners, admins and network admins change it/));
  assert.equal(await page.getByRole('button', { name: 'Save', exact: true }).count(), 0);
});
