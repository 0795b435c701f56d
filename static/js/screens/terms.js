// @ts-check
// My terms: what brands may do with the data the person shares. Shows the
// published version in plain words, lets the person make new terms by
// choosing (terms_guided.js), or, under "Advanced", write the document
// (from a template, the current terms or an older version), check it, and
// publish it; lists every published version.

import { api, ApiError, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce, setBusy, timeEl } from '../dom.js';
import { field, actions } from '../form.js';
import { asSentence } from '../errors.js';
import { basisLabel, locate, withoutLocation, prettyJson, plainSummary, versionCode } from '../terms.js';
import { renderGuided } from './terms_guided.js';

// What is in the editor. Kept in module memory (never in storage) so that
// leaving the screen, or a session that ends mid-edit, does not lose it.
//   { text, loaded } - loaded: the text as last loaded, to tell typing apart
let draft = null;

/** Forget the editor's text (the person logged out). */
export function forgetDraft() {
  draft = null;
}

/** Whether the editor holds typing that is not published. */
export function hasUnsavedTyping() {
  return Boolean(draft && draft.text !== draft.loaded);
}

/** Drop an editor nobody typed in: the next visit shows the current terms. */
export function forgetCleanDraft() {
  if (!hasUnsavedTyping()) draft = null;
}

