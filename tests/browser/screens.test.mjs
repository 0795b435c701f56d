// Every screen of the app at desktop width and at 360 px (a small phone):
// a screenshot of each (artifacts/screenshots/screens-*), no horizontal
// overflow on the phone, and an axe-core check with no serious or critical
// violation. Then the wish flow run on a phone, with "Delete for good", and
// what happens to a half-written form when the session ends and when the
// vault gets locked by a restart.
//
// Same set-up as the other browser tests (helpers.mjs): Debian's headless
// Chromium through playwright-core (which never downloads a browser) against
// a real vrm-vault server on a fresh temporary data directory. Build the
// server first (`cargo build`), or point VRM_VAULT_BIN at a binary.
//
//   cd tests/browser && npm ci && node --test
//
// The data behind the screens (records, terms, a brand with an agreement,
// a wish with an offer, a grant, a brand's request for consent) is made
// through the HTTP API, as a script or the brand's software would; the
// screens themselves are only looked at.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
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
  installabilityErrors,
  newContext,
  openFromNav,
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

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'screens' });

const PASSPHRASE = 'maple quartz ribbon eleven';
const BRAND_NAME = 'Harbour Deli';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 360, height: 740 };

// --- Looking at a screen ----------------------------------------------------------

/** Wait until the screen has loaded what it shows. */
async function settle(page) {
  await page.waitForFunction(() => !document.querySelector('#screen [aria-busy="true"], #screen .loading'));
}

/**
 * Look at the current screen at both widths: screenshot, overflow at 360 px,
 * axe. Minor and moderate axe findings are reported, not failed.
 */
async function lookAt(t, page, number, name, { prepare = async () => {} } = {}) {
  for (const [label, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(size);
    await prepare();
    await settle(page);
    await shot(page, `${label}-${String(number).padStart(2, '0')}-${name}`);
    if (label === 'phone') await assertNoHorizontalOverflow(page, `${name} at 360 px`);
    const minor = await checkAccessibility(page, `${name} (${label})`);
    for (const v of minor) t.diagnostic(`axe ${v.impact} on ${name} (${label}): ${v.id} — ${v.help}`);
  }
  await page.setViewportSize(DESKTOP);
}

async function go(page, route, title) {
  await page.evaluate((r) => { location.hash = r; }, `#/${route}`);
  await expectScreen(page, title);
}

// --- A brand's side -------------------------------------------------------------

/** Publish the PDC-INTENT terms and register a brand that accepted them and hears food wishes. */
async function brandThatHearsFood(baseUrl, ownerToken, metadata = {}) {
  const templates = await ownerApi(baseUrl, ownerToken, 'GET', '/api/v1/terms/templates');
  const intent = templates.data.templates.find((x) => x.id === 'pdc-intent');
  const current = await ownerApi(baseUrl, ownerToken, 'GET', '/api/v1/terms');
  if (!current.data || current.data.terms.basis !== 'PDC-INTENT') {
    const published = await ownerApi(baseUrl, ownerToken, 'PUT', '/api/v1/terms', { terms: intent.terms });
    assert.equal(published.status, 201, `PUT /api/v1/terms (got ${published.status}: ${JSON.stringify(published.data)})`);
  }
  const invitation = await ownerApi(baseUrl, ownerToken, 'POST', '/api/v1/invitations', { max_uses: 1, note: BRAND_NAME });
  assert.equal(invitation.status, 201);
  const registered = await registerBrand(baseUrl, invitation.data.initial_access_token, {
    client_name: BRAND_NAME,
    grant_types: ['client_credentials'],
    scope: 'intents:read offers:write agreements:read',
    ...metadata,
  });
  assert.equal(registered.status, 201, `POST /oauth/register (got ${registered.status}: ${JSON.stringify(registered.data)})`);
  const client = registered.data;
  await acceptTerms(baseUrl, client);
  const token = await tokenRequest(baseUrl, client, { grant_type: 'client_credentials' });
  assert.equal(token.status, 200, `a token (got ${token.status}: ${JSON.stringify(token.data)})`);
  const subscribed = await brandApi(baseUrl, token.data.access_token, 'PUT', '/brand/v1/subscription', { categories: ['food'], delivery: ['poll'] });
  assert.equal(subscribed.status, 200);
  return { client, token: token.data.access_token };
}

function offerBody(name, extra = {}) {
  return { name, price: { amount: '12.00', currency: 'EUR' }, valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(), ...extra };
}

/**
 * The brand's poll, until it has the wish with this text; returns the id the brand knows it by
 * (every brand has its own, not the vault's).
 * @param {string} baseUrl @param {string} token @param {string} text
 * @returns {Promise<string>}
 */
async function waitUntilHeard(baseUrl, token, text) {
  const deadline = Date.now() + ACTION_MS;
  while (Date.now() < deadline) {
    const page = await brandApi(baseUrl, token, 'GET', '/brand/v1/intents?cursor=0');
    const heard = page.data.events.find((e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === text);
    if (heard) return heard.subject;
    await sleep(200);
  }
  assert.fail('the brand never heard the wish');
}

/** A brand's authorization request (PKCE, authorization details) the browser is sent to. */
function authorizeUrl(baseUrl, client, redirectUri) {
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    state: 'screens',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    authorization_details: JSON.stringify([{
      type: DATA_ACCESS, fields: ['contact.email', 'contact.phone'], actions: ['read'], purpose: 'dpv:RequestedServiceProvision', expires_in: 86_400,
    }]),
  });
  return `${baseUrl}/oauth/authorize?${query}`;
}

