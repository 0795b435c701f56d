// @ts-check
// Activity: the vault's tamper-evident log, newest first and grouped by day,
// with a check that the chain of hashes is intact. Each entry reads as a
// sentence with the brand's name; the filter (what, which brand, words) is
// applied by the vault to the whole log, page by page.

import { api, ApiError, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce, setBusy, timeEl } from '../dom.js';
import { actions } from '../form.js';

// A phone screen's worth at a time; "Show more" brings the next.
const PAGE_SIZE = 20;

// Plain words for the action codes we know about. Unknown codes are shown
// as they are rather than guessed at. See actionLabel() for the ones whose
// wording depends on the entry's detail.
const ACTION_LABELS = {
  'vault.created': 'Created the vault',
  'vault.unsealed': 'Vault unlocked',
  'session.created': 'Logged in',
  'session.ended': 'Logged out',
  'passphrase.changed': 'Changed the passphrase',
  'passphrase.reset': 'Set a new passphrase with the recovery key',
  'unlock_key.created': 'Created an unlock key file',
  'unlock_key.removed': 'Removed the unlock key file',
  'record.put': 'Saved',
  'record.deleted': 'Deleted',
  'terms.published': 'Published new terms',
  'invitation.created': 'Created an invitation for a brand',
  'invitation.deleted': 'Deleted an invitation',
  'brand.registered': 'A brand registered',
  'brand.suspended': 'Suspended a brand',
  'brand.resumed': 'Resumed a brand',
  'brand.removed': 'Removed a brand',
  'agreement.accepted': 'A brand accepted your terms',
  'agreement.withdrawn': 'A brand withdrew from its agreement',
  'agreement.terminated': 'Terminated an agreement',
  'token.issued': 'A brand got a key to use your vault',
  'token.revoked': 'A brand’s key to your vault was taken back',
  'signing_key.created': 'Created the vault’s signing key',
  'signing_key.rotated': 'Replaced the vault’s signing key',
  'grant.created': 'Shared data with a brand',
  'grant.revoked': 'A grant to a brand was revoked',
  'grant.revoked_all': 'Revoked everything shared with a brand',
  'consent.denied': 'Denied a brand’s request for data',
  'data.read': 'A brand read your data',
  'data.written': 'A brand changed your data',
  'access.refused': 'A brand was refused data it asked for',
  'intent.created': 'Made a wish',
  'agent.intent_created': 'Your assistant made a wish',
  'agent.offer_proposed': 'Your assistant asked you to accept an offer',
  'agent.refused': 'Your assistant was refused',
  'agent.records_listed': 'Your assistant looked at which data it may see',
  'agent.record_read': 'Your assistant read your data',
  'agent.categories_listed': 'Your assistant looked at kinds of data',
  'agent.taxonomy_read': 'Your assistant looked at kinds of wishes',
  'agent.terms_read': 'Your assistant read your terms',
  'agent.intents_listed': 'Your assistant looked at your wishes',
  'agent.intent_withdrawn': 'Your assistant withdrew a wish',
  'agent.offers_listed': 'Your assistant looked at offers',
  'agent.offer_declined': 'Your assistant declined an offer',
  'agent.proposal_read': 'Your assistant checked your answer',
  'proposal.confirmed': 'Said yes to your assistant',
  'proposal.refused': 'Said no to your assistant',
  'intent.withdrawn': 'Withdrew a wish',
  'intent.expired': 'A wish expired',
  'offer.received': 'A brand sent an offer',
  'offer.accepted': 'Accepted an offer',
  'offer.declined': 'Declined an offer',
  'subscription.updated': 'A brand changed which wishes it hears',
  'webhook_secret.rotated': 'A brand replaced its webhook secret',
  'delivery.succeeded': 'News about a wish reached a brand’s webhook',
  'delivery.failed': 'News about a wish could not reach a brand’s webhook',
  'refresh_token.replayed': 'A brand’s used refresh token was sent again; its grant was stopped',
  'agreement.reaccepted': 'A brand accepted your terms again',
  'grants.redecided': 'After a brand accepted your new terms, what you share with it was checked again',
  'intents.delivered_late': 'A brand that accepted your new terms got the wishes it had missed',
  'terms.republished_unchanged': 'Published the same terms again',
  'recovery_key.regenerated': 'Made a new recovery key',
  'vault.exported': 'Exported all your data',
  'vault.backed_up': 'Made a backup',
  'vault.restored': 'Restored the vault from a backup',
  'vault.erasing': 'Started deleting everything',
  'intent.erased': 'Deleted a wish for good',
  'brand.erased': 'Removed a brand and deleted everything about it',
  'agent.approved': 'Connected an assistant to your vault',
  'agent.disconnected': 'Disconnected an assistant',
  'agent.token.revoked': 'An assistant gave up its keys to your vault',
  'agent.refresh_token.replayed': 'An assistant’s used key was sent again; all its keys were cancelled',
  'agent.code_replayed': 'An assistant’s one-time code was used twice; all its keys were cancelled',
};

