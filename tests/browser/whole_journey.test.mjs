// The whole journey of issue 16, played as the person would, on a 390 px
// phone: every step is something seen and tapped, found by its role or its
// label; nothing the person types is a path, JSON, a code or an id.
//
// The person sets up the vault (passphrase, recovery key), fills the profile
// (name, email address, phone number, address), makes terms by tapping
// choices in the guided editor and publishes them, and invites a brand. The
// brand's side is this script over HTTP, as the brand's own software would
// do it: it registers with the invitation, accepts the terms, subscribes to
// food wishes. The person makes a wish; the brand answers with an offer
// asking for the email address and the phone number; the person accepts
// sharing only the email address; the brand reads it; the person finds that
// read in Activity by typing the brand's name. The person locks the vault
// from the app (the screen forgets the data, the brand gets 503), unlocks it
// with the passphrase, downloads a backup, deletes everything, restores the
// backup, sees the brand paused after the restore, and resumes it.
//
// At every screen: a screenshot at 390 px and at 1280 px
// (artifacts/screenshots/whole-NN-screen-WIDTH.png), axe with no serious or
// critical violation, nothing wider than the phone, and no path, JSON or
// code in what the screen says.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ACTION_MS,
  DATA_ACCESS,
  acceptTerms,
  assertNoHorizontalOverflow,
  brandApi,
  checkAccessibility,
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

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'whole' });

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };
const PASSPHRASE = 'lantern orchard pebble sixty';
const BRAND_NAME = 'Padaria Aurora';
const NAME = 'Inês Duarte';
const EMAIL = 'ines.duarte@example.org';
const PHONE_NUMBER = '+351 913 222 444';
const WISH = 'Fresh bread delivered on Saturday';