// --- Every screen -----------------------------------------------------------------

test('every screen, desktop and 360 px: screenshots, no overflow, no serious axe violations', { timeout: 240_000 }, async (t) => {
  const dataDir = freshDataDir();
  let server = await startServer(dataDir);
  const port = new URL(server.url).port;
  const { context, violations } = await newContext(DESKTOP);
  const page = await context.newPage();
  const watch = watchPage(page);
  let n = 0;
  const look = (name, options) => lookAt(t, page, ++n, name, options);

  try {
    await step(t, page, 'setup and restore (an empty vault)', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await look('setup');
      await page.getByRole('link', { name: 'Restore from a backup' }).click();
      await expectScreen(page, 'Restore from a backup');
      await look('restore');
      await page.getByLabel('With the recovery key, and choose a new passphrase').check();
      await look('restore-with-key');
      await page.getByRole('link', { name: 'Back to setting up a new vault' }).click();
      await expectScreen(page, 'Set up your vault');
    }, 60_000);

    await step(t, page, 'the recovery key, once', async () => {
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByLabel('Repeat the passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Create my vault' }).click();
      await expectScreen(page, 'Save your recovery key');
      await look('recovery-key');
      await page.getByLabel('I have saved my recovery key').check();
      await page.getByRole('button', { name: 'Continue' }).click();
      await expectScreen(page, 'My data');
      await look('records-empty');
    }, 40_000);

    let brand;
    await step(t, page, 'data behind the screens, made through the API', async () => {
      const owner = await ownerLogin(server.url, PASSPHRASE);
      for (const [p, value, category] of [['contact.email', 'lin@example.org', 'pd:EmailAddress'], ['contact.phone', '+31 20 555 0199', undefined], ['profile.name', { given: 'Lin', family: 'Okafor' }, undefined]]) {
        const put = await ownerApi(server.url, owner, 'PUT', `/api/v1/records/${p}`, { value, category });
        assert.ok([200, 201].includes(put.status), `PUT ${p} (got ${put.status}: ${JSON.stringify(put.data)})`);
      }
      brand = await brandThatHearsFood(server.url, owner, {
        grant_types: ['client_credentials', 'authorization_code'],
        response_types: ['code'],
        redirect_uris: ['https://deli.example/callback'],
      });
      const wish = await ownerApi(server.url, owner, 'POST', '/api/v1/intents', {
        category: 'food.lunch', text: 'Soup for two near the harbour', expires_at: new Date(Date.now() + 3 * 3600_000).toISOString(),
        location: { geohash: 'u173z', radius_m: 1000 }, party_size: 2, price_max: { amount: '20.00', currency: 'EUR' },
      });
      assert.equal(wish.status, 201, `POST /api/v1/intents (got ${wish.status}: ${JSON.stringify(wish.data)})`);
      brand.wish = wish.data.id;
      const seen = await waitUntilHeard(server.url, brand.token, 'Soup for two near the harbour');
      const offer = await brandApi(server.url, brand.token, 'POST', `/brand/v1/intents/${seen}/offers`,
        offerBody('Fish soup and bread for two', { description: 'With a view of the boats.', data_requested: ['contact.phone'] }));
      assert.equal(offer.status, 201, `an offer (got ${offer.status}: ${JSON.stringify(offer.data)})`);
      const grant = await ownerApi(server.url, owner, 'POST', '/api/v1/grants', {
        client_id: brand.client.client_id, fields: ['contact.email'], actions: ['read'], purpose: 'dpv:RequestedServiceProvision',
        expires_at: new Date(Date.now() + 7 * 24 * 3600_000).toISOString(), max_uses: 10,
      });
      assert.equal(grant.status, 201, `POST /api/v1/grants (got ${grant.status}: ${JSON.stringify(grant.data)})`);
      const invitation = await ownerApi(server.url, owner, 'POST', '/api/v1/invitations', { max_uses: 1, note: 'Bike shop' });
      assert.equal(invitation.status, 201);
    });

    await step(t, page, 'the screens of a vault in use', async () => {
      await page.reload();
      await expectScreen(page, 'My data');
      await look('records');
      await page.locator('.toolbar').getByRole('button', { name: 'Add something else' }).click();
      await look('records-add');
      await page.getByRole('button', { name: 'Cancel', exact: true }).click();
      await openFromNav(page, 'My terms', 'My terms');
      await look('terms');
      await openFromNav(page, 'Brands', 'Brands');
      await look('brands');
      await page.getByLabel('Note (optional)', { exact: true }).fill('Florist');
      await page.getByRole('button', { name: 'Create invitation' }).click();
      await page.locator('.token-box').waitFor();
      await look('brands-invitation-token');
      await page.getByRole('button', { name: 'Done, I have copied it' }).click();
      await openFromNav(page, 'Wishes', 'Wishes');
      await look('wishes', {
        prepare: async () => {
          const card = page.locator(`li.intent[data-id="${brand.wish}"]`);
          if (await card.locator('[data-action="offers"]').getAttribute('aria-expanded') !== 'true') {
            await card.locator('[data-action="offers"]').click();
          }
          await card.locator('li.offer').first().waitFor();
        },
      });
      await openFromNav(page, 'Sharing', 'Sharing');
      await look('sharing');
      await openFromNav(page, 'Activity', 'Activity');
      await look('activity');
      await openFromNav(page, 'Settings', 'Settings');
      await look('settings');
      await page.getByRole('button', { name: 'Make a new recovery key…' }).click();
      await look('settings-new-recovery-key');
      await page.getByRole('button', { name: 'Cancel', exact: true }).click();
      await page.getByRole('link', { name: 'Delete everything…' }).click();
      await expectScreen(page, 'Delete everything');
      await look('delete');
    }, 120_000);

    await step(t, page, 'the consent page', async () => {
      await page.goto(authorizeUrl(server.url, brand.client, 'https://deli.example/callback'));
      await expectScreen(page, 'A brand asks for your data');
      await look('consent');
    }, 40_000);

    await step(t, page, 'log in, recover, unlock', async () => {
      await page.goto(`${server.url}/#/records`);
      await expectScreen(page, 'My data');
      await page.getByRole('button', { name: 'Log out' }).click();
      await expectScreen(page, 'Log in');
      await look('login');
      await page.getByRole('link', { name: 'Forgot your passphrase? Use your recovery key' }).click();
      await expectScreen(page, 'Use your recovery key');
      await look('recover');
      await stopServer(server);
      server = await startServer(dataDir, { listen: `127.0.0.1:${port}` });
      await page.goto(server.url);
      await expectScreen(page, 'Unlock your vault');
      await look('unlock');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Unlock' }).click();
      await expectScreen(page, 'My data');
    }, 60_000);

    await step(t, page, 'the final receipt', async () => {
      await go(page, 'delete', 'Delete everything');
      await page.getByLabel('Type “delete everything” to confirm', { exact: true }).fill('delete everything');
      await page.getByLabel('Your passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Delete everything now' }).click();
      await expectScreen(page, 'Your vault has been deleted');
      await look('receipt');
      await page.getByRole('button', { name: 'Set up a new vault' }).click();
      await expectScreen(page, 'Set up your vault');
    }, 40_000);

    watch.assertClean('on every screen');
    assert.deepEqual(violations, [], 'no Content Security Policy violations');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});

