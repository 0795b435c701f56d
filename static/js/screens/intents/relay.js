// @ts-check
// Wishes and the intent relay (DESIGN §11): a meeting place run by someone
// else, where brands the person never met can hear a wish and answer it.
// This file is the wish's side: the choice of who hears a wish, the page
// that says in words what the relay will see before anything is sent, and
// the line on a wish's card that says whether it reached the relay.
//
// The relay never sees a path, a code or a value of the vault, and neither
// does the person here: an area is shown as a distance, never as its code.

import { api, Interrupted } from '../../api.js';
import { el, focusElement, announce, timeEl, uid } from '../../dom.js';
import { radio, fieldset, actions } from '../../form.js';
import { plural } from '../../errors.js';
import { fact } from '../../cards.js';
import { relayFact, relaysText } from './relay_words.js';
import { categoryLabel } from '../intents.js';
import { findIntentCard, money } from './list.js';

/** @typedef {import('./relay_words.js').RelayInfo} RelayInfo */
/** @typedef {import('./relay_words.js').IntentRelay} IntentRelay */

/**
 * POST /api/v1/intents/relay-preview: exactly what the relay would receive
 * (`intent`), and what the vault coarsened or left out, in its words.
 * @typedef {{ intent: any, changes?: string[] }} RelayPreview
 */

// How often the cards of wishes still on their way to a relay are refreshed.
const STATUS_EVERY_MS = 4000;

// Width of an area by the length of its code, in metres: the same cells as
// CELL_SIZES in composer.js, as numbers to add a radius to.
const CELL_METRES = { 1: 5000000, 2: 1250000, 3: 156000, 4: 39000, 5: 4900, 6: 1200, 7: 153 };

/** GET /api/v1/relays: the relays this vault may send wishes to ([] when none). */
export async function loadRelays() {
  const { data } = await api('GET', '/api/v1/relays');
  const relays = data && Array.isArray(data.relays) ? data.relays : [];
  return /** @type {RelayInfo[]} */ (relays.filter((r) => r && typeof r.url === 'string'));
}

/**
 * Who hears a wish: only brands the person knows, or also any brand at the
 * relay. Only drawn when the vault has relays. `onChange` gets whether the
 * relay was chosen.
 * @param {RelayInfo[]} relays
 * @param {(relay: boolean) => void} onChange
 */
export function audienceChoice(relays, onChange) {
  const where = relaysText(relays);
  const known = radio({
    name: 'audience', value: 'known', checked: true, label: 'Brands I know',
    hint: 'Only brands you invited, and that accepted terms allowing wishes, hear it.',
  });
  const relay = radio({
    name: 'audience', value: 'relay', label: `Also any brand on ${where}`,
    hint: `${where} is a meeting place run by someone else. Brands there that you have never met hear your wish, and can answer if they accept your terms. Before anything goes, you see what they will learn.`,
  });
  const note = el('p', { class: 'hint relay-note', hidden: true },
    'Nothing from your data goes with a wish that brands you do not know can hear: you choose what to share when you accept an offer.');
  const group = fieldset({
    legend: 'Who hears your wish',
    className: 'audience-choice',
    children: [known.root, relay.root, note],
  });
  for (const r of [known, relay]) {
    r.input.addEventListener('change', () => {
      note.hidden = !relay.input.checked;
      onChange(relay.input.checked);
    });
  }
  return { root: group.root, wantsRelay: () => relay.input.checked };
}

/**
 * "Within about 5 km of the place you chose": how far from the person the
 * relay may place them, from the area it gets (its cell and the distance
 * around it), rounded up to whole kilometres.
 */
export function roughArea(location, fromMyLocation) {
  if (!location || !location.geohash) return 'Anywhere: no place is sent';
  const cell = CELL_METRES[String(location.geohash).length] || 5000;
  const metres = cell / 2 + (Number(location.radius_m) || 0);
  const distance = metres >= 1000 ? `${Math.ceil(metres / 1000).toLocaleString()} km` : `${Math.ceil(metres / 100) * 100} m`;
  return `Within about ${distance} of ${fromMyLocation ? 'where you are now' : 'the area you chose'}`;
}

/** What the relay would get; what was asked, should the vault's answer lack it. */
function previewedIntent(preview, asked) {
  const sent = preview && preview.intent;
  return sent && typeof sent === 'object' && typeof sent.category === 'string' ? sent : asked;
}

/**
 * What the vault changed on the way, in words. Worked out here rather than
 * taken from the vault's own sentences, which name the area by its code.
 */
function changesInWords(asked, sent) {
  const mine = asked.location && asked.location.geohash ? String(asked.location.geohash).length : 0;
  const theirs = sent.location && sent.location.geohash ? String(sent.location.geohash).length : 0;
  if (mine && theirs && theirs < mine) return ['Your area was made larger, so the relay cannot tell where you are more closely than this.'];
  return [];
}

/**
 * The page shown before a wish goes to the relay: what it will see and what
 * it will not, in words, with "Send my wish" and "Go back". Resolves once
 * the relay's preview is on screen; the person's choice calls `onSend` or
 * `onBack`.
 * @param {any} view the Wishes screen
 * @param {{ host: HTMLElement, body: any, preview: RelayPreview, fromMyLocation: boolean,
 *   onSend: (button: HTMLButtonElement) => void, onBack: () => void }} options
 */
