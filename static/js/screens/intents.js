// Wishes (intentcasting): the person tells brands what they are looking for
// ("lunch nearby for two") without being tracked. The vault sends the wish
// only to brands that accepted terms allowing it and asked for that kind of
// wish; they answer with offers, which arrive here live. The person accepts
// one (optionally sharing the data it asks for, for a while) or declines it,
// and may withdraw a wish at any time.
//
// A position from "Use my location" is turned into a geohash in this
// browser: only that cell, at the size the person picked, is ever sent.

import { api, ApiError, Interrupted } from '../api.js';
import { el, srOnly, messageBox, focusElement, announce, setBusy, timeEl, uid } from '../dom.js';
import { field, checkbox, radio, fieldset, formError, actions } from '../form.js';
import { asSentence, plural } from '../errors.js';
import { fetchAllRecords, sortRecords, normalizeRecord, recordTitle } from '../records.js';
import { errorText, showNotice, confirmInline, fact } from '../cards.js';
import { fieldLabel, rfc3339, termsRefusal } from '../grants.js';
import { encode, GEOHASH_PATTERN, MAX_PRECISION } from '../geohash.js';
import { listenForOffers } from '../live.js';

const HOUR_MS = 60 * 60 * 1000;

// The vault's limits (POST /api/v1/intents), checked here first so that the
// person hears about a problem next to the field, in words.
const MAX_TEXT = 500;
const MAX_TAGS = 10;
const MAX_TAG_CHARS = 32;
const MAX_PARTY = 100;
const MAX_OFFERS = 50;
const DEFAULT_MAX_OFFERS = 10;
const MAX_DISCLOSED = 10;

const EXPIRY_CHOICES = [
  { value: '1h', label: '1 hour', until: (now) => new Date(now + HOUR_MS) },
  { value: '3h', label: '3 hours', until: (now) => new Date(now + 3 * HOUR_MS) },
  { value: 'today', label: 'Until the end of today', until: endOfToday },
  { value: '1w', label: '1 week', until: (now) => new Date(now + 7 * 24 * HOUR_MS) },
];
const DEFAULT_EXPIRY = '3h';

// Geohash length -> the size of its cell, in words.
const CELL_SIZES = {
  1: 'about 5,000 km',
  2: 'about 1,250 km',
  3: 'about 150 km',
  4: 'about 20 km',
  5: 'about 5 km',
  6: 'about 1 km',
  7: 'about 150 m',
};
const PRECISIONS = [
  { value: 3, label: 'About 150 km (a region)' },
  { value: 4, label: 'About 20 km (a city)' },
  { value: 5, label: 'About 5 km (a district)' },
  { value: 6, label: 'About 1 km (a neighbourhood)' },
  { value: 7, label: 'About 150 m (a street)' },
];
const DEFAULT_PRECISION = 5;

const RADII = [
  { value: 500, label: '500 m' },
  { value: 1000, label: '1 km' },
  { value: 2000, label: '2 km' },
  { value: 5000, label: '5 km' },
  { value: 10000, label: '10 km' },
  { value: 25000, label: '25 km' },
  { value: 50000, label: '50 km' },
];
const DEFAULT_RADIUS = 2000;

// How long an accepted offer's brand may read the data it asked for.
const SHARE_CHOICES = [
  { hours: 1, label: '1 hour' },
  { hours: 24, label: '24 hours' },
  { hours: 168, label: '7 days' },
  { hours: 720, label: '30 days' },
];
const DEFAULT_SHARE_HOURS = 24;

const INTENT_STATUS = {
  open: 'Open',
  withdrawn: 'Withdrawn',
  expired: 'Expired',
  fulfilled: 'Offer accepted',
};
const OFFER_STATUS = {
  pending: 'Waiting for your answer',
  accepted: 'Accepted',
  declined: 'Declined',
};

