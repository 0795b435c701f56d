// Browser test of sharing data with brands: the Sharing screen and the
// consent page.
//
// Same set-up as the other browser tests (helpers.mjs): Debian's headless
// Chromium through playwright-core (which never downloads a browser) against
// a real vrm-vault server on a fresh temporary data directory. Build the
// server first (`cargo build`), or point VRM_VAULT_BIN at a binary.
//
//   cd tests/browser && npm ci && node --test
//
// The person sets up a vault; the test stores two records through the API
// and registers a brand that accepts the terms, as the brand's own software
// would (node fetch), with a redirect URI on a small HTTP server this test
// runs on 127.0.0.1 to stand in for the brand's site. Then:
//  (a) the person shares their email address with the brand on the Sharing
//      screen (after a refused attempt to let it change the address); the
//      brand gets a token for that grant and reads the address; the person
//      sees what it read and revokes the grant; the brand's next read fails;
//  (b) the brand sends the browser to /oauth/authorize (PKCE, authorization
//      details for email and phone); the consent page shows the request with
//      masked values; the person leaves out the phone number and approves;
//      the browser lands back on the brand's site with a code, which the
//      brand exchanges and then reads the email address only;
//  (c) a second request, in a browser that is not logged in and phone-sized:
//      the person logs in first, comes back to the request and denies it;
//      the brand's site receives error=access_denied;
//  and an unknown request, "Revoke everything" on the brands page, and the
// activity log. Screenshots go to artifacts/screenshots/grants-*; any console
// error that is not an HTTP error provoked on purpose, any uncaught page
// error and any Content Security Policy violation fails the test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import {
  ACTION_MS,
  DATA_ACCESS,
  acceptTerms,
  assertNoHorizontalOverflow,
  expectScreen,
  expectText,
  factValue,
  fetchJson,
  freshDataDir,
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

// Screenshots of this file start with grants-, so no file's clean-up removes
// another's.
const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'grants' });

const PASSPHRASE = 'plum orbit lantern seventy';
const BRAND_NAME = 'Corner Bookshop';
const BRAND_SITE = 'https://bookshop.example';
// A brand that registers but never accepts the terms: it cannot be given data.
const OTHER_BRAND = 'Night Owl Ads';
const EMAIL = 'ada@example.org';
const PHONE = '+44 20 7946 0018';

// --- A brand's side, as its own software would do it --------------------------

/**
 * The brand's web site: only its redirect URI matters. Records the query of
 * every visit to /callback; anything else (the browser's favicon request)
 * gets an empty answer so that it logs no error.
 */
function startBrandSite() {
  const visits = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/callback') {
      visits.push(Object.fromEntries(url.searchParams));
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${BRAND_NAME}</title></head><body><h1>Back at ${BRAND_NAME}</h1></body></html>`);
      return;
    }
    res.writeHead(204);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      resolve({ server, base, redirectUri: `${base}/callback`, visits });
    });
  });
}

/** GET /brand/v1/data with an access token carrying a grant. */
function readData(baseUrl, accessToken) {
  return fetchJson(`${baseUrl}/brand/v1/data`, {
    headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' },
  });
}

/** RFC 7636: a random verifier and its S256 challenge. */
function pkcePair() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** The authorization request a brand sends the browser to (RFC 6749 §4.1.1, RFC 9396). */
function authorizeUrl(baseUrl, client, site, { state, challenge, actions = ['read'] }) {
  const details = [{
    type: DATA_ACCESS,
    fields: ['contact.email', 'contact.phone'],
    actions,
    purpose: 'dpv:ServiceProvision',
    locations: [`${baseUrl}/brand/v1`],
    expires_in: 86_400,
  }];
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: site.redirectUri,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    authorization_details: JSON.stringify(details),
    resource: `${baseUrl}/brand/v1`,
  });
  return `${baseUrl}/oauth/authorize?${query}`;
}

/** The brand's next read after access ended: 401 with the RFC 6750 challenge. */
function assertRefused(answer, why) {
  assert.equal(answer.status, 401, `${why}: the brand's read is refused (got ${answer.status}: ${JSON.stringify(answer.data)})`);
  assert.match(answer.headers.get('www-authenticate') || '', /invalid_token/, `${why}: WWW-Authenticate names invalid_token`);
}

// --- The test ---------------------------------------------------------------------

