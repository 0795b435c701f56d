// @ts-check
// The intent relay in words (DESIGN §11): its name as a person can
// recognise it, and how far a wish sent there got. Shared by the wish's
// card, its offers and the page shown before a wish goes to the relay.

import { el } from '../../dom.js';
import { fact } from '../../cards.js';

/**
 * A relay the vault is set up to use (GET /api/v1/relays).
 * @typedef {{ url: string, name?: string }} RelayInfo
 */

/**
 * How one relay took a wish: `pending` while the vault keeps trying
 * (`attempts` counts the tries that failed so far), `published`, or
 * `failed` once the vault gave up (the wish ended first, or the relay
 * refused it for good). `error` is the vault's reason, for the log.
 * @typedef {{ url: string, status: 'pending' | 'published' | 'failed', error?: string, attempts?: number }} RelayDelivery
 */

/**
 * The `relay` member of a wish sent to the relay: published once a relay
 * has it, failed when none will, pending otherwise.
 * @typedef {{ status: 'pending' | 'published' | 'failed', relays: RelayDelivery[] }} IntentRelay
 */

/** "relay.example.org": the address a person can recognise, without the scheme. */
export function relayHost(url) {
  try {
    return new URL(String(url)).host || String(url);
  } catch {
    return String(url || 'the relay');
  }
}

/** The relays' names, for a sentence: "relay.example.org" or "a.org and b.org". */
export function relaysText(relays) {
  const names = relays.map((r) => r.name || relayHost(r.url));
  if (names.length <= 1) return names[0] || 'the relay';
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/**
 * "Sent to relay.example.org", "Sending to …", "Could not reach … yet",
 * "Not sent to …": one relay's answer. The vault's own reason is not shown:
 * it speaks of HTTP and the like.
 */
function deliveryWords(delivery) {
  const host = relayHost(delivery.url);
  switch (delivery.status) {
    case 'published':
      return `Sent to ${host}`;
    case 'failed':
      return `Not sent to ${host}: your vault stopped trying`;
    default:
      return Number(delivery.attempts) > 0
        ? `Could not reach ${host} yet; your vault keeps trying`
        : `Sending to ${host}…`;
  }
}

/** The same for a wish whose relays are not listed one by one. */
function overallWords(status) {
  if (status === 'published') return 'Sent to the relay';
  if (status === 'failed') return 'Not sent to the relay: your vault stopped trying';
  return 'Sending to the relay…';
}

/**
 * The line of a wish's card that says whether brands the person does not
 * know can hear it yet: nothing for a wish only brands the person knows heard.
 * @param {{ relay?: IntentRelay | null }} intent
 */
export function relayFact(intent) {
  const relay = intent.relay;
  if (!relay) return null;
  const list = Array.isArray(relay.relays) ? relay.relays.filter((d) => d && typeof d.url === 'string') : [];
  const value = list.length === 1
    ? el('span', { class: `relay-status relay-${list[0].status}` }, deliveryWords(list[0]))
    : (list.length
      ? el('ul', { class: 'plain-list relay-status' }, list.map((d) => el('li', { class: `relay-${d.status}` }, deliveryWords(d))))
      : el('span', { class: `relay-status relay-${relay.status}` }, overallWords(relay.status)));
  return fact('Brands you do not know', value);
}