// The filter's kinds, as the vault sorts its entries (GET /api/v1/audit?kind=).
const KINDS = [
  { value: 'all', label: 'Everything' },
  { value: 'reads', label: 'Brands reading your data' },
  { value: 'sharing', label: 'Sharing' },
  { value: 'wishes', label: 'Wishes and offers' },
  { value: 'brands', label: 'Brands and their agreements' },
  { value: 'data', label: 'Your data' },
  { value: 'terms', label: 'Your terms' },
  { value: 'security', label: 'Logins, locking and keys' },
  { value: 'vault', label: 'Backups, exports and the vault' },
];

const ACTOR_LABELS = { owner: 'You', system: 'The vault', brand: 'A brand', agent: 'Your assistant' };

export function render(container) {
  const view = {
    container,
    heading: el('h1', {}, 'Activity'),
    verifyHost: el('div', { class: 'verify' }),
    list: el('div', { class: 'days' }),
    listHost: el('div', { class: 'entries-host', 'aria-busy': 'true' }),
    moreHost: el('div', { class: 'more' }),
    nextBefore: null,
    count: 0,
    /** The day heading the last entry went under. */
    lastDay: '',
    /** @type {HTMLOListElement | null} */
    lastList: null,
    /** Bumped on each new filter, so an older answer arriving late is dropped. */
    generation: 0,
    filterStatus: el('p', { class: 'hint filter-status', role: 'status' }),
  };
  const filter = filterForm(view);
  view.listHost.append(el('p', { class: 'loading' }, 'Loading activity…'));

  container.append(
    view.heading,
    el('p', { class: 'lead' }, 'Everything that happens in your vault is written to a log. Each entry is chained to the one before it, so changes to the log can be detected.'),
    view.verifyHost,
    el('h2', {}, 'Recent activity'),
    filter,
    view.filterStatus,
    view.listHost,
    view.moreHost,
  );

  verify(view);
  loadBrands(view);
  loadPage(view, null);
}

// --- Integrity check ----------------------------------------------------

async function verify(view) {
  view.verifyHost.setAttribute('aria-busy', 'true');
  view.verifyHost.replaceChildren(el('p', { class: 'loading' }, 'Checking your activity log…'));
  let box;
  let spoken;
  try {
    const { data } = await api('GET', '/api/v1/audit/verify');
    if (!view.container.isConnected) return;
    const entries = Number(data && data.entries) || 0;
    const count = `${entries} ${entries === 1 ? 'entry' : 'entries'}`;
    if (data && data.ok === true) {
      spoken = `Your activity log is intact (${count}, verified).`;
      box = messageBox(spoken, 'success');
    } else {
      const reason = data && data.error ? ` The vault reported: ${data.error}` : '';
      spoken = `Warning: your activity log did not pass its check (${count} checked). Entries may have been changed or removed outside this app.${reason}`;
      box = el('div', { class: 'message message-error' },
        el('p', {}, el('strong', {}, 'Warning: your activity log did not pass its check.'),
          ` ${count} checked. Entries may have been changed or removed outside this app.`),
        reason ? el('p', {}, reason.trim()) : null,
        el('p', {}, 'Keep a copy of your data and of this page, and look into what changed on your server.'),
      );
    }
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    spoken = `Could not check your activity log. ${err instanceof ApiError ? err.message : ''}`.trim();
    box = messageBox(spoken, 'warning');
  } finally {
    view.verifyHost.removeAttribute('aria-busy');
  }

  const again = el('button', { type: 'button', class: 'button small' }, 'Check again');
  again.addEventListener('click', () => {
    verify(view).then(() => focusElement(view.verifyHost.querySelector('.message') || view.heading));
  });
  view.verifyHost.replaceChildren(box, actions(again));
  announce(spoken, { assertive: !box.classList.contains('message-success') });
}

