// @ts-check
// Sharing: the grants that let brands read (or change) the person's data —
// which data, why, until when, and what each brand actually read — with the
// controls to revoke one grant or everything of a brand, and a form to share
// data with a brand on the person's own initiative.

import { api, ApiError, Interrupted } from '../api.js';
import { el, srOnly, messageBox, focusElement, announce, setBusy, timeEl, formatDate, uid } from '../dom.js';
import { field, checkbox, radio, fieldset, formError, actions } from '../form.js';
import { asSentence, plural } from '../errors.js';
import { fetchAllRecords, sortRecords, normalizeRecord, recordTitle } from '../records.js';
import { errorText, showNotice, confirmInline, fact } from '../cards.js';
import {
  PURPOSES, GRANT_STATUS, GRANT_ORIGIN, GRANT_NOTICE, purposeLabel, actionsText, fieldLabel, isCategory, rfc3339,
  revokeAllForBrand, sharingBlocker, termsRefusal,
} from '../grants.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const MAX_USES = 1_000_000;
// The vault refuses grants that last longer than a year.
const MAX_DAYS = 365;

const EXPIRY_CHOICES = [
  { value: '1h', label: '1 hour', ms: HOUR_MS },
  { value: '24h', label: '24 hours', ms: DAY_MS },
  { value: '7d', label: '7 days', ms: 7 * DAY_MS },
  { value: '30d', label: '30 days', ms: 30 * DAY_MS },
];
const DEFAULT_EXPIRY = '7d';

const BLOCKER_WORDS = {
  suspended: 'suspended: resume it on the Brands page first',
  'has not accepted your terms': 'has not accepted your terms yet',
  'its agreement has ended': 'its agreement with you has ended',
  'has not accepted your current terms': 'has not accepted your current terms yet',
};

