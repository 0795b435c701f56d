// Settings → "Space on your server": the person sees how much room the vault
// takes and what in it grows, and chooses how long the activity log is kept.
//
//   cd tests/browser && VRM_VAULT_BIN=... node --test disk_use.test.mjs
//
// Screenshots at 390 px and 1280 px go to artifacts/screenshots/disk-*.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assertNoHorizontalOverflow,
  checkAccessibility,
  expectScreen,
  expectText,
  freshDataDir,
  newContext,
  openFromNav,
  ownerApi,
  ownerLogin,
  setUpBrowserTests,
  setUpVault,
  startServer,
  stopServer,
  watchPage,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'disk' });

const PASSPHRASE = 'copper meadow violin forty';
const SCREENSHOTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'artifacts', 'screenshots');

test('settings shows the space the vault takes and sets the activity log retention', async (t) => {
  const server = await startServer(freshDataDir());
  try {
    for (const [width, height] of [[390, 844], [1280, 900]]) {
      const { context, violations } = await newContext({ width, height });
      const page = await context.newPage();
      const watch = watchPage(page);
      // A new browser first asks whether it has a session: no, until it logs in.
      if (width !== 390) watch.allowHttpError(401, '/api/v1/session');
      await step(t, page, `open the app at ${width} px`, async () => {
        await page.goto(server.url);
        if (width === 390) {
          await setUpVault(page, PASSPHRASE);
        } else {
          await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
          await page.getByRole('button', { name: 'Log in' }).click();
          await expectScreen(page, 'My data');
        }
      });
      await step(t, page, `settings at ${width} px`, async () => {
        await openFromNav(page, 'Settings', 'Settings');
        const section = page.locator('section', { has: page.locator('#disk-heading') });
        await expectText(section, /Your vault takes \d/);
        const table = section.locator('table.disk-use');
        await expectText(table, /Activity log/);
        assert.match(await table.innerText(), /Activity log\s+\d+ entr/);
        await section.scrollIntoViewIfNeeded();
        await assertNoHorizontalOverflow(page, `settings at ${width} px`);
        await checkAccessibility(page, `settings at ${width} px`);
        await shot(page, `settings-${width}`);
        // The section alone, to look at without scrolling through the whole screen.
        await section.screenshot({ path: path.join(SCREENSHOTS, `disk-section-${width}.png`) });
      });
      if (width === 390) {
        await step(t, page, 'choose a shorter activity log', async () => {
          await page.getByLabel('Keep activity for').selectOption({ label: '90 days' });
          await page.getByLabel('And at most').selectOption('100000');
          await page.getByRole('button', { name: 'Save', exact: true }).click();
          await expectText(page.locator('.message-success'), /kept for 90 days, at most 100,000 entries/);
          const token = await ownerLogin(server.url, PASSPHRASE);
          const retention = await ownerApi(server.url, token, 'GET', '/api/v1/audit/retention');
          assert.deepEqual(retention.data, { days: 90, max_entries: 100000 });
          const section = page.locator('section', { has: page.locator('#disk-heading') });
          await section.screenshot({ path: path.join(SCREENSHOTS, 'disk-section-saved-390.png') });
        });
      }
      assert.deepEqual(watch.problems, [], 'no console errors or page errors');
      assert.deepEqual(violations, [], 'no CSP violations');
      await context.close();
    }
  } finally {
    await stopServer(server);
  }
});
