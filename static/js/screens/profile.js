// @ts-check
// The profile part of "My data": sections of ordinary fields (About you,
// Contact, Address, Preferences, Payment hints), each section a small form
// with its own Save button, as on any account page. Every field is one
// record at a well-known path (see ../profile.js); the person never sees it.

import { api, ApiError, Interrupted, recordUrl } from '../api.js';
import { el, announce, setBusy, focusElement, messageBox } from '../dom.js';
import { field, fieldset, actions } from '../form.js';
import { normalizeRecord } from '../records.js';
import { SECTIONS, valueFromTyped, typedFromValue, isChanged } from '../profile.js';

/** @typedef {import('../profile.js').ProfileField} ProfileField */
/** @typedef {import('../profile.js').ProfileSection} ProfileSection */

// What the person typed and has not saved, by record path. Kept in module
// memory (never in storage) so it survives the session ending mid-typing,
// like the editor's draft in records.js.
/** @type {Map<string, Record<string, string>>} */
const drafts = new Map();

export function forgetProfileDrafts() {
  drafts.clear();
}

export function hasUnsavedProfileTyping() {
  return drafts.size > 0;
}

/**
 * Draw the profile sections into `host`.
 * @param {HTMLElement} host
 * @param {Map<string, any>} stored records by path (normalised, with etag)
 */
export function renderProfile(host, stored) {
  const sections = SECTIONS.map((section) => renderSection(section, stored));
  host.replaceChildren(...sections);
}

/**
 * @param {ProfileSection} section
 * @param {Map<string, any>} stored
 */
function renderSection(section, stored) {
  const headingId = `profile-${section.id}`;
  const status = el('div', { class: 'profile-status', 'aria-live': 'polite' });
  // Every section has a Save button: its accessible name says which (setBusy
  // swaps the visible text, so the name lives in aria-label).
  const saveButton = el('button', { type: 'submit', class: 'button primary', 'aria-label': `Save ${section.title.toLowerCase()}` }, 'Save');
  /** @type {{ def: ProfileField, controls: Record<string, any>, group: any }[]} */
  const rows = [];
  const body = [];

  for (const def of section.fields) {
    const record = stored.get(def.path);
    const restored = drafts.get(def.path);
    const typed = restored || typedFromValue(def, record ? record.value : undefined);
    /** @type {Record<string, any>} */
    const controls = {};
    const inputs = def.inputs.map((input) => {
      const control = input.type === 'textarea'
        ? el('textarea', { name: input.key, rows: '2', autocomplete: input.autocomplete || null })
        : el('input', {
          type: input.type || 'text',
          name: input.key,
          autocomplete: input.autocomplete || null,
          inputmode: input.inputmode || null,
          spellcheck: input.type === 'email' ? 'false' : null,
          autocapitalize: input.type === 'email' ? 'none' : null,
        });
      control.value = typed[input.key] || '';
      const f = field({ label: input.label, hint: input.hint || null, control });
      controls[input.key] = f;
      control.addEventListener('input', () => {
        f.clearError();
        status.replaceChildren();
        rememberTyping(def, controls, stored);
      });
      return f.root;
    });
    let group = null;
    if (def.block) {
      group = fieldset({ legend: def.label, hint: def.hint || null, children: inputs, className: 'profile-block' });
      body.push(group.root);
    } else {
      body.push(...inputs);
    }
    rows.push({ def, controls, group });
  }

  const form = el('form', { class: 'form profile-form', novalidate: true, 'data-section': section.id },
    body,
    actions(saveButton),
    status,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    saveSection(section, rows, stored, { saveButton, status });
  });

  return el('section', { class: 'profile-section', 'aria-labelledby': headingId },
    el('h2', { id: headingId }, section.title),
    el('p', { class: 'hint' }, section.intro),
    drafts.size && section.fields.some((f) => drafts.has(f.path))
      ? messageBox('What you typed before is kept here. Check it and press Save.', 'warning')
      : null,
    form,
  );
}

/** The typed text of one field's inputs. */
function typedOf(def, controls) {
  /** @type {Record<string, string>} */
  const typed = {};
  for (const input of def.inputs) typed[input.key] = controls[input.key].control.value;
  return typed;
}

