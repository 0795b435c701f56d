// The whole journey of one person, end to end, without curl: from an empty
// vault to deleting everything and restoring the backup.
//
// Same set-up as the other browser tests (helpers.mjs): Debian's headless
// Chromium through playwright-core (which never downloads a browser) against
// a real vrm-vault server on a fresh temporary data directory. Build the
// server first (`cargo build`), or point VRM_VAULT_BIN at a binary.
//
//   cd tests/browser && npm ci && node --test
//
// In the browser the person sets up a vault, adds their email address,
// publishes terms from the PDC-INTENT template and invites a brand. The
// brand's side is played by this script over HTTP, as the brand's own
// software would: it registers at the registration address the page showed
// with the invitation token, accepts the terms, gets a token and subscribes
// to food wishes. The person makes a wish; the brand polls for it and
// answers with an offer, which appears on the open page; the person accepts
// it and shares the email address it asked for. The brand reads it with the
// grant's token; the person sees that read in Activity (and filters it), and
// revokes the grant. Then Settings: an export (readable JSON holding the
// address), a new recovery key, and a backup; "Delete everything" shows its
// receipt, which is downloaded too, and the app ends on the setup screen.
// Finally the backup is restored from the setup screen with the new recovery
// key (the first one no longer opens it), and the address is back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ACTION_MS,
  DATA_ACCESS,
  acceptTerms,
  brandApi,
  expectScreen,
  expectText,
  fetchJson,
  freshDataDir,
  newContext,
  openFromNav,
  registerBrand,
  setUpBrowserTests,
  startServer,
  stopServer,
  tokenRequest,
  watchPage,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'journey' });

const PASSPHRASE = 'harbour violet engine forty';
const NEW_PASSPHRASE = 'pebble satellite morning ninety';
const BRAND_NAME = 'Green Kitchen';
const EMAIL = 'grace@example.org';
const WISH = 'Vegetarian lunch for one';

// --- The brand's side ------------------------------------------------------------

/** Poll GET /brand/v1/intents until an event matches. */
async function pollFor(baseUrl, token, what, matches) {
  const deadline = Date.now() + ACTION_MS;
  let cursor = 0;
  const seen = [];
  for (;;) {
    const page = await brandApi(baseUrl, token, 'GET', `/brand/v1/intents?cursor=${cursor}`);
    assert.equal(page.status, 200, `GET /brand/v1/intents answers 200 (got ${page.status}: ${JSON.stringify(page.data)})`);
    seen.push(...page.data.events);
    cursor = page.data.next_cursor;
    const found = seen.find(matches);
    if (found) return found;
    if (Date.now() > deadline) assert.fail(`the brand's poll never showed ${what}`);
    await sleep(200);
  }
}

/** The contents of a download the page started by clicking `button`. */
async function download(page, button) {
  const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
  const where = await file.path();
  return { name: file.suggestedFilename(), path: where, bytes: await readFile(where) };
}

// --- The test ---------------------------------------------------------------------

