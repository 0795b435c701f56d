// Browser test of the terms editor and the brands page.
//
// Same set-up as the other browser tests (helpers.mjs): Debian's headless
// Chromium through playwright-core (which never downloads a browser) against
// a real vrm-vault server on a fresh temporary data directory. Build the
// server first (`cargo build`), or point VRM_VAULT_BIN at a binary.
//
//   cd tests/browser && npm ci && node --test
//
// The person sets up a vault, changes their terms (a refused edit, then a
// narrower version that is published as version 2), invites a brand, and
// the test registers that brand over OAuth dynamic client registration and
// lets it accept the terms, as a brand's own software would (node fetch).
// The person then suspends, resumes, ends the agreement with and removes the
// brand, and the test checks what the brand sees at the token endpoint after
// each. Screenshots go to artifacts/screenshots/brands-terms-*; any console
// error that is not an HTTP error provoked on purpose, any uncaught page
// error and any Content Security Policy violation fails the test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  acceptTerms,
  assertNoHorizontalOverflow,
  expectScreen,
  expectText,
  factValue,
  fetchJson,
  freshDataDir,
  newContext,
  openFromNav,
  registerBrand as registerClient,
  setUpBrowserTests,
  setUpVault,
  startServer,
  stopServer,
  tokenRequest,
  watchPage,
} from './helpers.mjs';

// Screenshots of this file start with brands-terms-, so no file's clean-up
// removes another's.
const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'brands-terms' });

const PASSPHRASE = 'plum orbit lantern seventy';
const BRAND_NAME = 'Corner Bookshop';

// --- A brand's side, as its own software would do it --------------------------

/** RFC 7591 registration of this brand with the invitation's initial access token. */
function registerBrand(baseUrl, initialAccessToken) {
  return registerClient(baseUrl, initialAccessToken, {
    client_name: BRAND_NAME,
    grant_types: ['client_credentials'],
    scope: 'intents:read agreements:read',
  });
}

/** The client-credentials grant: what a brand does before every use of the vault. */
function requestToken(baseUrl, client) {
  return tokenRequest(baseUrl, client, { grant_type: 'client_credentials', scope: 'agreements:read' });
}

// --- Terms documents ---------------------------------------------------------------

/** The full fingerprint behind a short version code (what brands accept). */
async function fingerprint(fact) {
  return (await fact.locator('[data-hash]').getAttribute('data-hash')) || '';
}

/**
 * A narrower version of the sd-base template: no permission to modify
 * anything, and reading only until the end of 2030.
 */
function narrowed(template) {
  const doc = structuredClone(template);
  doc.permission = [doc.permission[0]];
  doc.permission[0].constraint.push({
    leftOperand: 'dateTime',
    operator: 'lt',
    rightOperand: { '@value': '2030-12-31T23:59:59Z', '@type': 'xsd:dateTime' },
  });
  return doc;
}

// --- The test ---------------------------------------------------------------------

