// @ts-check
// "My data": the profile (screens/profile.js) on top, then everything else
// the person keeps, grouped by topic, with an editor for adding something
// else by name, changing it, conflict handling and deleting.

import { api, ApiError, Interrupted, recordUrl } from '../api.js';
import { el, srOnly, messageBox, focusElement, announce, setBusy, formatDate, timeEl } from '../dom.js';
import { field, formError, actions } from '../form.js';
import {
  normalizeRecord, sortRecords, groupByCollection, valueNode, valueToEditorText,
  recordTitle, humanize, fetchAllRecords,
} from '../records.js';
import { PROFILE_PATHS, pathForLabel } from '../profile.js';
import { renderProfile, forgetProfileDrafts, hasUnsavedProfileTyping } from './profile.js';

// What the person is typing in the editor. Kept in module memory (never in
// storage) so that it survives leaving the screen: when the session expires
// mid-edit, they log in again and find their text back here.
//   { mode: 'create'|'edit', label, path, text, json, category, etag, initial }
// When adding, the person names the thing ("Shoe size") and the path is
// derived from that name (other.shoe_size); they never see it.
let draft = null;

/** Forget half-typed data (the person chose to log out). */
export function forgetDrafts() {
  draft = null;
  forgetProfileDrafts();
}

/**
 * Drop an editor that was opened but not typed in: when the session ends
 * there is nothing in it worth bringing back.
 */
export function forgetCleanDraft() {
  if (!draftIsDirty()) draft = null;
}

/** Whether the person typed something that is not saved yet. */
export function hasUnsavedTyping() {
  return draftIsDirty() || hasUnsavedProfileTyping();
}

export function render(container, ctx) {
  const view = {
    container,
    ctx,
    records: [],
    categories: [],
    heading: el('h1', {}, 'My data'),
    profileHost: el('div', { class: 'profile' }),
    addButton: el('button', { type: 'button', class: 'button' }, 'Add something else'),
    notice: el('div', { class: 'notice-slot' }),
    editorHost: el('div', { class: 'editor-slot' }),
    listHost: el('div', { class: 'records-list', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading your data…')),
    editor: null, // controls of the open editor, see openEditor()
  };

  view.addButton.addEventListener('click', () => startCreate(view));

  container.append(
    view.heading,
    el('p', { class: 'lead' }, 'What you keep in your vault. Nothing here is shared until you choose to share it with a brand.'),
    view.profileHost,
    el('section', { class: 'others', 'aria-labelledby': 'others-heading' },
      el('h2', { id: 'others-heading' }, 'Other things'),
      el('p', { class: 'hint' }, 'Anything that does not fit above, for example a shoe size or a membership number.'),
      el('div', { class: 'toolbar' }, view.addButton),
      view.notice,
      view.editorHost,
      view.listHost,
    ),
  );

  load(view);
}

async function load(view) {
  view.listHost.setAttribute('aria-busy', 'true');
  view.listHost.replaceChildren(el('p', { class: 'loading' }, 'Loading your data…'));
  try {
    // Categories only fill the "Kind of data" menu: the list still works
    // without them.
    const [list, categories] = await Promise.all([
      fetchAllRecords(),
      api('GET', '/api/v1/categories').then(({ data }) => (data && data.categories) || []).catch((err) => {
        if (err instanceof Interrupted) throw err;
        return [];
      }),
    ]);
    if (!view.container.isConnected) return;
    const all = list.map((record) => normalizeRecord(record));
    renderProfile(view.profileHost, new Map(all.filter((r) => PROFILE_PATHS.has(r.path)).map((r) => [r.path, r])));
    view.records = sortRecords(all.filter((r) => !PROFILE_PATHS.has(r.path)));
    view.categories = categories.filter((c) => c && typeof c.id === 'string');
    renderList(view);
    // Bring back typing that was interrupted (session ended, another
    // screen); an editor nobody typed in is not worth reopening.
    forgetCleanDraft();
    if (draft) {
      openEditor(view, { restored: true });
    }
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => load(view));
    view.listHost.replaceChildren(
      messageBox(`Could not load your data. ${err.message}`, 'error'),
      actions(retry),
    );
    announce(`Could not load your data. ${err.message}`, { assertive: true });
  } finally {
    view.listHost.removeAttribute('aria-busy');
  }
}

// --- The list -----------------------------------------------------------

function renderList(view) {
  if (view.records.length === 0) {
    view.listHost.replaceChildren(el('p', { class: 'empty-others' }, 'Nothing else yet.'));
    return;
  }

  // Things added by name all live in "other": they need no heading of
  // their own under "Other things".
  const groups = groupByCollection(view.records);
  const sections = groups.map(([collection, records]) => {
    const headingId = `collection-${collection}`;
    const plain = collection === 'other';
    return el('section', { class: 'collection', 'aria-labelledby': plain ? null : headingId },
      plain ? null : el('h3', { id: headingId }, humanize(collection)),
      el('ul', { class: 'records' }, records.map((record) => recordItem(view, record))),
    );
  });
  view.listHost.replaceChildren(...sections);
}

function recordItem(view, record) {
  const title = recordTitle(record);
  const editButton = el('button', { type: 'button', class: 'button small', 'data-action': 'edit' },
    'Edit', srOnly(` ${title}`));
  const deleteButton = el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'delete' },
    'Delete', srOnly(` ${title}`));
  const buttons = el('div', { class: 'record-actions' }, editButton, deleteButton);
  const confirmSlot = el('div', { class: 'confirm-slot' });

  const category = record.category_label || record.category;
  const meta = [];
  // "Email address" titled "Email address" needs no tag saying so again.
  if (category && category.toLowerCase() !== title.toLowerCase()) meta.push(el('span', { class: 'tag' }, category));
  if (record.updated_at) meta.push(el('span', {}, 'Updated ', timeEl(record.updated_at)));

  const item = el('li', { class: 'record', 'data-path': record.path },
    el('h4', { class: 'record-title' }, title),
    valueNode(record.value),
    meta.length ? el('p', { class: 'record-meta' }, meta) : null,
    buttons,
    confirmSlot,
  );

  editButton.addEventListener('click', () => startEdit(view, record));
  deleteButton.addEventListener('click', () => askDelete(view, record, item));
  return item;
}