// --- The wish flow on a phone -------------------------------------------------------

test('360 px: a wish, a live offer, accept, delete for good; a session that ends and a vault that locks keep the typing', { timeout: 180_000 }, async (t) => {
  const dataDir = freshDataDir();
  let server = await startServer(dataDir);
  const port = new URL(server.url).port;
  const { context, violations } = await newContext(PHONE);
  const page = await context.newPage();
  const watch = watchPage(page);
  let brand;
  let wish;
  let wishSeen; // the id the brand knows the wish by

  try {
    await step(t, page, 'set up on a phone; a brand that hears food wishes', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      const owner = await ownerLogin(server.url, PASSPHRASE);
      await ownerApi(server.url, owner, 'PUT', '/api/v1/records/contact.email', { value: 'lin@example.org' });
      brand = await brandThatHearsFood(server.url, owner);
    }, 40_000);

    await step(t, page, 'make a wish on the phone', async () => {
      await openFromNav(page, 'Wishes', 'Wishes');
      await page.getByLabel('What kind of thing', { exact: true }).selectOption('food.lunch');
      await page.getByLabel('What you are looking for', { exact: true }).fill('Noodles to take away');
      await page.getByRole('button', { name: 'Send my wish', exact: true }).click();
      await expectText(page.locator('.notice-slot .message-success'), 'Your wish was sent to 1 brand.');
      wish = await page.locator('li.intent').first().getAttribute('data-id');
      wishSeen = await waitUntilHeard(server.url, brand.token, 'Noodles to take away');
      await assertNoHorizontalOverflow(page, 'the Wishes screen after sending');
    });

    await step(t, page, 'the offer arrives live; accept it with sharing', async () => {
      const card = page.locator(`li.intent[data-id="${wish}"]`);
      await card.locator('[data-action="offers"]').click();
      await expectText(card.locator('.offers-empty'), 'No offers yet.');
      const sent = await brandApi(server.url, brand.token, 'POST', `/brand/v1/intents/${wishSeen}/offers`,
        offerBody('Ramen, ready in ten minutes', { data_requested: ['contact.email'] }));
      assert.equal(sent.status, 201);
      const offer = card.locator(`li.offer[data-id="${sent.data.id}"]`);
      await offer.waitFor();
      await assertNoHorizontalOverflow(page, 'a live offer');
      await shot(page, 'phone-flow-01-offer');
      // What the terms allow is ticked once the vault has answered; accepting shares it.
      await offer.locator('input[name="share_field"]:checked').first().waitFor();
      await offer.getByRole('button', { name: /^Accept/ }).click();
      await expectText(card.locator('.notice-slot .message-success'), 'Accepted “Ramen, ready in ten minutes”.');
      await assertNoHorizontalOverflow(page, 'an accepted offer');
      await shot(page, 'phone-flow-02-accepted');
    });

    await step(t, page, 'delete the wish for good, after confirming: it and its offers are gone', async () => {
      const card = page.locator(`li.intent[data-id="${wish}"]`);
      await card.getByRole('button', { name: 'Delete for good “Noodles to take away”' }).click();
      await expectText(card.locator('.confirm'), 'Delete your wish “Noodles to take away” for good?');
      await assertNoHorizontalOverflow(page, 'the delete-for-good question');
      await shot(page, 'phone-flow-03-erase-confirm');
      await card.locator('.confirm').getByRole('button', { name: 'Yes, delete for good' }).click();
      await expectText(page.locator('.notice-slot .message-success'), 'Deleted your wish “Noodles to take away” and its offers for good.');
      await expectText(page.locator('.intents-list p.hint'), 'You have made no wish yet.');
      const late = await brandApi(server.url, brand.token, 'POST', `/brand/v1/intents/${wishSeen}/offers`, offerBody('Too late'));
      assert.equal(late.status, 404, `the wish is unknown to the brand now (got ${late.status}: ${JSON.stringify(late.data)})`);
      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('li.entry'), 'Deleted a wish for good');
    });

    await step(t, page, 'the session ends while typing: log in again, the typing is still there', async () => {
      await openFromNav(page, 'My data', 'My data');
      await page.locator('.toolbar').getByRole('button', { name: 'Add something else' }).click();
      await page.getByLabel('What is it?', { exact: true }).fill('Nickname');
      await page.getByLabel('Value', { exact: true }).fill('Lin the half-written');
      // The session ends on the server's side: the cookie is gone.
      await context.clearCookies();
      watch.allowHttpError(401, '/api/v1/records/other.nickname');
      watch.allowHttpError(401, '/api/v1/records');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expectScreen(page, 'Log in');
      await expectText(page.locator('#flash .message-warning'), 'Anything you were typing has been kept.');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Log in' }).click();
      await expectScreen(page, 'My data');
      assert.equal(await page.getByLabel('Value', { exact: true }).inputValue(), 'Lin the half-written', 'the typing is back');
    }, 30_000);

    await step(t, page, 'the vault is locked by a restart: unlock, the typing is still there', async () => {
      await stopServer(server);
      server = await startServer(dataDir, { listen: `127.0.0.1:${port}` });
      watch.allowHttpError(503, '/api/v1/records/other.nickname');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expectScreen(page, 'Unlock your vault');
      await expectText(page.locator('#flash .message-warning'), 'Your vault has been locked.');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Unlock' }).click();
      await expectScreen(page, 'My data');
      assert.equal(await page.getByLabel('Value', { exact: true }).inputValue(), 'Lin the half-written', 'the typing is back');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expectText(page.locator('.notice-slot'), 'Saved Nickname.');
    }, 40_000);

    watch.assertClean('on the phone');
    assert.deepEqual(violations, [], 'no Content Security Policy violations');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});