test('terms: refuse, check, publish version 2; brands: invite, register, suspend, resume, terminate, remove', { timeout: 180_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 1280, height: 900 });
  const page = await context.newPage();
  const watch = watchPage(page);
  const editor = page.getByLabel('Terms document (JSON)', { exact: true });
  let template;
  let published;
  let invitation;
  let client;

  try {
    await step(t, page, 'set up a vault', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
    }, 40_000);

    await step(t, page, 'the terms screen shows version 1 in plain words', async () => {
      await openFromNav(page, 'My terms', 'My terms');
      const current = page.locator('.terms-current');
      await expectText(factValue(current, 'Version'), /^1$/);
      // The basis in words and a short version code, not SD-BASE and a hash.
      await expectText(factValue(current, 'Starting point'), 'Service delivery only');
      assert.match((await factValue(current, 'Version code').innerText()).trim(), /^[0-9a-f]{8}$/);
      assert.match(await fingerprint(factValue(current, 'Version code')), /^sha256:[0-9a-f]{64}$/);
      assert.ok(await current.locator('ul.summary li').count() >= 1, 'the plain-language summary is listed');
      assert.doesNotMatch(await current.locator('ul.summary').innerText(), /\b(pd|dpv|p7012):/, 'the summary has no codes');
      // The editor, under Advanced, starts with the current terms.
      await page.locator('.terms-advanced > summary').click();
      const doc = JSON.parse(await editor.inputValue());
      assert.equal(doc.basis, 'SD-BASE');
      await page.locator('.terms-versions li.version').first().waitFor();
      assert.equal(await page.locator('.terms-versions li.version').count(), 1, 'one version so far');
      await shot(page, '01-terms');
    });

    await step(t, page, 'load the sd-base template into the editor', async () => {
      const templates = await page.evaluate(async () => (await (await fetch('/api/v1/terms/templates')).json()).templates);
      template = templates.find((x) => x.id === 'sd-base');
      assert.ok(template, 'the sd-base template is offered');
      await page.getByLabel('Start from', { exact: true }).selectOption('template:sd-base');
      await expectText(page.locator('#terms-source-hint'), 'SD-BASE');
      await editor.fill('');
      await page.getByRole('button', { name: 'Load into the editor' }).click();
      assert.deepEqual(JSON.parse(await editor.inputValue()), template.terms, 'the editor holds the template');
    });

    await step(t, page, 'text that is not JSON is explained before anything is sent', async () => {
      await editor.fill('{ "basis": "SD-BASE", ');
      await page.getByRole('button', { name: 'Check', exact: true }).click();
      await expectText(page.locator('.terms-problem .message-error'), 'This is not valid JSON.');
      assert.equal(await editor.getAttribute('aria-invalid'), 'true', 'the editor is marked invalid');
    });

    await step(t, page, 'a permission to "use" data is refused, with where and why', async () => {
      watch.allowHttpError(422, '/api/v1/terms/preview');
      const widened = structuredClone(template.terms);
      widened.permission[0].action = 'use';
      await editor.fill(JSON.stringify(widened, null, 2));
      await page.getByRole('button', { name: 'Check', exact: true }).click();
      const problem = page.locator('.terms-problem .message-error');
      await expectText(problem, 'These terms cannot be published yet.');
      const where = (await problem.locator('.problem-where code').innerText()).trim();
      assert.match(where, /^permission\[0\]/, `the location names the first permission (got ${where})`);
      assert.match(await problem.locator('.problem-where').innerText(), /\(line \d+\)/, 'the line is given');
      assert.equal(await editor.getAttribute('aria-invalid'), 'true');
      await problem.getByRole('button', { name: 'Show in the editor' }).click();
      const selection = await editor.evaluate((node) => ({
        focused: document.activeElement === node,
        text: node.value.slice(node.selectionStart, node.selectionEnd),
      }));
      assert.ok(selection.focused, 'the editor has focus');
      assert.match(selection.text, /"use"/, 'the refused part is selected in the editor');
      await shot(page, '02-terms-refused');
    });

    await step(t, page, 'check a narrower version: its summary and fingerprint are shown', async () => {
      await editor.fill(JSON.stringify(narrowed(template.terms), null, 2));
      assert.equal(await page.locator('.terms-problem .message').count(), 0, 'typing clears the old problem');
      await page.getByRole('button', { name: 'Check', exact: true }).click();
      const preview = page.locator('.terms-preview .message-success');
      await expectText(preview, 'These terms can be published');
      assert.match(await fingerprint(factValue(preview, 'Version code')), /^sha256:[0-9a-f]{64}$/);
      assert.ok(await preview.locator('ul.summary li').count() >= 1, 'the summary is shown');
      assert.equal(await editor.getAttribute('aria-invalid'), null, 'the editor is no longer marked invalid');
      await shot(page, '03-terms-checked');
    });

    await step(t, page, 'publish it after the warning that brands must accept again', async () => {
      await page.getByRole('button', { name: 'Publish…' }).click();
      const confirm = page.locator('.confirm', { hasText: 'Publish these terms as version 2?' });
      await confirm.waitFor();
      await expectText(confirm, 'Every brand must accept the new version');
      await shot(page, '04-terms-publish-confirm');
      await confirm.getByRole('button', { name: 'Publish version 2' }).click();
      await expectText(page.locator('.terms-preview .message-success'), 'Published version 2.');
      const current = page.locator('.terms-current');
      await expectText(factValue(current, 'Version'), /^2$/);
      published = await fingerprint(factValue(current, 'Version code'));
      const versions = page.locator('.terms-versions li.version');
      await expectText(versions.first(), 'Version 2');
      assert.equal(await versions.count(), 2, 'two versions are listed');
      assert.equal((await versions.first().locator('.tag').innerText()).trim(), 'Current');
      assert.equal(await versions.nth(1).locator('.tag').count(), 0, 'version 1 is no longer current');
      const doc = JSON.parse(await editor.inputValue());
      assert.equal(doc.permission.length, 1, 'the editor holds what was published');
      await shot(page, '05-terms-published');
    });

    await step(t, page, 'publishing the same text again changes nothing', async () => {
      await page.getByRole('button', { name: 'Publish…' }).click();
      await expectText(page.locator('.terms-preview .message-info'), 'Nothing to publish');
      assert.equal(await page.locator('.terms-versions li.version').count(), 2);
    });

    await step(t, page, 'view version 1 from the history', async () => {
      const first = page.locator('.terms-versions li.version[data-version="1"]');
      const toggle = first.getByRole('button', { name: 'View version 1' });
      await toggle.click();
      const viewer = first.locator('.version-viewer');
      await viewer.waitFor({ state: 'visible' });
      await expectText(factValue(viewer, 'Version'), /^1$/);
      assert.notEqual(await fingerprint(factValue(viewer, 'Version code')), published, 'version 1 has its own fingerprint');
      assert.equal(await first.getByRole('button', { name: 'Hide version 1' }).getAttribute('aria-expanded'), 'true');
      await viewer.locator('summary', { hasText: 'The document' }).click();
      const shown = JSON.parse(await viewer.locator('pre.terms-json').innerText());
      assert.equal(shown.permission.length, 2, 'version 1 still has both permissions');
      await shot(page, '06-terms-version-1');
    });

    await step(t, page, 'the brands page starts empty; the invitation form checks its numbers', async () => {
      await openFromNav(page, 'Brands', 'Brands');
      await expectText(page.locator('.cards-host p.hint'), 'No brand has registered yet.');
      await page.getByLabel('Valid for (hours)', { exact: true }).fill('0');
      await page.getByRole('button', { name: 'Create invitation' }).click();
      await expectText(page.locator('.field-error'), 'must be a whole number from 1 to 720');
    });

    await step(t, page, 'create an invitation: its token is shown once', async () => {
      await page.getByLabel('Valid for (hours)', { exact: true }).fill('24');
      await page.getByLabel('How many brands may register with it', { exact: true }).fill('1');
      await page.getByLabel('Note (optional)', { exact: true }).fill(BRAND_NAME);
      await page.getByRole('button', { name: 'Create invitation' }).click();
      const box = page.locator('.token-box');
      await expectText(box, 'will not be shown again');
      invitation = {
        token: (await page.locator('#invitation-token').innerText()).trim(),
        endpoint: (await page.locator('#registration-endpoint').innerText()).trim(),
      };
      assert.match(invitation.token, /^vrmia_/);
      assert.equal(invitation.endpoint, `${server.url}/oauth/register`);
      assert.ok(await box.getByRole('button', { name: 'Copy token' }).isVisible(), 'a copy button is offered');
      const item = page.locator('li.invitation', { hasText: BRAND_NAME });
      await expectText(item.locator('.tag'), 'Active');
      await expectText(item, 'Used 0 of 1 time');
      await shot(page, '07-brands-invitation');
    });

    await step(t, page, 'a brand registers with the token, once, and accepts the terms', async () => {
      const registered = await registerBrand(server.url, invitation.token);
      assert.equal(registered.status, 201, `POST /oauth/register answers 201 (got ${registered.status}: ${JSON.stringify(registered.data)})`);
      client = registered.data;
      assert.ok(client.client_id && client.client_secret, 'the brand got a client id and secret');
      const again = await registerBrand(server.url, invitation.token);
      assert.equal(again.status, 401, `a used-up invitation is refused (got ${again.status})`);
      assert.equal(again.data && again.data.error, 'invalid_token');
      const before = await requestToken(server.url, client);
      assert.equal(before.status, 400, `no token before accepting the terms (got ${before.status}: ${JSON.stringify(before.data)})`);
      assert.equal(before.data && before.data.error, 'unauthorized_client');
      const terms = await acceptTerms(server.url, client);
      assert.equal(terms.hash, published, 'the brand is offered the version just published');
      assert.equal(terms.version, 2);
      const token = await requestToken(server.url, client);
      assert.equal(token.status, 200, `a token once the terms are accepted (got ${token.status}: ${JSON.stringify(token.data)})`);
    });

    await step(t, page, 'after a reload the brand and its agreement are listed', async () => {
      await page.reload();
      await expectScreen(page, 'Brands');
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await card.waitFor();
      await expectText(card.locator('.tag'), /^Active$/);
      await expectText(card.locator('.agreement-line'), 'Accepted your current terms (version 2)');
      // The ids are folded away under "Technical details", for when the brand's support asks.
      assert.equal(await factValue(card, 'Client ID').isVisible(), false, 'the client id is not on show');
      await card.getByText('Technical details', { exact: true }).click();
      assert.equal((await factValue(card, 'Client ID').innerText()).trim(), client.client_id);
      assert.ok((await factValue(card, 'Knows you as').innerText()).trim().length > 0, 'the pseudonym is shown');
      await expectText(page.locator('li.invitation', { hasText: BRAND_NAME }).locator('.tag'), 'Used up');
      const agreement = page.locator('li.agreement', { hasText: BRAND_NAME });
      await expectText(agreement.locator('.tag'), 'Accepted');
      await expectText(agreement, 'Terms version 2 (current)');
      assert.equal(await page.locator('.token-box').count(), 0, 'the token is not shown again');
      await shot(page, '08-brands-registered');
    });

    await step(t, page, 'suspend the brand: it gets no token', async () => {
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await card.getByRole('button', { name: `Suspend ${BRAND_NAME}` }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Suspended ${BRAND_NAME}.`);
      await expectText(card.locator('.tag'), /^Suspended$/);
      const token = await requestToken(server.url, client);
      assert.ok(token.status >= 400, `a suspended brand gets no token (got ${token.status}: ${JSON.stringify(token.data)})`);
      await shot(page, '09-brands-suspended');
    });

    await step(t, page, 'resume the brand: it gets a token again', async () => {
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await card.getByRole('button', { name: `Resume ${BRAND_NAME}` }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Resumed ${BRAND_NAME}.`);
      await expectText(card.locator('.tag'), /^Active$/);
      const token = await requestToken(server.url, client);
      assert.equal(token.status, 200, `a resumed brand gets a token (got ${token.status}: ${JSON.stringify(token.data)})`);
    });

    await step(t, page, 'terminate the agreement after confirming', async () => {
      const agreement = page.locator('li.agreement', { hasText: BRAND_NAME });
      await agreement.getByRole('button', { name: `Terminate the agreement with ${BRAND_NAME}` }).click();
      const confirm = agreement.locator('.confirm');
      await expectText(confirm, `Terminate the agreement with ${BRAND_NAME}?`);
      await shot(page, '10-brands-terminate-confirm');
      await confirm.getByRole('button', { name: 'Yes, terminate' }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Terminated the agreement with ${BRAND_NAME}.`);
      await expectText(page.locator('li.agreement', { hasText: BRAND_NAME }).locator('.tag'), 'Terminated by you');
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      assert.doesNotMatch(await card.locator('.agreement-line').first().innerText(), /Accepted your current terms/);
      const token = await requestToken(server.url, client);
      assert.ok(token.status >= 400, `no token once the agreement is terminated (got ${token.status}: ${JSON.stringify(token.data)})`);
    });

    await step(t, page, 'remove the brand after confirming: its credentials stop working, its agreement is gone', async () => {
      const card = page.locator('li.brand-card', { hasText: BRAND_NAME });
      await card.getByRole('button', { name: `Remove ${BRAND_NAME}` }).click();
      await expectText(card.locator('.confirm'), `Remove ${BRAND_NAME} and delete everything about it?`);
      await card.getByRole('button', { name: 'Cancel' }).click();
      assert.equal(await card.locator('.confirm').count(), 0, 'Cancel closes the question');
      await card.getByRole('button', { name: `Remove ${BRAND_NAME}` }).click();
      await shot(page, '11-brands-remove-confirm');
      await card.getByRole('button', { name: 'Yes, remove and delete' }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Removed ${BRAND_NAME}.`);
      await expectText(page.locator('.cards-host p.hint'), 'No brand has registered yet.');
      assert.equal(await page.locator('li.brand-card').count(), 0, 'the brand is gone');
      await expectText(page.locator('.cards-host p.hint'), 'No brand has accepted your terms yet.');
      assert.equal(await page.locator('li.agreement').count(), 0, 'and so is its agreement, receipt and all');
      const token = await requestToken(server.url, client);
      assert.equal(token.status, 401, `a removed brand's credentials are refused (got ${token.status}: ${JSON.stringify(token.data)})`);
      assert.equal(token.data && token.data.error, 'invalid_client');
      await shot(page, '12-brands-removed');
    });

    await step(t, page, 'delete the used-up invitation', async () => {
      const item = page.locator('li.invitation', { hasText: BRAND_NAME });
      await item.getByRole('button', { name: `Delete invitation ${BRAND_NAME}` }).click();
      await expectText(page.locator('.notice-slot .message-success'), `Deleted the invitation “${BRAND_NAME}”.`);
      await expectText(page.locator('.cards-host p.hint'), 'No invitations yet.');
    });

    await step(t, page, 'Activity tells what happened in words', async () => {
      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('.verify .message-success'), 'Your activity log is intact');
      for (const words of ['Published new terms', 'Created an invitation for a brand', 'A brand registered',
        'Suspended a brand', 'Resumed a brand', 'Terminated an agreement', 'Removed a brand']) {
        await expectText(page.locator('li.entry'), words);
      }
      await shot(page, '13-activity');
    });

    await step(t, page, 'Settings: replace the signing key', async () => {
      await openFromNav(page, 'Settings', 'Settings');
      await page.getByRole('button', { name: 'Replace the signing key…' }).click();
      await page.getByRole('button', { name: 'Yes, replace it' }).click();
      const box = page.locator('.message-success', { hasText: 'The signing key has been replaced.' });
      await box.waitFor();
      const kid = /New key: (.+)\.$/.exec((await box.innerText()).trim());
      assert.ok(kid, 'the new key is named');
      const jwks = await fetchJson(`${server.url}/oauth/jwks`);
      assert.equal(jwks.status, 200);
      assert.ok(jwks.data.keys.some((k) => k.kid === kid[1]), 'the new key is published in the JWKS');
      await shot(page, '14-settings-signing-key');
    });

    await step(t, page, '360 px: terms and brands fit a phone', async () => {
      await page.setViewportSize({ width: 360, height: 740 });
      await openFromNav(page, 'My terms', 'My terms');
      await expectText(factValue(page.locator('.terms-current'), 'Version'), /^2$/);
      await page.locator('.terms-versions li.version').first().waitFor();
      await assertNoHorizontalOverflow(page, 'the terms screen');
      await shot(page, 'mobile360-01-terms');
      await openFromNav(page, 'Brands', 'Brands');
      await page.getByRole('button', { name: 'Create invitation' }).click();
      await page.locator('#invitation-token').waitFor();
      await assertNoHorizontalOverflow(page, 'the brands screen with a token');
      await shot(page, 'mobile360-02-brands');
    }, 30_000);

    watch.assertClean('on the terms and brands screens');
    assert.deepEqual(violations, [], 'no Content Security Policy violations on the terms and brands screens');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
