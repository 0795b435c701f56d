// The intent relay from the person's phone (issue 19, DESIGN §11): a wish
// that brands the person never met can answer, through a relay someone else
// runs, and an offer from one of them accepted while sending it only the
// email address, encrypted to it.
//
// Everything runs for real: nats-server with JetStream, `vrm-vault relay`
// over it, a brand the relay's operator admitted with `vrm-vault relay
// admit` (its side is relay_kit.mjs: Node's own crypto, as any brand's
// software could be), a vault started with `--relay`, and a brand the person
// invited herself, to see the two kinds of offers side by side.
//
// At 390 px the person chooses "Also any brand on <relay>", reads what the
// relay will see (a rough distance, never an area code; what it will not
// see), goes back once, sends, sees the wish reach the relay, sees the
// relayed offer labelled with the relay and the brand's checked name beside
// the direct one, and accepts it sending only the email address; the brand
// reads that from the message the relay hands it, and nothing else. Every
// new screen: axe with no serious or critical violation, nothing wider than
// the phone, no path, code or JSON in its words, and a screenshot at 390 px
// and 1280 px (artifacts/screenshots/relay-NN-…-WIDTH.png).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ACTION_MS,
  acceptTerms,
  assertNoHorizontalOverflow,
  brandApi,
  brandToken,
  checkAccessibility,
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
  watchPage,
} from './helpers.mjs';
import { RelayBrand, decryptJwe, startNats, startRelay, verifyJws } from './relay_kit.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'relay' });

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };
const PASSPHRASE = 'harbour lantern velvet ninety';
const NAME = 'Marta Rocha';
const EMAIL = 'marta.rocha@example.org';
const PHONE_NUMBER = '+351 912 000 321';
const KNOWN_BRAND = 'Corner Bistro';
const RELAY_BRAND = 'Chez Lulu';
const WISH = 'Lunch for two, somewhere quiet';
// Where the browser says the person is: the geohash textbook example, whose cell is u4pruydqqvj.
const POSITION = { latitude: 57.64911, longitude: 10.40744 };
const CELL = 'u4pruyd';

/** What the person should never be shown: paths, codes, JSON, the machinery. */
const TECHNICAL = /contact\.email|contact\.phone|profile\.name|\b(dpv|pd|odrl|p7012):|\{"|client_id|urn:|sha256|\bintents?\b|the person\b|geohash|\bJW[ESK]\b|ECDH|relay-preview|disclose\b/i;

/**
 * The screen as it is now: axe and overflow at 390 px, its words checked
 * for anything technical, a screenshot at 390 px and 1280 px (axe again),
 * then back to the phone.
 */
async function capture(page, nn, name) {
  await page.setViewportSize(PHONE);
  await checkAccessibility(page, `${name} at 390 px`);
  await assertNoHorizontalOverflow(page, `${name} at 390 px`);
  const text = await page.locator('main, #screen').first().innerText();
  assert.doesNotMatch(text, TECHNICAL, `${name} shows nothing technical`);
  await shot(page, `${nn}-${name}-390`);
  await page.setViewportSize(DESKTOP);
  await checkAccessibility(page, `${name} at 1280 px`);
  await assertNoHorizontalOverflow(page, `${name} at 1280 px`);
  await shot(page, `${nn}-${name}-1280`);
  await page.setViewportSize(PHONE);
}

/** Poll the vault's GET /brand/v1/intents as the brand the person knows, until an event matches. */
async function pollVault(baseUrl, token, what, matches) {
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
    if (Date.now() > deadline) assert.fail(`the known brand never heard ${what}`);
    await sleep(200);
  }
}

