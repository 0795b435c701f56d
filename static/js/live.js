// @ts-check
// Live offers: brands' answers to the person's wishes, pushed by the vault
// as Server-Sent Events on GET /api/v1/events (same origin, so the session
// cookie goes with it).
//
// One stream at a time, opened by the Wishes screen and closed when that
// screen goes away. app.js closes it too when the session ends (log out,
// time-out, locked vault): the vault checks the session only when the
// stream opens, so the page must not keep listening after it.

const EVENTS_URL = '/api/v1/events';

/** @type {EventSource | null} */
let source = null;

/**
 * Start listening. Replaces any stream already open.
 *   onOffer(offer)  - an offer arrived (the OfferView of the API)
 *   onOpen(again)   - connected; `again` after a lost connection came back,
 *                     when offers may have been missed meanwhile
 *   onLost(closed)  - the connection dropped; `closed` when the browser
 *                     gave up (the vault refused it), otherwise it retries
 *
 * @param {{ onOffer: (offer: any) => void, onOpen?: (again: boolean) => void, onLost?: (closed: boolean) => void }} handlers
 * @returns {() => void} stops listening
 */
export function listenForOffers({ onOffer, onOpen = () => {}, onLost = () => {} }) {
  closeOfferStream();
  const stream = new EventSource(EVENTS_URL);
  source = stream;
  let lost = false;
  stream.addEventListener('open', () => {
    if (source !== stream) return;
    onOpen(lost);
    lost = false;
  });
  stream.addEventListener('offer', (event) => {
    if (source !== stream) return;
    let offer;
    try {
      offer = JSON.parse(event.data);
    } catch {
      return; // not an offer this page can show
    }
    if (offer && typeof offer === 'object' && typeof offer.id === 'string') onOffer(offer);
  });
  stream.addEventListener('error', () => {
    if (source !== stream) return;
    lost = true;
    const closed = stream.readyState === EventSource.CLOSED;
    if (closed) source = null;
    onLost(closed);
  });
  return () => {
    if (source === stream) closeOfferStream();
  };
}

/** Stop listening, if listening. */
export function closeOfferStream() {
  if (!source) return;
  source.close();
  source = null;
}

