//! Deleting for real (GDPR Art. 17 and 19): one intent, one brand's whole relationship, or
//! everything.
//!
//! Removing an item from sled does not erase it (DESIGN §3), so every deletion here ends by
//! rotating the bucket keys of what it removed (`OpenVault::shred_buckets`): the old copies
//! that stay in sled's files are then ciphertext under keys that no longer exist.
//!
//! Deleting everything goes further and destroys the key file and the bucket-key file (each
//! overwritten, synced, then removed), then the store directory. A marker file written before
//! the first destructive step makes the deletion survive a crash: a start that finds it finishes
//! the deletion before anything else, and never brings the data back.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{
    OpenVault, Phase, Vault, file_error, index_key, io_error, remove_dir_if_present, sync_dir,
};
use crate::domain::audit::Event;
use crate::domain::brands::{Brand, BrandStatus};
use crate::error::AppError;
use crate::secret::Secret;
use crate::store::{Store, Tree, Tx};
use crate::webhooks::{Delivery, Sender};

use super::events::OUTBOX;
use super::intents::INTENTS;
use super::subscriptions::SUBSCRIPTIONS;
use super::tables::{BRANDS, EVENTS, GRANTS, json_view};

/// The phrase the owner types to confirm deleting everything.
pub const CONFIRM_PHRASE: &str = "delete everything";
/// The CloudEvents type brands receive when the person deletes everything.
pub const ERASURE_EVENT_TYPE: &str = "vrm.erasure.requested.v1";
/// How long the brands are given, all together, to take the erasure request.
pub const NOTIFY_DEADLINE: Duration = Duration::from_secs(5);
/// The file whose presence means a deletion of everything has begun.
pub(crate) const ERASE_MARKER: &str = "ERASING";
const RECEIPT_TYP: &str = "vrm-erasure-receipt+jws";

/// Stops the process at a named point when `VRM_FAILPOINT` names it: how the crash tests kill
/// the server at an exact step of the deletion. Only in builds with the `failpoints` feature
/// (the tests' builds), so no environment variable can abort a release build.
#[cfg(feature = "failpoints")]
fn failpoint(name: &str) {
    if std::env::var("VRM_FAILPOINT").is_ok_and(|v| v == name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting the process");
        std::process::abort();
    }
}

/// Without the `failpoints` feature a failpoint is nothing at all.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn failpoint(_name: &str) {}

fn places_to_buckets(places: &[(Tree, Vec<u8>)]) -> BTreeSet<u8> {
    places
        .iter()
        .map(|(tree, key)| Store::bucket(*tree, key))
        .collect()
}

/// Removes a value and remembers its place for the key rotation.
fn remove(
    tx: &mut Tx<'_>,
    places: &mut Vec<(Tree, Vec<u8>)>,
    tree: Tree,
    key: &[u8],
) -> Result<(), AppError> {
    tx.remove(tree, key)?;
    places.push((tree, key.to_vec()));
    Ok(())
}

/// Removes a brand's event stream and the webhooks still queued for it.
fn remove_events(
    tx: &mut Tx<'_>,
    places: &mut Vec<(Tree, Vec<u8>)>,
    prefix: &[u8; 16],
    only_subjects: Option<&[&str]>,
) -> Result<(), AppError> {
    let mut doomed = Vec::new();
    for item in tx.store().iter_after(EVENTS.tree(), Some(prefix)) {
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        // Only the events of one subject need decoding; a whole stream goes undecoded.
        if let Some(subjects) = only_subjects {
            let event = EVENTS.decode(&value)?;
            let subject = event.get("subject").and_then(Value::as_str);
            if !subject.is_some_and(|s| subjects.contains(&s)) {
                continue;
            }
        }
        doomed.push(key);
    }
    for key in doomed {
        remove(tx, places, EVENTS.tree(), &key)?;
        if let Some(seq) = key.get(16..24) {
            remove(tx, places, OUTBOX.tree(), seq)?;
        }
    }
    Ok(())
}