test('journey: set up, share, offer, read, revoke, export, back up, delete everything, restore', { timeout: 300_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 1280, height: 900 }, { acceptDownloads: true });
  const page = await context.newPage();
  const watch = watchPage(page);
  let invitation;
  let client;
  let brandToken;
  let wishId;
  let wishSeen; // the id the brand knows the wish by (its own, not the vault's)
  let offerId;
  let grantId;
  let backup;
  let firstKey; // the recovery key shown at setup
  let newKey; // the one made in Settings

  try {
    await step(t, page, 'set up a vault', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByLabel('Repeat the passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Create my vault' }).click();
      await expectScreen(page, 'Save your recovery key');
      firstKey = (await page.locator('#recovery-key').innerText()).trim();
      await page.getByLabel('I have saved my recovery key').check();
      await page.getByRole('button', { name: 'Continue' }).click();
      await expectScreen(page, 'My data');
    }, 40_000);

    await step(t, page, 'add an email address on My data', async () => {
      const contact = page.locator('form[data-section="contact"]');
      await contact.getByLabel('Email address', { exact: true }).fill(EMAIL);
      await contact.getByRole('button', { name: 'Save contact' }).click();
      await expectText(contact.locator('.profile-status'), 'Saved your contact details.');
    });

    await step(t, page, 'publish terms from the PDC-INTENT template', async () => {
      await openFromNav(page, 'My terms', 'My terms');
      // Two taps: publish the template as it is, and confirm.
      const card = page.locator('.guided-template[data-template="pdc-intent"]');
      await card.getByRole('button', { name: 'Publish as it is…' }).click();
      const confirm = card.locator('.confirm', { hasText: 'Publish these terms as version 2?' });
      await confirm.getByRole('button', { name: 'Publish version 2' }).click();
      await expectText(page.locator('.guided-outcome .message-success'), 'Published version 2');
      await expectText(page.locator('.terms-current'), 'Intentcasting');
    });

    await step(t, page, 'invite a brand: the page shows the token and the registration address', async () => {
      await openFromNav(page, 'Brands', 'Brands');
      await page.getByLabel('Note (optional)', { exact: true }).fill(BRAND_NAME);
      await page.getByRole('button', { name: 'Create invitation' }).click();
      await page.locator('.token-box').waitFor();
      invitation = {
        token: (await page.locator('#invitation-token').innerText()).trim(),
        endpoint: (await page.locator('#registration-endpoint').innerText()).trim(),
      };
      assert.equal(invitation.endpoint, `${server.url}/oauth/register`);
      // The test vault listens on 127.0.0.1: the page says a brand elsewhere
      // could not reach that address, and how to fix it.
      const warning = page.locator('.token-box .unreachable-loopback');
      await expectText(warning, 'a brand elsewhere cannot reach it');
      await expectText(warning, '--public-url');
      await page.getByRole('button', { name: 'Done, I have copied it' }).click();
    });

    await step(t, page, 'the brand registers at that address, accepts the terms, subscribes to food wishes', async () => {
      const registered = await registerBrand(server.url, invitation.token, {
        client_name: BRAND_NAME,
        grant_types: ['client_credentials'],
        scope: 'intents:read offers:write agreements:read',
      });
      assert.equal(registered.status, 201, `POST /oauth/register answers 201 (got ${registered.status}: ${JSON.stringify(registered.data)})`);
      client = registered.data;
      const terms = await acceptTerms(server.url, client);
      assert.equal(terms.version, 2, 'it accepted the version just published');
      const token = await tokenRequest(server.url, client, { grant_type: 'client_credentials' });
      assert.equal(token.status, 200, `a client-credentials token (got ${token.status}: ${JSON.stringify(token.data)})`);
      brandToken = token.data.access_token;
      const subscribed = await brandApi(server.url, brandToken, 'PUT', '/brand/v1/subscription', { categories: ['food'], delivery: ['poll'] });
      assert.equal(subscribed.status, 200, `PUT /brand/v1/subscription answers 200 (got ${subscribed.status}: ${JSON.stringify(subscribed.data)})`);
      await page.reload();
      await expectScreen(page, 'Brands');
      await expectText(page.locator('li.brand-card', { hasText: BRAND_NAME }).locator('.agreement-line'), 'Accepted your current terms (version 2)');
    });

    await step(t, page, 'make a wish; the brand hears it', async () => {
      await openFromNav(page, 'Wishes', 'Wishes');
      await page.getByLabel('What kind of thing', { exact: true }).selectOption('food.lunch');
      await page.getByLabel('What you are looking for', { exact: true }).fill(WISH);
      await page.getByRole('button', { name: 'Send my wish', exact: true }).click();
      await expectText(page.locator('.notice-slot .message-success'), 'Your wish was sent to 1 brand.');
      const card = page.locator('li.intent').filter({ hasText: WISH }).first();
      wishId = await card.getAttribute('data-id');
      const heard = await pollFor(server.url, brandToken, 'the wish', (e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === WISH);
      wishSeen = heard.subject;
      assert.equal(heard.data.intent.id, wishSeen);
      assert.notEqual(wishSeen, wishId, 'the brand knows the wish by its own id, not the vault\'s');
    });

    await step(t, page, 'the brand\'s offer appears without a reload; accept it and share the email address', async () => {
      const card = page.locator(`li.intent[data-id="${wishId}"]`);
      await card.locator('[data-action="offers"]').click();
      await expectText(card.locator('.offers-empty'), 'No offers yet.');
      await page.evaluate(() => { window.__sameDocument = true; });
      const sent = await brandApi(server.url, brandToken, 'POST', `/brand/v1/intents/${wishSeen}/offers`, {
        name: 'Soup and bread',
        price: { amount: '9.50', currency: 'EUR' },
        valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(),
        data_requested: ['contact.email'],
      });
      assert.equal(sent.status, 201, `the offer is made (got ${sent.status}: ${JSON.stringify(sent.data)})`);
      offerId = sent.data.id;
      const offer = card.locator(`li.offer[data-id="${offerId}"]`);
      await offer.waitFor();
      assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
      await shot(page, 'desktop-01-live-offer');
      // What the terms allow is ticked once the vault has answered; accepting shares it.
      await offer.locator('input[name="share_field"]:checked').first().waitFor();
      await offer.getByRole('button', { name: /^Accept/ }).click();
      await expectText(card.locator('.notice-slot .message-success'), `Accepted “Soup and bread”. ${BRAND_NAME} has been told`);
      const seen = await brandApi(server.url, brandToken, 'GET', `/brand/v1/offers/${offerId}`);
      assert.equal(seen.data.status, 'accepted');
      grantId = seen.data.grant_id;
      assert.ok(grantId, 'the acceptance carries a grant');
    });

    await step(t, page, 'the brand reads the address with the grant; Activity shows the read', async () => {
      const token = await tokenRequest(server.url, client, {
        grant_type: 'client_credentials',
        authorization_details: JSON.stringify([{ type: DATA_ACCESS, grant_id: grantId }]),
      });
      assert.equal(token.status, 200, `a token for the grant (got ${token.status}: ${JSON.stringify(token.data)})`);
      const read = await brandApi(server.url, token.data.access_token, 'GET', '/brand/v1/data');
      assert.equal(read.status, 200, `GET /brand/v1/data answers 200 (got ${read.status}: ${JSON.stringify(read.data)})`);
      assert.deepEqual(read.data.fields, { 'contact.email': EMAIL });
      brandToken = token.data.access_token;

      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('.verify .message-success'), 'Your activity log is intact');
      // The read is a sentence naming the brand and the data, not a code.
      await expectText(page.locator('.entry-what'), /read your email address/);
      // The filter narrows the list to brands' reads, in the vault, over the whole log.
      await page.getByLabel('What', { exact: true }).selectOption('reads');
      await expectText(page.locator('.filter-status'), /^Showing \d+ entr(y|ies) that match\.$/);
      assert.equal(await page.locator('li.entry', { hasText: 'Made a wish' }).count(), 0, 'the person\'s own entries are left out');
      await expectText(page.locator('li.entry .entry-what'), /read your email address/);
      await page.getByLabel('Containing the words', { exact: true }).fill('read email');
      await expectText(page.locator('li.entry .entry-what'), /read your email address/);
      await shot(page, 'desktop-02-activity-filtered');
    });

    await step(t, page, 'revoke the grant on Sharing: the brand\'s next read is refused', async () => {
      await openFromNav(page, 'Sharing', 'Sharing');
      const card = page.locator(`.grants-active li.grant[data-id="${grantId}"]`);
      await card.getByRole('button', { name: `Revoke ${BRAND_NAME}’s access to Email address` }).click();
      await card.locator('.confirm').getByRole('button', { name: 'Yes, revoke' }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Revoked. ${BRAND_NAME} can no longer get Email address.`);
      const again = await brandApi(server.url, brandToken, 'GET', '/brand/v1/data');
      assert.equal(again.status, 401, `the read after revocation is refused (got ${again.status})`);
    });

    await step(t, page, 'Settings: export all my data is readable JSON with the address in it', async () => {
      await openFromNav(page, 'Settings', 'Settings');
      await expectText(page.locator('#unlock-key-heading + div'), 'Unlock key file: none.');
      const file = await download(page, page.getByRole('button', { name: 'Export all my data' }));
      assert.match(file.name, /^vrm-vault-export-\d{4}-\d{2}-\d{2}\.json$/);
      const doc = JSON.parse(file.bytes.toString('utf8'));
      assert.equal(doc.format, 'vrm-vault-export');
      const record = doc.records.find((r) => r.path === 'contact.email');
      assert.ok(record, 'the export holds the record');
      assert.equal(record.value, EMAIL);
      assert.ok(doc.agreements.some((a) => typeof a.receipt === 'string' && a.receipt.length > 0), 'and the agreement with its receipt');
      await expectText(page.locator('.download-block .message-success'), /Done: vrm-vault-export-.*\.json/);
    });

    await step(t, page, 'Settings: a new recovery key, after the passphrase, shown once', async () => {
      watch.allowHttpError(401, '/api/v1/recovery-key');
      await page.getByRole('button', { name: 'Make a new recovery key…' }).click();
      await expectText(page.locator('.confirm-question'), 'Your current recovery key will stop working at once.');
      await page.getByLabel('Your passphrase', { exact: true }).fill('not my passphrase');
      await page.getByRole('button', { name: 'Make a new recovery key', exact: true }).click();
      await expectText(page.locator('.field-error'), 'That is not your passphrase. Your recovery key was not changed.');
      await page.getByLabel('Your passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Make a new recovery key', exact: true }).click();
      await expectText(page.locator('.new-key .message-warning'), 'Your old recovery key no longer works.');
      newKey = (await page.locator('#recovery-key').innerText()).trim();
      assert.match(newKey, /^vrmrk-/);
      assert.notEqual(newKey, firstKey, 'a different key');
      const done = page.getByRole('button', { name: 'Done', exact: true });
      assert.equal(await done.isDisabled(), true, 'Done waits for "I saved it"');
      await page.getByLabel('I saved it', { exact: true }).check();
      await done.click();
      assert.equal(await page.locator('#recovery-key').count(), 0, 'the key is not shown any more');
    });

    await step(t, page, 'Settings: download a backup', async () => {
      backup = await download(page, page.getByRole('button', { name: 'Download a backup' }));
      assert.match(backup.name, /^vrm-vault-\d{4}-\d{2}-\d{2}\.vrmbackup$/);
      assert.equal(backup.bytes.subarray(0, 17).toString('latin1'), 'vrm-vault backup\n', 'a backup file, by its magic');
      await expectText(page.locator('.download-block .message-success'), /Done: vrm-vault-.*\.vrmbackup/);
      await shot(page, 'desktop-03-settings-downloads');
    });

    await step(t, page, 'delete everything: explained, confirmed, receipt downloaded, back to setup', async () => {
      await page.getByRole('link', { name: 'Delete everything…' }).click();
      await expectScreen(page, 'Delete everything');
      await expectText(page.locator('ol.steps'), 'Nothing of your vault can be read back from the disk');
      // A wrong phrase is caught before anything is sent.
      await page.getByLabel('Type “delete everything” to confirm', { exact: true }).fill('delete');
      await page.getByLabel('Your passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Delete everything now' }).click();
      await expectText(page.locator('.field-error'), 'Type “delete everything”, exactly as shown.');
      await page.getByLabel('Type “delete everything” to confirm', { exact: true }).fill('delete everything');
      await page.getByRole('button', { name: 'Delete everything now' }).click();
      await expectScreen(page, 'Your vault has been deleted');
      assert.equal(await page.locator('#nav').isVisible(), false, 'no navigation: there is nothing left to go to');
      const told = page.locator('li.card', { hasText: BRAND_NAME });
      await expectText(told.locator('.tag'), 'Not reached');
      await expectText(told, 'no webhook');
      await shot(page, 'desktop-04-receipt');

      const file = await download(page, page.getByRole('button', { name: 'Download the receipt' }));
      assert.match(file.name, /^vrm-vault-erasure-receipt-\d{4}-\d{2}-\d{2}\.json$/);
      const receipt = JSON.parse(file.bytes.toString('utf8'));
      assert.equal(receipt.receipt.type, 'vrm-vault/erasure-receipt');
      assert.equal(receipt.receipt.deleted.records, 1);
      assert.equal(receipt.receipt.brands[0].client_name, BRAND_NAME);
      assert.ok(receipt.signature && receipt.jwk, 'with the signature and the key to check it');

      const status = await fetchJson(`${server.url}/api/v1/status`);
      assert.equal(status.data.state, 'setup', 'the vault is in setup mode');
      const dead = await brandApi(server.url, brandToken, 'GET', '/brand/v1/data');
      // A vault that holds no clients answers as one that does not know the brand: nothing to
      // retry.
      assert.equal(dead.status, 401, `the brand gets nothing (got ${dead.status})`);
      assert.equal(dead.data.error, 'invalid_token');

      await page.getByRole('button', { name: 'Set up a new vault' }).click();
      await expectScreen(page, 'Set up your vault');
    }, 30_000);

    await step(t, page, 'restore the backup from the setup screen: the address is back', async () => {
      await page.getByRole('link', { name: 'Restore from a backup' }).click();
      await expectScreen(page, 'Restore from a backup');
      await page.getByLabel('Backup file', { exact: true }).setInputFiles(backup.path);
      // A wrong passphrase, and the recovery key replaced in Settings, are
      // explained at their field; nothing is restored.
      watch.allowHttpError(401, '/api/v1/restore');
      await page.getByLabel('Passphrase of the backup', { exact: true }).fill('not the passphrase at all');
      await page.getByRole('button', { name: 'Restore my vault' }).click();
      await expectText(page.locator('.field-error'), 'That passphrase does not open this backup.');
      await page.getByLabel('With the recovery key, and choose a new passphrase').check();
      await page.getByLabel('Recovery key', { exact: true }).fill(firstKey);
      await page.getByLabel('New passphrase', { exact: true }).fill(NEW_PASSPHRASE);
      await page.getByLabel('Repeat the new passphrase', { exact: true }).fill(NEW_PASSPHRASE);
      await page.getByRole('button', { name: 'Restore my vault' }).click();
      await expectText(page.locator('.field-error'), 'That recovery key does not open this backup.');
      // The key made in Settings opens it, with a new passphrase.
      await page.getByLabel('Recovery key', { exact: true }).fill(newKey);
      await shot(page, 'desktop-05-restore');
      await page.getByRole('button', { name: 'Restore my vault' }).click();
      await expectScreen(page, 'My data');
      await expectText(page.locator('#flash .message-success'), 'Your vault was restored from the backup');
      const email = page.locator('form[data-section="contact"]').getByLabel('Email address', { exact: true });
      await email.waitFor();
      assert.equal(await email.inputValue(), EMAIL, 'the restored vault holds the email address');
      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('li.entry'), 'Restored the vault from a backup');
      await expectText(page.locator('.verify .message-success'), 'Your activity log is intact');
      const login = await fetchJson(`${server.url}/api/v1/session`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ passphrase: NEW_PASSPHRASE }),
      });
      assert.equal(login.status, 201, 'the new passphrase opens the restored vault');
    }, 30_000);

    watch.assertClean('during the journey');
    assert.deepEqual(violations, [], 'no Content Security Policy violations');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
