// The person's assistant asks, the person answers, in a real browser: an
// assistant connected over OAuth (driven as its software would, with node
// fetch) makes a wish over MCP, a brand offers, the assistant proposes
// accepting it; the Wishes screen shows "Your assistant asks" with the
// brand, the offer, exactly what saying yes would share and the assistant's
// reason as its words; "Yes" accepts the offer (the brand sees it accepted and
// a grant for exactly that field exists); the assistant reads the outcome;
// Activity says it in sentences. At 1280 px and on a 390 px phone.
//
//   cargo build --bin vrm-vault && cd tests/browser && node --test proposals.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  acceptTerms,
  assertNoHorizontalOverflow,
  brandApi,
  brandToken,
  checkAccessibility,
  expectScreen,
  expectText,
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
  watchPage,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'proposals' });

const PASSPHRASE = 'harbour violet tangent eleven';
const BRAND_NAME = 'Bistro Lilas';
const ASSISTANT = 'Claude Desktop';
const EMAIL = 'ana.lima@example.org';
const REDIRECT = 'http://127.0.0.1:33418/callback';
const REASON = 'Closest to your office and under your budget.';

/** The assistant's OAuth: registration, the person's approval by the consent API, the code. */
async function connectAssistant(baseUrl, ownerToken) {
  const registered = await fetchJson(`${baseUrl}/oauth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({
      client_name: ASSISTANT,
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  assert.equal(registered.status, 201, JSON.stringify(registered.data));
  const clientId = registered.data.client_id;
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const query = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, state: 's',
    code_challenge: challenge, code_challenge_method: 'S256', resource: `${baseUrl}/mcp`,
    scope: 'agent.records.read agent.intents.read agent.intents.write agent.offers.read agent.offers.propose',
  });
  const authorize = await fetchJson(`${baseUrl}/oauth/authorize?${query}`);
  assert.equal(authorize.status, 303);
  const consent = new URL(authorize.headers.get('location'), baseUrl).searchParams.get('agent');
  const approved = await ownerApi(baseUrl, ownerToken, 'POST', `/api/v1/agents/consent/${consent}`, {
    decision: 'approve',
    scopes: ['agent.records.read', 'agent.intents.read', 'agent.intents.write', 'agent.offers.read', 'agent.offers.propose'],
    fields: ['contact.email'],
  });
  assert.equal(approved.status, 200, JSON.stringify(approved.data));
  const code = new URL(approved.data.redirect_to).searchParams.get('code');
  const tokens = await fetchJson(`${baseUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: REDIRECT,
      code_verifier: verifier, resource: `${baseUrl}/mcp`,
    }).toString(),
  });
  assert.equal(tokens.status, 200, JSON.stringify(tokens.data));
  return tokens.data.access_token;
}

