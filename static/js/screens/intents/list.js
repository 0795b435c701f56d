// @ts-check
// Wishes: the person's list of them, each a card with its status, where and
// when, how many offers arrived, and the buttons to withdraw or erase it.

import { api, ApiError, Interrupted } from '../../api.js';
import { el, srOnly, focusElement, announce, setBusy, timeEl, uid } from '../../dom.js';
import { plural } from '../../errors.js';
import { errorText, showNotice, confirmInline, fact } from '../../cards.js';
import { fieldLabel } from '../../grants.js';
import { categoryLabel, loadIntents } from '../intents.js';
import { CELL_SIZES } from './composer.js';
import { showOffers } from './offers.js';
import { relayFact } from './relay_words.js';

const INTENT_STATUS = {
  open: 'Open',
  withdrawn: 'Withdrawn',
  expired: 'Expired',
  fulfilled: 'Offer accepted',
};

export function findIntentCard(view, id) {
  return [...view.listHost.querySelectorAll('li.intent')].find((li) => li.dataset.id === id) || null;
}

export async function renderIntents(view) {
  if (!view.intents.length) {
    view.listHost.replaceChildren(el('p', { class: 'hint' }, 'You have made no wish yet.'));
    return;
  }
  const items = view.intents.map((intent) => intentItem(view, intent));
  view.listHost.replaceChildren(el('ul', { class: 'cards' }, items));
  // Offers that were shown stay shown.
  const reopen = view.intents.filter((i) => view.open.has(i.id));
  await Promise.all(reopen.map((intent) => {
    const card = findIntentCard(view, intent.id);
    return showOffers(view, intent, card);
  }));
}

/**
 * @param {any} intent
 * @param {import('../intents.js').IntentLimits | null} limits
 */
function offersCountText(intent, limits) {
  const n = Number(intent.offers_count) || 0;
  const max = Number(intent.max_offers) || (limits ? limits.default_max_offers : '?');
  return n ? `${plural(n, 'offer')} (at most ${max})` : `None yet (at most ${max})`;
}

export function updateOfferCount(view, intent, card) {
  card.querySelector('.offers-count').textContent = offersCountText(intent, view.limits);
  card.querySelector('.offers-button-count').textContent = `(${Number(intent.offers_count) || 0})`;
}

/** "Up to €15.00", or the amount and code as they are when the browser does not know the currency. */
export function money(price) {
  if (!price || !price.amount) return null;
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: price.currency }).format(Number(price.amount));
  } catch {
    return `${price.amount} ${price.currency || ''}`.trim();
  }
}

function locationText(location) {
  if (!location || !location.geohash) return 'Anywhere';
  const size = CELL_SIZES[String(location.geohash).length] || 'an area';
  const radius = Number(location.radius_m) || 0;
  const around = radius >= 1000 ? `${radius / 1000} km` : `${radius} m`;
  return [`Area `, el('code', {}, location.geohash), ` (${size} across) and ${around} around it`];
}

