// @ts-check
// Brands: invitations that let a brand register, the brands that did, and
// their agreements to the person's terms, with the controls to suspend,
// resume and remove a brand or end an agreement.

import { api, ApiError, Interrupted } from '../api.js';
import { el, srOnly, focusElement, announce, setBusy, timeEl, copyText } from '../dom.js';
import { field, formError, actions } from '../form.js';
import { plural } from '../errors.js';
import { errorText, showNotice, loadList, confirmInline, fact } from '../cards.js';
import { revokeAllForBrand } from '../grants.js';
import { reachabilityProblem } from '../invitation.js';
import { versionCode } from '../terms.js';

const MAX_USES = 100;
const MAX_HOURS = 720;
const MAX_NOTE = 200;

const INVITATION_STATUS = { active: 'Active', spent: 'Used up', expired: 'Expired' };
const BRAND_STATUS = { active: 'Active', suspended: 'Suspended' };

/** "Paused after the restore" rather than "Suspended" when the vault did it. */
function statusLabel(brand) {
  if (brand.status === 'suspended' && brand.held_after_restore) return 'Paused after the restore';
  return BRAND_STATUS[brand.status] || brand.status;
}
const AGREEMENT_STATUS = { accepted: 'Accepted', withdrawn: 'Withdrawn by the brand', terminated: 'Terminated by you' };

// What each scope lets a brand do, in the person's words.
const SCOPES = {
  'intents:read': 'hear the wishes you make',
  'offers:write': 'send you offers',
  'agreements:read': 'read its agreements with you',
};

const AUTH_METHODS = {
  client_secret_basic: 'a secret the vault gave it',
  private_key_jwt: 'its own signing key',
};

