//! Data grants: made by the owner or approved on the consent page, checked and counted on every
//! brand data request, revocable at once.
//!
//! Every use goes through the writer thread: the grant is re-read there, its status, agreement and
//! terms checked, its use count moved on and the access recorded in the audit log, in one atomic
//! batch. So concurrent requests can never exceed a use count, and a revocation queued before a
//! request is seen by it.

use std::collections::BTreeMap;

use serde_json::Value;
use time::OffsetDateTime;

use super::OpenVault;
use super::records::stage_record;
use crate::domain::audit::{Actor, Event};
use crate::domain::brands::Brand;
use crate::domain::grants::{
    AgreementFacts, AskedGrant, FieldSpec, Grant, GrantAction, GrantDecision, GrantOrigin,
    GrantStatus, MAX_GRANT_LIFETIME, MAX_USES, UseFacts, UseRefusal, UseRequest, VerdictRefusal,
    admit, decide_use, terms_verdict,
};
use crate::domain::records::{
    DataCategory, Precondition, Record, RecordPath, validate_value, validate_well_known,
};
use crate::error::{AppError, TokenRefusal};
use crate::store::Tx;

use super::agreements::AGREEMENT_HEADS;
use super::tables::{AUDIT, GRANTS};

/// The answer to a refused use: a refusal that ends the brand's access is an invalid token (the
/// brand must get a new grant), one about this request only is "not granted".
fn refused(refusal: UseRefusal) -> AppError {
    if let UseRefusal::TermsChanged { .. } = refusal {
        return AppError::TermsNotAccepted(refusal.to_string());
    }
    if refusal.ends_access() {
        AppError::InvalidToken(match refusal {
            UseRefusal::BrandRemoved => TokenRefusal::ClientRemoved,
            UseRefusal::BrandSuspended => TokenRefusal::ClientSuspended,
            UseRefusal::NoAgreement | UseRefusal::AgreementChanged => TokenRefusal::TermsChanged,
            // Another brand's grant is, to this brand, no grant at all.
            UseRefusal::OtherBrand => TokenRefusal::GrantEnded(UseRefusal::GrantGone.to_string()),
            other => TokenRefusal::GrantEnded(other.to_string()),
        })
    } else {
        AppError::NotGranted(refusal.to_string())
    }
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::invalid("invalid_grant", message)
}

/// What a new grant should be.
#[derive(Debug, Clone)]
pub struct GrantRequest {
    pub client_id: String,
    pub fields: Vec<FieldSpec>,
    pub actions: Vec<GrantAction>,
    pub purpose: String,
    pub expires_at: OffsetDateTime,
    pub max_uses: Option<u64>,
    pub origin: GrantOrigin,
}

/// One access of a grant, from the audit log.
#[derive(Debug, Clone)]
pub struct Access {
    pub at: OffsetDateTime,
    pub action: String,
    pub fields: Vec<String>,
    pub purpose: String,
}

/// Most audit entries scanned, newest first, to list a grant's accesses.
const ACCESS_SCAN: usize = 20_000;

impl OpenVault {
    fn grant_key(&self, id: &str) -> [u8; 32] {
        self.index_key("grant", id)
    }

