// @ts-check
// Wishes (intentcasting): the person tells brands what they are looking for
// ("lunch nearby for two") without being tracked. The vault sends the wish
// only to brands that accepted terms allowing it and asked for that kind of
// wish; they answer with offers, which arrive here live. The person accepts
// one (optionally sharing the data it asks for, for a while) or declines it,
// and may withdraw a wish at any time.
//
// A position from "Use my location" is turned into a geohash in this
// browser: only that cell, at the size the person picked, is ever sent.
//
// This file is the screen: loading, live offers and the layout. The form is in
// intents/composer.js, the list of wishes in intents/list.js, and a wish's
// offers in intents/offers.js.

import { api, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce } from '../dom.js';
import { actions } from '../form.js';
import { fetchAllRecords, sortRecords, normalizeRecord } from '../records.js';
import { errorText, showNotice } from '../cards.js';
import { listenForOffers } from '../live.js';
import { renderForm } from './intents/composer.js';
import { findIntentCard, renderIntents, updateOfferCount } from './intents/list.js';
import { offerItem } from './intents/offers.js';
import { loadRelays, watchRelayStatus } from './intents/relay.js';
import { loadProposals } from './intents/proposals.js';

/**
 * The vault's limits for a new wish, served with its categories by
 * GET /api/v1/intent-categories.
 * @typedef {{
 *   max_text_chars: number, max_tags: number, max_tag_chars: number,
 *   max_party_size: number, max_offers: number, default_max_offers: number,
 *   max_disclosed: number, max_geohash_chars: number, max_radius_m: number,
 * }} IntentLimits
 */

