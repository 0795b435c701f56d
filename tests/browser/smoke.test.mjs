// Browser smoke test of the vrm-vault web app.
//
// Drives Debian's headless Chromium (through playwright-core, which never
// downloads a browser) against a real vrm-vault server started on a fresh
// temporary data directory. It builds nothing: build the server first
// (`cargo build`), or point VRM_VAULT_BIN at a binary.
//
//   cd tests/browser && npm ci && node --test
//
// Screenshots of every screen go to artifacts/screenshots/ at the top of the
// repository (git-ignored), with no prefix. The set-up is shared with the
// other browser tests (helpers.mjs): any console error that is not an HTTP
// error the test provoked on purpose, any uncaught page error and any Content
// Security Policy violation fails the test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoHorizontalOverflow,
  expectScreen,
  expectText,
  freshDataDir,
  newContext,
  setUpBrowserTests,
  startServer,
  stopServer,
  watchPage,
} from './helpers.mjs';

// The smoke test's screenshots came first and carry no prefix; its clean-up
// of old failure screenshots removes every FAILED-* file.
const { step, shot } = setUpBrowserTests({ screenshotPrefix: '' });

const PASSPHRASE = 'plum orbit lantern seventy';
const WRONG_PASSPHRASE = 'plum orbit lantern seventy-one';
const NEW_PASSPHRASE = 'quiet harbour moss ninety';

// --- Small helpers -----------------------------------------------------------

function recordItem(page, recordPath) {
  return page.locator(`li.record[data-path="${recordPath}"]`);
}

/** The email address box of the profile's Contact section. */
function emailBox(page) {
  return page.locator('form[data-section="contact"]').getByLabel('Email address', { exact: true });
}

