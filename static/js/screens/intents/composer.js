// @ts-check
// Wishes: the form that makes one. It checks a wish against the vault's own
// limits (from GET /api/v1/intent-categories) before sending it, so that the
// person hears about a problem next to the field, in words; a position from
// "Use my location" becomes a geohash here, and only that cell is sent.

import { api, ApiError, Interrupted } from '../../api.js';
import { el, focusElement, announce, setBusy } from '../../dom.js';
import { field, checkbox, radio, fieldset, formError, actions } from '../../form.js';
import { asSentence, plural } from '../../errors.js';
import { errorText, showNotice } from '../../cards.js';
import { fieldLabel, rfc3339 } from '../../grants.js';
import { encode, GEOHASH_PATTERN } from '../../geohash.js';
import { categoryLabel, loadIntents } from '../intents.js';
import { audienceChoice, showPreview, sentText } from './relay.js';

/** @typedef {import('../intents.js').IntentLimits} IntentLimits */

const HOUR_MS = 60 * 60 * 1000;

const EXPIRY_CHOICES = [
  { value: '1h', label: '1 hour', until: (now) => new Date(now + HOUR_MS) },
  { value: '3h', label: '3 hours', until: (now) => new Date(now + 3 * HOUR_MS) },
  { value: 'today', label: 'Until the end of today', until: endOfToday },
  { value: '1w', label: '1 week', until: (now) => new Date(now + 7 * 24 * HOUR_MS) },
];

const DEFAULT_EXPIRY = '3h';

// The currencies a wish's price can be in, most used first.
const CURRENCIES = [
  { code: 'EUR', name: 'Euro' },
  { code: 'GBP', name: 'Pound sterling' },
  { code: 'USD', name: 'US dollar' },
  { code: 'CHF', name: 'Swiss franc' },
  { code: 'CAD', name: 'Canadian dollar' },
  { code: 'AUD', name: 'Australian dollar' },
  { code: 'JPY', name: 'Japanese yen' },
  { code: 'SEK', name: 'Swedish krona' },
  { code: 'NOK', name: 'Norwegian krone' },
  { code: 'DKK', name: 'Danish krone' },
  { code: 'PLN', name: 'Polish złoty' },
  { code: 'CZK', name: 'Czech koruna' },
  { code: 'NZD', name: 'New Zealand dollar' },
  { code: 'INR', name: 'Indian rupee' },
  { code: 'BRL', name: 'Brazilian real' },
];

/** The browser's region's currency when it is in the list, else the euro. */
function defaultCurrency() {
  const region = (navigator.language || '').split('-')[1] || '';
  const byRegion = { GB: 'GBP', US: 'USD', CH: 'CHF', CA: 'CAD', AU: 'AUD', JP: 'JPY', SE: 'SEK', NO: 'NOK', DK: 'DKK', PL: 'PLN', CZ: 'CZK', NZ: 'NZD', IN: 'INR', BR: 'BRL' };
  return byRegion[region.toUpperCase()] || 'EUR';
}

