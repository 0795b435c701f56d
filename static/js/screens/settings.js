// Settings: changing the passphrase, and replacing the key the vault signs
// brands' access tokens and agreement receipts with.

import { api, ApiError, Interrupted, retryAfterSeconds } from '../api.js';
import { el, announce, setBusy, focusElement, messageBox } from '../dom.js';
import {
  field, formError, passphraseInput, actions, usernameHint, holdOff,
} from '../form.js';
import { newPassphraseFields } from '../newpassphrase.js';

export function render(container, ctx) {
  const current = field({
    label: 'Current passphrase',
    control: passphraseInput({ autocomplete: 'current-password', name: 'current-passphrase' }),
  });
  const next = newPassphraseFields({
    label: 'New passphrase',
    repeatLabel: 'Repeat the new passphrase',
    revealAlso: [current.control],
  });
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Change passphrase');

  const form = el('form', { class: 'form', novalidate: true, 'aria-labelledby': 'change-passphrase' },
    usernameHint(),
    current.root,
    ...next.nodes,
    error.node,
    actions(submit),
  );

  container.append(
    el('h1', {}, 'Settings'),
    el('h2', { id: 'change-passphrase' }, 'Change passphrase'),
    el('p', {}, 'From now on you will use the new passphrase to log in and to unlock your vault. Your recovery key keeps working.'),
    form,
    signingKeySection(),
  );

  current.control.addEventListener('input', () => current.clearError());

  let stopWaiting = () => {};

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    const bad = checkFields(current, next);
    if (bad) {
      announce('Please check the passphrase fields.', { assertive: true });
      bad.focus();
      return;
    }

    // The vault derives a key from each passphrase on purpose slowly.
    setBusy(submit, true, 'Changing…');
    announce('Changing your passphrase…');
    let blocked = false;
    try {
      await api('PUT', '/api/v1/passphrase', {
        body: { current_passphrase: current.control.value, new_passphrase: next.value },
        checksSecret: true,
      });
      if (!container.isConnected) return;
      current.control.value = '';
      next.clear();
      const box = ctx.showFlash('Your passphrase has been changed. Use the new one from now on; your recovery key still works.', 'success');
      // Bring the confirmation into view and start keyboard users from it.
      focusElement(box);
    } catch (err) {
      if (err instanceof Interrupted || !container.isConnected) return;
      const message = err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
      if (err instanceof ApiError && err.code === 'invalid_credentials') {
        showFieldError(current, 'That is not your current passphrase.');
      } else if (err instanceof ApiError && err.code === 'weak_passphrase') {
        next.setError(message);
        next.inputs[0].focus();
        announce(message, { assertive: true });
      } else if (err instanceof ApiError && err.status === 429) {
        error.show(message);
        announce(message, { assertive: true });
        blocked = true;
        setBusy(submit, false);
        stopWaiting = holdOff(submit, retryAfterSeconds(err.headers), () => error.clear());
      } else {
        error.show(`Not changed: ${message}`);
        announce(`Not changed: ${message}`, { assertive: true });
      }
    } finally {
      if (!blocked) setBusy(submit, false);
    }
  });

  return () => stopWaiting();
}

/** Check before sending; returns the first input to fix, or null. */
function checkFields(current, next) {
  current.clearError();
  if (!current.control.value) {
    current.setError('Enter your current passphrase.');
    return current.control;
  }
  const bad = next.validate();
  if (bad) return bad;
  if (next.value === current.control.value) {
    next.setError('The new passphrase is the same as the current one. Choose a different one.');
    return next.inputs[0];
  }
  return null;
}

function showFieldError(fieldObj, message) {
  fieldObj.setError(message);
  fieldObj.control.focus();
  fieldObj.control.select();
  announce(message, { assertive: true });
}

// --- Signing key ------------------------------------------------------------

function signingKeySection() {
  const result = el('div', { class: 'notice-slot' });
  const rotate = el('button', { type: 'button', class: 'button' }, 'Replace the signing key…');
  const buttons = actions(rotate);
  const slot = el('div', { class: 'confirm-slot' });

  rotate.addEventListener('click', () => {
    result.replaceChildren();
    const question = el('p', { class: 'confirm-question', tabindex: '-1' }, 'Replace the signing key now?');
    const yes = el('button', { type: 'button', class: 'button primary' }, 'Yes, replace it');
    const no = el('button', { type: 'button', class: 'button' }, 'Cancel');
    buttons.hidden = true;
    slot.replaceChildren(el('div', { class: 'confirm confirm-warning', role: 'group', 'aria-label': 'Replace the signing key?' },
      question,
      el('p', {}, 'New access tokens and receipts are signed with the new key. Brands find it in your vault’s published key list on their own.'),
      actions(yes, no),
    ));
    const close = () => {
      slot.replaceChildren();
      buttons.hidden = false;
    };
    no.addEventListener('click', () => {
      close();
      focusElement(rotate);
    });
    yes.addEventListener('click', async () => {
      setBusy(yes, true, 'Replacing…');
      let box;
      try {
        const { data } = await api('POST', '/api/v1/signing-keys/rotate');
        box = messageBox(`The signing key has been replaced. New key: ${data && data.kid ? data.kid : 'created'}.`, 'success');
      } catch (err) {
        if (err instanceof Interrupted || !slot.isConnected) return;
        box = messageBox(`Not replaced: ${err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.'}`, 'error');
      }
      close();
      result.replaceChildren(box);
      announce(box.textContent, { assertive: box.classList.contains('message-error') });
      focusElement(box);
    });
    focusElement(question);
  });

  return el('section', { 'aria-labelledby': 'signing-key-heading' },
    el('h2', { id: 'signing-key-heading' }, 'Signing key'),
    el('p', {}, 'Your vault signs the access tokens it gives brands and the receipts of their agreements, so brands can check they come from your vault. Replace the key if you think it was copied.'),
    result,
    buttons,
    slot,
  );
}
