// The person can do everything alone (issue 16), in a phone-sized browser
// (390 px wide):
//  (a) an offer asks for two pieces of data, the terms allow one: only that
//      one is ticked, the other says why not, and accepting shares only it;
//  (b) the Activity log finds a brand's read by the brand's name and says it
//      in a sentence;
//  (c) "Lock the vault now" locks it: the screen forgets the person's data,
//      brands get 503, and the passphrase opens it again;
//  (d) a restored backup brings its brands back paused, and the restore
//      screen says so.
// Screenshots go to artifacts/screenshots/alone-*.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ACTION_MS,
  DATA_ACCESS,
  acceptTerms,
  assertNoHorizontalOverflow,
  brandApi,
  brandToken,
  expectScreen,
  expectText,
  freshDataDir,
  newContext,
  ownerApi,
  ownerLogin,
  registerBrand,
  setUpBrowserTests,
  setUpVault,
  startServer,
  stopServer,
  tokenRequest,
  watchPage,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'alone' });

const PHONE_VIEWPORT = { width: 390, height: 844 };
const PASSPHRASE = 'amber willow compass seventy';
const BRAND_NAME = 'Bistro Lilas';
const EMAIL = 'ada@example.org';

/** Records, the PDC-INTENT terms, and a brand that accepted them and hears food wishes. */
async function vaultWithBrand(url, ownerToken, records) {
  for (const [p, value] of records) {
    const put = await ownerApi(url, ownerToken, 'PUT', `/api/v1/records/${p}`, { value });
    assert.ok([200, 201].includes(put.status), `PUT ${p} (got ${put.status}: ${JSON.stringify(put.data)})`);
  }
  const templates = await ownerApi(url, ownerToken, 'GET', '/api/v1/terms/templates');
  const intent = templates.data.templates.find((x) => x.id === 'pdc-intent');
  const published = await ownerApi(url, ownerToken, 'PUT', '/api/v1/terms', { terms: intent.terms });
  assert.equal(published.status, 201, `PUT /api/v1/terms (got ${published.status}: ${JSON.stringify(published.data)})`);
  const invitation = await ownerApi(url, ownerToken, 'POST', '/api/v1/invitations', { max_uses: 1, note: BRAND_NAME });
  assert.equal(invitation.status, 201);
  const registered = await registerBrand(url, invitation.data.initial_access_token, {
    client_name: BRAND_NAME,
    grant_types: ['client_credentials'],
    scope: 'intents:read offers:write agreements:read',
  });
  assert.equal(registered.status, 201, `POST /oauth/register (got ${registered.status}: ${JSON.stringify(registered.data)})`);
  const client = registered.data;
  await acceptTerms(url, client);
  const token = await brandToken(url, client);
  const subscribed = await brandApi(url, token, 'PUT', '/brand/v1/subscription', { categories: ['food'], delivery: ['poll'] });
  assert.equal(subscribed.status, 200, `PUT /brand/v1/subscription (got ${subscribed.status})`);
  return { client, token };
}

