// @ts-check
// Settings: the passphrase and the recovery key, taking your data with you
// (export and backup), how the vault unlocks after a restart, the key the
// vault signs brands' tokens and receipts with, and the way to the separate
// "Delete everything" screen.

import {
  api, apiDownload, ApiError, Interrupted, retryAfterSeconds, saveBlob,
} from '../api.js';
import { el, announce, setBusy, focusElement, messageBox, copyText } from '../dom.js';
import {
  field, formError, passphraseInput, actions, usernameHint, holdOff, checkbox,
} from '../form.js';
import { newPassphraseFields } from '../newpassphrase.js';
import { recoveryKeyBox } from '../recoverykey.js';
import { diskUseSection } from '../diskuse.js';
import { assistantsSection } from '../assistants.js';

export function render(container, ctx) {
  stopRecoveryKey();
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
    assistantsSection(),
    recoveryKeySection(ctx),
    takeAwaySection(),
    unlockKeySection(),
    signingKeySection(),
    diskUseSection(),
    deleteSection(),
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

  return () => {
    stopWaiting();
    stopRecoveryKey();
  };
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

// --- Recovery key -------------------------------------------------------------

// While a new recovery key is on screen, leaving the page would lose it.
let stopRecoveryKey = () => {};

function recoveryKeySection(ctx) {
  const start = el('button', { type: 'button', class: 'button' }, 'Make a new recovery key…');
  const buttons = actions(start);
  const slot = el('div', { class: 'confirm-slot' });
  const heading = el('h2', { id: 'recovery-key-heading', tabindex: '-1' }, 'Recovery key');

  start.addEventListener('click', () => {
    buttons.hidden = true;
    slot.replaceChildren(recoveryKeyForm(ctx, {
      close() {
        slot.replaceChildren();
        buttons.hidden = false;
        focusElement(start);
      },
      show(key) {
        slot.replaceChildren(newKeyShown(key, () => {
          slot.replaceChildren();
          buttons.hidden = false;
          focusElement(heading);
        }));
        focusElement(slot.querySelector('h3'));
      },
    }));
    focusElement(slot.querySelector('input[type="password"]'));
  });

  return el('section', { 'aria-labelledby': 'recovery-key-heading' },
    heading,
    el('p', {}, 'Your recovery key opens your vault if you forget your passphrase. Make a new one if you lost it or think someone else has seen it.'),
    buttons,
    slot,
  );
}

/** Asks the passphrase, warns, and asks the vault for a new key. */
function recoveryKeyForm(ctx, { close, show }) {
  const passphrase = field({
    label: 'Your passphrase',
    hint: 'To make sure it is you.',
    control: passphraseInput({ autocomplete: 'current-password', name: 'recovery-passphrase' }),
  });
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Make a new recovery key');
  const cancel = el('button', { type: 'button', class: 'button' }, 'Cancel');
  const form = el('form', { class: 'form confirm confirm-warning', novalidate: true, 'aria-label': 'Make a new recovery key' },
    el('p', { class: 'confirm-question' }, 'Your current recovery key will stop working at once.'),
    el('p', {}, 'The new key is shown only once. Have a safe place ready for it, such as a password manager or a sheet of paper.'),
    usernameHint(),
    passphrase.root,
    error.node,
    actions(submit, cancel),
  );
  cancel.addEventListener('click', close);
  passphrase.control.addEventListener('input', () => passphrase.clearError());

  let stopWaiting = () => {};
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    if (!passphrase.control.value) {
      showFieldError(passphrase, 'Enter your passphrase.');
      return;
    }
    setBusy(submit, true, 'Making a new key…');
    announce('Making a new recovery key…');
    let blocked = false;
    try {
      const { data } = await api('POST', '/api/v1/recovery-key', {
        body: { passphrase: passphrase.control.value },
        checksSecret: true,
      });
      passphrase.control.value = '';
      if (!form.isConnected) return;
      if (!data || typeof data.recovery_key !== 'string') {
        throw new ApiError(0, 'bad_answer', 'The vault did not send the new key. Try again.');
      }
      show(data.recovery_key);
    } catch (err) {
      if (err instanceof Interrupted || !form.isConnected) return;
      if (err instanceof ApiError && err.code === 'invalid_credentials') {
        showFieldError(passphrase, 'That is not your passphrase. Your recovery key was not changed.');
      } else if (err instanceof ApiError && err.status === 429) {
        error.show(err.message);
        announce(err.message, { assertive: true });
        blocked = true;
        setBusy(submit, false);
        stopWaiting = holdOff(submit, retryAfterSeconds(err.headers), () => error.clear());
      } else {
        const message = `Not changed: ${err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.'}`;
        error.show(message);
        announce(message, { assertive: true });
      }
    } finally {
      if (!blocked && submit.isConnected) setBusy(submit, false);
    }
  });
  stopRecoveryKey = () => stopWaiting();
  return form;
}

