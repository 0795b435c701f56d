//! The open vault's core: the store and its writer, the clock, the keys in memory and the caches,
//! and the one way a running vault writes ([`OpenVault::change`], [`OpenVault::write`]).
//!
//! The use cases live in the feature modules beside this one, each an `impl OpenVault` block.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use time::{Duration, OffsetDateTime};

use super::agents;
use super::{
    BRANDS_CACHE_BYTES, META_CLOCK_FLOOR, RECORDS_CACHE_BYTES, Settings, agreements, audit,
    authorize, cache, deadlines, delivery, dpop, events, index_key, intents, jti_expiry, keys, par,
    records, retention, shred, subscriptions, terms, token_budget, tokens,
};
use crate::clock::Clock;
use crate::crypto::keyfile::{KeyFile, UnlockKey};
use crate::crypto::{KeyedHash, MasterKey, VaultKeys};
use crate::domain::audit::Event;
use crate::error::AppError;
use crate::store::{Store, Writer};

/// An unsealed vault: keys in memory, store open.
pub struct OpenVault {
    pub(super) keyfile: Mutex<KeyFile>,
    pub(super) key_file_path: PathBuf,
    /// The store's bucket keys; locked for the length of a rotation.
    pub(super) bucket_keys: tokio::sync::Mutex<crate::crypto::buckets::BucketKeys>,
    pub(super) bucket_file: shred::BucketFile,
    pub(super) master: MasterKey,
    pub(super) index: Arc<KeyedHash>,
    pub(super) pseudonyms: KeyedHash,
    pub(super) store: Store,
    pub(super) writer: Writer,
    pub(super) clock: Arc<dyn Clock>,
    /// The clock floor last queued to the store (Unix seconds).
    pub(super) clock_floor_saved: std::sync::atomic::AtomicI64,
    /// The terms in force, parsed (reloaded after each publication).
    pub(super) terms: ArcSwapOption<terms::CurrentTerms>,
    /// The token-signing keys and their rotation.
    pub(super) keys: keys::KeyState,
    pub(super) issuer: Arc<str>,
    pub(super) token_lifetime: Duration,
    /// Where webhooks may go (the loopback exception and the configured proxy).
    pub(super) egress: crate::webhooks::Egress,
    /// Access tokens whose signature and claims were verified.
    pub(super) tokens: tokens::TokenState,
    /// The audit log's retention: the checkpoint key and what a write compares.
    pub(super) retention: retention::RetentionState,
    /// When each remembered `jti` expires.
    pub(super) jti_expiries: jti_expiry::JtiExpiries,
    /// Each brand's budget at the token endpoint.
    pub(super) token_budgets: token_budget::TokenBudgets,
    /// Pending consents and issued authorization codes (in memory: both live minutes).
    pub(super) authorizations: Mutex<authorize::Pending>,
    /// Brands' refused data requests, counted per grant for the audit log's summaries.
    pub(super) refusals: Mutex<crate::domain::refusals::RefusalTally>,
    /// Pushed authorization requests not yet used (RFC 9126; in memory, they live 90 s).
    pub(super) pushed_requests: Mutex<par::PushedRequests>,
    /// DPoP proof ids seen recently (RFC 9449 replay detection; in memory).
    pub(super) dpop: dpop::DpopState,
    /// What wakes the readers of brands' event streams.
    pub(super) events: events::EventState,
    /// The subscription index, offer rates and the owner's live offers.
    pub(super) intents: intents::IntentState,
    /// The intent relays: their client, the outbox's deadlines, the offer readers.
    pub(super) relayed: super::relayed::RelayState,
    /// The epochs that keep the caches below coherent with the store (see [`cache`]).
    pub(super) epochs: Arc<cache::Epochs>,
    /// Opened records, brands and agreement heads.
    pub(super) records_cache: cache::Opened<crate::domain::records::Record>,
    pub(super) brands_cache: cache::Opened<crate::domain::brands::Brand>,
    pub(super) agreements_cache: cache::Opened<agreements::AgreementHead>,
    /// Rings the background task for deadlines; stops it when the vault goes away.
    pub(super) alarm: deadlines::StopOnDrop,
    /// When each webhook delivery is next due.
    pub(super) deliveries: delivery::DeliveryState,
    /// The person's assistants: pending consents, registration budgets, last uses, expiries.
    pub(super) agents: agents::AgentState,
    /// Brands and agreement heads as the writer's checks see them.
    pub(super) in_writer: Arc<InWriterCaches>,
}

/// The caches only the writer thread uses (see [`cache::InWriter`]).
#[derive(Debug)]
pub(super) struct InWriterCaches {
    pub(super) brands: cache::InWriter<crate::domain::brands::Brand>,
    pub(super) agreements: cache::InWriter<agreements::AgreementHead>,
}

