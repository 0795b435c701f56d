// @ts-check
// Setup screen: choose the passphrase, then see the recovery key once. Or
// restore a backup into this empty vault (#/restore).

import { api, apiUpload, ApiError, Interrupted } from '../api.js';
import { el, announce, setBusy, messageBox } from '../dom.js';
import { recoveryKeyBox } from '../recoverykey.js';
import {
  field, fieldset, radio, formError, checkbox, actions, passphraseInput, showPassphraseToggle, usernameHint,
} from '../form.js';
import { newPassphraseFields } from '../newpassphrase.js';

// The recovery key is kept only here, in memory, while it is on screen, so
// that pressing Back or a stray hash change does not make it vanish before
// the person saved it. It is never written to any storage and is dropped
// as soon as they continue.
let recoveryKey = null;

export function render(container, ctx, route) {
  if (recoveryKey) return renderRecoveryKey(container, ctx);
  if (route === 'restore') return renderRestore(container, ctx);
  return renderForm(container, ctx);
}

function renderForm(container, ctx) {
  const passphrase = newPassphraseFields({ label: 'Passphrase' });
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Create my vault');

  const form = el('form', { class: 'form', novalidate: true },
    usernameHint(),
    ...passphrase.nodes,
    error.node,
    actions(submit),
  );

  container.append(
    el('h1', {}, 'Set up your vault'),
    el('p', { class: 'lead' }, 'Choose a passphrase. It protects everything you keep here, and you will type it to unlock your vault.'),
    el('p', {}, 'A passphrase of a few unrelated words is easier to remember than a short password and harder to guess.'),
    form,
    el('section', { 'aria-labelledby': 'restore-offer-heading' },
      el('h2', { id: 'restore-offer-heading' }, 'Have a backup?'),
      el('p', {}, 'If you made a backup of a vault before, you can bring it back here instead of starting empty.'),
      actions(el('a', { class: 'button', href: '#/restore' }, 'Restore from a backup')),
    ),
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
    recoveryKeyBox(recoveryKey),
    el('p', {}, 'Anyone who has this key can open your vault, so do not share it or keep it next to your server.'),
    saved.root,
    actions(continueButton),
  );

  return () => window.removeEventListener('beforeunload', warnBeforeLeaving);
}

// --- Restore from a backup ---------------------------------------------------------

function renderRestore(container, ctx) {
  const file = field({
    label: 'Backup file',
    hint: 'A file ending in .vrmbackup, made with “Download a backup” in Settings.',
    control: el('input', { type: 'file', name: 'backup', accept: '.vrmbackup,application/octet-stream', required: true }),
  });
  const withPassphrase = radio({
    name: 'open-with', value: 'passphrase', checked: true,
    label: 'With the passphrase the vault had when the backup was made',
  });
  const withKey = radio({
    name: 'open-with', value: 'recovery-key',
    label: 'With the recovery key, and choose a new passphrase',
  });
  const how = fieldset({ legend: 'How to open the backup', children: [withPassphrase.root, withKey.root] });

  const passphrase = field({
    label: 'Passphrase of the backup',
    control: passphraseInput({ autocomplete: 'current-password', name: 'passphrase' }),
  });
  const toggle = showPassphraseToggle([passphrase.control]);
  const byPassphrase = el('div', { class: 'choice-panel' }, passphrase.root, toggle.root);

  const keyField = field({
    label: 'Recovery key',
    hint: 'It starts with “vrmrk-”.',
    control: el('input', {
      type: 'text', name: 'recovery-key', class: 'mono', autocomplete: 'off', autocapitalize: 'none', autocorrect: 'off', spellcheck: 'false', required: true,
    }),
  });
  const next = newPassphraseFields({ label: 'New passphrase', repeatLabel: 'Repeat the new passphrase' });
  const byKey = el('div', { class: 'choice-panel', hidden: true }, keyField.root, ...next.nodes);

  const error = formError();
  const progress = el('div', { class: 'progress-slot' });
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Restore my vault');

  const form = el('form', { class: 'form', novalidate: true },
    usernameHint(),
    file.root,
    how.root,
    byPassphrase,
    byKey,
    error.node,
    progress,
    actions(submit),
  );

  container.append(
    el('h1', {}, 'Restore from a backup'),
    el('p', { class: 'lead' }, 'Bring back a vault from a backup file. Everything in it comes back: your data, terms, brands, what you shared and the activity log.'),
    el('p', {}, 'You need the passphrase the vault had when the backup was made, or its recovery key.'),
    el('p', { class: 'restore-brands' }, 'Brands in the backup come back paused: none of them can read your data, get your wishes or use what you shared until you look at it on the Brands page and resume it. The backup may be older than what you told them since, for example that their access ended.'),
    form,
    el('p', { class: 'aside-link' }, el('a', { href: '#/setup' }, 'Back to setting up a new vault')),
  );

  const usingKey = () => withKey.input.checked;
  for (const input of [withPassphrase.input, withKey.input]) {
    input.addEventListener('change', () => {
      byPassphrase.hidden = usingKey();
      byKey.hidden = !usingKey();
    });
  }
  file.control.addEventListener('change', () => file.clearError());
  passphrase.control.addEventListener('input', () => passphrase.clearError());
  keyField.control.addEventListener('input', () => keyField.clearError());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    const bad = checkRestore({ file, passphrase, keyField, next, usingKey: usingKey() });
    if (bad) {
      announce('Please check the fields.', { assertive: true });
      bad.focus();
      return;
    }

    const body = new FormData();
    if (usingKey()) {
      // People copy keys with stray spaces or line breaks.
      body.append('recovery_key', keyField.control.value.replace(/\s+/g, ''));
      body.append('new_passphrase', next.value);
    } else {
      body.append('passphrase', passphrase.control.value);
    }
    // The file goes last: the vault reads the form as it streams in.
    body.append('backup', file.control.files[0]);

    setBusy(submit, true, 'Restoring…');
    const shown = restoreProgress(progress);
    announce('Sending your backup…');
    try {
      const { data } = await apiUpload('/api/v1/restore', body, { onProgress: shown.sent, allow401: true });
      passphrase.control.value = '';
      next.clear();
      keyField.control.value = '';
      const entries = data && data.backup ? Number(data.backup.entries) : null;
      ctx.sessionStarted(data || {});
      const held = BRANDS_HELD;
      ctx.flash(entries !== null && !Number.isNaN(entries)
        ? `Your vault was restored from the backup (${entries} stored ${entries === 1 ? 'item' : 'items'}). ${held}`
        : `Your vault was restored from the backup. ${held}`, 'success');
      ctx.navigate('records');
    } catch (err) {
      if (err instanceof Interrupted || !container.isConnected) return;
      progress.replaceChildren();
      if (err instanceof ApiError && err.status === 409) {
        await ctx.refreshStatus().catch(() => {});
        ctx.flash('This vault is already set up, so a backup cannot be restored into it. Log in instead.', 'warning');
        ctx.navigate(ctx.vault.state === 'sealed' ? 'unlock' : 'login');
        return;
      }
      const message = restoreProblem(err, usingKey());
      if (err instanceof ApiError && err.status === 401) {
        const target = usingKey() ? keyField : passphrase;
        target.setError(message);
        target.control.focus();
      } else if (err instanceof ApiError && err.code === 'weak_passphrase') {
        next.setError(message);
        next.inputs[0].focus();
      } else if (err instanceof ApiError && (err.code === 'invalid_backup' || err.status === 413)) {
        file.setError(message);
        file.control.focus();
      } else {
        error.show(message);
      }
      announce(message, { assertive: true });
    } finally {
      if (submit.isConnected) setBusy(submit, false);
    }
  });
}

