// @ts-check
// A client-side copy of the session's expiry, so that personal data leaves
// the screen when the session ends, and not only at the next click.
//
// The server ends a session after a stretch without requests (idle expiry)
// and, in any case, some hours after logging in (absolute expiry). Every
// successful owner request restarts the idle stretch on the server, so the
// page restarts its own copy after each successful answer. The length of the
// idle stretch is measured once from GET /api/v1/session.
//
// Other tabs of the same vault share the session: their requests keep it
// alive too, so tabs tell each other about activity (BroadcastChannel, no
// storage involved).

// Fire slightly after the server's deadline: the Date header used to
// measure it only has whole seconds.
const GRACE_MS = 1500;

const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('vrm-vault-activity') : null;

/**
 * onExpired() is called once when the deadline passes; the timer is then
 * stopped until measure() is called again.
 */
export function createIdleTimer(onExpired) {
  let idleMs = null; // length of the idle stretch, null while unknown
  let absoluteAt = null; // local time of the absolute expiry
  let deadline = null; // local time when the session ends
  let timer = null;

  function schedule() {
    window.clearTimeout(timer);
    timer = null;
    if (deadline === null) return;
    // setTimeout cannot wait longer than about 24 days.
    const wait = Math.min(Math.max(deadline - Date.now(), 0) + GRACE_MS, 2 ** 31 - 1);
    timer = window.setTimeout(check, wait);
  }

  function check() {
    if (deadline === null) return;
    if (Date.now() < deadline) {
      schedule();
      return;
    }
    stop();
    onExpired();
  }

  /** Push the deadline forward: the server has just seen a request. */
  function touch(at = Date.now()) {
    if (idleMs === null && absoluteAt === null) return;
    const idleEnd = idleMs === null ? Infinity : at + idleMs;
    deadline = Math.min(idleEnd, absoluteAt ?? Infinity);
    schedule();
  }

  function stop() {
    window.clearTimeout(timer);
    timer = null;
    idleMs = null;
    absoluteAt = null;
    deadline = null;
  }

  // A request from another tab kept the shared session alive.
  if (channel) {
    channel.addEventListener('message', (event) => {
      if (deadline !== null && event.data && typeof event.data.at === 'number') touch(Math.min(event.data.at, Date.now()));
    });
  }
  // Timers are paused while a laptop sleeps; look again when the page is
  // seen again instead of waiting for a late timer.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') check();
  });

  return {
    /**
     * Start from an answer of GET /api/v1/session:
     * { idle_expires_at, expires_at } and the answer's headers.
     */
    measure(data, headers) {
      const serverNow = serverTime(headers);
      const idleAt = Date.parse(data && data.idle_expires_at);
      const endAt = Date.parse(data && data.expires_at);
      absoluteAt = Number.isNaN(endAt) ? null : Date.now() + (endAt - serverNow);
      // Near the absolute expiry the server reports that instead of the idle
      // deadline; then the idle stretch cannot be measured (nor matters).
      if (!Number.isNaN(idleAt) && (Number.isNaN(endAt) || idleAt < endAt)) {
        idleMs = Math.max(idleAt - serverNow, 0);
      }
      touch();
    },
    /** A request of this tab succeeded. */
    touch() {
      if (deadline === null) return;
      const at = Date.now();
      touch(at);
      if (channel) channel.postMessage({ at });
    },
    stop,
  };
}

/** The server's clock from the Date header (whole seconds), else ours. */
function serverTime(headers) {
  const date = Date.parse(headers && headers.get('Date'));
  return Number.isNaN(date) ? Date.now() : date;
}