/** A wish the owner makes by API, and the brand's offer on it asking for `fields`. */
async function wishWithOffer(url, ownerToken, token, fields) {
  const wish = await ownerApi(url, ownerToken, 'POST', '/api/v1/intents', {
    category: 'food.lunch',
    text: 'Lunch for two, vegetarian',
    expires_at: new Date(Date.now() + 3 * 3600_000).toISOString(),
  });
  assert.equal(wish.status, 201, `POST /api/v1/intents (got ${wish.status}: ${JSON.stringify(wish.data)})`);
  // The brand knows the wish by its own id, from the event it polls.
  let heard;
  for (let tries = 0; !heard && tries < 50; tries += 1) {
    if (tries) await new Promise((resolve) => setTimeout(resolve, 200));
    const events = await brandApi(url, token, 'GET', '/brand/v1/intents?cursor=0');
    assert.equal(events.status, 200, `GET /brand/v1/intents (got ${events.status}: ${JSON.stringify(events.data)})`);
    heard = events.data.events.find((e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === 'Lunch for two, vegetarian');
  }
  assert.ok(heard, 'the brand heard the wish');
  const offer = await brandApi(url, token, 'POST', `/brand/v1/intents/${heard.subject}/offers`, {
    name: 'Lunch on the terrace',
    price: { amount: '24.00', currency: 'EUR' },
    valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(),
    data_requested: fields,
  });
  assert.equal(offer.status, 201, `POST offers (got ${offer.status}: ${JSON.stringify(offer.data)})`);
  return { wish: wish.data.id, offer: offer.data.id };
}

/** The page's text and the values in its fields: the profile shows data in fields. */
function shownOn(page) {
  return page.evaluate(() => [document.body.innerText,
    ...Array.from(document.querySelectorAll('input, textarea'), (f) => /** @type {HTMLInputElement} */ (f).value)].join('\n'));
}

/** Wait until a field on the page holds `value`. */
async function fieldHolds(page, value) {
  await page.waitForFunction((v) => Array.from(document.querySelectorAll('#screen input')).some((f) => f.value === v), value, { timeout: ACTION_MS });
}

async function go(page, route, title) {
  await page.evaluate((r) => { location.hash = `#/${r}`; }, route);
  await expectScreen(page, title);
}

test('an offer asking for two pieces of data can be accepted sharing only the one the terms allow', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context } = await newContext(PHONE_VIEWPORT);
  const page = await context.newPage();
  watchPage(page);
  try {
    let ownerToken;
    let brand;
    let ids;
    await step(t, page, 'set up a vault with a brand and an offer asking for the email address and the birth date', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      ownerToken = await ownerLogin(server.url, PASSPHRASE);
      brand = await vaultWithBrand(server.url, ownerToken, [['contact.email', EMAIL], ['profile.birthdate', '1990-04-01']]);
      ids = await wishWithOffer(server.url, ownerToken, brand.token, ['contact.email', 'profile.birthdate']);
    }, 60_000);

    const offer = page.locator(`li.offer[data-id="${ids.offer}"]`);
    await step(t, page, 'the offer ticks only what the terms allow and says why not for the rest', async () => {
      await go(page, 'intents', 'Wishes');
      await page.locator(`li.intent[data-id="${ids.wish}"] [data-action="offers"]`).click();
      await offer.waitFor();
      const email = offer.getByLabel('Email address', { exact: true });
      const birth = offer.getByLabel('Birthday', { exact: true });
      await page.waitForFunction((box) => box instanceof HTMLInputElement && !box.disabled, await email.elementHandle(), { timeout: ACTION_MS });
      assert.equal(await email.isChecked(), true, 'the email address is allowed, so ticked');
      assert.equal(await birth.isChecked(), false, 'the birth date is not ticked');
      assert.equal(await birth.isDisabled(), true, 'and cannot be chosen');
      const why = offer.locator('.field-refused');
      await expectText(why, /^Not allowed: Your terms .*your date of birth/);
      assert.doesNotMatch(await offer.innerText(), /dpv:|pd:|contact\.email|profile\.birthdate/, 'no codes, no paths');
      await assertNoHorizontalOverflow(page, 'the offer at 390 px');
      await shot(page, '01-offer-share-choice');
    });

    await step(t, page, 'accepting shares the email address only', async () => {
      await offer.getByRole('button', { name: /^Accept/ }).click();
      await expectText(page.locator(`li.intent[data-id="${ids.wish}"] .notice-slot .message-success`),
        `Accepted “Lunch on the terrace”. ${BRAND_NAME} has been told, and may read Email address for 24 hours`);
      const seen = await brandApi(server.url, brand.token, 'GET', `/brand/v1/offers/${ids.offer}`);
      assert.equal(seen.data.status, 'accepted');
      const grant = await ownerApi(server.url, ownerToken, 'GET', `/api/v1/grants/${encodeURIComponent(seen.data.grant_id)}`);
      assert.deepEqual(grant.data.fields, ['contact.email'], 'only the email address is shared');
      await shot(page, '02-offer-accepted');
    });
  } finally {
    await context.close();
    await stopServer(server);
  }
});