/** What the person should never be shown: paths, codes, JSON. */
const TECHNICAL = /contact\.email|contact\.phone|profile\.name|addresses\.home|\b(dpv|pd|odrl|p7012):|\{"|client_id|Client ID|urn:|sha256|\/path\/to|--data-dir|\bintents?\b|the person\b/;

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

// --- Each screen, as the person sees it ---------------------------------------------

/**
 * The screen as it is now: checked by axe and for overflow at 390 px, its
 * words checked for anything technical, and photographed at 390 px and
 * 1280 px (then back to the phone).
 */
async function capture(page, nn, name, { technicalAllowed = false } = {}) {
  await page.setViewportSize(PHONE);
  await checkAccessibility(page, `${name} at 390 px`);
  await assertNoHorizontalOverflow(page, `${name} at 390 px`);
  if (!technicalAllowed) {
    const text = await page.locator('main, #screen').first().innerText();
    assert.doesNotMatch(text, TECHNICAL, `${name} shows nothing technical`);
  }
  await shot(page, `${nn}-${name}-390`);
  await page.setViewportSize(DESKTOP);
  await checkAccessibility(page, `${name} at 1280 px`);
  await shot(page, `${nn}-${name}-1280`);
  await page.setViewportSize(PHONE);
}

/** The contents of a download the page started by tapping `button`. */
async function download(page, button) {
  const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
  return { name: file.suggestedFilename(), path: await file.path() };
}

// --- The test ---------------------------------------------------------------------

test('the whole journey on a phone: set up, profile, terms, brand, wish, offer, share one field, Activity, lock, backup, restore', { timeout: 540_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext(PHONE, { acceptDownloads: true });
  const page = await context.newPage();
  const watch = watchPage(page);
  let invitationToken;
  let client;
  let brandToken;
  let wishSeen;
  let offerId;
  let grantId;
  let backup;

  try {
    await step(t, page, 'set up the vault: a passphrase, then the recovery key', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await capture(page, '01', 'setup');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByLabel('Repeat the passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Create my vault' }).click();
      await expectScreen(page, 'Save your recovery key');
      // The recovery key is shown to be saved: the one code the person is meant to see.
      await capture(page, '02', 'recovery-key', { technicalAllowed: true });
      await page.getByLabel('I have saved my recovery key').check();
      await page.getByRole('button', { name: 'Continue' }).click();
      await expectScreen(page, 'My data');
      await capture(page, '03', 'profile-empty');
    }, 90_000);

    await step(t, page, 'fill the profile: name, email address, phone number, address', async () => {
      const about = page.locator('form[data-section="about"]');
      await about.getByLabel('Name', { exact: true }).fill(NAME);
      await about.getByRole('button', { name: 'Save about you' }).click();
      await expectText(about.locator('.profile-status .message-success'), 'Saved the details about you.');
      const contact = page.locator('form[data-section="contact"]');
      await contact.getByLabel('Email address', { exact: true }).fill(EMAIL);
      await contact.getByLabel('Phone number', { exact: true }).fill(PHONE_NUMBER);
      await contact.getByRole('button', { name: 'Save contact' }).click();
      await expectText(contact.locator('.profile-status .message-success'), 'Saved your contact details.');
      const address = page.locator('form[data-section="address"]');
      await address.getByLabel('Street and number', { exact: true }).fill('Rua do Almada 40');
      await address.getByLabel('Postcode', { exact: true }).fill('4050-032');
      await address.getByLabel('Town or city', { exact: true }).fill('Porto');
      await address.getByLabel('Country', { exact: true }).fill('Portugal');
      await address.getByRole('button', { name: 'Save address' }).click();
      await expectText(address.locator('.profile-status .message-success'), 'Saved your address.');
      await capture(page, '04', 'profile-filled');
    }, 90_000);

    await step(t, page, 'make terms by tapping choices, and publish them', async () => {
      await openFromNav(page, 'My terms', 'My terms');
      await page.locator('.guided-template').first().waitFor();
      await capture(page, '05', 'terms');
      const card = page.locator('.guided-template[data-template="pdc-intent"]');
      await card.getByRole('button', { name: 'Choose what brands may do' }).click();
      const form = page.locator('.guided-form');
      await form.waitFor();
      const kinds = form.getByRole('group', { name: /What brands may see/ });
      for (const box of await kinds.getByRole('checkbox').all()) await box.uncheck();
      await kinds.getByLabel('Email address', { exact: true }).check();
      await kinds.getByLabel('Telephone number', { exact: true }).check();
      await form.getByLabel('1 week', { exact: true }).check();
      await form.getByLabel('Do not keep my data in a customer relationship system', { exact: true }).check();
      await capture(page, '06', 'terms-choices');
      await form.getByRole('button', { name: 'See these terms in plain words' }).click();
      const result = page.locator('.guided-result');
      await expectText(result.locator('.message-success'), 'These choices make terms you can publish.');
      await capture(page, '07', 'terms-built');
      await result.getByRole('button', { name: 'Publish these terms…' }).click();
      await result.getByRole('button', { name: 'Publish version 2' }).click();
      await expectText(page.locator('.guided-outcome .message-success'), 'Published version 2');
      await capture(page, '08', 'terms-published');
      const terms = await fetchJson(`${server.url}/brand/v1/terms`);
      assert.equal(terms.data.version, 2, 'brands read the terms just published');
      assert.equal(terms.data.basis, 'PDC-INTENT');
    }, 120_000);

    await step(t, page, 'invite a brand', async () => {
      await openFromNav(page, 'Brands', 'Brands');
      await capture(page, '09', 'brands-empty');
      await page.getByLabel('Note (optional)', { exact: true }).fill(BRAND_NAME);
      await page.getByRole('button', { name: 'Create invitation' }).click();
      await page.getByRole('button', { name: 'Done, I have copied it' }).waitFor();
      // The invitation is a code to hand to the brand: shown, never typed.
      invitationToken = (await page.locator('#invitation-token').innerText()).trim();
      await capture(page, '10', 'invitation', { technicalAllowed: true });
      await page.getByRole('button', { name: 'Done, I have copied it' }).click();
    }, 90_000);

    await step(t, page, 'the brand registers, accepts the terms and listens for food wishes', async () => {
      const registered = await registerBrand(server.url, invitationToken, {
        client_name: BRAND_NAME,
        grant_types: ['client_credentials'],
        scope: 'intents:read offers:write agreements:read',
      });
      assert.equal(registered.status, 201, `POST /oauth/register (got ${registered.status}: ${JSON.stringify(registered.data)})`);
      client = registered.data;
      const terms = await acceptTerms(server.url, client);
      assert.equal(terms.version, 2);
      const token = await tokenRequest(server.url, client, { grant_type: 'client_credentials' });
      assert.equal(token.status, 200);
      brandToken = token.data.access_token;
      const subscribed = await brandApi(server.url, brandToken, 'PUT', '/brand/v1/subscription', { categories: ['food'], delivery: ['poll'] });
      assert.equal(subscribed.status, 200, `PUT /brand/v1/subscription (got ${subscribed.status}: ${JSON.stringify(subscribed.data)})`);
      await page.reload();
      await expectScreen(page, 'Brands');
      await expectText(page.locator('li.brand-card', { hasText: BRAND_NAME }), 'Accepted your current terms (version 2)');
      await capture(page, '11', 'brands-registered');
    }, 90_000);

    await step(t, page, 'make a wish; the brand hears it and answers asking for the email address and the phone number', async () => {
      await openFromNav(page, 'Wishes', 'Wishes');
      await capture(page, '12', 'wishes-empty');
      await page.getByLabel('What kind of thing', { exact: true }).selectOption({ label: 'Groceries' });
      await page.getByLabel('What you are looking for', { exact: true }).fill(WISH);
      await page.getByRole('button', { name: 'Send my wish', exact: true }).click();
      await expectText(page.locator('.notice-slot .message-success'), 'Your wish was sent to 1 brand.');
      const heard = await pollFor(server.url, brandToken, 'the wish', (e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === WISH);
      wishSeen = heard.subject;
      const sent = await brandApi(server.url, brandToken, 'POST', `/brand/v1/intents/${wishSeen}/offers`, {
        name: 'Sourdough box',
        price: { amount: '12.00', currency: 'EUR' },
        valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(),
        data_requested: ['contact.email', 'contact.phone'],
      });
      assert.equal(sent.status, 201, `the offer is made (got ${sent.status}: ${JSON.stringify(sent.data)})`);
      offerId = sent.data.id;
      const wish = page.locator('li.intent', { hasText: WISH });
      await wish.getByRole('button', { name: /offer/i }).first().click();
      const offer = wish.locator('li.offer', { hasText: 'Sourdough box' });
      await offer.waitFor();
      await offer.getByLabel('Email address', { exact: true }).waitFor();
      await page.waitForFunction((box) => box instanceof HTMLInputElement && !box.disabled,
        await offer.getByLabel('Email address', { exact: true }).elementHandle(), { timeout: ACTION_MS });
      assert.equal(await offer.getByLabel('Email address', { exact: true }).isChecked(), true, 'the terms allow the email address');
      assert.equal(await offer.getByLabel(/^(Phone|Telephone) number$/).isChecked(), true, 'and the phone number');
      await capture(page, '13', 'offer');
    }, 120_000);

    await step(t, page, 'accept, sharing only the email address', async () => {
      const wish = page.locator('li.intent', { hasText: WISH });
      const offer = wish.locator('li.offer', { hasText: 'Sourdough box' });
      await offer.getByLabel(/^(Phone|Telephone) number$/).uncheck();
      await capture(page, '14', 'offer-one-field');
      await offer.getByRole('button', { name: /^Accept/ }).click();
      await expectText(wish.locator('.notice-slot .message-success'),
        `Accepted “Sourdough box”. ${BRAND_NAME} has been told, and may read Email address`);
      await capture(page, '15', 'offer-accepted');
      const seen = await brandApi(server.url, brandToken, 'GET', `/brand/v1/offers/${offerId}`);
      assert.equal(seen.data.status, 'accepted');
      grantId = seen.data.grant_id;
      assert.ok(grantId, 'the acceptance carries a grant');
    }, 90_000);

    await step(t, page, 'the brand reads the shared field, and only that one', async () => {
      const token = await tokenRequest(server.url, client, {
        grant_type: 'client_credentials',
        authorization_details: JSON.stringify([{ type: DATA_ACCESS, grant_id: grantId }]),
      });
      assert.equal(token.status, 200, `a token for the grant (got ${token.status}: ${JSON.stringify(token.data)})`);
      const read = await brandApi(server.url, token.data.access_token, 'GET', '/brand/v1/data');
      assert.equal(read.status, 200, `GET /brand/v1/data (got ${read.status}: ${JSON.stringify(read.data)})`);
      assert.deepEqual(read.data.fields, { 'contact.email': EMAIL }, 'the email address and not the phone number');
      assert.ok(!JSON.stringify(read.data).includes(PHONE_NUMBER), 'the phone number is nowhere in what the brand reads');
    });

    await step(t, page, 'find the brand’s read in Activity by typing its name', async () => {
      await openFromNav(page, 'Activity', 'Activity');
      await capture(page, '16', 'activity');
      await page.getByLabel('Containing the words', { exact: true }).fill(BRAND_NAME);
      await expectText(page.getByRole('status').filter({ hasText: /^Showing \d+ entr(y|ies) that match\.$/ }), /that match/);
      await expectText(page.locator('li.entry'), `${BRAND_NAME} read your email address`);
      assert.equal(await page.locator('li.entry', { hasText: 'You added your name.' }).count(), 0, 'the person’s own saves are left out');
      assert.doesNotMatch(await page.locator('.days').innerText(), /access token/, 'a brand gets a key, in words');
      assert.equal(await page.locator('li.entry', { hasText: 'phone number' }).filter({ hasText: 'read' }).count(), 0, 'no read of the phone number');
      await capture(page, '17', 'activity-search');
    }, 90_000);

    await step(t, page, 'lock the vault from the app: the screen forgets, the brand is refused', async () => {
      watch.allowHttpError(503, '/api/v1');
      await page.getByRole('button', { name: 'Lock the vault now' }).click();
      await expectScreen(page, 'Unlock your vault');
      await expectText(page.locator('#flash'), 'Your vault is locked.');
      // The profile shows data in fields: their values count as what is on screen.
      const body = await page.evaluate(() => [document.body.innerText,
        ...Array.from(document.querySelectorAll('input, textarea'), (f) => /** @type {HTMLInputElement} */ (f).value)].join('\n'));
      assert.ok(!body.includes(EMAIL) && !body.includes(BRAND_NAME) && !body.includes(NAME), 'nothing of the vault is left on screen');
      const refused = await brandApi(server.url, brandToken, 'GET', '/brand/v1/agreements');
      assert.equal(refused.status, 503, `the brand is refused while locked (got ${refused.status})`);
      await capture(page, '18', 'locked');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Unlock' }).click();
      await expectScreen(page, 'My data');
      assert.equal(await page.locator('form[data-section="contact"]').getByLabel('Email address', { exact: true }).inputValue(), EMAIL);
      const again = await brandApi(server.url, brandToken, 'GET', '/brand/v1/agreements');
      assert.equal(again.status, 200, `the brand is served again (got ${again.status})`);
    }, 90_000);

    await step(t, page, 'download a backup from Settings', async () => {
      await openFromNav(page, 'Settings', 'Settings');
      await capture(page, '19', 'settings');
      backup = await download(page, page.getByRole('button', { name: 'Download a backup' }));
      assert.match(backup.name, /\.vrmbackup$/);
      await expectText(page.locator('.download-block .message-success'), /Done: .*\.vrmbackup/);
    }, 90_000);

    await step(t, page, 'delete everything, to restore the backup into an empty vault', async () => {
      await page.getByRole('link', { name: 'Delete everything…' }).click();
      await expectScreen(page, 'Delete everything');
      await capture(page, '20', 'delete');
      await page.getByLabel('Type “delete everything” to confirm', { exact: true }).fill('delete everything');
      await page.getByLabel('Your passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Delete everything now' }).click();
      await expectScreen(page, 'Your vault has been deleted');
      await capture(page, '21', 'deleted');
      await page.getByRole('button', { name: 'Set up a new vault' }).click();
      await expectScreen(page, 'Set up your vault');
    }, 90_000);

    await step(t, page, 'restore the backup: the brand comes back paused', async () => {
      watch.allowHttpError(401, '/api/v1');
      await page.getByRole('link', { name: 'Restore from a backup' }).click();
      await expectScreen(page, 'Restore from a backup');
      await capture(page, '22', 'restore');
      await page.getByLabel('Backup file', { exact: true }).setInputFiles(backup.path);
      await page.getByLabel('Passphrase of the backup', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Restore my vault' }).click();
      await expectScreen(page, 'My data');
      await expectText(page.locator('#flash .message-success'), 'Brands in it are paused until you review each one on the Brands page and resume it.');
      assert.equal(await page.locator('form[data-section="contact"]').getByLabel('Email address', { exact: true }).inputValue(), EMAIL);
      await capture(page, '23', 'restored');
      const paused = await brandApi(server.url, brandToken, 'GET', '/brand/v1/agreements');
      assert.equal(paused.status, 403, `a held brand is refused (got ${paused.status})`);
    }, 90_000);

    await step(t, page, 'the brand is paused after the restore; resume it', async () => {
      await openFromNav(page, 'Brands', 'Brands');
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await expectText(card, 'Paused after the restore');
      await capture(page, '24', 'brands-paused');
      await card.getByRole('button', { name: /^Resume/ }).click();
      await expectText(page.locator('li.brand-card', { hasText: BRAND_NAME }), 'Active');
      await capture(page, '25', 'brands-resumed');
      const resumed = await brandApi(server.url, brandToken, 'GET', '/brand/v1/agreements');
      assert.equal(resumed.status, 200, `resumed, the brand is served (got ${resumed.status})`);
    }, 90_000);

    watch.assertClean('during the whole journey');
    assert.deepEqual(violations, [], 'no Content Security Policy violations');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
