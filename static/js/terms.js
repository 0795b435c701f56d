// @ts-check
// Helpers for the terms screen: plain names for the bases, the short
// version code and plain summary the person sees instead of hashes and
// codes, and finding a problem's location (such as
// "permission[0].constraint[1]") in the JSON text the person typed.

import { el } from './dom.js';

// IEEE 7012 roster agreements the vault supports, in the person's words.
const BASES = {
  'SD-BASE': 'Service delivery only',
  'SD-BASE-DP': 'Service delivery with data portability',
  'PDC-INTENT': 'Intentcasting: answer my wishes with offers',
};

/** "Service delivery only": the basis in words, never its code. */
export function basisLabel(basis) {
  return BASES[basis] || 'A standard agreement';
}

/**
 * A short code to tell versions apart ("9f86d081"): the start of the
 * terms' fingerprint, which brands accept in full. The full one stays in
 * the Advanced view.
 */
export function versionCode(hash) {
  const hex = String(hash || '').replace(/^sha256:/, '');
  return hex.slice(0, 8) || '—';
}

/**
 * The server's summary in plain words, as a list. `plain_summary` has no
 * code in it; an older server only sends `summary`, whose parenthesised
 * ids are taken out.
 */
export function plainSummary(data) {
  const plain = data && Array.isArray(data.plain_summary) ? data.plain_summary : null;
  const raw = plain || (data && Array.isArray(data.summary) ? data.summary.map(withoutCodes) : []);
  const sentences = raw.filter((s) => typeof s === 'string' && s);
  if (!sentences.length) return el('p', { class: 'hint' }, 'The vault sent no plain-language summary for these terms.');
  return el('div', { class: 'summary-block' },
    el('p', { class: 'summary-label' }, 'In plain words:'),
    el('ul', { class: 'summary' }, sentences.map((s) => el('li', {}, s))),
  );
}

/** "…your email address (pd:EmailAddress)…" without the "(pd:…)". */
function withoutCodes(sentence) {
  return String(sentence).replace(/ \((?:[a-z0-9]+:[A-Za-z0-9-]+(?:, )?)+\)/g, '').replace(/ \(distribute\)/g, '');
}

/**
 * The parts of a location: "permission[0].constraint[1]" gives
 * ["permission", 0, "constraint", 1]. null for locations that name the
 * document as a whole ("the terms") or cannot be read.
 */
export function pathSegments(at) {
  if (typeof at !== 'string' || !at || at === 'the terms') return null;
  const parts = [];
  const pattern = /([^.[\]]+)|\[(\d+)\]/g;
  let match;
  while ((match = pattern.exec(at)) !== null) {
    parts.push(match[2] !== undefined ? Number(match[2]) : match[1]);
  }
  return parts.length ? parts : null;
}

function pathKey(parts) {
  return parts.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${p}`)).join('');
}

/**
 * Where a location is in the text: { start, end, line } (offsets into the
 * text, line counted from 1), or null. A location the text does not have
 * (a missing property is reported on its parent) falls back to the nearest
 * enclosing one that it does. The text must already be valid JSON.
 */
export function locate(text, at) {
  const want = pathSegments(at);
  if (!want) return null;
  let ranges;
  try {
    ranges = valueRanges(text);
  } catch {
    return null;
  }
  for (let n = want.length; n > 0; n -= 1) {
    const range = ranges.get(pathKey(want.slice(0, n)));
    if (range) return { ...range, line: lineOf(text, range.start) };
  }
  return null;
}

function lineOf(text, offset) {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i += 1) if (text[i] === '\n') line += 1;
  return line;
}

/**
 * Every value's place in the text, by its path. An object member's range
 * starts at its name, so selecting it shows the name too.
 */
function valueRanges(text) {
  const ranges = new Map();
  let i = 0;

  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i])) i += 1;
  };
  const expect = (char) => {
    if (text[i] !== char) throw new Error(`expected ${char} at ${i}`);
    i += 1;
  };
  const string = () => {
    const start = i;
    expect('"');
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    expect('"');
    return JSON.parse(text.slice(start, i));
  };
  const value = (path, start) => {
    skipSpace();
    const from = start === undefined ? i : start;
    const char = text[i];
    if (char === '{') {
      i += 1;
      skipSpace();
      if (text[i] === '}') i += 1;
      else {
        for (;;) {
          skipSpace();
          const keyStart = i;
          const key = string();
          skipSpace();
          expect(':');
          value([...path, key], keyStart);
          skipSpace();
          if (text[i] === ',') { i += 1; continue; }
          expect('}');
          break;
        }
      }
    } else if (char === '[') {
      i += 1;
      skipSpace();
      if (text[i] === ']') i += 1;
      else {
        for (let index = 0; ; index += 1) {
          value([...path, index]);
          skipSpace();
          if (text[i] === ',') { i += 1; continue; }
          expect(']');
          break;
        }
      }
    } else if (char === '"') {
      string();
    } else {
      while (i < text.length && !/[\s,\]}]/.test(text[i])) i += 1;
    }
    if (path.length) ranges.set(pathKey(path), { start: from, end: i });
  };

  value([]);
  return ranges;
}

/**
 * The server's message without the location it starts with, which the
 * screen shows on its own line: "permission[0].action: x" gives "x", and
 * "permission[0] would widen SD-BASE: x" gives "This part would widen …".
 */
export function withoutLocation(message, at) {
  const text = String(message || '').trim();
  if (!at) return text;
  if (text.startsWith(`${at}: `)) return text.slice(at.length + 2);
  if (text.startsWith(`${at} `)) return `This part ${text.slice(at.length + 1)}`;
  return text;
}

// The order the templates are written in. The vault answers with the
// properties sorted by name (which puts "uid" last and "target" after
// "constraint"); the order means nothing to the vault, whose fingerprint
// does not depend on it, so the editor shows the order people read best.
const READING_ORDER = [
  '@context', '@id', '@value', '@type', 'uid', 'assigner', 'basis', 'title', 'description',
  'permission', 'prohibition', 'obligation', 'action', 'target', 'constraint',
  'leftOperand', 'operator', 'rightOperand',
];

function readingOrder(value) {
  if (Array.isArray(value)) return value.map(readingOrder);
  if (!value || typeof value !== 'object') return value;
  const rank = (key) => {
    const i = READING_ORDER.indexOf(key);
    return i === -1 ? READING_ORDER.length : i;
  };
  // Array.prototype.sort is stable: unknown keys keep their order, last.
  const keys = Object.keys(value).sort((a, b) => rank(a) - rank(b));
  // The context is a fixed block copied from the templates; leave it be.
  return Object.fromEntries(keys.map((k) => [k, k === '@context' ? value[k] : readingOrder(value[k])]));
}

/** The document as the editor shows it: two-space indented JSON, in reading order. */
export function prettyJson(value) {
  return JSON.stringify(readingOrder(value), null, 2);
}