impl OpenVault {
    /// Deletes one intent for real: the intent, the offers made to it, and its events in the
    /// streams of the brands it went to (with their queued webhooks).
    pub async fn erase_intent(&self, id: &str) -> Result<(), AppError> {
        let key = self.index_key("intent", id);
        let index = self.index.clone();
        let id = id.to_owned();
        let places = self
            .change(move |tx| {
                let Some(record) = tx.read(&INTENTS, &key)? else {
                    return Err(AppError::NotFound("intent"));
                };
                let mut places = Vec::new();
                for offer in &record.offers {
                    remove(
                        tx,
                        &mut places,
                        Tree::Offers,
                        &index_key(&index, "offer", offer),
                    )?;
                }
                for client_id in &record.recipients {
                    let prefix = super::events::stream_prefix(&index, client_id);
                    // The brand's events name the intent by its alias of it (events written
                    // before aliases existed, by the vault's own id).
                    let alias = super::aliases::intent_for_brand(&index, client_id, &id);
                    remove_events(tx, &mut places, &prefix, Some(&[&id, &alias]))?;
                }
                // The assistants' proposals about its offers go with them.
                let proposals: Vec<_> = tx
                    .store()
                    .read_all(&super::proposals::PROPOSALS)
                    .collect::<Result<_, _>>()?;
                for (proposal_key, proposal) in proposals {
                    if proposal.intent_id == id {
                        remove(tx, &mut places, Tree::Proposals, &proposal_key)?;
                    }
                }
                remove(tx, &mut places, INTENTS.tree(), &key)?;
                let event = Event::owner("intent.erased", Some(id))
                    .with_detail(serde_json::json!({ "offers": record.offers.len() }));
                Ok((places, event))
            })
            .await?;
        self.shred_buckets(places_to_buckets(&places)).await
    }

    /// Ends a brand's whole relationship for real: the brand, its agreements and their receipts,
    /// its grants and refresh tokens, its subscription, its offers and its event stream. Its
    /// access tokens die with it (every token check needs the brand).
    pub async fn erase_brand(&self, client_id: &str) -> Result<(), AppError> {
        let brand_key = self.index_key("brand", client_id);
        let subscription_key = self.subscription_key(client_id);
        let index = self.index.clone();
        let client = client_id.to_owned();
        let places = self
            .change(move |tx| {
                let brand = tx
                    .read(&BRANDS, &brand_key)?
                    .ok_or(AppError::NotFound("brand"))?;
                let mut places = Vec::new();
                remove(tx, &mut places, BRANDS.tree(), &brand_key)?;
                if tx.get(SUBSCRIPTIONS.tree(), &subscription_key)?.is_some() {
                    remove(tx, &mut places, SUBSCRIPTIONS.tree(), &subscription_key)?;
                }
                let belongs = |value: &Value| {
                    value.get("client_id").and_then(Value::as_str) == Some(client.as_str())
                };
                let mut removed_offers = BTreeSet::new();
                for tree in [
                    Tree::Agreements,
                    Tree::Grants,
                    Tree::RefreshTokens,
                    Tree::Offers,
                ] {
                    let mut doomed = Vec::new();
                    for item in tx.store().read_all(&json_view(tree)) {
                        let (key, value) = item?;
                        if belongs(&value) {
                            if tree == Tree::Offers
                                && let Some(id) = value.get("id").and_then(Value::as_str)
                            {
                                removed_offers.insert(id.to_owned());
                            }
                            doomed.push(key);
                        }
                    }
                    for key in doomed {
                        remove(tx, &mut places, tree, &key)?;
                    }
                }
                // Intents keep no trace of the brand: not as a recipient, not by its offers.
                {
                    let mut changed = Vec::new();
                    for item in tx.store().read_all(&INTENTS) {
                        let (key, mut record) = item?;
                        let before = (record.offers.len(), record.recipients.len());
                        record.offers.retain(|o| !removed_offers.contains(o));
                        record.recipients.retain(|r| *r != client);
                        if (record.offers.len(), record.recipients.len()) != before {
                            changed.push((key, record));
                        }
                    }
                    for (key, record) in changed {
                        tx.write(&INTENTS, &key, &record)?;
                        places.push((INTENTS.tree(), key));
                    }
                }
                let prefix = super::events::stream_prefix(&index, &client);
                remove_events(tx, &mut places, &prefix, None)?;
                let event = Event::owner("brand.erased", Some(brand.client_id.clone()))
                    .with_detail(serde_json::json!({ "client_name": brand.client_name }));
                Ok((places, event))
            })
            .await?;
        self.forget_subscription(client_id);
        self.announce_events();
        self.shred_buckets(places_to_buckets(&places)).await
    }

