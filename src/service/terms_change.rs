//! What new terms do to the brands that agreed to older ones (DESIGN §5): their agreements stop
//! covering new deliveries and grants *until they accept the new version*, and nothing is lost
//! in between.
//!
//! - Publishing a new version tells every brand with an accepted agreement
//!   (`vrm.terms.updated.v1`: the new hash, what changed in plain words, how to accept) and
//!   each of its live grants (`vrm.grant.suspended.v1`), in the same atomic write as the new
//!   version. The grants are not touched: a grant whose agreement is still accepted but on older
//!   terms is *suspended*, a state computed from the brand's agreement (see
//!   [`OpenVault::awaits_acceptance`]), and every use answers which version to accept.
//! - Accepting the new version re-decides each suspended grant under the new terms
//!   ([`OpenVault::after_acceptance`]): a grant they still permit moves to the new agreement and
//!   works again (`vrm.grant.restored.v1`); one they forbid is revoked with the deciding rule
//!   kept on it (`vrm.grant.revoked.v1` names the rule). Then every intent still open that
//!   matches the brand's subscription, and that it did not receive, is delivered.
//!
//! Both steps after acceptance are idempotent and run on every acceptance call, also when the
//! brand accepts a version it already accepted: should the vault stop between the acceptance
//! and them, accepting again finishes the work.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::OpenVault;
use super::grant_events::{
    GRANT_RESTORED, GRANT_REVOKED, GRANT_SUSPENDED, GrantNews, Outgoing, TermsRef,
};
use super::intents::{INTENTS, brand_view};
use super::tables::{AGREEMENTS, BRANDS, GRANTS};
use super::terms::TermsVersion;
use crate::domain::audit::Event;
use crate::domain::brands::{Agreement, AgreementStatus, Brand};
use crate::domain::grants::{FieldSpec, Grant, GrantDecision, GrantStatus, terms_verdict};
use crate::domain::records::{DataCategory, RecordPath};
use crate::domain::terms::{Basis, Terms};
use crate::error::AppError;

/// The CloudEvents type of the terms-change notice.
pub const TERMS_UPDATED: &str = "vrm.terms.updated.v1";

/// How a brand accepts the new terms.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HowToAccept {
    #[schema(example = "POST")]
    pub method: &'static str,
    /// `{issuer}/brand/v1/agreements`, with the brand's client authentication.
    pub url: String,
    /// The body to send.
    #[schema(value_type = Object, example = json!({"terms_hash": "sha256:..."}))]
    pub body: serde_json::Value,
}

/// The new terms a brand is told of.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublishedTerms {
    pub version: u64,
    #[schema(example = "sha256:...")]
    pub hash: String,
    /// The IEEE 7012 basis, e.g. `SD-BASE`.
    pub basis: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub published_at: OffsetDateTime,
    /// Where to read them: `{issuer}/brand/v1/terms`.
    pub url: String,
}

/// The `data` of `vrm.terms.updated.v1`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TermsUpdatedData {
    /// The brand's pseudonym for the person.
    pub person: String,
    /// The version now in force.
    pub terms: PublishedTerms,
    /// The version the brand accepted, which no longer covers anything new.
    pub accepted_version: u64,
    /// What changed, one plain sentence per line.
    pub changes: Vec<String>,
    pub accept: HowToAccept,
    /// The grants suspended until the brand accepts.
    pub grants_suspended: Vec<String>,
}

/// What changed between two versions, in plain words: the summary lines that appeared and those
/// that went, or a sentence saying only the wording changed.
pub fn plain_changes(previous: Option<&Terms>, next: &Terms) -> Vec<String> {
    let after = next.summary();
    let Some(previous) = previous else {
        return after.into_iter().map(|l| format!("Now: {l}")).collect();
    };
    let before = previous.summary();
    let mut changes: Vec<String> = before
        .iter()
        .filter(|l| !after.contains(l))
        .map(|l| format!("No longer: {l}"))
        .collect();
    changes.extend(
        after
            .iter()
            .filter(|l| !before.contains(l))
            .map(|l| format!("Now: {l}")),
    );
    if changes.is_empty() {
        changes.push(
            "Only the wording or the description changed; what brands may do is the same.".into(),
        );
    }
    changes
}

