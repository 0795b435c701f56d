// @ts-check
// Consent for an assistant: an AI app the person uses (Claude, ChatGPT…)
// asked through /oauth/authorize to connect to the vault. Not a brand: it
// acts for the person. Shows what it asks to do in plain words (each can be
// unticked) and lets the person tick which parts of their profile it may
// read (none by default); then Connect or Don't connect, and the browser goes
// back to the assistant with the answer.

import { api, ApiError, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce, setBusy } from '../dom.js';
import { checkbox, fieldset, formError, actions } from '../form.js';
import { errorText, fact } from '../cards.js';
import { SECTIONS } from '../profile.js';
import { partName } from '../assistants.js';

const READ_PROFILE = 'agent.records.read';

/** The consent screen for the assistant's request `requestId`. */
export function renderAgentConsent(container, requestId) {
  const view = {
    container,
    requestId,
    heading: el('h1', {}, 'An assistant asks to connect'),
    body: el('div', { class: 'consent', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading the request…')),
    timer: null,
    answered: false,
  };
  container.append(view.heading, view.body);
  load(view);
  return () => window.clearTimeout(view.timer);
}

function homeLink() {
  return el('p', { class: 'aside-link' }, el('a', { href: '#/settings' }, 'See your connected assistants in Settings'));
}

function showClosed(view, name = null) {
  window.clearTimeout(view.timer);
  const heading = el('h2', { tabindex: '-1' }, 'This request is no longer open');
  view.body.replaceChildren(
    el('div', { class: 'message message-warning consent-closed' },
      heading,
      el('p', {}, `It was already answered, or it expired: an assistant’s request stays open for 10 minutes. Nothing was connected. To connect ${name || 'your assistant'}, start again from the assistant.`),
    ),
    homeLink(),
  );
  announce('This request is no longer open. Nothing was connected.', { assertive: true });
  focusElement(heading);
}

async function load(view) {
  view.body.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', `/api/v1/agents/consent/${encodeURIComponent(view.requestId)}`);
    if (!view.container.isConnected) return;
    if (!data || !Array.isArray(data.scopes) || !Array.isArray(data.fields)) {
      throw new ApiError(0, 'bad_answer', 'Your vault answered in a way this page does not understand. Reload the page; if it keeps happening, the vault may need an update.');
    }
    showRequest(view, data);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (err instanceof ApiError && err.status === 404) {
      showClosed(view);
      return;
    }
    const retry = el('button', { type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', () => load(view));
    const message = `Could not load the request. ${errorText(err)}`;
    view.body.replaceChildren(messageBox(message, 'error'), actions(retry));
    announce(message, { assertive: true });
  } finally {
    view.body.removeAttribute('aria-busy');
  }
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/** Where the assistant runs, from the address it sends the browser back to. */
function whereItRuns(redirectUri) {
  try {
    const url = new URL(redirectUri);
    if (['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname)) return 'An app on this computer';
    return url.host;
  } catch {
    return '';
  }
}

/**
 * The parts of the profile to choose from: every profile field (in the
 * profile's order, even one still empty), then the person's other records.
 */
function fieldChoices(request) {
  const present = new Map(request.fields.map((f) => [f.path, f]));
  const known = SECTIONS.flatMap((s) => s.fields.map((f) => f.path));
  const others = request.fields.map((f) => f.path).filter((p) => !known.includes(p));
  const before = new Set(Array.isArray(request.approved_fields) ? request.approved_fields : []);
  return [...known, ...others].map((path) => {
    const record = present.get(path);
    const check = checkbox({
      label: partName(path),
      checked: before.has(path),
      hint: record ? `Now: ${record.masked_value || '(hidden)'}` : 'Empty for now.',
    });
    check.input.value = path;
    check.input.name = 'fields';
    check.root.classList.add('consent-field');
    return check;
  });
}

function showRequest(view, request) {
  const name = request.client_name || 'Your assistant';
  const site = hostOf(request.client_uri);
  const runs = whereItRuns(request.redirect_uri);

  const scopeChecks = request.scopes.map((s) => {
    const check = checkbox({ label: s.words, checked: true });
    check.input.value = s.scope;
    check.input.name = 'scopes';
    return check;
  });
  const can = fieldset({
    legend: 'What it may do',
    hint: 'Untick anything you do not want it to do.',
    className: 'consent-scopes',
    children: el('div', { class: 'check-list' }, scopeChecks.map((c) => c.root)),
  });

  const asksProfile = request.scopes.some((s) => s.scope === READ_PROFILE);
  const fieldChecks = asksProfile ? fieldChoices(request) : [];
  const reads = fieldset({
    legend: 'What it may read from your profile',
    hint: 'Tick only what it needs. It sees the full values of what you tick, and nothing else.',
    className: 'consent-fields',
    children: el('div', { class: 'check-list' }, fieldChecks.map((c) => c.root)),
  });
  const readCheck = scopeChecks.find((c) => c.input.value === READ_PROFILE);
  const syncReads = () => {
    const on = !!readCheck && readCheck.input.checked;
    reads.root.hidden = !on;
    for (const c of fieldChecks) c.input.disabled = !on;
  };
  if (readCheck) readCheck.input.addEventListener('change', syncReads);
  syncReads();
  for (const c of scopeChecks) c.input.addEventListener('change', () => can.clearError());

  const error = formError();
  const connect = el('button', { type: 'submit', class: 'button primary' }, 'Connect');
  const deny = el('button', { type: 'button', class: 'button' }, 'Don’t connect');
  const closesAt = Date.now() + (Number(request.expires_in) || 600) * 1000;
  const openFor = el('p', { class: 'hint consent-open-for' });

  const form = el('form', { class: 'form consent-form', novalidate: true, 'aria-labelledby': 'consent-assistant' },
    can.root,
    asksProfile ? reads.root : null,
    error.node,
    actions(connect, deny),
    openFor,
  );

  view.body.replaceChildren(
    el('p', { class: 'lead' }, `${name} wants to work with your vault for you. It is an assistant, not a brand: choose what it may do and read, then connect it or not.`),
    el('section', { class: 'consent-brand card', 'aria-labelledby': 'consent-assistant' },
      el('h2', { id: 'consent-assistant' }, name),
      el('dl', { class: 'facts' },
        fact('Runs on', runs || null),
        fact('Website', site || null),
      ),
      el('p', { class: 'hint' }, 'This is the name the assistant gave itself. Connect it only if you just asked your assistant to connect to your vault.'),
      request.approved_fields ? el('p', { class: 'hint' }, 'You connected this assistant before; connecting again replaces what you allowed then.') : null,
    ),
    form,
    el('p', { class: 'hint' }, 'Whatever you answer, you go back to the assistant. You can disconnect it at any time in Settings.'),
  );

  const tick = () => {
    const left = Math.round((closesAt - Date.now()) / 60_000);
    if (Date.now() >= closesAt) {
      if (!view.answered) showClosed(view, name);
      return;
    }
    openFor.textContent = left >= 1
      ? `This request stays open for about ${left} ${left === 1 ? 'minute' : 'minutes'}.`
      : 'This request closes in less than a minute.';
    view.timer = window.setTimeout(tick, Math.min(30_000, Math.max(closesAt - Date.now(), 0) + 50));
  };
  tick();
  announce(`${name}, an assistant, asks to connect to your vault.`);

  async function answer(decisionWord, button) {
    error.clear();
    can.clearError();
    const body = { decision: decisionWord };
    if (decisionWord === 'approve') {
      const scopes = scopeChecks.filter((c) => c.input.checked).map((c) => c.input.value);
      if (!scopes.length) {
        const text = 'Tick at least one thing it may do, or press Don’t connect.';
        can.setError(text);
        announce(text, { assertive: true });
        scopeChecks[0].input.focus();
        return;
      }
      body.scopes = scopes;
      body.fields = scopes.includes(READ_PROFILE)
        ? fieldChecks.filter((c) => c.input.checked).map((c) => c.input.value)
        : [];
    }
    for (const b of [connect, deny]) b.disabled = true;
    setBusy(button, true, decisionWord === 'approve' ? 'Connecting…' : 'Saying no…');
    try {
      const { data } = await api('POST', `/api/v1/agents/consent/${encodeURIComponent(view.requestId)}`, { body });
      const target = data && data.redirect_to;
      if (!safeReturn(target, request.redirect_uri)) {
        throw new ApiError(0, 'bad_answer', 'Your vault recorded your answer but gave no valid address to go back to the assistant. Go back to it yourself.');
      }
      view.answered = true;
      window.clearTimeout(view.timer);
      const text = decisionWord === 'approve'
        ? `Connected. Taking you back to ${name}…`
        : `Not connected. Taking you back to ${name}…`;
      view.body.replaceChildren(messageBox(text, decisionWord === 'approve' ? 'success' : 'info'));
      announce(text);
      window.location.assign(target);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      setBusy(button, false);
      for (const b of [connect, deny]) b.disabled = false;
      if (err instanceof ApiError && err.status === 404) {
        showClosed(view, name);
        return;
      }
      const message = `Not answered: ${errorText(err)}`;
      error.show(message);
      announce(message, { assertive: true });
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    answer('approve', connect);
  });
  deny.addEventListener('click', () => answer('deny', deny));
}

/**
 * Only follow an answer back to the assistant's own address (http or https,
 * same host and path as its redirect URI; a loopback one may use any port).
 */
function safeReturn(target, registered) {
  if (typeof target !== 'string' || !target) return false;
  let url;
  let expected;
  try {
    url = new URL(target);
    expected = new URL(registered);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
  return url.protocol === expected.protocol && url.hostname === expected.hostname
    && url.port === expected.port && url.pathname === expected.pathname;
}
