// @ts-check
// Pieces shared by the screens that list things as cards (brands, sharing):
// loading a list with a retry, a notice above a list, asking before
// something that cannot be undone, and label/value facts.

import { api, ApiError, Interrupted } from './api.js';
import { el, messageBox, focusElement, announce } from './dom.js';
import { formError, actions } from './form.js';

/** The sentence for an error, whatever was thrown. */
export function errorText(err) {
  return err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
}

/** Show a message in a notice slot, and read it out. */
export function showNotice(host, text, kind = 'success') {
  const box = messageBox(text, kind);
  host.replaceChildren(box);
  announce(text, { assertive: kind === 'error' });
  return box;
}

/**
 * Load a list into its host, with a retry button when that fails.
 * Resolves to the items, or null when nothing could be shown (the screen
 * went away, the session ended, or the error is on screen).
 *   view - { container }: stop touching the page once it is gone
 */
export async function loadList(view, host, url, key, renderItems, what) {
  host.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', url);
    if (!view.container.isConnected) return null;
    const items = (data && Array.isArray(data[key])) ? data[key] : [];
    host.replaceChildren(...renderItems(items));
    return items;
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return null;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => loadList(view, host, url, key, renderItems, what));
    const message = `Could not load ${what}. ${errorText(err)}`;
    host.replaceChildren(messageBox(message, 'error'), actions(retry));
    announce(message, { assertive: true });
    return null;
  } finally {
    host.removeAttribute('aria-busy');
  }
}

/**
 * Ask in place of an item's buttons (its .card-actions) before something
 * that cannot be undone; the question goes into the item's .confirm-slot.
 * onYes gets { yes, error } and returns once done.
 */
export function confirmInline(item, { question, explanation, yesLabel, onYes }) {
  const buttons = item.querySelector('.card-actions');
  const slot = item.querySelector('.confirm-slot');
  const questionEl = el('p', { class: 'confirm-question', tabindex: '-1' }, question);
  const yes = el('button', { type: 'button', class: 'button danger' }, yesLabel);
  const no = el('button', { type: 'button', class: 'button' }, 'Cancel');
  const error = formError();
  buttons.hidden = true;
  slot.replaceChildren(el('div', { class: 'confirm', role: 'group', 'aria-label': question },
    questionEl,
    explanation ? el('p', {}, explanation) : null,
    error.node,
    actions(yes, no),
  ));
  no.addEventListener('click', () => {
    slot.replaceChildren();
    buttons.hidden = false;
    focusElement(buttons.querySelector('button, a[href]'));
  });
  yes.addEventListener('click', () => onYes({ yes, error }));
  announce(question, { assertive: true });
  focusElement(questionEl);
}

/** A <dt>/<dd> pair for a .facts list; nothing when there is no value. */
export function fact(term, value) {
  if (value === null || value === undefined || value === '') return null;
  return [el('dt', {}, term), el('dd', {}, value)];
}
