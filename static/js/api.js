// @ts-check
// Talking to the vault's HTTP API.
//
// The session lives in an HttpOnly cookie set by the server. The CSRF token
// that must accompany every state-changing request is kept only in this
// module's memory (never in localStorage/sessionStorage), so a page reload
// fetches it again from GET /api/v1/session.

import { friendlyMessage } from './errors.js';

export { retryAfterSeconds } from './errors.js';

const TIMEOUT_MS = 30000;

let csrfToken = null;

// Set by app.js: what to do when the session ended or the vault got sealed
// while the person was using the app, and after every successful answer
// (each one refreshed the session's idle timer on the server).
/** @type {() => void} */
let onSessionEnded = () => {};
/** @type {() => void} */
let onVaultSealed = () => {};
/** @type {(answer: { method: string, url: string, headers: Headers }) => void} */
let onAnswered = () => {};
/** @type {() => void} */
let onVaultGone = () => {};

export function configureApi({ sessionEnded, vaultSealed, vaultGone, answered }) {
  onSessionEnded = sessionEnded;
  onVaultSealed = vaultSealed;
  if (vaultGone) onVaultGone = vaultGone;
  if (answered) onAnswered = answered;
}

export function setCsrfToken(token) {
  csrfToken = token || null;
}

export function hasSession() {
  return csrfToken !== null;
}

/** An error answer from the vault (or no answer at all, status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {any} [data]
   * @param {Headers | null} [headers]
   */
  constructor(status, code, message, data = null, headers = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.data = data;
    this.headers = headers;
    // What the server itself said, for the rare caller that needs it; the
    // message above is already in the app's own words.
    this.serverMessage = (data && typeof data.message === 'string') ? data.message : '';
    // The member of the request the vault refused (e.g. `location.geohash`), when it names one:
    // screens point at that field instead of reading it out of the sentence.
    /** @type {string | null} */
    this.at = (data && typeof data.at === 'string') ? data.at : null;
  }
}

/**
 * Thrown when a request was cut short because the session ended or the
 * vault was sealed. app.js already moved the person to the right screen, so
 * callers should simply stop and not show an error of their own.
 */
export class Interrupted extends Error {
  /** @param {string} reason */
  constructor(reason) {
    super(reason);
    this.name = 'Interrupted';
  }
}

/**
 * Make an API request.
 *
 * options:
 *   body       - sent as JSON
 *   headers    - extra headers (If-Match, ...)
 *   allow401   - a 401 is an expected answer (login, session check) and must
 *                not be treated as "your session has ended"
 *   checksSecret - the request carries a passphrase the vault checks while
 *                the person is logged in (changing the passphrase): a 401
 *                "invalid_credentials" means "wrong passphrase", any other
 *                401 still means the session has ended
 *
 * Resolves to { status, data, headers } for 2xx answers, rejects with
 * ApiError otherwise; its message is a sentence for the person.
 *
 * @param {string} method
 * @param {string} url
 * @param {{ body?: any, headers?: Record<string, string>, allow401?: boolean, checksSecret?: boolean }} [options]
 * @returns {Promise<{ status: number, data: any, headers: Headers }>}
 */
export async function api(method, url, { body, headers = {}, allow401 = false, checksSecret = false } = {}) {
  /** @type {RequestInit & { headers: Record<string, string> }} */
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json', ...headers },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) {
    init.headers['X-CSRF-Token'] = csrfToken;
  }

  const controller = new AbortController();
  init.signal = controller.signal;
  const timer = window.setTimeout(() => controller.abort(), TIMEOUT_MS);

  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err && err.name === 'AbortError') {
      throw new ApiError(0, 'timeout', 'Your vault took too long to answer. Check that it is running and try again.');
    }
    throw new ApiError(0, 'network', 'Could not reach your vault. Check your connection and that the vault server is running, then try again.');
  } finally {
    window.clearTimeout(timer);
  }

  const data = await readJson(response);

  if (response.ok) {
    onAnswered({ method, url, headers: response.headers });
    return { status: response.status, data, headers: response.headers };
  }

  throw failure(response.status, data, response.headers, { allow401, checksSecret });
}