impl InWriterCaches {
    pub(super) fn forget_written(&self, tx: &crate::store::Tx<'_>) -> Result<(), AppError> {
        self.brands.forget_written(tx)?;
        self.agreements.forget_written(tx)
    }
}

impl std::fmt::Debug for OpenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVault").finish_non_exhaustive()
    }
}

impl OpenVault {
    /// [`OpenVault::open`], with a panic inside it turned into [`AppError::StoreDamaged`]: sled
    /// 0.34 panics on some kinds of damage to its files instead of returning an error, and the
    /// owner should learn that the store is damaged, not see an internal error.
    pub(super) fn open_guarded(
        settings: &Settings,
        keyfile: KeyFile,
        master: MasterKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<OpenVault>, AppError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            OpenVault::open(settings, keyfile, master, clock)
        }))
        .unwrap_or_else(|_| {
            Err(AppError::StoreDamaged(
                "sled panicked while opening the store".into(),
            ))
        })
    }

    /// Opens the store with keys derived from `master`.
    fn open(
        settings: &Settings,
        keyfile: KeyFile,
        master: MasterKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<OpenVault>, AppError> {
        let VaultKeys {
            index, pseudonym, ..
        } = VaultKeys::derive(&master);
        let (store, buckets, bucket_file) = shred::open_store(settings, &keyfile, &master)?;
        audit::check_head_marker(&settings.data_dir, keyfile.vault_id(), &store)?;
        if let Some(latest) = audit::latest_time(&store)? {
            clock.not_before(latest);
        }
        let saved_floor = store
            .get(crate::store::Tree::Meta, META_CLOCK_FLOOR)?
            .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse::<i64>().ok())
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok());
        if let Some(floor) = saved_floor {
            clock.not_before(floor);
        }
        // What every open vault has, created here for a new vault or one made by an older version.
        let now = clock.now();
        terms::ensure_published(&store, now)?;
        let key_ring = keys::load_or_create(&store, now)?;
        tokens::prune_jtis(&store, now.unix_timestamp())?;
        let current_terms = terms::load_current(&store)?.map(Arc::new);
        let subscription_index = subscriptions::load_index(&store)?;
        records::ensure_record_count(&store)?;
        let writer = Writer::spawn(store.clone())?;
        let epochs = Arc::new(cache::Epochs::default());
        let alarm = deadlines::Alarm::new();
        let deliveries = delivery::DeliveryState::load(&store, &alarm);
        let intents = intents::IntentState::load(subscription_index, &store, &alarm);
        let relayed = super::relayed::RelayState::load(&settings.relays, &store);
        let jti_expiries = jti_expiry::JtiExpiries::load(&store, &alarm);
        let agents = agents::AgentState::load(&store, &alarm);
        let retention =
            retention::RetentionState::load(&store, crate::crypto::audit_checkpoint_key(&master))?;
        Ok(Arc::new(OpenVault {
            keyfile: Mutex::new(keyfile),
            key_file_path: settings.key_file(),
            bucket_keys: tokio::sync::Mutex::new(buckets),
            bucket_file,
            master,
            index: Arc::new(index),
            pseudonyms: pseudonym,
            store,
            writer,
            clock_floor_saved: std::sync::atomic::AtomicI64::new(
                saved_floor.map_or(i64::MIN, OffsetDateTime::unix_timestamp),
            ),
            clock,
            terms: ArcSwapOption::new(current_terms),
            keys: keys::KeyState::new(key_ring),
            issuer: settings.issuer.trim_end_matches('/').into(),
            token_lifetime: settings.token_lifetime,
            egress: crate::webhooks::Egress {
                allow_loopback: settings.allow_loopback_webhooks,
                proxy: settings.webhook_proxy.clone(),
            },
            tokens: tokens::TokenState::new(),
            token_budgets: token_budget::TokenBudgets::default(),
            jti_expiries,
            retention,
            authorizations: Mutex::new(authorize::Pending::default()),
            refusals: Mutex::new(crate::domain::refusals::RefusalTally::default()),
            pushed_requests: Mutex::new(par::PushedRequests::default()),
            dpop: dpop::DpopState::default(),
            events: events::EventState::new(),
            intents,
            relayed,
            deliveries,
            agents,
            alarm: deadlines::StopOnDrop(alarm),
            records_cache: cache::Opened::new(
                cache::Cached::Records,
                epochs.clone(),
                RECORDS_CACHE_BYTES,
            ),
            brands_cache: cache::Opened::new(
                cache::Cached::Brands,
                epochs.clone(),
                BRANDS_CACHE_BYTES,
            ),
            agreements_cache: cache::Opened::new(
                cache::Cached::Agreements,
                epochs.clone(),
                BRANDS_CACHE_BYTES,
            ),
            epochs,
            in_writer: Arc::new(InWriterCaches {
                brands: cache::InWriter::new(&super::tables::BRANDS),
                agreements: cache::InWriter::new(&super::agreements::AGREEMENT_HEADS),
            }),
        }))
    }

    pub(super) fn keyfile(&self) -> Result<KeyFile, AppError> {
        self.keyfile
            .lock()
            .map(|k| k.clone())
            .map_err(|_| AppError::broken("key file lock poisoned"))
    }

    /// Saves a new key file, then records why.
    pub(super) async fn replace_keyfile(
        &self,
        keyfile: KeyFile,
        event: Event,
    ) -> Result<(), AppError> {
        {
            let mut current = self
                .keyfile
                .lock()
                .map_err(|_| AppError::broken("key file lock poisoned"))?;
            keyfile.save(&self.key_file_path)?;
            *current = keyfile;
        }
        self.change(move |_| Ok(((), event))).await
    }

    /// Adds an unlock-key slot to the key file and returns the key to write to its file.
    pub async fn create_unlock_key(&self) -> Result<UnlockKey, AppError> {
        let mut keyfile = self.keyfile()?;
        let key = keyfile.add_unlock_key(&self.master)?;
        self.replace_keyfile(keyfile, Event::owner("unlock_key.created", None))
            .await?;
        Ok(key)
    }

    pub async fn remove_unlock_key(&self) -> Result<(), AppError> {
        let mut keyfile = self.keyfile()?;
        keyfile.remove_unlock_key();
        self.replace_keyfile(keyfile, Event::owner("unlock_key.removed", None))
            .await
    }

    pub fn has_unlock_key(&self) -> bool {
        self.keyfile().map(|k| k.has_unlock_key()).unwrap_or(false)
    }

    /// Commits a change and its audit entry atomically, and returns once both are durable.
    ///
    /// `f` runs in the store's writer thread, after every write queued before it and before every
    /// write queued after it, so read-check-write sequences in it (like `If-Match`) are race-free.
    /// It returns its result with the event to record; if it fails, nothing is written.
    pub async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<(T, Event), AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let now = self.clock.now();
        let (value, withdrawn, seq) = self
            .write(move |tx| {
                let (value, event) = f(tx)?;
                let withdrawn = event.withdraws_access();
                let entry = audit::append_in(tx, event, now)?;
                Ok((value, withdrawn, entry.seq))
            })
            .await?;
        self.audit_appended(seq);
        // Open event streams re-check their token when woken: a revocation ends them now, not
        // at the next event.
        if withdrawn {
            self.announce_events();
        }
        Ok(value)
    }

    /// Runs `f` in the store's writer thread and returns its result once what it wrote is
    /// durable; the one way a running vault writes, so that the caches ([`cache`]) learn of
    /// every write. Writes that the owner would want on the record go through [`Self::change`].
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let epochs = self.epochs.clone();
        let in_writer = self.in_writer.clone();
        let (value, _applied) = self
            .writer
            .write(move |tx| {
                let value = f(tx)?;
                in_writer.forget_written(tx)?;
                Ok::<_, AppError>((value, cache::Applied::of(tx, epochs)))
            })
            .await?;
        Ok(value)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The vault's time, which never goes backwards, and is remembered across restarts: once
    /// it has moved a minute past the last saved floor, the new floor is queued to the store, so
    /// a clock set back before a restart cannot revive what had already expired.
    pub(crate) fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        // A test clock moved past a deadline ends no sleep: the background task learns of it
        // here, the next time anything reads the vault's time.
        self.alarm.0.check(now);
        let seconds = now.unix_timestamp();
        let saved = self
            .clock_floor_saved
            .load(std::sync::atomic::Ordering::Relaxed);
        if seconds >= saved.saturating_add(CLOCK_FLOOR_EVERY_SECONDS)
            && self
                .clock_floor_saved
                .compare_exchange(
                    saved,
                    seconds,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            self.writer.write_detached(move |tx| {
                tx.insert(
                    crate::store::Tree::Meta,
                    META_CLOCK_FLOOR,
                    seconds.to_string().as_bytes(),
                )
            });
        }
        now
    }

    /// How many records the vault holds (0 if the counter cannot be read).
    pub fn record_count(&self) -> u64 {
        records::record_count(&self.store).unwrap_or(0)
    }

    /// The size of the store's files on disk.
    pub fn store_size(&self) -> u64 {
        self.store.size_on_disk()
    }

    /// The vault's clock (for the HTTP layer's views).
    pub fn clock_now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) fn index_key(&self, namespace: &str, name: &str) -> [u8; 32] {
        index_key(&self.index, namespace, name)
    }
}

/// How far the clock moves before the vault saves it as its new floor.
const CLOCK_FLOOR_EVERY_SECONDS: i64 = 60;
