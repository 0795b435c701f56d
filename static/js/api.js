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
let onSessionEnded = () => {};
let onVaultSealed = () => {};
let onAnswered = () => {};

export function configureApi({ sessionEnded, vaultSealed, answered }) {
  onSessionEnded = sessionEnded;
  onVaultSealed = vaultSealed;
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
  }
}

/**
 * Thrown when a request was cut short because the session ended or the
 * vault was sealed. app.js already moved the person to the right screen, so
 * callers should simply stop and not show an error of their own.
 */
export class Interrupted extends Error {
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
 */
export async function api(method, url, { body, headers = {}, allow401 = false, checksSecret = false } = {}) {
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

  const code = (data && typeof data.error === 'string') ? data.error : `http_${response.status}`;
  const wrongSecret = checksSecret && code === 'invalid_credentials';

  if (response.status === 401 && !allow401 && !wrongSecret) {
    csrfToken = null;
    onSessionEnded();
    throw new Interrupted('session_ended');
  }
  if (response.status === 503 && code === 'vault_sealed') {
    csrfToken = null;
    onVaultSealed();
    throw new Interrupted('vault_sealed');
  }

  const serverMessage = (data && typeof data.message === 'string') ? data.message.trim() : '';
  const message = friendlyMessage(response.status, code, serverMessage, response.headers);
  throw new ApiError(response.status, code, message, data, response.headers);
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