export function render(container, ctx) {
  const view = {
    container,
    ctx,
    focusBrand: ctx.query().get('brand'),
    brands: [],
    labels: new Map(), // category id -> label
    records: new Map(), // path -> record
    heading: el('h1', {}, 'Sharing'),
    activeHeading: el('h2', { id: 'grants-active-heading', tabindex: '-1' }, 'Shared now'),
    activeNotice: el('div', { class: 'notice-slot' }),
    activeHost: el('div', { class: 'cards-host grants-active', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading what you share…')),
    endedHeading: el('h2', { id: 'grants-ended-heading', tabindex: '-1' }, 'Ended'),
    endedHost: el('div', { class: 'cards-host grants-ended', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading…')),
    formHost: el('div', { class: 'share-form-host', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading your brands and data…')),
    formNotice: el('div', { class: 'notice-slot' }),
    form: null,
  };

  container.append(
    view.heading,
    el('p', { class: 'lead' }, 'Which brands may read (or change) which of your data, why, and until when. Each of these permissions is a grant: you can revoke it at any time, and the brand’s very next request is refused.'),

    el('section', { 'aria-labelledby': 'grants-active-heading' },
      view.activeHeading,
      view.activeNotice,
      view.activeHost,
    ),

    el('section', { 'aria-labelledby': 'share-heading' },
      el('h2', { id: 'share-heading' }, 'Share with a brand'),
      el('p', {}, 'Give a brand access to some of your data for one purpose, for a limited time. Brands can also ask you from their own site; you then answer on a page of your vault.'),
      view.formHost,
      view.formNotice,
    ),

    el('section', { 'aria-labelledby': 'grants-ended-heading' },
      view.endedHeading,
      el('p', {}, 'Grants that were revoked, ran out of time or were used up. They give no access any more; they stay listed so you can see what was shared.'),
      view.endedHost,
    ),
  );

  loadAll(view);
}

// --- Loading -------------------------------------------------------------------

async function loadAll(view) {
  // The names of data and brands make the grants readable, so fetch them
  // first; the list still shows (with bare paths) if they fail.
  const [brands, records, categories] = await Promise.all([
    optional(api('GET', '/api/v1/brands').then(({ data }) => (data && data.brands) || [])),
    optional(fetchAllRecords()),
    optional(api('GET', '/api/v1/categories').then(({ data }) => (data && data.categories) || [])),
  ]);
  if (!view.container.isConnected || [brands, records, categories].includes(INTERRUPTED)) return;
  view.brands = Array.isArray(brands) ? brands : [];
  view.categories = (Array.isArray(categories) ? categories : []).filter((c) => c && typeof c.id === 'string');
  view.labels = new Map(view.categories.map((c) => [c.id, c.label || c.id]));
  view.recordList = Array.isArray(records) ? sortRecords(records.map((r) => normalizeRecord(r))) : [];
  view.records = new Map(view.recordList.map((r) => [r.path, r]));
  for (const record of view.recordList) {
    if (record.category && record.category_label && !view.labels.has(record.category)) view.labels.set(record.category, record.category_label);
  }

  renderForm(view, { brandsFailed: brands instanceof Error, recordsFailed: records instanceof Error });
  const grants = await loadGrants(view);
  if (grants && view.focusBrand) focusBrandGroup(view, view.focusBrand);
}

const INTERRUPTED = Symbol('interrupted');

/** A request whose failure must not stop the screen: resolves to the error instead. */
function optional(promise) {
  return promise.catch((err) => (err instanceof Interrupted ? INTERRUPTED : (err instanceof Error ? err : new Error(String(err)))));
}

async function loadGrants(view) {
  for (const host of [view.activeHost, view.endedHost]) host.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', '/api/v1/grants');
    if (!view.container.isConnected) return null;
    const grants = (data && Array.isArray(data.grants)) ? data.grants : [];
    renderGrants(view, grants);
    return grants;
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return null;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadGrants(view));
    const message = `Could not load what you share. ${errorText(err)}`;
    view.activeHost.replaceChildren(messageBox(message, 'error'), actions(retry));
    view.endedHost.replaceChildren();
    announce(message, { assertive: true });
    return null;
  } finally {
    for (const host of [view.activeHost, view.endedHost]) host.removeAttribute('aria-busy');
  }
}

function brandNameOf(view, clientId, fallback = '') {
  const brand = view.brands.find((b) => b.client_id === clientId);
  return (brand && brand.client_name) || fallback || clientId || 'A brand';
}

// --- The lists -------------------------------------------------------------------

function renderGrants(view, grants) {
  // A suspended grant is still the person's to revoke, and comes back when the brand accepts.
  const live = (g) => g.status === 'active' || g.status === 'suspended';
  const active = grants.filter(live);
  const ended = grants.filter((g) => !live(g));

  if (!active.length) {
    view.activeHost.replaceChildren(el('p', { class: 'hint' }, 'You share nothing with any brand right now.'));
  } else {
    // One group per brand, in the order of each brand's newest grant.
    const groups = new Map();
    for (const grant of active) {
      if (!groups.has(grant.client_id)) groups.set(grant.client_id, []);
      groups.get(grant.client_id).push(grant);
    }
    view.activeHost.replaceChildren(...[...groups.entries()].map(([clientId, list]) => brandGroup(view, clientId, list)));
  }

  view.endedHost.replaceChildren(ended.length
    ? el('ul', { class: 'cards' }, ended.map((g) => grantItem(view, g, { withBrand: true })))
    : el('p', { class: 'hint' }, 'No grant has ended yet.'));
}

function brandGroup(view, clientId, grants) {
  const name = brandNameOf(view, clientId, grants[0] && grants[0].client_name);
  const headingId = uid('grant-brand');
  const revokeAll = el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'revoke-all' },
    'Revoke everything', srOnly(` shared with ${name}`));
  const head = el('div', { class: 'grant-group-head' },
    el('h3', { id: headingId, tabindex: '-1' }, name, ' ',
      el('span', { class: 'grant-count' }, `(${plural(grants.length, 'grant')})`)),
    el('div', { class: 'card-actions' }, revokeAll),
    el('div', { class: 'confirm-slot' }),
  );
  revokeAll.addEventListener('click', () => {
    view.activeNotice.replaceChildren();
    confirmInline(head, {
      question: `Revoke everything you share with ${name}?`,
      explanation: `All ${plural(grants.length, 'grant')} below end now, and its very next request for your data is refused. This cannot be undone; its registration and its agreement to your terms stay.`,
      yesLabel: 'Yes, revoke everything',
      onYes: async ({ yes, error }) => {
        setBusy(yes, true, 'Revoking…');
        try {
          const count = await revokeAllForBrand(clientId);
          if (!view.container.isConnected) return;
          await loadGrants(view);
          showNotice(view.activeNotice, `Revoked ${plural(count, 'grant')} of ${name}. It can no longer get any of your data.`);
          focusElement(view.activeHeading);
        } catch (err) {
          if (err instanceof Interrupted || !view.container.isConnected) return;
          setBusy(yes, false);
          error.show(`Nothing revoked: ${errorText(err)}`);
          announce(`Nothing revoked: ${errorText(err)}`, { assertive: true });
        }
      },
    });
  });
  return el('section', { class: 'grant-group', 'data-client-id': String(clientId), 'aria-labelledby': headingId },
    head,
    el('ul', { class: 'cards' }, grants.map((g) => grantItem(view, g, { withBrand: false }))),
  );
}

function focusBrandGroup(view, clientId) {
  const group = [...view.activeHost.querySelectorAll('.grant-group')].find((g) => g.dataset.clientId === clientId);
  if (group) {
    group.scrollIntoView({ block: 'start' });
    focusElement(group.querySelector('h3'));
    return;
  }
  const name = brandNameOf(view, clientId);
  showNotice(view.activeNotice, `You share nothing with ${name} right now.`, 'info');
}

/** Short names of a grant's fields, for its title. */
function shortFieldNames(view, fields) {
  return fields.map((f) => {
    if (isCategory(f)) return `all “${view.labels.get(f) || f}”`;
    return fieldLabel(f, view).replace(/ \([^)]*\)$/, '');
  }).join(', ');
}

/** A granted field with its kind of data, unless its name already says it. */
function fieldItem(view, field) {
  const label = fieldLabel(field, view);
  const record = isCategory(field) ? null : view.records.get(field);
  const kind = record && record.category_label;
  const title = label.replace(/ \([^)]*\)$/, '');
  return el('li', {}, label,
    kind && kind.toLowerCase() !== title.toLowerCase() ? [' ', el('span', { class: 'tag' }, kind)] : null);
}