export function render(container) {
  const view = {
    container,
    heading: el('h1', {}, 'Brands'),
    inviteNotice: el('div', { class: 'notice-slot' }),
    tokenHost: el('div', { class: 'token-slot' }),
    invitationsHost: el('div', { class: 'cards-host', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading invitations…')),
    brandsNotice: el('div', { class: 'notice-slot' }),
    brandsHost: el('div', { class: 'cards-host', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading brands…')),
    agreementsNotice: el('div', { class: 'notice-slot' }),
    agreementsHost: el('div', { class: 'cards-host', 'aria-busy': 'true' }, el('p', { class: 'loading' }, 'Loading agreements…')),
    invitationsHeading: el('h3', { id: 'invitations-heading', tabindex: '-1' }, 'Your invitations'),
    brandsHeading: el('h2', { id: 'brands-heading', tabindex: '-1' }, 'Registered brands'),
    agreementsHeading: el('h2', { id: 'agreements-heading', tabindex: '-1' }, 'Agreements'),
  };

  container.append(
    view.heading,
    el('p', { class: 'lead' }, 'Brands are companies and apps that want to work with your data. A brand can do nothing until you invite it, it registers, and it accepts your terms; you can stop any of them at any time.'),

    el('section', { 'aria-labelledby': 'invite-heading' },
      el('h2', { id: 'invite-heading' }, 'Invite a brand'),
      el('p', {}, 'A brand registers itself with an invitation token from you. Create an invitation, then give the brand its token and your vault’s registration address.'),
      inviteForm(view),
      view.inviteNotice,
      view.tokenHost,
      view.invitationsHeading,
      view.invitationsHost,
    ),

    el('section', { 'aria-labelledby': 'brands-heading' },
      view.brandsHeading,
      el('p', {}, 'Suspending a brand stops its access until you resume it. Removing a brand deletes your whole relationship with it, for real: its registration, its agreements and their receipts, what you shared with it and its offers. To come back it needs a new invitation.'),
      view.brandsNotice,
      view.brandsHost,
    ),

    el('section', { 'aria-labelledby': 'agreements-heading' },
      view.agreementsHeading,
      el('p', {}, 'An agreement is a brand’s signed acceptance of one version of your terms. Terminating it stops the brand’s access until it accepts your terms again.'),
      view.agreementsNotice,
      view.agreementsHost,
    ),
  );

  loadInvitations(view);
  loadBrands(view);
  loadAgreements(view);
}

// --- Invitations -------------------------------------------------------------

function inviteForm(view) {
  const uses = field({
    label: 'How many brands may register with it',
    hint: `From 1 to ${MAX_USES}. Usually 1: one invitation per brand.`,
    control: el('input', { type: 'number', name: 'max_uses', inputmode: 'numeric', min: '1', max: String(MAX_USES), step: '1', value: '1', required: true }),
  });
  const hours = field({
    label: 'Valid for (hours)',
    hint: `From 1 to ${MAX_HOURS} (30 days). After that the token no longer works.`,
    control: el('input', { type: 'number', name: 'expires_in_hours', inputmode: 'numeric', min: '1', max: String(MAX_HOURS), step: '1', value: '72', required: true }),
  });
  const note = field({
    label: 'Note (optional)',
    hint: 'Only you see this, for example the name of the brand you invite.',
    control: el('input', { type: 'text', name: 'note', maxlength: String(MAX_NOTE), autocomplete: 'off' }),
  });
  const error = formError();
  const submit = el('button', { type: 'submit', class: 'button primary' }, 'Create invitation');
  const form = el('form', { class: 'form invite-form', novalidate: true, 'aria-labelledby': 'invite-heading' },
    uses.root, hours.root, note.root, error.node, actions(submit));

  for (const f of [uses, hours, note]) f.control.addEventListener('input', () => f.clearError());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    view.inviteNotice.replaceChildren();
    const body = {};
    const problems = [
      wholeNumber(uses, 1, MAX_USES, 'The number of brands', (n) => { body.max_uses = n; }),
      wholeNumber(hours, 1, MAX_HOURS, 'The number of hours', (n) => { body.expires_in_hours = n; }),
      noteProblem(note, body),
    ].filter(Boolean);
    if (problems.length) {
      announce('Please check the invitation fields.', { assertive: true });
      problems[0].focus();
      return;
    }

    setBusy(submit, true, 'Creating…');
    try {
      const { data } = await api('POST', '/api/v1/invitations', { body });
      if (!view.container.isConnected) return;
      if (!data || typeof data.initial_access_token !== 'string') {
        throw new ApiError(0, 'bad_answer', 'The vault created the invitation but sent no token. Delete it and create another.');
      }
      note.control.value = '';
      showToken(view, data);
      loadInvitations(view);
    } catch (err) {
      if (err instanceof Interrupted || !view.container.isConnected) return;
      error.show(`No invitation created: ${errorText(err)}`);
      announce(`No invitation created: ${errorText(err)}`, { assertive: true });
    } finally {
      setBusy(submit, false);
    }
  });
  return form;
}

/** Check a whole-number field; returns the control to fix, or null. */
function wholeNumber(f, min, max, what, keep) {
  f.clearError();
  const raw = f.control.value.trim();
  const n = Number(raw);
  if (!raw || !Number.isInteger(n) || n < min || n > max) {
    f.setError(`${what} must be a whole number from ${min} to ${max}.`);
    return f.control;
  }
  keep(n);
  return null;
}

function noteProblem(f, body) {
  f.clearError();
  const text = f.control.value.trim();
  if (text.length > MAX_NOTE) {
    f.setError(`Keep the note under ${MAX_NOTE} characters.`);
    return f.control;
  }
  if (text) body.note = text;
  return null;
}

/**
 * The token, once. It lives only in this box: leaving the screen or pressing
 * "Done" drops it, and the vault keeps only its hash.
 */
function showToken(view, invitation) {
  const token = el('p', { class: 'secret-text', id: 'invitation-token' }, invitation.initial_access_token);
  const endpoint = el('p', { class: 'secret-text endpoint', id: 'registration-endpoint' }, String(invitation.registration_endpoint || ''));
  const status = el('p', { class: 'hint copy-status' });
  const copyToken = el('button', { type: 'button', class: 'button' }, 'Copy token');
  const copyEndpoint = el('button', { type: 'button', class: 'button' }, 'Copy address');
  const done = el('button', { type: 'button', class: 'button primary' }, 'Done, I have copied it');
  const heading = el('h3', { tabindex: '-1' }, 'Invitation created');

  const copy = async (text, node, what) => {
    const ok = await copyText(text, node);
    status.textContent = ok
      ? `${what} copied.`
      : `Could not copy automatically. The ${what.toLowerCase()} is selected: copy it by hand.`;
    announce(status.textContent);
  };
  copyToken.addEventListener('click', () => copy(invitation.initial_access_token, token, 'Token'));
  copyEndpoint.addEventListener('click', () => copy(invitation.registration_endpoint, endpoint, 'Address'));
  done.addEventListener('click', () => {
    view.tokenHost.replaceChildren();
    focusElement(view.invitationsHeading);
  });

  const uses = Number(invitation.max_uses) || 1;
  // A brand elsewhere cannot register at a loopback or home-network address.
  const unreachable = reachabilityProblem(String(invitation.registration_endpoint || ''));
  view.tokenHost.replaceChildren(el('div', { class: 'key-box token-box' },
    heading,
    el('p', {}, el('strong', {}, 'This token is shown only now and will not be shown again.'),
      ' Copy it and send it to the brand. Anyone who has it can register as a brand until it expires or is used up.'),
    el('p', { class: 'key-label' }, 'Invitation token'),
    token,
    actions(copyToken),
    el('p', { class: 'key-label' }, 'Registration address'),
    endpoint,
    unreachable ? el('div', { class: `message message-warning unreachable-${unreachable.kind}` }, unreachable.text) : null,
    actions(copyEndpoint),
    status,
    el('p', { class: 'hint' },
      `Works for ${plural(uses, 'registration')}`,
      invitation.expires_at ? [', until ', timeEl(invitation.expires_at)] : null, '.'),
    actions(done),
  ));
  announce('Invitation created. Its token is shown only now: copy it and send it to the brand.');
  focusElement(heading);
}

function loadInvitations(view) {
  return loadList(view, view.invitationsHost, '/api/v1/invitations', 'invitations', (items) => (items.length
    ? [el('ul', { class: 'cards' }, items.map((inv) => invitationItem(view, inv)))]
    : [el('p', { class: 'hint' }, 'No invitations yet.')]), 'your invitations');
}

function invitationItem(view, inv) {
  const label = inv.note ? inv.note : 'Invitation without a note';
  const status = INVITATION_STATUS[inv.status] || inv.status || 'Unknown';
  const remove = el('button', { type: 'button', class: 'button small danger-outline' }, 'Delete', srOnly(` invitation ${label}`));
  const item = el('li', { class: `card invitation status-${inv.status}`, 'data-id': String(inv.id) },
    el('p', { class: 'card-title' }, el('strong', {}, label), ' ', el('span', { class: `tag tag-${inv.status}` }, status)),
    el('p', { class: 'record-meta' },
      el('span', {}, `Used ${inv.uses ?? 0} of ${plural(Number(inv.max_uses) || 0, 'time')}`),
      inv.expires_at ? el('span', {}, inv.status === 'expired' ? 'Expired ' : 'Expires ', timeEl(inv.expires_at)) : null,
      inv.created_at ? el('span', {}, 'Created ', timeEl(inv.created_at)) : null),
    el('div', { class: 'card-actions' }, remove),
    el('div', { class: 'confirm-slot' }),
  );
  remove.addEventListener('click', () => {
    view.inviteNotice.replaceChildren();
    const go = ({ yes, error }) => deleteInvitation(view, inv, label, { yes, error });
    // A used-up or expired invitation cannot let anyone in any more: no need to ask.
    if (inv.status !== 'active') {
      go({ yes: remove, error: null });
      return;
    }
    confirmInline(item, {
      question: `Delete the invitation “${label}”?`,
      explanation: 'A brand that has not registered with it yet will no longer be able to. Brands that already registered are not affected.',
      yesLabel: 'Yes, delete',
      onYes: go,
    });
  });
  return item;
}

async function deleteInvitation(view, inv, label, { yes, error }) {
  setBusy(yes, true, 'Deleting…');
  try {
    await api('DELETE', `/api/v1/invitations/${encodeURIComponent(inv.id)}`);
    if (!view.container.isConnected) return;
    showNotice(view.inviteNotice, `Deleted the invitation “${label}”.`);
    await loadInvitations(view);
    focusElement(view.invitationsHeading);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    const message = `Not deleted: ${errorText(err)}`;
    if (error) error.show(message);
    else showNotice(view.inviteNotice, message, 'error');
    announce(message, { assertive: true });
  }
}

// --- Brands --------------------------------------------------------------------

function loadBrands(view) {
  return loadList(view, view.brandsHost, '/api/v1/brands', 'brands', (items) => (items.length
    ? [el('ul', { class: 'cards' }, items.map((brand) => brandItem(view, brand)))]
    : [el('p', { class: 'hint' }, 'No brand has registered yet. Create an invitation above and send it to a brand.')]), 'the brands');
}

function brandName(brand) {
  return brand.client_name || brand.client_id || 'Unnamed brand';
}

function findBrandItem(view, clientId) {
  return [...view.brandsHost.querySelectorAll('li.brand-card')].find((li) => li.dataset.clientId === clientId) || null;
}

/** What the brand's agreement means for its access, in one sentence. */
function agreementSentence(agreement) {
  if (!agreement) return { text: 'Has not accepted your terms yet, so it can get nothing from your vault.', kind: 'warning' };
  const version = `version ${agreement.terms_version}`;
  if (agreement.status === 'accepted' && agreement.current) {
    return { text: `Accepted your current terms (${version})`, when: agreement.accepted_at, kind: 'ok' };
  }
  if (agreement.status === 'accepted') {
    return { text: `Accepted ${version}, not your current terms: it can get nothing until it accepts them`, when: agreement.accepted_at, kind: 'warning' };
  }
  if (agreement.status === 'withdrawn') return { text: `Withdrew from its agreement (${version}), so it can get nothing from your vault.`, kind: 'warning' };
  if (agreement.status === 'terminated') return { text: `You terminated its agreement (${version}), so it can get nothing from your vault.`, kind: 'warning' };
  return { text: `Agreement to ${version}: ${agreement.status}.`, kind: 'warning' };
}

/**
 * Whether the brand has yet to accept the terms in force, in plain words: what it was told and
 * what waits for it. Null when it has nothing to accept.
 * @param {{accepted_version: number, current_version: number, published_at: string, suspended_grants: number} | null | undefined} update
 * @returns {{text: string, when: string} | null}
 */
function termsUpdateSentence(update) {
  if (!update) return null;
  const shared = update.suspended_grants === 1 ? '1 thing you share with it is paused'
    : update.suspended_grants > 1 ? `${update.suspended_grants} things you share with it are paused` : 'it gets nothing you share';
  return {
    text: `Accepted version ${update.accepted_version} of your terms but has not accepted your new terms (version ${update.current_version}) yet. Until it does, it gets none of your new wishes and ${shared}; if your new terms still allow them, they start again when it accepts.`,
    when: update.published_at,
  };
}

function brandItem(view, brand) {
  const name = brandName(brand);
  const suspended = brand.status === 'suspended';
  const toggle = el('button', { type: 'button', class: 'button small', 'data-action': suspended ? 'resume' : 'suspend' },
    suspended ? 'Resume' : 'Suspend', srOnly(` ${name}`));
  const remove = el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'remove' },
    'Remove', srOnly(` ${name}`));
  const sharing = el('a', { class: 'button small', href: `#/grants?brand=${encodeURIComponent(brand.client_id)}` },
    'What it can see', srOnly(` (${name})`));
  const revokeAll = el('button', { type: 'button', class: 'button small danger-outline', 'data-action': 'revoke-grants' },
    'Revoke everything', srOnly(` shared with ${name}`));

  const agreement = agreementSentence(brand.agreement);
  const waiting = termsUpdateSentence(brand.terms_update);
  const scopes = String(brand.scope || '').split(/\s+/).filter(Boolean).map((s) => SCOPES[s] || s);

  const item = el('li', { class: `card brand-card status-${brand.status}`, 'data-client-id': String(brand.client_id) },
    el('h3', { class: 'card-title' }, name, ' ', el('span', { class: `tag tag-${brand.status}` }, statusLabel(brand))),
    // A brand waiting to accept new terms gets the one sentence that says what that means.
    waiting ? null : el('p', { class: `agreement-line agreement-${agreement.kind}` },
      agreement.text, agreement.when ? [' on ', timeEl(agreement.when), '.'] : null),
    suspended && brand.held_after_restore
      ? el('p', { class: 'agreement-line agreement-warning held-after-restore' }, 'Paused because you restored your vault from a backup: it can get nothing from your vault until you resume it. Resume it only if it should still have access — the backup may be older than what you told it since, such as that its access ended.')
      : (suspended ? el('p', { class: 'agreement-line agreement-warning' }, 'Suspended: it can get nothing from your vault until you resume it.') : null),
    waiting ? el('p', { class: 'agreement-line agreement-warning terms-waiting' }, waiting.text, ' It was told on ', timeEl(waiting.when), '.') : null,
    el('dl', { class: 'facts' },
      fact('May ask to', scopes.length ? scopes.join(', ') : null),
      fact('Signs in with', AUTH_METHODS[brand.token_endpoint_auth_method] || brand.token_endpoint_auth_method),
      fact('Website', brand.client_uri ? String(brand.client_uri) : null),
      fact('Registered', brand.registered_at ? timeEl(brand.registered_at) : null),
      fact('Webhook deliveries', deliverySentence(brand.delivery)),
    ),
    // The codes the brand and the vault know each other by: only for when
    // the brand's support asks for them, so folded away.
    el('details', { class: 'entry-details brand-technical' },
      el('summary', {}, 'Technical details'),
      el('dl', { class: 'facts' },
        fact('Client ID', el('code', {}, String(brand.client_id))),
        fact('Knows you as', brand.pseudonym ? el('code', {}, String(brand.pseudonym)) : null),
      ),
    ),
    el('div', { class: 'card-actions' }, sharing, revokeAll, toggle, remove),
    el('div', { class: 'confirm-slot' }),
  );

  toggle.addEventListener('click', () => setSuspended(view, brand, !suspended, toggle));
  revokeAll.addEventListener('click', () => {
    view.brandsNotice.replaceChildren();
    confirmInline(item, {
      question: `Revoke everything you share with ${name}?`,
      explanation: 'Every grant that lets it read or change your data ends now, and its very next request for your data is refused. Its registration and its agreement to your terms stay.',
      yesLabel: 'Yes, revoke everything',
      onYes: (controls) => revokeGrants(view, brand, item, controls),
    });
  });
  remove.addEventListener('click', () => {
    view.brandsNotice.replaceChildren();
    confirmInline(item, {
      question: `Remove ${name} and delete everything about it?`,
      explanation: 'Its access stops at once, and your whole relationship with it is deleted for real: its registration, its agreements with their signed receipts, every grant, its subscription, its offers and the news waiting for it. What it already received from you stays with it. Your activity log keeps a line saying it was removed. This cannot be undone: to come back it needs a new invitation. To keep the signed receipts, download an export in Settings first.',
      yesLabel: 'Yes, remove and delete',
      onYes: (controls) => removeBrand(view, brand, controls),
    });
  });
  return item;
}