test('a wish through the relay on a phone: choose, preview, send, a stranger brand’s checked offer, send it only the email address', { timeout: 360_000 }, async (t) => {
  const natsUrl = await startNats();
  const relay = await startRelay(natsUrl);
  const relayHost = new URL(relay.url).host;
  const lulu = new RelayBrand(relay.url, RELAY_BRAND);
  const server = await startServer(freshDataDir(), { args: ['--relay', relay.url] });
  const { context, violations } = await newContext(PHONE, { geolocation: POSITION, permissions: ['geolocation'] });
  const page = await context.newPage();
  const watch = watchPage(page);
  let knownToken;
  let relayed;
  let relayedOffer;

  try {
    await step(t, page, 'the relay admits a brand, which subscribes to food wishes there', async () => {
      await lulu.admit(natsUrl);
      await lulu.authenticate();
      const subscribed = await lulu.call('PUT', '/relay/v1/subscription', { categories: ['food'], delivery: ['poll'] });
      assert.equal(subscribed.status, 200, `PUT /relay/v1/subscription (got ${subscribed.status}: ${JSON.stringify(subscribed.data)})`);
    }, 60_000);

    await step(t, page, 'set up the vault, its data and terms, and a brand the person knows', async () => {
      await page.goto(server.url);
      await expectScreen(page, 'Set up your vault');
      await setUpVault(page, PASSPHRASE);
      const owner = await ownerLogin(server.url, PASSPHRASE);
      for (const [p, value] of [['profile.name', NAME], ['contact.email', EMAIL], ['contact.phone', PHONE_NUMBER]]) {
        const put = await ownerApi(server.url, owner, 'PUT', `/api/v1/records/${p}`, { value });
        assert.ok([200, 201].includes(put.status), `PUT ${p} (got ${put.status}: ${JSON.stringify(put.data)})`);
      }
      const templates = await ownerApi(server.url, owner, 'GET', '/api/v1/terms/templates');
      // The intentcasting terms, without the phone number: brands may have the email address only.
      const intentTerms = templates.data.templates.find((x) => x.id === 'pdc-intent');
      const terms = structuredClone(intentTerms.terms);
      for (const rule of terms.permission) rule.target = [].concat(rule.target).filter((c) => c !== 'pd:TelephoneNumber');
      const published = await ownerApi(server.url, owner, 'PUT', '/api/v1/terms', { terms });
      assert.equal(published.status, 201, `PUT /api/v1/terms (got ${published.status}: ${JSON.stringify(published.data)})`);
      const relays = await ownerApi(server.url, owner, 'GET', '/api/v1/relays');
      assert.equal(relays.status, 200, `GET /api/v1/relays (got ${relays.status}: ${JSON.stringify(relays.data)})`);
      assert.deepEqual(relays.data.relays.map((r) => r.url.replace(/\/$/, '')), [relay.url]);

      const invitation = await ownerApi(server.url, owner, 'POST', '/api/v1/invitations', { max_uses: 1, note: KNOWN_BRAND });
      const registered = await registerBrand(server.url, invitation.data.initial_access_token, {
        client_name: KNOWN_BRAND, grant_types: ['client_credentials'], scope: 'intents:read offers:write agreements:read',
      });
      assert.equal(registered.status, 201, `POST /oauth/register (got ${registered.status}: ${JSON.stringify(registered.data)})`);
      await acceptTerms(server.url, registered.data);
      knownToken = await brandToken(server.url, registered.data);
      const subscribed = await brandApi(server.url, knownToken, 'PUT', '/brand/v1/subscription', { categories: ['food'], delivery: ['poll'] });
      assert.equal(subscribed.status, 200);
    }, 90_000);

    await step(t, page, 'a wish: the choice of who hears it, and the relay chosen', async () => {
      await openFromNav(page, 'Wishes', 'Wishes');
      await expectText(page.locator('.lead'), 'so do brands you have never met, through a relay, which must accept your terms to answer');
      const audience = page.getByRole('group', { name: 'Who hears your wish' });
      await audience.waitFor();
      assert.equal(await audience.getByRole('radio', { name: 'Brands I know', exact: true }).isChecked(), true, 'brands the person knows, unless she chooses more');
      await page.getByLabel('What kind of thing', { exact: true }).selectOption({ label: 'Lunch' });
      await page.getByLabel('What you are looking for', { exact: true }).fill(WISH);
      await page.getByLabel('How precisely', { exact: true }).selectOption({ label: 'About 150 m (a street)' });
      await page.getByRole('button', { name: 'Use my location' }).click();
      await page.waitForFunction((cell) => document.querySelector('input[name="geohash"]').value === cell, CELL);
      await page.getByText('More details (optional)').click();
      await page.getByLabel('Amount', { exact: true }).fill('15');
      await page.getByLabel('Currency', { exact: true }).selectOption('EUR');
      await page.getByLabel('How many people', { exact: true }).fill('2');
      const toRelay = audience.getByRole('radio', { name: `Also any brand on ${relayHost}`, exact: true });
      await toRelay.check();
      await expectText(audience, 'Nothing from your data goes with a wish that brands you do not know can hear');
      assert.equal(await page.getByText('Send some of your data with it (optional)').isVisible(), false, 'no data goes with a relayed wish, so none can be ticked');
      await audience.scrollIntoViewIfNeeded();
      await capture(page, '01', 'wish-choice');
    }, 60_000);

    await step(t, page, 'before it goes: what the relay will see, in words; go back once', async () => {
      await page.getByRole('button', { name: 'Send my wish', exact: true }).click();
      const preview = page.locator('.relay-preview');
      await expectText(preview, `Before it goes: what ${relayHost} will see`);
      const says = await preview.innerText();
      assert.match(says, /What you want\s+Food and drink › Lunch: “Lunch for two, somewhere quiet”/);
      // A street-sized area goes to the relay as a district (about 5 km) and 2 km around it.
      assert.match(says, /Roughly where\s+Within about 5 km of where you are now/);
      assert.match(says, /Price\s+Up to €15\.00/);
      assert.match(says, /People\s+2/);
      assert.match(says, /Your terms\s+They go with it/);
      assert.match(says, /Offers wanted\s+At most 10/);
      for (const unseen of ['Your name', 'Any of your data, such as your email address or phone number', 'Your exact place']) {
        await expectText(preview.locator('.preview-unseen li'), unseen);
      }
      assert.ok(!says.includes(NAME) && !says.includes(EMAIL), 'nothing of the person’s data is in what the relay will see');
      assert.ok(!says.includes(CELL.slice(0, 4)), 'the area is a distance, not its code');
      assert.equal(await page.locator('form.intent-form').isVisible(), false, 'the form waits behind the preview');
      await capture(page, '02', 'preview');

      await preview.getByRole('button', { name: 'Go back and change it' }).click();
      await page.locator('form.intent-form').waitFor({ state: 'visible' });
      assert.equal(await page.getByLabel('What you are looking for', { exact: true }).inputValue(), WISH, 'going back keeps the wish as it was');
      await page.getByRole('button', { name: 'Send my wish', exact: true }).click();
      await expectText(page.locator('.relay-preview'), 'Before it goes');
    }, 60_000);

    await step(t, page, 'send it: the wish reaches the relay and both brands hear it', async () => {
      await page.locator('.relay-preview').getByRole('button', { name: 'Send my wish', exact: true }).click();
      await expectText(page.locator('.notice-slot .message-success'), 'Your wish was sent to 1 brand you know');
      const card = page.locator('li.intent', { hasText: WISH });
      await expectText(card.locator('.relay-status'), `Sent to ${relayHost}`);

      const heard = await lulu.waitFor('the wish', (e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === WISH, 20_000);
      relayed = heard.data.intent;
      assert.ok(relayed.location.geohash.length <= 5, `the relay gets the area coarsened (got ${relayed.location.geohash})`);
      assert.ok(CELL.startsWith(relayed.location.geohash), 'and it is the person’s area, made larger');
      assert.equal(relayed.party_size, 2);
      assert.equal(Number(relayed.price_max.amount), 15);
      assert.equal(relayed.price_max.currency, 'EUR');
      assert.equal(relayed.disclose, undefined, 'no data goes with it');
      assert.deepEqual(relayed.disclosed ?? {}, {}, 'none at all');
      assert.ok(relayed.terms && relayed.terms_hash && relayed.jwk, 'the terms, their hash and the wish’s own key go with it');
      assert.ok(!JSON.stringify(heard).includes(EMAIL) && !JSON.stringify(heard).includes(NAME), 'nothing of the person’s data reaches the relay');
      await pollVault(server.url, knownToken, 'the wish', (e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === WISH);
      await capture(page, '03', 'wish-sent');
      // On a wide screen the relay's line sits in the card's two columns like the others.
      await page.setViewportSize(DESKTOP);
      const row = await card.locator('.relay-line').evaluate((line) => {
        const [term, value] = [line.querySelector('dt'), line.querySelector('dd')].map((n) => n.getBoundingClientRect());
        return { sameRow: Math.abs(term.top - value.top) < 2, valueRight: value.left > term.right };
      });
      assert.deepEqual(row, { sameRow: true, valueRight: true }, 'the relay line is one row of the card’s facts');
      await page.setViewportSize(PHONE);
    }, 60_000);

    await step(t, page, 'both brands answer; the relayed offer is labelled and set apart', async () => {
      const known = await pollVault(server.url, knownToken, 'the wish', (e) => e.type === 'vrm.intent.created.v1' && e.data.intent.text === WISH);
      const direct = await brandApi(server.url, knownToken, 'POST', `/brand/v1/intents/${known.subject}/offers`, {
        name: 'Set lunch', price: { amount: '13.00', currency: 'EUR' },
        valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(), data_requested: ['contact.phone'],
      });
      assert.equal(direct.status, 201, `the known brand's offer (got ${direct.status}: ${JSON.stringify(direct.data)})`);
      relayedOffer = await lulu.offer(relayed, {
        name: 'Menu du jour', price: { amount: '14.50', currency: 'EUR' },
        valid_until: new Date(Date.now() + 2 * 3600_000).toISOString(), data_requested: ['contact.email', 'contact.phone'],
      });

      // The vault fetches its wishes' offers from the relay; they show up on the card.
      const card = page.locator('li.intent', { hasText: WISH });
      const offers = card.locator('li.offer');
      const deadline = Date.now() + 30_000;
      for (;;) {
        const toggle = card.locator('[data-action="offers"]');
        if (await toggle.getAttribute('aria-expanded') === 'true') await toggle.click();
        await toggle.click();
        await card.locator('.offers-panel[aria-busy]').waitFor({ state: 'detached' }).catch(() => {});
        if (await offers.filter({ hasText: 'Menu du jour' }).count() && await offers.filter({ hasText: 'Set lunch' }).count()) break;
        assert.ok(Date.now() < deadline, 'the relayed offer reaches the wish within 30 s');
        await sleep(1000);
      }
      const fromRelay = offers.filter({ hasText: 'Menu du jour' });
      await expectText(fromRelay, `Via ${relayHost}`);
      await expectText(fromRelay, `${RELAY_BRAND} — identity checked by the relay’s published keys`);
      await expectText(fromRelay, 'New to you');
      const fromKnown = offers.filter({ hasText: 'Set lunch' });
      await expectText(fromKnown, `From ${KNOWN_BRAND}`);
      assert.equal(await fromKnown.filter({ hasText: 'Via ' }).count(), 0, 'an offer from a brand the person knows carries no relay label');
      // Set apart by more than words: a broad dashed edge the known brand's offer does not have.
      const edge = (offer) => offer.evaluate((node) => { const s = getComputedStyle(node); return `${s.borderLeftWidth} ${s.borderTopStyle}`; });
      assert.equal(await edge(fromRelay), '6px dashed', 'the relayed offer has its own edge');
      assert.notEqual(await edge(fromKnown), '6px dashed', 'the known brand’s offer does not');
      const email = fromRelay.getByRole('checkbox', { name: 'Email address', exact: true });
      const phone = fromRelay.getByRole('checkbox', { name: 'Phone number', exact: true });
      assert.equal(await email.isChecked(), false, 'nothing is ticked for a brand new to the person');
      assert.equal(await phone.isChecked(), false);
      await expectText(fromRelay, `What you tick is sent encrypted, so that only ${RELAY_BRAND} can read it`);
      await fromRelay.scrollIntoViewIfNeeded();
      await capture(page, '04', 'offers');
    }, 90_000);

    await step(t, page, 'the terms do not allow the phone number: ticked, it is refused in words and locked', async () => {
      const fromRelay = page.locator('li.offer', { hasText: 'Menu du jour' });
      const offerPath = `/api/v1/offers/${await fromRelay.getAttribute('data-id')}/accept`;
      watch.allowHttpError(422, offerPath);
      const phone = fromRelay.getByRole('checkbox', { name: 'Phone number', exact: true });
      await fromRelay.getByRole('checkbox', { name: 'Email address', exact: true }).check();
      await phone.check();
      await fromRelay.getByRole('button', { name: /^Accept/ }).click();
      await expectText(fromRelay.locator('.message-error'), /Not accepted: Your terms do not allow sharing your (tele)?phone number with a brand that answered a wish\./);
      await expectText(fromRelay, 'It is unticked now: accept again to send the rest.');
      // The button reads as before, its words for screen readers still hidden.
      const label = await fromRelay.locator('[data-action="accept"]').evaluate((b) => ({
        shown: b.firstChild && b.firstChild.textContent, hidden: Boolean(b.querySelector('.visually-hidden')),
      }));
      assert.deepEqual(label, { shown: 'Accept', hidden: true });
      assert.equal(await phone.isChecked(), false, 'the refused field is unticked');
      assert.equal(await phone.isDisabled(), true, 'and cannot be ticked again');
      await expectText(fromRelay.locator('.field-refused'), 'Not allowed: your terms do not allow sending it to a brand that answered a wish.');
      assert.equal(await fromRelay.getByRole('checkbox', { name: 'Email address', exact: true }).isChecked(), true, 'the email address stays ticked');
      const stillPending = await lulu.call('GET', `/relay/v1/intents?cursor=${lulu.cursor}`);
      assert.ok(!stillPending.data.events.some((e) => e.type === 'vrm.offer.accepted.v1'), 'nothing went to the brand');
      await capture(page, '05', 'refused');
    }, 60_000);

    await step(t, page, 'accept the relayed offer sending only the email address', async () => {
      const fromRelay = page.locator('li.offer', { hasText: 'Menu du jour' });
      assert.equal(await fromRelay.getByRole('checkbox', { name: 'Email address', exact: true }).isChecked(), true);
      await capture(page, '06', 'disclose');
      await fromRelay.getByRole('button', { name: /^Accept/ }).click();
      const card = page.locator('li.intent', { hasText: WISH });
      await expectText(card.locator('.notice-slot .message-success'),
        `Accepted “Menu du jour”. Sent to ${RELAY_BRAND} through ${relayHost}, encrypted so that only ${RELAY_BRAND} can read it: your email address.`);
      await capture(page, '07', 'accepted');
    }, 60_000);

    await step(t, page, 'the brand gets the message through the relay: the receipt, and only the email address', async () => {
      const accepted = await lulu.waitFor('the acceptance', (e) => e.type === 'vrm.offer.accepted.v1' && e.data.offer_id === relayedOffer.id, 20_000);
      assert.equal(accepted.data.intent_id, relayed.id);
      const receipt = verifyJws(accepted.data.receipt, relayed.jwk);
      assert.equal(receipt.payload.acceptance, relayedOffer.acceptance, 'the receipt countersigns the brand’s own acceptance');
      const { header, plaintext } = decryptJwe(accepted.data.jwe, lulu.encryption.privateKey);
      assert.equal(header.kid, lulu.encryption.jwk.kid, 'encrypted to the brand’s encryption key');
      assert.deepEqual(JSON.parse(plaintext), { fields: { 'contact.email': EMAIL } }, 'the email address and nothing else');
      assert.ok(!accepted.data.jwe.includes(EMAIL) && !JSON.stringify(accepted).includes(PHONE_NUMBER), 'the relay sees ciphertext only');
    }, 60_000);

    watch.assertClean('during the relay journey');
    assert.deepEqual(violations, [], 'no Content Security Policy violation');
  } finally {
    await context.close();
  }
});