/** The new key, once, until the person says they saved it. */
function newKeyShown(key, done) {
  const finish = el('button', { type: 'button', class: 'button primary', disabled: true }, 'Done');
  const saved = checkbox({
    label: 'I saved it',
    onchange: (event) => { finish.disabled = !event.target.checked; },
  });
  const warnBeforeLeaving = (event) => {
    event.preventDefault();
    event.returnValue = '';
  };
  window.addEventListener('beforeunload', warnBeforeLeaving);
  stopRecoveryKey = () => window.removeEventListener('beforeunload', warnBeforeLeaving);
  finish.addEventListener('click', () => {
    if (!saved.input.checked) return;
    stopRecoveryKey();
    stopRecoveryKey = () => {};
    done();
    announce('Your new recovery key is in use.');
  });
  announce('Your new recovery key is shown. Save it now: it will not be shown again.');
  return el('div', { class: 'new-key' },
    el('h3', { tabindex: '-1' }, 'Your new recovery key'),
    messageBox('Your old recovery key no longer works. Only this one opens your vault if you forget your passphrase.', 'warning'),
    el('p', {}, 'It is shown only now. Write it down or keep it in a password manager, away from your server.'),
    recoveryKeyBox(key, { label: 'New recovery key' }),
    saved.root,
    actions(finish),
  );
}

// --- Export and backup ------------------------------------------------------------

function takeAwaySection() {
  return el('section', { 'aria-labelledby': 'take-away-heading' },
    el('h2', { id: 'take-away-heading' }, 'Take your data with you'),
    el('h3', {}, 'Export all my data'),
    el('p', {}, 'One file in JSON, a plain text format any computer can read without this vault: your data, your terms, your brands and their agreements with receipts, what you shared, your wishes and offers, and the activity log. It is not encrypted: anyone who has the file can read it.'),
    downloadBlock({
      url: '/api/v1/export',
      label: 'Export all my data',
      busy: 'Exporting…',
      what: 'your export',
      fallbackName: 'vrm-vault-export.json',
    }),
    el('h3', {}, 'Download a backup'),
    el('p', {}, 'The whole vault in one encrypted file. Nobody can read it without your passphrase or your recovery key, and you need one of them to restore it: on the “Set up your vault” screen of an empty vault, choose “Restore from a backup”.'),
    downloadBlock({
      url: '/api/v1/backup',
      label: 'Download a backup',
      busy: 'Making the backup…',
      what: 'your backup',
      fallbackName: 'vrm-vault.vrmbackup',
    }),
  );
}

/** A download button with its progress and outcome under it. */
function downloadBlock({ url, label, busy, what, fallbackName }) {
  const button = el('button', { type: 'button', class: 'button' }, label);
  const status = el('div', { class: 'progress-slot' });
  button.addEventListener('click', async () => {
    setBusy(button, true, busy);
    const counter = el('span', {}, 'starting');
    status.replaceChildren(el('div', { class: 'message message-info progress-note' },
      el('p', {}, `Preparing ${what}: `, counter, '. Keep this page open.'),
      el('progress', { 'aria-label': `Preparing ${what}` })));
    announce(`Preparing ${what}…`);
    try {
      const { blob, filename } = await apiDownload(url, {
        onProgress: (bytes) => { counter.textContent = `${formatBytes(bytes)} so far`; },
      });
      const name = filename || fallbackName;
      saveBlob(blob, name);
      if (!status.isConnected) return;
      const text = `Done: ${name} (${formatBytes(blob.size)}) was handed to your browser to save. Look in your downloads.`;
      status.replaceChildren(messageBox(text, 'success'));
      announce(text);
    } catch (err) {
      if (err instanceof Interrupted || !status.isConnected) return;
      const text = `Could not download ${what}. ${err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.'}`;
      status.replaceChildren(messageBox(text, 'error'));
      announce(text, { assertive: true });
    } finally {
      if (button.isConnected) setBusy(button, false);
    }
  });
  return el('div', { class: 'download-block' }, actions(button), status);
}