function findItem(view, path) {
  return [...view.listHost.querySelectorAll('li.record')].find((li) => li.dataset.path === path) || null;
}

function upsert(view, record) {
  view.records = sortRecords([...view.records.filter((r) => r.path !== record.path), record]);
}

/** "Nothing else yet" makes no sense under an open Add form. */
function syncEmptyState(view) {
  const empty = view.listHost.querySelector('.empty-others');
  if (empty instanceof HTMLElement) empty.hidden = Boolean(view.editor);
}

function showNotice(view, text, kind = 'success') {
  view.notice.replaceChildren(messageBox(text, kind));
  announce(text, { assertive: kind === 'error' });
}

// --- Editor -------------------------------------------------------------

function draftIsDirty() {
  if (!draft) return false;
  const { initial } = draft;
  return draft.label !== initial.label || draft.text !== initial.text
    || draft.json !== initial.json || draft.category !== initial.category;
}

/**
 * Only one editor at a time. Opening another must not silently throw away
 * unsaved typing, so ask the person to finish first.
 */
function editorBusyWithChanges(view) {
  if (!draftIsDirty() || !view.editor) return false;
  view.editor.error.show(`You have unsaved changes to ${draft.label || 'something new'}. Save or cancel them first.`);
  announce('You have unsaved changes. Save or cancel them first.', { assertive: true });
  focusElement(view.editor.heading);
  return true;
}

function newDraft(fields) {
  const base = { mode: 'create', label: '', path: '', text: '', json: false, category: '', etag: null, ...fields };
  base.initial = { label: base.label, text: base.text, json: base.json, category: base.category };
  return base;
}

function startCreate(view, preset = {}) {
  if (editorBusyWithChanges(view)) return;
  view.notice.replaceChildren();
  draft = newDraft({ label: preset.label || '', category: preset.category || '' });
  openEditor(view);
}

function startEdit(view, record) {
  if (draft && draft.mode === 'edit' && draft.path === record.path && view.editor) {
    focusElement(view.editor.firstInput);
    return;
  }
  if (editorBusyWithChanges(view)) return;
  view.notice.replaceChildren();
  const { text, json } = valueToEditorText(record.value);
  draft = newDraft({
    mode: 'edit',
    label: recordTitle(record),
    path: record.path,
    text,
    json,
    category: record.category || '',
    categoryLabel: record.category_label || '',
    etag: record.etag,
  });
  openEditor(view);
}