// --- Filter ------------------------------------------------------------

function filterForm(view) {
  const kind = el('select', { id: 'activity-kind', name: 'kind' },
    KINDS.map((k) => el('option', { value: k.value }, k.label)));
  const brand = el('select', { id: 'activity-brand', name: 'brand' }, el('option', { value: '' }, 'Any brand'));
  const words = el('input', { type: 'search', id: 'activity-words', name: 'words', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'activity-words-hint' });
  view.filter = { kind, brand, words };
  let timer = 0;
  const changed = () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => reload(view), 250);
  };
  kind.addEventListener('change', () => reload(view));
  brand.addEventListener('change', () => reload(view));
  words.addEventListener('input', changed);
  // The vault filters the whole log, not only the entries on the page.
  return el('form', { class: 'activity-filter', role: 'search', 'aria-label': 'Filter the activity', onsubmit: (e) => { e.preventDefault(); reload(view); } },
    el('div', { class: 'field' }, el('label', { for: 'activity-kind' }, 'What'), kind),
    el('div', { class: 'field' }, el('label', { for: 'activity-brand' }, 'Brand'), brand),
    el('div', { class: 'field' }, el('label', { for: 'activity-words' }, 'Containing the words'),
      el('p', { class: 'hint', id: 'activity-words-hint' }, 'For example “read”, “email” or a brand’s name.'), words),
  );
}

/** The brands the filter can name; without them the filter still works by words. */
async function loadBrands(view) {
  try {
    const { data } = await api('GET', '/api/v1/brands');
    if (!view.container.isConnected) return;
    const brands = (data && Array.isArray(data.brands)) ? data.brands : [];
    view.filter.brand.append(...brands
      .map((b) => ({ id: String(b.client_id), name: String(b.client_name || b.client_id) }))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((b) => el('option', { value: b.id }, b.name)));
  } catch (err) {
    if (err instanceof Interrupted) return;
    view.filter.brand.disabled = true;
  }
}

function filterQuery(view) {
  const params = new URLSearchParams();
  if (!view.filter) return params;
  if (view.filter.kind.value !== 'all') params.set('kind', view.filter.kind.value);
  if (view.filter.brand.value) params.set('brand', view.filter.brand.value);
  const words = view.filter.words.value.trim();
  if (words) params.set('q', words);
  return params;
}

function filtering(view) {
  return [...filterQuery(view).keys()].length > 0;
}

/** Start the list again with the filter as it now is. */
function reload(view) {
  view.generation += 1;
  view.list.replaceChildren();
  view.count = 0;
  view.lastDay = '';
  view.lastList = null;
  view.nextBefore = null;
  view.moreHost.replaceChildren();
  view.listHost.setAttribute('aria-busy', 'true');
  loadPage(view, null, { speak: true });
}

// --- Entries ------------------------------------------------------------

async function loadPage(view, before, { speak = false } = {}) {
  const generation = view.generation;
  const button = view.moreHost.querySelector('button');
  if (button) setBusy(button, true, 'Loading…');
  const params = filterQuery(view);
  params.set('limit', String(PAGE_SIZE));
  if (before !== null && before !== undefined) params.set('before', String(before));

  try {
    const { data } = await api('GET', `/api/v1/audit?${params}`);
    if (!view.container.isConnected || generation !== view.generation) return;
    const entries = (data && Array.isArray(data.entries)) ? data.entries : [];
    view.nextBefore = data && data.next_before !== undefined ? data.next_before : null;

    const firstPage = before === null;
    if (firstPage) {
      let empty = 'Nothing has happened in your vault yet.';
      if (filtering(view)) empty = 'Nothing matches this filter.';
      if (filtering(view) && view.nextBefore !== null) empty = 'Nothing matches in the most recent activity.';
      view.listHost.replaceChildren(entries.length ? view.list : el('div', { class: 'empty' }, el('p', {}, empty)));
    }
    const items = entries.map((entry) => addEntry(view, entry));
    view.count += entries.length;
    renderMore(view);
    const text = filtering(view) ? `Showing ${view.count} ${view.count === 1 ? 'entry' : 'entries'} that match.` : '';
    view.filterStatus.textContent = text;
    if (speak && text) announce(text);

    if (!firstPage) {
      // Put keyboard users on the first entry they have not seen yet.
      const more = entries.length ? `Showing ${entries.length} more.` : 'Nothing more matches.';
      announce(more);
      if (items.length) focusElement(items[0]);
      else focusElement(view.moreHost.querySelector('p, button') || view.heading);
    }
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected || generation !== view.generation) return;
    const message = `Could not load activity. ${err instanceof ApiError ? err.message : ''}`.trim();
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadPage(view, before));
    if (before === null) {
      view.listHost.replaceChildren(messageBox(message, 'error'), actions(retry));
    } else {
      view.moreHost.replaceChildren(messageBox(message, 'error'), actions(retry));
    }
    announce(message, { assertive: true });
  } finally {
    if (generation === view.generation) view.listHost.removeAttribute('aria-busy');
  }
}

