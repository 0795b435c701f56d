// @ts-check
// The profile: the fields people have, as on any good account page, each
// stored at a well-known record path the vault already knows the kind of
// (contact.email is an email address, addresses.home a postal address...).
// Nothing here touches the page; screens/profile.js draws it.

/**
 * @typedef {object} ProfileInput
 * @property {string} key       Name of the value (a record path, or a part of the address).
 * @property {string} label
 * @property {string} [hint]
 * @property {string} [type]     input type: text, email, tel, date; 'textarea' for several lines
 * @property {string} [autocomplete]
 * @property {string} [inputmode]
 * @property {(value: string) => string|null} [check] Why the value is refused, or null.
 */

/**
 * @typedef {object} ProfileField
 * @property {string} path        Where it is stored; never shown.
 * @property {string} label
 * @property {string} [hint]
 * @property {ProfileInput[]} inputs One input, or the parts of an address.
 * @property {boolean} [block]    Stored as one record whose value is an object of its inputs.
 */

/**
 * @typedef {object} ProfileSection
 * @property {string} id
 * @property {string} title
 * @property {string} intro
 * @property {string} saved     What "Saved …" says once the section is saved.
 * @property {ProfileField[]} fields
 */

/** Why a typed email address is refused, in plain words, or null. */
export function emailProblem(value) {
  const text = value.trim();
  if (!text) return null;
  const at = text.lastIndexOf('@');
  if (/\s/.test(text)) return 'An email address has no spaces, for example ana@example.org.';
  if (at < 1) return 'This is not a full email address: it needs your name, an @ and a domain, for example ana@example.org.';
  const domain = text.slice(at + 1);
  const labels = domain.split('.');
  if (!domain || labels.length < 2 || labels.some((label) => label === '' || label.includes('@'))) {
    return 'This email address is missing the part after the @, for example ana@example.org.';
  }
  return null;
}

/** Why a typed phone number is refused, in plain words, or null. */
export function phoneProblem(value) {
  const text = value.trim();
  if (!text) return null;
  if (!/^[0-9 +\-().\/]+$/.test(text)) return 'A phone number is made of digits; spaces, + - ( ) are fine, letters are not.';
  const digits = text.replace(/\D/g, '').length;
  if (digits < 5) return 'This phone number is too short. Include the area code.';
  if (digits > 20) return 'This phone number is too long. Check it for extra digits.';
  return null;
}

/** A payment hint must never be a full card number. */
export function cardHintProblem(value) {
  const digits = value.replace(/\D/g, '');
  if (digits.length >= 12) return 'Do not keep the full card number here. Write a hint only, such as “Visa ending 4242”.';
  return null;
}

/** A birthday cannot be in the future. */
export function birthdayProblem(value) {
  if (!value) return null;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return 'Enter the date as day, month and year.';
  const today = new Date().toISOString().slice(0, 10);
  if (value > today) return 'A birthday cannot be in the future.';
  return null;
}

/** @type {ProfileSection[]} */
export const SECTIONS = [
  {
    id: 'about',
    saved: 'the details about you',
    title: 'About you',
    intro: 'How brands should address you.',
    fields: [
      { path: 'profile.name', label: 'Name', inputs: [{ key: 'profile.name', label: 'Name', autocomplete: 'name', hint: 'Your name as you like it written, for example Ana Lima.' }] },
      { path: 'profile.birthdate', label: 'Birthday', inputs: [{ key: 'profile.birthdate', label: 'Birthday', type: 'date', autocomplete: 'bday', check: birthdayProblem }] },
      { path: 'profile.languages', label: 'Languages', inputs: [{ key: 'profile.languages', label: 'Languages', autocomplete: 'language', hint: 'The languages you want to be spoken to in, for example English, Portuguese.' }] },
    ],
  },
  {
    id: 'contact',
    saved: 'your contact details',
    title: 'Contact',
    intro: 'How brands can reach you, when you let them.',
    fields: [
      { path: 'contact.email', label: 'Email address', inputs: [{ key: 'contact.email', label: 'Email address', type: 'email', autocomplete: 'email', inputmode: 'email', check: emailProblem }] },
      { path: 'contact.phone', label: 'Phone number', inputs: [{ key: 'contact.phone', label: 'Phone number', type: 'tel', autocomplete: 'tel', inputmode: 'tel', hint: 'With the country code if you deal with brands abroad, for example +351 912 345 678.', check: phoneProblem }] },
    ],
  },
  {
    id: 'address',
    saved: 'your address',
    title: 'Address',
    intro: 'Where deliveries go. It is kept as one address.',
    fields: [
      {
        path: 'addresses.home',
        label: 'Home address',
        block: true,
        inputs: [
          { key: 'street', label: 'Street and number', autocomplete: 'street-address', type: 'textarea' },
          { key: 'postal_code', label: 'Postcode', autocomplete: 'postal-code' },
          { key: 'city', label: 'Town or city', autocomplete: 'address-level2' },
          { key: 'country', label: 'Country', autocomplete: 'country-name' },
        ],
      },
    ],
  },
  {
    id: 'preferences',
    saved: 'your preferences',
    title: 'Preferences',
    intro: 'What you like brands to know so they can serve you well.',
    fields: [
      { path: 'preferences.dietary', label: 'Dietary needs', inputs: [{ key: 'preferences.dietary', label: 'Dietary needs', hint: 'For example vegetarian, no nuts.' }] },
      { path: 'preferences.sizes', label: 'Clothing and shoe sizes', inputs: [{ key: 'preferences.sizes', label: 'Clothing and shoe sizes', hint: 'For example shirt M, shoes 39 EU.' }] },
      { path: 'preferences.other', label: 'Other preferences', inputs: [{ key: 'preferences.other', label: 'Other preferences', type: 'textarea', hint: 'Anything else, for example “contact me by email only”.' }] },
    ],
  },
  {
    id: 'payment',
    saved: 'your payment hints',
    title: 'Payment hints',
    intro: 'Hints only, to recognise how you pay. Never keep a full card number or a security code here.',
    fields: [
      { path: 'payment.method', label: 'Preferred way to pay', inputs: [{ key: 'payment.method', label: 'Preferred way to pay', hint: 'For example card, bank transfer, cash on delivery.' }] },
      { path: 'payment.card_hint', label: 'Card you pay with', inputs: [{ key: 'payment.card_hint', label: 'Card you pay with', autocomplete: 'off', hint: 'A hint such as “Visa ending 4242”.', check: cardHintProblem }] },
    ],
  },
];