function openEditor(view, { restored = false } = {}) {
  const isEdit = draft.mode === 'edit';
  const heading = el('h3', { tabindex: '-1' }, isEdit ? `Edit ${draft.label}` : 'Add something else');

  // What it is: a name when adding (the path is made from it, never shown),
  // fixed when editing (a different name is a different record).
  let labelField = null;
  if (!isEdit) {
    labelField = field({
      label: 'What is it?',
      hint: 'A short name, for example Shoe size or Library card number.',
      control: el('input', {
        type: 'text',
        name: 'label',
        value: draft.label,
        autocomplete: 'off',
        maxlength: '60',
        required: true,
      }),
    });
    labelField.control.addEventListener('input', () => {
      draft.label = labelField.control.value;
      labelField.clearError();
    });
  }

  const valueField = field({
    label: 'Value',
    hint: draft.json
      ? 'This is kept as a list or a set of parts. Keep the brackets, quotes and commas as they are.'
      : null,
    control: el('textarea', { name: 'value', rows: '3', value: draft.text }),
  });
  // textarea's value must be set as a property after creation in some
  // browsers; el() does that, but be explicit for clarity.
  valueField.control.value = draft.text;
  valueField.control.addEventListener('input', () => {
    draft.text = valueField.control.value;
    valueField.clearError();
  });
  valueField.control.classList.toggle('mono', draft.json);

  const categorySelect = el('select', { name: 'category' }, categoryOptions(view));
  categorySelect.value = draft.category;
  categorySelect.addEventListener('change', () => {
    draft.category = categorySelect.value;
  });
  const categoryField = field({
    label: 'Kind of data',
    hint: view.categories.length
      ? 'Says what this is, so your terms and the brands you share it with know what kind of data it is. If you leave “Let the vault choose”, it counts as “Other personal data”.'
      : 'The list of kinds could not be loaded; the vault will choose one for you.',
    control: categorySelect,
  });
  categorySelect.addEventListener('change', () => categoryField.clearError());

  const error = formError();
  const saveButton = el('button', { type: 'submit', class: 'button primary' }, 'Save');
  const cancelButton = el('button', { type: 'button', class: 'button' }, 'Cancel');
  const buttonRow = actions(saveButton, cancelButton);
  const conflictSlot = el('div', { class: 'conflict-slot' });
  const confirmSlot = el('div', { class: 'confirm-slot' });

  const form = el('form', { class: 'form', novalidate: true },
    labelField ? labelField.root : null,
    valueField.root,
    categoryField.root,
    error.node,
    buttonRow,
    confirmSlot,
  );

  const section = el('section', { class: 'editor', 'aria-labelledby': 'editor-heading' },
    heading,
    restored ? messageBox('Your unsaved changes are kept. Check them and press Save.', 'warning') : null,
    conflictSlot,
    form,
  );
  heading.id = 'editor-heading';
  view.editorHost.replaceChildren(section);

  view.editor = {
    heading,
    form,
    error,
    saveButton,
    buttonRow,
    conflictSlot,
    confirmSlot,
    labelField,
    valueField,
    categoryField,
    firstInput: labelField ? labelField.control : valueField.control,
  };
  syncEmptyState(view);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    view.notice.replaceChildren();
    const checked = validate(view);
    if (!checked.ok) return;
    if (isEmptyText()) askSaveEmpty(view);
    else save(view);
  });
  // Typing again answers the "save an empty value?" question.
  valueField.control.addEventListener('input', () => closeEmptyQuestion(view.editor));
  cancelButton.addEventListener('click', () => {
    const path = draft && draft.mode === 'edit' ? draft.path : null;
    draft = null;
    closeEditor(view, path);
    announce('Changes discarded.');
  });

  if (restored) {
    announce('Your unsaved changes are kept. Check them and press Save.');
    focusElement(heading);
  } else {
    focusElement(view.editor.firstInput);
  }
}