function usesText(grant) {
  const uses = Number(grant.uses) || 0;
  if (grant.max_uses === null || grant.max_uses === undefined) return `${plural(uses, 'time')} (no limit)`;
  return `${uses} of ${plural(Number(grant.max_uses), 'time')}`;
}

/**
 * What the brand was last told about a grant, as a sentence with its date.
 * @param {string} name
 * @param {Array<{event: string, at: string}> | undefined} told
 */
function toldText(name, told) {
  const last = Array.isArray(told) && told.length ? told[told.length - 1] : null;
  if (!last) return `${name} was not sent news of this`;
  return [`${name} was told ${GRANT_NOTICE[last.event] || 'about this'} on `, timeEl(last.at)];
}

function grantItem(view, grant, { withBrand }) {
  const fields = Array.isArray(grant.fields) ? grant.fields : [];
  const name = brandNameOf(view, grant.client_id, grant.client_name);
  const active = grant.status === 'active' || grant.status === 'suspended';
  const writes = Array.isArray(grant.actions) && grant.actions.includes('write');
  const what = shortFieldNames(view, fields) || 'No data';
  const accessesId = uid('accesses');

  const history = el('button', {
    type: 'button', class: 'button small', 'aria-expanded': 'false', 'aria-controls': accessesId, 'data-action': 'accesses',
  }, writes ? 'What it read or changed' : 'What it read', srOnly(` with this grant (${what})`));
  const revoke = active
    ? el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'revoke' }, 'Revoke', srOnly(` ${name}’s access to ${what}`))
    : null;
  const accessesHost = el('div', { class: 'accesses', id: accessesId, hidden: true });

  const item = el('li', { class: `card grant status-${grant.status}`, 'data-id': String(grant.id) },
    el('p', { class: 'card-title' },
      el('strong', {}, withBrand ? `${name}: ${what}` : what), ' ',
      el('span', { class: `tag tag-${grant.status}` }, GRANT_STATUS[grant.status] || grant.status)),
    el('dl', { class: 'facts' },
      fact('Data', el('ul', { class: 'plain-list grant-fields' }, fields.map((f) => fieldItem(view, f)))),
      fact('It may', actionsText(grant.actions)),
      fact('Why', purposeLabel(grant.purpose, grant.purpose_label)),
      active ? fact('Until', timeEl(grant.expires_at)) : null,
      !active && grant.status === 'revoked' && grant.revoked_at ? fact('Revoked', timeEl(grant.revoked_at)) : null,
      !active && grant.status === 'expired' ? fact('Expired', timeEl(grant.expires_at)) : null,
      fact('Used', el('span', { class: 'grant-uses' }, usesText(grant))),
      fact('Last used', el('span', { class: 'grant-last-used' }, grant.last_used_at ? timeEl(grant.last_used_at) : 'Not yet')),
      fact('How it started', GRANT_ORIGIN[grant.origin] || grant.origin),
      fact('Created', grant.created_at ? timeEl(grant.created_at) : null),
      fact('Told', toldText(name, grant.brand_told)),
      grant.revocation && grant.revocation.reason
        ? fact('Ended by your new terms', [asSentence(grant.revocation.reason), ' ', el('span', { class: 'hint-inline' }, `(${grant.revocation.rule})`)])
        : null,
      fact('Your terms', grant.decision && grant.decision.reason
        ? [asSentence(grant.decision.reason), grant.decision.rule ? [' ', el('span', { class: 'hint-inline' }, `(${grant.decision.rule})`)] : null]
        : null),
    ),
    el('div', { class: 'card-actions' }, history, revoke),
    el('div', { class: 'confirm-slot' }),
    accessesHost,
  );

  history.addEventListener('click', () => {
    toggleAccesses(view, grant, history, accessesHost);
    refreshUses(item, grant);
  });
  if (revoke) {
    revoke.addEventListener('click', () => {
      view.activeNotice.replaceChildren();
      confirmInline(item, {
        question: `Revoke ${name}’s access to ${what}?`,
        explanation: 'Its very next request for this data is refused. This cannot be undone: to share again, create a new grant.',
        yesLabel: 'Yes, revoke',
        onYes: (controls) => revokeGrant(view, grant, name, what, controls),
      });
    });
  }
  return item;
}