async function revokeGrants(view, brand, item, { yes, error }) {
  const name = brandName(brand);
  setBusy(yes, true, 'Revoking…');
  try {
    const count = await revokeAllForBrand(brand.client_id);
    if (!view.container.isConnected) return;
    // Close the question: nothing else on the card changed.
    item.querySelector('.confirm-slot').replaceChildren();
    const buttons = item.querySelector('.card-actions');
    buttons.hidden = false;
    focusElement(buttons.querySelector('[data-action="revoke-grants"]'));
    showNotice(view.brandsNotice, count
      ? `Revoked ${plural(count, 'grant')} of ${name}. It can no longer get any of your data.`
      : `${name} had no active grants: it could not get any of your data.`);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    error.show(`Nothing revoked: ${errorText(err)}`);
    announce(`Nothing revoked: ${errorText(err)}`, { assertive: true });
  }
}

async function setSuspended(view, brand, suspend, button) {
  const name = brandName(brand);
  view.brandsNotice.replaceChildren();
  setBusy(button, true, suspend ? 'Suspending…' : 'Resuming…');
  try {
    const action = suspend ? 'suspend' : 'resume';
    await api('POST', `/api/v1/brands/${encodeURIComponent(brand.client_id)}/${action}`);
    if (!view.container.isConnected) return;
    await loadBrands(view);
    const item = findBrandItem(view, brand.client_id);
    focusElement((item && item.querySelector('[data-action="suspend"], [data-action="resume"]')) || view.brandsHeading);
    showNotice(view.brandsNotice, suspend
      ? `Suspended ${name}. It can get nothing from your vault until you resume it.`
      : `Resumed ${name}. It can use your vault again within your terms.`);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    if (button.isConnected) setBusy(button, false);
    showNotice(view.brandsNotice, `${suspend ? 'Not suspended' : 'Not resumed'}: ${errorText(err)}`, 'error');
  }
}

