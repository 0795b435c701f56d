// @ts-check
// vrm-vault browser front-end: start-up, routing and session handling.
//
// Screens live in js/screens/. Each exports render(container, ctx), builds
// its DOM synchronously (so the router can focus its <h1>), and loads data
// afterwards. A screen may return a cleanup function.
//
// Routes live in the fragment: #/records, #/grants?brand=<client_id>. The
// one exception is the consent page, which the server sends brands' visitors
// to as /consent?request=<id> (from /oauth/authorize); boot() turns that into
// #/consent?request=<id> so the rest of the app only knows one kind of route.

import { api, ApiError, Interrupted, configureApi, setCsrfToken } from './js/api.js';
import { el, announce, focusElement, messageBox, setBusy } from './js/dom.js';
import { createIdleTimer } from './js/idle.js';
import { closeOfferStream } from './js/live.js';
import { watchForLock, announceLocked } from './js/watch.js';
import * as setupScreen from './js/screens/setup.js';
import * as unlockScreen from './js/screens/unlock.js';
import * as recordsScreen from './js/screens/records.js';
import * as activityScreen from './js/screens/activity.js';
import * as settingsScreen from './js/screens/settings.js';
import * as termsScreen from './js/screens/terms.js';
import * as brandsScreen from './js/screens/brands.js';
import * as grantsScreen from './js/screens/grants.js';
import * as intentsScreen from './js/screens/intents.js';
import * as consentScreen from './js/screens/consent.js';
import * as deleteScreen from './js/screens/delete.js';

const APP_NAME = 'vrm-vault';

// Which screen renders each route. login/unlock/recover share one module:
// it is the same passphrase form with a different title.
const ROUTES = {
  setup: setupScreen,
  restore: setupScreen,
  unlock: unlockScreen,
  login: unlockScreen,
  recover: unlockScreen,
  records: recordsScreen,
  terms: termsScreen,
  brands: brandsScreen,
  grants: grantsScreen,
  intents: intentsScreen,
  consent: consentScreen,
  activity: activityScreen,
  settings: settingsScreen,
  delete: deleteScreen,
};

// Screens that need a logged-in session; we come back to them after the
// person logs in again.
const PROTECTED = new Set(['records', 'terms', 'brands', 'grants', 'intents', 'consent', 'activity', 'settings', 'delete']);

const screenHost = document.getElementById('screen');
const flashHost = document.getElementById('flash');
const nav = document.getElementById('nav');
const logoutButton = document.getElementById('logout');
const lockButton = document.getElementById('lock');
const versionEl = document.getElementById('version');

const vault = { state: null, version: null };
let session = null; // {} while logged in, null otherwise
const idleTimer = createIdleTimer(sessionTimedOut);
let returnTo = null; // route (with its query) to go back to after logging in again
let pendingFlash = null; // { text, kind } shown on the next screen
let recoveryKeyShowing = false; // while true, the setup screen must stay
let cleanup = null;

const ctx = {
  vault,

  /** Go to a route (name without "#/", optionally with "?query"). */
  navigate(route) {
    if (location.hash === `#/${route}`) renderRoute();
    else location.hash = `#/${route}`;
  },

  /** Show a message at the top of the next screen. */
  flash(text, kind = 'info') {
    pendingFlash = { text, kind };
  },

  /** Show a message at the top of this screen now; returns its box. */
  showFlash,

  /**
   * Called with the answer of setup/login/session check: the person is now
   * logged in. Login answers do not say when the session goes idle; ask.
   */
  sessionStarted(data, headers = null) {
    setCsrfToken(data.csrf_token);
    session = {};
    vault.state = 'unsealed';
    if (data.idle_expires_at && headers) idleTimer.measure(data, headers);
    else measureSession();
    updateHeader(currentRoute());
  },

  isLoggedIn() {
    return Boolean(session);
  },

  /** Where to go after logging in: back to the interrupted screen if any. */
  takeReturnRoute() {
    const route = returnTo || 'records';
    returnTo = null;
    return route;
  },

  /** The setup screen shows the recovery key; keep the person there. */
  setRecoveryKeyShowing(showing) {
    recoveryKeyShowing = showing;
    updateHeader(currentRoute());
  },

  /**
   * Everything was deleted: the vault is back in setup mode and the session
   * is gone. The delete screen keeps showing the receipt until receiptDone().
   */
  vaultDeleted() {
    endSessionLocally();
    returnTo = null;
    recordsScreen.forgetDrafts();
    termsScreen.forgetDraft();
    vault.state = 'setup';
    updateHeader(currentRoute());
  },

  /** The person left the receipt: only setup is left. */
  receiptDone() {
    refreshStatus().catch(() => {});
  },

  /** Re-read the vault state (e.g. after a "vault already set up" error). */
  refreshStatus,

  /** The current route's query: #/grants?brand=x gives brand=x. */
  query() {
    const at = location.hash.indexOf('?');
    return new URLSearchParams(at === -1 ? '' : location.hash.slice(at + 1));
  },
};

