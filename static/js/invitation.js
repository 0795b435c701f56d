// @ts-check
// Whether a brand outside the home can reach the registration address an
// invitation gives it. The address is made from the vault's public URL
// (--public-url / VRM_PUBLIC_URL), which defaults to the listen address:
// on a fresh install that is http://127.0.0.1:8080, which only the vault's
// own machine can open. Pure: no page, no network.

/**
 * A warning in plain words when `address` cannot be reached by a brand on
 * the internet, or null when it looks public.
 * @param {string} address
 * @returns {{ kind: 'loopback' | 'private', text: string } | null}
 */
export function reachabilityProblem(address) {
  let host;
  try {
    host = new URL(address).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return null;
  }
  const fix = 'To fix it, whoever runs your vault starts it with the address brands can reach, for example '
    + '--public-url https://vault.example.org (or VRM_PUBLIC_URL), and then you create a new invitation.';
  if (isLoopback(host)) {
    return {
      kind: 'loopback',
      text: `This address only works on the computer your vault runs on (${host}): a brand elsewhere cannot reach it, so it cannot register. ${fix}`,
    };
  }
  if (isPrivate(host)) {
    return {
      kind: 'private',
      text: `This address only works inside your own network (${host}): a brand on the internet cannot reach it. ${fix}`,
    };
  }
  return null;
}

function isLoopback(host) {
  return host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) || host === '::1' || host === '0.0.0.0';
}

function isPrivate(host) {
  if (/^10\./.test(host) || /^192\.168\./.test(host) || /^169\.254\./.test(host)) return true;
  const m = /^172\.(\d+)\./.exec(host);
  if (m && Number(m[1]) >= 16 && Number(m[1]) <= 31) return true;
  if (/^f[cd][0-9a-f]{2}:/.test(host) || /^fe80:/.test(host)) return true;
  return host.endsWith('.local') || host.endsWith('.lan') || host.endsWith('.home.arpa') || !host.includes('.') && !host.includes(':');
}