async function removeBrand(view, brand, { yes, error }) {
  const name = brandName(brand);
  setBusy(yes, true, 'Removing…');
  try {
    // The whole relationship, receipts included (DELETE only ends the
    // agreement and keeps its receipt).
    await api('POST', `/api/v1/brands/${encodeURIComponent(brand.client_id)}/erase`);
    if (!view.container.isConnected) return;
    await Promise.all([loadBrands(view), loadAgreements(view)]);
    showNotice(view.brandsNotice, `Removed ${name}. Its access has stopped and everything about it is deleted.`);
    focusElement(view.brandsHeading);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    error.show(`Not removed: ${errorText(err)}`);
    announce(`Not removed: ${errorText(err)}`, { assertive: true });
  }
}

// --- Agreements ------------------------------------------------------------------

function loadAgreements(view) {
  return loadList(view, view.agreementsHost, '/api/v1/agreements', 'agreements', (items) => (items.length
    ? [el('ul', { class: 'cards' }, items.map((a) => agreementItem(view, a)))]
    : [el('p', { class: 'hint' }, 'No brand has accepted your terms yet.')]), 'the agreements');
}

function agreementItem(view, agreement) {
  const name = agreement.client_name || agreement.client_id || 'A brand';
  const active = agreement.status === 'accepted';
  const terminate = active
    ? el('button', { type: 'button', class: 'button small danger-outline' }, 'Terminate', srOnly(` the agreement with ${name}`))
    : null;
  const item = el('li', { class: `card agreement status-${agreement.status}`, 'data-id': String(agreement.id) },
    el('p', { class: 'card-title' }, el('strong', {}, name), ' ',
      el('span', { class: `tag tag-${agreement.status}` }, AGREEMENT_STATUS[agreement.status] || agreement.status)),
    el('p', { class: 'record-meta' },
      el('span', {}, `Terms version ${agreement.terms_version}`,
        agreement.current ? ' (current)' : ' (not your current terms)'),
      agreement.accepted_at ? el('span', {}, 'Accepted ', timeEl(agreement.accepted_at)) : null,
      agreement.ended_at ? el('span', {}, 'Ended ', timeEl(agreement.ended_at)) : null),
    // The short version code, as on "My terms": the full fingerprint is in the receipt.
    el('p', { class: 'version-hash record-meta', 'data-hash': String(agreement.terms_hash || '') },
      'Version code ', el('code', { class: 'hash' }, versionCode(agreement.terms_hash))),
    el('div', { class: 'card-actions' },
      // A same-origin link: the browser sends the session cookie and saves the exact bytes.
      el('a', { class: 'button small', href: `/api/v1/agreements/${encodeURIComponent(agreement.id)}/receipt`, download: '' },
        'Download the signed receipt', srOnly(` of ${name}`)),
      terminate),
    el('div', { class: 'confirm-slot' }),
  );
  if (terminate) {
    terminate.addEventListener('click', () => {
      view.agreementsNotice.replaceChildren();
      confirmInline(item, {
        question: `Terminate the agreement with ${name}?`,
        explanation: 'The brand can no longer get data from your vault until it accepts your terms again. The signed record of the agreement stays, with the termination added to it.',
        yesLabel: 'Yes, terminate',
        onYes: (controls) => terminateAgreement(view, agreement, name, controls),
      });
    });
  }
  return item;
}

