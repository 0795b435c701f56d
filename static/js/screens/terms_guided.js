// @ts-check
// Making new terms by choosing, for the person who never reads JSON: pick a
// starting point (a shipped template, described in plain words), then tick
// what brands may see, for what, how long they may keep it, extra limits and
// extra refusals. Every choice offered comes from the server
// (GET /api/v1/terms/templates/{id}/choices), which also builds the document
// and checks it (POST .../build) before anything is published with
// PUT /api/v1/terms. Publishing a template as it is takes two taps.

import { api, ApiError, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce, setBusy, uid } from '../dom.js';
import { field, checkbox, radio, fieldset, actions } from '../form.js';
import { plainSummary, versionCode } from '../terms.js';

/**
 * @typedef {object} GuidedHooks
 * @property {() => any} current        the terms in force (GET /api/v1/terms), or null
 * @property {(data: any, status: number) => void} published  a version was published
 */

/**
 * Draw the guided editor into `host`.
 * @param {HTMLElement} host
 * @param {GuidedHooks} hooks
 */
export function renderGuided(host, hooks) {
  const view = {
    host,
    hooks,
    templates: [],
    choicesHost: el('div', { class: 'guided-choices' }),
    listHost: el('div', { class: 'guided-templates', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading the starting points…')),
    outcome: el('div', { class: 'guided-outcome' }),
  };
  host.replaceChildren(
    el('p', {}, 'Start from one of these. Each is a standard agreement that already refuses tracking, profiling and selling your data. You can publish it as it is, or narrow it: brands may then do less, never more.'),
    view.listHost,
    view.choicesHost,
    view.outcome,
  );
  loadTemplates(view);
}

async function loadTemplates(view) {
  try {
    const { data } = await api('GET', '/api/v1/terms/templates');
    if (!view.host.isConnected) return;
    view.templates = ((data && data.templates) || []).filter((t) => t && typeof t.id === 'string' && t.terms);
    view.listHost.replaceChildren(el('ul', { class: 'cards guided-list' }, view.templates.map((t) => templateCard(view, t))));
  } catch (err) {
    if (err instanceof Interrupted || !view.host.isConnected) return;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadTemplates(view));
    view.listHost.replaceChildren(messageBox(`Could not load the starting points. ${errorText(err)}`, 'error'), actions(retry));
  } finally {
    view.listHost.removeAttribute('aria-busy');
  }
}

function templateCard(view, template) {
  const headingId = uid('template');
  const asIs = el('button', { type: 'button', class: 'button primary' }, 'Publish as it is…');
  const choose = el('button', { type: 'button', class: 'button' }, 'Choose what brands may do');
  const confirmSlot = el('div', { class: 'confirm-slot' });
  const row = actions(asIs, choose);
  const card = el('li', { class: 'card guided-template', 'data-template': template.id, 'aria-labelledby': headingId },
    el('h3', { class: 'card-title', id: headingId }, template.title || 'Terms'),
    el('p', {}, template.description || ''),
    row,
    confirmSlot,
  );
  asIs.addEventListener('click', () => askPublish(view, {
    terms: template.terms,
    row,
    slot: confirmSlot,
    back: asIs,
    loadSummary: () => preview(template.terms),
  }));
  choose.addEventListener('click', () => openChoices(view, template, choose));
  return card;
}

/** The server's check and plain summary of a document, publishing nothing. */
async function preview(terms) {
  const { data } = await api('POST', '/api/v1/terms/preview', { body: { terms } });
  return data;
}

// --- Choosing ---------------------------------------------------------------

async function openChoices(view, template, opener) {
  setBusy(opener, true, 'Loading…');
  let options;
  try {
    const { data } = await api('GET', `/api/v1/terms/templates/${encodeURIComponent(template.id)}/choices`);
    options = data;
  } catch (err) {
    if (err instanceof Interrupted || !view.host.isConnected) return;
    view.outcome.replaceChildren(messageBox(`Could not load the choices. ${errorText(err)}`, 'error'));
    return;
  } finally {
    setBusy(opener, false);
  }
  if (!view.host.isConnected) return;
  view.outcome.replaceChildren();

  const defaults = options.defaults || {};
  const categoryBoxes = (options.categories || []).map((c) => ({
    id: c.id,
    box: checkbox({ label: c.label, checked: (defaults.categories || []).includes(c.id) }),
  }));
  const purposeBoxes = (options.purposes || []).map((p) => ({
    id: p.id,
    box: checkbox({ label: p.label, checked: (defaults.purposes || []).includes(p.id) }),
  }));
  const retentionName = uid('keep');
  const retentionRadios = (options.retention_days || []).map((days) => ({
    days,
    radio: radio({ name: retentionName, value: String(days), label: daysWords(days), checked: days === defaults.retention_days }),
  }));
  const refusalBoxes = (options.refusals || []).map((r) => ({ id: r.id, box: checkbox({ label: r.label }) }));

  const kinds = fieldset({ legend: 'What brands may see', hint: 'Only what you tick, and only what you then share with a brand.', children: categoryBoxes.map((c) => c.box.root), className: 'guided-group' });
  const purposes = fieldset({ legend: 'What they may use it for', children: purposeBoxes.map((p) => p.box.root), className: 'guided-group' });
  const keep = fieldset({ legend: 'How long they may keep it', hint: 'After this, brands must delete what they received.', children: retentionRadios.map((r) => r.radio.root), className: 'guided-group' });
  const today = new Date().toISOString().slice(0, 10);
  const endsOn = field({
    label: 'No longer allowed from (optional)',
    hint: 'From this day on, brands may not use your data under these terms.',
    control: el('input', { type: 'date', name: 'ends_on', min: today }),
  });
  const maxUses = field({
    label: 'At most this many uses (optional)',
    hint: 'How many times each brand may use what you share.',
    control: el('input', { type: 'number', name: 'max_uses', min: '1', step: '1', inputmode: 'numeric' }),
  });
  const refusals = fieldset({ legend: 'Also refuse (optional)', children: refusalBoxes.map((r) => r.box.root), className: 'guided-group' });

  const check = el('button', { type: 'submit', class: 'button primary' }, 'See these terms in plain words');
  const cancel = el('button', { type: 'button', class: 'button' }, 'Close');
  const resultHost = el('div', { class: 'guided-result' });
  const heading = el('h3', { tabindex: '-1' }, `Your choices, starting from “${template.title}”`);
  const form = el('form', { class: 'form guided-form', novalidate: true },
    kinds.root, purposes.root, keep.root,
    el('div', { class: 'guided-limits' }, el('p', { class: 'summary-label' }, 'Extra limits'), endsOn.root, maxUses.root),
    refusals.root,
    actions(check, cancel),
  );
  view.choicesHost.replaceChildren(el('section', { class: 'editor guided-editor', 'aria-label': heading.textContent || '' },
    heading, form, resultHost));
  focusElement(heading);

  // Any new choice makes the last summary stale.
  form.addEventListener('change', () => resultHost.replaceChildren());
  form.addEventListener('input', () => resultHost.replaceChildren());
  cancel.addEventListener('click', () => {
    view.choicesHost.replaceChildren();
    focusElement(opener);
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const group of [kinds, purposes, keep, refusals]) group.clearError();
    endsOn.clearError();
    maxUses.clearError();
    const choices = {
      categories: categoryBoxes.filter((c) => c.box.input.checked).map((c) => c.id),
      purposes: purposeBoxes.filter((p) => p.box.input.checked).map((p) => p.id),
      retention_days: Number((retentionRadios.find((r) => r.radio.input.checked) || { days: defaults.retention_days }).days),
      ends_on: endsOn.control.value || null,
      max_uses: maxUses.control.value ? Number(maxUses.control.value) : null,
      refusals: refusalBoxes.filter((r) => r.box.input.checked).map((r) => r.id),
    };
    // Mistakes the page can see itself, said beside the choice.
    /** @type {{ target: any, focus: HTMLElement, message: string }[]} */
    const local = [];
    if (!choices.categories.length) local.push({ target: kinds, focus: kinds.root, message: 'Tick at least one kind of data.' });
    if (!choices.purposes.length) local.push({ target: purposes, focus: purposes.root, message: 'Tick at least one purpose.' });
    if (choices.ends_on !== null && choices.ends_on <= today) local.push({ target: endsOn, focus: endsOn.control, message: 'Choose a day after today.' });
    if (choices.max_uses !== null && !(Number.isInteger(choices.max_uses) && choices.max_uses >= 1)) {
      local.push({ target: maxUses, focus: maxUses.control, message: 'Enter a whole number, 1 or more.' });
    }
    if (local.length) {
      for (const { target, message } of local) target.setError(message);
      focusElement(local[0].focus);
      announce(`Not ready: ${local[0].message}`, { assertive: true });
      return;
    }
    setBusy(check, true, 'Checking…');
    try {
      const { data } = await api('POST', `/api/v1/terms/templates/${encodeURIComponent(template.id)}/build`, { body: choices });
      if (!view.host.isConnected) return;
      showBuilt(view, data, resultHost);
    } catch (err) {
      if (err instanceof Interrupted || !view.host.isConnected) return;
      const target = err instanceof ApiError ? { '/categories': kinds, '/purposes': purposes, '/retention_days': keep, '/max_uses': maxUses, '/refusals': refusals }[err.at || ''] : null;
      const message = errorText(err);
      if (target) target.setError(message);
      else resultHost.replaceChildren(messageBox(`These choices cannot make terms: ${message}`, 'error'));
      announce(`These choices cannot make terms: ${message}`, { assertive: true });
    } finally {
      setBusy(check, false);
    }
  });
}