/// A suspended grant decided again under the terms the brand just accepted, before the write.
struct Redecided {
    key: Vec<u8>,
    /// The agreement it was under: the write applies the decision only if it still is.
    earlier: String,
    /// The new terms' decision: restored (`Ok`) or revoked (`Err`) by this rule.
    outcome: Result<GrantDecision, GrantDecision>,
    event: Outgoing,
}

/// One brand to tell of new terms, prepared before the write.
struct Notice {
    client_id: String,
    agreement_id: String,
    terms: Outgoing,
    grants: Vec<(Vec<u8>, Outgoing)>,
}

impl OpenVault {
    /// Whether `agreement_id` is `brand`'s agreement, still accepted, on terms older than those
    /// in force: its grants are suspended until the brand accepts the new version.
    pub(crate) fn awaits_acceptance(
        &self,
        brand: &Brand,
        agreement_id: &str,
    ) -> Result<bool, AppError> {
        if brand.agreement_id.as_deref() != Some(agreement_id) {
            return Ok(false);
        }
        let current = self.current_terms()?;
        Ok(self.agreement(agreement_id).is_ok_and(|a| {
            a.status == AgreementStatus::Accepted && a.terms_version < current.version.version
        }))
    }

    /// Whether event `seq` of `brand`'s stream is news of a terms change or of a grant (no
    /// personal data) and the brand has yet to accept the terms in force: such news is still
    /// delivered by webhook, while everything else waits in its stream until it accepts.
    pub(crate) fn awaits_notices(
        &self,
        brand: &Brand,
        client_id: &str,
        seq: u64,
    ) -> Result<bool, AppError> {
        let Some(agreement_id) = &brand.agreement_id else {
            return Ok(false);
        };
        if !self.awaits_acceptance(brand, agreement_id)? {
            return Ok(false);
        }
        Ok(self.event(client_id, seq)?.is_some_and(|event| {
            event
                .get("type")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|kind| kind == TERMS_UPDATED || kind.starts_with("vrm.grant."))
        }))
    }

    /// What a brand whose agreement is on older terms is answered.
    pub(crate) fn terms_changed_message(&self) -> Result<String, AppError> {
        let current = self.current_terms()?;
        Ok(format!(
            "the person's terms changed; accept version {} ({}) by POST {}/brand/v1/agreements: \
             until then your grants are suspended and nothing new is delivered",
            current.version.version, current.version.hash, self.issuer
        ))
    }

    /// The version `brand` accepted, when it is not the one in force and its agreement is still
    /// accepted: the brand has yet to accept the new terms.
    pub fn accepted_older_version(&self, brand: &Brand) -> Result<Option<u64>, AppError> {
        let Some(id) = &brand.agreement_id else {
            return Ok(None);
        };
        let current = self.current_terms()?.version.version;
        Ok(self
            .agreement(id)
            .ok()
            .filter(|a| a.status == AgreementStatus::Accepted && a.terms_version < current)
            .map(|a| a.terms_version))
    }

    /// Prepares the notices of a new version `next` (not yet written) for every brand with an
    /// accepted agreement, and the suspension notices of their live grants.
    fn prepare_notices(
        &self,
        next: &TermsVersion,
        next_terms: &Terms,
        now: OffsetDateTime,
    ) -> Result<Vec<Notice>, AppError> {
        let previous = self.current_terms().ok();
        let changes = plain_changes(previous.as_ref().map(|p| &p.terms), next_terms);
        let grants = self.list_grants()?;
        let mut notices = Vec::new();
        for brand in self.list_brands()? {
            let Some(agreement_id) = brand.agreement_id.clone() else {
                continue;
            };
            let Ok(agreement) = self.agreement(&agreement_id) else {
                continue;
            };
            if agreement.status != AgreementStatus::Accepted {
                continue;
            }
            let terms_ref = TermsRef {
                version: next.version,
                hash: next.hash.clone(),
            };
            let mut suspended = Vec::new();
            for grant in grants.iter().filter(|g| {
                g.client_id == brand.client_id
                    && g.agreement_id == agreement_id
                    && g.status(now) == GrantStatus::Active
            }) {
                let news = GrantNews {
                    kind: GRANT_SUSPENDED,
                    state: GrantStatus::Suspended,
                    reason: format!(
                        "The person published new terms (version {}). This grant is suspended \
                         until you accept them; it works again then if they still permit it.",
                        next.version
                    ),
                    rule: None,
                    terms: Some(terms_ref.clone()),
                };
                let event = self.grant_event(grant, news, now)?;
                suspended.push((self.index_key("grant", &grant.id).to_vec(), event));
            }
            let data = TermsUpdatedData {
                person: brand.pseudonym.clone(),
                terms: PublishedTerms {
                    version: next.version,
                    hash: next.hash.clone(),
                    basis: next.basis.clone(),
                    published_at: next.published_at,
                    url: format!("{}/brand/v1/terms", self.issuer),
                },
                accepted_version: agreement.terms_version,
                changes: changes.clone(),
                accept: HowToAccept {
                    method: "POST",
                    url: format!("{}/brand/v1/agreements", self.issuer),
                    body: serde_json::json!({ "terms_hash": next.hash }),
                },
                grants_suspended: suspended
                    .iter()
                    .filter_map(|(_, e)| e.event.get("subject")?.as_str().map(str::to_owned))
                    .collect(),
            };
            let subject = format!("terms/{}", next.version);
            notices.push(Notice {
                terms: self.outgoing(&brand.client_id, TERMS_UPDATED, &subject, &data, now)?,
                client_id: brand.client_id,
                agreement_id,
                grants: suspended,
            });
        }
        Ok(notices)
    }

    /// Publishes `document` as version `next` (the caller checked it is new) and tells the
    /// brands, in one write; see the module docs.
    pub(super) fn terms_notices_for(
        &self,
        next: &TermsVersion,
        next_terms: &Terms,
        now: OffsetDateTime,
    ) -> Result<TermsNotices, AppError> {
        Ok(TermsNotices {
            notices: self.prepare_notices(next, next_terms, now)?,
            index: self.index.clone(),
        })
    }

    /// Runs after every acceptance (see the module docs): re-decides the brand's suspended
    /// grants under the terms in force and delivers the open intents it missed.
    pub(crate) async fn after_acceptance(
        &self,
        brand: &Brand,
        agreement: &Agreement,
    ) -> Result<(), AppError> {
        self.reconcile_grants(brand, agreement).await?;
        self.deliver_missed_intents(brand).await
    }

    /// The data categories a grant touches, as a new grant's would be computed.
    fn grant_categories(&self, grant: &Grant) -> Result<Vec<String>, AppError> {
        let mut categories = Vec::new();
        for field in &grant.fields {
            match FieldSpec::parse(field).map_err(|e| {
                AppError::internal("a stored grant names a field that no longer parses", e)
            })? {
                FieldSpec::Path(path) => {
                    let stored = match self.get_record(&path) {
                        Ok(record) => Some(record.category),
                        Err(AppError::NotFound(_)) => None,
                        Err(e) => return Err(e),
                    };
                    let category = DataCategory::resolve(&path, stored.as_deref())
                        .unwrap_or(DataCategory::OTHER);
                    categories.push(category.id.to_owned());
                }
                FieldSpec::Category(c) => categories.push(c.to_owned()),
            }
        }
        categories.sort();
        categories.dedup();
        Ok(categories)
    }

    async fn reconcile_grants(&self, brand: &Brand, agreement: &Agreement) -> Result<(), AppError> {
        let now = self.now();
        let current = self.current_terms()?;
        if agreement.terms_version != current.version.version {
            return Ok(());
        }
        let Some(agreed_at) = agreement.events.get(1).map(|e| e.at) else {
            return Ok(());
        };
        let terms_ref = TermsRef {
            version: current.version.version,
            hash: current.version.hash.clone(),
        };
        // The grants to re-decide: live, the brand's, under an earlier agreement that ended only
        // because the terms changed (still accepted, on older terms). A withdrawn or terminated
        // agreement's grants stay ended.
        let mut decided: Vec<Redecided> = Vec::new();
        for grant in self.list_grants()? {
            if grant.client_id != brand.client_id
                || grant.agreement_id == agreement.id
                || grant.status(now) != GrantStatus::Active
            {
                continue;
            }
            let Ok(earlier) = self.agreement(&grant.agreement_id) else {
                continue;
            };
            if earlier.status != AgreementStatus::Accepted
                || earlier.terms_version >= current.version.version
            {
                continue;
            }
            let verdict = terms_verdict(
                &current.terms,
                &grant.actions,
                &self.grant_categories(&grant)?,
                &grant.purpose,
                now,
                agreed_at,
                grant.uses,
            );
            let (outcome, event) = match verdict {
                Ok(decision) => {
                    let mut restored = grant.clone();
                    restored.agreement_id = agreement.id.clone();
                    let news = GrantNews {
                        kind: GRANT_RESTORED,
                        state: GrantStatus::Active,
                        reason: format!(
                            "You accepted the person's terms (version {}), which still permit \
                             this grant: it works again. Ask for a new token for it.",
                            current.version.version
                        ),
                        rule: Some(decision.rule.clone()),
                        terms: Some(terms_ref.clone()),
                    };
                    let event = self.grant_event(&restored, news, now)?;
                    (Ok(decision), event)
                }
                Err(refusal) => {
                    let decision = match refusal {
                        crate::domain::grants::VerdictRefusal::NotPermitted { rule, reason } => {
                            GrantDecision { rule, reason }
                        }
                        crate::domain::grants::VerdictRefusal::NoAction => GrantDecision {
                            rule: "none".into(),
                            reason: "the grant names no action".into(),
                        },
                    };
                    let mut revoked = grant.clone();
                    revoked.revoked_at = Some(now);
                    revoked.revocation = Some(decision.clone());
                    let news = GrantNews {
                        kind: GRANT_REVOKED,
                        state: GrantStatus::Revoked,
                        reason: format!(
                            "The person's terms (version {}) no longer permit this grant: {}.",
                            current.version.version, decision.reason
                        ),
                        rule: Some(decision.rule.clone()),
                        terms: Some(terms_ref.clone()),
                    };
                    let event = self.grant_event(&revoked, news, now)?;
                    (Err(decision), event)
                }
            };
            decided.push(Redecided {
                key: self.index_key("grant", &grant.id).to_vec(),
                earlier: grant.agreement_id.clone(),
                outcome,
                event,
            });
        }
        if decided.is_empty() {
            return Ok(());
        }
        let index = self.index.clone();
        let client_id = brand.client_id.clone();
        let new_agreement = agreement.id.clone();
        self.change(move |tx| {
            let mut restored = Vec::new();
            let mut revoked = Vec::new();
            for Redecided {
                key,
                earlier,
                outcome,
                event,
            } in &decided
            {
                // Re-read: the person may have revoked it meanwhile, or another acceptance
                // already decided it.
                let Some(mut grant) = tx.read(&GRANTS, key)? else {
                    continue;
                };
                if grant.agreement_id != *earlier || grant.status(now) != GrantStatus::Active {
                    continue;
                }
                match outcome {
                    Ok(decision) => {
                        grant.agreement_id = new_agreement.clone();
                        grant.decision = decision.clone();
                        restored.push(grant.id.clone());
                    }
                    Err(decision) => {
                        grant.revoked_at = Some(now);
                        grant.revocation = Some(decision.clone());
                        revoked
                            .push(serde_json::json!({ "grant": grant.id, "rule": decision.rule }));
                    }
                }
                grant.told.push(event.notice(now));
                tx.write(&GRANTS, key, &grant)?;
                event.append_in(tx, &index, now)?;
            }
            let mut event = Event::system("grants.redecided");
            event.target = Some(client_id);
            let event = event.with_detail(serde_json::json!({
                "agreement": new_agreement,
                "restored": restored,
                "revoked": revoked,
            }));
            Ok(((), event))
        })
        .await?;
        self.announce_events();
        Ok(())
    }

    /// Delivers to `brand` every open intent that matches its subscription, that the terms in
    /// force let it receive, and that it has not received.
    async fn deliver_missed_intents(&self, brand: &Brand) -> Result<(), AppError> {
        let now = self.now();
        let versions = self.terms_versions()?;
        // An intent broadcast under terms that did not permit intentcasting was never meant for
        // brands: it is not sent late either, whatever the terms say now.
        let permitted_when = |record: &super::intents::IntentRecord| {
            let version = match record.terms_version {
                Some(number) => versions.iter().find(|v| v.version == number),
                // Stored before the version was kept: the version published strictly before
                // it (the clock counts whole seconds, so a tie is read as the older version).
                None => versions
                    .iter()
                    .find(|v| v.published_at < record.intent.created_at),
            };
            version
                .and_then(|v| Basis::parse(&v.basis))
                .is_some_and(Basis::permits_intentcasting)
        };
        let mut due = Vec::new();
        // Oldest first (to the second: the clock counts whole seconds), as they were broadcast.
        for record in self.list_intents()?.into_iter().rev() {
            if !record.intent.is_open(now)
                || record.recipients.contains(&brand.client_id)
                || !permitted_when(&record)
                || !self.subscription_matches(&brand.client_id, &record.intent.intent)?
            {
                continue;
            }
            let mut disclosed = std::collections::BTreeMap::new();
            let mut categories = Vec::new();
            let mut complete = true;
            for path in &record.intent.intent.disclose {
                match RecordPath::parse(path)
                    .map_err(AppError::from)
                    .and_then(|p| self.get_record(&p))
                {
                    Ok(r) => {
                        categories.push(r.category.clone());
                        disclosed.insert(r.path, r.value);
                    }
                    // A disclosed field deleted since is not sent late, and neither is the intent
                    // without it: it would not be the intent the person broadcast.
                    Err(AppError::NotFound(_)) => complete = false,
                    Err(e) => return Err(e),
                }
            }
            categories.sort();
            categories.dedup();
            if !complete || !self.may_receive(brand, &categories, now)? {
                continue;
            }
            let data = serde_json::json!({
                "intent": brand_view(&record, &disclosed),
                "person": brand.pseudonym,
            });
            let event = self.outgoing(
                &brand.client_id,
                "vrm.intent.created.v1",
                &record.intent.id,
                &data,
                now,
            )?;
            due.push((self.intent_key(&record.intent.id), event));
        }
        if due.is_empty() {
            return Ok(());
        }
        let index = self.index.clone();
        let client_id = brand.client_id.clone();
        self.change(move |tx| {
            let mut delivered = Vec::new();
            for (key, event) in &due {
                let Some(mut record) = tx.read(&INTENTS, key)? else {
                    continue;
                };
                if !record.intent.is_open(now) || record.recipients.contains(&client_id) {
                    continue;
                }
                record.recipients.push(client_id.clone());
                tx.write(&INTENTS, key, &record)?;
                event.append_in(tx, &index, now)?;
                delivered.push(record.intent.id.clone());
            }
            let mut event = Event::system("intents.delivered_late");
            event.target = Some(client_id);
            let event = event.with_detail(serde_json::json!({ "intents": delivered }));
            Ok(((), event))
        })
        .await?;
        self.announce_events();
        Ok(())
    }
}

