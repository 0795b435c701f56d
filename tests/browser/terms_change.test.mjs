// Browser test of what the person sees when they publish new terms while a
// brand holds a grant: the Brands screen says, in plain words, that the brand
// has not accepted the new terms yet and that what they share with it is
// paused; the Sharing screen shows the grant paused and what the brand was
// told; once the brand accepts, the warning goes and the grant is active
// again, and the card says the brand was told it works again.
//
// Same set-up as the other browser tests (helpers.mjs). The brand's side
// (registration, acceptance) and the publication go through the API, as the
// brand's software and a script would; only what the person reads is checked
// in the browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  acceptTerms,
  expectScreen,
  expectText,
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
  watchPage,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'terms-change' });

const PASSPHRASE = 'amber quartz lantern ninety';
const BRAND_NAME = 'Bistro Lilas';

test('new terms: the brand is shown as not having accepted, its grant paused, then restored', { timeout: 180_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context } = await newContext({ width: 1280, height: 900 });
  const page = await context.newPage();
  const watch = watchPage(page);
  let ownerToken;
  let client;

  try {
    await step(t, page, 'set up a vault, a record, a brand with an agreement and a grant', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      ownerToken = await ownerLogin(server.url, PASSPHRASE);
      const put = await ownerApi(server.url, ownerToken, 'PUT', '/api/v1/records/contact.email', { value: 'lin@example.org' });
      assert.ok([200, 201].includes(put.status), JSON.stringify(put.data));
      const invitation = await ownerApi(server.url, ownerToken, 'POST', '/api/v1/invitations', { note: 'bistro' });
      const registered = await registerBrand(server.url, invitation.data.initial_access_token, { client_name: BRAND_NAME });
      assert.equal(registered.status, 201, JSON.stringify(registered.data));
      client = registered.data;
      await acceptTerms(server.url, client);
      const grant = await ownerApi(server.url, ownerToken, 'POST', '/api/v1/grants', {
        client_id: client.client_id,
        fields: ['contact.email'],
        actions: ['read'],
        purpose: 'dpv:RequestedServiceProvision',
        expires_at: new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      });
      assert.equal(grant.status, 201, JSON.stringify(grant.data));
    }, 40_000);

    await step(t, page, 'publish new terms (only the description changes)', async () => {
      const current = await ownerApi(server.url, ownerToken, 'GET', '/api/v1/terms');
      const terms = { ...current.data.terms, description: 'The same rules, said more kindly.' };
      const published = await ownerApi(server.url, ownerToken, 'PUT', '/api/v1/terms', { terms });
      assert.equal(published.status, 201, JSON.stringify(published.data));
    });

    await step(t, page, 'the Brands screen says who has not accepted yet', async () => {
      await openFromNav(page, 'Brands', 'Brands');
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await expectText(card.locator('.terms-waiting'), 'Accepted version 1 of your terms but has not accepted your new terms (version 2) yet');
      await expectText(card.locator('.terms-waiting'), '1 thing you share with it is paused');
      await expectText(card.locator('.terms-waiting'), 'It was told on');
      await shot(page, '01-brands-waiting');
    });

    await step(t, page, 'the Sharing screen shows the grant paused and what the brand was told', async () => {
      await openFromNav(page, 'Sharing', 'Sharing');
      const card = page.locator('li.card.grant').first();
      await expectText(card, 'Paused until it accepts your new terms');
      await expectText(card, `${BRAND_NAME} was told that this is paused until it accepts your new terms on`);
      await shot(page, '02-sharing-paused');
    });

    await step(t, page, 'after the brand accepts, the warning is gone and the grant works again', async () => {
      await acceptTerms(server.url, client);
      await openFromNav(page, 'Brands', 'Brands');
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await expectText(card, 'Accepted your current terms (version 2)');
      assert.equal(await card.locator('.terms-waiting').count(), 0, 'no warning once accepted');
      await openFromNav(page, 'Sharing', 'Sharing');
      const grant = page.locator('li.card.grant').first();
      await expectText(grant, `${BRAND_NAME} was told that this works again under your new terms on`);
      await shot(page, '03-sharing-restored');
    });

    watch.assertClean('on these screens');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