export function showPreview(view, { host, body, preview, fromMyLocation, onSend, onBack }) {
  const sent = previewedIntent(preview, body);
  const where = relaysText(view.relays);
  const words = String(sent.text || body.text || '');
  const when = sent.window && sent.window.from && sent.window.to ? [timeEl(sent.window.from), ' to ', timeEl(sent.window.to)] : 'Any time';
  const changes = changesInWords(body, sent);
  const heading = el('h3', { class: 'preview-title', id: uid('preview'), tabindex: '-1' }, `Before it goes: what ${where} will see`);
  const send = /** @type {HTMLButtonElement} */ (el('button', { type: 'button', class: 'button primary', 'data-action': 'send-relay' }, 'Send my wish'));
  const back = el('button', { type: 'button', class: 'button', 'data-action': 'back' }, 'Go back and change it');

  const panel = el('section', { class: 'relay-preview', 'aria-labelledby': heading.id },
    heading,
    el('p', {}, `Brands you know hear your wish as usual. ${where} passes it on to any brand there that asks for this kind of wish. The relay and those brands see:`),
    el('dl', { class: 'facts preview-facts' },
      fact('What you want', [categoryLabel(view, sent.category), ': “', words, '”']),
      fact('Roughly where', roughArea(sent.location, fromMyLocation)),
      fact('When', when),
      fact('Price', sent.price_max ? `Up to ${money(sent.price_max)}` : null),
      fact('People', sent.party_size ? String(sent.party_size) : null),
      fact('Keywords', Array.isArray(sent.tags) && sent.tags.length ? sent.tags.join(', ') : null),
      fact('Open until', sent.expires_at ? timeEl(sent.expires_at) : null),
      fact('Offers wanted', sent.max_offers ? `At most ${sent.max_offers}` : null),
      fact('Your terms', 'They go with it: a brand must accept them to send you an offer.'),
    ),
    el('p', { class: 'preview-unseen-title' }, el('strong', {}, 'They do not see:')),
    el('ul', { class: 'preview-unseen' },
      el('li', {}, 'Your name'),
      el('li', {}, 'Any of your data, such as your email address or phone number'),
      el('li', {}, 'Your exact place')),
    changes.length ? el('div', { class: 'message message-info' }, changes.map((c) => el('p', {}, c))) : null,
    el('p', { class: 'hint' }, 'A brand learns more about you only if you share something when you accept its offer.'),
    actions(send, back),
  );
  send.addEventListener('click', () => onSend(send));
  back.addEventListener('click', () => onBack());
  host.replaceChildren(panel);
  announce(`Before it goes: what ${where} will see. Check it, then send your wish or go back.`);
  focusElement(heading);
  return panel;
}

/** Whether a wish is still waiting for a relay to take it. */
function waiting(intent) {
  return intent.status === 'open' && intent.relay && intent.relay.status !== 'published';
}

/**
 * While a wish is on its way to a relay, refresh the relay line of its card
 * every few seconds (only that line: the person may be in the middle of
 * something else on the page). Returns a function that stops.
 */
export function watchRelayStatus(view) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped || !view.container.isConnected) return;
    if (!view.intents.some(waiting)) {
      timer = window.setTimeout(tick, STATUS_EVERY_MS);
      return;
    }
    try {
      const { data } = await api('GET', '/api/v1/intents');
      const fresh = data && Array.isArray(data.intents) ? data.intents : [];
      for (const intent of view.intents.filter(waiting)) {
        const now = fresh.find((i) => i.id === intent.id);
        if (!now || !now.relay || now.relay.status === intent.relay.status) continue;
        intent.relay = now.relay;
        const card = findIntentCard(view, intent.id);
        const line = card && card.querySelector('.relay-line');
        if (line) line.replaceChildren(...[relayFact(intent)].flat().filter(Boolean));
        if (now.relay.status === 'published') announce(`Your wish “${intent.text}” reached ${relaysText(now.relay.relays || [])}.`);
      }
    } catch (err) {
      if (err instanceof Interrupted) return;
      // The next tick tries again; the list itself says if the vault is gone.
    }
    if (!stopped) timer = window.setTimeout(tick, STATUS_EVERY_MS);
  };
  timer = window.setTimeout(tick, STATUS_EVERY_MS);
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}

/** Words for the notice after a wish went out, including the relay. */
export function sentText(view, intent, known) {
  const where = relaysText(view.relays);
  const first = known ? `Your wish was sent to ${plural(known, 'brand')} you know` : 'No brand you know asked for this kind of wish';
  const status = intent && intent.relay ? intent.relay.status : 'pending';
  const relay = status === 'published'
    ? `, and ${where} has it for any brand there.`
    : (status === 'failed' ? `; ${where} could not be reached yet, and your vault will keep trying.` : `; it is on its way to ${where}.`);
  return `${first}${relay} Offers appear under “Your wishes” as they arrive.`;
}