// Area code length -> the size of its cell, in words.
export const CELL_SIZES = {
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

export function renderForm(view, { recordsFailed }) {
  const limits = view.limits;
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
    hint: `In your own words, for example “lunch nearby for two, vegetarian”. Every brand that hears your wish reads this. At most ${limits.max_text_chars} characters.`,
    control: el('input', { type: 'text', name: 'text', maxlength: String(limits.max_text_chars), autocomplete: 'off' }),
  });

  const expiryRadios = EXPIRY_CHOICES.map((c) => radio({ name: 'expiry', value: c.value, label: c.label, checked: c.value === DEFAULT_EXPIRY }));
  const expiry = fieldset({
    legend: 'How long brands may answer',
    hint: 'Then your wish closes and brands can send no more offers.',
    className: 'choice-row',
    children: expiryRadios.map((r) => r.root),
  });

  const where = locationFields(view);
  const more = moreFields(limits);
  const disclose = discloseFields(view, recordsFailed);
  // Who hears it: only when the vault has a relay. A wish for the relay carries none of the
  // person's data (the vault refuses it), so the data choice goes away while it is chosen.
  const audience = view.relays.length
    ? audienceChoice(view.relays, (relay) => { disclose.root.hidden = relay; })
    : null;

  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Send my wish');
  const form = el('form', { class: 'form intent-form', novalidate: true, 'aria-labelledby': 'intent-new-heading' },
    category.root, text.root, expiry.root, where.root, more.root, audience ? audience.root : null, disclose.root, error.node, actions(submit));
  // Where "what the relay will see" is shown, in place of the form, before a wish goes there.
  const previewHost = el('div', { class: 'relay-preview-host' });

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

  /** Back from the relay's preview to the form, as the person left it. */
  const showForm = () => {
    previewHost.replaceChildren();
    form.hidden = false;
  };

  /** The vault refused the wish (or its preview): say why, next to the field when it names one. */
  const refused = (err) => {
    showForm();
    const at = err instanceof ApiError && err.code === 'invalid_intent' ? err.at : null;
    if (at && byName[at]) {
      const message = intentProblem(at, err.serverMessage, limits);
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
      focusElement(error.node);
    }
  };

  const send = async (body, button) => {
    setBusy(button, true, 'Sending…');
    try {
      const { data: intent } = await api('POST', '/api/v1/intents', { body });
      if (!view.container.isConnected) return;
      text.control.value = '';
      more.reset();
      disclose.reset();
      showForm();
      const count = Number(intent && intent.recipients_count) || 0;
      const what = categoryLabel(view, body.category);
      let notice;
      if (body.relay) notice = sentText(view, intent, count);
      else if (count) notice = `Your wish was sent to ${plural(count, 'brand')}. Their offers appear under “Your wishes” as they arrive.`;
      else notice = `Your wish is saved, but no brand heard it: no brand that accepted terms allowing wishes asked for “${what}”${body.location ? ' in that area' : ''}.`;
      const box = showNotice(view.formNotice, notice, count || body.relay ? 'success' : 'info');
      if (body.relay) focusElement(box);
      await loadIntents(view);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      refused(err);
    } finally {
      setBusy(button, false);
    }
  };

  /** Ask the vault what the relay would get, and show it in words before anything goes. */
  const preview = async (body) => {
    setBusy(submit, true, 'Checking…');
    try {
      const { data } = await api('POST', '/api/v1/intents/relay-preview', { body });
      if (!view.container.isConnected) return;
      form.hidden = true;
      showPreview(view, {
        host: previewHost,
        body,
        preview: data || {},
        fromMyLocation: where.usedMyLocation(),
        onSend: (button) => send(body, button),
        onBack: () => {
          showForm();
          announce('Back to your wish: change it, then send it again.');
          submit.focus();
        },
      });
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      refused(err);
    } finally {
      setBusy(submit, false);
    }
  };

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
    else if ([...words].length > limits.max_text_chars) problem(text, `Keep it under ${limits.max_text_chars} characters.`);
    else if (/\p{Cc}/u.test(words)) problem(text, 'Write it on one line, without line breaks or tabs.');
    else body.text = words;

    const choice = EXPIRY_CHOICES.find((c) => expiryRadios.some((r) => r.input.checked && r.input.value === c.value));
    if (!choice) problem(expiry, 'Choose how long brands may answer.');
    else body.expires_at = rfc3339(choice.until(Date.now()));

    where.read(body, problem);
    more.read(body, problem);
    const relay = Boolean(audience && audience.wantsRelay());
    if (relay) body.relay = true;
    else disclose.read(body, problem);

    if (problems.length) {
      announce('Please check the marked fields.', { assertive: true });
      focusProblem(problems[0]);
      return;
    }
    if (relay) await preview(body);
    else await send(body, submit);
  });

  view.formHost.replaceChildren(form, previewHost);
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
    label: 'Area',
    hint: `“Use my location” fills this in: a short code that stands for the area around you, worked out on this device. Only this code is sent, never where you are exactly. A shorter code means a larger area (up to ${view.limits.max_geohash_chars} letters and digits). Leave it empty for anywhere.`,
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
    status.textContent = 'This browser cannot tell your location on this page. Leave the area empty to hear from brands anywhere, or paste an area you were given.';
    status.hidden = false;
  }

  useLocation.addEventListener('click', () => {
    geohash.clearError();
    setBusy(useLocation, true, 'Finding you…');
    status.hidden = true;
    navigator.geolocation.getCurrentPosition((position) => {
      setBusy(useLocation, false);
      finest = encode(position.coords.latitude, position.coords.longitude, view.limits.max_geohash_chars);
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
    /** Whether the area is the person's own position, cut to the chosen size. */
    usedMyLocation: () => finest !== null && geohash.control.value.trim().length > 0,
    read(body, problem) {
      const code = geohash.control.value.trim().toLowerCase();
      if (!code) return;
      const bad = [...code].find((ch) => !GEOHASH_PATTERN.test(ch));
      if (bad) {
        problem(geohash, `The area cannot contain “${bad}”: it is made of digits and lowercase letters other than a, i, l and o. “Use my location” fills it in for you.`);
        return;
      }
      if (code.length > view.limits.max_geohash_chars) {
        problem(geohash, `Use at most ${view.limits.max_geohash_chars} characters: areas smaller than about 150 m are not sent.`);
        return;
      }
      body.location = { geohash: code, radius_m: Number(radiusSelect.value) };
    },
  };
}

function locateProblem(failure) {
  switch (failure && failure.code) {
    case 1: // PERMISSION_DENIED
      return 'Your browser did not let this page know your location. Allow it in the browser’s settings, or leave the area empty to hear from brands anywhere.';
    case 3: // TIMEOUT
      return 'Finding your location took too long. Try again, or leave the area empty to hear from brands anywhere.';
    default:
      return 'Your location could not be found. Try again, or leave the area empty to hear from brands anywhere.';
  }
}

/**
 * When, price, party size, keywords and offer limit, folded away.
 * @param {IntentLimits} limits the vault's
 */
function moreFields(limits) {
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
  // A list, not a text box: a greyed-out "EUR" looked like a value, and an
  // empty box was then refused. The first choice is a real value.
  const currency = field({
    label: 'Currency',
    control: el('select', { name: 'price_currency' },
      CURRENCIES.map((c) => el('option', { value: c.code, selected: c.code === defaultCurrency() }, `${c.name} (${c.code})`))),
  });
  const price = el('fieldset', { class: 'fieldset' },
    el('legend', {}, 'The most you want to pay'),
    el('p', { class: 'hint' }, 'A number such as 15 or 15.50, in the currency you choose.'),
    el('div', { class: 'pair-row' }, amount.root, currency.root));

  const party = field({
    label: 'How many people',
    control: el('input', { type: 'number', name: 'party_size', inputmode: 'numeric', min: '1', max: String(limits.max_party_size), step: '1' }),
  });
  const tags = field({
    label: 'Keywords',
    hint: `Separated by commas, such as “vegan, terrace”. Up to ${limits.max_tags}, of lowercase letters, digits and dashes.`,
    control: el('input', { type: 'text', name: 'tags', autocomplete: 'off', autocapitalize: 'none' }),
  });
  const maxOffers = field({
    label: 'The most offers you want',
    hint: `From 1 to ${limits.max_offers}; ${limits.default_max_offers} if you leave it empty. Once that many arrived, brands can send no more.`,
    control: el('input', { type: 'number', name: 'max_offers', inputmode: 'numeric', min: '1', max: String(limits.max_offers), step: '1' }),
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
          problem(currency, 'Choose the currency.');
          ok = false;
        }
        if (ok) body.price_max = { amount: rawAmount, currency: rawCurrency };
      }
      // A currency alone says nothing: it stays for the next wish.

      wholeNumber(party, 1, limits.max_party_size, 'a number of people', (n) => { body.party_size = n; }, problem);
      wholeNumber(maxOffers, 1, limits.max_offers, 'a number', (n) => { body.max_offers = n; }, problem);

      const list = tags.control.value.split(',').map((t) => t.trim().toLowerCase().replace(/\s+/g, '-')).filter(Boolean);
      if (list.length > limits.max_tags) {
        problem(tags, `Use at most ${limits.max_tags} keywords.`);
      } else if (list.length) {
        const bad = list.find((t) => !/^[a-z0-9-]+$/.test(t) || t.length > limits.max_tag_chars);
        if (bad) problem(tags, `“${bad}” cannot be a keyword: use lowercase letters, digits and dashes, at most ${limits.max_tag_chars} characters.`);
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
      if (chosen.length > view.limits.max_disclosed) problem(group, `Tick at most ${view.limits.max_disclosed}.`);
      else if (chosen.length) body.disclose = chosen;
    },
    reset() {
      for (const c of checks) c.input.checked = false;
    },
  };
}

/**
 * The vault's reason for refusing a field, in the person's words.
 * @param {string} name the field the vault named
 * @param {string} message what the vault said
 * @param {IntentLimits} limits the vault's
 * @returns {string}
 */
function intentProblem(name, message, limits) {
  const text = String(message || '');
  switch (name) {
    case 'category':
      return 'Choose what kind of thing you are looking for from the list.';
    case 'text':
      if (/empty/.test(text)) return 'Write what you are looking for.';
      if (/at most/.test(text)) return `Keep it under ${limits.max_text_chars} characters.`;
      return 'Write it on one line, without line breaks or tabs.';
    case 'expires_at':
      if (/30 days/.test(text)) return 'A wish can stay open for at most 30 days.';
      return 'That time has already passed: choose how long brands may answer again.';
    case 'location.geohash': {
      const bad = /'(.)' is not a geohash character/.exec(text);
      if (bad) return `The area code cannot contain “${bad[1]}”: use digits and lowercase letters other than a, i, l and o.`;
      if (/too precise/.test(text)) return `Use at most ${limits.max_geohash_chars} characters: areas smaller than about 150 m are not sent.`;
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
      return `Write a number of people from 1 to ${limits.max_party_size}.`;
    case 'tags':
      if (/at most/.test(text)) return `Use at most ${limits.max_tags} keywords.`;
      return `Keywords may only hold lowercase letters, digits and dashes, at most ${limits.max_tag_chars} characters each.`;
    case 'max_offers':
      return `Write a number from 1 to ${limits.max_offers}.`;
    case 'disclose': {
      const gone = /you have no data at (\S+)/.exec(text);
      if (gone) return `${fieldLabel(gone[1])} is no longer in your vault, so it cannot be sent. Untick it, or reload the page.`;
      if (/at most/.test(text)) return `Tick at most ${limits.max_disclosed}.`;
      return asSentence(text);
    }
    default:
      return asSentence(text);
  }
}