/** Check before sending; returns the first input to fix, or null. */
function checkRestore({ file, passphrase, keyField, next, usingKey }) {
  file.clearError();
  passphrase.clearError();
  keyField.clearError();
  let bad = null;
  if (!file.control.files || !file.control.files.length) {
    file.setError('Choose the backup file.');
    bad = file.control;
  }
  if (!usingKey && !passphrase.control.value) {
    passphrase.setError('Enter the passphrase of the backup.');
    bad = bad || passphrase.control;
  }
  if (usingKey) {
    if (!keyField.control.value.trim()) {
      keyField.setError('Enter the recovery key.');
      bad = bad || keyField.control;
    }
    const badNew = next.validate();
    bad = bad || badNew;
  }
  return bad;
}

/** A progress bar for the upload, then a note while the vault checks it. */
// What the person must know after a restore about their brands.
const BRANDS_HELD = 'Brands in it are paused until you review each one on the Brands page and resume it.';

function restoreProgress(slot) {
  const bar = el('progress', { max: '100', value: '0', 'aria-label': 'Restoring your vault' });
  const text = el('p', {}, 'Sending your backup…');
  slot.replaceChildren(el('div', { class: 'message message-info progress-note' }, text, bar));
  return {
    sent(loaded, total) {
      if (loaded < total) {
        const percent = Math.floor((loaded / total) * 100);
        bar.value = percent;
        text.textContent = `Sending your backup: ${percent}%.`;
        return;
      }
      // All sent: the vault now checks and unpacks it. No measure of that.
      bar.removeAttribute('value');
      text.textContent = 'Checking and unpacking your backup. This can take a moment.';
      announce(text.textContent);
    },
  };
}

function restoreProblem(err, usingKey) {
  if (!(err instanceof ApiError)) return 'Something unexpected went wrong. Try again.';
  if (err.status === 401) {
    return usingKey
      ? 'That recovery key does not open this backup. Check it for typing mistakes. Nothing was restored.'
      : 'That passphrase does not open this backup. Use the passphrase the vault had when the backup was made. Nothing was restored.';
  }
  if (err.code === 'invalid_backup') {
    return 'This file is not a vrm-vault backup, or it was cut short or changed. Nothing was restored.';
  }
  if (err.status === 413) {
    return 'This backup is too large to send through the browser. Restore it on the server with “vrm-vault restore”.';
  }
  return `Not restored: ${err.message}`;
}