function currentRoute() {
  const match = /^#\/([a-z-]+)/.exec(location.hash);
  return match ? match[1] : '';
}

/** The route with its query, as navigate() takes it: "consent?request=x". */
function currentRouteWithQuery() {
  const match = /^#\/([a-z-]+(?:\?[^#]*)?)$/.exec(location.hash);
  return match ? match[1] : currentRoute();
}

/**
 * Decide which route may be shown for the requested one, given the vault
 * state and whether we have a session.
 */
function allowedRoute(requested) {
  // The vault is gone, but its final receipt must stay until the person
  // has seen it (see ctx.vaultDeleted).
  if (deleteScreen.receiptShowing()) return 'delete';
  if (recoveryKeyShowing) return 'setup';
  if (vault.state === 'setup') return requested === 'restore' ? 'restore' : 'setup';
  if (vault.state === 'sealed') {
    return requested === 'recover' ? 'recover' : 'unlock';
  }
  if (!session) {
    return requested === 'recover' ? 'recover' : 'login';
  }
  return PROTECTED.has(requested) ? requested : 'records';
}

function renderRoute() {
  const requested = currentRoute();
  const route = allowedRoute(requested);
  if (route !== requested) {
    // Someone opening #/records without a session: remember it (with its
    // query, such as a consent request's id) so that logging in leads there.
    if (PROTECTED.has(requested) && !session) {
      returnTo = currentRouteWithQuery();
      if (requested === 'consent' && !pendingFlash) {
        const asker = returnTo.includes('agent=') ? 'An assistant is asking to connect to your vault.' : 'A brand is asking for some of your data.';
        pendingFlash = {
          text: `${asker} ${route === 'unlock' ? 'Unlock your vault' : 'Log in'} to see the request and answer it.`,
          kind: 'info',
        };
      }
    }
    history.replaceState(null, '', `#/${route}`);
  }

  if (cleanup) {
    try { cleanup(); } catch { /* a failing cleanup must not block navigation */ }
    cleanup = null;
  }
  // Messages belong to the screen they were shown on.
  clearFlash();

  // A fresh container per screen: async work of the previous screen can
  // check container.isConnected and stop touching the page.
  const container = el('div', { class: 'screen' });
  screenHost.replaceChildren(container);
  updateHeader(route);
  // Old announcements belong to the previous screen.
  for (const id of ['live-polite', 'live-assertive']) document.getElementById(id).textContent = '';

  cleanup = ROUTES[route].render(container, ctx, route) || null;

  if (pendingFlash) {
    showFlash(pendingFlash.text, pendingFlash.kind);
    pendingFlash = null;
  }
  const heading = container.querySelector('h1');
  if (heading) {
    document.title = `${heading.textContent} — ${APP_NAME}`;
    // Moving focus to the heading tells keyboard and screen reader users
    // that the screen changed, and starts them at its top.
    focusElement(heading);
  }
}

