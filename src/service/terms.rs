//! The person's terms: published versions, the one in force, and its history.
//!
//! Versions live in the `Terms` tree under their big-endian number and are never changed once
//! written; `Meta/terms_current` names the version in force. A version's hash is SHA-256 over the
//! RFC 8785 canonical form of its document, so brands can compute it themselves.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{OpenVault, canonical_hash};
use crate::domain::audit::Event;
use crate::domain::terms::{Template, Terms, TermsError};
use crate::error::AppError;
use crate::store::{Store, Table, Tree, Tx};

use super::tables::{META_TERMS_CURRENT, TERMS_CURRENT};

/// Published terms versions, under their big-endian number.
pub(crate) const TERMS: Table<TermsVersion> = Table::new(Tree::Terms, "terms version");

/// The template a new vault starts with: the strictest one.
pub const DEFAULT_TEMPLATE: &str = "sd-base";

/// One published version, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermsVersion {
    pub version: u64,
    pub hash: String,
    pub basis: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    pub document: Value,
}

/// The version in force, parsed once.
#[derive(Debug)]
pub struct CurrentTerms {
    pub version: TermsVersion,
    pub terms: Terms,
}

/// A document checked but not published.
#[derive(Debug)]
pub struct Preview {
    pub hash: String,
    pub terms: Terms,
}

impl From<TermsError> for AppError {
    fn from(e: TermsError) -> AppError {
        AppError::InvalidTerms {
            at: e.at().to_owned(),
            message: e.to_string(),
        }
    }
}

fn parse(version: &TermsVersion) -> Result<Terms, AppError> {
    Terms::parse(&version.document)
        .map_err(|e| AppError::internal("a stored terms version no longer parses", e))
}

pub(crate) fn current_number(tx: &mut Tx<'_>) -> Result<u64, AppError> {
    Ok(tx.read(&TERMS_CURRENT, META_TERMS_CURRENT)?.unwrap_or(0))
}

/// Stages `terms` as the next version unless it is the one in force. Returns the version in force
/// afterwards and whether it is new.
fn publish_in(
    tx: &mut Tx<'_>,
    terms: &Terms,
    hash: String,
    now: OffsetDateTime,
) -> Result<(TermsVersion, bool), AppError> {
    let current = current_number(tx)?;
    if current > 0
        && let Some(stored) = tx.read(&TERMS, &current.to_be_bytes())?
        && stored.hash == hash
    {
        return Ok((stored, false));
    }
    let version = TermsVersion {
        version: current + 1,
        hash,
        basis: terms.basis().as_str().to_owned(),
        published_at: now,
        document: terms.document().clone(),
    };
    tx.write(&TERMS, &version.version.to_be_bytes(), &version)?;
    // The pointer's JSON is the number's decimal digits, as it was always written.
    tx.write(&TERMS_CURRENT, META_TERMS_CURRENT, &version.version)?;
    Ok((version, true))
}

fn published_event(version: &TermsVersion, event: Event) -> Event {
    event.with_detail(serde_json::json!({
        "version": version.version,
        "hash": version.hash,
        "basis": version.basis,
    }))
}

/// Publishes the default template if the vault has no terms yet (a new vault, or one created
/// before terms existed). Runs before the writer thread starts.
pub(crate) fn ensure_published(store: &Store, now: OffsetDateTime) -> Result<(), AppError> {
    if store
        .get(TERMS_CURRENT.tree(), META_TERMS_CURRENT)?
        .is_some()
    {
        return Ok(());
    }
    let template = Template::find(DEFAULT_TEMPLATE)
        .ok_or_else(|| AppError::broken("the default terms template is missing"))?;
    let document = template
        .document()
        .map_err(|e| AppError::internal("the default template is not JSON", e))?;
    let terms = Terms::parse(&document)
        .map_err(|e| AppError::internal("the default template does not validate", e))?;
    let hash = canonical_hash(terms.document())?;
    let result = store.transact_offline(|tx| {
        let (version, _) = publish_in(tx, &terms, hash, now)?;
        super::audit::append_in(
            tx,
            published_event(&version, Event::system("terms.published")),
            now,
        )?;
        Ok::<_, AppError>(())
    });
    Ok(result?)
}

