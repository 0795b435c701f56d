// @ts-check
// Wishes: "Your assistant asks". The person's own AI assistant (connected to
// the vault) cannot accept an offer or share data by itself; it asks, and the
// request waits here. Each card says which assistant asks, for which brand's
// offer, exactly which of the person's data saying yes would share, and the
// assistant's reason, shown as its words. Yes runs the ordinary acceptance;
// no leaves the offer as it was.

import { api, Interrupted } from '../../api.js';
import { el, messageBox, announce, setBusy, focusElement } from '../../dom.js';
import { actions } from '../../form.js';
import { errorText, fact } from '../../cards.js';

/**
 * @typedef {{
 *   id: string, status: string, offer_id: string, intent_id: string,
 *   brand_name: string, agent_name: string,
 *   fields: { path: string, label: string }[], agent_reason: string,
 *   offer_name: string | null, offer_description: string | null,
 *   offer_price: string | null, offer_status: string | null,
 * }} Proposal
 */

/**
 * GET /api/v1/proposals and show the ones waiting for an answer in `host`;
 * the section stays hidden when none waits.
 * @param {HTMLElement} section
 * @param {HTMLElement} host
 * @param {() => void} onAnswered called after a yes or a no (the wishes change)
 */
export async function loadProposals(section, host, onAnswered) {
  try {
    const { data } = await api('GET', '/api/v1/proposals');
    if (!host.isConnected) return;
    /** @type {Proposal[]} */
    const all = (data && Array.isArray(data.proposals)) ? data.proposals : [];
    const waiting = all.filter((p) => p.status === 'pending');
    section.hidden = waiting.length === 0;
    host.replaceChildren(el('ul', { class: 'cards proposals' },
      waiting.map((p) => proposalItem(p, section, host, onAnswered))));
  } catch (err) {
    if (err instanceof Interrupted || !host.isConnected) return;
    section.hidden = false;
    host.replaceChildren(messageBox(`Could not load what your assistant asks. ${errorText(err)}`, 'error'));
  }
}

/**
 * @param {Proposal} p
 * @param {HTMLElement} section
 * @param {HTMLElement} host
 * @param {() => void} onAnswered
 */
function proposalItem(p, section, host, onAnswered) {
  const agent = p.agent_name || 'Your assistant';
  const brand = p.brand_name || 'a brand';
  const shares = Array.isArray(p.fields) ? p.fields : [];
  const yes = el('button', { type: 'button', class: 'button primary' }, 'Yes, accept the offer');
  const no = el('button', { type: 'button', class: 'button' }, 'No');
  const notice = el('div', { class: 'notice-slot', 'aria-live': 'polite' });
  const title = el('h3', { class: 'card-title', tabindex: '-1' }, `${agent} asks you to accept ${brand}’s offer`);
  const item = el('li', { class: 'card proposal', 'data-id': p.id },
    title,
    el('dl', { class: 'facts' },
      fact('The offer, as the brand wrote it', p.offer_name || ''),
      fact('Price', p.offer_price || ''),
      fact('The brand’s description', p.offer_description || ''),
    ),
    el('p', { class: 'proposal-reason-label' }, `Why, in ${agent}’s own words:`),
    el('blockquote', { class: 'proposal-reason' }, p.agent_reason || ''),
    shares.length
      ? el('div', { class: 'proposal-shares' },
        el('p', {}, `If you say yes, ${brand} can read this for 24 hours:`),
        el('ul', {}, shares.map((f) => el('li', {}, sentenceCase(f.label || 'some of your data')))))
      : el('p', { class: 'proposal-shares' }, `If you say yes, nothing of your data is shared with ${brand}.`),
    notice,
    el('div', { class: 'card-actions' }, actions(yes, no)),
  );
  const answer = async (button, verb) => {
    setBusy(button, true, verb === 'confirm' ? 'Accepting…' : 'Saying no…');
    yes.disabled = true;
    no.disabled = true;
    try {
      await api('POST', `/api/v1/proposals/${encodeURIComponent(p.id)}/${verb}`);
      announce(verb === 'confirm'
        ? `You accepted ${brand}’s offer.`
        : `You said no to ${agent}.`);
      onAnswered();
      await loadProposals(section, host, onAnswered);
    } catch (err) {
      if (err instanceof Interrupted) return;
      setBusy(button, false);
      yes.disabled = false;
      no.disabled = false;
      notice.replaceChildren(messageBox(errorText(err), 'error'));
      focusElement(title);
    }
  };
  yes.addEventListener('click', () => answer(yes, 'confirm'));
  no.addEventListener('click', () => answer(no, 'refuse'));
  return item;
}

/** "your email address" → "Your email address". */
function sentenceCase(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