/** The built terms in plain words, with the way to publish them. */
function showBuilt(view, built, resultHost) {
  const current = view.hooks.current();
  const same = current && current.hash === built.hash;
  const publishButton = el('button', { type: 'button', class: 'button primary' }, 'Publish these terms…');
  const slot = el('div', { class: 'confirm-slot' });
  const row = actions(publishButton);
  const box = messageBox(same ? 'These choices make your current terms, unchanged.' : 'These choices make terms you can publish.', same ? 'info' : 'success');
  resultHost.replaceChildren(
    box,
    plainSummary(built),
    same ? null : row,
    slot,
  );
  publishButton.addEventListener('click', () => askPublish(view, {
    terms: built.terms, row, slot, back: publishButton, loadSummary: async () => built,
  }));
  announce(box.textContent || '');
  focusElement(box);
}

// --- Publishing -------------------------------------------------------------

/**
 * Ask before publishing, in place of the buttons: every brand must accept
 * again. The summary shown is the server's, of exactly what is published.
 */
async function askPublish(view, { terms, row, slot, back, loadSummary }) {
  const current = view.hooks.current();
  let summary;
  setBusy(back, true, 'Checking…');
  try {
    summary = await loadSummary();
  } catch (err) {
    if (err instanceof Interrupted || !view.host.isConnected) return;
    slot.replaceChildren(messageBox(`These terms cannot be published: ${errorText(err)}`, 'error'));
    return;
  } finally {
    setBusy(back, false);
  }
  if (current && summary && summary.hash === current.hash) {
    const box = messageBox(`Nothing to publish: these are your current terms (version ${current.version}), unchanged.`, 'info');
    slot.replaceChildren(box);
    announce(box.textContent || '');
    focusElement(box);
    return;
  }
  const next = current ? Number(current.version) + 1 : null;
  const title = next ? `Publish these terms as version ${next}?` : 'Publish these terms?';
  const question = el('p', { class: 'confirm-question', tabindex: '-1' }, title);
  const yes = el('button', { type: 'button', class: 'button primary' }, next ? `Publish version ${next}` : 'Publish');
  const no = el('button', { type: 'button', class: 'button' }, 'Cancel');
  row.hidden = true;
  slot.replaceChildren(el('div', { class: 'confirm confirm-warning', role: 'group', 'aria-label': title },
    question,
    el('p', {}, 'Every brand must accept the new version before it can get data from your vault again. They are asked the next time they connect.'),
    plainSummary(summary),
    actions(yes, no),
  ));
  no.addEventListener('click', () => {
    slot.replaceChildren();
    row.hidden = false;
    focusElement(back);
  });
  yes.addEventListener('click', async () => {
    setBusy(yes, true, 'Publishing…');
    try {
      const { status, data } = await api('PUT', '/api/v1/terms', { body: { terms } });
      if (!view.host.isConnected) return;
      slot.replaceChildren();
      row.hidden = false;
      view.hooks.published(data, status);
      view.choicesHost.replaceChildren();
      const text = status === 201
        ? `Published version ${data.version} (version code ${versionCode(data.hash)}). Brands must accept it before they can get data from your vault again.`
        : `Nothing changed: these are your current terms (version ${data && data.version}).`;
      const box = messageBox(text, status === 201 ? 'success' : 'info');
      view.outcome.replaceChildren(box);
      announce(text);
      focusElement(box);
    } catch (err) {
      if (err instanceof Interrupted || !view.host.isConnected) return;
      setBusy(yes, false);
      slot.replaceChildren(messageBox(`Not published: ${errorText(err)}`, 'error'));
      row.hidden = false;
    }
  });
  announce(`${title} Every brand must accept the new version.`, { assertive: true });
  focusElement(question);
}

function daysWords(days) {
  if (days === 1) return '1 day';
  if (days === 7) return '1 week';
  if (days === 30) return '30 days (about a month)';
  if (days === 90) return '90 days (about three months)';
  return `${days} days`;
}

function errorText(err) {
  if (err instanceof ApiError) return err.message;
  return 'Something unexpected went wrong. Try again.';
}