function categoryOptions(view) {
  const options = [el('option', { value: '' }, 'Let the vault choose')];
  for (const category of view.categories) {
    options.push(el('option', { value: category.id }, category.label || category.id));
  }
  // A record may carry a category the menu does not list: keep it.
  if (draft.category && !view.categories.some((c) => c.id === draft.category)) {
    options.push(el('option', { value: draft.category }, draft.categoryLabel || draft.category));
  }
  return options;
}

// --- Saving empty text ----------------------------------------------------

/** Plain text with nothing visible in it: most likely a slip. */
function isEmptyText() {
  return !draft.json && draft.text.trim() === '';
}

/** Ask in place, instead of the Save/Cancel buttons, before saving nothing. */
function askSaveEmpty(view) {
  const editor = view.editor;
  const question = el('p', { class: 'confirm-question', tabindex: '-1' }, 'Save an empty value?');
  const yes = el('button', { type: 'button', class: 'button primary' }, 'Save empty value');
  const back = el('button', { type: 'button', class: 'button' }, 'Go back');
  editor.buttonRow.hidden = true;
  editor.confirmSlot.replaceChildren(el('div', { class: 'confirm confirm-warning', role: 'group', 'aria-label': 'Save an empty value?' },
    question,
    el('p', {}, 'The value box is empty, so the vault would keep this field with no text in it.'),
    actions(yes, back),
  ));
  yes.addEventListener('click', () => {
    closeEmptyQuestion(editor);
    save(view);
  });
  back.addEventListener('click', () => {
    closeEmptyQuestion(editor);
    focusElement(editor.valueField.control);
  });
  announce('The value is empty. Save an empty value?', { assertive: true });
  focusElement(question);
}

function closeEmptyQuestion(editor) {
  if (!editor || !editor.confirmSlot.firstChild) return;
  editor.confirmSlot.replaceChildren();
  editor.buttonRow.hidden = false;
}

/** Close the editor and put focus back where the person started. */
function closeEditor(view, pathForFocus = null) {
  view.editorHost.replaceChildren();
  view.editor = null;
  syncEmptyState(view);
  const item = pathForFocus && findItem(view, pathForFocus);
  const button = item && item.querySelector('[data-action="edit"]');
  focusElement(button || view.addButton);
}

/** Why the name of something new is not usable, in words, or null. */
function labelProblem(view) {
  const label = draft.label.trim();
  if (!label) return 'Say what it is, for example Shoe size.';
  const path = pathForLabel(label);
  if (!path) return 'Use at least one letter or digit in the name.';
  const taken = view.records.find((r) => r.path === path);
  if (taken) return `You already keep “${recordTitle(taken)}”. Change it in the list below instead, or choose another name.`;
  return null;
}

/** Check the form; returns the value to send, or undefined after showing errors. */
function validate(view) {
  const { labelField, valueField, error } = view.editor;
  error.clear();
  if (labelField && draft.mode === 'create') {
    labelField.clearError();
    const problem = labelProblem(view);
    if (problem) {
      labelField.setError(problem);
      labelField.control.focus();
      announce(problem, { assertive: true });
      return { ok: false };
    }
    draft.path = pathForLabel(draft.label.trim());
  }
  valueField.clearError();
  if (!draft.json) return { ok: true, value: draft.text };
  try {
    return { ok: true, value: JSON.parse(draft.text) };
  } catch {
    const message = 'This list is no longer well formed. Check the quotes, commas and brackets, or press Cancel to keep it as it was.';
    valueField.setError(message);
    valueField.control.focus();
    announce(message, { assertive: true });
    return { ok: false };
  }
}

/**
 * Save the draft. Normally guarded by If-Match (editing) or If-None-Match
 * (adding) so nothing saved elsewhere is overwritten by accident; `guard`
 * replaces that when the person chose to overwrite after a conflict.
 */
