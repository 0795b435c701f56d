// @ts-check
// Wishes: the offers on one wish, and accepting one (optionally sharing some
// of the data it asks for, for a while) or declining it.

import { api, ApiError, Interrupted } from '../../api.js';
import { el, srOnly, messageBox, announce, setBusy, timeEl } from '../../dom.js';
import { field, checkbox, formError, actions } from '../../form.js';
import { plural, asSentence } from '../../errors.js';
import { recordTitle } from '../../records.js';
import { errorText, fact } from '../../cards.js';
import { INTENTCASTING_PURPOSE } from '../../grants.js';
import { loadIntents, reloadSoon } from '../intents.js';
import { updateOfferCount, money, noticeOnCard } from './list.js';
import { isRelayed, isVerified, offerBrandName, relayedLabel, disclosureChoice, acceptedText } from './relayed_offer.js';

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
  // An offer through the relay comes from a brand the person never invited: labelled as such.
  const relayed = isRelayed(offer);
  const brand = offerBrandName(offer);
  const requested = Array.isArray(offer.data_requested) ? offer.data_requested : [];
  const expired = offer.valid_until && Date.parse(offer.valid_until) <= Date.now();
  const pending = status === 'pending';
  // Accepting closes the wish, so only an open wish's offers can be accepted;
  // the others can still be declined, which tells their brand.
  const canAccept = pending && !expired && intent.status === 'open';
  const fulfilment = offer.fulfilment || null;

  const item = el('li', { class: `card offer status-${status}${relayed ? ' offer-relayed' : ''}`, 'data-id': String(offer.id) },
    el('p', { class: 'card-title' },
      el('strong', {}, name), ' ',
      el('span', { class: `tag tag-${status}` }, OFFER_STATUS[status] || status)),
    relayed ? relayedLabel(offer) : el('p', { class: 'offer-brand' }, 'From ', el('strong', {}, brand)),
    el('dl', { class: 'facts' },
      fact('Price', money(offer.price)),
      fact(expired ? 'Was valid until' : 'Valid until', offer.valid_until ? timeEl(offer.valid_until) : null),
      fact('When', fulfilmentWhen(fulfilment)),
      fact('Where', fulfilment && fulfilment.place ? fulfilment.place : null),
      fact('Details', offer.description ? el('span', { class: 'offer-description' }, offer.description) : null),
      fact('Link', offerLink(offer.url)),
      fact('It asks for', requested.length
        ? el('ul', { class: 'plain-list' }, requested.map((p) => el('li', {}, recordTitleOf(view, p))))
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

  /** @type {{ path: string, input: HTMLInputElement }[]} */
  let shareBoxes = [];
  let hours = null;
  // A relayed brand gets copies, encrypted to it, instead of a grant to read for a while.
  /** @type {null | ReturnType<typeof disclosureChoice>} */
  let disclosure = null;
  if (canAccept && requested.length && relayed) {
    if (isVerified(offer)) {
      disclosure = disclosureChoice(offer, requested, (p) => recordTitleOf(view, p));
      item.append(disclosure.root);
    } else {
      item.append(el('p', { class: 'hint' }, 'Nothing of yours can be sent to a brand whose identity was not checked. You can still accept or decline.'));
    }
  } else if (canAccept && requested.length) {
    const sharing = shareChoice(view, offer, brand, requested);
    shareBoxes = sharing.boxes;
    hours = sharing.hours;
    item.append(sharing.root);
  }

  const accept = canAccept
    ? el('button', { type: 'button', class: 'button small primary', 'data-action': 'accept' }, 'Accept', srOnly(` “${name}” from ${brand}`))
    : null;
  const decline = el('button', { type: 'button', class: 'button small', 'data-action': 'decline' }, 'Decline', srOnly(` “${name}” from ${brand}`));
  const error = formError();
  item.append(error.node, el('div', { class: 'card-actions' }, accept, decline));

  const decide = async (button, accepting) => {
    error.clear();
    const chosen = relayed
      ? (disclosure ? disclosure.chosen() : [])
      : shareBoxes.filter((b) => b.input.checked && !b.input.disabled).map((b) => b.path);
    /** @type {{ share?: boolean, expires_in_hours?: number, fields?: string[], disclose?: string[] } | undefined} */
    let body;
    if (accepting && relayed) {
      body = { disclose: chosen };
    } else if (accepting) {
      body = { share: chosen.length > 0 };
      if (body.share) {
        body.expires_in_hours = Number(hours.value);
        body.fields = chosen;
      }
    }
    setBusy(button, true, accepting ? 'Accepting…' : 'Declining…');
    for (const b of [accept, decline]) if (b && b !== button) b.disabled = true;
    try {
      const { data } = await api('POST', `/api/v1/offers/${encodeURIComponent(offer.id)}/${accepting ? 'accept' : 'decline'}`, { body });
      if (!view.container.isConnected) return;
      await loadIntents(view);
      let text;
      if (!accepting) {
        text = `Declined “${name}”. ${brand} has been told.`;
      } else if (relayed) {
        // The vault says what it sent; what was ticked, should the answer lack it.
        const sent = data && data.sent && Array.isArray(data.sent.disclosed) ? data.sent.disclosed : chosen;
        text = acceptedText(offer, name, sent.map((p) => recordTitleOf(view, p)));
      } else if (data && data.grant_id) {
        const choice = SHARE_CHOICES.find((c) => c.hours === body.expires_in_hours);
        const what = chosen.map((p) => recordTitleOf(view, p)).join(', ');
        text = `Accepted “${name}”. ${brand} has been told, and may read ${what} for ${choice ? choice.label : plural(body.expires_in_hours, 'hour')}; you can revoke that on the Sharing page.`;
      } else {
        text = `Accepted “${name}”. ${brand} has been told.`;
      }
      noticeOnCard(view, intent.id, text);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      setBusy(button, false);
      for (const b of [accept, decline]) if (b) b.disabled = false;
      // A field the terms refuse is unticked and locked here, so the next try can succeed.
      const locked = disclosure && err instanceof ApiError && err.code === 'grant_not_permitted'
        ? disclosure.refuseNamed(err.serverMessage) : 0;
      const message = decisionProblem(err, accepting, relayed, locked > 0);
      error.show(message);
      announce([].concat(message).join(' '), { assertive: true });
      if (err instanceof ApiError && [404, 409].includes(err.status)) reloadSoon(view);
    }
  };
  if (accept) accept.addEventListener('click', () => decide(accept, true));
  decline.addEventListener('click', () => decide(decline, false));
  return item;
}

/**
 * One checkbox per field the offer asks for, ticked only where the terms
 * allow sharing it: the vault answers per field, before the person tries
 * (POST /api/v1/sharing/check). A field the terms refuse stays unticked and
 * cannot be chosen, with the reason beside it.
 */
function shareChoice(view, offer, brand, requested) {
  const boxes = requested.map((path) => {
    const box = checkbox({ label: recordTitleOf(view, path) });
    box.input.name = 'share_field';
    box.input.value = path;
    box.input.disabled = true;
    return { path, input: box.input, root: box.root };
  });
  const hours = el('select', { name: 'share_hours', 'aria-label': 'For how long to share it' },
    SHARE_CHOICES.map((c) => el('option', { value: String(c.hours), selected: c.hours === DEFAULT_SHARE_HOURS }, `for ${c.label}`)));
  const status = el('p', { class: 'hint share-status', role: 'status' }, 'Checking what your terms allow…');
  const root = el('fieldset', { class: 'fieldset share-choice' },
    el('legend', {}, `Share with ${brand} when you accept`),
    ...boxes.map((b) => b.root),
    status,
    el('div', { class: 'share-row' }, hours),
    el('p', { class: 'hint' }, `Untick everything to accept without sharing: ${brand} then only learns that you accepted, and can reach you only through what you already shared.`));

  api('POST', '/api/v1/sharing/check', {
    body: { client_id: String(offer.client_id), fields: requested, purposes: [INTENTCASTING_PURPOSE] },
  }).then(({ data }) => {
    const verdict = data && Array.isArray(data.purposes) ? data.purposes[0] : null;
    const fields = verdict && Array.isArray(verdict.fields) ? verdict.fields : [];
    let refused = 0;
    for (const b of boxes) {
      const v = fields.find((f) => f.field === b.path);
      const allowed = Boolean(v && v.allowed);
      b.input.disabled = !allowed;
      b.input.checked = allowed;
      if (!allowed) {
        refused += 1;
        const why = el('p', { class: 'hint field-refused', id: `${b.input.id}-why` },
          `Not allowed: ${v && v.reason ? v.reason : 'your terms do not allow sharing it with this brand.'}`);
        b.input.setAttribute('aria-describedby', why.id);
        b.root.append(why);
      }
    }
    status.textContent = refused === boxes.length
      ? 'Your terms allow none of it, so accepting shares nothing. You can change that under My terms.'
      : (refused ? 'Only what your terms allow is ticked.' : '');
    status.hidden = !status.textContent;
  }).catch((err) => {
    if (err instanceof Interrupted) return;
    if (err instanceof ApiError && err.code === 'no_agreement') {
      status.textContent = `${brand} has no agreement on your current terms, so nothing can be shared with it. You can still accept.`;
      return;
    }
    // Without the terms' answer the person still chooses; the vault checks again on accepting.
    for (const b of boxes) b.input.disabled = false;
    status.textContent = `Could not check what your terms allow (${errorText(err)}). Tick what to share; the vault checks it when you accept.`;
  });
  return { root, boxes, hours };
}

/** "Phone number" for contact.phone: the field's title without its path. */
function recordTitleOf(view, path) {
  const record = view.records.get(path);
  const parts = String(path).split('.');
  return recordTitle(record || { path, collection: parts[0], field: parts.slice(1).join('.') });
}

function decisionProblem(err, accepting, relayed = false, unticked = false) {
  const verb = accepting ? 'Not accepted' : 'Not declined';
  if (!(err instanceof ApiError)) return `${verb}: ${errorText(err)}`;
  if (relayed && err.code === 'grant_not_permitted' && err.serverMessage) {
    // The vault names the data the terms refuse to send, in words (its own word for a wish
    // is the API's).
    const words = err.serverMessage.replace(/\ban intent\b/g, 'a wish').replace(/\bintents\b/g, 'wishes').replace(/\bintent\b/g, 'wish');
    return [`${verb}: ${asSentence(words)}`, unticked
      ? 'It is unticked now: accept again to send the rest.'
      : 'Untick it to accept without sending it.'];
  }
  if (err.code === 'grant_not_permitted') {
    // The vault names the refused data and what can still be shared, in words.
    return [`${verb}: ${err.serverMessage || 'your terms do not allow sharing this data with this brand.'}`,
      'Untick it to accept without sharing it.'];
  }
  if (err.status === 409) return `${verb}: this offer was already answered. The list now shows where it stands.`;
  if (err.status === 404) return `${verb}: this offer is no longer in your vault.`;
  if (err.code === 'no_agreement') return `${verb}: the brand no longer has an agreement with you, so nothing can be shared with it. Accept without sharing the data.`;
  return `${verb}: ${errorText(err)}`;
}
