// @ts-check
// Unlock / Log in screen (one passphrase form, two titles) and the
// "use your recovery key" form.

import { api, ApiError, Interrupted, retryAfterSeconds } from '../api.js';
import { el, announce, setBusy } from '../dom.js';
import {
  field, formError, passphraseInput, showPassphraseToggle, actions, usernameHint, holdOff,
} from '../form.js';
import { newPassphraseFields } from '../newpassphrase.js';

export function render(container, ctx, route) {
  if (route === 'recover') return renderRecover(container, ctx);
  return renderPassphrase(container, ctx);
}

function renderPassphrase(container, ctx) {
  const sealed = ctx.vault.state === 'sealed';
  const passphrase = field({
    label: 'Passphrase',
    control: passphraseInput({ autocomplete: 'current-password', name: 'passphrase' }),
  });
  const toggle = showPassphraseToggle([passphrase.control]);
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, sealed ? 'Unlock' : 'Log in');

  const form = el('form', { class: 'form', novalidate: true },
    usernameHint(),
    passphrase.root,
    toggle.root,
    error.node,
    actions(submit),
  );

  container.append(
    el('h1', {}, sealed ? 'Unlock your vault' : 'Log in'),
    el('p', { class: 'lead' }, sealed
      ? 'Your vault is locked. Enter your passphrase to unlock it.'
      : 'Enter your passphrase to open your vault.'),
    form,
    el('p', { class: 'aside-link' }, el('a', { href: '#/recover' }, 'Forgot your passphrase? Use your recovery key')),
  );

  passphrase.control.addEventListener('input', () => passphrase.clearError());

  const attempt = attemptHandler(ctx, container, {
    submit,
    error,
    busyLabel: sealed ? 'Unlocking…' : 'Logging in…',
    wrongMessage: 'That passphrase did not open the vault.',
    focusOnWrong: passphrase.control,
    // Logging in to a running vault needs no comment; unlocking one does.
    successMessage: sealed ? 'Vault unlocked.' : null,
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.clear();
    if (!passphrase.control.value) {
      passphrase.setError('Enter your passphrase.');
      passphrase.control.focus();
      announce('Enter your passphrase.', { assertive: true });
      return;
    }
    attempt.run({ passphrase: passphrase.control.value }, () => {
      passphrase.control.value = '';
    });
  });

  return attempt.cleanup;
}

function renderRecover(container, ctx) {
  const sealed = ctx.vault.state === 'sealed';
  const keyField = field({
    label: 'Recovery key',
    hint: 'It starts with “vrmrk-” and was shown once, when you created your vault.',
    control: el('input', {
      type: 'text',
      name: 'recovery-key',
      class: 'mono',
      autocomplete: 'off',
      autocapitalize: 'none',
      autocorrect: 'off',
      spellcheck: 'false',
      required: true,
    }),
  });
  const passphrase = newPassphraseFields({ label: 'New passphrase', repeatLabel: 'Repeat the new passphrase' });
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Unlock and set new passphrase');

  const form = el('form', { class: 'form', novalidate: true },
    keyField.root,
    ...passphrase.nodes,
    error.node,
    actions(submit),
  );

  container.append(
    el('h1', {}, 'Use your recovery key'),
    el('p', { class: 'lead' }, 'Your recovery key opens your vault and lets you choose a new passphrase. Your old passphrase will stop working.'),
    form,
    el('p', { class: 'aside-link' }, el('a', { href: sealed ? '#/unlock' : '#/login' }, 'Back to passphrase')),
  );

  keyField.control.addEventListener('input', () => keyField.clearError());

  const attempt = attemptHandler(ctx, container, {
    submit,
    error,
    busyLabel: 'Unlocking…',
    wrongMessage: 'That recovery key did not open the vault. Check it for typing mistakes.',
    focusOnWrong: keyField.control,
    successMessage: 'Your new passphrase is set; the old one no longer works. Your recovery key still works — keep it safe.',
    newPassphrase: passphrase,
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.clear();
    keyField.clearError();
    // People copy keys with stray spaces or line breaks; those are never
    // part of the key.
    const key = keyField.control.value.replace(/\s+/g, '');
    if (!key) {
      keyField.setError('Enter your recovery key.');
      keyField.control.focus();
      announce('Enter your recovery key.', { assertive: true });
      return;
    }
    const bad = passphrase.validate();
    if (bad) {
      announce('Please check the new passphrase fields.', { assertive: true });
      bad.focus();
      return;
    }
    attempt.run({ recovery_key: key, new_passphrase: passphrase.value }, () => {
      keyField.control.value = '';
      passphrase.clear();
    });
  });

  return attempt.cleanup;
}

/**
 * Shared handling of POST /api/v1/session: busy state, wrong secret,
 * rate limiting (429 + Retry-After) and success.
 *   successMessage - shown on the next screen, if any
 *   newPassphrase  - the new-passphrase fields, for a "too weak" answer
 */
function attemptHandler(ctx, container, {
  submit, error, busyLabel, wrongMessage, focusOnWrong, successMessage = null, newPassphrase = null,
}) {
  let stopWaiting = () => {};

  function showError(message) {
    error.show(message);
    announce(message, { assertive: true });
  }

  async function run(body, clearSecrets) {
    setBusy(submit, true, busyLabel);
    announce(busyLabel);
    let blocked = false;
    try {
      const { data } = await api('POST', '/api/v1/session', { body, allow401: true });
      clearSecrets();
      ctx.sessionStarted(data || {});
      if (successMessage) ctx.flash(successMessage, 'success');
      ctx.navigate(ctx.takeReturnRoute());
    } catch (err) {
      if (err instanceof Interrupted || !container.isConnected) return;
      if (!(err instanceof ApiError)) {
        showError('Something unexpected went wrong. Try again.');
      } else if (err.status === 401) {
        showError(wrongMessage);
        focusOnWrong.focus();
        focusOnWrong.select();
      } else if (err.code === 'weak_passphrase' && newPassphrase) {
        newPassphrase.setError(err.message);
        newPassphrase.inputs[0].focus();
        announce(err.message, { assertive: true });
      } else if (err.status === 429) {
        showError(err.message);
        blocked = true;
        setBusy(submit, false);
        focusOnWrong.focus();
        stopWaiting = holdOff(submit, retryAfterSeconds(err.headers), () => error.clear());
      } else {
        showError(err.message);
      }
    } finally {
      if (!blocked) setBusy(submit, false);
    }
  }

  return {
    run,
    cleanup() {
      stopWaiting();
    },
  };
}