    /// The first steps of deleting everything, while the keys are still here: revoke every grant,
    /// refresh token and access token, suspend every brand, tell the brands, and sign the final
    /// receipt. A failure of one step is written into the receipt; deletion goes on regardless.
    async fn wind_down(&self, requested_at: time::OffsetDateTime) -> ErasureReceipt {
        let counts = self.object_counts();
        let mut problems = Vec::new();
        let brands = match self.revoke_everything().await {
            Ok(brands) => brands,
            Err(e) => {
                tracing::error!(error = %e, "revoking before deleting everything");
                problems.push(format!("revoking access failed: {e}"));
                self.list_brands().unwrap_or_default()
            }
        };
        failpoint("erase:revoked");
        // Relayed intents' brands are told through their relays, at the same time.
        let (told, (_, relays_missed)) = tokio::join!(
            self.tell_brands(&brands, requested_at),
            self.tell_relays_erasure(NOTIFY_DEADLINE)
        );
        if relays_missed > 0 {
            problems.push(format!(
                "{relays_missed} intent relay(s) could not be told to pass on the erasure request"
            ));
        }
        failpoint("erase:notified");
        let receipt = self.sign_erasure_receipt(requested_at, counts, told, problems);
        failpoint("erase:receipt");
        receipt
    }

    /// What the receipt says was deleted. Records and audit entries are counted by counters the
    /// vault keeps (their number is unbounded); the rest are person-sized and counted directly.
    fn object_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts: BTreeMap<&'static str, u64> = [
            ("terms_versions", Tree::Terms),
            ("brands", Tree::Brands),
            ("agreements", Tree::Agreements),
            ("grants", Tree::Grants),
            ("intents", Tree::Intents),
            ("offers", Tree::Offers),
        ]
        .into_iter()
        .map(|(name, tree)| (name, self.store.count(tree).unwrap_or_default()))
        .collect();
        counts.insert(
            "records",
            super::records::record_count(&self.store).unwrap_or_default(),
        );
        counts.insert(
            "audit_entries",
            super::audit::load_head(&self.store).map_or(0, |h| h.seq),
        );
        counts
    }

    /// Revokes every grant, refresh token and access token, suspends every brand, and returns
    /// the brands.
    async fn revoke_everything(&self) -> Result<Vec<Brand>, AppError> {
        let now = self.now();
        let brands = self
            .change(move |tx| {
                let mut brands = Vec::new();
                for tree in [Tree::RefreshTokens, Tree::Jtis] {
                    for key in tx.store().raw_keys(tree)? {
                        tx.remove(tree, &key)?;
                    }
                }
                let grants: Vec<_> = tx.store().read_all(&GRANTS).collect::<Result<_, _>>()?;
                for (key, mut grant) in grants {
                    if grant.revoked_at.is_none() {
                        grant.revoked_at = Some(now);
                        tx.write(&GRANTS, &key, &grant)?;
                    }
                }
                let all: Vec<_> = tx.store().read_all(&BRANDS).collect::<Result<_, _>>()?;
                for (key, mut brand) in all {
                    brand.status = BrandStatus::Suspended;
                    tx.write(&BRANDS, &key, &brand)?;
                    brands.push(brand);
                }
                Ok((brands, Event::owner("vault.erasing", None)))
            })
            .await?;
        self.tokens.forget_verified();
        // Open event streams re-check their token when woken, and end.
        self.announce_events();
        Ok(brands)
    }

    /// Sends every brand with a webhook a signed erasure request, all at once (each send has
    /// [`NOTIFY_DEADLINE`]); returns who was told and who could not be reached.
    async fn tell_brands(
        &self,
        brands: &[Brand],
        requested_at: time::OffsetDateTime,
    ) -> Vec<BrandTold> {
        let sender = Sender::new(NOTIFY_DEADLINE, &self.egress);
        let sends = brands.iter().map(|brand| {
            let target = self
                .subscription(&brand.client_id)
                .ok()
                .flatten()
                .and_then(|s| Some((s.subscription.webhook_url.clone()?, s.webhook_secret?)));
            let delivery = target.map(|(url, secret)| {
                self.erasure_delivery(brand, url, &secret, requested_at)
                    .map_err(|e| e.to_string())
            });
            let sender = sender.clone();
            async move {
                let outcome = match (delivery, sender) {
                    (None, _) => Err("no webhook to reach it".to_owned()),
                    (Some(Err(e)), _) | (_, Err(e)) => Err(format!("webhook not sent: {e}")),
                    (Some(Ok(delivery)), Ok(sender)) => sender
                        .send(&delivery)
                        .await
                        .map(|status| format!("webhook answered {status}"))
                        .map_err(|e| format!("webhook failed: {e}")),
                };
                BrandTold {
                    client_id: brand.client_id.clone(),
                    client_name: brand.client_name.clone(),
                    pseudonym: brand.pseudonym.clone(),
                    told: outcome.is_ok(),
                    outcome: outcome.unwrap_or_else(|e| e),
                }
            }
        });
        let mut outcomes = futures_util::future::join_all(sends).await;
        outcomes.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        outcomes
    }

    fn erasure_delivery(
        &self,
        brand: &Brand,
        url: String,
        secret: &str,
        requested_at: time::OffsetDateTime,
    ) -> Result<Delivery, AppError> {
        let at = requested_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let data = serde_json::json!({
            "pseudonym": brand.pseudonym,
            "agreement_id": brand.agreement_id,
            "requested_at": at,
            "basis": "GDPR Art. 17 and 19",
            "request": "Erase all personal data you received from this person through this vault, \
                        and tell anyone you passed it to. The vault no longer exists: tokens and \
                        grants are revoked and no answer is expected.",
        });
        let event = self.cloud_event(ERASURE_EVENT_TYPE, &brand.pseudonym, data, self.now())?;
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        let body = serde_json::to_vec(&event)
            .map_err(|e| AppError::internal("encoding a value to store", e))?;
        Delivery::signed(url, secret, id, self.now().unix_timestamp(), body)
            .map_err(|e| AppError::internal("signing a webhook", e))
    }

    fn sign_erasure_receipt(
        &self,
        requested_at: time::OffsetDateTime,
        deleted: BTreeMap<&'static str, u64>,
        brands: Vec<BrandTold>,
        problems: Vec<String>,
    ) -> ErasureReceipt {
        let key = self.key_ring().active.clone();
        let vault_id = self
            .keyfile()
            .map(|k| k.vault_id().to_owned())
            .unwrap_or_default();
        let document = serde_json::json!({
            "type": "vrm-vault/erasure-receipt",
            "issuer": self.issuer(),
            "vault_id": vault_id,
            "requested_at": requested_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "deleted": deleted,
            "brands": brands,
            "problems": problems,
            "method": "Every grant, refresh token and access token revoked and every brand \
                       suspended; brands with a webhook sent a signed CloudEvents erasure request; \
                       then the key file and the bucket-key file overwritten and removed \
                       (crypto-shredding every stored value) and the store directory removed.",
        });
        let signature = super::canonical(&document).ok().and_then(|payload| {
            key.sign_detached(RECEIPT_TYP, &payload)
                .map_err(|e| tracing::error!(error = %e, "signing the erasure receipt"))
                .ok()
        });
        ErasureReceipt {
            receipt: document,
            signature,
            jwk: serde_json::to_value(key.public_jwk()).unwrap_or_default(),
        }
    }
}