export function render(container, ctx) {
  const view = {
    container,
    ctx,
    focusIntent: ctx.query().get('intent'),
    categories: [],
    limits: /** @type {IntentLimits | null} */ (null), // from GET /api/v1/intent-categories
    relays: /** @type {import('./intents/relay_words.js').RelayInfo[]} */ ([]), // from GET /api/v1/relays
    labels: new Map(), // category id -> "Food and drink › Lunch"
    recordList: [],
    records: new Map(), // path -> record
    intents: [],
    open: new Set(), // ids of the wishes whose offers are shown
    loaded: false,
    heading: el('h1', {}, 'Wishes'),
    lead: el('p', { class: 'lead' }, 'Tell brands what you are looking for without being tracked: only brands that accepted terms allowing it hear your wish, and they answer with offers you can take or leave.'),
    formHost: el('div', { class: 'intent-form-host', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading the kinds of wishes…')),
    formNotice: el('div', { class: 'notice-slot' }),
    listHeading: el('h2', { id: 'intents-list-heading', tabindex: '-1' }, 'Your wishes'),
    liveStatus: el('div', { class: 'live-status', hidden: true }),
    listNotice: el('div', { class: 'notice-slot' }),
    listHost: el('div', { class: 'cards-host intents-list', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading your wishes…')),
    proposalsHost: el('div', { class: 'cards-host' }),
    proposalsSection: /** @type {HTMLElement} */ (el('section', { 'aria-labelledby': 'proposals-heading', hidden: true })),
    reloadTimer: null,
    stopLive: () => {},
  };
  view.proposalsSection.append(
    el('h2', { id: 'proposals-heading' }, 'Your assistant asks'),
    el('p', {}, 'Your assistant cannot accept an offer or share your data by itself. It asks you here; nothing happens until you answer.'),
    view.proposalsHost,
  );

  container.append(
    view.heading,
    view.lead,

    view.proposalsSection,

    el('section', { 'aria-labelledby': 'intent-new-heading' },
      el('h2', { id: 'intent-new-heading' }, 'Make a wish'),
      view.formHost,
      view.formNotice,
    ),

    el('section', { 'aria-labelledby': 'intents-list-heading' },
      view.listHeading,
      el('p', {}, 'Offers appear here as brands send them. Accepting one tells its brand and closes the wish; brands never learn who you are unless you share data with them.'),
      view.liveStatus,
      view.listNotice,
      view.listHost,
    ),
  );

  startLive(view);
  loadAll(view);
  const stopRelayStatus = watchRelayStatus(view);
  return () => {
    view.stopLive();
    stopRelayStatus();
    window.clearTimeout(view.reloadTimer);
  };
}

const INTERRUPTED = Symbol('interrupted');

/** A request whose failure must not stop the screen: resolves to the error instead. */
function optional(promise) {
  return promise.catch((err) => (err instanceof Interrupted ? INTERRUPTED : (err instanceof Error ? err : new Error(String(err)))));
}

async function loadAll(view) {
  const [taxonomy, records, relays] = await Promise.all([
    optional(api('GET', '/api/v1/intent-categories').then(({ data }) => data || {})),
    optional(fetchAllRecords()),
    optional(loadRelays()),
  ]);
  if (!view.container.isConnected || [taxonomy, records, relays].includes(INTERRUPTED)) return;
  // Without an answer about relays the wish goes to brands the person knows, as it always could.
  view.relays = Array.isArray(relays) ? relays : [];
  if (view.relays.length) {
    // With a relay, brands there hear a wish before they accept anything: the lead says so.
    view.lead.textContent = 'Tell brands what you are looking for without being tracked. Brands you know hear your wish if they accepted terms allowing it; if you choose, so do brands you have never met, through a relay, which must accept your terms to answer. They answer with offers you can take or leave.';
  }
  // The vault's own limits for a new wish come with its categories, so this screen keeps no copy
  // of them that could drift; without them the form cannot check a wish, so it is not shown.
  const categories = taxonomy instanceof Error ? taxonomy
    : (taxonomy.limits ? (taxonomy.categories || []) : new Error('The vault did not say its limits for a wish.'));
  view.limits = categories instanceof Error ? null : taxonomy.limits;
  view.categories = (Array.isArray(categories) ? categories : []).filter((c) => c && typeof c.id === 'string');
  view.labels = categoryLabels(view.categories);
  view.recordList = Array.isArray(records) ? sortRecords(records.map((r) => normalizeRecord(r))) : [];
  view.records = new Map(view.recordList.map((r) => [r.path, r]));

  if (categories instanceof Error) {
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => {
      view.formHost.replaceChildren(el('p', { class: 'loading' }, 'Loading the kinds of wishes…'));
      loadAll(view);
    });
    view.formHost.replaceChildren(messageBox(`Could not load the kinds of wishes. ${errorText(categories)}`, 'error'), actions(retry));
    view.formHost.removeAttribute('aria-busy');
  } else {
    renderForm(view, { recordsFailed: records instanceof Error });
  }
  await Promise.all([
    loadIntents(view),
    loadProposals(view.proposalsSection, view.proposalsHost, () => reloadSoon(view)),
  ]);
  if (view.focusIntent) openFromQuery(view, view.focusIntent);
}

/**
 * Labels that say where a category sits: "Lunch" is "Food and drink › Lunch",
 * so that a card reads well on its own.
 */
function categoryLabels(categories) {
  const own = new Map(categories.map((c) => [c.id, c.label || c.id]));
  const full = new Map();
  for (const c of categories) {
    const parts = c.id.split('.');
    const names = parts.map((_, i) => own.get(parts.slice(0, i + 1).join('.')) || parts[i]);
    full.set(c.id, names.join(' › '));
  }
  return full;
}

export function categoryLabel(view, id) {
  return view.labels.get(id) || String(id || 'Something');
}

/**
 * GET /api/v1/intents and draw the list; the wishes whose offers were shown
 * show them again. Resolves to false when nothing could be shown.
 */
export async function loadIntents(view) {
  view.listHost.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', '/api/v1/intents');
    if (!view.container.isConnected) return false;
    view.intents = (data && Array.isArray(data.intents)) ? data.intents : [];
    view.loaded = true;
    await renderIntents(view);
    return true;
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return false;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadIntents(view));
    const message = `Could not load your wishes. ${errorText(err)}`;
    view.listHost.replaceChildren(messageBox(message, 'error'), actions(retry));
    announce(message, { assertive: true });
    return false;
  } finally {
    view.listHost.removeAttribute('aria-busy');
  }
}

/** Reload soon, once, however many reasons there are (offers arriving together). */
export function reloadSoon(view) {
  window.clearTimeout(view.reloadTimer);
  view.reloadTimer = window.setTimeout(() => {
    if (view.container.isConnected) loadIntents(view);
  }, 300);
}

function openFromQuery(view, id) {
  const card = findIntentCard(view, id);
  if (!card) {
    showNotice(view.listNotice, 'That wish is not in your vault.', 'info');
    return;
  }
  const toggle = card.querySelector('[data-action="offers"]');
  if (toggle.getAttribute('aria-expanded') !== 'true') toggle.click();
  card.scrollIntoView({ block: 'start' });
  focusElement(card.querySelector('.card-title'));
}

function startLive(view) {
  view.stopLive = listenForOffers({
    onOffer: (offer) => offerArrived(view, offer),
    onOpen: (again) => {
      view.liveStatus.hidden = true;
      view.liveStatus.replaceChildren();
      // Offers sent while the connection was down were not pushed: fetch them.
      if (again && view.loaded) loadIntents(view);
    },
    onLost: (closed) => {
      if (!view.container.isConnected) return;
      if (!closed) {
        view.liveStatus.replaceChildren(messageBox('The live connection to your vault was lost; trying again. New offers show up once it is back.', 'warning'));
        view.liveStatus.hidden = false;
        return;
      }
      const again = el('button', { type: 'button', class: 'button' }, 'Reconnect');
      again.addEventListener('click', () => {
        view.liveStatus.hidden = true;
        startLive(view);
        loadIntents(view);
      });
      view.liveStatus.replaceChildren(
        messageBox('New offers no longer show up by themselves: your vault closed the live connection. Reconnect, or reload the page.', 'warning'),
        actions(again),
      );
      view.liveStatus.hidden = false;
      // If the session ended, this request says so and app.js takes the
      // person to the login screen.
      loadIntents(view);
    },
  });
}

function offerArrived(view, offer) {
  if (!view.container.isConnected) return;
  const intent = view.intents.find((i) => i.id === offer.intent_id);
  const card = findIntentCard(view, offer.intent_id);
  const brand = offer.brand_name || (offer.brand && offer.brand.name) || 'A brand';
  if (!intent || !card) {
    // A wish made elsewhere (another tab, the API): show the list anew.
    announce(`New offer from ${brand}: “${offer.name || 'an offer'}”.`);
    reloadSoon(view);
    return;
  }
  const panel = card.querySelector('.offers-panel');
  if (panel.querySelector(`li.offer[data-id="${CSS.escape(offer.id)}"]`)) return; // already shown

  intent.offers_count = (Number(intent.offers_count) || 0) + 1;
  updateOfferCount(view, intent, card);
  if (view.open.has(intent.id) && panel.querySelector('.offers')) {
    const item = offerItem(view, intent, offer);
    item.classList.add('just-arrived');
    panel.querySelector('.offers').append(item);
    const empty = panel.querySelector('.offers-empty');
    if (empty) empty.remove();
  } else {
    card.querySelector('.new-offers').hidden = false;
  }
  announce(`New offer from ${brand}: “${offer.name || 'an offer'}”, for your wish “${intent.text}”.`);
}