/** A minimal Streamable HTTP MCP client: initialize, then tools/call. */
async function mcpSession(baseUrl, token) {
  let id = 0;
  let session = null;
  async function send(body) {
    const headers = {
      Authorization: `Bearer ${token}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': '2025-06-18',
    };
    if (session) headers['Mcp-Session-Id'] = session;
    const response = await fetch(`${baseUrl}/mcp`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    if (!session) session = response.headers.get('mcp-session-id');
    const text = await response.text();
    if (response.status === 202 || !text) return null;
    if ((response.headers.get('content-type') || '').startsWith('text/event-stream')) {
      const message = text.split('\n').filter((l) => l.startsWith('data:'))
        .map((l) => { try { return JSON.parse(l.slice(5)); } catch { return null; } })
        .find((m) => m && m.id !== undefined);
      assert.ok(message, `an answer in the stream: ${text}`);
      return message;
    }
    return JSON.parse(text);
  }
  await send({ jsonrpc: '2.0', id: ++id, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: ASSISTANT, version: '1' } } });
  await send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    async call(name, args) {
      const answer = await send({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args } });
      assert.ok(answer && answer.result, `${name}: ${JSON.stringify(answer)}`);
      assert.equal(answer.result.isError, false, `${name}: ${JSON.stringify(answer.result)}`);
      return answer.result.structuredContent;
    },
  };
}

test('your assistant asks: the person sees exactly what would be shared, and says yes', { timeout: 240_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 1280, height: 900 });
  const page = await context.newPage();
  const watch = watchPage(page);
  let ownerToken;
  let brandTok;
  let mcp;
  let offerId;
  let proposalId;

  try {
    await step(t, page, 'set up a vault, terms for wishes, a brand that hears food wishes', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      ownerToken = await ownerLogin(server.url, PASSPHRASE);
      const put = await ownerApi(server.url, ownerToken, 'PUT', '/api/v1/records/contact.email', { value: EMAIL });
      assert.ok([200, 201].includes(put.status));
      const templates = await ownerApi(server.url, ownerToken, 'GET', '/api/v1/terms/templates');
      const intent = templates.data.templates.find((x) => x.id === 'pdc-intent');
      const published = await ownerApi(server.url, ownerToken, 'PUT', '/api/v1/terms', { terms: intent.terms });
      assert.equal(published.status, 201);
      const invitation = await ownerApi(server.url, ownerToken, 'POST', '/api/v1/invitations', { max_uses: 1, note: BRAND_NAME });
      const registered = await registerBrand(server.url, invitation.data.initial_access_token, {
        client_name: BRAND_NAME, grant_types: ['client_credentials'], scope: 'intents:read offers:write agreements:read',
      });
      assert.equal(registered.status, 201);
      await acceptTerms(server.url, registered.data);
      brandTok = await brandToken(server.url, registered.data);
      const subscribed = await brandApi(server.url, brandTok, 'PUT', '/brand/v1/subscription', { categories: ['food'], delivery: ['poll'] });
      assert.equal(subscribed.status, 200);
    }, 40_000);

    await step(t, page, 'the assistant makes a wish, the brand offers, the assistant proposes accepting', async () => {
      mcp = await mcpSession(server.url, await connectAssistant(server.url, ownerToken));
      const wish = await mcp.call('create_intent', {
        category: 'food.lunch', text: 'lunch for two near the office',
        expires_at: new Date(Date.now() + 3600_000).toISOString(),
      });
      const events = await brandApi(server.url, brandTok, 'GET', '/brand/v1/intents?cursor=0');
      const seen = events.data.events.find((e) => e.type === 'vrm.intent.created.v1').subject;
      const sent = await brandApi(server.url, brandTok, 'POST', `/brand/v1/intents/${seen}/offers`, {
        name: 'Two-course lunch', description: 'Soup and a main on the terrace',
        price: { amount: '24.00', currency: 'EUR' },
        valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(), data_requested: ['contact.email'],
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.data));
      offerId = sent.data.id;
      const offers = await mcp.call('list_offers', { intent_id: wish.id });
      assert.equal(offers.offers[0].id, offerId);
      const proposal = await mcp.call('propose_accept_offer', { offer_id: offerId, fields: ['contact.email'], reason: REASON });
      proposalId = proposal.proposal_id;
      assert.equal(proposal.status, 'pending');
    });

    await step(t, page, 'the Wishes screen: "Your assistant asks", with exactly what would be shared', async () => {
      await openFromNav(page, 'Wishes', 'Wishes');
      const card = page.locator(`li.proposal[data-id="${proposalId}"]`);
      await expectText(card.locator('.card-title'), `${ASSISTANT} asks you to accept ${BRAND_NAME}’s offer`);
      await expectText(card, 'Two-course lunch');
      await expectText(card.locator('.proposal-reason'), REASON);
      await expectText(card.locator('.proposal-shares'), `If you say yes, ${BRAND_NAME} can read this for 24 hours:`);
      await expectText(card.locator('.proposal-shares li'), 'Your email address');
      assert.equal(await card.locator('.proposal-shares li').count(), 1, 'one field, the one proposed');
      await checkAccessibility(page, 'proposal card at 1280 px');
      await shot(page, 'asks-1280');
      await page.setViewportSize({ width: 390, height: 844 });
      await assertNoHorizontalOverflow(page, 'proposal card at 390 px');
      await checkAccessibility(page, 'proposal card at 390 px');
      await shot(page, 'asks-390');
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await step(t, page, 'yes accepts the offer, sharing exactly the email; the assistant learns it', async () => {
      const card = page.locator(`li.proposal[data-id="${proposalId}"]`);
      await card.getByRole('button', { name: 'Yes, accept the offer' }).click();
      await card.waitFor({ state: 'detached', timeout: 10_000 });
      assert.equal(await page.locator('section[aria-labelledby="proposals-heading"]').isHidden(), true, 'nothing left to answer');
      const own = await brandApi(server.url, brandTok, 'GET', `/brand/v1/offers/${offerId}`);
      assert.equal(own.data.status, 'accepted');
      const grants = await ownerApi(server.url, ownerToken, 'GET', '/api/v1/grants');
      assert.deepEqual(grants.data.grants.map((g) => g.fields), [['contact.email']]);
      const outcome = await mcp.call('proposal_status', { proposal_id: proposalId });
      assert.equal(outcome.status, 'confirmed');
    });

    await step(t, page, 'Activity says what the assistant did, in sentences', async () => {
      await openFromNav(page, 'Activity', 'Activity');
      await expectText(page.locator('main'), `Your assistant ${ASSISTANT} made a wish: Lunch.`);
      await expectText(page.locator('main'), `You said yes to your assistant ${ASSISTANT}`);
      // No action code shows for what the assistant did.
      const meta = await page.locator('.entry-meta').allTextContents();
      assert.deepEqual(meta.filter((m) => /agent\.(intent|offer|record|proposal)/.test(m)), [], meta.join('\n'));
      await shot(page, 'activity-1280');
      await page.setViewportSize({ width: 390, height: 844 });
      await assertNoHorizontalOverflow(page, 'activity at 390 px');
      await shot(page, 'activity-390');
    });

    watch.assertClean('on the proposal screens');
    assert.deepEqual(violations, [], 'no CSP violations');
  } finally {
    await context.close();
  }
});