/** Every path the profile shows; the rest of the records are "other things". */
export const PROFILE_PATHS = new Set(SECTIONS.flatMap((s) => s.fields.map((f) => f.path)));

/**
 * The value a field stores, from what was typed: text for a single input,
 * an object of the non-empty parts for a block. Undefined means "nothing":
 * the record is removed.
 * @param {ProfileField} fieldDef
 * @param {Record<string, string>} typed
 */
export function valueFromTyped(fieldDef, typed) {
  if (fieldDef.block) {
    /** @type {Record<string, string>} */
    const value = {};
    for (const input of fieldDef.inputs) {
      const text = (typed[input.key] || '').trim();
      if (text) value[input.key] = text;
    }
    return Object.keys(value).length ? value : undefined;
  }
  const text = (typed[fieldDef.inputs[0].key] || '').trim();
  return text ? text : undefined;
}

/**
 * What the inputs show for a stored value: the reverse of valueFromTyped.
 * A value of another shape (a list, stored by hand earlier) is shown as
 * its text so nothing is hidden.
 * @param {ProfileField} fieldDef
 * @param {unknown} value
 * @returns {Record<string, string>}
 */
export function typedFromValue(fieldDef, value) {
  /** @type {Record<string, string>} */
  const typed = {};
  if (fieldDef.block) {
    const object = value && typeof value === 'object' && !Array.isArray(value) ? /** @type {Record<string, unknown>} */ (value) : {};
    for (const input of fieldDef.inputs) {
      const part = object[input.key];
      typed[input.key] = part === undefined || part === null ? '' : String(part);
    }
    return typed;
  }
  const key = fieldDef.inputs[0].key;
  if (value === undefined || value === null) typed[key] = '';
  else if (typeof value === 'string') typed[key] = value;
  else if (Array.isArray(value)) typed[key] = value.join(', ');
  else if (typeof value === 'object') typed[key] = partsInReadingOrder(/** @type {Record<string, unknown>} */ (value)).join(' ');
  else typed[key] = String(value);
  return typed;
}

// Parts of a name kept as an object, in the order a name is read; the
// vault may hand an object back with its keys sorted (family before given).
const NAME_ORDER = ['prefix', 'given', 'given_name', 'first', 'first_name', 'middle', 'family', 'family_name', 'last', 'last_name', 'suffix'];

/** The plain values of an object, name parts first in reading order. */
function partsInReadingOrder(object) {
  const keys = Object.keys(object);
  const ordered = [...NAME_ORDER.filter((k) => keys.includes(k)), ...keys.filter((k) => !NAME_ORDER.includes(k))];
  return ordered.map((k) => object[k]).filter((v) => v !== null && typeof v !== 'object').map(String);
}

/**
 * Whether the person changed a field: what they typed differs from what
 * was shown for the stored value. Compared as shown, not as stored, so a
 * value of another shape (a name kept as given and family parts) is only
 * rewritten when the person actually edits it.
 * @param {ProfileField} fieldDef
 * @param {Record<string, string>} typed
 * @param {unknown} storedValue
 */
export function isChanged(fieldDef, typed, storedValue) {
  const shown = typedFromValue(fieldDef, storedValue);
  return fieldDef.inputs.some((input) => (typed[input.key] || '').trim() !== (shown[input.key] || '').trim());
}

/**
 * The path of something the person adds by name: "Shoe size" becomes
 * other.shoe_size. Letters lose their accents; anything else becomes "_".
 * Returns null when nothing usable is left (the name was only symbols).
 * @param {string} label
 */
export function pathForLabel(label) {
  const slug = label
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 64)
    .replace(/_+$/, '');
  return slug ? `other.${slug}` : null;
}
