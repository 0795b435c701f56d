// @ts-check
// Wishes: an offer that came through the intent relay (DESIGN §11), from a
// brand the person never invited. It is labelled with the relay it came
// through and the brand's name as the relay's published keys confirm it,
// and accepting it has a step of its own: which of the data it asks for to
// send, encrypted so that only that brand can read it. Nothing is ticked
// for the person: this brand is new to them.

import { el } from '../../dom.js';
import { checkbox } from '../../form.js';
import { relayHost } from './relay_words.js';

/**
 * What the vault says of a relayed offer's brand: its id at the relay, its
 * name, and whether its signature checked out against the relay's
 * published keys.
 * @typedef {{ client_id?: string, name?: string, verified?: boolean }} RelayedBrand
 */

/** Whether an offer came through a relay. */
export function isRelayed(offer) {
  return Boolean(offer && typeof offer.via === 'string' && offer.via);
}

/** Whether the vault checked the brand's signature against the relay's published keys. */
export function isVerified(offer) {
  return Boolean(offer && offer.brand && offer.brand.verified === true);
}

/** The brand's name for a relayed offer, or for a direct one. */
export function offerBrandName(offer) {
  if (isRelayed(offer)) return String((offer.brand && offer.brand.name) || 'A brand');
  return String(offer.brand_name || 'A brand');
}

/**
 * "Via relay.example.org" and "Chez Lulu — identity checked by the relay's
 * published keys": where the offer came from, set apart from the brands the
 * person already knows.
 */
export function relayedLabel(offer) {
  const name = offerBrandName(offer);
  const host = relayHost(offer.via);
  return el('div', { class: 'offer-via' },
    el('p', { class: 'offer-brand' },
      el('span', { class: 'tag tag-relay' }, `Via ${host}`), ' ',
      el('span', { class: 'tag tag-stranger' }, 'New to you')),
    el('p', { class: 'offer-brand' }, 'From ', el('strong', {}, name), isVerified(offer)
      ? ' — identity checked by the relay’s published keys'
      : ' — the relay could not confirm who sent this'));
}

/**
 * The step before accepting a relayed offer: one checkbox per field it asks
 * for, none ticked, so nothing goes that the person did not choose (let
 * alone what the terms forbid). The vault checks the choice against the
 * terms when the person accepts, and names in words what they do not
 * allow; `refuseNamed` then marks those fields here.
 * @param {any} offer
 * @param {string[]} requested record paths the offer asks for
 * @param {(path: string) => string} titleOf the field's name in the profile's words
 */
export function disclosureChoice(offer, requested, titleOf) {
  const brand = offerBrandName(offer);
  const boxes = requested.map((path) => {
    const box = checkbox({ label: titleOf(path) });
    box.input.name = 'disclose_field';
    box.input.value = path;
    return { path, input: box.input, root: box.root };
  });
  const root = el('fieldset', { class: 'fieldset share-choice relay-disclose' },
    el('legend', {}, `What to send ${brand} when you accept`),
    el('p', { class: 'hint' }, `It asks for the data below. What you tick is sent encrypted, so that only ${brand} can read it: not the relay, not anyone else. Once sent, it is theirs to keep under your terms: you cannot take it back.`),
    ...boxes.map((b) => b.root),
    el('p', { class: 'hint' }, `Tick nothing to accept without sending anything: ${brand} then only learns that you accepted.`));

  return {
    root,
    /** The fields ticked. */
    chosen: () => boxes.filter((b) => b.input.checked && !b.input.disabled).map((b) => b.path),
    /**
     * The vault refused a field the terms do not allow, naming it in words
     * ("your phone number"): untick that box and keep it from being ticked
     * again, saying why beside it. Returns how many boxes it locked.
     * @param {string} message the vault's sentence
     * @returns {number}
     */
    refuseNamed(message) {
      const said = String(message || '').toLowerCase();
      let locked = 0;
      for (const b of boxes) {
        const label = titleOf(b.path).toLowerCase();
        if (!label || !said.includes(label) || b.input.disabled) continue;
        b.input.checked = false;
        b.input.disabled = true;
        const why = el('p', { class: 'hint field-refused', id: `${b.input.id}-why` }, 'Not allowed: your terms do not allow sending it to a brand that answered a wish.');
        b.input.setAttribute('aria-describedby', why.id);
        b.root.append(why);
        locked += 1;
      }
      return locked;
    },
  };
}

/**
 * What was sent to whom, once accepted: the brand, the relay it went
 * through, and the fields by name.
 * @param {any} offer
 * @param {string} name the offer's name
 * @param {string[]} sent the fields sent, in the profile's words
 */
export function acceptedText(offer, name, sent) {
  const brand = offerBrandName(offer);
  const host = relayHost(offer.via);
  if (!sent.length) return `Accepted “${name}”. ${brand} was told through ${host}; none of your data was sent.`;
  const what = sent.map((title) => `your ${title.charAt(0).toLowerCase()}${title.slice(1)}`).join(', ');
  return `Accepted “${name}”. Sent to ${brand} through ${host}, encrypted so that only ${brand} can read it: ${what}.`;
}
