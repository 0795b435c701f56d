// The person connects their own AI assistant (an MCP client) to the vault,
// in a real browser: the assistant registers without an invitation and sends
// the browser to /oauth/authorize; the consent page names it as an assistant,
// lists what it may do in plain words and lets the person tick which parts of
// their profile it may read; the assistant gets its code and tokens; Settings
// lists it with what it may do and read, and "Disconnect" ends its access;
// Activity says both in words.
// At 1280 px and on a 390 px phone (log in first, then the request).
//
//   cargo build --bin vrm-vault && cd tests/browser && node --test agents.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import {
  ACTION_MS,
  assertNoHorizontalOverflow,
  checkAccessibility,
  expectScreen,
  expectText,
  factValue,
  fetchJson,
  freshDataDir,
  newContext,
  openFromNav,
  ownerApi,
  ownerLogin,
  setUpBrowserTests,
  setUpVault,
  startServer,
  watchPage,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'agents' });

const PASSPHRASE = 'maple tundra whistle ninety';
const ASSISTANT = 'Claude';
const EMAIL = 'ana.lima@example.org';
const PHONE = '+351 912 345 678';

/** The assistant's loopback callback (as a desktop MCP client runs one). */
function startAssistant() {
  const visits = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/callback') {
      visits.push(Object.fromEntries(url.searchParams));
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${ASSISTANT}</title></head><body><h1>Back in ${ASSISTANT}</h1></body></html>`);
      return;
    }
    res.writeHead(204);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      resolve({ server, redirectUri: `${base}/callback`, visits });
    });
  });
}

function pkcePair() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

async function registerAssistant(baseUrl, redirectUri) {
  const answer = await fetchJson(`${baseUrl}/oauth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({
      client_name: ASSISTANT,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  assert.equal(answer.status, 201, `registration without an invitation (got ${answer.status}: ${JSON.stringify(answer.data)})`);
  return answer.data.client_id;
}

function authorizeUrl(baseUrl, clientId, redirectUri, state, challenge) {
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: `${baseUrl}/mcp`,
  });
  return `${baseUrl}/oauth/authorize?${query}`;
}