test('a brand’s read is found in Activity by the brand’s name, as a sentence, grouped by day', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context } = await newContext(PHONE_VIEWPORT);
  const page = await context.newPage();
  watchPage(page);
  try {
    await step(t, page, 'a vault where Bistro Lilas read the email address with a grant', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      const ownerToken = await ownerLogin(server.url, PASSPHRASE);
      const { client, token } = await vaultWithBrand(server.url, ownerToken, [['contact.email', EMAIL]]);
      const ids = await wishWithOffer(server.url, ownerToken, token, ['contact.email']);
      const accepted = await ownerApi(server.url, ownerToken, 'POST', `/api/v1/offers/${ids.offer}/accept`, { share: true, fields: ['contact.email'], expires_in_hours: 1 });
      assert.equal(accepted.status, 200, `accept (got ${accepted.status}: ${JSON.stringify(accepted.data)})`);
      const grantToken = await tokenRequest(server.url, client, {
        grant_type: 'client_credentials',
        authorization_details: JSON.stringify([{ type: DATA_ACCESS, grant_id: accepted.data.grant_id }]),
      });
      assert.equal(grantToken.status, 200, `a grant token (got ${grantToken.status}: ${JSON.stringify(grantToken.data)})`);
      const read = await brandApi(server.url, grantToken.data.access_token, 'GET', '/brand/v1/data');
      assert.equal(read.status, 200);
      // Enough of the person's own entries that the read is not on the first page.
      for (let i = 0; i < 25; i += 1) {
        const put = await ownerApi(server.url, ownerToken, 'PUT', `/api/v1/records/notes.n${i}`, { value: `note ${i}` });
        assert.ok([200, 201].includes(put.status));
      }
    }, 60_000);

    await step(t, page, 'searching the brand’s name finds its read, in words', async () => {
      await go(page, 'activity', 'Activity');
      await expectText(page.locator('.day-title'), 'Today');
      assert.equal(await page.locator('li.entry', { hasText: 'read your email address' }).count(), 0, 'the read is further back than the first page');
      await page.getByLabel('Containing the words', { exact: true }).fill('bistro lilas read');
      const found = page.locator('li.entry .entry-what', { hasText: `${BRAND_NAME} read your email address, to provide a service you asked for.` });
      await found.first().waitFor();
      assert.equal(await page.locator('li.entry').count(), 1, 'only the read matches');
      assert.doesNotMatch(await page.locator('.days').innerText(), /client_|contact\.email|dpv:/, 'no client ids, paths or codes on show');
      await assertNoHorizontalOverflow(page, 'Activity at 390 px');
      await shot(page, '03-activity-search');
    });

    await step(t, page, 'the brand and kind filters narrow the whole log too', async () => {
      await page.getByLabel('Containing the words', { exact: true }).fill('');
      await page.getByLabel('What', { exact: true }).selectOption('reads');
      await page.locator('li.entry .entry-what', { hasText: 'read your email address' }).first().waitFor();
      assert.equal(await page.locator('li.entry').count(), 1, 'one read in the log');
      await page.getByLabel('What', { exact: true }).selectOption('all');
      await page.getByLabel('Brand', { exact: true }).selectOption({ label: BRAND_NAME });
      await expectText(page.locator('li.entry .entry-what'), `${BRAND_NAME} registered with your vault.`);
      assert.equal(await page.locator('li.entry', { hasText: 'You added your' }).count(), 0, 'the person’s own saves are left out');
      await shot(page, '04-activity-brand');
    });
  } finally {
    await context.close();
    await stopServer(server);
  }
});

test('“Lock the vault now” locks it: every open tab forgets the data, brands are refused, the passphrase opens it again', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context } = await newContext(PHONE_VIEWPORT);
  const page = await context.newPage();
  const other = await context.newPage();
  watchPage(page);
  const watchOther = watchPage(other);
  let brand;
  try {
    await step(t, page, 'a vault with an email address and a brand, open in two tabs', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      const ownerToken = await ownerLogin(server.url, PASSPHRASE);
      brand = await vaultWithBrand(server.url, ownerToken, [['contact.email', EMAIL]]);
      await page.reload();
      await expectScreen(page, 'My data');
      await fieldHolds(page, EMAIL);
      await other.goto(`${server.url}/#/records`);
      await expectScreen(other, 'My data');
      await fieldHolds(other, EMAIL);
    }, 60_000);

    await step(t, page, 'locking from the app clears this tab and the other one', async () => {
      watchOther.allowHttpError(503, '/api/v1');
      await page.getByRole('button', { name: 'Lock the vault now' }).click();
      await expectScreen(page, 'Unlock your vault');
      await expectText(page.locator('#flash'), 'Your vault is locked.');
      assert.doesNotMatch(await shownOn(page), new RegExp(EMAIL.replace('.', '\\.')), 'the data left this tab');
      await expectScreen(other, 'Unlock your vault');
      assert.doesNotMatch(await shownOn(other), new RegExp(EMAIL.replace('.', '\\.')), 'and the other tab');
      await assertNoHorizontalOverflow(page, 'the locked screen at 390 px');
      await shot(page, '05-locked');
      const refused = await brandApi(server.url, brand.token, 'GET', '/brand/v1/agreements');
      assert.equal(refused.status, 503, `brands are refused while locked (got ${refused.status})`);
    });

    await step(t, page, 'the passphrase unlocks it again, without a restart', async () => {
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Unlock' }).click();
      await expectScreen(page, 'My data');
      await fieldHolds(page, EMAIL);
      const again = await brandApi(server.url, brand.token, 'GET', '/brand/v1/agreements');
      assert.equal(again.status, 200, `brands are served again (got ${again.status})`);
    });
  } finally {
    await context.close();
    await stopServer(server);
  }
});