    /// The data category a field would have: its record's, or the default for its path.
    pub(crate) fn category_of(&self, path: &RecordPath) -> Result<&'static str, AppError> {
        let stored = match self.get_record(path) {
            Ok(record) => Some(record.category),
            Err(AppError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let category =
            DataCategory::resolve(path, stored.as_deref()).unwrap_or(DataCategory::OTHER);
        Ok(category.id)
    }

    /// The terms' verdict on `actions` over `categories` for `purpose` now.
    fn evaluate_grant(
        &self,
        agreed_at: OffsetDateTime,
        actions: &[GrantAction],
        categories: Vec<String>,
        purpose: &str,
        uses: u64,
    ) -> Result<GrantDecision, AppError> {
        let terms = self.current_terms()?;
        terms_verdict(
            &terms.terms,
            actions,
            &categories,
            purpose,
            self.now(),
            agreed_at,
            uses,
        )
        .map_err(|refusal| match refusal {
            VerdictRefusal::NoAction => invalid("name at least one action"),
            VerdictRefusal::NotPermitted { rule, reason } => {
                AppError::GrantNotPermitted { rule, reason }
            }
        })
    }

    /// The data categories a request touches, as the consent page and the approval see them: a
    /// field's stored category, or its path's default.
    pub(crate) fn asked_categories(&self, asked: &AskedGrant) -> Result<Vec<String>, AppError> {
        let mut categories = Vec::new();
        for spec in &asked.fields {
            let category = match spec {
                FieldSpec::Path(path) => match self.get_record(path) {
                    Ok(r) => DataCategory::find(&r.category).unwrap_or(DataCategory::OTHER),
                    Err(AppError::NotFound(_)) => {
                        DataCategory::resolve(path, None).unwrap_or(DataCategory::OTHER)
                    }
                    Err(e) => return Err(e),
                },
                FieldSpec::Category(id) => DataCategory::find(id).unwrap_or(DataCategory::OTHER),
            };
            categories.push(category.id.to_owned());
        }
        categories.sort();
        categories.dedup();
        Ok(categories)
    }

    /// The terms' verdict on a grant under `agreement_id`, as if made now.
    pub(crate) fn check_grant_terms(
        &self,
        agreement_id: &str,
        actions: &[GrantAction],
        categories: Vec<String>,
        purpose: &str,
    ) -> Result<GrantDecision, AppError> {
        self.evaluate_grant(
            self.agreed_at(agreement_id)?,
            actions,
            categories,
            purpose,
            0,
        )
    }

    pub(crate) fn agreed_at(&self, agreement_id: &str) -> Result<OffsetDateTime, AppError> {
        let agreement = self.agreement(agreement_id)?;
        agreement
            .events
            .get(1)
            .map(|e| e.at)
            .ok_or_else(|| AppError::broken("agreement has no acceptance"))
    }

    /// Makes a grant, if the brand has an agreement on the terms in force and the terms permit it.
    pub async fn create_grant(&self, request: GrantRequest) -> Result<Grant, AppError> {
        let brand = self.brand(&request.client_id)?;
        let agreement_id = self.current_agreement(&brand)?.ok_or_else(|| {
            AppError::NoAgreement(format!(
                "{} has no agreement on your current terms; it must accept them first",
                brand.client_name
            ))
        })?;
        let now = self.now();
        if request.expires_at <= now {
            return Err(invalid("expires_at must be in the future"));
        }
        if request.expires_at > now + MAX_GRANT_LIFETIME {
            return Err(invalid("a grant may last at most a year"));
        }
        if request.max_uses.is_some_and(|m| m == 0 || m > MAX_USES) {
            return Err(invalid(format!(
                "max_uses must be between 1 and {MAX_USES}"
            )));
        }
        let to_share = self.fields_to_share(&request.fields)?;
        let mut categories: Vec<String> = to_share.iter().map(|f| f.category.clone()).collect();
        categories.sort();
        categories.dedup();
        let agreed_at = self.agreed_at(&agreement_id)?;
        let decision =
            match self.evaluate_grant(agreed_at, &request.actions, categories, &request.purpose, 0)
            {
                // The refusal names, in words, only the fields refused.
                Err(AppError::GrantNotPermitted { rule, .. }) => {
                    return Err(self.explain_refusal(
                        rule,
                        &to_share,
                        &request.actions,
                        &request.purpose,
                        agreed_at,
                    )?);
                }
                other => other?,
            };
        let id = format!(
            "g_{}",
            data_encoding::BASE32_NOPAD
                .encode(
                    &crate::crypto::random_array::<10>()
                        .map_err(|e| AppError::internal("drawing random bytes", e))?
                )
                .to_lowercase()
        );
        let grant = Grant {
            id,
            client_id: brand.client_id.clone(),
            brand_name: brand.client_name.clone(),
            fields: request
                .fields
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            actions: request.actions,
            purpose: request.purpose,
            created_at: now,
            expires_at: request.expires_at,
            max_uses: request.max_uses,
            uses: 0,
            origin: request.origin,
            agreement_id,
            decision,
            revoked_at: None,
            last_used_at: None,
            refresh_generation: 0,
            revocation: None,
            told: Vec::new(),
        };
        // The brand is told in the same write (`service::grant_events`).
        let told = self.grant_event(
            &grant,
            super::grant_events::GrantNews {
                kind: super::grant_events::GRANT_CREATED,
                state: GrantStatus::Active,
                reason: match grant.origin {
                    GrantOrigin::Owner => "The person shared this with you.".into(),
                    GrantOrigin::Consent => "The person approved your request.".into(),
                },
                rule: Some(grant.decision.rule.clone()),
                terms: None,
            },
            now,
        )?;
        let mut grant = grant;
        grant.told.push(told.notice(now));
        let key = self.grant_key(&grant.id);
        let stored = grant.clone();
        let index = self.index.clone();
        self.change(move |tx| {
            tx.write(&GRANTS, &key, &stored)?;
            told.append_in(tx, &index, now)?;
            let event = Event::owner("grant.created", Some(stored.client_id.clone())).with_detail(
                serde_json::json!({
                    "grant": stored.id,
                    "fields": stored.fields,
                    "actions": stored.actions,
                    "purpose": stored.purpose,
                    "expires_at": stored.expires_at.unix_timestamp(),
                    "max_uses": stored.max_uses,
                    "origin": stored.origin,
                    "rule": stored.decision.rule,
                }),
            );
            Ok(((), event))
        })
        .await?;
        self.announce_events();
        Ok(grant)
    }

    pub fn grant(&self, id: &str) -> Result<Grant, AppError> {
        self.store()
            .read(&GRANTS, &self.grant_key(id))?
            .ok_or(AppError::NotFound("grant"))
    }

    /// Every grant, newest first.
    pub fn list_grants(&self) -> Result<Vec<Grant>, AppError> {
        let mut all: Vec<Grant> = self
            .store()
            .read_all(&GRANTS)
            .map(|item| item.map(|(_, grant)| grant))
            .collect::<Result<_, _>>()?;
        all.sort_by_key(|g| std::cmp::Reverse(g.created_at));
        Ok(all)
    }

    /// A grant's status now: suspended while its agreement is still accepted but on older terms
    /// (until the brand accepts the new ones), revoked once its agreement ended.
    pub fn grant_status(&self, grant: &Grant) -> Result<GrantStatus, AppError> {
        let status = grant.status(self.now());
        if status != GrantStatus::Active {
            return Ok(status);
        }
        let Some(brand) = self.find_brand(&grant.client_id)? else {
            return Ok(GrantStatus::Revoked);
        };
        if self.current_agreement(&brand)?.as_deref() == Some(grant.agreement_id.as_str()) {
            return Ok(GrantStatus::Active);
        }
        Ok(if self.awaits_acceptance(&brand, &grant.agreement_id)? {
            GrantStatus::Suspended
        } else {
            GrantStatus::Revoked
        })
    }

    /// Revokes a grant: the brand's next request with it fails, whatever its token says.
    pub async fn revoke_grant(&self, id: &str, by: Actor) -> Result<Grant, AppError> {
        let key = self.grant_key(id);
        let now = self.now();
        let told = match self.grant(id) {
            Ok(grant) if grant.revoked_at.is_none() => {
                Some(self.grant_revoked_event(&grant, by == Actor::Brand, now)?)
            }
            _ => None,
        };
        let index = self.index.clone();
        let grant = self
            .change(move |tx| {
                let mut grant = load(tx, &key)?;
                if grant.revoked_at.is_none() {
                    grant.revoked_at = Some(now);
                    if let Some(told) = &told {
                        grant.told.push(told.notice(now));
                        told.append_in(tx, &index, now)?;
                    }
                    tx.write(&GRANTS, &key, &grant)?;
                }
                let mut event = match by {
                    Actor::Owner => Event::owner("grant.revoked", Some(grant.client_id.clone())),
                    Actor::Brand => Event::brand("grant.revoked", &grant.client_id),
                    Actor::System | Actor::Agent => {
                        let mut e = Event::system("grant.revoked");
                        e.target = Some(grant.client_id.clone());
                        e
                    }
                };
                event = event.with_detail(serde_json::json!({ "grant": grant.id }));
                Ok((grant, event))
            })
            .await?;
        self.announce_events();
        Ok(grant)
    }

    /// Revokes every active grant of a brand; returns how many.
    pub async fn revoke_brand_grants(&self, client_id: &str) -> Result<usize, AppError> {
        self.brand(client_id)?;
        let now = self.now();
        let mut keys = Vec::new();
        for g in self.list_grants()?.into_iter().filter(|g| {
            g.client_id == client_id
                && g.revoked_at.is_none()
                && g.status(now) == GrantStatus::Active
        }) {
            keys.push((
                self.grant_key(&g.id),
                self.grant_revoked_event(&g, false, now)?,
            ));
        }
        let client_id = client_id.to_owned();
        let index = self.index.clone();
        let count = self
            .change(move |tx| {
                let mut revoked = Vec::new();
                for (key, told) in &keys {
                    let mut grant = load(tx, key)?;
                    if grant.revoked_at.is_none() {
                        grant.revoked_at = Some(now);
                        grant.told.push(told.notice(now));
                        told.append_in(tx, &index, now)?;
                        tx.write(&GRANTS, key, &grant)?;
                        revoked.push(grant.id);
                    }
                }
                let count = revoked.len();
                let event = Event::owner("grant.revoked_all", Some(client_id))
                    .with_detail(serde_json::json!({ "grants": revoked }));
                Ok((count, event))
            })
            .await?;
        self.announce_events();
        Ok(count)
    }

    /// The accesses of a grant, newest first, from the audit log.
    pub fn grant_accesses(&self, id: &str) -> Result<Vec<Access>, AppError> {
        self.grant(id)?;
        let mut accesses = Vec::new();
        for item in self.store().read_rev_before(&AUDIT, None).take(ACCESS_SCAN) {
            let (_, entry) = item?;
            if !entry.action.starts_with("data.") {
                continue;
            }
            let Some(detail) = &entry.detail else {
                continue;
            };
            if detail.get("grant").and_then(Value::as_str) != Some(id) {
                continue;
            }
            accesses.push(Access {
                at: entry.at,
                action: entry.action.clone(),
                fields: serde_json::from_value(detail.get("fields").cloned().unwrap_or_default())
                    .unwrap_or_default(),
                purpose: detail
                    .get("purpose")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(accesses)
    }

    /// Uses a grant once for `action` on `fields` (path → category): checks, counts and records
    /// it atomically. Fails with `InvalidToken` when the grant no longer lets the brand in, and
    /// with `NotGranted` when it does not cover what is asked.
    async fn use_grant(
        &self,
        brand: &Brand,
        grant_id: &str,
        action: GrantAction,
        fields: Vec<(String, String)>,
        write: Option<(Vec<u8>, RecordPath, Value)>,
    ) -> Result<(Grant, Option<super::records::Written>), AppError> {
        let key = self.grant_key(grant_id);
        let terms = self.current_terms()?;
        let now = self.now();
        let client_id = brand.client_id.clone();
        let index = self.index.clone();
        let cached = self.in_writer.clone();
        self.change(move |tx| {
            // Everything that can end the brand's access is re-read here, in the writer, so a
            // suspension, termination, new terms or revocation queued before this request is
            // seen by it (the writer's caches hold what the transaction would read). The
            // decision itself is `decide_use`; this closure only loads, stores and records.
            let brand = cached.brands.get(tx, &client_id, || {
                super::index_key(&index, "brand", &client_id)
            })?;
            let terms_version = super::terms::current_number(tx)?;
            let agreement = match brand.as_ref().and_then(|b| b.agreement_id.as_ref()) {
                Some(id) => cached
                    .agreements
                    .get(tx, id, || super::index_key(&index, "agreement", id))?,
                None => None,
            };
            let grant = tx.read(&GRANTS, &key)?;
            let facts = UseFacts {
                brand: brand.as_ref().map(|b| b.status),
                agreement: agreement.as_ref().map(|a| AgreementFacts {
                    id: &a.id,
                    status: a.status,
                    terms_version: a.terms_version,
                    accepted_at: a.accepted_at(),
                }),
                terms_version,
                terms: &terms.terms,
            };
            let request = UseRequest {
                client_id: &client_id,
                action,
                fields: &fields,
                now,
            };
            let allowed = decide_use(grant.as_ref(), &facts, &request).map_err(refused)?;
            // `decide_use` refuses a grant that is gone, so this only unwraps what it allowed.
            let mut grant = grant.ok_or_else(|| refused(UseRefusal::GrantGone))?;
            let written = match write {
                Some((record_key, path, value)) => {
                    let category = fields.first().map(|(_, c)| c.clone()).unwrap_or_default();
                    Some(stage_record(
                        tx,
                        &record_key,
                        path,
                        value,
                        &category,
                        now,
                        Precondition::None,
                    )?)
                }
                None => None,
            };
            allowed.apply(&mut grant);
            tx.write(&GRANTS, &key, &grant)?;
            let names: Vec<&String> = fields.iter().map(|(p, _)| p).collect();
            let event = Event::brand(
                match action {
                    GrantAction::Read => "data.read",
                    GrantAction::Write => "data.written",
                },
                &client_id,
            )
            .with_detail(serde_json::json!({
                "grant": grant.id,
                "fields": names,
                "purpose": grant.purpose,
            }));
            Ok(((grant, written), event))
        })
        .await
    }

    /// Every existing record the grant covers, read for the brand (one use). A refusal is
    /// counted like a refused field (`note_refusal`).
    pub async fn brand_read_all(
        &self,
        brand: &Brand,
        grant_id: &str,
    ) -> Result<(Grant, BTreeMap<String, Value>), AppError> {
        let read = self.brand_read_all_checked(brand, grant_id).await;
        self.note_refusal(brand, grant_id, read).await
    }

    async fn brand_read_all_checked(
        &self,
        brand: &Brand,
        grant_id: &str,
    ) -> Result<(Grant, BTreeMap<String, Value>), AppError> {
        let grant = self.grant_for(brand, grant_id)?;
        let mut records: Vec<Record> = Vec::new();
        let mut categories = Vec::new();
        for field in &grant.fields {
            match FieldSpec::parse(field).map_err(|e| {
                AppError::internal("a stored grant names a field that no longer parses", e)
            })? {
                FieldSpec::Path(path) => match self.get_record(&path) {
                    Ok(record) => records.push(record),
                    Err(AppError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                },
                FieldSpec::Category(c) => categories.push(c),
            }
        }
        if !categories.is_empty() {
            let mut cursor = None;
            loop {
                let page = self.list_records(cursor.as_deref(), super::records::MAX_PAGE)?;
                records.extend(
                    page.records
                        .into_iter()
                        .filter(|r| categories.contains(&r.category.as_str())),
                );
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        records.sort_by(|a, b| a.path.cmp(&b.path));
        records.dedup_by(|a, b| a.path == b.path);
        let fields = records
            .iter()
            .map(|r| (r.path.to_string(), r.category.clone()))
            .collect();
        let (grant, _) = self
            .use_grant(brand, grant_id, GrantAction::Read, fields, None)
            .await?;
        Ok((
            grant,
            records
                .into_iter()
                .map(|r| (r.path.into(), r.value))
                .collect(),
        ))
    }

    /// One field, read for the brand (one use). The answer never depends on whether a field
    /// the grant does not cover exists: a grant that has ended (used up, revoked, expired, or
    /// no longer backed by the brand's agreement) is refused before any record is looked at, and
    /// a field outside a live grant is `not_granted` either way. Refusals are summarised in the
    /// audit log (`domain::refusals`).
    pub async fn brand_read(
        &self,
        brand: &Brand,
        grant_id: &str,
        path: &RecordPath,
    ) -> Result<(Grant, Record), AppError> {
        let read = self.brand_read_checked(brand, grant_id, path).await;
        self.note_refusal(brand, grant_id, read).await
    }

    async fn brand_read_checked(
        &self,
        brand: &Brand,
        grant_id: &str,
        path: &RecordPath,
    ) -> Result<(Grant, Record), AppError> {
        let grant = self.admitted_grant(brand, grant_id)?;
        let record = match self.get_record(path) {
            Ok(record) => record,
            Err(AppError::NotFound(_)) => {
                // Whether the grant covers the field decides between "not granted" and "empty".
                let category = DataCategory::resolve(path, None).unwrap_or(DataCategory::OTHER);
                return Err(if grant.covers(path.as_str(), category.id) {
                    AppError::NotFound("record at this path")
                } else {
                    AppError::NotGranted("this grant does not cover that field".into())
                });
            }
            Err(e) => return Err(e),
        };
        // The grant's owner, status and coverage are checked in the writer, in `use_grant`.
        let category = record.category.clone();
        let (grant, _) = self
            .use_grant(
                brand,
                grant_id,
                GrantAction::Read,
                vec![(record.path.to_string(), category)],
                None,
            )
            .await?;
        Ok((grant, record))
    }

    /// Writes one field for the brand (one use), if its grant allows writing it. Refused like a
    /// read: an ended grant first, whatever the field.
    pub async fn brand_write(
        &self,
        brand: &Brand,
        grant_id: &str,
        path: &RecordPath,
        value: Value,
    ) -> Result<super::records::Written, AppError> {
        validate_value(&value)?;
        let written = self.brand_write_checked(brand, grant_id, path, value).await;
        self.note_refusal(brand, grant_id, written).await
    }

    async fn brand_write_checked(
        &self,
        brand: &Brand,
        grant_id: &str,
        path: &RecordPath,
        value: Value,
    ) -> Result<super::records::Written, AppError> {
        let grant = self.admitted_grant(brand, grant_id)?;
        validate_well_known(path, &value)?;
        let category = self.category_of(path)?.to_owned();
        if !grant.covers(path.as_str(), &category) {
            return Err(AppError::NotGranted(
                "this grant does not cover that field".into(),
            ));
        }
        if !grant.allows(GrantAction::Write) {
            return Err(AppError::NotGranted(
                "this grant does not allow writing".into(),
            ));
        }
        let record_key = self.record_key(path).to_vec();
        let (_, written) = self
            .use_grant(
                brand,
                grant_id,
                GrantAction::Write,
                vec![(path.as_str().to_owned(), category)],
                Some((record_key, path.clone(), value)),
            )
            .await?;
        written.ok_or_else(|| AppError::broken("the write was not staged"))
    }

    /// The grant a brand's token names, if it still lets the brand in at all (`domain::grants::admit`),
    /// checked on what the store holds now; the use itself is decided again in the writer.
    fn admitted_grant(&self, brand: &Brand, grant_id: &str) -> Result<Grant, AppError> {
        let grant = self.grant_for(brand, grant_id)?;
        let terms = self.current_terms()?;
        // The agreement's head, through the same cache the token check reads it from.
        let agreement = match &brand.agreement_id {
            Some(id) => {
                let key = super::index_key(&self.index, "agreement", id);
                self.agreements_cache.get(&key, || {
                    self.store()
                        .get(AGREEMENT_HEADS.tree(), &key)?
                        .map(|bytes| Ok((AGREEMENT_HEADS.decode(&bytes)?, bytes.len())))
                        .transpose()
                })?
            }
            None => None,
        };
        let facts = UseFacts {
            brand: Some(brand.status),
            agreement: agreement.as_ref().map(|a| AgreementFacts {
                id: &a.id,
                status: a.status,
                terms_version: a.terms_version,
                accepted_at: a.accepted_at(),
            }),
            terms_version: terms.version.version,
            terms: &terms.terms,
        };
        admit(Some(&grant), &facts, &brand.client_id, self.now()).map_err(refused)?;
        Ok(grant)
    }

    /// Counts a refused data request of `grant_id` and, when a summary is due, records it in
    /// the audit log (`access.refused`, naming the grant and how many were refused since when,
    /// never the paths). A failure to record it is logged and does not change the answer.
    async fn note_refusal<T>(
        &self,
        brand: &Brand,
        grant_id: &str,
        result: Result<T, AppError>,
    ) -> Result<T, AppError> {
        let answer = match &result {
            Err(AppError::NotGranted(_)) => "not_granted",
            Err(AppError::InvalidToken(_)) => "grant_ended",
            _ => return result,
        };
        let now = self.now();
        let due = match self.refusals.lock() {
            Ok(mut tally) => tally.count(grant_id, now),
            Err(_) => None,
        };
        if let Some(summary) = due {
            let event = Event::brand("access.refused", &brand.client_id).with_detail(
                serde_json::json!({
                    "grant": grant_id,
                    "refused": summary.refused,
                    "since": summary.since.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                    "answer": answer,
                }),
            );
            if let Err(e) = self.change(move |_| Ok(((), event))).await {
                tracing::warn!(error = %e, "a summary of refused brand requests was not recorded");
            }
        }
        result
    }

    /// The grant a brand's token names, if it is that brand's.
    pub fn grant_for(&self, brand: &Brand, grant_id: &str) -> Result<Grant, AppError> {
        match self.grant(grant_id) {
            Ok(grant) if grant.client_id == brand.client_id => Ok(grant),
            Ok(_) | Err(AppError::NotFound(_)) => Err(AppError::InvalidToken(
                TokenRefusal::GrantEnded(UseRefusal::GrantGone.to_string()),
            )),
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn load(tx: &mut Tx<'_>, key: &[u8]) -> Result<Grant, AppError> {
    tx.read(&GRANTS, key)?.ok_or(AppError::NotFound("grant"))
}