async function terminateAgreement(view, agreement, name, { yes, error }) {
  setBusy(yes, true, 'Terminating…');
  try {
    await api('DELETE', `/api/v1/agreements/${encodeURIComponent(agreement.id)}`);
    if (!view.container.isConnected) return;
    await Promise.all([loadAgreements(view), loadBrands(view)]);
    showNotice(view.agreementsNotice, `Terminated the agreement with ${name}.`);
    focusElement(view.agreementsHeading);
  } catch (err) {
    if (err instanceof Interrupted || !view.container.isConnected) return;
    setBusy(yes, false);
    error.show(`Not terminated: ${errorText(err)}`);
    announce(`Not terminated: ${errorText(err)}`, { assertive: true });
  }
}

/** How webhook deliveries to a brand are going, in a sentence; nothing without a webhook. */
function deliverySentence(delivery) {
  if (!delivery) return null;
  const waiting = delivery.pending ? ` ${delivery.pending} waiting.` : '';
  const error = delivery.last_error ? ` Last problem: ${delivery.last_error}.` : '';
  if (delivery.status === 'paused') {
    return `Paused: its endpoint kept failing, so the vault only tries one at a time until it answers again.${waiting}${error}`;
  }
  if (delivery.status === 'failing') return `Failing, being retried.${waiting}${error}`;
  return `Working.${waiting}`;
}