async function save(view, guard = null) {
  if (!view.editor) return;
  const checked = validate(view);
  if (!checked.ok) return;

  const body = { value: checked.value };
  if (draft.category) body.category = draft.category;
  const headers = guard || (draft.mode === 'edit' && draft.etag
    ? { 'If-Match': draft.etag }
    : { 'If-None-Match': '*' });

  const { saveButton, error } = view.editor;
  const busyButton = guard ? view.editor.conflictButton || saveButton : saveButton;
  setBusy(busyButton, true, 'Saving…');
  const path = draft.path;
  try {
    const answer = await api('PUT', recordUrl(path), { body, headers });
    if (!view.container.isConnected) return;
    const record = answer.data && answer.data.path
      ? normalizeRecord(answer.data, answer.headers)
      : normalizeRecord({ path, value: checked.value, category: draft.category }, answer.headers);
    upsert(view, record);
    draft = null;
    renderList(view);
    closeEditor(view);
    const item = findItem(view, path);
    if (item) {
      item.classList.add('just-saved');
      focusElement(item);
    }
    showNotice(view, `Saved ${recordTitle(record)}.`);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (err instanceof ApiError && (err.status === 412 || (err.status === 404 && draft.mode === 'edit'))) {
      await showConflict(view, path);
      return;
    }
    const message = err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
    const badField = fieldAtFault(view.editor, err);
    if (badField) {
      badField.setError(message);
      focusElement(badField.control);
    } else {
      error.show(`Not saved: ${message}`);
    }
    announce(`Not saved: ${message}`, { assertive: true });
  } finally {
    setBusy(busyButton, false);
  }
}

/** The form field a refusal is about, so the message can sit next to it. */
function fieldAtFault(editor, err) {
  if (!editor || !(err instanceof ApiError)) return null;
  switch (err.code) {
    case 'invalid_path': return editor.labelField;
    case 'invalid_value':
    case 'payload_too_large': return editor.valueField;
    case 'invalid_category': return editor.categoryField;
    default: return null;
  }
}

/**
 * Someone (another device or tab) changed or removed this record since the
 * person opened it. Show what is saved now next to what they typed, and let
 * them pick. Their typing stays in the form whatever happens.
 */
async function showConflict(view, path) {
  const editor = view.editor;
  if (!editor) return;
  editor.buttonRow.hidden = true;
  editor.conflictSlot.replaceChildren(el('p', { class: 'loading' }, 'This was changed elsewhere. Loading the saved version…'));

  let current = null;
  try {
    const answer = await api('GET', recordUrl(path));
    current = normalizeRecord(answer.data, answer.headers);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (!(err instanceof ApiError && err.status === 404)) {
      const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
      retry.addEventListener('click', () => showConflict(view, path));
      editor.conflictSlot.replaceChildren(el('div', { class: 'message message-warning conflict' },
        el('p', {}, `This was changed elsewhere since you opened it, and the saved version could not be loaded: ${err.message}`),
        actions(retry),
      ));
      announce('This was changed elsewhere. The saved version could not be loaded.', { assertive: true });
      return;
    }
  }
  if (!view.container.isConnected || view.editor !== editor) return;

  // Show the list as it really is now (the editor keeps the typed text).
  if (current) upsert(view, current);
  else view.records = view.records.filter((r) => r.path !== path);
  renderList(view);

  let title;
  if (!current) title = 'This field was deleted elsewhere since you opened it';
  else if (draft.mode === 'create') title = `You already keep something called “${draft.label}”`;
  else title = 'This field was changed elsewhere since you opened it';

  const overwrite = el('button', { type: 'button', class: 'button primary' },
    current ? 'Overwrite with my version' : 'Save my version again');
  const keep = el('button', { type: 'button', class: 'button' },
    current ? 'Keep the saved version' : 'Discard my version');
  const heading = el('h3', { tabindex: '-1' }, title);

  editor.conflictSlot.replaceChildren(el('div', { class: 'message message-warning conflict' },
    heading,
    el('p', {}, 'What you typed is still in the form below. Choose which version to keep.'),
    current ? el('div', { class: 'conflict-current' },
      el('p', { class: 'conflict-label' }, 'Saved in your vault now:'),
      valueNode(current.value),
      el('p', { class: 'record-meta' },
        current.category_label || current.category || '',
        current.updated_at ? ` · Updated ${formatDate(current.updated_at)}` : ''),
    ) : null,
    actions(overwrite, keep),
  ));
  editor.conflictButton = overwrite;
  // The choice is about this path: changing it now would muddle things.
  if (editor.labelField) editor.labelField.control.readOnly = true;

  overwrite.addEventListener('click', () => {
    // The person has now seen the saved version: save over exactly that one
    // (or re-create it if it was deleted).
    if (current) {
      draft.mode = 'edit';
      draft.etag = current.etag;
      save(view, { 'If-Match': current.etag });
    } else {
      draft.mode = 'create';
      draft.etag = null;
      save(view, { 'If-None-Match': '*' });
    }
  });
  keep.addEventListener('click', () => {
    const name = current ? recordTitle(current) : draft ? draft.label : 'it';
    draft = null;
    if (current) upsert(view, current);
    else view.records = view.records.filter((r) => r.path !== path);
    renderList(view);
    closeEditor(view, current ? path : null);
    showNotice(view, current ? `Kept the saved version of ${name}.` : `Discarded your changes to ${name}.`, 'info');
  });

  announce(`${title}. Choose which version to keep.`, { assertive: true });
  focusElement(heading);
}