// --- The checker itself -------------------------------------------------------------

test('the accessibility check itself finds a serious problem', { timeout: 20_000 }, async () => {
  const { context } = await newContext(DESKTOP);
  try {
    const page = await context.newPage();
    await page.setContent('<!doctype html><html lang="en"><title>t</title><main><input type="text"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></main></html>');
    await assert.rejects(checkAccessibility(page, 'a page with an unlabelled field'), /label|image-alt/);
  } finally {
    await context.close().catch(() => {});
  }
});

// --- Installable ----------------------------------------------------------------------

test('the app is installable: Chromium finds nothing missing in its manifest and icons', { timeout: 60_000 }, async () => {
  const server = await startServer(freshDataDir());
  try {
    assert.deepEqual(await installabilityErrors(server.url), [], 'no installability errors');
    const manifest = await fetchJson(`${server.url}/manifest.webmanifest`);
    assert.equal(manifest.status, 200);
    for (const icon of manifest.data.icons) {
      const answer = await fetch(`${server.url}${icon.src}`);
      assert.equal(answer.status, 200, `${icon.src} is served`);
      assert.equal(answer.headers.get('content-type'), icon.type, `${icon.src} has the type the manifest says`);
    }
  } finally {
    await stopServer(server).catch(() => {});
  }
});
