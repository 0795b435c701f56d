// @ts-check
// The box that shows a recovery key once, with a Copy button: used when the
// vault is created and when the person makes a new key in Settings.

import { el, announce, copyText } from './dom.js';
import { actions } from './form.js';

export function recoveryKeyBox(key, { label = 'Your recovery key' } = {}) {
  const keyText = el('p', { class: 'recovery-key', id: 'recovery-key' }, key);
  const copyButton = el('button', { type: 'button', class: 'button' }, 'Copy');
  const copyStatus = el('p', { class: 'hint copy-status' });

  copyButton.addEventListener('click', async () => {
    const ok = await copyText(key, keyText);
    const message = ok
      ? 'Recovery key copied. Paste it somewhere safe, such as a password manager, or write it down.'
      : 'Could not copy automatically. The key is selected: copy it by hand, or write it down.';
    copyStatus.textContent = message;
    announce(message);
  });

  return el('div', { class: 'key-box' },
    el('p', { class: 'key-label' }, label),
    keyText,
    actions(copyButton),
    copyStatus,
  );
}