/** Wait until an input shows `value` (the profile fills in after loading). */
async function expectInputValue(locator, value) {
  await locator.waitFor();
  const deadline = Date.now() + 10_000;
  while ((await locator.inputValue()) !== value) {
    assert.ok(Date.now() < deadline, `the box shows ${JSON.stringify(value)} (it shows ${JSON.stringify(await locator.inputValue())})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Fill the setup form and create the vault; returns the recovery key. */
async function createVault(page) {
  await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
  await page.getByLabel('Repeat the passphrase', { exact: true }).fill(PASSPHRASE);
  await page.getByRole('button', { name: 'Create my vault' }).click();
  await expectScreen(page, 'Save your recovery key');
  const key = (await page.locator('#recovery-key').innerText()).trim();
  assert.match(key, /^vrmrk-[A-Z0-9-]+$/, 'a recovery key is shown');
  return key;
}

async function confirmRecoveryKey(page) {
  const continueButton = page.getByRole('button', { name: 'Continue' });
  assert.equal(await continueButton.isDisabled(), true, 'Continue is disabled until the key is saved');
  await page.getByLabel('I have saved my recovery key').check();
  assert.equal(await continueButton.isEnabled(), true, 'Continue is enabled once the box is ticked');
  await continueButton.click();
  await expectScreen(page, 'My data');
}

/** Add something that fits no profile section, by its name. */
async function addSomethingElse(page, { label, value, category }) {
  await page.locator('.toolbar').getByRole('button', { name: 'Add something else' }).click();
  await page.getByRole('heading', { level: 3, name: 'Add something else' }).waitFor();
  await page.getByLabel('What is it?', { exact: true }).fill(label);
  await page.getByLabel('Value', { exact: true }).fill(value);
  await page.getByLabel('Kind of data').selectOption(category);
}

// --- The tests ----------------------------------------------------------------

test('desktop: set up, add, reload, edit, activity, change passphrase, log out, restart, unlock', { timeout: 90_000 }, async (t) => {
  const dataDir = freshDataDir();
  let server = await startServer(dataDir);
  const { context, violations } = await newContext({ width: 1280, height: 800 });
  const page = await context.newPage();
  const watch = watchPage(page);
  let recoveryKey;

  try {
    await step(t, page, 'first run shows the setup screen', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await shot(page, 'desktop-01-setup');
    });

    await step(t, page, 'setup form explains mistakes before sending', async () => {
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByLabel('Repeat the passphrase', { exact: true }).fill(`${PASSPHRASE}x`);
      await page.getByRole('button', { name: 'Create my vault' }).click();
      await expectText(page.locator('.field-error'), 'The two passphrases are not the same');
      await shot(page, 'desktop-02-setup-mismatch');
    });

    await step(t, page, 'create the vault and see the recovery key', async () => {
      recoveryKey = await createVault(page);
      await shot(page, 'desktop-03-recovery-key');
    });

    await step(t, page, 'tick "I have saved" and continue to an empty vault', async () => {
      await confirmRecoveryKey(page);
      await expectText(page.locator('.message-success'), 'Your vault is ready.');
      await expectText(page.locator('.empty-others'), 'Nothing else yet.');
      assert.equal(await emailBox(page).inputValue(), '', 'the profile starts empty');
      assert.equal(await page.locator('#nav').isVisible(), true, 'the main navigation is shown once logged in');
      await shot(page, 'desktop-04-records-empty');
    });

    await step(t, page, 'saving empty text asks first', async () => {
      await page.locator('.toolbar').getByRole('button', { name: 'Add something else' }).click();
      await page.getByRole('heading', { level: 3, name: 'Add something else' }).waitFor();
      // The next action clears the old message; "nothing else yet" makes no
      // sense under an open Add form.
      assert.equal(await page.locator('#flash .message').count(), 0, '"Your vault is ready." is gone after the next action');
      assert.equal(await page.locator('.empty-others').isVisible(), false, '"Nothing else yet" is hidden while the editor is open');
      await page.getByLabel('What is it?', { exact: true }).fill('Reminder');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expectText(page.locator('.editor .confirm'), 'Save an empty value?');
      await shot(page, 'desktop-05a-empty-value-question');
      await page.getByRole('button', { name: 'Go back' }).click();
      assert.equal(await page.locator('.editor .confirm').count(), 0, 'going back removes the question');
      await page.getByRole('button', { name: 'Cancel', exact: true }).click();
      assert.equal(await page.locator('.editor').count(), 0, 'Cancel closes the editor');
      assert.equal(await page.locator('.empty-others').isVisible(), true, '"Nothing else yet" is back once the editor is closed');
    });

    await step(t, page, 'add an email address in the profile', async () => {
      await emailBox(page).fill('ana@example.org');
      await shot(page, 'desktop-05-add-record');
      await page.getByRole('button', { name: 'Save contact' }).click();
      await expectText(page.locator('form[data-section="contact"] .profile-status'), 'Saved your contact details.');
    });

    await step(t, page, 'the email address is shown in the Contact section, its path nowhere', async () => {
      await expectInputValue(emailBox(page), 'ana@example.org');
      assert.equal((await page.locator('.profile-section', { has: page.locator('form[data-section="contact"]') }).locator('h2').innerText()).trim(), 'Contact');
      assert.doesNotMatch(await page.locator('#screen').innerText(), /contact\.email/, 'the path is never shown');
      await shot(page, 'desktop-06-record-listed');
    });

    await step(t, page, 'after a reload the session cookie keeps us logged in', async () => {
      await page.reload();
      await expectScreen(page, 'My data');
      await expectInputValue(emailBox(page), 'ana@example.org');
      await shot(page, 'desktop-07-after-reload');
    });

    await step(t, page, 'edit the record and save', async () => {
      assert.equal(await emailBox(page).inputValue(), 'ana@example.org');
      await emailBox(page).fill('ana.silva@example.org');
      await shot(page, 'desktop-08-edit-record');
      await page.getByRole('button', { name: 'Save contact' }).click();
      await expectText(page.locator('form[data-section="contact"] .profile-status'), 'Saved your contact details.');
      await page.reload();
      await expectInputValue(emailBox(page), 'ana.silva@example.org');
      await shot(page, 'desktop-09-record-edited');
    });

    await step(t, page, 'Activity shows the log, verified', async () => {
      await page.locator('#nav').getByRole('link', { name: 'Activity' }).click();
      await expectScreen(page, 'Activity');
      await expectText(page.locator('.verify .message-success'), /Your activity log is intact \(\d+ entr(y|ies), verified\)/);
      // Adding and changing are told apart.
      await expectText(page.locator('.entry-what'), /^You added your email address\.$/);
      await expectText(page.locator('.entry-what'), /^You changed your email address\.$/);
      await expectText(page.locator('.entry-what'), 'Created the vault');
      await shot(page, 'desktop-10-activity');
    });

    await step(t, page, 'Settings: a wrong current passphrase is refused', async () => {
      await page.locator('#nav').getByRole('link', { name: 'Settings' }).click();
      await expectScreen(page, 'Settings');
      watch.allowHttpError(401, '/api/v1/passphrase');
      await page.getByLabel('Current passphrase', { exact: true }).fill(WRONG_PASSPHRASE);
      await page.getByLabel('New passphrase', { exact: true }).fill(NEW_PASSPHRASE);
      await page.getByLabel('Repeat the new passphrase', { exact: true }).fill(NEW_PASSPHRASE);
      await page.getByRole('button', { name: 'Change passphrase' }).click();
      await expectText(page.locator('.field-error'), 'That is not your current passphrase.');
      await expectScreen(page, 'Settings');
      await shot(page, 'desktop-11-settings-wrong-current');
    });

    await step(t, page, 'Settings: change the passphrase', async () => {
      await page.getByLabel('Current passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Change passphrase' }).click();
      await expectText(page.locator('#flash .message-success'), 'Your passphrase has been changed.');
      assert.equal(await page.getByLabel('Current passphrase', { exact: true }).inputValue(), '', 'the passphrase fields are emptied');
      await shot(page, 'desktop-12-settings-changed');
    });

    await step(t, page, 'log out and log in with the new passphrase', async () => {
      await page.getByRole('button', { name: 'Log out' }).click();
      await expectScreen(page, 'Log in');
      await expectText(page.locator('#flash .message'), 'You are logged out.');
      await page.getByLabel('Passphrase', { exact: true }).fill(NEW_PASSPHRASE);
      await page.getByRole('button', { name: 'Log in' }).click();
      await expectScreen(page, 'My data');
      await expectInputValue(emailBox(page), 'ana.silva@example.org');
    });

    await step(t, page, 'Log out leaves the vault', async () => {
      await page.getByRole('button', { name: 'Log out' }).click();
      await expectScreen(page, 'Log in');
      await expectText(page.locator('#flash .message'), 'You are logged out.');
      assert.equal(await page.locator('#nav').isVisible(), false, 'navigation is hidden after logging out');
      assert.equal(await page.locator('#logout').isVisible(), false, 'the log out button is hidden after logging out');
      await shot(page, 'desktop-13-after-logout');
    });

    await step(t, page, 'stop the server with SIGTERM and start it again', async () => {
      const exit = await stopServer(server);
      assert.equal(exit.code, 0, `vrm-vault exits cleanly on SIGTERM (code ${exit.code}, signal ${exit.signal})`);
      server = await startServer(dataDir);
    }, 30_000);

    await step(t, page, 'the restarted vault shows the unlock screen', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Unlock your vault');
      assert.equal(await page.locator('#nav').isVisible(), false);
      await shot(page, 'desktop-14-unlock');
    });

    await step(t, page, 'the old passphrase no longer opens the vault', async () => {
      watch.allowHttpError(401, '/api/v1/session');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Unlock' }).click();
      await expectText(page.locator('#screen .message-error'), 'That passphrase did not open the vault.');
      await expectScreen(page, 'Unlock your vault');
      await shot(page, 'desktop-15-unlock-wrong-passphrase');
    });

    await step(t, page, 'the new passphrase opens the vault with the record in it', async () => {
      await page.getByLabel('Passphrase', { exact: true }).fill(NEW_PASSPHRASE);
      await page.getByRole('button', { name: 'Unlock' }).click();
      await expectScreen(page, 'My data');
      await expectText(page.locator('#flash .message-success'), 'Vault unlocked.');
      await expectInputValue(emailBox(page), 'ana.silva@example.org');
      await shot(page, 'desktop-16-unlocked-records');
    });

    assert.match(recoveryKey, /^vrmrk-/);
    watch.assertClean('on the desktop pass');
    assert.deepEqual(violations, [], 'no Content Security Policy violations on the desktop pass');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});

test('360 px wide: setup and records fit the screen', { timeout: 45_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 360, height: 740 });
  const page = await context.newPage();
  const watch = watchPage(page);

  try {
    await step(t, page, '360: setup screen', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await page.getByLabel('Passphrase', { exact: true }).fill('short');
      await page.getByRole('button', { name: 'Create my vault' }).click();
      await expectText(page.locator('.field-error'), 'at least');
      await assertNoHorizontalOverflow(page, 'the setup screen');
      await shot(page, 'mobile360-01-setup');
    });

    await step(t, page, '360: recovery key', async () => {
      await createVault(page);
      await assertNoHorizontalOverflow(page, 'the recovery key screen');
      await shot(page, 'mobile360-02-recovery-key');
      await confirmRecoveryKey(page);
      await assertNoHorizontalOverflow(page, 'the empty records screen');
      await shot(page, 'mobile360-03-records-empty');
    });

    await step(t, page, '360: add data form', async () => {
      await emailBox(page).fill('ana@example.org');
      await addSomethingElse(page, { label: 'Home city', value: 'Lisboa', category: 'pd:PhysicalAddress' });
      await assertNoHorizontalOverflow(page, 'the add data form');
      await shot(page, 'mobile360-04-add-record');
    });

    await step(t, page, '360: records list', async () => {
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expectText(page.locator('.notice-slot'), 'Saved Home city.');
      await page.getByRole('button', { name: 'Save contact' }).click();
      await expectText(page.locator('form[data-section="contact"] .profile-status'), 'Saved your contact details.');
      // Something added by name is titled by that name, with its kind in words.
      const city = recordItem(page, 'other.home_city');
      assert.equal((await city.locator('.record-title').innerText()).trim(), 'Home city');
      assert.equal((await city.locator('.tag').innerText()).trim(), 'Postal address');
      await assertNoHorizontalOverflow(page, 'the records list');
      await shot(page, 'mobile360-05-record-listed');
    });

    await step(t, page, '360: activity', async () => {
      await page.locator('#nav').getByRole('link', { name: 'Activity' }).click();
      await expectScreen(page, 'Activity');
      await expectText(page.locator('.verify .message-success'), 'Your activity log is intact');
      await page.locator('.entry-details summary').first().click();
      await assertNoHorizontalOverflow(page, 'the activity screen');
      await shot(page, 'mobile360-06-activity');
    });

    await step(t, page, '360: settings', async () => {
      await page.locator('#nav').getByRole('link', { name: 'Settings' }).click();
      await expectScreen(page, 'Settings');
      await page.getByLabel('New passphrase', { exact: true }).fill('short one');
      await expectText(page.locator('.strength-text'), 'Too short');
      // The rule stays visible while typing.
      await expectText(page.locator('.hint'), 'At least 12 characters');
      await assertNoHorizontalOverflow(page, 'the settings screen');
      await shot(page, 'mobile360-07-settings');
    });

    watch.assertClean('on the 360 px pass');
    assert.deepEqual(violations, [], 'no Content Security Policy violations on the 360 px pass');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});

test('the CSP violation detector itself works', { timeout: 20_000 }, async (t) => {
  // Guards against the checks above passing because the detector is broken:
  // an inline script must be refused by the server's CSP and be seen.
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 800, height: 600 });
  const page = await context.newPage();
  const watch = watchPage(page);
  try {
    await step(t, page, 'an inline script is reported', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await page.evaluate(() => {
        const script = document.createElement('script');
        script.textContent = 'window.__inlineRan = true;';
        document.body.append(script);
      });
      const deadline = Date.now() + 5000;
      while (violations.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await page.evaluate(() => window.__inlineRan === true), false, 'the inline script did not run');
      assert.ok(violations.length >= 1, 'the securitypolicyviolation event was reported');
      assert.ok(watch.problems.some((p) => p.startsWith('CSP')), 'the console CSP message was seen');
    }, 15_000);
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