async function revokeGrant(view, grant, name, what, { yes, error }) {
  setBusy(yes, true, 'Revoking…');
  try {
    await api('DELETE', `/api/v1/grants/${encodeURIComponent(grant.id)}`);
    if (!view.container.isConnected) return;
    await loadGrants(view);
    showNotice(view.activeNotice, `Revoked. ${name} can no longer get ${what}.`);
    focusElement(view.activeHeading);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    error.show(`Not revoked: ${errorText(err)}`);
    announce(`Not revoked: ${errorText(err)}`, { assertive: true });
  }
}

/**
 * The brand may have used the grant since the list was loaded: asked for
 * its history, the card's use count and last use are brought up to date
 * too, so "Used 0 times" never sits next to two reads.
 */
async function refreshUses(item, grant) {
  try {
    const { data } = await api('GET', `/api/v1/grants/${encodeURIComponent(grant.id)}`);
    if (!item.isConnected || !data) return;
    Object.assign(grant, { uses: data.uses, last_used_at: data.last_used_at, max_uses: data.max_uses });
    const uses = item.querySelector('.grant-uses');
    const last = item.querySelector('.grant-last-used');
    if (uses) uses.textContent = usesText(grant);
    if (last) last.replaceChildren(grant.last_used_at ? timeEl(grant.last_used_at) : 'Not yet');
  } catch (err) {
    if (err instanceof Interrupted) return;
    // The history itself says what happened; the count waits for the next load.
  }
}

const ACCESS_WORDS = { 'data.read': 'Read', 'data.written': 'Changed' };

async function toggleAccesses(view, grant, button, host) {
  if (button.getAttribute('aria-expanded') === 'true') {
    button.setAttribute('aria-expanded', 'false');
    host.hidden = true;
    return;
  }
  button.setAttribute('aria-expanded', 'true');
  host.hidden = false;
  host.setAttribute('aria-busy', 'true');
  host.replaceChildren(el('p', { class: 'loading' }, 'Loading…'));
  try {
    const { data } = await api('GET', `/api/v1/grants/${encodeURIComponent(grant.id)}/accesses`);
    if (!view.container.isConnected) return;
    const accesses = (data && Array.isArray(data.accesses)) ? data.accesses : [];
    const heading = el('p', { class: 'accesses-title', tabindex: '-1' }, el('strong', {},
      accesses.length ? `${plural(accesses.length, 'request')} with this grant, newest first:` : 'Nothing read with this grant yet.'));
    host.replaceChildren(heading, accesses.length
      ? el('ol', { class: 'accesses-list' }, accesses.map((a) => el('li', {},
        el('span', { class: 'access-when' }, timeEl(a.at)), ' ',
        el('span', { class: 'access-what' }, `${ACCESS_WORDS[a.action] || a.action}: `,
          (Array.isArray(a.fields) && a.fields.length) ? a.fields.map((f) => fieldLabel(f, view)).join(', ') : 'nothing it had access to'))))
      : null);
    announce(heading.textContent);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    host.replaceChildren(messageBox(`Could not load what it read. ${errorText(err)}`, 'error'));
    announce(`Could not load what it read. ${errorText(err)}`, { assertive: true });
  } finally {
    host.removeAttribute('aria-busy');
  }
}

