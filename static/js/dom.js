// @ts-check
// Small DOM helpers. Everything is built with createElement/textContent so
// that values coming from the vault (which are untrusted) can never be
// interpreted as HTML.

/**
 * Create an element.
 *   el('button', { type: 'button', class: 'primary', onclick: fn }, 'Save')
 * - `class` sets className, `text` sets textContent
 * - `on*` keys with a function value become event listeners
 * - `true` sets a boolean attribute, `false`/null/undefined leave it out
 * - children may be strings, nodes, arrays, or null/false (skipped)
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') {
      node.className = value;
    } else if (key === 'text') {
      node.textContent = value;
    } else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      // Properties, not attributes, so later user edits are reflected.
      node[key] = value;
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      append(node, child);
    } else if (child instanceof Node) {
      node.appendChild(child);
    } else {
      node.appendChild(document.createTextNode(String(child)));
    }
  }
}

let idCounter = 0;
/** Unique id for label/aria wiring. */
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Text that only screen readers read (e.g. to name an "Edit" button). */
export function srOnly(text) {
  return el('span', { class: 'visually-hidden' }, text);
}

/**
 * A visible message box. Not a live region itself: announcements go through
 * the page-wide live regions (see announce()), which exist from page load
 * and are therefore reliably read out.
 */
export function messageBox(text, kind = 'info') {
  return el('div', { class: `message message-${kind}` }, el('p', {}, text));
}

/** Move keyboard focus somewhere that is not normally focusable. */
export function focusElement(node) {
  if (!node) return;
  if (!node.hasAttribute('tabindex') && !isFocusable(node)) {
    node.setAttribute('tabindex', '-1');
  }
  node.focus({ preventScroll: false });
}

function isFocusable(node) {
  return node.matches('a[href], button, input, select, textarea, [tabindex]');
}

/**
 * Announce a message to screen readers via the live regions in index.html.
 * Clearing first and setting after a short delay makes the same message be
 * read again when it repeats.
 */
export function announce(text, { assertive = false } = {}) {
  const region = document.getElementById(assertive ? 'live-assertive' : 'live-polite');
  if (!region) return;
  region.textContent = '';
  window.setTimeout(() => {
    region.textContent = text;
  }, 60);
}

// What a busy button showed before, node for node: its text alone would turn a part meant
// only for screen readers (srOnly) into visible text when it comes back.
const labelsBeforeBusy = new WeakMap();

/** Show a button as busy: disabled, with a progress label. */
export function setBusy(button, busy, busyLabel) {
  if (busy) {
    if (!labelsBeforeBusy.has(button)) labelsBeforeBusy.set(button, [...button.childNodes]);
    if (!button.dataset.label) button.dataset.label = button.textContent;
    // A focused button that gets disabled drops focus to <body>; remember
    // it so focus can come back when the work is done.
    if (document.activeElement === button) button.dataset.hadFocus = 'true';
    button.textContent = busyLabel;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  } else {
    const before = labelsBeforeBusy.get(button);
    if (before) button.replaceChildren(...before);
    else if (button.dataset.label) button.textContent = button.dataset.label;
    labelsBeforeBusy.delete(button);
    delete button.dataset.label;
    button.disabled = false;
    button.removeAttribute('aria-busy');
    const lostFocus = !document.activeElement || document.activeElement === document.body;
    if (button.dataset.hadFocus && lostFocus && button.isConnected) button.focus();
    delete button.dataset.hadFocus;
  }
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Human date for an RFC 3339 timestamp; falls back to the raw text. */
export function formatDate(value) {
  const date = new Date(value);
  if (!value || Number.isNaN(date.getTime())) return String(value ?? '');
  return dateFormat.format(date);
}

/** A <time> element with a readable label and the machine value. */
export function timeEl(value) {
  return el('time', { datetime: value }, formatDate(value));
}

/**
 * Copy text to the clipboard. navigator.clipboard only exists on secure
 * origins (HTTPS or localhost); a home server reached over plain HTTP on the
 * local network falls back to selecting the text and execCommand('copy').
 */
export async function copyText(text, node) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the selection-based copy
    }
  }
  const selection = window.getSelection();
  const range = document.createRange();
  range.selectNodeContents(node);
  selection.removeAllRanges();
  selection.addRange(range);
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}
