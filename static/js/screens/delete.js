// @ts-check
// Delete everything: a screen of its own, reached on purpose from Settings.
// It says exactly what will happen, asks for the phrase and the passphrase,
// and afterwards shows the vault's final receipt (what was deleted, what
// each brand was told) with a way to keep it, then leads back to setup.

import { api, ApiError, Interrupted, retryAfterSeconds, saveBlob } from '../api.js';
import { el, announce, setBusy, messageBox, timeEl } from '../dom.js';
import {
  field, formError, passphraseInput, showPassphraseToggle, actions, usernameHint, holdOff,
} from '../form.js';

// The phrase the vault asks for, exactly (DELETE /api/v1/vault).
export const CONFIRM_PHRASE = 'delete everything';

// The vault has gone by the time the receipt is shown: the answer is kept
// only here, in memory, until the person leaves for setup. Nothing else
// holds it.
let finished = null;

export function render(container, ctx) {
  if (finished) return renderReceipt(container, ctx);
  return renderForm(container, ctx);
}

// --- Before: what happens, and the confirmation --------------------------------

function renderForm(container, ctx) {
  const phrase = field({
    label: `Type “${CONFIRM_PHRASE}” to confirm`,
    hint: 'This makes sure nobody deletes a vault by a slip of the finger.',
    control: el('input', {
      type: 'text', name: 'confirm', autocomplete: 'off', autocapitalize: 'none', autocorrect: 'off', spellcheck: 'false', required: true,
    }),
  });
  const passphrase = field({
    label: 'Your passphrase',
    control: passphraseInput({ autocomplete: 'current-password', name: 'passphrase' }),
  });
  const toggle = showPassphraseToggle([passphrase.control]);
  const error = formError();
  const progress = el('div', { class: 'progress-slot' });
  const submit = el('button', { type: 'submit', class: 'button danger' }, 'Delete everything now');
  const cancel = el('a', { class: 'button', href: '#/settings' }, 'Cancel');

  const form = el('form', { class: 'form', novalidate: true, 'aria-labelledby': 'delete-confirm-heading' },
    usernameHint(),
    phrase.root,
    passphrase.root,
    toggle.root,
    error.node,
    progress,
    actions(submit, cancel),
  );

  container.append(
    el('h1', {}, 'Delete everything'),
    el('p', { class: 'lead' }, 'This deletes your vault and everything in it, for real. It cannot be undone.'),
    el('section', { 'aria-labelledby': 'delete-what-heading' },
      el('h2', { id: 'delete-what-heading' }, 'What happens'),
      el('ol', { class: 'steps' },
        el('li', {}, el('strong', {}, 'All access is revoked at once. '),
          'Every grant and every brand’s access token stops working, and every brand is suspended.'),
        el('li', {}, el('strong', {}, 'Brands are told. '),
          'Each brand that gets news from your vault by webhook is sent a signed request to erase what it got from you, under the name it knows you by. Brands without a webhook cannot be reached this way.'),
        el('li', {}, el('strong', {}, 'You get a final receipt. '),
          'It lists what was deleted and what each brand was told, signed by your vault. Download it: it is the only record left.'),
        el('li', {}, el('strong', {}, 'The keys are destroyed and the files removed. '),
          'Nothing of your vault can be read back from the disk afterwards, not even with your passphrase or your recovery key.'),
        el('li', {}, el('strong', {}, 'You start again from the beginning. '),
          'The app goes back to “Set up your vault”.'),
      ),
    ),
    el('section', { 'aria-labelledby': 'delete-before-heading' },
      el('h2', { id: 'delete-before-heading' }, 'Before you go on'),
      el('p', {},
        'If you may want your data back, ',
        el('a', { href: '#/settings' }, 'download a backup or an export in Settings'),
        ' first. A backup you keep can still be restored with your passphrase or your recovery key, so keep it safe, or destroy it too.'),
    ),
    el('section', { 'aria-labelledby': 'delete-confirm-heading' },
      el('h2', { id: 'delete-confirm-heading' }, 'Confirm'),
      form,
    ),
  );

  phrase.control.addEventListener('input', () => phrase.clearError());
  passphrase.control.addEventListener('input', () => passphrase.clearError());

  let stopWaiting = () => {};

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    const bad = checkFields(phrase, passphrase);
    if (bad) {
      bad.focus();
      announce('Please check the fields.', { assertive: true });
      return;
    }

    setBusy(submit, true, 'Deleting…');
    cancel.hidden = true;
    progress.replaceChildren(progressNote());
    announce('Deleting everything. This takes a few seconds.');
    let blocked = false;
    try {
      const { data } = await api('DELETE', '/api/v1/vault', {
        body: { passphrase: passphrase.control.value, confirm: CONFIRM_PHRASE },
        checksSecret: true,
      });
      passphrase.control.value = '';
      if (!data || !data.receipt) {
        throw new ApiError(0, 'bad_answer', 'Your vault was deleted, but it did not send a receipt.');
      }
      finished = data;
      // Keep the receipt on screen even though the vault is now in setup mode.
      ctx.vaultDeleted();
      ctx.navigate('delete');
    } catch (err) {
      if (err instanceof Interrupted || !container.isConnected) return;
      progress.replaceChildren();
      cancel.hidden = false;
      if (err instanceof ApiError && err.code === 'invalid_credentials') {
        passphrase.setError('That is not your passphrase. Nothing was deleted.');
        passphrase.control.focus();
        passphrase.control.select();
        announce('That is not your passphrase. Nothing was deleted.', { assertive: true });
      } else if (err instanceof ApiError && err.code === 'confirmation_required') {
        phrase.setError(`Type exactly “${CONFIRM_PHRASE}”. Nothing was deleted.`);
        phrase.control.focus();
      } else if (err instanceof ApiError && err.status === 429) {
        error.show(err.message);
        announce(err.message, { assertive: true });
        blocked = true;
        setBusy(submit, false);
        stopWaiting = holdOff(submit, retryAfterSeconds(err.headers), () => error.clear());
      } else if (err instanceof ApiError && err.code === 'bad_answer') {
        // Gone anyway: go to setup rather than leave a dead app on screen.
        ctx.vaultDeleted();
        ctx.flash(err.message, 'warning');
        ctx.navigate('setup');
      } else {
        const message = `Not deleted: ${err instanceof ApiError ? err.message : 'Something unexpected went wrong. Try again.'}`;
        error.show(message);
        announce(message, { assertive: true });
      }
    } finally {
      if (!blocked && submit.isConnected) setBusy(submit, false);
    }
  });

  return () => stopWaiting();
}

