// @ts-check
// Wishes: the offers on one wish, and accepting one (optionally sharing the
// data it asks for, for a while) or declining it.

import { api, ApiError, Interrupted } from '../../api.js';
import { el, srOnly, messageBox, announce, setBusy, timeEl } from '../../dom.js';
import { field, checkbox, formError, actions } from '../../form.js';
import { plural } from '../../errors.js';
import { recordTitle } from '../../records.js';
import { errorText, fact } from '../../cards.js';
import { fieldLabel, termsRefusal } from '../../grants.js';
import { loadIntents, reloadSoon } from '../intents.js';
import { updateOfferCount, money, noticeOnCard } from './list.js';

// How long an accepted offer's brand may read the data it asked for.
const SHARE_CHOICES = [
  { hours: 1, label: '1 hour' },
  { hours: 24, label: '24 hours' },
  { hours: 168, label: '7 days' },
  { hours: 720, label: '30 days' },
];

const DEFAULT_SHARE_HOURS = 24;

const OFFER_STATUS = {
  pending: 'Waiting for your answer',
  accepted: 'Accepted',
  declined: 'Declined',
};

export async function showOffers(view, intent, card) {
  const toggle = card.querySelector('[data-action="offers"]');
  const panel = card.querySelector('.offers-panel');
  toggle.setAttribute('aria-expanded', 'true');
  panel.hidden = false;
  panel.setAttribute('aria-busy', 'true');
  if (!panel.firstChild) panel.append(el('p', { class: 'loading' }, 'Loading the offers…'));
  try {
    const { data } = await api('GET', `/api/v1/intents/${encodeURIComponent(intent.id)}/offers`);
    if (!card.isConnected) return;
    const offers = (data && Array.isArray(data.offers)) ? data.offers : [];
    // Newer offers may have come live meanwhile; the answer has them all.
    intent.offers_count = Math.max(Number(intent.offers_count) || 0, offers.length);
    updateOfferCount(view, intent, card);
    card.querySelector('.new-offers').hidden = true;
    panel.replaceChildren(...[
      el('h3', { class: 'offers-title' }, `Offers for “${intent.text}”`),
      offers.length ? null : el('p', { class: 'hint offers-empty' }, 'No offers yet. New ones appear here as they arrive.'),
      el('ul', { class: 'cards offers' }, offers.map((o) => offerItem(view, intent, o))),
    ].filter(Boolean));
  } catch (err) {
    if (err instanceof Interrupted || !card.isConnected) return;
    const retry = el('button', { type: 'button', class: 'button small' }, 'Try again');
    retry.addEventListener('click', () => showOffers(view, intent, card));
    panel.replaceChildren(messageBox(`Could not load the offers. ${errorText(err)}`, 'error'), actions(retry));
    announce(`Could not load the offers. ${errorText(err)}`, { assertive: true });
  } finally {
    panel.removeAttribute('aria-busy');
  }
}

/** An https link opens the brand's page; anything else is only shown. */
function offerLink(url) {
  if (!url) return null;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return String(url);
  }
  if (parsed.protocol !== 'https:') return String(url);
  return el('a', { href: parsed.href, rel: 'noopener noreferrer', target: '_blank', class: 'offer-link' },
    parsed.href, srOnly(' (opens in a new tab)'));
}

function fulfilmentWhen(f) {
  if (!f || (!f.from && !f.to)) return null;
  if (f.from && f.to) return [timeEl(f.from), ' to ', timeEl(f.to)];
  return f.from ? ['From ', timeEl(f.from)] : ['Until ', timeEl(f.to)];
}

