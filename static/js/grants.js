// @ts-check
// Words for data grants, shared by the sharing screen, the consent page and
// the brands page: purposes, actions, statuses and field names as a person
// reads them, plus the few requests more than one screen makes.

import { api } from './api.js';
import { recordTitle } from './records.js';

// Common DPV purposes a person may share data for. The vault's terms decide
// which of them are allowed; the list only offers sensible choices.
export const PURPOSES = [
  { id: 'dpv:ServiceProvision', label: 'To provide a service you use' },
  { id: 'dpv:RequestedServiceProvision', label: 'To provide a service you asked for' },
  { id: 'dpv:DeliveryOfGoods', label: 'To deliver goods to you' },
  { id: 'dpv:CustomerCare', label: 'To help you as a customer' },
  { id: 'dpv:PaymentManagement', label: 'To handle your payments' },
  { id: 'dpv:AccountManagement', label: 'To manage your account with them' },
];

/**
 * The purpose a brand reads data for when the person accepts its offer
 * (the vault's INTENTCASTING_PURPOSE).
 */
export const INTENTCASTING_PURPOSE = 'dpv:RequestedServiceProvision';

/**
 * The purpose in words. The ones the form offers read the same everywhere
 * (form, cards, consent page); others get the vault's label, or the code.
 */
export function purposeLabel(id, serverLabel = '') {
  const known = PURPOSES.find((p) => p.id === id);
  if (known) return known.label;
  return serverLabel || String(id || 'No purpose given');
}

/** ["read"] -> "Read it"; ["read", "write"] -> "Read and change it". */
export function actionsText(actions) {
  const list = Array.isArray(actions) ? actions : [];
  if (list.includes('write')) return list.includes('read') ? 'Read and change it' : 'Change it';
  if (list.includes('read')) return 'Read it';
  return list.join(', ') || 'Nothing';
}

export const GRANT_STATUS = {
  active: 'Active',
  revoked: 'Revoked',
  expired: 'Expired',
  exhausted: 'Used up',
  suspended: 'Paused until it accepts your new terms',
};

/** What each event a brand was sent about a grant told it, for the "told" line. */
export const GRANT_NOTICE = {
  'vrm.grant.created.v1': 'that you shared this',
  'vrm.grant.suspended.v1': 'that this is paused until it accepts your new terms',
  'vrm.grant.restored.v1': 'that this works again under your new terms',
  'vrm.grant.revoked.v1': 'that this ended',
};

export const GRANT_ORIGIN = {
  owner: 'You shared it',
  consent: 'The brand asked and you approved',
};

/** Whether a field names a kind of data (a DPV category) rather than one record. */
export function isCategory(field) {
  return /^[a-z]+:/i.test(String(field));
}

/**
 * How to name a granted field:
 *   record path  -> "Email address (contact.email)"
 *   category     -> "All your data of the kind “Email address”"
 *   labels       - Map of category id -> label
 *   records      - Map of path -> record (for the record's title)
 */
export function fieldLabel(field, { labels = new Map(), records = new Map() } = {}) {
  if (isCategory(field)) {
    return `All your data of the kind “${labels.get(field) || field}”`;
  }
  const record = records.get(field);
  const parts = String(field).split('.');
  const title = recordTitle(record || { path: field, collection: parts[0], field: parts.slice(1).join('.') });
  return title && title !== field ? `${title} (${field})` : String(field);
}

/**
 * Why the terms refuse a grant, as the end of "Your terms do not allow
 * this: …". The vault's reason may start with its own version of those
 * words; they are not repeated.
 */
export function refusalReason(reason, fallback) {
  const text = String(reason || '').trim()
    .replace(/^(your |the )?terms do not (permit|allow)[^:]*:\s*/i, '')
    .replace(/[.\s]+$/, '');
  return `${text || fallback}.`;
}

/**
 * The paragraphs explaining a 422 grant_not_permitted answer
 * ({"message": reason, "rule": deciding rule}). When the vault already says
 * it in the person's words ("Your terms forbid sharing your telephone
 * number…", naming only what is refused and what can still be shared), that
 * is the whole explanation; the rule's number means nothing to the person.
 */
export function termsRefusal(err, advice) {
  const message = String(err.serverMessage || '').trim();
  if (/^your terms /i.test(message) && !/^your terms do not (permit|allow)[^:.]*:/i.test(message)) {
    return [message];
  }
  const reason = refusalReason(message, 'it asks for data, an action or a purpose your terms rule out');
  return [`Your terms do not allow this: ${reason}`, advice];
}

/** RFC 3339 in UTC, without milliseconds. */
export function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * End every active grant of a brand. Resolves to how many ended.
 * DELETE /api/v1/brands/{client_id}/grants
 */
export async function revokeAllForBrand(clientId) {
  const { data } = await api('DELETE', `/api/v1/brands/${encodeURIComponent(clientId)}/grants`);
  return Number(data && data.revoked) || 0;
}

/** A brand can be given data only with an agreement on the current terms, and while active. */
export function sharingBlocker(brand) {
  if (!brand) return 'unknown brand';
  if (brand.status === 'suspended') return 'suspended';
  const a = brand.agreement;
  if (!a) return 'has not accepted your terms';
  if (a.status !== 'accepted') return 'its agreement has ended';
  if (!a.current) return 'has not accepted your current terms';
  return null;
}