/** Check before sending; returns the first input to fix, or null. */
function checkFields(phrase, passphrase) {
  phrase.clearError();
  passphrase.clearError();
  let bad = null;
  if (phrase.control.value.trim().toLowerCase() !== CONFIRM_PHRASE) {
    phrase.setError(`Type “${CONFIRM_PHRASE}”, exactly as shown.`);
    bad = phrase.control;
  }
  if (!passphrase.control.value) {
    passphrase.setError('Enter your passphrase.');
    bad = bad || passphrase.control;
  }
  return bad;
}

function progressNote() {
  return el('div', { class: 'message message-info progress-note' },
    el('p', {}, 'Deleting everything: revoking access, telling brands, destroying the keys. This takes a few seconds; keep this page open.'),
    el('progress', { 'aria-label': 'Deleting everything' }));
}

// --- After: the final receipt ----------------------------------------------------

// The receipt's counts, in the order and words shown.
const COUNTS = [
  ['records', 'Pieces of your data'],
  ['terms_versions', 'Versions of your terms'],
  ['brands', 'Brands'],
  ['agreements', 'Agreements'],
  ['grants', 'Grants'],
  ['intents', 'Wishes'],
  ['offers', 'Offers'],
  ['audit_entries', 'Activity log entries'],
];

function renderReceipt(container, ctx) {
  const { receipt } = finished;
  const deleted = receipt.deleted && typeof receipt.deleted === 'object' ? receipt.deleted : {};
  const brands = Array.isArray(receipt.brands) ? receipt.brands : [];
  const problems = Array.isArray(receipt.problems) ? receipt.problems : [];
  const download = el('button', { type: 'button', class: 'button primary' }, 'Download the receipt');
  const restart = el('button', { type: 'button', class: 'button' }, 'Set up a new vault');
  const downloaded = el('p', { class: 'hint', role: 'status' });

  download.addEventListener('click', () => {
    const json = `${JSON.stringify(finished, null, 2)}\n`;
    saveBlob(new Blob([json], { type: 'application/json' }), receiptFileName(receipt));
    downloaded.textContent = 'The receipt was handed to your browser to save.';
  });
  restart.addEventListener('click', () => {
    finished = null;
    ctx.receiptDone();
    ctx.navigate('setup');
  });

  const toldCount = brands.filter((b) => b.told).length;
  const n = brands.length;
  let summary = 'No brand was registered, so none had to be told.';
  if (n === 1) summary = toldCount ? 'Your one brand was told.' : 'Your one brand could not be told.';
  else if (n && toldCount === n) summary = `All ${n} brands were told.`;
  else if (n && toldCount === 0) summary = `None of your ${n} brands could be told.`;
  else if (n) summary = `${toldCount} of your ${n} brands were told.`;

  // el() (unlike append()) leaves out the parts that are null.
  container.append(el('div', {},
    el('h1', {}, 'Your vault has been deleted'),
    messageBox('Everything in your vault was deleted and its keys destroyed. Nothing of it can be read back.', 'success'),
    el('p', { class: 'lead' }, 'This is your final receipt. It will not be shown again: download it to keep it.'),
    actions(download),
    downloaded,

    el('section', { 'aria-labelledby': 'receipt-deleted-heading' },
      el('h2', { id: 'receipt-deleted-heading' }, 'What was deleted'),
      el('dl', { class: 'facts receipt-counts' },
        COUNTS.map(([key, label]) => [el('dt', {}, label), el('dd', {}, String(Number(deleted[key]) || 0))])),
    ),

    el('section', { 'aria-labelledby': 'receipt-brands-heading' },
      el('h2', { id: 'receipt-brands-heading' }, 'What each brand was told'),
      el('p', {}, summary),
      brands.length ? el('ul', { class: 'cards' }, brands.map(brandTold)) : null,
    ),

    problems.length ? el('section', { 'aria-labelledby': 'receipt-problems-heading' },
      el('h2', { id: 'receipt-problems-heading' }, 'What did not go to plan'),
      el('ul', {}, problems.map((p) => el('li', {}, String(p)))),
    ) : null,

    el('section', { 'aria-labelledby': 'receipt-proof-heading' },
      el('h2', { id: 'receipt-proof-heading' }, 'About the receipt'),
      el('p', {}, 'The file holds the receipt, your vault’s signature over it and the public key to check that signature, so anyone can verify it was issued by your vault even though the vault is gone.'),
      receipt.requested_at ? el('p', { class: 'hint' }, 'Deletion requested on ', timeEl(receipt.requested_at), '.') : null,
    ),

    actions(restart),
  ));

  // Leaving now would lose the receipt for good; ask the browser to warn.
  const warnBeforeLeaving = (event) => {
    event.preventDefault();
    event.returnValue = '';
  };
  window.addEventListener('beforeunload', warnBeforeLeaving);
  return () => window.removeEventListener('beforeunload', warnBeforeLeaving);
}

function brandTold(brand) {
  const name = brand.client_name || brand.client_id || 'A brand';
  const outcome = brand.outcome ? ` (${brand.outcome})` : '';
  return el('li', { class: `card told-${brand.told ? 'yes' : 'no'}` },
    el('p', { class: 'card-title' }, el('strong', {}, name), ' ',
      el('span', { class: `tag ${brand.told ? 'tag-active' : 'tag-suspended'}` }, brand.told ? 'Told' : 'Not reached')),
    el('p', {}, brand.told
      ? `Sent a signed request to erase your data${outcome}.`
      : `Could not be sent a request to erase your data${outcome}. Its access was revoked all the same.`),
    brand.pseudonym ? el('p', { class: 'hint' }, 'It knows you as ', el('code', {}, String(brand.pseudonym))) : null,
  );
}

function receiptFileName(receipt) {
  const day = String(receipt.requested_at || new Date().toISOString()).slice(0, 10);
  return `vrm-vault-erasure-receipt-${day}.json`;
}

/** Whether the receipt is on screen (the app keeps the person here). */
export function receiptShowing() {
  return finished !== null;
}

