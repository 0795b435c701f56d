// @ts-check
// "Choose a passphrase" block shared by the setup, recovery and settings
// forms: passphrase + repeat, the rule, a strength hint in words, and a
// show toggle.

import { el, uid } from './dom.js';
import { field, passphraseInput, showPassphraseToggle } from './form.js';
import {
  MIN_PASSPHRASE_LENGTH, PASSPHRASE_RULE, passphraseLength, passphraseStrength,
} from './strength.js';

/**
 * revealAlso: other passphrase inputs of the same form (the current
 * passphrase) that the one "Show passphrase" box should reveal too.
 */
export function newPassphraseFields({ label = 'Passphrase', repeatLabel = 'Repeat the passphrase', revealAlso = [] } = {}) {
  // Under the field: a bar and the strength in words. Both stay hidden until
  // something is typed, so an empty bar never looks like a divider. The bar
  // is decoration only: the words say the same for screen readers.
  const bar = el('div', { class: 'strength', 'data-score': '0', 'aria-hidden': 'true' }, el('span'));
  const words = el('p', { class: 'strength-text' });
  const feedback = el('div', { class: 'strength-feedback', id: uid('strength'), hidden: true }, bar, words);

  const first = field({
    label,
    hint: PASSPHRASE_RULE,
    control: passphraseInput({ autocomplete: 'new-password', name: 'new-passphrase' }),
    after: feedback,
  });
  first.control.setAttribute('minlength', String(MIN_PASSPHRASE_LENGTH));

  const second = field({
    label: repeatLabel,
    control: passphraseInput({ autocomplete: 'new-password', name: 'new-passphrase-repeat' }),
  });
  const toggle = showPassphraseToggle([...revealAlso, first.control, second.control]);

  first.control.addEventListener('input', () => {
    const { score, text } = passphraseStrength(first.control.value);
    bar.dataset.score = String(score);
    words.textContent = text;
    feedback.hidden = text === '';
    first.clearError();
  });
  second.control.addEventListener('input', () => second.clearError());

  return {
    nodes: [first.root, second.root, toggle.root],
    inputs: [first.control, second.control],
    get value() {
      return first.control.value;
    },
    /** Show problems next to the fields; return the first bad input or null. */
    validate() {
      first.clearError();
      second.clearError();
      const value = first.control.value;
      if (passphraseLength(value) < MIN_PASSPHRASE_LENGTH) {
        first.setError(`Your passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters.`);
        return first.control;
      }
      if (second.control.value !== value) {
        second.setError('The two passphrases are not the same. Type the same passphrase twice.');
        return second.control;
      }
      return null;
    },
    /** Put a server-side complaint (e.g. too weak) next to the field. */
    setError(message) {
      first.setError(message);
    },
    clear() {
      first.control.value = '';
      second.control.value = '';
      first.control.dispatchEvent(new Event('input'));
    },
  };
}
