// @ts-check
// Activity: the vault's tamper-evident log, newest first, with a check that
// the chain of hashes is intact, and a filter over the entries loaded so far
// (by who acted, and by words), applied here in the page.

import { api, ApiError, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce, setBusy, timeEl } from '../dom.js';
import { actions } from '../form.js';

const PAGE_SIZE = 50;

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
  'token.issued': 'A brand got an access token',
  'token.revoked': 'A brand’s access token was revoked',
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
};

// The filter's choices: which actors each one shows.
const WHO = [
  { value: 'all', label: 'Everyone' },
  { value: 'owner', label: 'You' },
  { value: 'brand', label: 'Brands' },
  { value: 'system', label: 'The vault itself' },
];

const ACTOR_LABELS = { owner: 'You', system: 'The vault', brand: 'A brand' };

export function render(container) {
  const view = {
    container,
    heading: el('h1', {}, 'Activity'),
    verifyHost: el('div', { class: 'verify' }),
    list: el('ol', { class: 'entries' }),
    listHost: el('div', { class: 'entries-host', 'aria-busy': 'true' }),
    moreHost: el('div', { class: 'more' }),
    nextBefore: null,
    count: 0,
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
  const who = el('select', { id: 'activity-who', name: 'who' },
    WHO.map((w) => el('option', { value: w.value }, w.label)));
  const words = el('input', { type: 'search', id: 'activity-words', name: 'words', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'activity-words-hint' });
  view.filter = { who, words };
  const changed = () => applyFilter(view, { speak: true });
  who.addEventListener('change', changed);
  words.addEventListener('input', changed);
  // Nothing to send: the filter works on what is already on the page.
  return el('form', { class: 'activity-filter', role: 'search', 'aria-label': 'Filter the activity', onsubmit: (e) => e.preventDefault() },
    el('div', { class: 'field' }, el('label', { for: 'activity-who' }, 'Who did it'), who),
    el('div', { class: 'field' }, el('label', { for: 'activity-words' }, 'Containing the words'),
      el('p', { class: 'hint', id: 'activity-words-hint' }, 'For example “read”, “contact.email” or a brand’s name.'), words),
  );
}

/** Hide the entries the filter leaves out, and say how many are shown. */
function applyFilter(view, { speak = false } = {}) {
  if (!view.filter) return;
  const who = view.filter.who.value;
  const words = view.filter.words.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const item of view.list.children) {
    const match = (who === 'all' || item.dataset.actor === who)
      && words.every((w) => item.dataset.search.includes(w));
    item.hidden = !match;
    if (match) shown += 1;
  }
  const filtering = who !== 'all' || words.length > 0;
  let text = '';
  if (filtering) {
    text = shown
      ? `Showing ${shown} of the ${view.count} entries loaded.`
      : `None of the ${view.count} entries loaded matches.${view.nextBefore !== null && view.nextBefore !== undefined ? ' Load older entries to look further back.' : ''}`;
  }
  view.filterStatus.textContent = text;
  if (speak && text) announce(text);
}

// --- Entries ------------------------------------------------------------

async function loadPage(view, before) {
  const button = view.moreHost.querySelector('button');
  if (button) setBusy(button, true, 'Loading…');
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before !== null && before !== undefined) params.set('before', String(before));

  try {
    const { data } = await api('GET', `/api/v1/audit?${params}`);
    if (!view.container.isConnected) return;
    const entries = (data && Array.isArray(data.entries)) ? data.entries : [];
    view.nextBefore = data && data.next_before !== undefined ? data.next_before : null;

    const firstPage = before === null;
    if (firstPage) {
      view.listHost.replaceChildren(entries.length
        ? view.list
        : el('div', { class: 'empty' }, el('p', {}, 'Nothing has happened in your vault yet.')));
    }
    const items = entries.map(entryItem);
    view.list.append(...items);
    view.count += entries.length;
    applyFilter(view);
    renderMore(view);

    if (!firstPage) {
      // Put keyboard users on the first entry they have not seen yet.
      const text = entries.length ? `Loaded ${entries.length} older ${entries.length === 1 ? 'entry' : 'entries'}.` : 'No older entries.';
      announce(text);
      if (items.length) focusElement(items[0]);
      else focusElement(view.moreHost.querySelector('p, button') || view.heading);
    }
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
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
    view.listHost.removeAttribute('aria-busy');
  }
}

function renderMore(view) {
  if (view.nextBefore === null || view.nextBefore === undefined) {
    view.moreHost.replaceChildren(view.count
      ? el('p', { class: 'hint end-of-log' }, 'This is the beginning of your activity log.')
      : '');
    return;
  }
  const more = el('button', { type: 'button', class: 'button' }, 'Load older');
  more.addEventListener('click', () => loadPage(view, view.nextBefore));
  view.moreHost.replaceChildren(actions(more));
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

function entryItem(entry) {
  const action = actionLabel(entry);
  const actor = ACTOR_LABELS[entry.actor] || entry.actor || 'Unknown';

  const details = el('details', { class: 'entry-details' },
    el('summary', {}, 'Technical details'),
    el('dl', {},
      detailRow('Entry number', String(entry.seq)),
      detailRow('Action code', entry.action),
      entry.detail !== null && entry.detail !== undefined
        ? detailRow('Details', JSON.stringify(entry.detail)) : null,
      detailRow('Hash', entry.hash),
      detailRow('Previous hash', entry.prev_hash),
    ),
  );

  // What the filter's words are looked for in.
  const search = [action, actor, entry.action, entry.target, entry.detail ? JSON.stringify(entry.detail) : '']
    .join(' ').toLowerCase();
  return el('li', { class: 'entry', 'data-actor': String(entry.actor || ''), 'data-search': search },
    el('p', { class: 'entry-what' },
      el('strong', {}, action),
      entry.target ? [' ', el('code', {}, entry.target)] : null),
    el('p', { class: 'entry-meta' }, actor, ' · ', timeEl(entry.at)),
    details,
  );
}

function detailRow(term, value) {
  if (value === null || value === undefined || value === '') return null;
  return [el('dt', {}, term), el('dd', {}, el('code', {}, String(value)))];
}