/** "820 bytes", "12.4 KB", "3.1 MB". */
function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes} bytes`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

// --- Unlock key file ---------------------------------------------------------------

const CREATE_UNLOCK_KEY = 'vrm-vault unlock-key create --data-dir /path/to/data --passphrase-file - --out /path/to/unlock.key';
const SERVE_WITH_KEY = 'vrm-vault serve --data-dir /path/to/data --unlock-key-file /path/to/unlock.key';
const REMOVE_UNLOCK_KEY = 'vrm-vault unlock-key remove --data-dir /path/to/data --passphrase-file -';

function unlockKeySection() {
  const body = el('div', { 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Looking at how your vault unlocks…'));
  loadSettings(body);
  return el('section', { 'aria-labelledby': 'unlock-key-heading' },
    el('h2', { id: 'unlock-key-heading' }, 'Unlocking after a restart'),
    body,
  );
}

async function loadSettings(body) {
  let nodes;
  try {
    const { data } = await api('GET', '/api/v1/settings');
    nodes = data && data.unlock_key ? unlockKeyOn() : unlockKeyOff();
    if (data && data.session_idle_minutes) {
      nodes.push(el('p', { class: 'hint' },
        `For your safety you are logged out after ${data.session_idle_minutes} minutes without use`,
        data.session_max_hours ? `, and after ${data.session_max_hours} hours in any case.` : '.'));
    }
  } catch (err) {
    if (err instanceof Interrupted) return;
    nodes = [messageBox(`Could not find out how your vault unlocks. ${err instanceof ApiError ? err.message : ''}`.trim(), 'warning')];
  }
  if (!body.isConnected) return;
  body.removeAttribute('aria-busy');
  body.replaceChildren(...nodes);
}

function unlockKeyOn() {
  return [
    el('p', { class: 'status-line' }, el('strong', {}, 'Unlock key file: set up.')),
    el('p', {}, 'When the server starts, it unlocks your vault by itself with a key file, without your passphrase. Handy after a power cut; the price is that anyone who can read that file and the vault’s data directory can open your vault. Keep the file where others cannot read it, ideally on another disk.'),
    el('p', {}, 'To stop using it, whoever runs the server runs a command there (it asks for your passphrase).'),
    serverCommands(commandBlock(REMOVE_UNLOCK_KEY)),
  ];
}

function unlockKeyOff() {
  return [
    el('p', { class: 'status-line' }, el('strong', {}, 'Unlock key file: none.')),
    el('p', {}, 'After every restart of the server your vault stays locked until you type your passphrase here. This is the safest way: nothing stored on the server can open your vault.'),
    el('p', {}, 'If the server must come back by itself, for example after a power cut, you can create an unlock key file. This is done on the server, not here: run the first command (it asks for your passphrase), then start the vault with the second. Anyone who can read that file and the data directory can open your vault.'),
    serverCommands(commandBlock(CREATE_UNLOCK_KEY), commandBlock(SERVE_WITH_KEY)),
  ];
}

/** Commands for whoever runs the server, folded away: most people never need them. */
function serverCommands(...blocks) {
  return el('details', { class: 'more-details server-commands' },
    el('summary', {}, 'The commands to run on the server'),
    ...blocks);
}

/** A shell command with a Copy button. */
function commandBlock(command) {
  const code = el('code', {}, command);
  const status = el('p', { class: 'hint copy-status' });
  const copy = el('button', { type: 'button', class: 'button small' }, 'Copy', el('span', { class: 'visually-hidden' }, ' the command'));
  copy.addEventListener('click', async () => {
    const ok = await copyText(command, code);
    status.textContent = ok ? 'Command copied.' : 'Could not copy automatically. The command is selected: copy it by hand.';
    announce(status.textContent);
  });
  return el('div', { class: 'command' }, el('pre', { class: 'command-text' }, code), actions(copy), status);
}

// --- Delete everything ----------------------------------------------------------------

function deleteSection() {
  return el('section', { 'aria-labelledby': 'delete-heading', class: 'danger-zone' },
    el('h2', { id: 'delete-heading' }, 'Delete everything'),
    el('p', {}, 'Delete your vault and everything in it for real: access is revoked, brands are asked to erase what they got, the keys are destroyed. You get a final receipt. This cannot be undone.'),
    actions(el('a', { class: 'button danger-outline', href: '#/delete' }, 'Delete everything…')),
  );
}