function tokenRequest(baseUrl, params) {
  return fetchJson(`${baseUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  });
}

test('connect an assistant: consent names it, the person picks what it may read; Settings lists it and disconnects it', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const assistant = await startAssistant();
  const { context, violations } = await newContext({ width: 1280, height: 900 });
  const page = await context.newPage();
  const watch = watchPage(page);
  const phones = [];
  let clientId;
  let tokens;
  const first = { state: randomBytes(8).toString('hex'), pkce: pkcePair() };

  try {
    await step(t, page, 'set up a vault with an email address and a phone number', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      const owner = await ownerLogin(server.url, PASSPHRASE);
      for (const [p, value] of [['contact.email', EMAIL], ['contact.phone', PHONE]]) {
        const put = await ownerApi(server.url, owner, 'PUT', `/api/v1/records/${p}`, { value });
        assert.ok([200, 201].includes(put.status), `PUT ${p} (got ${put.status})`);
      }
    }, 40_000);

    await step(t, page, 'the assistant registers and sends the browser to the consent page', async () => {
      clientId = await registerAssistant(server.url, assistant.redirectUri);
      const response = await page.goto(authorizeUrl(server.url, clientId, assistant.redirectUri, first.state, first.pkce.challenge));
      const landed = new URL(response.url());
      assert.equal(landed.pathname, '/consent');
      assert.ok(landed.searchParams.get('agent'), `an assistant's request (got ${response.url()})`);
      await expectScreen(page, 'An assistant asks to connect');
    });

    await step(t, page, 'the consent page names it as an assistant, in plain words, reading nothing unless ticked', async () => {
      await expectText(page.locator('.consent-brand h2'), ASSISTANT);
      assert.equal((await factValue(page.locator('.consent-brand'), 'Runs on').innerText()).trim(), 'An app on this computer');
      const lead = await page.locator('.consent .lead').innerText();
      assert.match(lead, /It is an assistant, not a brand/);
      for (const words of ['Read the parts of your profile you choose', 'See your wishes', 'See the offers brands send you', 'Decline offers for you']) {
        assert.equal(await page.getByLabel(words, { exact: true }).isChecked(), true, `${words}: asked, ticked`);
      }
      const email = page.getByLabel('Email address', { exact: true });
      assert.equal(await email.isChecked(), false, 'no part of the profile is ticked at first');
      await expectText(page.locator('.consent-fields'), /Now: .*•/);
      await expectText(page.locator('.consent-fields'), 'Empty for now.');
      const text = await page.locator('#screen').innerText();
      assert.ok(!text.includes(EMAIL) && !text.includes(PHONE), 'values are masked');
      assert.ok(!/agent\.|contact\.email|client_id|scope/.test(text), `no wire names on the page: ${text}`);
      await assertNoHorizontalOverflow(page, 'the assistant consent page');
      await checkAccessibility(page, 'the assistant consent page');
      await shot(page, '01-consent-1280');
    });

    await step(t, page, 'the person unticks declining, ticks the email address, connects: the assistant gets a code', async () => {
      await page.getByLabel('Decline offers for you', { exact: true }).uncheck();
      await page.getByLabel('Email address', { exact: true }).check();
      await page.getByRole('button', { name: 'Connect', exact: true }).click();
      await page.waitForURL((url) => url.href.startsWith(assistant.redirectUri), { timeout: ACTION_MS });
      const visit = assistant.visits.at(-1);
      assert.ok(visit && visit.code, `a code (got ${JSON.stringify(visit)})`);
      assert.equal(visit.state, first.state);
      const answer = await tokenRequest(server.url, {
        grant_type: 'authorization_code',
        client_id: clientId,
        code: visit.code,
        redirect_uri: assistant.redirectUri,
        code_verifier: first.pkce.verifier,
        resource: `${server.url}/mcp`,
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.data));
      tokens = answer.data;
      assert.ok(!tokens.scope.includes('agent.offers.decline'), tokens.scope);
      assert.ok(tokens.scope.includes('agent.records.read'), tokens.scope);
    });

    await step(t, page, 'Settings lists the assistant: what it may do and read, and its last use', async () => {
      await page.goto(server.url);
      await openFromNav(page, 'Settings', 'Settings');
      const card = page.locator('.assistant-card');
      await expectText(card.locator('h3'), ASSISTANT);
      const may = await factValue(card, 'It may').innerText();
      assert.match(may, /See the offers brands send you/);
      assert.ok(!may.includes('Decline offers for you'), may);
      assert.equal((await factValue(card, 'It may read').innerText()).trim(), 'Email address');
      assert.equal((await factValue(card, 'Last used').innerText()).trim(), 'Not yet');
      await card.scrollIntoViewIfNeeded();
      await checkAccessibility(page, 'Settings with an assistant');
      await shot(page, '02-settings-1280');
    });

    await step(t, page, 'on a 390 px phone, not logged in: log in, then the same kind of request fits the screen', async () => {
      const phone = await newContext({ width: 390, height: 844 });
      phones.push(phone);
      const phonePage = await phone.context.newPage();
      const phoneWatch = watchPage(phonePage);
      phoneWatch.allowHttpError(401, '/api/v1/session');
      const again = pkcePair();
      await phonePage.goto(authorizeUrl(server.url, clientId, assistant.redirectUri, 'phone', again.challenge));
      await expectScreen(phonePage, 'Log in');
      await expectText(phonePage.locator('#flash'), 'An assistant is asking to connect to your vault. Log in to see the request and answer it.');
      await phonePage.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await phonePage.getByRole('button', { name: 'Log in' }).click();
      await expectScreen(phonePage, 'An assistant asks to connect');
      assert.equal(await phonePage.getByLabel('Email address', { exact: true }).isChecked(), true, 'what was allowed before is ticked');
      await expectText(phonePage.locator('.consent-brand'), 'You connected this assistant before');
      await assertNoHorizontalOverflow(phonePage, 'the assistant consent page at 390 px');
      await shot(phonePage, '03-consent-390');
      await phonePage.getByRole('button', { name: 'Don’t connect', exact: true }).click();
      await phonePage.waitForURL((url) => url.href.startsWith(assistant.redirectUri), { timeout: ACTION_MS });
      assert.equal(assistant.visits.at(-1).error, 'access_denied');
      await phonePage.goto(`${server.url}/#/settings`);
      await expectScreen(phonePage, 'Settings');
      await expectText(phonePage.locator('.assistant-card h3'), ASSISTANT);
      await phonePage.locator('.assistant-card').scrollIntoViewIfNeeded();
      await assertNoHorizontalOverflow(phonePage, 'Settings at 390 px');
      await shot(phonePage, '04-settings-390');
      phoneWatch.assertClean('on the phone');
    }, 40_000);

    await step(t, page, 'Disconnect: the card goes, and its refresh token no longer works', async () => {
      const card = page.locator('.assistant-card');
      await card.getByRole('button', { name: 'Disconnect', exact: true }).click();
      await expectText(card.locator('.confirm-question'), `Disconnect ${ASSISTANT}?`);
      await shot(page, '05-disconnect-confirm');
      await card.locator('.confirm').getByRole('button', { name: 'Disconnect', exact: true }).click();
      await expectText(page.locator('.assistants'), `${ASSISTANT} is disconnected`);
      await expectText(page.locator('.assistants'), 'No assistant is connected.');
      const refreshed = await tokenRequest(server.url, {
        grant_type: 'refresh_token',
        client_id: clientId,
        refresh_token: tokens.refresh_token,
      });
      assert.equal(refreshed.status, 401, `a disconnected assistant is unknown (got ${refreshed.status}: ${JSON.stringify(refreshed.data)})`);
      await shot(page, '06-disconnected');
    });

    await step(t, page, 'Activity says in words that an assistant was connected and disconnected', async () => {
      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('.entry-what'), 'Connected an assistant to your vault');
      await expectText(page.locator('.entry-what'), 'Disconnected an assistant');
      const text = await page.locator('#screen').innerText();
      assert.ok(!/agent\.(approved|disconnected)/.test(text.replace(/Action code[\s\S]*?\n/g, '')), 'no action codes as the entries\' words');
    });

    watch.assertClean('on the consent, Settings and Activity screens');
    assert.deepEqual(violations, [], 'no Content Security Policy violation');
  } finally {
    assistant.server.close();
    for (const phone of phones) await phone.context.close().catch(() => {});
    await context.close().catch(() => {});
  }
});