export function render(container, ctx) {
  const view = {
    container,
    ctx,
    focusIntent: ctx.query().get('intent'),
    categories: [],
    labels: new Map(), // category id -> "Food and drink › Lunch"
    recordList: [],
    records: new Map(), // path -> record
    intents: [],
    open: new Set(), // ids of the wishes whose offers are shown
    loaded: false,
    heading: el('h1', {}, 'Wishes'),
    formHost: el('div', { class: 'intent-form-host', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading the kinds of wishes…')),
    formNotice: el('div', { class: 'notice-slot' }),
    listHeading: el('h2', { id: 'intents-list-heading', tabindex: '-1' }, 'Your wishes'),
    liveStatus: el('div', { class: 'live-status', hidden: true }),
    listNotice: el('div', { class: 'notice-slot' }),
    listHost: el('div', { class: 'cards-host intents-list', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading your wishes…')),
    reloadTimer: null,
    stopLive: () => {},
  };

  container.append(
    view.heading,
    el('p', { class: 'lead' }, 'Tell brands what you are looking for without being tracked: only brands that accepted terms allowing it hear your wish, and they answer with offers you can take or leave.'),

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
  return () => {
    view.stopLive();
    window.clearTimeout(view.reloadTimer);
  };
}

// --- Loading -------------------------------------------------------------------

const INTERRUPTED = Symbol('interrupted');

/** A request whose failure must not stop the screen: resolves to the error instead. */
function optional(promise) {
  return promise.catch((err) => (err instanceof Interrupted ? INTERRUPTED : (err instanceof Error ? err : new Error(String(err)))));
}

async function loadAll(view) {
  const [categories, records] = await Promise.all([
    optional(api('GET', '/api/v1/intent-categories').then(({ data }) => (data && data.categories) || [])),
    optional(fetchAllRecords()),
  ]);
  if (!view.container.isConnected || [categories, records].includes(INTERRUPTED)) return;
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
  await loadIntents(view);
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

function categoryLabel(view, id) {
  return view.labels.get(id) || String(id || 'Something');
}

/**
 * GET /api/v1/intents and draw the list; the wishes whose offers were shown
 * show them again. Resolves to false when nothing could be shown.
 */
async function loadIntents(view) {
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
function reloadSoon(view) {
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

// --- Live offers -------------------------------------------------------------------

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
  const brand = offer.brand_name || 'A brand';
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

// --- Make a wish ---------------------------------------------------------------------

function renderForm(view, { recordsFailed }) {
  // What: grouped by the top of the tree, each group led by "anything" of it.
  const categorySelect = el('select', { name: 'category', required: true });
  categorySelect.append(el('option', { value: '' }, 'Choose one'));
  const groups = new Map();
  for (const c of view.categories) {
    const top = c.id.split('.')[0];
    if (!groups.has(top)) groups.set(top, []);
    groups.get(top).push(c);
  }
  for (const [top, entries] of groups) {
    const topLabel = categoryLabel(view, top);
    categorySelect.append(el('optgroup', { label: topLabel }, entries.map((c) => el('option', { value: c.id },
      c.id === top ? `${topLabel}: anything` : categoryLabel(view, c.id).split(' › ').slice(1).join(' › ')))));
  }
  const category = field({
    label: 'What kind of thing',
    hint: 'Brands ask for the kinds they can answer; only they hear your wish.',
    control: categorySelect,
  });

  const text = field({
    label: 'What you are looking for',
    hint: `In your own words, for example “lunch nearby for two, vegetarian”. Every brand that hears your wish reads this. At most ${MAX_TEXT} characters.`,
    control: el('input', { type: 'text', name: 'text', maxlength: String(MAX_TEXT), autocomplete: 'off' }),
  });

  const expiryRadios = EXPIRY_CHOICES.map((c) => radio({ name: 'expiry', value: c.value, label: c.label, checked: c.value === DEFAULT_EXPIRY }));
  const expiry = fieldset({
    legend: 'How long brands may answer',
    hint: 'Then your wish closes and brands can send no more offers.',
    className: 'choice-row',
    children: expiryRadios.map((r) => r.root),
  });

  const where = locationFields(view);
  const more = moreFields();
  const disclose = discloseFields(view, recordsFailed);

  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Send my wish');
  const form = el('form', { class: 'form intent-form', novalidate: true, 'aria-labelledby': 'intent-new-heading' },
    category.root, text.root, expiry.root, where.root, more.root, disclose.root, error.node, actions(submit));

  // The fields a problem can be about, by the name the vault gives them.
  const byName = {
    category,
    text,
    expires_at: expiry,
    'location.geohash': where.geohash,
    'location.radius_m': where.radius,
    'window.from': more.from,
    'window.to': more.to,
    'price_max.amount': more.amount,
    'price_max.currency': more.currency,
    party_size: more.party,
    tags: more.tags,
    max_offers: more.maxOffers,
    disclose: disclose.group,
  };
  const all = Object.values(byName);
  for (const f of all) {
    const clear = () => f.clearError();
    f.root.addEventListener('input', clear);
    f.root.addEventListener('change', clear);
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    view.formNotice.replaceChildren();
    for (const f of all) f.clearError();

    const problems = [];
    const problem = (f, message) => {
      f.setError(message);
      problems.push(f);
    };
    const body = {};

    if (!categorySelect.value) problem(category, 'Choose what kind of thing you are looking for.');
    else body.category = categorySelect.value;

    const words = text.control.value.trim();
    if (!words) problem(text, 'Write what you are looking for.');
    else if ([...words].length > MAX_TEXT) problem(text, `Keep it under ${MAX_TEXT} characters.`);
    else if (/\p{Cc}/u.test(words)) problem(text, 'Write it on one line, without line breaks or tabs.');
    else body.text = words;

    const choice = EXPIRY_CHOICES.find((c) => expiryRadios.some((r) => r.input.checked && r.input.value === c.value));
    if (!choice) problem(expiry, 'Choose how long brands may answer.');
    else body.expires_at = rfc3339(choice.until(Date.now()));

    where.read(body, problem);
    more.read(body, problem);
    disclose.read(body, problem);

    if (problems.length) {
      announce('Please check the marked fields.', { assertive: true });
      focusProblem(problems[0]);
      return;
    }

    setBusy(submit, true, 'Sending…');
    try {
      const { data: intent } = await api('POST', '/api/v1/intents', { body });
      if (!view.container.isConnected) return;
      text.control.value = '';
      more.reset();
      disclose.reset();
      const count = Number(intent && intent.recipients_count) || 0;
      const what = categoryLabel(view, body.category);
      showNotice(view.formNotice, count
        ? `Your wish was sent to ${plural(count, 'brand')}. Their offers appear under “Your wishes” as they arrive.`
        : `Your wish is saved, but no brand heard it: no brand that accepted terms allowing wishes asked for “${what}”${body.location ? ' in that area' : ''}.`,
      count ? 'success' : 'info');
      await loadIntents(view);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      const at = err instanceof ApiError && err.code === 'invalid_intent' ? faultyField(err.serverMessage) : null;
      if (at && byName[at]) {
        const message = intentProblem(at, err.serverMessage);
        byName[at].setError(message);
        error.show(`Not sent: ${message}`);
        announce(`Not sent: ${message}`, { assertive: true });
        focusProblem(byName[at]);
      } else {
        const message = err instanceof ApiError && err.code === 'invalid_intent' && err.serverMessage
          ? `Not sent: ${asSentence(err.serverMessage)}`
          : `Not sent: ${errorText(err)}`;
        error.show(message);
        announce(message, { assertive: true });
      }
    } finally {
      setBusy(submit, false);
    }
  });

  view.formHost.replaceChildren(form);
  view.formHost.removeAttribute('aria-busy');
}

/** Show a field with a problem: open what hides it, and move there. */
function focusProblem(f) {
  const details = f.root.closest('details');
  if (details) details.open = true;
  const control = f.control || f.root.querySelector('input, select, textarea');
  if (control) control.focus();
  else focusElement(f.root);
}

/** Where (optional): "Use my location" or a typed geohash, and a distance around it. */
function locationFields(view) {
  const precisionSelect = el('select', { name: 'precision' },
    PRECISIONS.map((p) => el('option', { value: String(p.value), selected: p.value === DEFAULT_PRECISION }, p.label)));
  const precision = field({
    label: 'How precisely',
    hint: 'The larger the area, the less a brand learns about where you are.',
    control: precisionSelect,
  });
  const useLocation = el('button', { type: 'button', class: 'button', 'data-action': 'locate' }, 'Use my location');
  const clear = el('button', { type: 'button', class: 'button', 'data-action': 'clear-location' }, 'No location');
  const status = el('p', { class: 'hint locate-status', hidden: true });
  const geohash = field({
    label: 'Area code (geohash)',
    hint: `Filled in by “Use my location”, or type one: up to ${MAX_PRECISION} characters; the shorter, the larger the area. Empty: anywhere.`,
    control: el('input', {
      type: 'text', name: 'geohash', maxlength: '12', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', class: 'mono',
    }),
  });
  const radiusSelect = el('select', { name: 'radius_m' },
    RADII.map((r) => el('option', { value: String(r.value), selected: r.value === DEFAULT_RADIUS }, r.label)));
  const radius = field({
    label: 'And around it',
    hint: 'Brands within this distance of the area hear your wish too.',
    control: radiusSelect,
  });

  // The finest cell of the last position, never the position itself: the
  // coarser cells are its first characters.
  let finest = null;

  if (!('geolocation' in navigator) || !window.isSecureContext) {
    useLocation.disabled = true;
    status.textContent = 'This browser cannot tell your location on this page; type an area code instead.';
    status.hidden = false;
  }

  useLocation.addEventListener('click', () => {
    geohash.clearError();
    setBusy(useLocation, true, 'Finding you…');
    status.hidden = true;
    navigator.geolocation.getCurrentPosition((position) => {
      setBusy(useLocation, false);
      finest = encode(position.coords.latitude, position.coords.longitude, MAX_PRECISION);
      const length = Number(precisionSelect.value);
      geohash.control.value = finest.slice(0, length);
      status.textContent = `Done: your wish goes to brands around an area of ${CELL_SIZES[length]}. Your exact position stays in this browser.`;
      status.hidden = false;
      announce(status.textContent);
    }, (failure) => {
      setBusy(useLocation, false);
      status.textContent = locateProblem(failure);
      status.hidden = false;
      announce(status.textContent, { assertive: true });
    }, { enableHighAccuracy: false, timeout: 20000, maximumAge: 10 * 60 * 1000 });
  });

  // A different size: cut the last position's cell (or the typed code) to it.
  precisionSelect.addEventListener('change', () => {
    const length = Number(precisionSelect.value);
    const source = finest || geohash.control.value.trim().toLowerCase();
    if (source.length >= length) geohash.control.value = source.slice(0, length);
    if (finest) {
      status.textContent = `Your wish goes to brands around an area of ${CELL_SIZES[length]}.`;
      status.hidden = false;
    }
  });
  geohash.control.addEventListener('input', () => {
    finest = null;
    status.hidden = true;
  });
  clear.addEventListener('click', () => {
    finest = null;
    geohash.control.value = '';
    geohash.clearError();
    status.textContent = 'No location: brands anywhere may answer.';
    status.hidden = false;
    announce(status.textContent);
  });

  const group = fieldset({
    legend: 'Where (optional)',
    hint: 'Leave it empty to hear from brands anywhere. “Use my location” asks your browser where you are and turns it, on this device, into an area of the size you choose; only that area is sent.',
    className: 'location-choice',
    children: [precision.root, el('div', { class: 'actions locate-actions' }, useLocation, clear), status, geohash.root, radius.root],
  });

  return {
    root: group.root,
    geohash,
    radius,
    read(body, problem) {
      const code = geohash.control.value.trim().toLowerCase();
      if (!code) return;
      const bad = [...code].find((ch) => !GEOHASH_PATTERN.test(ch));
      if (bad) {
        problem(geohash, `The area code cannot contain “${bad}”: use digits and lowercase letters other than a, i, l and o.`);
        return;
      }
      if (code.length > MAX_PRECISION) {
        problem(geohash, `Use at most ${MAX_PRECISION} characters: areas smaller than about 150 m are not sent.`);
        return;
      }
      body.location = { geohash: code, radius_m: Number(radiusSelect.value) };
    },
  };
}

function locateProblem(failure) {
  switch (failure && failure.code) {
    case 1: // PERMISSION_DENIED
      return 'Your browser did not let this page know your location. Allow it in the browser’s settings, or type an area code.';
    case 3: // TIMEOUT
      return 'Finding your location took too long. Try again, or type an area code.';
    default:
      return 'Your location could not be found. Try again, or type an area code.';
  }
}

/** When, price, party size, keywords and offer limit, folded away. */
function moreFields() {
  const from = field({ label: 'From', control: el('input', { type: 'datetime-local', name: 'window_from' }) });
  const to = field({ label: 'To', control: el('input', { type: 'datetime-local', name: 'window_to' }) });
  const when = el('fieldset', { class: 'fieldset' },
    el('legend', {}, 'When you want it'),
    el('p', { class: 'hint' }, 'For example a table from 12:30 to 14:00. Leave both empty for any time.'),
    el('div', { class: 'pair-row' }, from.root, to.root));

  const amount = field({
    label: 'Amount',
    control: el('input', { type: 'text', name: 'price_amount', inputmode: 'decimal', autocomplete: 'off', placeholder: '15.00' }),
  });
  const currency = field({
    label: 'Currency',
    control: el('input', {
      type: 'text', name: 'price_currency', maxlength: '3', autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', placeholder: 'EUR',
    }),
  });
  const price = el('fieldset', { class: 'fieldset' },
    el('legend', {}, 'The most you want to pay'),
    el('p', { class: 'hint' }, 'A number such as 15 or 15.50, and a 3-letter currency code such as EUR, GBP or USD.'),
    el('div', { class: 'pair-row' }, amount.root, currency.root));

  const party = field({
    label: 'How many people',
    control: el('input', { type: 'number', name: 'party_size', inputmode: 'numeric', min: '1', max: String(MAX_PARTY), step: '1' }),
  });
  const tags = field({
    label: 'Keywords',
    hint: `Separated by commas, such as “vegan, terrace”. Up to ${MAX_TAGS}, of lowercase letters, digits and dashes.`,
    control: el('input', { type: 'text', name: 'tags', autocomplete: 'off', autocapitalize: 'none' }),
  });
  const maxOffers = field({
    label: 'The most offers you want',
    hint: `From 1 to ${MAX_OFFERS}; ${DEFAULT_MAX_OFFERS} if you leave it empty. Once that many arrived, brands can send no more.`,
    control: el('input', { type: 'number', name: 'max_offers', inputmode: 'numeric', min: '1', max: String(MAX_OFFERS), step: '1' }),
  });

  const root = el('details', { class: 'more-details' },
    el('summary', {}, 'More details (optional)'),
    when, price, party.root, tags.root, maxOffers.root);

  return {
    root,
    from,
    to,
    amount,
    currency,
    party,
    tags,
    maxOffers,
    read(body, problem) {
      const start = from.control.value;
      const end = to.control.value;
      if (start || end) {
        const a = localDateTime(start);
        const b = localDateTime(end);
        if (!start) problem(from, 'Give a start too, or leave both empty.');
        else if (!a) problem(from, 'Choose a date and a time.');
        if (!end) problem(to, 'Give an end too, or leave both empty.');
        else if (!b) problem(to, 'Choose a date and a time.');
        if (a && b) {
          if (a >= b) problem(from, 'The start must be before the end.');
          else body.window = { from: rfc3339(a), to: rfc3339(b) };
        }
      }

      const rawAmount = amount.control.value.trim().replace(',', '.');
      const rawCurrency = currency.control.value.trim().toUpperCase();
      if (rawAmount) {
        let ok = true;
        if (!/^(0|[1-9]\d{0,11})(\.\d{1,2})?$/.test(rawAmount)) {
          problem(amount, 'Write the price as a number, such as 15 or 15.50.');
          ok = false;
        }
        if (!/^[A-Z]{3}$/.test(rawCurrency)) {
          problem(currency, 'Write the currency as a 3-letter code, such as EUR.');
          ok = false;
        }
        if (ok) body.price_max = { amount: rawAmount, currency: rawCurrency };
      }
      // A currency alone says nothing: it stays for the next wish.

      wholeNumber(party, 1, MAX_PARTY, 'a number of people', (n) => { body.party_size = n; }, problem);
      wholeNumber(maxOffers, 1, MAX_OFFERS, 'a number', (n) => { body.max_offers = n; }, problem);

      const list = tags.control.value.split(',').map((t) => t.trim().toLowerCase().replace(/\s+/g, '-')).filter(Boolean);
      if (list.length > MAX_TAGS) {
        problem(tags, `Use at most ${MAX_TAGS} keywords.`);
      } else if (list.length) {
        const bad = list.find((t) => !/^[a-z0-9-]+$/.test(t) || t.length > MAX_TAG_CHARS);
        if (bad) problem(tags, `“${bad}” cannot be a keyword: use lowercase letters, digits and dashes, at most ${MAX_TAG_CHARS} characters.`);
        else body.tags = [...new Set(list)];
      }
    },
    reset() {
      for (const f of [from, to, amount, party, tags, maxOffers]) f.control.value = '';
    },
  };
}

function wholeNumber(f, min, max, what, keep, problem) {
  const raw = f.control.value.trim();
  // A number input holding something that is not a number reads as "".
  if (!raw && !(f.control.validity && f.control.validity.badInput)) return;
  const n = Number(raw);
  if (!raw || !Number.isInteger(n) || n < min || n > max) {
    problem(f, `Write ${what} from ${min} to ${max}, or leave it empty.`);
    return;
  }
  keep(n);
}

/** The Date of a datetime-local value (the person's own time zone), or null. */
function localDateTime(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value || '')) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function endOfToday(now) {
  const date = new Date(now);
  date.setHours(23, 59, 59, 0);
  return date;
}

/** Data sent with the wish: off unless ticked, with a warning that says to whom. */
function discloseFields(view, recordsFailed) {
  const checks = view.recordList.map((record) => {
    const check = checkbox({ label: fieldLabel(record.path, view) });
    check.input.value = record.path;
    check.input.name = 'disclose';
    return check;
  });
  let hint = null;
  if (recordsFailed) hint = 'Your data could not be loaded, so none can be sent with this wish.';
  else if (!checks.length) hint = 'Your vault holds no data yet, so none can be sent.';
  const group = fieldset({
    legend: 'Data to send with your wish',
    hint,
    className: 'disclose-choice',
    children: [
      el('div', { class: 'message message-warning disclose-warning' },
        el('p', {}, el('strong', {}, 'Whatever you tick goes, as it is, to every brand that hears this wish'),
          ' — before you accept any offer, and to brands whose offers you never take. Leave everything unticked to stay anonymous.')),
      el('div', { class: 'check-list' }, checks.map((c) => c.root)),
    ],
  });
  const root = el('details', { class: 'more-details disclose-details' },
    el('summary', {}, 'Send some of your data with it (optional)'),
    group.root);
  return {
    root,
    group,
    read(body, problem) {
      const chosen = checks.filter((c) => c.input.checked).map((c) => c.input.value);
      if (chosen.length > MAX_DISCLOSED) problem(group, `Tick at most ${MAX_DISCLOSED}.`);
      else if (chosen.length) body.disclose = chosen;
    },
    reset() {
      for (const c of checks) c.input.checked = false;
    },
  };
}

// The vault's problems name the field first ("location.geohash: …").
const FIELD_NAMES = [
  'location.geohash', 'location.radius_m', 'window.from', 'window.to', 'price_max.amount', 'price_max.currency',
  'category', 'text', 'expires_at', 'party_size', 'tags', 'max_offers', 'disclose',
];

function faultyField(message) {
  const text = String(message || '');
  return FIELD_NAMES.find((name) => text === name || text.startsWith(`${name}:`) || text.startsWith(`${name} `)) || null;
}

/** The vault's reason for refusing a field, in the person's words. */
function intentProblem(name, message) {
  const text = String(message || '');
  switch (name) {
    case 'category':
      return 'Choose what kind of thing you are looking for from the list.';
    case 'text':
      if (/empty/.test(text)) return 'Write what you are looking for.';
      if (/at most/.test(text)) return `Keep it under ${MAX_TEXT} characters.`;
      return 'Write it on one line, without line breaks or tabs.';
    case 'expires_at':
      if (/30 days/.test(text)) return 'A wish can stay open for at most 30 days.';
      return 'That time has already passed: choose how long brands may answer again.';
    case 'location.geohash': {
      const bad = /'(.)' is not a geohash character/.exec(text);
      if (bad) return `The area code cannot contain “${bad[1]}”: use digits and lowercase letters other than a, i, l and o.`;
      if (/too precise/.test(text)) return `Use at most ${MAX_PRECISION} characters: areas smaller than about 150 m are not sent.`;
      return 'This area code cannot be used. Type another, or choose “Use my location”.';
    }
    case 'location.radius_m':
      return 'Choose a distance from the list.';
    case 'window.from':
      if (/before/.test(text)) return 'The start must be before the end.';
      return 'Choose a date and a time.';
    case 'window.to':
      return 'Choose a date and a time.';
    case 'price_max.amount':
      return 'Write the price as a number, such as 15 or 15.50.';
    case 'price_max.currency':
      return 'Write the currency as a 3-letter code, such as EUR.';
    case 'party_size':
      return `Write a number of people from 1 to ${MAX_PARTY}.`;
    case 'tags':
      if (/at most/.test(text)) return `Use at most ${MAX_TAGS} keywords.`;
      return `Keywords may only hold lowercase letters, digits and dashes, at most ${MAX_TAG_CHARS} characters each.`;
    case 'max_offers':
      return `Write a number from 1 to ${MAX_OFFERS}.`;
    case 'disclose': {
      const gone = /you have no data at (\S+)/.exec(text);
      if (gone) return `${fieldLabel(gone[1])} is no longer in your vault, so it cannot be sent. Untick it, or reload the page.`;
      if (/at most/.test(text)) return `Tick at most ${MAX_DISCLOSED}.`;
      return asSentence(text);
    }
    default:
      return asSentence(text);
  }
}

// --- Your wishes ---------------------------------------------------------------------

function findIntentCard(view, id) {
  return [...view.listHost.querySelectorAll('li.intent')].find((li) => li.dataset.id === id) || null;
}

async function renderIntents(view) {
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

function offersCountText(intent) {
  const n = Number(intent.offers_count) || 0;
  const max = Number(intent.max_offers) || DEFAULT_MAX_OFFERS;
  return n ? `${plural(n, 'offer')} (at most ${max})` : `None yet (at most ${max})`;
}

function updateOfferCount(view, intent, card) {
  card.querySelector('.offers-count').textContent = offersCountText(intent);
  card.querySelector('.offers-button-count').textContent = `(${Number(intent.offers_count) || 0})`;
}

/** "Up to €15.00", or the amount and code as they are when the browser does not know the currency. */
function money(price) {
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
      fact('Heard by', recipients ? plural(recipients, 'brand') : 'No brand'),
      fact('Offers', el('span', { class: 'offers-count' }, offersCountText(intent))),
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
    recipients ? null : el('p', { class: 'hint' }, 'No brand that accepted terms allowing wishes asked for this kind of wish when you made it, so nobody heard it.'),
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
function noticeOnCard(view, intentId, text, kind = 'success') {
  const card = findIntentCard(view, intentId);
  const slot = card ? card.querySelector('.notice-slot') : view.listNotice;
  const box = showNotice(slot, text, kind);
  focusElement(box);
}

// --- Offers ---------------------------------------------------------------------------

async function showOffers(view, intent, card) {
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

function offerItem(view, intent, offer) {
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