/**
 * The error for a non-2xx answer. A 401 (unless expected) and a sealed
 * vault also tell app.js, which moves the person to the right screen; the
 * caller then gets Interrupted and should simply stop.
 */
function failure(status, data, headers, { allow401 = false, checksSecret = false } = {}) {
  const code = (data && typeof data.error === 'string') ? data.error : `http_${status}`;
  const wrongSecret = checksSecret && code === 'invalid_credentials';

  if (status === 401 && !allow401 && !wrongSecret) {
    csrfToken = null;
    onSessionEnded();
    return new Interrupted('session_ended');
  }
  if (status === 503 && code === 'vault_sealed') {
    csrfToken = null;
    onVaultSealed();
    return new Interrupted('vault_sealed');
  }
  // Everything was deleted (in another tab, or with the command line):
  // there is nothing left to be logged in to.
  if (status === 503 && code === 'setup_required' && csrfToken) {
    csrfToken = null;
    onVaultGone();
    return new Interrupted('setup_required');
  }

  const serverMessage = (data && typeof data.message === 'string') ? data.message.trim() : '';
  const message = friendlyMessage(status, code, serverMessage, headers);
  return new ApiError(status, code, message, data, headers);
}

const NO_ANSWER = 'Could not reach your vault. Check your connection and that the vault server is running, then try again.';

/**
 * Download a file the vault makes (export, backup) into memory, reporting
 * progress as it arrives: onProgress(bytesSoFar). These answers are
 * streamed, so their size is not known in advance. No time limit: a large
 * vault takes as long as it takes. Resolves to { blob, filename }.
 *
 * @param {string} url
 * @param {{ onProgress?: (received: number) => void }} [options]
 * @returns {Promise<{ blob: Blob, filename: string | null }>}
 */
export async function apiDownload(url, { onProgress = () => {} } = {}) {
  let response;
  try {
    response = await fetch(url, { method: 'GET', credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', NO_ANSWER);
  }
  if (!response.ok) throw failure(response.status, await readJson(response), response.headers);

  const parts = [];
  let received = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      received += value.byteLength;
      onProgress(received);
    }
  } catch {
    // The vault ends the body with an error when it fails midway, so that a
    // cut-short file is never mistaken for a whole one.
    throw new ApiError(0, 'broken_download', 'The download stopped before the end, so nothing was saved. Try again.');
  }
  onAnswered({ method: 'GET', url, headers: response.headers });
  const type = response.headers.get('Content-Type') || 'application/octet-stream';
  return { blob: new Blob(parts, { type }), filename: attachmentName(response.headers) };
}

/** The file name of a Content-Disposition: attachment header, or null. */
function attachmentName(headers) {
  const match = /filename="?([^";]+)"?/i.exec(headers.get('Content-Disposition') || '');
  return match ? match[1] : null;
}

/**
 * Send a form with a file (multipart/form-data), reporting upload progress:
 * onProgress(sent, total). XMLHttpRequest, because fetch cannot tell how
 * much of a request body has gone out. Resolves like api().
 *
 * @param {string} url
 * @param {FormData} formData
 * @param {{ onProgress?: (sent: number, total: number) => void, allow401?: boolean }} [options]
 * @returns {Promise<{ status: number, data: any, headers: Headers }>}
 */
export function apiUpload(url, formData, { onProgress = () => {}, allow401 = false } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Accept', 'application/json');
    if (csrfToken) xhr.setRequestHeader('X-CSRF-Token', csrfToken);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', NO_ANSWER)));
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { data = null; }
      const headers = new Headers();
      const retry = xhr.getResponseHeader('Retry-After');
      if (retry) headers.set('Retry-After', retry);
      if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, data, headers });
      else reject(failure(xhr.status, data, headers, { allow401 }));
    });
    xhr.send(formData);
  });
}

/** Let the browser save data made in the page (a Blob) as a file. */
export function saveBlob(blob, filename) {
  const href = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = href;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken the data once the click was handled.
  window.setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

async function readJson(response) {
  if (response.status === 204) return null;
  const text = await response.text().catch(() => '');
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** URL of one record. Paths only contain [a-z0-9_.-] but encode anyway. */
export function recordUrl(path) {
  return `/api/v1/records/${encodeURIComponent(path)}`;
}