function updateHeader(route) {
  const loggedIn = Boolean(session) && vault.state === 'unsealed' && !recoveryKeyShowing;
  nav.hidden = !loggedIn;
  logoutButton.hidden = !loggedIn;
  lockButton.hidden = !loggedIn;
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === `#/${route}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

// --- Messages ----------------------------------------------------------

/** Show a message above the screen's heading, and read it out. */
function showFlash(text, kind = 'info') {
  const box = messageBox(text, kind);
  flashHost.replaceChildren(box);
  announce(text, { assertive: kind === 'error' || kind === 'warning' });
  return box;
}

function clearFlash() {
  flashHost.replaceChildren();
}

// A message is about what just happened: once the person does the next
// thing (presses a button, sends a form), it is old news. Capture phase, so
// it runs before the action itself may show a new message.
document.addEventListener('click', (event) => {
  if (flashHost.firstChild && event.target instanceof Element && event.target.closest('#screen button, #screen a[href], header button')) clearFlash();
}, true);
document.addEventListener('submit', clearFlash, true);

// --- Session ended / vault sealed while in use --------------------------

/** Learn when the session goes idle (login answers do not say). */
async function measureSession() {
  try {
    const { data, headers } = await api('GET', '/api/v1/session', { allow401: true });
    if (session && data) idleTimer.measure(data, headers);
  } catch {
    // Without it the page simply waits for the server to answer 401.
  }
}

function rememberWhereWeAre() {
  const route = currentRoute();
  if (PROTECTED.has(route)) returnTo = currentRouteWithQuery();
}

/** Forget the session here; keep typing the person may want back. */
function endSessionLocally() {
  session = null;
  setCsrfToken(null);
  // The vault checks the session when a live stream opens, not after.
  closeOfferStream();
  idleTimer.stop();
  recordsScreen.forgetCleanDraft();
  termsScreen.forgetCleanDraft();
  rememberWhereWeAre();
}

// Only promise that typing was kept when there is some.
function keptNote() {
  const typing = recordsScreen.hasUnsavedTyping() || termsScreen.hasUnsavedTyping();
  return typing ? ' Anything you were typing has been kept.' : '';
}

configureApi({
  sessionEnded() {
    if (!session) return; // several requests may fail at once; act once
    endSessionLocally();
    ctx.flash(`Your session has ended. Log in again to continue.${keptNote()}`, 'warning');
    ctx.navigate('login');
  },
  vaultSealed() {
    if (vault.state === 'sealed' && !session) return;
    endSessionLocally();
    vault.state = 'sealed';
    ctx.flash(`Your vault has been locked. Unlock it to continue.${keptNote()}`, 'warning');
    ctx.navigate('unlock');
  },
  vaultGone() {
    if (vault.state === 'setup') return;
    ctx.vaultDeleted();
    ctx.flash('This vault no longer exists: everything in it was deleted. You can set up a new one, or restore a backup.', 'warning');
    ctx.navigate('setup');
  },
  // Every successful request restarted the server's idle timer.
  answered({ url }) {
    if (session && !url.startsWith('/api/v1/status')) idleTimer.touch();
  },
});

/**
 * The session went idle on the server. Take personal data off the screen
 * now rather than at the next click, which might be someone else's.
 */
function sessionTimedOut() {
  if (!session) return;
  const keyShowing = recoveryKeyShowing;
  endSessionLocally();
  // Make sure the server agrees, should its clock run differently.
  api('DELETE', '/api/v1/session', { allow401: true }).catch(() => {});
  // The recovery key must stay on screen until the person saved it; the
  // setup screen sends them to log in afterwards.
  if (keyShowing) return;
  ctx.flash(`You were logged out because your vault was not used for a while. Log in again to continue.${keptNote()}`, 'warning');
  ctx.navigate('login');
}

// --- Log out -------------------------------------------------------------
//
// Logging out ends the session only: the vault itself stays unlocked (for
// apps that use it) until the server restarts.

logoutButton.addEventListener('click', async () => {
  setBusy(logoutButton, true, 'Logging out…');
  try {
    await api('DELETE', '/api/v1/session', { allow401: true });
  } catch (err) {
    if (err instanceof Interrupted) return;
    if (err instanceof ApiError && err.status === 0) {
      showFlash(`Not logged out: ${err.message}`, 'error');
      return;
    }
    // Any other answer: the session is unusable anyway; carry on.
  } finally {
    setBusy(logoutButton, false);
  }
  setCsrfToken(null);
  session = null;
  closeOfferStream();
  idleTimer.stop();
  returnTo = null;
  // The person chose to leave: forget anything half-typed.
  recordsScreen.forgetDrafts();
  termsScreen.forgetDraft();
  await refreshStatus().catch(() => {});
  ctx.flash('You are logged out.', 'success');
  ctx.navigate(vault.state === 'sealed' ? 'unlock' : 'login');
});

// --- Lock the vault now ---------------------------------------------------
//
// Locking seals the vault as a restart would: its keys leave the server's
// memory, every session ends and brands are refused until the passphrase
// unlocks it again.

/** The vault is locked: take the person's data off this screen now. */
function lockedHere(text, { forgetTyping = false } = {}) {
  if (vault.state === 'sealed' && !session) return;
  if (forgetTyping) {
    recordsScreen.forgetDrafts();
    termsScreen.forgetDraft();
  }
  const note = forgetTyping ? '' : keptNote();
  endSessionLocally();
  if (forgetTyping) returnTo = null;
  vault.state = 'sealed';
  ctx.flash(`${text}${note}`, 'warning');
  ctx.navigate('unlock');
}

lockButton.addEventListener('click', async () => {
  setBusy(lockButton, true, 'Locking…');
  try {
    await api('POST', '/api/v1/vault/lock', { allow401: true });
  } catch (err) {
    if (err instanceof Interrupted) return;
    // Already sealed (another tab, a restart) is what was asked for.
    if (!(err instanceof ApiError && err.status === 503)) {
      showFlash(`Not locked: ${err instanceof ApiError ? err.message : String(err)}`, 'error');
      return;
    }
  } finally {
    setBusy(lockButton, false);
  }
  announceLocked();
  lockedHere('Your vault is locked. Brands cannot reach it, and nothing in it can be read, until you unlock it with your passphrase.', { forgetTyping: true });
});

/** Ask the vault whether it is still open; act if it was locked meanwhile. */
async function checkStillOpen() {
  if (!session) return;
  try {
    const { data } = await api('GET', '/api/v1/status');
    if (data && data.state === 'sealed') lockedHere('Your vault has been locked. Unlock it to continue.');
    else if (data && data.state === 'setup') {
      endSessionLocally();
      ctx.vaultDeleted();
      ctx.flash('This vault no longer exists: everything in it was deleted. You can set up a new one, or restore a backup.', 'warning');
      ctx.navigate('setup');
    }
  } catch {
    // Unreachable for now: the next request says more.
  }
}

watchForLock({
  check: checkStillOpen,
  locked: () => lockedHere('Your vault was locked in another tab. Unlock it to continue.'),
});

// --- Start-up -----------------------------------------------------------

async function refreshStatus() {
  const { data } = await api('GET', '/api/v1/status');
  vault.state = data && data.state;
  vault.version = data && data.version;
  if (versionEl && vault.version) versionEl.textContent = `${APP_NAME} ${vault.version}`;
  if (vault.state !== 'unsealed') {
    session = null;
    setCsrfToken(null);
    idleTimer.stop();
  }
  return vault.state;
}

async function loadSession() {
  try {
    const { data, headers } = await api('GET', '/api/v1/session', { allow401: true });
    ctx.sessionStarted(data, headers);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session = null;
      return;
    }
    throw err;
  }
}

/**
 * The server sends people answering a brand's request to /consent?request=<id>;
 * the app routes in the fragment, so move the request there (same document,
 * no reload). Other paths are left alone.
 */
function adoptPathRoute() {
  if (location.pathname !== '/consent') return;
  const params = new URLSearchParams(location.search);
  const request = params.get('request') || '';
  // An assistant's request (from /oauth/authorize) comes as ?agent=<id>.
  const agent = params.get('agent') || '';
  const query = agent ? `?agent=${encodeURIComponent(agent)}`
    : request ? `?request=${encodeURIComponent(request)}` : '';
  history.replaceState(null, '', `/#/consent${query}`);
}