function rememberTyping(def, controls, stored) {
  const typed = typedOf(def, controls);
  const record = stored.get(def.path);
  if (!isChanged(def, typed, record ? record.value : undefined)) drafts.delete(def.path);
  else drafts.set(def.path, typed);
}

/**
 * Check every field of the section, then write the ones that changed, each
 * guarded by its version so nothing saved on another device is overwritten
 * unseen. Refusals sit beside the field they are about.
 */
async function saveSection(section, rows, stored, { saveButton, status }) {
  status.replaceChildren();
  let firstBad = null;
  for (const { def, controls } of rows) {
    for (const input of def.inputs) {
      const f = controls[input.key];
      f.clearError();
      const problem = input.check ? input.check(f.control.value) : null;
      if (problem) {
        f.setError(problem);
        if (!firstBad) firstBad = { f, problem };
      }
    }
  }
  if (firstBad) {
    focusElement(firstBad.f.control);
    announce(`Not saved: ${firstBad.problem}`, { assertive: true });
    return;
  }

  const changed = rows.filter(({ def, controls }) => {
    const record = stored.get(def.path);
    return isChanged(def, typedOf(def, controls), record ? record.value : undefined);
  });
  if (changed.length === 0) {
    status.replaceChildren(messageBox('Nothing has changed here.', 'info'));
    announce('Nothing has changed here.');
    return;
  }

  setBusy(saveButton, true, 'Saving…');
  let failed = null;
  try {
    for (const row of changed) {
      const problem = await writeField(row, stored);
      if (problem && !failed) failed = problem;
    }
  } finally {
    setBusy(saveButton, false);
  }
  if (failed) {
    status.replaceChildren(messageBox(`Some of this was not saved. ${failed.message}`, 'error'));
    focusElement(failed.control);
    announce(`Not saved: ${failed.message}`, { assertive: true });
    return;
  }
  const text = `Saved ${section.saved}.`;
  status.replaceChildren(messageBox(text, 'success'));
  announce(text);
}

/**
 * Write (or remove, when emptied) one field. Returns null when done, or
 * what went wrong and where to put focus.
 */
async function writeField({ def, controls, group }, stored) {
  const value = valueFromTyped(def, typedOf(def, controls));
  const record = stored.get(def.path);
  const firstControl = controls[def.inputs[0].key];
  const target = group || firstControl;
  try {
    if (value === undefined) {
      if (record) {
        await api('DELETE', recordUrl(def.path), { headers: record.etag ? { 'If-Match': record.etag } : {} });
      }
      stored.delete(def.path);
    } else {
      const headers = record && record.etag ? { 'If-Match': record.etag } : { 'If-None-Match': '*' };
      const answer = await api('PUT', recordUrl(def.path), { body: { value }, headers });
      const saved = answer.data && answer.data.path
        ? normalizeRecord(answer.data, answer.headers)
        : normalizeRecord({ path: def.path, value }, answer.headers);
      stored.set(def.path, saved);
    }
    drafts.delete(def.path);
    return null;
  } catch (err) {
    if (err instanceof Interrupted) throw err;
    if (err instanceof ApiError && (err.status === 412 || err.status === 404)) {
      const message = await changedElsewhere(def, stored);
      target.setError(message);
      return { message, control: firstControl.control };
    }
    const message = err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
    target.setError(message);
    return { message, control: firstControl.control };
  }
}

/**
 * Someone changed this field on another device since the page was loaded.
 * Learn what it says now (so the next Save replaces exactly that) and tell
 * the person, keeping what they typed.
 */
async function changedElsewhere(def, stored) {
  try {
    const answer = await api('GET', recordUrl(def.path));
    const current = normalizeRecord(answer.data, answer.headers);
    stored.set(def.path, current);
    const shown = Object.values(typedFromValue(def, current.value)).filter(Boolean).join(', ');
    return `This was changed on another device meanwhile; it now says “${shown}”. Press Save again to replace it with what you typed.`;
  } catch (err) {
    if (err instanceof Interrupted) throw err;
    if (err instanceof ApiError && err.status === 404) {
      stored.delete(def.path);
      return 'This was removed on another device meanwhile. Press Save again to keep what you typed.';
    }
    return `This was changed on another device meanwhile, and could not be reloaded: ${err.message}`;
  }
}
