// @ts-check
// The app's own wording for the vault's error codes.
//
// The server's messages are written for developers calling the API ("send
// the X-CSRF-Token header…"); people using the app get a sentence that says
// what happened and what to do. Codes we do not know fall back to the
// server's message, tidied up into a sentence.

import { MIN_PASSPHRASE_LENGTH } from './strength.js';

// One sentence per code. A function gets the server's message (and the
// answer's headers) for codes whose wording depends on the detail.
const MESSAGES = {
  conflict: 'This vault has already been set up. Log in with its passphrase.',
  invalid_value: valueProblem,
  invalid_path: 'This path cannot be used. Write 2 to 4 parts of lowercase letters, digits, “_” or “-”, separated by dots, for example contact.email.',
  invalid_category: categoryProblem,
  weak_passphrase: passphraseProblem,
  invalid_credentials: 'That passphrase or recovery key is not correct.',
  unauthenticated: 'You are not logged in. Log in and try again.',
  csrf_failed: 'The vault refused this request for your safety. Reload the page and try again.',
  not_found: 'This was not found in your vault.',
  precondition_failed: 'This was changed elsewhere in the meantime. Reload the page to see the saved version.',
  payload_too_large: 'This is too large to store. Keep a value under 64 KB.',
  too_many_requests: tooManyAttempts,
  vault_sealed: 'Your vault is locked. Unlock it to continue.',
  setup_required: 'This vault has not been set up yet. Reload the page to set it up.',
  storage_unavailable: 'Your vault could not reach its storage, so nothing was changed. Try again in a moment.',
  audit_chain_broken: 'Your activity log did not pass its check.',
  internal: 'Something went wrong inside your vault. Try again; if it keeps happening, the server log says more.',
  invalid_request: 'The vault could not understand this request. Reload the page and try again.',
  unsupported_media_type: 'The vault could not understand this request. Reload the page and try again.',
  method_not_allowed: 'The vault could not understand this request. Reload the page and try again.',
  invalid_invitation: invitationProblem,
  no_agreement: 'This brand has not accepted your current terms, so nothing can be shared with it.',
  invalid_backup: 'This file is not a vrm-vault backup, or it was cut short or changed.',
  confirmation_required: 'Type “delete everything” exactly to confirm.',
  vault_erasing: 'Your vault is being deleted. Wait a moment.',
};

/**
 * The sentence to show for an error answer.
 *   code          - the answer's "error" field (or http_<status>)
 *   serverMessage - the answer's "message" field, may be empty
 */
export function friendlyMessage(status, code, serverMessage, headers = null) {
  const known = MESSAGES[code];
  if (typeof known === 'function') return known(serverMessage || '', headers);
  if (known) return known;
  if (serverMessage) return asSentence(serverMessage);
  return statusMessage(status);
}

/** "the value is larger…" -> "The value is larger…." */
export function asSentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return '';
  const capitalised = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}

// The server gives one code for three problems; its message tells which.
function valueProblem(serverMessage) {
  if (/null/i.test(serverMessage)) {
    return 'An empty JSON value (null) cannot be stored. To remove this data, delete it instead.';
  }
  if (/larger/i.test(serverMessage)) return 'This value is too large to store. Keep it under 64 KB.';
  if (/deeper|nested/i.test(serverMessage)) {
    return 'This value has too many lists or objects inside each other. Use at most 16 levels.';
  }
  return 'This value cannot be stored. Check what you entered.';
}

function categoryProblem(serverMessage) {
  if (/no default/i.test(serverMessage)) {
    return 'The vault cannot tell what kind of data this is. Pick one under “Kind of data”, for example “Other personal data”.';
  }
  return 'The vault does not know this kind of data. Pick one from the list under “Kind of data”.';
}

// The brands page checks these limits before sending; the vault's own
// wording names its JSON fields.
function invitationProblem(serverMessage) {
  if (/max_uses/.test(serverMessage)) return 'The number of brands that may register must be from 1 to 100.';
  if (/expires_in_hours/.test(serverMessage)) return 'The number of hours must be from 1 to 720 (30 days).';
  if (/note/.test(serverMessage)) return 'The note is too long or has characters that cannot be stored. Keep it under 200 characters, on one line.';
  return 'The vault could not create this invitation. Check the fields and try again.';
}

function passphraseProblem(serverMessage) {
  const most = /at most (\d+)/i.exec(serverMessage);
  if (most) return `This passphrase is too long. Use at most ${most[1]} characters.`;
  return `Your passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters. A few unrelated words work well.`;
}

function tooManyAttempts(_serverMessage, headers) {
  const seconds = retryAfterSeconds(headers);
  return seconds ? `Too many attempts. Try again in ${plural(seconds, 'second')}.` : 'Too many attempts. Wait a little and try again.';
}

/** Used only when the server said nothing we can use. */
function statusMessage(status) {
  switch (status) {
    case 400:
    case 422:
      return 'The vault could not accept this. Check what you entered and try again.';
    case 401:
      return 'You are not logged in.';
    case 403:
      return 'The vault refused this request. Reload the page and try again.';
    case 404:
      return 'This was not found in your vault.';
    case 409:
      return 'This conflicts with what is already in your vault.';
    case 412:
      return 'This was changed elsewhere in the meantime.';
    case 413:
      return 'This is too large to store.';
    case 429:
      return 'Too many attempts. Wait a moment and try again.';
    case 503:
      return 'Your vault is not available right now. Try again in a moment.';
    default:
      if (status >= 500) return `Something went wrong inside your vault (error ${status}). Try again in a moment.`;
      return `The vault answered with an unexpected error (${status}).`;
  }
}

/** Seconds from a Retry-After header (seconds or HTTP date), or null. */
export function retryAfterSeconds(headers) {
  const raw = headers && headers.get('Retry-After');
  if (!raw) return null;
  const seconds = Number.parseInt(raw, 10);
  if (Number.isFinite(seconds) && String(seconds) === raw.trim()) return Math.max(seconds, 1);
  const date = Date.parse(raw);
  if (!Number.isNaN(date)) return Math.max(Math.ceil((date - Date.now()) / 1000), 1);
  return null;
}

/** "1 second", "5 seconds". */
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}