function intentItem(view, intent) {
  const status = intent.status || 'open';
  const isOpen = status === 'open';
  const offersId = uid('offers');
  const text = String(intent.text || '');
  const toggle = el('button', {
    type: 'button', class: 'button small', 'aria-expanded': 'false', 'aria-controls': offersId, 'data-action': 'offers',
  }, el('span', {}, 'Offers ', el('span', { class: 'offers-button-count' }, `(${Number(intent.offers_count) || 0})`)), srOnly(` for “${text}”`));
  const withdraw = isOpen
    ? el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'withdraw' }, 'Withdraw', srOnly(` “${text}”`))
    : null;
  const erase = el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'erase' }, 'Delete for good', srOnly(` “${text}”`));
  const panel = el('div', { class: 'offers-panel', id: offersId, hidden: true });
  const disclosed = Array.isArray(intent.disclose) ? intent.disclose : [];
  const recipients = Number(intent.recipients_count) || 0;
  const until = { open: 'Open until', expired: 'Expired' }[status] || 'Was open until';

  const item = el('li', { class: `card intent status-${status}`, 'data-id': String(intent.id) },
    el('p', { class: 'card-title' },
      el('strong', {}, text), ' ',
      el('span', { class: `tag tag-${status}` }, INTENT_STATUS[status] || status), ' ',
      el('span', { class: 'tag tag-new new-offers', hidden: true }, 'New offer')),
    el('dl', { class: 'facts' },
      fact('Kind', categoryLabel(view, intent.category)),
      fact(until, intent.expires_at ? timeEl(intent.expires_at) : null),
      intent.relay
        ? fact('Brands you know', recipients ? `${plural(recipients, 'brand')} heard it` : 'None asked for this kind of wish')
        : fact('Heard by', recipients ? plural(recipients, 'brand') : 'No brand'),
      intent.relay ? el('div', { class: 'relay-line' }, relayFact(intent)) : null,
      fact('Offers', el('span', { class: 'offers-count' }, offersCountText(intent, view.limits))),
      fact('Where', locationText(intent.location)),
      intent.window ? fact('When', [timeEl(intent.window.from), ' to ', timeEl(intent.window.to)]) : null,
      intent.price_max ? fact('Price', `Up to ${money(intent.price_max)}`) : null,
      fact('People', intent.party_size ? String(intent.party_size) : null),
      fact('Keywords', Array.isArray(intent.tags) && intent.tags.length ? intent.tags.join(', ') : null),
      fact('Sent with it', disclosed.length
        ? el('ul', { class: 'plain-list' }, disclosed.map((p) => el('li', {}, fieldLabel(p, view))))
        : 'None of your data'),
      fact('Made', intent.created_at ? timeEl(intent.created_at) : null),
    ),
    recipients || intent.relay ? null : el('p', { class: 'hint' }, 'No brand that accepted terms allowing wishes asked for this kind of wish when you made it, so nobody heard it.'),
    el('div', { class: 'notice-slot' }),
    el('div', { class: 'card-actions' }, toggle, withdraw, erase),
    el('div', { class: 'confirm-slot' }),
    panel,
  );

  toggle.addEventListener('click', () => {
    if (toggle.getAttribute('aria-expanded') === 'true') {
      view.open.delete(intent.id);
      toggle.setAttribute('aria-expanded', 'false');
      panel.hidden = true;
      return;
    }
    view.open.add(intent.id);
    item.querySelector('.new-offers').hidden = true;
    showOffers(view, intent, item);
  });

  if (withdraw) {
    withdraw.addEventListener('click', () => {
      confirmInline(item, {
        question: `Withdraw your wish “${text}”?`,
        explanation: 'The brands that heard it are told, and they can send no more offers. Offers you already got stay listed. This cannot be undone.',
        yesLabel: 'Yes, withdraw',
        onYes: (controls) => withdrawIntent(view, intent, controls),
      });
    });
  }
  erase.addEventListener('click', () => {
    confirmInline(item, {
      question: `Delete your wish “${text}” for good?`,
      explanation: `The wish and ${isOpen ? 'any offers' : 'the offers'} for it are deleted from your vault for real, and brands that have not fetched it yet never will. Brands that already received it keep what they got${isOpen ? ', and are not told: withdraw it first if they should be' : ''}. Data you shared by accepting an offer stays shared until you revoke it under Sharing. Your activity log keeps a line saying a wish was deleted, without its text. This cannot be undone.`,
      yesLabel: 'Yes, delete for good',
      onYes: (controls) => eraseIntent(view, intent, controls),
    });
  });
  return item;
}

async function eraseIntent(view, intent, { yes, error }) {
  setBusy(yes, true, 'Deleting…');
  try {
    await api('POST', `/api/v1/intents/${encodeURIComponent(intent.id)}/erase`);
    if (!view.container.isConnected) return;
    view.open.delete(intent.id);
    await loadIntents(view);
    const box = showNotice(view.listNotice, `Deleted your wish “${String(intent.text || '')}” and its offers for good.`);
    focusElement(box);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    const message = err instanceof ApiError && err.status === 404
      ? 'Not deleted: this wish is no longer in your vault. Reload the page.'
      : `Not deleted: ${errorText(err)}`;
    error.show(message);
    announce(message, { assertive: true });
  }
}

async function withdrawIntent(view, intent, { yes, error }) {
  setBusy(yes, true, 'Withdrawing…');
  try {
    await api('DELETE', `/api/v1/intents/${encodeURIComponent(intent.id)}`);
    if (!view.container.isConnected) return;
    await loadIntents(view);
    const n = Number(intent.recipients_count) || 0;
    noticeOnCard(view, intent.id, n
      ? `Withdrawn. The ${plural(n, 'brand')} that heard it ${n === 1 ? 'was' : 'were'} told.`
      : 'Withdrawn.');
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    const message = err instanceof ApiError && err.status === 409
      ? 'Not withdrawn: this wish is already closed. Reload the page to see where it stands.'
      : `Not withdrawn: ${errorText(err)}`;
    error.show(message);
    announce(message, { assertive: true });
  }
}

/** A message on a wish's card after the list was drawn anew, with focus on it. */
export function noticeOnCard(view, intentId, text, kind = 'success') {
  const card = findIntentCard(view, intentId);
  const slot = card ? card.querySelector('.notice-slot') : view.listNotice;
  const box = showNotice(slot, text, kind);
  focusElement(box);
}