/// What one brand was told.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BrandTold {
    pub client_id: String,
    pub client_name: String,
    pub pseudonym: String,
    /// Whether its webhook took the erasure request (a 2xx answer).
    pub told: bool,
    pub outcome: String,
}

/// The owner's final receipt: what was deleted and who was told, signed with the vault's last
/// signing key (a detached JWS over the RFC 8785 form of `receipt`, like agreement receipts),
/// with that key's public JWK, since the vault that could publish it is gone.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasureReceipt {
    #[schema(value_type = Object)]
    pub receipt: Value,
    pub signature: Option<String>,
    #[schema(value_type = Object)]
    pub jwk: Value,
}

impl Vault {
    /// Deletes everything, after the owner typed [`CONFIRM_PHRASE`] and their passphrase, and
    /// returns the final receipt. The vault is back in setup mode afterwards.
    pub async fn delete_everything(
        &self,
        passphrase: Secret,
        confirm: &str,
        from: impl Into<super::AttemptFrom>,
    ) -> Result<ErasureReceipt, AppError> {
        if confirm != CONFIRM_PHRASE {
            return Err(AppError::invalid(
                "confirmation_required",
                format!("type exactly \"{CONFIRM_PHRASE}\" to confirm"),
            ));
        }
        let now = self.now();
        let open = self.open()?;
        self.with_passphrase(passphrase, from, |_, _| Ok(()))
            .await?;
        let _guard = self.inner.lifecycle.lock().await;
        match &**self.inner.phase.load() {
            Phase::Unsealed(current) if Arc::ptr_eq(current, &open) => {}
            _ => {
                return Err(AppError::Conflict(
                    "the vault changed state meanwhile; try again",
                ));
            }
        }
        let data_dir = self.inner.settings.data_dir.clone();
        // The point of no return: from here a crash is finished at the next start.
        write_marker(&data_dir)?;
        self.inner.phase.store(Arc::new(Phase::Erasing));
        self.inner.sessions.clear();
        tracing::warn!("deleting everything, as the owner asked");
        let started = std::time::Instant::now();
        let receipt = open.wind_down(now).await;
        let wound_down = started.elapsed();
        shred_files(&data_dir).map_err(|e| {
            AppError::internal(
                "deleting the files stopped; restarting the server finishes the deletion (the \
                 ERASING marker is in place)",
                e,
            )
        })?;
        // Closing sled (it flushes its caches, now into files that no longer exist) is left to a
        // background thread: nothing waits for it.
        tokio::task::spawn_blocking(move || drop(open));
        self.inner.devices.forget();
        self.inner.phase.store(Arc::new(Phase::Setup));
        tracing::warn!(
            wind_down_us = wound_down.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "everything deleted; back in setup mode"
        );
        Ok(receipt)
    }
}

