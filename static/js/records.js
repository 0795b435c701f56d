// @ts-check
// Helpers about records that do not touch the page layout.

import { api } from './api.js';
import { el } from './dom.js';
import { SECTIONS } from './profile.js';

// The profile's own names for its fields ("Home address" for addresses.home).
const PROFILE_LABELS = new Map(SECTIONS.flatMap((s) => s.fields.map((f) => [f.path, f.label])));

/** Every record, following the list's pages (they come in no particular order). */
export async function fetchAllRecords() {
  const records = [];
  let cursor = null;
  do {
    const url = cursor
      ? `/api/v1/records?limit=1000&cursor=${encodeURIComponent(cursor)}`
      : '/api/v1/records?limit=1000';
    const { data } = await api('GET', url);
    records.push(...((data && data.records) || []));
    cursor = data && data.next_cursor;
  } while (cursor);
  return records;
}

/**
 * Fill in what the list needs even if the server left something out:
 * collection/field from the path, and the ETag from the response header.
 */
export function normalizeRecord(record, headers = null) {
  const result = { ...record };
  const parts = String(result.path || '').split('.');
  if (!result.collection) result.collection = parts[0] || '';
  if (!result.field) result.field = parts.slice(1).join('.');
  if (!result.etag) {
    const header = headers && headers.get('ETag');
    if (header) result.etag = header;
    else if (result.version !== undefined) result.etag = `"${result.version}"`;
  }
  return result;
}

/** Sort by collection, then field, for a stable, predictable list. */
export function sortRecords(records) {
  return [...records].sort((a, b) =>
    a.collection.localeCompare(b.collection) || a.field.localeCompare(b.field) || a.path.localeCompare(b.path));
}

/** Group sorted records by collection: [[collection, records], ...]. */
export function groupByCollection(records) {
  const groups = new Map();
  for (const record of records) {
    if (!groups.has(record.collection)) groups.set(record.collection, []);
    groups.get(record.collection).push(record);
  }
  return [...groups.entries()];
}

// Names for fields the vault knows well (the same ones it has a default kind
// of data for). Keyed by the field's last part; `profile` ones only count
// in the profile collection, as "name" elsewhere may mean anything.
const ANY_COLLECTION_TITLES = {
  email: 'Email address',
  phone: 'Phone number',
  mobile: 'Mobile number',
  telephone: 'Telephone number',
};
const PROFILE_TITLES = {
  name: 'Name',
  given_name: 'Given name',
  family_name: 'Family name',
  nickname: 'Nickname',
  birthdate: 'Date of birth',
  birth_date: 'Date of birth',
  birthday: 'Date of birth',
  gender: 'Gender',
  language: 'Language',
  languages: 'Languages',
  nationality: 'Nationality',
};

/** "home_city" -> "Home city". */
export function humanize(part) {
  const words = String(part).replace(/[_-]+/g, ' ').trim();
  return words ? words[0].toUpperCase() + words.slice(1) : '';
}

/**
 * A title a person can read for a record: "Email address" for
 * contact.email, "Home › City" for addresses.home.city, "Shoe size" for
 * other.shoe_size (added by that name). The path itself is never shown.
 */
export function recordTitle(record) {
  const profileLabel = PROFILE_LABELS.get(record.path);
  if (profileLabel) return profileLabel;
  const parts = String(record.field || '').split('.').filter(Boolean);
  if (parts.length === 1) {
    const [field] = parts;
    const known = ANY_COLLECTION_TITLES[field] || (record.collection === 'profile' ? PROFILE_TITLES[field] : null);
    if (known) return known;
  }
  return parts.map(humanize).join(' › ') || record.path;
}

/** How a value is shown: strings as text, anything else as compact JSON. */
export function valueNode(value) {
  if (typeof value === 'string') {
    if (value === '') return el('p', { class: 'value value-empty' }, '(empty text)');
    return el('p', { class: 'value value-text' }, value);
  }
  let json;
  try {
    json = JSON.stringify(value);
  } catch {
    json = String(value);
  }
  return el('p', { class: 'value' }, el('code', { class: 'value-json' }, json === undefined ? 'null' : json));
}

/** Text to put in the editor for a stored value. */
export function valueToEditorText(value) {
  if (typeof value === 'string') return { text: value, json: false };
  return { text: JSON.stringify(value, null, 2), json: true };
}