export function render(container, ctx) {
  const editorField = field({
    label: 'Terms document (JSON)',
    hint: 'Change the text, then press Check to see what it says in plain words. Nothing is published until you press Publish and confirm.',
    control: el('textarea', {
      name: 'terms',
      class: 'mono terms-editor',
      rows: '20',
      spellcheck: 'false',
      autocapitalize: 'none',
      autocorrect: 'off',
      autocomplete: 'off',
    }),
  });

  const view = {
    container,
    ctx,
    heading: el('h1', {}, 'My terms'),
    currentHost: el('div', { class: 'terms-current', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading your terms…')),
    current: null, // the answer of GET /api/v1/terms
    templates: [],
    sourceSelect: el('select', { name: 'source' }),
    sourceHint: el('p', { class: 'hint', id: 'terms-source-hint' }),
    loadButton: el('button', { type: 'button', class: 'button' }, 'Load into the editor'),
    loadConfirm: el('div', { class: 'confirm-slot' }),
    editorField,
    editor: editorField.control,
    problemHost: el('div', { class: 'terms-problem' }),
    previewHost: el('div', { class: 'terms-preview' }),
    checkButton: el('button', { type: 'button', class: 'button' }, 'Check'),
    publishButton: el('button', { type: 'button', class: 'button primary' }, 'Publish…'),
    buttonRow: null,
    confirmSlot: el('div', { class: 'confirm-slot' }),
    versionsHost: el('div', { class: 'terms-versions', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading the versions…')),
    guidedHost: el('div', { class: 'terms-guided' }),
    advanced: el('details', { class: 'terms-advanced' }),
  };
  view.buttonRow = actions(view.checkButton, view.publishButton);

  const sourceId = 'terms-source';
  view.sourceSelect.id = sourceId;
  view.sourceSelect.setAttribute('aria-describedby', view.sourceHint.id);

  container.append(
    view.heading,
    el('p', { class: 'lead' }, 'Your terms say what brands may do with the data you share with them. Brands can do nothing until they accept your terms, and they must accept again each time you publish a new version.'),

    el('section', { class: 'terms-section', 'aria-labelledby': 'terms-current-heading' },
      el('h2', { id: 'terms-current-heading' }, 'Your current terms'),
      view.currentHost,
    ),

    el('section', { class: 'terms-section', 'aria-labelledby': 'terms-guided-heading' },
      el('h2', { id: 'terms-guided-heading' }, 'Make new terms'),
      view.guidedHost,
    ),

    el('section', { class: 'terms-section', 'aria-labelledby': 'terms-edit-heading' },
      view.advanced,
    ),

    el('section', { class: 'terms-section', 'aria-labelledby': 'terms-versions-heading' },
      el('h2', { id: 'terms-versions-heading' }, 'Version history'),
      el('p', {}, 'Every version you published is kept: each agreement with a brand names the version it accepted.'),
      view.versionsHost,
    ),
  );

  // Writing the document by hand is for people who read ODRL: it stays,
  // folded away under "Advanced".
  view.advanced.append(
    el('summary', {}, el('span', { id: 'terms-edit-heading' }, 'Advanced: write the document yourself')),
    el('p', {}, 'Terms are written in ODRL, a W3C standard for policies, on top of an IEEE 7012 agreement called their basis. Your terms can only narrow their basis: you may take away kinds of data, purposes or actions, and add limits such as an end date, but not allow more.'),
    el('div', { class: 'field terms-source' },
      el('label', { for: sourceId }, 'Start from'),
      view.sourceHint,
      el('div', { class: 'inline-row' }, view.sourceSelect, view.loadButton),
      view.loadConfirm,
    ),
    editorField.root,
    view.problemHost,
    view.previewHost,
    view.buttonRow,
    view.confirmSlot,
  );
  renderGuided(view.guidedHost, {
    current: () => view.current,
    published: (data) => {
      if (!data || !data.terms) return;
      view.current = data;
      view.currentHost.replaceChildren(...termsDetails(data));
      if (!hasUnsavedTyping()) setEditor(view, prettyJson(data.terms));
      fillSources(view);
      loadVersions(view);
    },
  });

  fillSources(view);
  view.sourceSelect.addEventListener('change', () => describeSource(view));
  view.loadButton.addEventListener('click', () => askLoad(view, selectedSource(view)));
  view.editor.addEventListener('input', () => {
    if (!draft) draft = { text: '', loaded: '' };
    draft.text = view.editor.value;
    // What was checked or asked about is no longer what is in the editor.
    clearOutcome(view);
  });
  view.checkButton.addEventListener('click', () => check(view));
  view.publishButton.addEventListener('click', () => askPublish(view));

  // Typing from an earlier visit comes back; an editor nobody typed in
  // shows the current terms again.
  forgetCleanDraft();
  if (draft) {
    view.editor.value = draft.text;
    view.advanced.open = true;
    view.previewHost.replaceChildren(messageBox('Your unpublished changes are kept in the editor. Check them, then publish or start again from your current terms.', 'warning'));
  }

  loadCurrent(view);
  loadTemplates(view);
  loadVersions(view);
}

// --- Current terms ------------------------------------------------------

async function loadCurrent(view, { intoEditor = !draft } = {}) {
  view.currentHost.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', '/api/v1/terms');
    if (!view.container.isConnected) return;
    view.current = data;
    view.currentHost.replaceChildren(...termsDetails(data));
    fillSources(view);
    if (intoEditor && data && data.terms) setEditor(view, prettyJson(data.terms));
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadCurrent(view, { intoEditor }));
    const message = `Could not load your terms. ${errorText(err)}`;
    view.currentHost.replaceChildren(messageBox(message, 'error'), actions(retry));
    announce(message, { assertive: true });
  } finally {
    view.currentHost.removeAttribute('aria-busy');
  }
}

/** Version, basis, date, fingerprint and the plain-language summary. */
function termsDetails(data, { withTitle = true } = {}) {
  const doc = data && data.terms && typeof data.terms === 'object' ? data.terms : {};
  return [
    withTitle && typeof doc.title === 'string' ? el('h3', { class: 'terms-title' }, doc.title) : null,
    el('dl', { class: 'facts' },
      fact('Version', String(data.version ?? '')),
      fact('Starting point', basisLabel(data.basis)),
      data.published_at ? fact('Published', timeEl(data.published_at)) : null,
      fact('Version code', versionCodeEl(data.hash)),
    ),
    plainSummary(data),
  ];
}

function fact(term, value) {
  return [el('dt', {}, term), el('dd', {}, value)];
}

/** The short version code; the full fingerprint rides along for scripts and tests. */
function versionCodeEl(hash) {
  return el('span', { class: 'version-code', 'data-hash': String(hash || '') }, versionCode(hash));
}

// --- Where to start from ----------------------------------------------------

async function loadTemplates(view) {
  try {
    const { data } = await api('GET', '/api/v1/terms/templates');
    if (!view.container.isConnected) return;
    view.templates = ((data && data.templates) || []).filter((t) => t && typeof t.id === 'string' && t.terms);
    fillSources(view);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    // The editor still works from the current terms.
    view.templates = [];
    fillSources(view);
    view.sourceHint.textContent = `The templates could not be loaded: ${errorText(err)}`;
  }
}

function fillSources(view) {
  const selected = view.sourceSelect.value;
  const options = [];
  if (view.current && view.current.terms) {
    options.push(el('option', { value: 'current' }, `Your current terms (version ${view.current.version})`));
  }
  for (const template of view.templates) {
    options.push(el('option', { value: `template:${template.id}` }, `Template: ${template.title || template.id}`));
  }
  if (!options.length) options.push(el('option', { value: '' }, 'Loading…'));
  view.sourceSelect.replaceChildren(...options);
  if ([...view.sourceSelect.options].some((o) => o.value === selected)) view.sourceSelect.value = selected;
  view.loadButton.disabled = !view.sourceSelect.value;
  describeSource(view);
}

function selectedSource(view) {
  const value = view.sourceSelect.value;
  if (value === 'current' && view.current) {
    return { name: `your current terms (version ${view.current.version})`, terms: view.current.terms, description: 'What brands are asked to accept now.' };
  }
  if (value.startsWith('template:')) {
    const template = view.templates.find((t) => `template:${t.id}` === value);
    if (template) {
      return {
        name: `the template “${template.title || template.id}”`,
        terms: template.terms,
        // The Advanced view is where the document's own words belong.
        description: [template.description, template.basis ? `Basis: ${template.basis} (${basisLabel(template.basis)}).` : ''].filter(Boolean).join(' '),
      };
    }
  }
  return null;
}

function describeSource(view) {
  const source = selectedSource(view);
  view.sourceHint.textContent = source ? source.description : '';
}

/** Put a source's terms in the editor; replacing typed text loses it, so ask first. */
function askLoad(view, source) {
  if (!source) return;
  if (!hasUnsavedTyping() || view.editor.value.trim() === '') {
    loadSource(view, source);
    return;
  }
  const question = el('p', { class: 'confirm-question', tabindex: '-1' }, `Replace the text in the editor with ${source.name}?`);
  const yes = el('button', { type: 'button', class: 'button primary' }, 'Replace my changes');
  const no = el('button', { type: 'button', class: 'button' }, 'Keep my changes');
  view.loadConfirm.replaceChildren(el('div', { class: 'confirm confirm-warning', role: 'group', 'aria-label': 'Replace your changes?' },
    question,
    el('p', {}, 'What you changed in the editor has not been published and would be lost.'),
    actions(yes, no),
  ));
  yes.addEventListener('click', () => {
    view.loadConfirm.replaceChildren();
    loadSource(view, source);
  });
  no.addEventListener('click', () => {
    view.loadConfirm.replaceChildren();
    focusElement(view.editor);
  });
  focusElement(question);
}

function loadSource(view, source) {
  setEditor(view, prettyJson(source.terms));
  announce(`Loaded ${source.name} into the editor.`);
  focusElement(view.editor);
}

function setEditor(view, text) {
  view.editor.value = text;
  draft = { text, loaded: text };
  view.loadConfirm.replaceChildren();
  clearOutcome(view);
}

// --- Checking and publishing ------------------------------------------------

function clearOutcome(view) {
  view.problemHost.replaceChildren();
  view.previewHost.replaceChildren();
  view.editorField.clearError();
  closeConfirm(view);
}

/** The editor's text as JSON, or null after showing why it is not. */
function readDocument(view) {
  clearOutcome(view);
  const text = view.editor.value;
  if (!text.trim()) {
    showProblem(view, { message: 'The editor is empty. Start from your current terms or a template.' });
    return null;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    showProblem(view, {
      message: 'This is not valid JSON. Check the quotes, commas and brackets.',
      detail: err && err.message ? `Your browser says: ${err.message}` : null,
    });
    return null;
  }
}

/**
 * Show why the terms were refused, right under the editor: the location
 * (with a button that selects it in the text) and the reason.
 */
function showProblem(view, { message, at = null, detail = null }) {
  const place = at ? locate(view.editor.value, at) : null;
  const heading = el('p', { class: 'problem-title', tabindex: '-1' }, el('strong', {}, 'These terms cannot be published yet.'));
  let where = null;
  if (at && at !== 'the terms') {
    const show = el('button', { type: 'button', class: 'button small' }, 'Show in the editor');
    show.addEventListener('click', () => {
      const found = locate(view.editor.value, at);
      if (!found) return;
      view.editor.focus();
      view.editor.setSelectionRange(found.start, found.end);
      scrollToLine(view.editor, found.line);
    });
    where = el('p', { class: 'problem-where' },
      'Where: ', el('code', {}, at),
      place ? ` (line ${place.line})` : '',
      place ? [' ', show] : null);
  }
  view.problemHost.replaceChildren(el('div', { class: 'message message-error', id: 'terms-problem' },
    heading,
    where,
    el('p', {}, message),
    detail ? el('p', { class: 'hint' }, detail) : null,
  ));
  view.editorField.control.setAttribute('aria-invalid', 'true');
  view.editorField.control.setAttribute('aria-describedby', [view.editorField.hintEl && view.editorField.hintEl.id, 'terms-problem'].filter(Boolean).join(' '));
  announce(`These terms cannot be published yet. ${at && at !== 'the terms' ? `Where: ${at}. ` : ''}${message}`, { assertive: true });
  focusElement(heading);
}

/** Bring a line of a textarea into view (setSelectionRange does not always scroll). */
function scrollToLine(textarea, line) {
  const lineHeight = Number.parseFloat(getComputedStyle(textarea).lineHeight) || 20;
  textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

/** The refusal of a document, in the shape showProblem() takes. */
function refusal(err) {
  const at = err.data && typeof err.data.at === 'string' ? err.data.at : null;
  const text = withoutLocation(err.serverMessage, at);
  return { at, message: text ? asSentence(text) : err.message };
}

/** POST /api/v1/terms/preview; resolves to the preview or null after showing why not. */
async function preview(view, doc, button, busyLabel) {
  setBusy(button, true, busyLabel);
  try {
    const { data } = await api('POST', '/api/v1/terms/preview', { body: { terms: doc } });
    return data || {};
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return null;
    if (err instanceof ApiError && (err.status === 422 || err.code === 'invalid_terms')) {
      showProblem(view, refusal(err));
    } else {
      showProblem(view, { message: `Could not check these terms. ${errorText(err)}` });
    }
    return null;
  } finally {
    setBusy(button, false);
  }
}

async function check(view) {
  const doc = readDocument(view);
  if (!doc) return;
  const result = await preview(view, doc, view.checkButton, 'Checking…');
  if (!result || !view.container.isConnected) return;
  const same = view.current && result.hash === view.current.hash;
  const heading = el('h3', { tabindex: '-1' }, same ? 'These are your current terms, unchanged' : 'These terms can be published');
  view.previewHost.replaceChildren(el('div', { class: 'message message-success' },
    heading,
    el('p', {}, same
      ? `The editor holds exactly what you published as version ${view.current.version}; publishing it would change nothing.`
      : 'Nothing is published yet. This is what brands would be asked to accept:'),
    el('dl', { class: 'facts' },
      fact('Starting point', basisLabel(result.basis)),
      fact('Version code', versionCodeEl(result.hash)),
    ),
    plainSummary(result),
  ));
  announce(same ? 'These are your current terms, unchanged.' : 'These terms can be published. Their summary is shown under the editor.');
  focusElement(heading);
}

/** Check the document, then ask before publishing it, with what it says. */
async function askPublish(view) {
  const doc = readDocument(view);
  if (!doc) return;
  const result = await preview(view, doc, view.publishButton, 'Checking…');
  if (!result || !view.container.isConnected) return;

  if (view.current && result.hash === view.current.hash) {
    const box = messageBox(`Nothing to publish: the editor holds your current terms (version ${view.current.version}), unchanged.`, 'info');
    view.previewHost.replaceChildren(box);
    announce(box.textContent);
    focusElement(box);
    return;
  }

  const next = view.current ? Number(view.current.version) + 1 : null;
  const title = next ? `Publish these terms as version ${next}?` : 'Publish these terms?';
  const question = el('p', { class: 'confirm-question', tabindex: '-1' }, title);
  const yes = el('button', { type: 'button', class: 'button primary' }, next ? `Publish version ${next}` : 'Publish');
  const no = el('button', { type: 'button', class: 'button' }, 'Cancel');
  view.buttonRow.hidden = true;
  view.confirmSlot.replaceChildren(el('div', { class: 'confirm confirm-warning', role: 'group', 'aria-label': title },
    question,
    el('p', {}, 'Every brand must accept the new version before it can get data from your vault again, including brands that accepted your current terms. They are asked the next time they connect.'),
    plainSummary(result),
    el('p', { class: 'hint' }, 'Version code: ', versionCodeEl(result.hash)),
    actions(yes, no),
  ));
  yes.addEventListener('click', () => publish(view, doc, yes));
  no.addEventListener('click', () => {
    closeConfirm(view);
    focusElement(view.publishButton);
  });
  announce(`${title} Every brand must accept the new version before it can get data from your vault again.`, { assertive: true });
  focusElement(question);
}

function closeConfirm(view) {
  view.confirmSlot.replaceChildren();
  view.buttonRow.hidden = false;
}

async function publish(view, doc, button) {
  setBusy(button, true, 'Publishing…');
  try {
    const { status, data } = await api('PUT', '/api/v1/terms', { body: { terms: doc } });
    if (!view.container.isConnected) return;
    closeConfirm(view);
    if (data && data.terms) {
      view.current = data;
      view.currentHost.replaceChildren(...termsDetails(data));
      setEditor(view, prettyJson(data.terms));
      fillSources(view);
    }
    const text = status === 201
      ? `Published version ${data.version}. Brands must accept it before they can get data from your vault again.`
      : `Nothing changed: these are your current terms (version ${data && data.version}).`;
    const box = messageBox(text, status === 201 ? 'success' : 'info');
    view.previewHost.replaceChildren(box);
    announce(text);
    focusElement(box);
    loadVersions(view);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    closeConfirm(view);
    if (err instanceof ApiError && (err.status === 422 || err.code === 'invalid_terms')) {
      showProblem(view, refusal(err));
    } else {
      showProblem(view, { message: `Not published: ${errorText(err)}` });
    }
  } finally {
    if (button.isConnected) setBusy(button, false);
  }
}

// --- Version history ------------------------------------------------------

async function loadVersions(view) {
  view.versionsHost.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', '/api/v1/terms/versions');
    if (!view.container.isConnected) return;
    const versions = ((data && data.versions) || []).filter((v) => v && v.version !== undefined);
    view.versionsHost.replaceChildren(versions.length
      ? el('ol', { class: 'versions', reversed: true }, versions.map((v) => versionItem(view, v)))
      : el('p', {}, 'No version has been published yet.'));
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadVersions(view));
    view.versionsHost.replaceChildren(messageBox(`Could not load the versions. ${errorText(err)}`, 'error'), actions(retry));
  } finally {
    view.versionsHost.removeAttribute('aria-busy');
  }
}

function versionItem(view, version) {
  const viewer = el('div', { class: 'version-viewer', id: `terms-version-${version.version}`, hidden: true });
  const toggle = el('button', {
    type: 'button',
    class: 'button small',
    'aria-expanded': 'false',
    'aria-controls': viewer.id,
  }, `View version ${version.version}`);
  toggle.addEventListener('click', () => toggleVersion(view, version, toggle, viewer));

  return el('li', { class: 'version', 'data-version': String(version.version) },
    el('p', { class: 'version-title' },
      el('strong', {}, `Version ${version.version}`),
      version.current ? [' ', el('span', { class: 'tag' }, 'Current')] : null),
    el('p', { class: 'record-meta' },
      version.published_at ? el('span', {}, 'Published ', timeEl(version.published_at)) : null,
      el('span', {}, basisLabel(version.basis))),
    el('p', { class: 'version-hash' }, 'Version code ', versionCodeEl(version.hash)),
    actions(toggle),
    viewer,
  );
}

async function toggleVersion(view, version, toggle, viewer) {
  if (toggle.getAttribute('aria-expanded') === 'true') {
    viewer.hidden = true;
    toggle.setAttribute('aria-expanded', 'false');
    toggle.textContent = `View version ${version.version}`;
    return;
  }
  setBusy(toggle, true, 'Loading…');
  try {
    const { data } = await api('GET', `/api/v1/terms/versions/${encodeURIComponent(version.version)}`);
    if (!view.container.isConnected) return;
    const useIt = el('button', { type: 'button', class: 'button small' }, `Start from version ${version.version}`);
    useIt.addEventListener('click', () => askLoad(view, { name: `version ${data.version}`, terms: data.terms }));
    viewer.replaceChildren(
      ...termsDetails(data, { withTitle: true }),
      el('details', { class: 'entry-details' },
        el('summary', {}, 'The document'),
        el('pre', { class: 'terms-json' }, prettyJson(data.terms))),
      actions(useIt),
    );
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    viewer.replaceChildren(messageBox(`Could not load version ${version.version}. ${errorText(err)}`, 'error'));
  } finally {
    setBusy(toggle, false);
  }
  viewer.hidden = false;
  toggle.setAttribute('aria-expanded', 'true');
  toggle.textContent = `Hide version ${version.version}`;
}

function errorText(err) {
  return err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
}
