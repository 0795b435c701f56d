// Setup screen: choose the passphrase, then see the recovery key once.

import { api, ApiError, Interrupted } from '../api.js';
import { el, announce, setBusy, messageBox, copyText } from '../dom.js';
import { formError, checkbox, actions } from '../form.js';
import { newPassphraseFields } from '../newpassphrase.js';

// The recovery key is kept only here, in memory, while it is on screen, so
// that pressing Back or a stray hash change does not make it vanish before
// the person saved it. It is never written to any storage and is dropped
// as soon as they continue.
let recoveryKey = null;

export function render(container, ctx) {
  if (recoveryKey) return renderRecoveryKey(container, ctx);
  return renderForm(container, ctx);
}

function renderForm(container, ctx) {
  const passphrase = newPassphraseFields({ label: 'Passphrase' });
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Create my vault');

  const form = el('form', { class: 'form', novalidate: true },
    ...passphrase.nodes,
    error.node,
    actions(submit),
  );

  container.append(
    el('h1', {}, 'Set up your vault'),
    el('p', { class: 'lead' }, 'Choose a passphrase. It protects everything you keep here, and you will type it to unlock your vault.'),
    el('p', {}, 'A passphrase of a few unrelated words is easier to remember than a short password and harder to guess.'),
    form,
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    const bad = passphrase.validate();
    if (bad) {
      announce('Please check the passphrase fields.', { assertive: true });
      bad.focus();
      return;
    }

    // Key derivation on the server takes a moment.
    setBusy(submit, true, 'Creating your vault…');
    announce('Creating your vault…');
    try {
      const { data } = await api('POST', '/api/v1/setup', { body: { passphrase: passphrase.value } });
      if (!data || typeof data.recovery_key !== 'string') {
        throw new ApiError(0, 'bad_answer', 'The vault was created, but it did not send a recovery key. Log in with your passphrase; you can set things right later.');
      }
      passphrase.clear();
      recoveryKey = data.recovery_key;
      ctx.sessionStarted(data);
      ctx.setRecoveryKeyShowing(true);
      // Same route, re-rendered: render() now shows the key.
      ctx.navigate('setup');
    } catch (err) {
      if (err instanceof Interrupted || !container.isConnected) return;
      if (err instanceof ApiError && err.status === 409) {
        // Someone already set this vault up (another tab?): go to log in.
        await ctx.refreshStatus().catch(() => {});
        ctx.flash(err.message, 'warning');
        ctx.navigate(ctx.vault.state === 'sealed' ? 'unlock' : 'login');
        return;
      }
      const message = err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.';
      if (err instanceof ApiError && (err.status === 400 || err.status === 422)) {
        passphrase.setError(message);
        passphrase.inputs[0].focus();
      } else {
        error.show(message);
      }
      announce(message, { assertive: true });
    } finally {
      setBusy(submit, false);
    }
  });
}

function renderRecoveryKey(container, ctx) {
  const keyText = el('p', { class: 'recovery-key', id: 'recovery-key' }, recoveryKey);
  const copyButton = el('button', { type: 'button', class: 'button' }, 'Copy');
  const copyStatus = el('p', { class: 'hint copy-status' });
  const continueButton = el('button', { type: 'button', class: 'button primary', disabled: true }, 'Continue');
  const saved = checkbox({
    label: 'I have saved my recovery key',
    onchange: (event) => {
      continueButton.disabled = !event.target.checked;
    },
  });

  // Leaving the page now would lose the key for good; ask the browser to
  // warn first.
  const warnBeforeLeaving = (event) => {
    event.preventDefault();
    event.returnValue = '';
  };
  window.addEventListener('beforeunload', warnBeforeLeaving);

  copyButton.addEventListener('click', async () => {
    const ok = await copyText(recoveryKey, keyText);
    const message = ok
      ? 'Recovery key copied. Paste it somewhere safe, such as a password manager, or write it down.'
      : 'Could not copy automatically. The key is selected: copy it by hand, or write it down.';
    copyStatus.textContent = message;
    announce(message);
  });

  continueButton.addEventListener('click', () => {
    if (!saved.input.checked) return;
    recoveryKey = null;
    window.removeEventListener('beforeunload', warnBeforeLeaving);
    ctx.setRecoveryKeyShowing(false);
    // The session may have gone idle while the key was on screen.
    ctx.flash(ctx.isLoggedIn() ? 'Your vault is ready.' : 'Your vault is ready. Log in with your passphrase to start.', 'success');
    ctx.navigate('records');
  });

  container.append(
    el('h1', {}, 'Save your recovery key'),
    messageBox('Your vault has been created.', 'success'),
    el('p', { class: 'lead' }, 'This key opens your vault if you forget your passphrase. It is shown only now. Write it down and keep it somewhere safe.'),
    el('div', { class: 'key-box' },
      el('p', { class: 'key-label' }, 'Your recovery key'),
      keyText,
      actions(copyButton),
      copyStatus,
    ),
    el('p', {}, 'Anyone who has this key can open your vault, so do not share it or keep it next to your server.'),
    saved.root,
    actions(continueButton),
  );

  return () => window.removeEventListener('beforeunload', warnBeforeLeaving);
}