async function boot() {
  adoptPathRoute();
  try {
    await refreshStatus();
    if (!['setup', 'sealed', 'unsealed'].includes(vault.state)) {
      throw new ApiError(0, 'bad_status', 'Your vault answered in a way this page does not understand. Reload the page; if it keeps happening, the vault may need an update.');
    }
    if (vault.state === 'unsealed') await loadSession();
  } catch (err) {
    if (err instanceof Interrupted) {
      startRouting();
      return;
    }
    showStartError(err);
    return;
  }
  startRouting();
}

let routingStarted = false;
function startRouting() {
  if (!routingStarted) {
    window.addEventListener('hashchange', renderRoute);
    routingStarted = true;
  }
  renderRoute();
}

function showStartError(err) {
  const heading = el('h1', { tabindex: '-1' }, 'Could not open your vault');
  const retry = el('button', { type: 'button', class: 'button primary' }, 'Try again');
  retry.addEventListener('click', () => {
    setBusy(retry, true, 'Trying…');
    boot();
  });
  const container = el('div', { class: 'screen' },
    heading,
    messageBox(err instanceof ApiError ? err.message : 'Something unexpected went wrong while starting.', 'error'),
    el('div', { class: 'actions' }, retry),
  );
  screenHost.replaceChildren(container);
  document.title = `Could not open your vault — ${APP_NAME}`;
  announce(heading.textContent, { assertive: true });
  focusElement(heading);
}

// The skip link cannot use a plain "#main" href: that would be taken as a
// route by the hash router. Focus the screen's heading instead.
document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  focusElement(screenHost.querySelector('h1') || screenHost);
});

boot();
