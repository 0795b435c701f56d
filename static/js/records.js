// @ts-check
// Helpers about records that do not touch the page layout.

import { api } from './api.js';
import { el } from './dom.js';

// Format of a record path, as enforced by the server: 2 to 4 dot-separated
// parts of lowercase letters, digits, "_" and "-".
export const PATH_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+){1,3}$/;

export const PATH_HELP = 'Write it as parts separated by dots, for example contact.email or addresses.home.city: 2 to 4 parts, each made of lowercase letters, digits, “_” or “-”. The first part groups related data together.';

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

/** Why a path is not acceptable, in words, or null when it is fine. */
export function pathProblem(path) {
  if (!path) return 'Enter a path, for example contact.email.';
  if (PATH_PATTERN.test(path)) return null;
  if (/[A-Z]/.test(path)) return 'Use lowercase letters only, for example contact.email.';
  if (/\s/.test(path)) return 'Spaces are not allowed. Use “_” or “-” between words, for example addresses.home_city.';
  const parts = path.split('.');
  if (parts.some((part) => part === '')) return 'Each part needs at least one character: check for a dot at the start or end, or two dots in a row.';
  if (parts.length < 2) return 'Use at least 2 parts separated by a dot, for example contact.email.';
  if (parts.length > 4) return 'Use at most 4 parts separated by dots.';
  return 'Use only lowercase letters, digits, “_” and “-”, with dots between the parts.';
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
 * contact.email, "Home › City" for addresses.home.city. The path itself is
 * shown next to it as secondary text.
 */
export function recordTitle(record) {
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