// --- Share with a brand ------------------------------------------------------------

function renderForm(view, { brandsFailed, recordsFailed }) {
  const brandSelect = el('select', { name: 'client_id', required: true });
  const eligible = [];
  brandSelect.append(el('option', { value: '' }, 'Choose a brand'));
  for (const brand of view.brands) {
    const blocker = sharingBlocker(brand);
    const name = brand.client_name || brand.client_id;
    if (!blocker) eligible.push(brand);
    brandSelect.append(el('option', { value: brand.client_id, disabled: Boolean(blocker) },
      blocker ? `${name} — cannot be given data: ${BLOCKER_WORDS[blocker] || blocker}` : name));
  }
  if (view.focusBrand && eligible.some((b) => b.client_id === view.focusBrand)) brandSelect.value = view.focusBrand;
  else if (eligible.length === 1) brandSelect.value = eligible[0].client_id;

  let brandHint = 'Only brands that accepted your current terms can be given data; others are listed but cannot be chosen.';
  if (brandsFailed) brandHint = 'Your brands could not be loaded. Reload the page to try again.';
  else if (!view.brands.length) brandHint = 'No brand has registered yet. Invite one on the Brands page first.';
  else if (!eligible.length) brandHint = 'No brand can be given data yet: a brand must accept your current terms first. The Brands page shows where each one stands.';
  const brand = field({ label: 'Brand', hint: brandHint, control: brandSelect });

  // Which data: the person's records, or whole kinds of data.
  const recordChecks = view.recordList.map((record) => {
    // "Email address (contact.email)" needs no hint saying "Email address" again.
    const kind = record.category_label && record.category_label.toLowerCase() !== recordTitle(record).toLowerCase()
      ? `Kind of data: ${record.category_label}` : null;
    const check = checkbox({ label: fieldLabel(record.path, view), hint: kind });
    check.input.value = record.path;
    check.input.name = 'fields';
    return check;
  });
  const categoryChecks = view.categories.map((category) => {
    const check = checkbox({ label: category.label || category.id });
    check.input.value = category.id;
    check.input.name = 'fields';
    return check;
  });
  const dataHint = recordsFailed
    ? 'Your data could not be loaded; you can still share whole kinds of data below.'
    : (view.recordList.length
      ? 'Tick each piece of data the brand may get.'
      : 'Your vault has no data yet. Add some under My data, or share a whole kind of data below.');
  const kinds = categoryChecks.length
    ? el('details', { class: 'kinds' },
      el('summary', {}, 'Or share a whole kind of data'),
      el('p', { class: 'hint' }, 'Covers every piece of data of that kind, including what you add later.'),
      el('div', { class: 'check-list' }, categoryChecks.map((c) => c.root)))
    : null;
  const data = fieldset({
    legend: 'Which data',
    hint: dataHint,
    className: 'data-choice',
    children: [el('div', { class: 'check-list' }, recordChecks.map((c) => c.root)), kinds],
  });

  const readOnly = radio({ name: 'access', value: 'read', label: 'Read it', checked: true });
  const readWrite = radio({ name: 'access', value: 'write', label: 'Read and change it' });
  const access = fieldset({ legend: 'What the brand may do', children: [readOnly.root, readWrite.root], className: 'choice-row' });

  const purposeSelect = el('select', { name: 'purpose' },
    PURPOSES.map((p) => el('option', { value: p.id }, p.label)));
  const purposeWhy = el('p', { class: 'hint purpose-why', hidden: true });
  const purpose = field({
    label: 'Why (the purpose)',
    hint: 'The brand may use the data for this purpose only. Your terms decide which purposes are allowed: those they rule out for the data you ticked are marked “not allowed”.',
    control: purposeSelect,
  });
  purpose.root.append(purposeWhy);

  const expiryRadios = EXPIRY_CHOICES.map((c) => radio({ name: 'expiry', value: c.value, label: c.label, checked: c.value === DEFAULT_EXPIRY }));
  const dateRadio = radio({ name: 'expiry', value: 'date', label: 'Until a date' });
  const today = new Date();
  const dateInput = el('input', {
    type: 'date', name: 'expiry_date', min: localDate(today), max: localDate(new Date(today.getTime() + MAX_DAYS * DAY_MS)),
    'aria-label': 'Last day of the grant', hidden: true,
  });
  const expiry = fieldset({
    legend: 'For how long',
    hint: 'The grant ends by itself then. A date means until the end of that day.',
    className: 'choice-row',
    children: [...expiryRadios.map((r) => r.root), dateRadio.root, dateInput],
  });
  for (const r of [...expiryRadios, dateRadio]) {
    r.input.addEventListener('change', () => {
      dateInput.hidden = !dateRadio.input.checked;
      expiry.clearError();
      if (dateRadio.input.checked) dateInput.focus();
    });
  }
  dateInput.addEventListener('input', () => expiry.clearError());

  const maxUses = field({
    label: 'How many times it may use the grant (optional)',
    hint: `Each read or change counts once. Leave empty for no limit until the grant ends; at most ${MAX_USES.toLocaleString('en')}.`,
    control: el('input', { type: 'number', name: 'max_uses', inputmode: 'numeric', min: '1', max: String(MAX_USES), step: '1' }),
  });

  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Share');
  if (!eligible.length) submit.disabled = true;
  const form = el('form', { class: 'form share-form', novalidate: true, 'aria-labelledby': 'share-heading' },
    brand.root, data.root, access.root, purpose.root, expiry.root, maxUses.root, error.node, actions(submit));
  view.form = form;

  brandSelect.addEventListener('change', () => brand.clearError());
  maxUses.control.addEventListener('input', () => maxUses.clearError());
  for (const c of [...recordChecks, ...categoryChecks]) c.input.addEventListener('change', () => data.clearError());

  // Ask the terms, before the person tries, which purposes they allow for
  // this brand, this data and this access; mark the others with the reason.
  /** @type {Map<string, {allowed: boolean, reason: string}>} */
  let verdicts = new Map();
  let asked = 0;
  const showWhy = () => {
    const v = verdicts.get(purposeSelect.value);
    purposeWhy.hidden = !(v && !v.allowed);
    purposeWhy.textContent = v && !v.allowed ? `Not allowed: ${v.reason}` : '';
  };
  const markPurposes = async () => {
    const ticket = ++asked;
    const fields = [...recordChecks, ...categoryChecks].filter((c) => c.input.checked).map((c) => c.input.value);
    const clientId = brandSelect.value;
    let next = new Map();
    if (clientId && fields.length) {
      try {
        const { data: answer } = await api('POST', '/api/v1/sharing/check', {
          body: { client_id: clientId, fields, actions: readWrite.input.checked ? ['read', 'write'] : ['read'], purposes: PURPOSES.map((p) => p.id) },
        });
        for (const p of (answer && Array.isArray(answer.purposes)) ? answer.purposes : []) {
          next.set(String(p.purpose), { allowed: Boolean(p.allowed), reason: String(p.reason || '') });
        }
      } catch (err) {
        // Without the answer nothing is marked; the vault still checks on sharing.
        if (err instanceof Interrupted) return;
        next = new Map();
      }
    }
    if (ticket !== asked || !form.isConnected) return;
    verdicts = next;
    for (const option of purposeSelect.options) {
      const known = PURPOSES.find((p) => p.id === option.value);
      const v = verdicts.get(option.value);
      option.textContent = `${known ? known.label : option.value}${v && !v.allowed ? ' (not allowed)' : ''}`;
    }
    showWhy();
  };
  brandSelect.addEventListener('change', markPurposes);
  for (const c of [...recordChecks, ...categoryChecks, readOnly, readWrite]) c.input.addEventListener('change', markPurposes);
  purposeSelect.addEventListener('change', showWhy);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    view.formNotice.replaceChildren();
    for (const f of [brand, data, expiry, maxUses]) f.clearError();

    const problems = [];
    const body = {
      client_id: brandSelect.value,
      fields: [...recordChecks, ...categoryChecks].filter((c) => c.input.checked).map((c) => c.input.value),
      actions: readWrite.input.checked ? ['read', 'write'] : ['read'],
      purpose: purposeSelect.value,
    };
    if (!body.client_id) {
      brand.setError('Choose the brand to share with.');
      problems.push(brandSelect);
    }
    if (!body.fields.length) {
      data.setError('Tick at least one piece of data to share.');
      // With no records, the only boxes are the kinds of data, behind "Or share…".
      if (!recordChecks.length && kinds) kinds.open = true;
      problems.push((recordChecks[0] || categoryChecks[0] || {}).input || data.root);
    }
    const until = expiryTime(expiryRadios, dateRadio, dateInput);
    if (until.problem) {
      expiry.setError(until.problem);
      problems.push(dateInput.hidden ? expiryRadios[0].input : dateInput);
    } else {
      body.expires_at = rfc3339(until.date);
    }
    const rawUses = maxUses.control.value.trim();
    if (rawUses) {
      const n = Number(rawUses);
      if (!Number.isInteger(n) || n < 1 || n > MAX_USES) {
        maxUses.setError(`Write a whole number from 1 to ${MAX_USES.toLocaleString('en')}, or leave it empty.`);
        problems.push(maxUses.control);
      } else {
        body.max_uses = n;
      }
    }
    if (problems.length) {
      announce('Please check the marked fields.', { assertive: true });
      if (problems[0] === data.root) focusElement(data.root);
      else problems[0].focus();
      return;
    }

    const name = brandNameOf(view, body.client_id);
    setBusy(submit, true, 'Sharing…');
    try {
      const { data: grant } = await api('POST', '/api/v1/grants', { body });
      if (!view.container.isConnected) return;
      for (const c of [...recordChecks, ...categoryChecks]) c.input.checked = false;
      maxUses.control.value = '';
      const what = shortFieldNames(view, body.fields);
      showNotice(view.formNotice, `Shared with ${name}: ${what}, until ${formatDate((grant && grant.expires_at) || body.expires_at)}. It is listed under “Shared now”.`);
      await loadGrants(view);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      const message = refusalText(err, name);
      error.show(message);
      announce([].concat(message).join(' '), { assertive: true });
      if (err instanceof ApiError && err.status === 404) loadAll(view);
    } finally {
      setBusy(submit, false);
    }
  });

  view.formHost.replaceChildren(form);
  view.formHost.removeAttribute('aria-busy');
}

