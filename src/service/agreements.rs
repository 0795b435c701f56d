//! Agreements: a brand accepts the terms in force by their hash, and both sides keep a signed
//! receipt (DESIGN §5).
//!
//! The receipt is the RFC 8785 canonical JSON of `{"receipt": {...}, "signature": JWS}`, where the
//! JWS is ES256 over the canonical bytes of `receipt` with the payload detached. The exact bytes
//! are stored, so a brand fetching its receipt again gets them unchanged until the next event
//! (withdrawal or termination) makes a new receipt.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{OpenVault, canonical, canonical_hash, index_key};
use crate::crypto::KeyedHash;
use crate::crypto::jwt::SigningKey;
use crate::domain::audit::Event;
use crate::domain::brands::{Agreement, AgreementEventKind, AgreementStatus, Brand};
use crate::domain::terms::Basis;
use crate::error::AppError;
use crate::store::{Table, Tree, Tx};

use super::tables::{AGREEMENTS, BRANDS};

/// The same values read without their receipt: a read-only view for the checks on every brand
/// request, never written (it would drop the receipt).
pub(crate) const AGREEMENT_HEADS: Table<AgreementHead> = Table::new(Tree::Agreements, "agreement");

/// The `typ` of a receipt's JWS header.
pub const RECEIPT_TYP: &str = "vrm-receipt+jws";

/// What signing a receipt inside a write needs, captured before the write is queued.
#[derive(Debug, Clone)]
pub(crate) struct ReceiptSigner {
    pub key: Arc<SigningKey>,
    pub issuer: Arc<str>,
    pub now: OffsetDateTime,
    pub index: Arc<KeyedHash>,
}

/// What the checks on every brand request need of an agreement: decoding it skips the signed
/// receipt, a multi-kilobyte string that is only needed when a receipt is served.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AgreementHead {
    pub id: String,
    pub terms_version: u64,
    pub terms_hash: String,
    pub status: AgreementStatus,
    pub events: Vec<crate::domain::brands::AgreementEvent>,
}

impl AgreementHead {
    pub fn is_current(&self, current_terms_hash: &str) -> bool {
        self.status == AgreementStatus::Accepted && self.terms_hash == current_terms_hash
    }

    /// When the brand accepted.
    pub fn accepted_at(&self) -> Option<OffsetDateTime> {
        self.events.get(1).map(|e| e.at)
    }
}

/// Hash of an agreement event: hex SHA-256 of its RFC 8785 form.
fn event_hash(value: &serde_json::Value) -> String {
    canonical_hash(value)
        .map(|h| h.trim_start_matches("sha256:").to_owned())
        .unwrap_or_default()
}

/// `xsd:duration` text for a retention period, in the largest whole unit.
fn xsd_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    if secs % 86_400 == 0 {
        format!("P{}D", secs / 86_400)
    } else if secs % 3_600 == 0 {
        format!("PT{}H", secs / 3_600)
    } else {
        format!("PT{secs}S")
    }
}

impl ReceiptSigner {
    pub fn agreement_key(&self, id: &str) -> [u8; 32] {
        index_key(&self.index, "agreement", id)
    }

    /// Signs the agreement's current state into `agreement.receipt`.
    pub fn sign(&self, agreement: &mut Agreement) -> Result<(), AppError> {
        let document = agreement.receipt_document(&self.issuer);
        let payload = canonical(&document)?;
        let signature = self
            .key
            .sign_detached(RECEIPT_TYP, &payload)
            .map_err(|e| AppError::internal("signing a receipt", e))?;
        let receipt =
            canonical(&serde_json::json!({ "receipt": document, "signature": signature }))?;
        agreement.receipt = String::from_utf8(receipt)
            .map_err(|e| AppError::internal("receipt is not UTF-8", e))?;
        Ok(())
    }

    /// Ends an accepted agreement with `kind` (withdrawn or terminated) and re-signs its receipt.
    /// An agreement already ended is left as it is.
    pub fn end_in(
        &self,
        tx: &mut Tx<'_>,
        id: &str,
        kind: AgreementEventKind,
    ) -> Result<Option<Agreement>, AppError> {
        let key = self.agreement_key(id);
        let Some(mut agreement) = tx.read(&AGREEMENTS, &key)? else {
            return Ok(None);
        };
        if agreement.status != AgreementStatus::Accepted {
            return Ok(Some(agreement));
        }
        agreement.push_event(kind, self.now, event_hash);
        self.sign(&mut agreement)?;
        tx.write(&AGREEMENTS, &key, &agreement)?;
        Ok(Some(agreement))
    }
}

impl OpenVault {
    pub(crate) fn receipt_signer(&self) -> ReceiptSigner {
        ReceiptSigner {
            key: self.key_ring().active.clone(),
            issuer: self.issuer.clone(),
            now: self.now(),
            index: self.index.clone(),
        }
    }

    pub fn agreement(&self, id: &str) -> Result<Agreement, AppError> {
        self.store()
            .read(&AGREEMENTS, &index_key(&self.index, "agreement", id))?
            .ok_or(AppError::NotFound("agreement"))
    }

    /// Every agreement, newest first (each brand's history included).
    pub fn list_agreements(&self) -> Result<Vec<Agreement>, AppError> {
        let mut all: Vec<Agreement> = self
            .store()
            .read_all(&AGREEMENTS)
            .map(|item| Ok(item?.1))
            .collect::<Result<_, AppError>>()?;
        all.sort_by(|a, b| {
            let at = |x: &Agreement| x.events.get(1).map(|e| e.at);
            at(b).cmp(&at(a))
        });
        Ok(all)
    }