export function offerItem(view, intent, offer) {
  const status = offer.status || 'pending';
  const name = String(offer.name || 'An offer');
  const brand = String(offer.brand_name || 'A brand');
  const requested = Array.isArray(offer.data_requested) ? offer.data_requested : [];
  const expired = offer.valid_until && Date.parse(offer.valid_until) <= Date.now();
  const pending = status === 'pending';
  // Accepting closes the wish, so only an open wish's offers can be accepted;
  // the others can still be declined, which tells their brand.
  const canAccept = pending && !expired && intent.status === 'open';
  const fulfilment = offer.fulfilment || null;

  const item = el('li', { class: `card offer status-${status}`, 'data-id': String(offer.id) },
    el('p', { class: 'card-title' },
      el('strong', {}, name), ' ',
      el('span', { class: `tag tag-${status}` }, OFFER_STATUS[status] || status)),
    el('p', { class: 'offer-brand' }, 'From ', el('strong', {}, brand)),
    el('dl', { class: 'facts' },
      fact('Price', money(offer.price)),
      fact(expired ? 'Was valid until' : 'Valid until', offer.valid_until ? timeEl(offer.valid_until) : null),
      fact('When', fulfilmentWhen(fulfilment)),
      fact('Where', fulfilment && fulfilment.place ? fulfilment.place : null),
      fact('Details', offer.description ? el('span', { class: 'offer-description' }, offer.description) : null),
      fact('Link', offerLink(offer.url)),
      fact('It asks for', requested.length
        ? el('ul', { class: 'plain-list' }, requested.map((p) => el('li', {}, fieldLabel(p, view))))
        : 'None of your data'),
      fact('Arrived', offer.created_at ? timeEl(offer.created_at) : null),
      status !== 'pending' && offer.decided_at ? fact(status === 'accepted' ? 'You accepted it' : 'You declined it', timeEl(offer.decided_at)) : null,
      offer.grant_id ? fact('Shared', el('a', { href: `#/grants?brand=${encodeURIComponent(offer.client_id)}` }, `See what ${brand} can read`)) : null,
    ),
  );

  if (!pending) return item;
  if (!canAccept) {
    let why = 'This wish is closed: the offer can no longer be accepted.';
    if (expired) why = 'This offer has run out: it can no longer be accepted.';
    else if (intent.status === 'fulfilled') why = 'You accepted another offer for this wish.';
    item.append(el('p', { class: 'hint' }, why));
  }

  let share = null;
  let hours = null;
  if (canAccept && requested.length) {
    share = checkbox({ label: 'Also share the data it asks for' });
    hours = el('select', { name: 'share_hours', 'aria-label': 'For how long to share it' },
      SHARE_CHOICES.map((c) => el('option', { value: String(c.hours), selected: c.hours === DEFAULT_SHARE_HOURS }, `for ${c.label}`)));
    item.append(el('div', { class: 'share-row' }, share.root, hours),
      el('p', { class: 'hint' }, `Without it, ${brand} only learns that you accepted; it can then reach you only through what you already shared.`));
  }

  const accept = canAccept
    ? el('button', { type: 'button', class: 'button small primary', 'data-action': 'accept' }, 'Accept', srOnly(` “${name}” from ${brand}`))
    : null;
  const decline = el('button', { type: 'button', class: 'button small', 'data-action': 'decline' }, 'Decline', srOnly(` “${name}” from ${brand}`));
  const error = formError();
  item.append(error.node, el('div', { class: 'card-actions' }, accept, decline));

  const decide = async (button, accepting) => {
    error.clear();
    const body = accepting ? { share: Boolean(share && share.input.checked) } : undefined;
    if (body && body.share) body.expires_in_hours = Number(hours.value);
    setBusy(button, true, accepting ? 'Accepting…' : 'Declining…');
    for (const b of [accept, decline]) if (b && b !== button) b.disabled = true;
    try {
      const { data } = await api('POST', `/api/v1/offers/${encodeURIComponent(offer.id)}/${accepting ? 'accept' : 'decline'}`, { body });
      if (!view.container.isConnected) return;
      await loadIntents(view);
      let text;
      if (!accepting) {
        text = `Declined “${name}”. ${brand} has been told.`;
      } else if (data && data.grant_id) {
        const choice = SHARE_CHOICES.find((c) => c.hours === body.expires_in_hours);
        const what = requested.map((p) => recordTitleOf(view, p)).join(', ');
        text = `Accepted “${name}”. ${brand} has been told, and may read ${what} for ${choice ? choice.label : plural(body.expires_in_hours, 'hour')}; you can revoke that on the Sharing page.`;
      } else {
        text = `Accepted “${name}”. ${brand} has been told.`;
      }
      noticeOnCard(view, intent.id, text);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      setBusy(button, false);
      for (const b of [accept, decline]) if (b) b.disabled = false;
      const message = decisionProblem(err, accepting);
      error.show(message);
      announce([].concat(message).join(' '), { assertive: true });
      if (err instanceof ApiError && [404, 409].includes(err.status)) reloadSoon(view);
    }
  };
  if (accept) accept.addEventListener('click', () => decide(accept, true));
  decline.addEventListener('click', () => decide(decline, false));
  return item;
}

/** "Phone number" for contact.phone: the field's title without its path. */
function recordTitleOf(view, path) {
  const record = view.records.get(path);
  const parts = String(path).split('.');
  return recordTitle(record || { path, collection: parts[0], field: parts.slice(1).join('.') });
}

function decisionProblem(err, accepting) {
  const verb = accepting ? 'Not accepted' : 'Not declined';
  if (!(err instanceof ApiError)) return `${verb}: ${errorText(err)}`;
  if (err.code === 'grant_not_permitted') {
    return termsRefusal(err, 'Accept without sharing the data, or change your terms under My terms.');
  }
  if (err.status === 409) return `${verb}: this offer was already answered. The list now shows where it stands.`;
  if (err.status === 404) return `${verb}: this offer is no longer in your vault.`;
  if (err.code === 'no_agreement') return `${verb}: the brand no longer has an agreement with you, so nothing can be shared with it. Accept without sharing the data.`;
  return `${verb}: ${errorText(err)}`;
}