/// The notices of a new terms version, prepared before the write that publishes it.
pub(crate) struct TermsNotices {
    notices: Vec<Notice>,
    index: std::sync::Arc<crate::crypto::KeyedHash>,
}

impl TermsNotices {
    /// Appends the notices inside the publishing write, to the brands whose agreement is still
    /// accepted there; marks each suspended grant as told. Returns how many brands were told.
    pub fn append_in(
        &self,
        tx: &mut crate::store::Tx<'_>,
        now: OffsetDateTime,
    ) -> Result<usize, AppError> {
        let mut told = 0;
        for notice in &self.notices {
            let brand_key = super::index_key(&self.index, "brand", &notice.client_id);
            let Some(brand) = tx.read(&BRANDS, &brand_key)? else {
                continue;
            };
            if brand.agreement_id.as_deref() != Some(notice.agreement_id.as_str()) {
                continue;
            }
            let agreement_key = super::index_key(&self.index, "agreement", &notice.agreement_id);
            if !tx
                .read(&AGREEMENTS, &agreement_key)?
                .is_some_and(|a| a.status == AgreementStatus::Accepted)
            {
                continue;
            }
            notice.terms.append_in(tx, &self.index, now)?;
            for (key, event) in &notice.grants {
                if let Some(mut grant) = tx.read(&GRANTS, key)?
                    && grant.revoked_at.is_none()
                {
                    grant.told.push(event.notice(now));
                    tx.write(&GRANTS, key, &grant)?;
                    event.append_in(tx, &self.index, now)?;
                }
            }
            told += 1;
        }
        Ok(told)
    }
}