// --- Deleting -----------------------------------------------------------

function askDelete(view, record, item, note = null) {
  view.notice.replaceChildren();
  const buttons = item.querySelector('.record-actions');
  const slot = item.querySelector('.confirm-slot');
  const question = el('p', { class: 'confirm-question', tabindex: '-1' },
    note ? `${note} ` : '', `Delete ${recordTitle(record)}? This cannot be undone.`);
  const yes = el('button', { type: 'button', class: 'button danger' }, 'Yes, delete');
  const no = el('button', { type: 'button', class: 'button' }, 'Cancel');
  const error = formError();

  buttons.hidden = true;
  slot.replaceChildren(el('div', { class: 'confirm', role: 'group', 'aria-label': `Delete ${recordTitle(record)}` },
    question, error.node, actions(yes, no)));

  no.addEventListener('click', () => {
    slot.replaceChildren();
    buttons.hidden = false;
    focusElement(buttons.querySelector('[data-action="delete"]'));
  });
  yes.addEventListener('click', () => doDelete(view, record, { yes, error }));
  focusElement(question);
}

async function doDelete(view, record, { yes, error }) {
  setBusy(yes, true, 'Deleting…');
  const headers = record.etag ? { 'If-Match': record.etag } : {};
  try {
    await api('DELETE', recordUrl(record.path), { headers });
    if (!view.container.isConnected) return;
    removeAndFocusNeighbour(view, record.path);
    showNotice(view, `Deleted ${recordTitle(record)}.`);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (err instanceof ApiError && err.status === 404) {
      alreadyDeleted(view, record);
      return;
    }
    if (err instanceof ApiError && err.status === 412) {
      await deleteConflict(view, record);
      return;
    }
    setBusy(yes, false);
    const message = err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
    error.show(`Not deleted: ${message}`);
    announce(`Not deleted: ${message}`, { assertive: true });
  }
}

/** Someone else deleted it first: the outcome the person wanted, so say so calmly. */
function alreadyDeleted(view, record) {
  removeAndFocusNeighbour(view, record.path);
  showNotice(view, `${recordTitle(record)} was already deleted.`, 'info');
}

/** The record changed since it was shown: show the new value, ask again. */
async function deleteConflict(view, record) {
  try {
    const answer = await api('GET', recordUrl(record.path));
    if (!view.container.isConnected) return;
    const current = normalizeRecord(answer.data, answer.headers);
    upsert(view, current);
    renderList(view);
    const item = findItem(view, current.path);
    if (item) askDelete(view, current, item, 'This field was changed elsewhere since you opened it; its current value is shown above.');
    announce('This field was changed elsewhere since you opened it. Its current value is shown. Delete it anyway?', { assertive: true });
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (err instanceof ApiError && err.status === 404) {
      alreadyDeleted(view, record);
      return;
    }
    showNotice(view, `Not deleted: ${err.message}`, 'error');
  }
}

function removeAndFocusNeighbour(view, path) {
  const index = view.records.findIndex((r) => r.path === path);
  view.records = view.records.filter((r) => r.path !== path);
  renderList(view);
  // Keep keyboard users near where they were: the next record, else the
  // previous one, else the top of the screen.
  const neighbour = view.records[Math.min(index, view.records.length - 1)];
  const item = neighbour && findItem(view, neighbour.path);
  focusElement(item || view.heading);
}