function renderMore(view) {
  if (view.nextBefore === null || view.nextBefore === undefined) {
    view.moreHost.replaceChildren(view.count && !filtering(view)
      ? el('p', { class: 'hint end-of-log' }, 'This is the beginning of your activity log.')
      : '');
    return;
  }
  const more = el('button', { type: 'button', class: 'button' }, filtering(view) ? 'Look further back' : 'Show more');
  more.addEventListener('click', () => loadPage(view, view.nextBefore));
  view.moreHost.replaceChildren(actions(more));
}

/** "Today", "Yesterday" or the date, in the person's own time zone. */
function dayLabel(at) {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return 'Unknown day';
  const day = (d) => d.toLocaleDateString(undefined, { year: 'numeric', month: '2-digit', day: '2-digit' });
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (day(date) === day(today)) return 'Today';
  if (day(date) === day(yesterday)) return 'Yesterday';
  return date.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

/** Put an entry under its day's heading, starting a new day when it changes. */
function addEntry(view, entry) {
  const day = dayLabel(entry.at);
  if (day !== view.lastDay || !view.lastList) {
    view.lastDay = day;
    view.lastList = el('ol', { class: 'entries' });
    view.list.append(el('section', { class: 'day' }, el('h3', { class: 'day-title' }, day), view.lastList));
  }
  const item = entryItem(entry);
  view.lastList.append(item);
  return item;
}

/** What happened, in words. */
function actionLabel(entry) {
  const detail = entry.detail && typeof entry.detail === 'object' ? entry.detail : {};
  // A save either added a field or changed one; the log says which.
  if (entry.action === 'record.put' && typeof detail.created === 'boolean') {
    return detail.created ? 'Added' : 'Changed';
  }
  if (entry.action === 'session.created' && detail.method === 'recovery_key') {
    return 'Logged in with the recovery key';
  }
  return ACTION_LABELS[entry.action] || entry.action || 'Unknown action';
}

/** The time of day only: the day is the heading above. */
function timeOfDay(at) {
  const date = new Date(at);
  const text = Number.isNaN(date.getTime()) ? String(at) : date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return el('time', { datetime: String(at) }, text);
}

function entryItem(entry) {
  const action = actionLabel(entry);
  const actor = entry.actor === 'brand' && entry.brand_name ? entry.brand_name : (ACTOR_LABELS[entry.actor] || entry.actor || 'Unknown');
  const summary = typeof entry.summary === 'string' && entry.summary ? entry.summary : null;

  const details = el('details', { class: 'entry-details' },
    el('summary', {}, 'Technical details'),
    el('dl', {},
      detailRow('Entry number', String(entry.seq)),
      detailRow('Action code', entry.action),
      detailRow('About', entry.target),
      entry.detail !== null && entry.detail !== undefined
        ? detailRow('Details', JSON.stringify(entry.detail)) : null,
      detailRow('Hash', entry.hash),
      detailRow('Previous hash', entry.prev_hash),
    ),
  );

  return el('li', { class: `entry kind-${String(entry.kind || 'vault')}`, 'data-actor': String(entry.actor || ''), 'data-seq': String(entry.seq) },
    el('p', { class: 'entry-what' }, summary || action),
    el('p', { class: 'entry-meta' }, timeOfDay(entry.at), ' · ', actor, summary ? [' · ', el('span', { class: 'entry-label' }, action)] : null),
    details,
  );
}

function detailRow(term, value) {
  if (value === null || value === undefined || value === '') return null;
  return [el('dt', {}, term), el('dd', {}, el('code', {}, String(value)))];
}