fn write_marker(data_dir: &Path) -> Result<(), AppError> {
    let path = data_dir.join(ERASE_MARKER);
    let mut file =
        std::fs::File::create(&path).map_err(|e| io_error("writing the deletion marker", e))?;
    file.write_all(b"A deletion of everything began here; the next start finishes it.\n")
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing the deletion marker", e))?;
    sync_dir(data_dir)
}

/// Overwrites a file with random bytes, syncs it, then removes it. On a copy-on-write or
/// journaling file system, or an SSD, the old blocks may survive the overwrite (SECURITY.md).
fn overwrite_and_remove(path: &Path) -> Result<(), AppError> {
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_error("reading", path, e)),
    };
    let mut noise = vec![0u8; usize::try_from(len).unwrap_or(0)];
    for chunk in noise.chunks_mut(32) {
        let random: [u8; 32] = crate::crypto::random_array().unwrap_or([0xA5; 32]);
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    let overwrite = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut file| {
            file.write_all(&noise)?;
            file.sync_all()
        });
    if let Err(e) = overwrite {
        tracing::warn!(error = %e, file = %path.display(), "could not overwrite before removing");
    }
    std::fs::remove_file(path).map_err(|e| file_error("removing", path, e))
}

/// Destroys everything the vault wrote in its data directory: the keys first (after which
/// nothing left can be opened), then the store, then the marker. Safe to run again after a
/// crash at any point.
pub(crate) fn shred_files(data_dir: &Path) -> Result<(), AppError> {
    for name in [
        super::KEY_FILE,
        super::shred::BUCKET_FILE,
        super::DEVICE_KEY_FILE,
    ] {
        overwrite_and_remove(&data_dir.join(name))?;
        // A half-written replacement of either file (a crash mid-save) is key material too.
        overwrite_and_remove(&crate::crypto::keyfile::temporary_path(
            &data_dir.join(name),
        ))?;
    }
    sync_dir(data_dir)?;
    failpoint("erase:keys-shredded");
    remove_dir_if_present(&data_dir.join(super::STORE_DIR))?;
    remove_dir_if_present(&data_dir.join(super::STORE_SETUP_DIR))?;
    remove_dir_if_present(&data_dir.join(super::STORE_OLD_DIR))?;
    super::backup::remove_temporary_backups(data_dir);
    super::audit::remove_head_marker(data_dir)?;
    sync_dir(data_dir)?;
    failpoint("erase:store-removed");
    let marker = data_dir.join(ERASE_MARKER);
    std::fs::remove_file(&marker).map_err(|e| io_error("removing the deletion marker", e))?;
    sync_dir(data_dir)
}

/// Finishes a deletion a crash interrupted, if the marker says one began.
pub(crate) fn finish_interrupted(data_dir: &Path) -> Result<bool, AppError> {
    if !data_dir.join(ERASE_MARKER).exists() {
        return Ok(false);
    }
    tracing::warn!("finishing a deletion of everything that a stop interrupted");
    shred_files(data_dir)?;
    Ok(true)
}
