// @ts-check
// Settings → "Space on your server": how much of the disk the vault takes, what
// in it grows, and how long the activity log is kept (its retention). Plain
// words only: the person never sees tree names, byte counts or JSON.

import { api, ApiError, Interrupted } from './api.js';
import { el, announce, setBusy, messageBox, formatDate } from './dom.js';
import { field, formError, actions } from './form.js';

/** What each part of the store is, in the person's words. */
const PARTS = {
  records: { name: 'Your data', unit: ['item', 'items'] },
  audit: { name: 'Activity log', unit: ['entry', 'entries'] },
  tokens: { name: 'Brands’ current access passes', unit: ['pass', 'passes'] },
  outbox: { name: 'Messages waiting to reach brands', unit: ['message', 'messages'] },
  events: { name: 'News sent to brands', unit: ['message', 'messages'] },
  brands: { name: 'Brands, agreements and sharing', unit: ['item', 'items'] },
  intents: { name: 'Your wishes and offers', unit: ['item', 'items'] },
  other: { name: 'Your terms, your assistants and the vault’s own keys', unit: ['item', 'items'] },
};

const DAY_CHOICES = [30, 90, 365, 730, 1825, 3650];
const ENTRY_CHOICES = [10_000, 100_000, 500_000, 1_000_000, 5_000_000];
/** Disk one activity-log entry takes, measured (tests/bench/disk.rs): about 1.2 KB. */
const DISK_PER_ENTRY = 1200;

/** "820 bytes", "12.4 KB", "3.1 MB", "2.0 GB". */
function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes} bytes`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} KB`;
  if (bytes < 1_000_000_000) return `${(bytes / 1_000_000).toFixed(1)} MB`;
  return `${(bytes / 1_000_000_000).toFixed(1)} GB`;
}

function count(n, [one, many]) {
  return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
}

function daysText(days) {
  if (days % 365 === 0) return days === 365 ? '1 year' : `${days / 365} years`;
  return days === 1 ? '1 day' : `${days.toLocaleString('en')} days`;
}

export function diskUseSection() {
  const body = el('div', { 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Measuring the space your vault takes…'));
  load(body);
  return el('section', { 'aria-labelledby': 'disk-heading' },
    el('h2', { id: 'disk-heading' }, 'Space on your server'),
    body,
  );
}

/** Measures and shows; `notice` (what was just saved) stays on top of the new figures. */
async function load(body, notice = null) {
  let nodes;
  try {
    const { data } = await api('GET', '/api/v1/storage');
    nodes = report(data, (text) => load(body, text));
    if (notice) nodes.push(messageBox(notice, 'success'));
  } catch (err) {
    if (err instanceof Interrupted) return;
    nodes = [messageBox(`Could not measure the space your vault takes. ${err instanceof ApiError ? err.message : ''}`.trim(), 'warning')];
  }
  if (!body.isConnected) return;
  body.removeAttribute('aria-busy');
  body.replaceChildren(...nodes);
}

function report(data, reload) {
  const nodes = [];
  const free = data.disk_free_bytes;
  nodes.push(el('p', { class: 'status-line' }, el('strong', {},
    `Your vault takes ${formatBytes(data.data_dir_bytes)}`,
    typeof free === 'number' ? `; ${formatBytes(free)} of the disk is still free.` : '.')));
  if (typeof free === 'number' && free < data.disk_reserve_bytes * 4) {
    nodes.push(messageBox('The disk is almost full. Soon the vault will stop saving changes; make room on the server or keep a shorter activity log.', 'warning'));
  }

  const rows = data.parts
    .filter((part) => part.count > 0)
    .map((part) => {
      const known = PARTS[part.part] || { name: part.part, unit: ['item', 'items'] };
      return el('tr', {},
        el('th', { scope: 'row' }, known.name, el('span', { class: 'hint' }, ` ${count(part.count, known.unit)}`)),
        el('td', {}, formatBytes(part.bytes)));
    });
  nodes.push(el('table', { class: 'disk-use' },
    el('caption', {}, 'What is in it, largest first'),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Part'), el('th', { scope: 'col', class: 'size' }, 'Size'))),
    el('tbody', {}, ...rows)));
  nodes.push(el('p', { class: 'hint' },
    `Together these hold ${formatBytes(data.live_bytes)}. The vault’s files are larger (${formatBytes(data.store_bytes)}): room freed by changes and removals is reused for new data rather than given back to the disk, so the files stop growing once what is kept stops growing. `,
    `To keep the disk from filling up completely, the vault stops saving changes when less than ${formatBytes(data.disk_reserve_bytes)} would be left free.`));

  nodes.push(...retentionForm(data.audit, reload));
  return nodes;
}

function optionsFor(choices, current, label) {
  const values = choices.includes(current) ? choices : [...choices, current].sort((a, b) => a - b);
  return values.map((value) => el('option', { value: String(value), selected: value === current }, label(value)));
}

function retentionForm(audit, reload) {
  const { retention } = audit;
  const intro = [
    el('h3', { id: 'activity-log-heading' }, 'How long the activity log is kept'),
    el('p', {},
      `The activity log records every change and every time a brand reads your data. It holds ${count(audit.entries, ['entry', 'entries'])}`,
      audit.oldest ? ', the oldest from ' : '.',
      ...(audit.oldest ? [formatDate(audit.oldest), '.'] : [])),
  ];
  if (audit.pruned > 0 && audit.pruned_through) {
    intro.push(el('p', {},
      `${count(audit.pruned, ['older entry was', 'older entries were'])} removed on schedule, everything up to `,
      formatDate(audit.pruned_through),
      '. The vault keeps a signed note of what was removed, so checking the log still proves that nothing else is missing.'));
  }
  const days = el('select', { name: 'days' }, ...optionsFor(DAY_CHOICES, retention.days, daysText));
  const entries = el('select', { name: 'max_entries' }, ...optionsFor(ENTRY_CHOICES, retention.max_entries,
    (n) => `${n.toLocaleString('en')} entries (about ${formatBytes(n * DISK_PER_ENTRY)})`));
  days.value = String(retention.days);
  entries.value = String(retention.max_entries);
  const daysField = field({ label: 'Keep activity for', control: days });
  const entriesField = field({ label: 'And at most', control: entries, hint: 'When either limit is reached, the oldest activity is removed first.' });
  const error = formError();
  const status = el('div', { class: 'progress-slot' });
  const save = el('button', { type: 'submit', class: 'button' }, 'Save');
  const form = el('form', { class: 'form', novalidate: true, 'aria-labelledby': 'activity-log-heading' },
    daysField.root, entriesField.root, error.node, actions(save), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    setBusy(save, true, 'Saving…');
    try {
      await api('PUT', '/api/v1/audit/retention', {
        body: { days: Number(days.value), max_entries: Number(entries.value) },
      });
      if (!form.isConnected) return;
      const text = `Saved: activity is kept for ${daysText(Number(days.value))}, at most ${Number(entries.value).toLocaleString('en')} entries.`;
      status.replaceChildren(messageBox(text, 'success'));
      announce(text);
      // The vault removes what the new limits let go in the background: show the figures
      // again once it has, with the confirmation kept under them.
      setTimeout(() => { if (form.isConnected) reload(text); }, 1000);
    } catch (err) {
      if (err instanceof Interrupted || !form.isConnected) return;
      error.show(err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.');
    } finally {
      if (save.isConnected) setBusy(save, false);
    }
  });
  return [...intro, form];
}
