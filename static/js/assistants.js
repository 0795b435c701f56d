// @ts-check
// The person's own AI assistants (an app such as Claude or ChatGPT that they
// connect to their vault): the plain names of the parts of the profile an
// assistant may read, and Settings → "Your assistants", which lists the
// connected ones with what each may do and read, when it was last used, and
// "Disconnect". The person never sees scopes, client ids or record paths.

import { api, ApiError, Interrupted } from './api.js';
import { el, announce, setBusy, messageBox, formatDate, focusElement } from './dom.js';
import { actions } from './form.js';
import { SECTIONS } from './profile.js';
import { fieldLabel } from './grants.js';
import { confirmInline, errorText, fact } from './cards.js';

/** The profile's own label of each path ("Email address" for contact.email). */
export const PROFILE_LABELS = new Map(SECTIONS.flatMap((s) => s.fields.map((f) => [f.path, f.label])));

/** The plain name of a record path: the profile's label, or a title made from the path. */
export function partName(path) {
  const known = PROFILE_LABELS.get(path);
  if (known) return known;
  // "Member number (memberships.acme)" → "Member number"; a bare path stays as it is.
  const label = fieldLabel(path);
  return label.replace(/ \([^)]*\)$/, '');
}

/** "Email address, Phone number and Home address". */
export function listWords(items) {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

export function assistantsSection() {
  const body = el('div', { 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Looking for connected assistants…'));
  const section = el('section', { 'aria-labelledby': 'assistants-heading', class: 'assistants' },
    el('h2', { id: 'assistants-heading', tabindex: '-1' }, 'Your assistants'),
    el('p', {}, 'AI assistants you connected to your vault, such as Claude or ChatGPT. Each can do only what you allowed when you connected it. Disconnect one and it loses access at once.'),
    body,
  );
  load(body);
  return section;
}

async function load(body, notice = null) {
  body.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', '/api/v1/agents');
    if (!body.isConnected) return;
    const agents = data && Array.isArray(data.agents) ? data.agents : [];
    const nodes = agents.length
      ? [el('ul', { class: 'cards' }, agents.map((agent) => card(agent, body)))]
      : [el('p', { class: 'empty' }, 'No assistant is connected. To connect one, add your vault’s address followed by /mcp in your assistant’s settings; it then brings you here to approve it.')];
    if (notice) nodes.unshift(messageBox(notice, 'success'));
    body.replaceChildren(...nodes);
  } catch (err) {
    if (err instanceof Interrupted || !body.isConnected) return;
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => load(body));
    const message = `Could not load your assistants. ${errorText(err)}`;
    body.replaceChildren(messageBox(message, 'error'), actions(retry));
  } finally {
    body.removeAttribute('aria-busy');
  }
}

function card(agent, body) {
  const name = agent.name || 'An assistant';
  const scopes = Array.isArray(agent.scopes) ? agent.scopes : [];
  const fields = Array.isArray(agent.fields) ? agent.fields : [];
  const readsProfile = scopes.some((s) => s.scope === 'agent.records.read');
  const disconnect = el('button', { type: 'button', class: 'button danger' }, 'Disconnect');
  const item = el('li', { class: 'card assistant-card' },
    el('h3', { class: 'card-title' }, name),
    el('dl', { class: 'facts' },
      fact('It may', el('ul', { class: 'plain-list' }, scopes.map((s) => el('li', {}, s.words)))),
      readsProfile ? fact('It may read', fields.length ? listWords(fields.map(partName)) : 'Nothing from your profile') : null,
      fact('Connected', formatDate(agent.approved_at)),
      fact('Last used', agent.last_used_at ? formatDate(agent.last_used_at) : 'Not yet'),
    ),
    el('div', { class: 'card-actions' }, disconnect),
    el('div', { class: 'confirm-slot' }),
  );
  disconnect.addEventListener('click', () => confirmInline(item, {
    question: `Disconnect ${name}?`,
    explanation: `${name} loses access to your vault at once. To use it with your vault again, connect it again from the assistant.`,
    yesLabel: 'Disconnect',
    onYes: async ({ yes, error }) => {
      setBusy(yes, true, 'Disconnecting…');
      try {
        await api('DELETE', `/api/v1/agents/${encodeURIComponent(agent.client_id)}`);
        const text = `${name} is disconnected: it can no longer reach your vault.`;
        announce(text);
        await load(body, text);
        const heading = document.getElementById('assistants-heading');
        if (heading) focusElement(heading);
      } catch (err) {
        if (err instanceof Interrupted) return;
        setBusy(yes, false);
        if (err instanceof ApiError && err.status === 404) {
          await load(body, `${name} was already disconnected.`);
          return;
        }
        error.show(`Not disconnected: ${errorText(err)}`);
      }
    },
  }));
  return item;
}
