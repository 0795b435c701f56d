// @ts-check
// Noticing, in an open tab, that the vault was locked (from another tab, by
// "Lock the vault now", or by a server restart), so that the person's data
// leaves the screen then and not at the next click, which may be someone
// else's.
//
// Three ways to notice, cheapest first: a tab that locks the vault tells the
// others at once (BroadcastChannel, no storage involved); a tab that comes
// back into view asks; and while logged in, the page asks the vault's status
// every WATCH_MS. GET /api/v1/status needs no session and does not keep one
// alive, so asking changes nothing on the server.

const WATCH_MS = 15_000;

const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('vrm-vault-lock') : null;

/**
 * Start watching.
 *   check()  - asks the vault's status; app.js acts on a sealed answer
 *   locked() - another tab locked the vault
 */
export function watchForLock({ check, locked }) {
  let timer = 0;
  const tick = () => {
    if (document.visibilityState === 'visible') check();
  };
  const start = () => {
    window.clearInterval(timer);
    timer = window.setInterval(tick, WATCH_MS);
  };
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') check();
  });
  if (channel) {
    channel.addEventListener('message', (event) => {
      if (event.data && event.data.locked === true) locked();
    });
  }
  start();
}

/** Tell the other tabs that this one locked the vault. */
export function announceLocked() {
  if (channel) channel.postMessage({ locked: true });
}