    /// The agreement `id` if it is `brand`'s; another brand's agreement does not exist for it.
    pub fn brand_agreement(&self, brand: &Brand, id: &str) -> Result<Agreement, AppError> {
        self.agreement(id)
            .ok()
            .filter(|a| a.client_id == brand.client_id)
            .ok_or(AppError::NotFound("agreement"))
    }

    /// The brand accepts the terms whose hash it names, which must be the ones in force. Accepting
    /// the terms it already has a current agreement on returns that agreement (`false`).
    pub async fn accept_terms(
        &self,
        brand: &Brand,
        terms_hash: &str,
    ) -> Result<(Agreement, bool), AppError> {
        let current = self.current_terms()?;
        if terms_hash != current.version.hash {
            return Err(AppError::TermsChanged(format!(
                "these are not the terms in force: read GET /brand/v1/terms and accept version {} ({})",
                current.version.version, current.version.hash
            )));
        }
        let id = data_encoding::BASE32_NOPAD
            .encode(
                &crate::crypto::random_array::<10>()
                    .map_err(|e| AppError::internal("drawing random bytes", e))?,
            )
            .to_lowercase();
        let terms = &current.terms;
        let basis = Basis::parse(&current.version.basis).unwrap_or(terms.basis());
        let mut agreement = Agreement {
            id,
            client_id: brand.client_id.clone(),
            brand_name: brand.client_name.clone(),
            pseudonym: brand.pseudonym.clone(),
            terms_version: current.version.version,
            terms_hash: current.version.hash.clone(),
            basis: basis.as_str().to_owned(),
            basis_iri: basis.iri().to_owned(),
            purposes: terms.purposes().into_iter().map(str::to_owned).collect(),
            data_categories: terms
                .data_categories()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            retention: terms.retention().map(xsd_duration),
            events: Vec::new(),
            status: AgreementStatus::Accepted,
            receipt: String::new(),
        };
        agreement.push_event(
            AgreementEventKind::Proffered,
            current.version.published_at,
            event_hash,
        );
        let signer = self.receipt_signer();
        agreement.push_event(AgreementEventKind::Accepted, signer.now, event_hash);
        signer.sign(&mut agreement)?;
        let brand_key = index_key(&self.index, "brand", &brand.client_id);
        let client_id = brand.client_id.clone();
        let terms_hash = current.version.hash.clone();
        let accepted = self
            .change(move |tx| {
                let mut brand = tx
                    .read(&BRANDS, &brand_key)?
                    .ok_or(AppError::NotFound("brand"))?;
                if let Some(existing) = &brand.agreement_id
                    && let Some(existing) = tx.read(&AGREEMENTS, &signer.agreement_key(existing))?
                    && existing.is_current(&terms_hash)
                {
                    let event = Event::brand("agreement.reaccepted", &client_id)
                        .with_detail(serde_json::json!({ "agreement": existing.id }));
                    return Ok(((existing, false), event));
                }
                tx.write(
                    &AGREEMENTS,
                    &signer.agreement_key(&agreement.id),
                    &agreement,
                )?;
                brand.agreement_id = Some(agreement.id.clone());
                tx.write(&BRANDS, &brand_key, &brand)?;
                let event =
                    Event::brand("agreement.accepted", &client_id).with_detail(serde_json::json!({
                        "agreement": agreement.id,
                        "terms_version": agreement.terms_version,
                        "terms_hash": agreement.terms_hash,
                    }));
                Ok(((agreement, true), event))
            })
            .await?;
        // Grants suspended by a terms change and intents missed meanwhile: decided now, and
        // again on every later acceptance call, so a stop in between is finished by accepting
        // again.
        let brand = self.brand(&brand.client_id)?;
        self.after_acceptance(&brand, &accepted.0).await?;
        Ok(accepted)
    }

    /// The brand withdraws from its agreement.
    pub async fn withdraw_agreement(&self, brand: &Brand, id: &str) -> Result<Agreement, AppError> {
        self.brand_agreement(brand, id)?;
        self.end_agreement(
            id,
            AgreementEventKind::Withdrawn,
            Event::brand("agreement.withdrawn", &brand.client_id),
        )
        .await
    }

    /// The owner ends an agreement.
    pub async fn terminate_agreement(&self, id: &str) -> Result<Agreement, AppError> {
        self.end_agreement(
            id,
            AgreementEventKind::Terminated,
            Event::owner("agreement.terminated", None),
        )
        .await
    }

    async fn end_agreement(
        &self,
        id: &str,
        kind: AgreementEventKind,
        event: Event,
    ) -> Result<Agreement, AppError> {
        let signer = self.receipt_signer();
        let id = id.to_owned();
        self.change(move |tx| {
            let agreement = signer
                .end_in(tx, &id, kind)?
                .ok_or(AppError::NotFound("agreement"))?;
            let mut event = event.with_detail(serde_json::json!({ "agreement": agreement.id }));
            if event.target.is_none() {
                event.target = Some(agreement.client_id.clone());
            }
            Ok((agreement, event))
        })
        .await
    }

    /// The id of `brand`'s agreement on the terms in force, if it has one.
    pub fn current_agreement(&self, brand: &Brand) -> Result<Option<String>, AppError> {
        let Some(id) = &brand.agreement_id else {
            return Ok(None);
        };
        let current = self.current_terms()?;
        let key = index_key(&self.index, "agreement", id);
        let head = self.agreements_cache.get(&key, || {
            self.store()
                .get(AGREEMENT_HEADS.tree(), &key)?
                .map(|bytes| Ok((AGREEMENT_HEADS.decode(&bytes)?, bytes.len())))
                .transpose()
        })?;
        Ok(head
            .filter(|head| head.is_current(&current.version.hash))
            .map(|head| head.id.clone()))
    }
}