test('sharing: offer a grant, read, revoke; consent: narrow and approve, log in and deny', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const site = await startBrandSite();
  const { context, violations } = await newContext({ width: 1280, height: 900 });
  const page = await context.newPage();
  const watch = watchPage(page);
  const phoneContexts = [];
  let ownerToken;
  let client;
  let other;
  let offered; // the grant the person made on the Sharing screen
  let offeredToken;
  let consentToken;
  let approvedRequest;

  try {
    await step(t, page, 'set up a vault', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
    }, 40_000);

    await step(t, page, 'store two records and register two brands through the API', async () => {
      ownerToken = await ownerLogin(server.url, PASSPHRASE);
      for (const [p, value] of [['contact.email', EMAIL], ['contact.phone', PHONE]]) {
        const put = await ownerApi(server.url, ownerToken, 'PUT', `/api/v1/records/${p}`, { value });
        assert.ok([200, 201].includes(put.status), `PUT ${p} answers 200/201 (got ${put.status}: ${JSON.stringify(put.data)})`);
      }
      const invitation = await ownerApi(server.url, ownerToken, 'POST', '/api/v1/invitations', { max_uses: 2, note: 'two brands' });
      assert.equal(invitation.status, 201, `POST /api/v1/invitations answers 201 (got ${invitation.status}: ${JSON.stringify(invitation.data)})`);
      const registered = await registerBrand(server.url, invitation.data.initial_access_token, {
        client_name: BRAND_NAME,
        client_uri: BRAND_SITE,
        grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [site.redirectUri],
        scope: 'agreements:read',
      });
      assert.equal(registered.status, 201, `POST /oauth/register answers 201 (got ${registered.status}: ${JSON.stringify(registered.data)})`);
      client = registered.data;
      await acceptTerms(server.url, client);
      const second = await registerBrand(server.url, invitation.data.initial_access_token, {
        client_name: OTHER_BRAND,
        grant_types: ['client_credentials'],
        scope: 'agreements:read',
      });
      assert.equal(second.status, 201, `the second brand registers (got ${second.status}: ${JSON.stringify(second.data)})`);
      other = second.data;
    });

    await step(t, page, 'the Sharing screen: nothing shared; only the brand with an agreement can be chosen', async () => {
      await openFromNav(page, 'Sharing', 'Sharing');
      await expectText(page.locator('.grants-active p.hint'), 'You share nothing with any brand right now.');
      await expectText(page.locator('.grants-ended p.hint'), 'No grant has ended yet.');
      const brand = page.getByLabel('Brand', { exact: true });
      await brand.waitFor();
      assert.equal(await brand.inputValue(), client.client_id, 'the one brand that can be given data is chosen already');
      const blocked = page.locator(`.share-form option[value="${other.client_id}"]`);
      assert.equal(await blocked.isDisabled(), true, 'a brand without an agreement cannot be chosen');
      assert.match(await blocked.innerText(), /has not accepted your terms yet/, 'and the option says why');
      for (const label of ['Email address (contact.email)', 'Phone number (contact.phone)']) {
        assert.equal(await page.getByLabel(label, { exact: true }).isChecked(), false, `${label} is offered, unticked`);
      }
      await shot(page, '01-sharing-empty');
    });

    await step(t, page, 'the form checks itself before sending', async () => {
      await page.getByRole('button', { name: 'Share', exact: true }).click();
      await expectText(page.locator('.share-form .field-error'), 'Tick at least one piece of data to share.');
      await page.getByLabel('Until a date', { exact: true }).check();
      await page.getByRole('button', { name: 'Share', exact: true }).click();
      await expectText(page.locator('.share-form .field-error'), 'Choose the last day of the grant.');
      await page.getByLabel('24 hours', { exact: true }).check();
      await page.locator('.kinds summary', { hasText: 'Or share a whole kind of data' }).click();
      assert.equal(await page.getByLabel('Telephone number', { exact: true }).isChecked(), false, 'whole kinds of data are offered too');
      await page.locator('.kinds summary').click();
    });

    await step(t, page, 'letting the brand change the email address is refused by the terms, with the reason', async () => {
      watch.allowHttpError(422, '/api/v1/grants');
      await page.getByLabel('Email address (contact.email)', { exact: true }).check();
      await page.getByLabel('Read and change it', { exact: true }).check();
      await page.getByRole('button', { name: 'Share', exact: true }).click();
      const error = page.locator('.share-form .message-error');
      await expectText(error, /^Your terms (do not allow|forbid|let brands read) .*your email address/);
      assert.doesNotMatch(await error.innerText(), /Deciding rule|permission\[|prohibition\[|dpv:|pd:/, 'in words, without rule numbers or codes');
      assert.doesNotMatch(await error.innerText(), /this: Your terms/i, 'the reason is not introduced twice');
      await shot(page, '02-sharing-refused');
    });

    await step(t, page, 'share the email address for delivery, 24 hours, at most 5 uses', async () => {
      await page.getByLabel('Read it', { exact: true }).check();
      await page.getByLabel('Why (the purpose)', { exact: true }).selectOption('dpv:DeliveryOfGoods');
      await page.getByLabel('How many times it may use the grant (optional)', { exact: true }).fill('5');
      await page.getByRole('button', { name: 'Share', exact: true }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Shared with ${BRAND_NAME}: Email address, until`);
      assert.equal(await page.locator('.share-form .message-error:visible').count(), 0, 'the earlier refusal is gone');
      const card = page.locator('.grants-active li.grant');
      await card.first().waitFor();
      assert.equal(await card.count(), 1, 'one active grant');
      offered = await card.getAttribute('data-id');
      assert.ok(offered, 'the card carries the grant id');
      await expectText(page.locator('.grant-group h3'), BRAND_NAME);
      await expectText(card.locator('.tag'), /^Active$/);
      assert.equal((await factValue(card, 'It may').innerText()).trim(), 'Read it');
      assert.equal((await factValue(card, 'Why').innerText()).trim(), 'To deliver goods to you');
      assert.equal((await factValue(card, 'Used').innerText()).trim(), '0 of 5 times');
      assert.equal((await factValue(card, 'How it started').innerText()).trim(), 'You shared it');
      assert.match(await factValue(card, 'Data').innerText(), /Email address \(contact\.email\)/);
      assert.doesNotMatch(await factValue(card, 'Data').innerText(), /contact\.phone/);
      await shot(page, '03-sharing-offered');
    });

    await step(t, page, 'the brand gets a token for the grant and reads the email address only', async () => {
      const token = await tokenRequest(server.url, client, {
        grant_type: 'client_credentials',
        authorization_details: JSON.stringify([{ type: DATA_ACCESS, grant_id: offered }]),
      });
      assert.equal(token.status, 200, `a token for the grant (got ${token.status}: ${JSON.stringify(token.data)})`);
      offeredToken = token.data.access_token;
      const read = await readData(server.url, offeredToken);
      assert.equal(read.status, 200, `GET /brand/v1/data answers 200 (got ${read.status}: ${JSON.stringify(read.data)})`);
      assert.equal(read.data.grant_id, offered);
      assert.deepEqual(read.data.fields, { 'contact.email': EMAIL }, 'the granted field and nothing else');
    });

    await step(t, page, '"What it read" lists the read, with when and which field, and brings the count up to date', async () => {
      // The page was loaded before the read: its count is from then.
      const card = page.locator(`.grants-active li.grant[data-id="${offered}"]`);
      await card.waitFor();
      assert.equal((await factValue(card, 'Used').innerText()).trim(), '0 of 5 times');
      const history = card.locator('[data-action="accesses"]');
      assert.equal(await history.getAttribute('aria-expanded'), 'false');
      await history.click();
      const accesses = card.locator('.accesses');
      await expectText(accesses, '1 request with this grant');
      await expectText(factValue(card, 'Used'), /^1 of 5 times$/);
      assert.notEqual((await factValue(card, 'Last used').innerText()).trim(), 'Not yet', 'the last use too');
      assert.equal(await history.getAttribute('aria-expanded'), 'true');
      const item = accesses.locator('li');
      assert.equal(await item.count(), 1);
      assert.match(await item.innerText(), /Read: Email address \(contact\.email\)/);
      assert.equal(await item.locator('time').count(), 1, 'when it happened');
      await shot(page, '04-sharing-what-it-read');
    });

    await step(t, page, 'revoke the grant after confirming: the brand\'s next read is refused', async () => {
      const card = page.locator(`.grants-active li.grant[data-id="${offered}"]`);
      const revoke = card.getByRole('button', { name: `Revoke ${BRAND_NAME}’s access to Email address` });
      await revoke.click();
      const confirm = card.locator('.confirm');
      await expectText(confirm, `Revoke ${BRAND_NAME}’s access to Email address?`);
      await shot(page, '05-sharing-revoke-confirm');
      await confirm.getByRole('button', { name: 'Yes, revoke' }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Revoked. ${BRAND_NAME} can no longer get Email address.`);
      await expectText(page.locator('.grants-active p.hint'), 'You share nothing with any brand right now.');
      const ended = page.locator(`.grants-ended li.grant[data-id="${offered}"]`);
      await expectText(ended.locator('.tag'), /^Revoked$/);
      assert.equal(await ended.getByRole('button', { name: /^Revoke/ }).count(), 0, 'an ended grant cannot be revoked again');
      assertRefused(await readData(server.url, offeredToken), 'after the revocation');
      await shot(page, '06-sharing-revoked');
    });

    let firstRequest;
    await step(t, page, 'the brand asks: /oauth/authorize leads the browser to the consent page', async () => {
      const pkce = pkcePair();
      firstRequest = { state: randomBytes(12).toString('hex'), pkce };
      const response = await page.goto(authorizeUrl(server.url, client, site, { state: firstRequest.state, challenge: pkce.challenge }));
      assert.ok(response, 'the navigation got an answer');
      const landed = new URL(response.url());
      assert.equal(landed.pathname, '/consent', `the vault sent the browser to /consent (got ${response.url()})`);
      assert.equal(response.status(), 200, 'the vault serves the app at /consent');
      approvedRequest = landed.searchParams.get('request');
      assert.ok(approvedRequest, 'with the request id');
      await expectScreen(page, 'A brand asks for your data');
      assert.equal(new URL(page.url()).hash, `#/consent?request=${encodeURIComponent(approvedRequest)}`, 'the app routes it in the fragment');
    });

    await step(t, page, 'the consent page says who asks, for what, why, with masked values and the terms\' verdict', async () => {
      const brand = page.locator('.consent-brand');
      await expectText(brand.locator('h2'), BRAND_NAME);
      assert.equal((await factValue(brand, 'Website').innerText()).trim(), new URL(BRAND_SITE).host);
      assert.equal((await factValue(brand, 'Sends you back to').innerText()).trim(), new URL(site.base).host);
      const email = page.getByLabel('Email address (contact.email)', { exact: true });
      const phone = page.getByLabel('Phone number (contact.phone)', { exact: true });
      assert.equal(await email.isChecked(), true, 'every asked field starts ticked');
      assert.equal(await phone.isChecked(), true);
      const fields = await page.locator('.consent-fields').innerText();
      assert.match(fields, /Now: .*•/, 'a masked hint of the current value is shown');
      const text = await page.locator('#screen').innerText();
      assert.ok(!text.includes(EMAIL) && !text.includes(PHONE), 'the values themselves are not on the page');
      assert.equal((await factValue(page.locator('.consent-form'), 'It may').innerText()).trim(), 'Read it');
      assert.equal((await factValue(page.locator('.consent-form'), 'Why').innerText()).trim().length > 0, true, 'the purpose is named');
      await expectText(page.locator('.consent-decision'), 'Your terms allow this.');
      await expectText(page.locator('.consent-open-for'), /This request stays open for about \d+ minutes?\./);
      const until = page.getByLabel('For how long', { exact: true });
      assert.match(await until.locator('option').first().innerText(), /^As asked: until /);
      assert.ok(await until.locator('option[value="1h"]').count() === 1, 'a shorter time can be chosen');
      await shot(page, '07-consent');
    });

    await step(t, page, 'leave out the phone number, give 1 hour, approve: the brand\'s site gets a code and the state', async () => {
      await page.getByLabel('Phone number (contact.phone)', { exact: true }).uncheck();
      await page.getByLabel('For how long', { exact: true }).selectOption('1h');
      firstRequest.approvedAt = Date.now();
      await page.getByRole('button', { name: 'Approve', exact: true }).click();
      await page.waitForURL((url) => url.href.startsWith(site.redirectUri), { timeout: ACTION_MS });
      await page.locator('h1', { hasText: `Back at ${BRAND_NAME}` }).waitFor();
      const visit = site.visits.at(-1);
      assert.ok(visit && visit.code, `the redirect carries a code (got ${JSON.stringify(visit)})`);
      assert.equal(visit.state, firstRequest.state, 'and the brand\'s state');
      assert.equal(visit.error, undefined);
      firstRequest.code = visit.code;
      await shot(page, '08-consent-approved-brand-site');
    });

    await step(t, page, 'the brand exchanges the code (PKCE) and reads the email address only', async () => {
      const token = await tokenRequest(server.url, client, {
        grant_type: 'authorization_code',
        code: firstRequest.code,
        redirect_uri: site.redirectUri,
        code_verifier: firstRequest.pkce.verifier,
      });
      assert.equal(token.status, 200, `the code is exchanged (got ${token.status}: ${JSON.stringify(token.data)})`);
      assert.ok(token.data.access_token, 'an access token');
      const details = token.data.authorization_details;
      assert.ok(Array.isArray(details) && details.length === 1, `authorization_details in the answer (got ${JSON.stringify(details)})`);
      assert.deepEqual(details[0].fields, ['contact.email'], 'the grant has what the person approved, not what was asked');
      const grant = await ownerApi(server.url, ownerToken, 'GET', `/api/v1/grants/${encodeURIComponent(details[0].grant_id)}`);
      assert.equal(grant.status, 200, `GET /api/v1/grants/{id} answers 200 (got ${grant.status}: ${JSON.stringify(grant.data)})`);
      const lasts = Date.parse(grant.data.expires_at) - firstRequest.approvedAt;
      assert.ok(lasts > 55 * 60_000 && lasts <= 61 * 60_000, `the grant lasts the hour the person chose, not the day asked for (got ${grant.data.expires_at})`);
      assert.equal(grant.data.origin, 'consent');
      consentToken = token.data.access_token;
      const read = await readData(server.url, consentToken);
      assert.equal(read.status, 200, `GET /brand/v1/data answers 200 (got ${read.status}: ${JSON.stringify(read.data)})`);
      assert.deepEqual(read.data.fields, { 'contact.email': EMAIL }, 'only the email address');
    });

    await step(t, page, 'the approved grant is listed as asked by the brand', async () => {
      await page.goto(`${server.url}/#/grants`);
      await expectScreen(page, 'Sharing');
      const card = page.locator('.grants-active li.grant');
      await card.first().waitFor();
      assert.equal(await card.count(), 1);
      assert.equal((await factValue(card, 'How it started').innerText()).trim(), 'The brand asked and you approved');
      assert.equal((await factValue(card, 'Why').innerText()).trim().length > 0, true);
      assert.equal((await factValue(card, 'Used').innerText()).trim(), '1 time (no limit)');
      await shot(page, '09-sharing-consented');
    });

    await step(t, page, 'an answered or unknown request is explained, and nothing is shared', async () => {
      watch.allowHttpError(404, `/api/v1/consent/${approvedRequest}`);
      watch.allowHttpError(404, '/api/v1/consent/no-such-request');
      for (const id of [approvedRequest, 'no-such-request']) {
        await page.goto(`${server.url}/consent?request=${encodeURIComponent(id)}`);
        await expectScreen(page, 'A brand asks for your data');
        await expectText(page.locator('.consent-closed'), 'This request is no longer open');
        assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0, 'nothing to approve');
      }
      await shot(page, '10-consent-closed');
    });

    await step(t, page, 'a request the terms rule out (changing the data) goes straight back to the brand, naming the rule', async () => {
      // RFC 9396 §5: the person is not asked to approve what the terms cannot allow; the brand
      // hears it at once, with the deciding rule, its state and the vault's issuer (RFC 9207).
      const state = randomBytes(12).toString('hex');
      await page.goto(authorizeUrl(server.url, client, site, { state, challenge: pkcePair().challenge, actions: ['read', 'write'] }));
      await page.waitForURL((url) => url.href.startsWith(site.redirectUri), { timeout: ACTION_MS });
      const visit = site.visits.at(-1);
      assert.equal(visit.error, 'invalid_authorization_details', `the brand's site is told why (got ${JSON.stringify(visit)})`);
      assert.match(visit.error_description || '', /^the person's terms do not permit this request \(.+\): .+/, 'the deciding rule is named');
      assert.equal(visit.state, state);
      assert.equal(new URL(visit.iss).origin, new URL(server.url).origin, 'the vault names itself as the issuer');
      assert.equal(visit.code, undefined, 'no code');
    });

    await step(t, page, 'a phone-sized browser that is not logged in: log in first, then deny', async () => {
      const phone = await newContext({ width: 360, height: 740 });
      phoneContexts.push(phone);
      const phonePage = await phone.context.newPage();
      const phoneWatch = watchPage(phonePage);
      phoneWatch.allowHttpError(401, '/api/v1/session'); // the app asks whether it is logged in
      const state = randomBytes(12).toString('hex');
      const response = await phonePage.goto(authorizeUrl(server.url, client, site, { state, challenge: pkcePair().challenge }));
      const request = new URL(response.url()).searchParams.get('request');
      assert.ok(request, `the vault sent the browser to the consent page (got ${response.url()})`);
      await expectScreen(phonePage, 'Log in');
      await expectText(phonePage.locator('#flash'), 'A brand is asking for some of your data. Log in to see the request and answer it.');
      await assertNoHorizontalOverflow(phonePage, 'the login screen before a consent');
      await shot(phonePage, 'mobile360-01-login-for-consent');
      await phonePage.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await phonePage.getByRole('button', { name: 'Log in' }).click();
      await expectScreen(phonePage, 'A brand asks for your data');
      assert.equal(new URL(phonePage.url()).hash, `#/consent?request=${encodeURIComponent(request)}`, 'back at the same request');
      await expectText(phonePage.locator('.consent-brand h2'), BRAND_NAME);
      await phonePage.getByLabel('Email address (contact.email)', { exact: true }).waitFor();
      await assertNoHorizontalOverflow(phonePage, 'the consent page');
      await shot(phonePage, 'mobile360-02-consent');
      await phonePage.getByRole('button', { name: 'Deny', exact: true }).click();
      await phonePage.waitForURL((url) => url.href.startsWith(site.redirectUri), { timeout: ACTION_MS });
      const visit = site.visits.at(-1);
      assert.equal(visit.error, 'access_denied', `the brand's site is told access_denied (got ${JSON.stringify(visit)})`);
      assert.equal(visit.state, state);
      assert.equal(visit.code, undefined, 'and gets no code');
      phoneWatch.assertClean('on the phone-sized login and consent pages');
      assert.deepEqual(phone.violations, [], 'no Content Security Policy violations on the phone');
    }, 40_000);

    await step(t, page, 'the brands page: "Revoke everything" ends the approved grant', async () => {
      await page.goto(`${server.url}/#/brands`);
      await expectScreen(page, 'Brands');
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await card.getByRole('link', { name: `What it can see (${BRAND_NAME})` }).waitFor();
      await card.getByRole('button', { name: `Revoke everything shared with ${BRAND_NAME}` }).click();
      const confirm = card.locator('.confirm');
      await expectText(confirm, `Revoke everything you share with ${BRAND_NAME}?`);
      await shot(page, '11-brands-revoke-everything');
      await confirm.getByRole('button', { name: 'Yes, revoke everything' }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Revoked 1 grant of ${BRAND_NAME}.`);
      assert.equal(await card.locator('.confirm').count(), 0, 'the question is closed');
      assertRefused(await readData(server.url, consentToken), 'after "Revoke everything"');
    });

    await step(t, page, '"What it can see" leads to the brand on the Sharing screen', async () => {
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await card.getByRole('link', { name: `What it can see (${BRAND_NAME})` }).click();
      await expectScreen(page, 'Sharing');
      await expectText(page.locator('.notice-slot .message-info'), `You share nothing with ${BRAND_NAME} right now.`);
      assert.equal(await page.getByLabel('Brand', { exact: true }).inputValue(), client.client_id, 'the form is set to that brand');
      assert.equal(await page.locator('.grants-ended li.grant').count(), 2, 'both ended grants are listed');
    });

    await step(t, page, 'Activity tells what happened in words', async () => {
      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('.verify .message-success'), 'Your activity log is intact');
      for (const words of ['Shared data with a brand', 'A brand read your data', 'Denied a brand’s request for data',
        'Revoked everything shared with a brand']) {
        await expectText(page.locator('li.entry'), words);
      }
      await shot(page, '12-activity');
    });

    await step(t, page, '360 px: the Sharing screen fits a phone', async () => {
      await page.setViewportSize({ width: 360, height: 740 });
      await openFromNav(page, 'Sharing', 'Sharing');
      await page.locator('.grants-ended li.grant').first().waitFor();
      await page.locator('.grants-ended li.grant [data-action="accesses"]').first().click();
      await page.locator('.grants-ended .accesses li').first().waitFor();
      await assertNoHorizontalOverflow(page, 'the Sharing screen');
      await shot(page, 'mobile360-03-sharing');
    }, 30_000);

    watch.assertClean('on the Sharing, consent and brands screens');
    assert.deepEqual(violations, [], 'no Content Security Policy violations');
  } finally {
    for (const phone of phoneContexts) await phone.context.close().catch(() => {});
    await context.close().catch(() => {});
    site.server.closeAllConnections();
    await new Promise((resolve) => site.server.close(resolve));
    await stopServer(server).catch(() => {});
  }
});