test('a restored backup brings its brands back paused, and says so, until the person resumes them', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context } = await newContext(PHONE_VIEWPORT);
  const page = await context.newPage();
  const watch = watchPage(page);
  let brand;
  const backupDir = mkdtempSync(path.join(os.tmpdir(), 'vrm-alone-backup-'));
  const backupPath = path.join(backupDir, 'vault.vrmbackup');
  try {
    await step(t, page, 'a vault with a brand is backed up, then everything is deleted', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      const ownerToken = await ownerLogin(server.url, PASSPHRASE);
      brand = await vaultWithBrand(server.url, ownerToken, [['contact.email', EMAIL]]);
      const response = await fetch(`${server.url}/api/v1/backup`, { headers: { Authorization: `Bearer ${ownerToken}` } });
      assert.equal(response.status, 200, 'GET /api/v1/backup');
      writeFileSync(backupPath, Buffer.from(await response.arrayBuffer()));
      const deleted = await ownerApi(server.url, ownerToken, 'DELETE', '/api/v1/vault', { passphrase: PASSPHRASE, confirm: 'delete everything' });
      assert.equal(deleted.status, 200, `DELETE /api/v1/vault (got ${deleted.status}: ${JSON.stringify(deleted.data)})`);
    }, 60_000);

    await step(t, page, 'the restore screen says brands come back paused, and the flash after it too', async () => {
      watch.allowHttpError(401, '/api/v1');
      watch.allowHttpError(503, '/api/v1');
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await page.getByRole('link', { name: 'Restore from a backup' }).click();
      await expectScreen(page, 'Restore from a backup');
      await expectText(page.locator('.restore-brands'), 'Brands in the backup come back paused');
      await assertNoHorizontalOverflow(page, 'the restore screen at 390 px');
      await shot(page, '06-restore-screen');
      await page.getByLabel('Backup file', { exact: true }).setInputFiles(backupPath);
      await page.getByLabel('Passphrase of the backup', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Restore my vault' }).click();
      await expectScreen(page, 'My data');
      await expectText(page.locator('#flash .message-success'), 'Brands in it are paused until you review each one on the Brands page and resume it.');
    }, 60_000);

    await step(t, page, 'the brand is paused, says why, is refused, and works again once resumed', async () => {
      const paused = await brandApi(server.url, brand.token, 'GET', '/brand/v1/agreements');
      assert.equal(paused.status, 403, `a held brand is refused (got ${paused.status})`);
      assert.equal(paused.data.error, 'access_paused');
      await go(page, 'brands', 'Brands');
      const card = page.locator('.brand-card', { hasText: BRAND_NAME });
      await expectText(card.locator('.card-title .tag'), 'Paused after the restore');
      await expectText(card.locator('.held-after-restore'), 'Paused because you restored your vault from a backup');
      await assertNoHorizontalOverflow(page, 'the Brands screen at 390 px');
      await shot(page, '07-brands-paused');
      await card.getByRole('button', { name: /^Resume/ }).click();
      await expectText(page.locator('.brand-card', { hasText: BRAND_NAME }).locator('.card-title .tag'), 'Active');
      const resumed = await brandApi(server.url, brand.token, 'GET', '/brand/v1/agreements');
      assert.equal(resumed.status, 200, `resumed, the brand is served (got ${resumed.status})`);
    });
  } finally {
    await context.close();
    await stopServer(server);
    rmSync(backupDir, { recursive: true, force: true });
  }
});