/** Why the vault did not create the grant, in the person's words. */
function refusalText(err, name) {
  if (!(err instanceof ApiError)) return `Not shared: ${errorText(err)}`;
  if (err.code === 'grant_not_permitted') {
    return termsRefusal(err, 'Share less, let the brand only read, choose another purpose, or change your terms under My terms.');
  }
  if (err.code === 'no_agreement') return `Not shared: ${name} has not accepted your current terms, so nothing can be shared with it.`;
  if (err.status === 404) return `Not shared: ${name} is no longer registered with your vault.`;
  if (err.code === 'invalid_grant' && err.serverMessage) return `Not shared: ${asSentence(err.serverMessage)}`;
  return `Not shared: ${errorText(err)}`;
}

/** { date } for the chosen expiry, or { problem }. */
function expiryTime(quick, dateRadio, dateInput) {
  const now = Date.now();
  const chosen = quick.find((r) => r.input.checked);
  if (chosen) {
    const choice = EXPIRY_CHOICES.find((c) => c.value === chosen.input.value);
    return { date: new Date(now + choice.ms) };
  }
  if (!dateRadio.input.checked) return { problem: 'Choose how long the brand may use the data.' };
  if (!/^\d{4}-\d{2}-\d{2}$/.test(dateInput.value)) return { problem: 'Choose the last day of the grant.' };
  // The end of that day, in the person's own time zone.
  const date = new Date(`${dateInput.value}T23:59:59`);
  if (Number.isNaN(date.getTime()) || date.getTime() <= now) return { problem: 'Choose a day from today on.' };
  if (date.getTime() > now + MAX_DAYS * DAY_MS) return { problem: 'Choose a day within a year from now.' };
  return { date };
}

function localDate(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}
