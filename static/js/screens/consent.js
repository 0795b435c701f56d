// @ts-check
// Consent: a brand asked (through /oauth/authorize) to read or change some of
// the person's data. Shows who asks, for which data (with the current value
// masked), what it may do, why and until when, and whether the person's terms
// allow it; the person may leave out data or shorten the time, then approves
// or denies, and the browser goes back to the brand with the answer.

import { api, ApiError, Interrupted } from '../api.js';
import { el, messageBox, focusElement, announce, setBusy, timeEl, formatDate } from '../dom.js';
import { field, checkbox, fieldset, formError, actions } from '../form.js';
import { asSentence } from '../errors.js';
import { errorText, fact } from '../cards.js';
import { purposeLabel, actionsText, fieldLabel, isCategory, rfc3339, refusalReason, termsRefusal } from '../grants.js';
import { renderAgentConsent } from './agent_consent.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

// Shorter times the person may pick instead of what the brand asked for.
const SHORTER = [
  { value: '1h', label: '1 hour from now', ms: HOUR_MS },
  { value: '24h', label: '24 hours from now', ms: DAY_MS },
  { value: '7d', label: '7 days from now', ms: 7 * DAY_MS },
  { value: '30d', label: '30 days from now', ms: 30 * DAY_MS },
];

export function render(container, ctx) {
  // The person's own assistant asks differently (what it may do and read): its own screen.
  const agentRequest = ctx.query().get('agent');
  if (agentRequest) return renderAgentConsent(container, agentRequest);
  const view = {
    container,
    ctx,
    requestId: ctx.query().get('request') || '',
    heading: el('h1', {}, 'A brand asks for your data'),
    body: el('div', { class: 'consent', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading the request…')),
    timer: null,
    answered: false,
  };
  container.append(view.heading, view.body);

  if (!view.requestId) {
    view.body.removeAttribute('aria-busy');
    view.body.replaceChildren(
      messageBox('This page answers a brand’s request for your data, but the address holds no request. Go back to the brand’s site or app and start again from there.', 'warning'),
      homeLink(),
    );
  } else {
    load(view);
  }
  return () => window.clearTimeout(view.timer);
}

function homeLink() {
  return el('p', { class: 'aside-link' }, el('a', { href: '#/grants' }, 'See what you share with brands'));
}

/** The request is unknown, answered, or its time ran out. */
function showClosed(view, brandName = null) {
  window.clearTimeout(view.timer);
  const who = brandName ? `${brandName}’s site or app` : 'the brand’s site or app';
  const heading = el('h2', { tabindex: '-1' }, 'This request is no longer open');
  view.body.replaceChildren(
    el('div', { class: 'message message-warning consent-closed' },
      heading,
      el('p', {}, `It was already answered, or it expired: a brand’s request stays open for 10 minutes. Nothing was shared. To share, go back to ${who} and start again.`),
    ),
    homeLink(),
  );
  announce('This request is no longer open. Nothing was shared.', { assertive: true });
  focusElement(heading);
}

async function load(view) {
  view.body.setAttribute('aria-busy', 'true');
  try {
    const { data } = await api('GET', `/api/v1/consent/${encodeURIComponent(view.requestId)}`);
    if (!view.container.isConnected) return;
    if (!data || !Array.isArray(data.fields)) {
      throw new ApiError(0, 'bad_answer', 'Your vault answered in a way this page does not understand. Reload the page; if it keeps happening, the vault may need an update.');
    }
    showRequest(view, data);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (err instanceof ApiError && [404, 409, 410].includes(err.status)) {
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

const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

/** "Nov 23, 2026": short enough for a menu on a phone. */
function formatDay(value) {
  return dayFormat.format(new Date(value));
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

function showRequest(view, request) {
  const name = request.client_name || request.client_id || 'A brand';
  const site = hostOf(request.client_uri);
  const returnHost = hostOf(request.redirect_uri);
  const writes = Array.isArray(request.actions) && request.actions.includes('write');
  const decision = request.decision || {};
  const permitted = decision.permitted === true;

  // Which data: every requested field, ticked; the person may untick.
  const checks = request.fields.map((item) => {
    const label = isCategory(item.field)
      ? fieldLabel(item.field, { labels: new Map([[item.field, item.category_label || item.field]]) })
      : fieldLabel(item.field);
    const now = item.present
      ? `Now: ${item.masked_value || '(hidden)'}`
      : 'You have no data here yet, so there is nothing to share now.';
    // "Email address (contact.email)" needs no "Email address" hint again.
    const title = label.replace(/ \([^)]*\)$/, '');
    const kind = item.category_label && !isCategory(item.field) && item.category_label.toLowerCase() !== title.toLowerCase()
      ? `Kind of data: ${item.category_label}. ` : '';
    const check = checkbox({ label, checked: true, hint: `${kind}${now}` });
    check.input.value = item.field;
    check.input.name = 'fields';
    check.root.classList.add('consent-field');
    return check;
  });
  const data = fieldset({
    legend: writes ? 'The data it wants to read and change' : 'The data it wants to read',
    hint: 'Untick anything you do not want to share. Values are partly hidden here; the brand gets them in full.',
    className: 'consent-fields',
    children: el('div', { class: 'check-list' }, checks.map((c) => c.root)),
  });
  for (const c of checks) c.input.addEventListener('change', () => data.clearError());

  // Until when: what the brand asked for, or shorter.
  const asked = Date.parse(request.expires_at);
  const untilSelect = el('select', { name: 'until' },
    el('option', { value: 'asked' }, Number.isNaN(asked) ? 'As the brand asked' : `As asked: until ${formatDay(request.expires_at)}`),
    SHORTER.filter((c) => Number.isNaN(asked) || Date.now() + c.ms < asked - 60_000)
      .map((c) => el('option', { value: c.value }, c.label)));
  const until = field({
    label: 'For how long',
    hint: `${Number.isNaN(asked) ? '' : `The brand asked until ${formatDate(request.expires_at)}. `}You can give less time, not more, and you can revoke it earlier at any time.`,
    control: untilSelect,
  });
  if (untilSelect.options.length === 1) untilSelect.disabled = true;

  const decisionBox = permitted
    ? el('div', { class: 'message message-success consent-decision' },
      el('p', {}, el('strong', {}, 'Your terms allow this.'), decision.reason ? ` ${asSentence(decision.reason)}` : ''))
    : el('div', { class: 'message message-warning consent-decision' },
      el('p', {}, el('strong', {}, 'Your terms do not allow this: '),
        refusalReason(decision.reason, 'it asks for data, an action or a purpose your terms rule out')),
      decision.rule ? el('p', {}, `Deciding rule: ${decision.rule}.`) : null,
      el('p', {}, 'You can only deny it. To allow requests like this one, change your terms under My terms first.'));

  const error = formError();
  const approve = permitted ? el('button', { type: 'submit', class: 'button primary' }, 'Approve') : null;
  const deny = el('button', { type: 'button', class: `button${permitted ? '' : ' primary'}` }, permitted ? 'Deny' : `Deny and go back to ${name}`);
  const closesAt = Date.now() + (Number(request.expires_in) || 600) * 1000;
  const openFor = el('p', { class: 'hint consent-open-for' });

  const form = el('form', { class: 'form consent-form', novalidate: true, 'aria-labelledby': 'consent-brand' },
    permitted ? data.root : null,
    el('dl', { class: 'facts consent-facts' },
      permitted ? null : fact('Data', el('ul', { class: 'plain-list' }, checks.map((c) => el('li', {}, c.root.querySelector('label').textContent)))),
      fact('It may', actionsText(request.actions)),
      fact('Why', purposeLabel(request.purpose, request.purpose_label)),
      permitted ? null : fact('Until', Number.isNaN(asked) ? null : timeEl(request.expires_at)),
    ),
    permitted ? until.root : null,
    decisionBox,
    error.node,
    actions(approve, deny),
    openFor,
  );

  view.body.replaceChildren(
    el('p', { class: 'lead' }, `${name} wants to ${writes ? 'read and change' : 'read'} some of your data. `,
      permitted ? 'Check what it asks for, then approve or deny.' : 'Your terms do not allow this, so you can only deny it.'),
    el('section', { class: 'consent-brand card', 'aria-labelledby': 'consent-brand' },
      el('h2', { id: 'consent-brand' }, name),
      el('dl', { class: 'facts' },
        fact('Website', site || null),
        fact('Sends you back to', returnHost || null),
      ),
      site ? null : el('p', { class: 'hint' }, 'The brand gave no website address.'),
    ),
    form,
    el('p', { class: 'hint' }, 'Whatever you answer, you go back to the brand. What you approve is listed under Sharing, where you can see what the brand read and revoke it.'),
  );

  // The request closes on the server after a while; say so before an answer
  // would be refused.
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
  announce(`${name} asks for your data. ${permitted ? 'Your terms allow this.' : 'Your terms do not allow this.'}`);

  const busy = (on) => {
    for (const button of [approve, deny].filter(Boolean)) {
      if (on) button.disabled = true;
      else button.disabled = false;
    }
  };

  async function answer(decisionWord, button) {
    error.clear();
    data.clearError();
    const body = { decision: decisionWord };
    if (decisionWord === 'approve') {
      const chosen = checks.filter((c) => c.input.checked).map((c) => c.input.value);
      if (!chosen.length) {
        data.setError('Tick at least one piece of data to share, or press Deny.');
        announce('Tick at least one piece of data to share, or press Deny.', { assertive: true });
        checks[0].input.focus();
        return;
      }
      if (chosen.length < checks.length) body.fields = chosen;
      const shorter = SHORTER.find((c) => c.value === untilSelect.value);
      if (shorter) body.expires_at = rfc3339(new Date(Date.now() + shorter.ms));
    }

    busy(true);
    setBusy(button, true, decisionWord === 'approve' ? 'Approving…' : 'Denying…');
    try {
      const { data: answerData } = await api('POST', `/api/v1/consent/${encodeURIComponent(view.requestId)}`, { body });
      const target = answerData && answerData.redirect_to;
      if (!safeReturn(target, request.redirect_uri)) {
        throw new ApiError(0, 'bad_answer', 'Your vault recorded your answer but gave no valid address to go back to the brand. Go back to the brand’s site yourself.');
      }
      view.answered = true;
      window.clearTimeout(view.timer);
      const text = decisionWord === 'approve'
        ? `Approved. Taking you back to ${name}…`
        : `Denied: nothing was shared. Taking you back to ${name}…`;
      view.body.replaceChildren(messageBox(text, decisionWord === 'approve' ? 'success' : 'info'));
      announce(text);
      window.location.assign(target);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      setBusy(button, false);
      busy(false);
      if (err instanceof ApiError && [404, 409, 410].includes(err.status)) {
        showClosed(view, name);
        return;
      }
      let message;
      if (err instanceof ApiError && err.code === 'grant_not_permitted') {
        message = termsRefusal(err, 'You can only deny it. To allow requests like this one, change your terms under My terms first.');
      } else if (err instanceof ApiError && err.code === 'invalid_grant' && err.serverMessage) {
        message = `Not answered: ${asSentence(err.serverMessage)}`;
      } else {
        message = `Not answered: ${errorText(err)}`;
      }
      error.show(message);
      announce([].concat(message).join(' '), { assertive: true });
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (approve) answer('approve', approve);
  });
  deny.addEventListener('click', () => answer('deny', deny));
}

/**
 * Only follow an answer back to the brand's registered address (http or
 * https): the page must never be sent to a javascript: or foreign URL.
 */
function safeReturn(target, registered) {
  if (typeof target !== 'string' || !target) return false;
  let url;
  try {
    url = new URL(target);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
  if (typeof registered !== 'string' || !registered) return true;
  try {
    const expected = new URL(registered);
    return url.origin === expected.origin && url.pathname === expected.pathname;
  } catch {
    return false;
  }
}