/// Loads the version in force.
pub(crate) fn load_current(store: &Store) -> Result<Option<CurrentTerms>, AppError> {
    let Some(number) = store.read(&TERMS_CURRENT, META_TERMS_CURRENT)? else {
        return Ok(None);
    };
    let version = store
        .read(&TERMS, &number.to_be_bytes())?
        .ok_or_else(|| AppError::broken("the terms version in force is missing"))?;
    let terms = parse(&version)?;
    Ok(Some(CurrentTerms { version, terms }))
}

impl OpenVault {
    /// The terms in force.
    pub fn current_terms(&self) -> Result<Arc<CurrentTerms>, AppError> {
        self.terms
            .load_full()
            .ok_or_else(|| AppError::broken("no terms are published"))
    }

    /// One published version.
    pub fn terms_version(&self, version: u64) -> Result<TermsVersion, AppError> {
        self.store()
            .read(&TERMS, &version.to_be_bytes())?
            .ok_or(AppError::NotFound("terms version"))
    }

    /// Every published version, newest first.
    pub fn terms_versions(&self) -> Result<Vec<TermsVersion>, AppError> {
        self.store()
            .read_rev_before(&TERMS, None)
            .map(|item| Ok(item?.1))
            .collect()
    }

    /// Validates a document and computes its hash, publishing nothing.
    pub fn preview_terms(&self, document: &Value) -> Result<Preview, AppError> {
        let terms = Terms::parse(document)?;
        let hash = canonical_hash(terms.document())?;
        Ok(Preview { hash, terms })
    }

    /// Publishes a new version unless `document` is the one in force; returns the version in
    /// force and whether it is new. Agreements on older versions stop covering new deliveries.
    pub async fn publish_terms(&self, document: &Value) -> Result<(TermsVersion, bool), AppError> {
        let Preview { hash, terms } = self.preview_terms(document)?;
        let now = self.now();
        // Brands with an agreement are told in the same write (`service::terms_change`); their
        // notices name the version this will be, so they are prepared for it.
        let in_force = self.current_terms()?;
        let notices = if in_force.version.hash == hash {
            None
        } else {
            let next = TermsVersion {
                version: in_force.version.version + 1,
                hash: hash.clone(),
                basis: terms.basis().as_str().to_owned(),
                published_at: now,
                document: terms.document().clone(),
            };
            Some((next.version, self.terms_notices_for(&next, &terms, now)?))
        };
        let (version, created) = self
            .change(move |tx| {
                let (version, created) = publish_in(tx, &terms, hash, now)?;
                let mut told = 0;
                if created {
                    match &notices {
                        Some((expected, notices)) if *expected == version.version => {
                            told = notices.append_in(tx, now)?;
                        }
                        _ => {
                            return Err(AppError::Conflict(
                                "other terms were published meanwhile; publish again",
                            ));
                        }
                    }
                }
                let event = if created {
                    let mut event =
                        published_event(&version, Event::owner("terms.published", None));
                    if let Some(detail) = event.detail.as_mut().and_then(|d| d.as_object_mut()) {
                        detail.insert("brands_told".into(), told.into());
                    }
                    event
                } else {
                    Event::owner("terms.republished_unchanged", None)
                        .with_detail(serde_json::json!({ "version": version.version }))
                };
                Ok(((version, created), event))
            })
            .await?;
        self.reload_terms()?;
        if created {
            self.announce_events();
        }
        Ok((version, created))
    }

    /// Refreshes the cached terms from the store, never replacing a newer version by an older one
    /// when two publications race.
    pub(crate) fn reload_terms(&self) -> Result<(), AppError> {
        if let Some(loaded) = load_current(self.store())? {
            let loaded = Arc::new(loaded);
            self.terms.rcu(|cached| match cached {
                Some(c) if c.version.version >= loaded.version.version => Some(c.clone()),
                _ => Some(loaded.clone()),
            });
        }
        Ok(())
    }
}
