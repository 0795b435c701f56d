// @ts-check
// A simple, honest passphrase strength hint. It only looks at length and at
// how many kinds of characters are used; it is a nudge, not a guarantee.

export const MIN_PASSPHRASE_LENGTH = 12;

/** Length in characters as a person counts them (not UTF-16 units). */
export function passphraseLength(passphrase) {
  return [...passphrase].length;
}

/** The rule, shown all the time next to the passphrase field. */
export const PASSPHRASE_RULE = `At least ${MIN_PASSPHRASE_LENGTH} characters. A few unrelated words work well.`;

/**
 * Returns { score: 0..4, text } where text is a sentence for the person
 * ('' while nothing is typed: the rule above says what to do).
 * score 0 means "not acceptable yet".
 */
export function passphraseStrength(passphrase) {
  const length = passphraseLength(passphrase);
  if (length === 0) return { score: 0, text: '' };
  if (length < MIN_PASSPHRASE_LENGTH) {
    const missing = MIN_PASSPHRASE_LENGTH - length;
    return { score: 0, text: `Too short: ${missing} more character${missing === 1 ? '' : 's'} needed.` };
  }

  const unique = new Set(passphrase).size;
  if (unique < 5) {
    return { score: 1, text: 'Weak: it repeats the same few characters. Use different words or characters.' };
  }

  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /\s/, /[^a-zA-Z0-9\s]/]
    .filter((pattern) => pattern.test(passphrase)).length;

  let score = 1;
  if (length >= 16) score += 1;
  if (length >= 24) score += 1;
  if (kinds >= 3) score += 1;
  score = Math.min(score, 4);

  const texts = {
    1: 'Fair: long enough, but easy to guess. Make it longer, or mix in capitals, digits, spaces or symbols.',
    2: 'Good. A few more words would make it stronger.',
    3: 'Strong.',
    4: 'Very strong.',
  };
  return { score, text: texts[score] };
}
