// @ts-check
// Form building blocks with the accessibility wiring done once:
// a real <label>, a hint and an error message tied to the control with
// aria-describedby, and aria-invalid while the error is shown.

import { el, uid, announce } from './dom.js';

/**
 * A labelled control.
 *   const f = field({ label: 'Passphrase', control: el('input', {...}), hint: '...' });
 *   form.append(f.root); f.setError('...'); f.control.value
 * `after` is feedback shown under the control (e.g. passphrase strength);
 * give it an id and it becomes part of the control's description too.
 */
export function field({ label, control, hint = null, after = null }) {
  const id = control.id || uid('field');
  control.id = id;
  const hintEl = hint ? el('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errorEl = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const root = el('div', { class: 'field' },
    el('label', { for: id }, label),
    hintEl,
    control,
    after,
    errorEl,
  );
  describe();

  function describe() {
    const ids = [];
    if (hintEl) ids.push(hintEl.id);
    if (after && after.id) ids.push(after.id);
    if (!errorEl.hidden) ids.push(errorEl.id);
    if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
    else control.removeAttribute('aria-describedby');
  }

  return {
    root,
    control,
    hintEl,
    setError(message) {
      errorEl.textContent = message;
      errorEl.hidden = false;
      control.setAttribute('aria-invalid', 'true');
      describe();
    },
    clearError() {
      errorEl.textContent = '';
      errorEl.hidden = true;
      control.removeAttribute('aria-invalid');
      describe();
    },
  };
}

/** A checkbox with its label after it (the usual reading order). */
export function checkbox({ label, checked = false, hint = null, onchange = null }) {
  const id = uid('check');
  const input = el('input', { type: 'checkbox', id, checked, onchange });
  const hintEl = hint ? el('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const root = el('div', { class: 'field field-check' },
    el('div', { class: 'check-row' }, input, el('label', { for: id }, label)),
    hintEl,
  );
  return { root, input };
}

/** A radio button with its label after it; put a set of them in a fieldset(). */
export function radio({ name, value, label, checked = false, hint = null }) {
  const id = uid('radio');
  const input = el('input', { type: 'radio', id, name, value, checked });
  const hintEl = hint ? el('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const root = el('div', { class: 'field field-check' },
    el('div', { class: 'check-row' }, input, el('label', { for: id }, label)),
    hintEl,
  );
  return { root, input };
}

/**
 * Controls that belong together (checkboxes, radio buttons) under a legend
 * that names them; the hint and an error message describe the group.
 */
export function fieldset({ legend, hint = null, children = [], className = '' }) {
  const id = uid('group');
  const hintEl = hint ? el('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errorEl = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const body = el('div', { class: 'fieldset-body' }, children);
  const root = el('fieldset', { class: `fieldset ${className}`.trim(), id },
    el('legend', {}, legend),
    hintEl,
    body,
    errorEl,
  );
  describe();

  function describe() {
    const ids = [];
    if (hintEl) ids.push(hintEl.id);
    if (!errorEl.hidden) ids.push(errorEl.id);
    if (ids.length) root.setAttribute('aria-describedby', ids.join(' '));
    else root.removeAttribute('aria-describedby');
  }

  return {
    root,
    body,
    hintEl,
    setError(message) {
      errorEl.textContent = message;
      errorEl.hidden = false;
      describe();
    },
    clearError() {
      errorEl.textContent = '';
      errorEl.hidden = true;
      describe();
    },
  };
}

/** A passphrase input (type=password) with sensible attributes. */
export function passphraseInput({ autocomplete, name }) {
  return el('input', {
    type: 'password',
    name,
    autocomplete,
    autocapitalize: 'none',
    autocorrect: 'off',
    spellcheck: 'false',
    required: true,
  });
}

/** "Show passphrase" checkbox that reveals the given inputs. */
export function showPassphraseToggle(inputs) {
  return checkbox({
    label: 'Show passphrase',
    onchange: (event) => {
      for (const input of inputs) input.type = event.target.checked ? 'text' : 'password';
    },
  });
}

/**
 * Password managers look for a user name next to a password. The vault has
 * a single owner, so offer a fixed, invisible one.
 */
export function usernameHint() {
  return el('input', {
    type: 'text',
    name: 'username',
    autocomplete: 'username',
    value: 'vrm-vault',
    class: 'visually-hidden',
    tabindex: '-1',
    'aria-hidden': 'true',
    readonly: true,
  });
}

/** Error paragraph(s) for problems that concern the whole form. */
export function formError() {
  const node = el('div', { class: 'message message-error', hidden: true });
  return {
    node,
    /** One message, or several paragraphs as an array. */
    show(message) {
      const paragraphs = Array.isArray(message) ? message : [message];
      node.replaceChildren(...paragraphs.map((text) => el('p', {}, text)));
      node.hidden = false;
    },
    clear() {
      node.replaceChildren();
      node.hidden = true;
    },
  };
}

/** Visible button row. */
export function actions(...buttons) {
  return el('div', { class: 'actions' }, ...buttons);
}

/**
 * After "too many attempts": keep the button disabled until the vault will
 * listen again (the fields stay usable so the person can get ready).
 * Returns a function that stops waiting, for when the screen goes away.
 */
export function holdOff(button, seconds, onReady = () => {}) {
  button.disabled = true;
  const timer = window.setTimeout(() => {
    button.disabled = false;
    onReady();
    announce('You can try again now.');
  }, (seconds || 5) * 1000);
  return () => window.clearTimeout(timer);
}
