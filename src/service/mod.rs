//! The use cases of the vault: setup, unlock, sessions, records and the audit log.
//!
//! Handlers only translate HTTP; everything that changes state happens here. The vault moves through
//! four phases — [`Phase::Setup`] (no vault yet), [`Phase::Sealed`] (a key file exists, the master
//! key is not in memory), [`Phase::Unsealed`] (an [`OpenVault`] holds the keys and the store) and
//! [`Phase::Erasing`] (everything is being deleted; setup follows).
//! Every state change of an open vault goes through [`OpenVault::change`], which commits the change
//! and its audit entry in one transaction and returns only once both are durable.

pub mod agreements;
pub mod audit;
pub mod authorize;
pub mod backup;
pub mod brands;
mod cache;
pub mod delivery;
pub mod erase;
pub mod events;
pub mod export;
pub mod grants;
pub mod intents;
pub mod keys;
pub mod records;
pub mod session;
pub mod shred;
mod tables;
pub mod terms;
pub mod tokens;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use time::{Duration, OffsetDateTime};
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::crypto::keyfile::{KdfParams, KeyFile, KeyFileError, RecoveryKey, UnlockKey};
use crate::crypto::{KeyedHash, MasterKey, VaultKeys};
use crate::domain::audit::Event;
use crate::domain::login::LoginThrottle;
use crate::error::AppError;
use crate::secret::Secret;
use crate::store::{Store, Writer};

pub use session::{NewSession, SessionInfo};

/// Shortest passphrase accepted at setup or change.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Longest passphrase accepted (Argon2id input is unbounded; requests are not).
pub const MAX_PASSPHRASE_CHARS: usize = 1024;
/// Bytes of opened records kept in memory at most (the hot part of a vault is small).
const RECORDS_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes of opened brands and of opened agreements kept in memory at most, each.
const BRANDS_CACHE_BYTES: u64 = 1024 * 1024;
/// Key derivations (64 MiB each) allowed at once, so a flood of logins cannot exhaust memory.
const CONCURRENT_KDF: usize = 2;

pub(crate) const KEY_FILE: &str = "keys.json";
pub(crate) const STORE_DIR: &str = "store";
pub(crate) const STORE_SETUP_DIR: &str = "store.setup";
/// Where a migration sets the previous store aside until the new one is in place.
pub(crate) const STORE_OLD_DIR: &str = "store.old";

/// Runtime settings of the service, derived from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub cache_bytes: u64,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub kdf: KdfParams,
    /// The URL the vault is reached at: the `iss` of its tokens and the base of its metadata.
    pub issuer: String,
    /// How long brand access tokens live (at most [`tokens::MAX_TOKEN_LIFETIME`]).
    pub token_lifetime: Duration,
    /// Whether webhooks may target loopback addresses (local testing only).
    pub allow_loopback_webhooks: bool,
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            issuer: "http://127.0.0.1:8080".into(),
            token_lifetime: tokens::MAX_TOKEN_LIFETIME,
            allow_loopback_webhooks: false,
            data_dir,
            cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            session_idle: Duration::minutes(30),
            session_max: Duration::hours(12),
            kdf: KdfParams::default(),
        }
    }

    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join(KEY_FILE)
    }

    fn store_dir(&self) -> PathBuf {
        self.data_dir.join(STORE_DIR)
    }
}

/// Where the vault is in its life.
#[derive(Debug)]
pub enum Phase {
    Setup,
    Sealed(KeyFile),
    Unsealed(Arc<OpenVault>),
    /// Everything is being deleted (see [`erase`]); setup follows.
    Erasing,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Sealed(_) => "sealed",
            Phase::Unsealed(_) => "unsealed",
            Phase::Erasing => "erasing",
        }
    }
}

/// How the owner proves who they are.
#[derive(Debug)]
pub enum Credential {
    Passphrase(Secret),
    /// The recovery key, which also sets a new passphrase (the old one is presumed forgotten).
    RecoveryKey {
        recovery_key: Secret,
        new_passphrase: Secret,
    },
}

/// The service: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

/// Failed brand client authentications allowed per address before back-off: more than for the
/// owner's passphrase, since a brand's server retrying with a stale secret is common and a
/// 256-bit secret is not guessable anyway; the back-off bounds the work a flood of bad
/// assertions costs.
pub const CLIENT_AUTH_FREE_FAILURES: u32 = 10;

#[derive(Debug)]
struct Inner {
    settings: Settings,
    clock: Arc<dyn Clock>,
    phase: ArcSwap<Phase>,
    /// Serialises phase changes (setup, unseal).
    lifecycle: tokio::sync::Mutex<()>,
    throttle: Mutex<LoginThrottle>,
    kdf_permits: Semaphore,
    sessions: session::Sessions,
    /// Back-off for registration attempts with a wrong initial access token, per address.
    registration_throttle: Mutex<LoginThrottle>,
    /// Back-off for failed brand client authentication, per address only.
    client_auth_throttle: Mutex<LoginThrottle>,
}

/// An unsealed vault: keys in memory, store open.
pub struct OpenVault {
    keyfile: Mutex<KeyFile>,
    key_file_path: PathBuf,
    /// The store's bucket keys; locked for the length of a rotation.
    bucket_keys: tokio::sync::Mutex<crate::crypto::buckets::BucketKeys>,
    bucket_file: shred::BucketFile,
    master: MasterKey,
    index: Arc<KeyedHash>,
    pseudonyms: KeyedHash,
    store: Store,
    writer: Writer,
    clock: Arc<dyn Clock>,
    /// The clock floor last queued to the store (Unix seconds).
    clock_floor_saved: std::sync::atomic::AtomicI64,
    /// The terms in force, parsed (reloaded after each publication).
    terms: ArcSwapOption<terms::CurrentTerms>,
    /// The token-signing keys.
    keys: ArcSwap<keys::KeyRing>,
    /// Serialises signing-key rotations.
    rotation: tokio::sync::Mutex<()>,
    issuer: Arc<str>,
    token_lifetime: Duration,
    allow_loopback_webhooks: bool,
    /// Access tokens whose signature and claims were verified, until they expire (bounded).
    token_cache: quick_cache::sync::Cache<String, Arc<tokens::AccessClaims>>,
    /// Pending consents and issued authorization codes (in memory: both live minutes).
    authorizations: Mutex<authorize::Pending>,
    /// Moves on whenever events were written to brands' streams.
    event_signal: tokio::sync::watch::Sender<u64>,
    /// Brands' subscriptions, indexed for matching intents.
    subscriptions: std::sync::RwLock<crate::domain::intents::SubscriptionIndex>,
    /// Offers per brand in the current minute.
    offer_rates: Mutex<std::collections::HashMap<String, (OffsetDateTime, u32)>>,
    /// New offers, for the owner's live view.
    offer_signal: tokio::sync::broadcast::Sender<crate::domain::offers::Offer>,
    /// The epochs that keep the caches below coherent with the store (see [`cache`]).
    epochs: Arc<cache::Epochs>,
    /// Opened records, brands and agreement heads.
    records_cache: cache::Opened<crate::domain::records::Record>,
    brands_cache: cache::Opened<crate::domain::brands::Brand>,
    agreements_cache: cache::Opened<agreements::AgreementHead>,
    /// Brands and agreement heads as the writer's checks see them.
    in_writer: Arc<InWriterCaches>,
}

/// The caches only the writer thread uses (see [`cache::InWriter`]).
#[derive(Debug)]
struct InWriterCaches {
    brands: cache::InWriter<crate::domain::brands::Brand>,
    agreements: cache::InWriter<agreements::AgreementHead>,
}

impl InWriterCaches {
    fn forget_written(&self, tx: &crate::store::Tx<'_>) -> Result<(), AppError> {
        self.brands.forget_written(tx)?;
        self.agreements.forget_written(tx)
    }
}

impl std::fmt::Debug for OpenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVault").finish_non_exhaustive()
    }
}

fn blocking_error(e: tokio::task::JoinError) -> AppError {
    AppError::Internal(format!("background task failed: {e}"))
}

pub(crate) fn io_error(what: &str, e: std::io::Error) -> AppError {
    AppError::Internal(format!("{what}: {e}"))
}

/// Checks a passphrase chosen by the owner.
pub fn validate_new_passphrase(passphrase: &Secret) -> Result<(), AppError> {
    let chars = passphrase.expose().chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Err(AppError::invalid(
            "weak_passphrase",
            format!(
                "choose a passphrase of at least {MIN_PASSPHRASE_CHARS} characters; a few unrelated words work well"
            ),
        ));
    }
    if chars > MAX_PASSPHRASE_CHARS {
        return Err(AppError::invalid(
            "weak_passphrase",
            format!("a passphrase may have at most {MAX_PASSPHRASE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// What start-up found in the data directory.
pub(crate) fn initial_phase(settings: &Settings) -> Result<Phase, AppError> {
    if erase::finish_interrupted(&settings.data_dir)? {
        return Ok(Phase::Setup);
    }
    let key_file = settings.key_file();
    let store = settings.store_dir();
    let setup_store = settings.data_dir.join(STORE_SETUP_DIR);
    if key_file.exists() {
        let keyfile = KeyFile::load(&key_file)
            .map_err(|e| AppError::Internal(format!("cannot read {}: {e}", key_file.display())))?;
        if !store.exists() {
            if setup_store.exists() {
                // Setup, a restore or a migration made the new store complete and stopped
                // before moving it into place.
                std::fs::rename(&setup_store, &store)
                    .map_err(|e| io_error("finishing setup", e))?;
            } else {
                return Err(AppError::Internal(format!(
                    "{} exists but the store {} is missing: restore it from a backup",
                    key_file.display(),
                    store.display()
                )));
            }
        }
        // A migration stopped after the new store was in place: the old one can go.
        remove_dir_if_present(&settings.data_dir.join(STORE_OLD_DIR))?;
        return Ok(Phase::Sealed(keyfile));
    }
    if store.exists() {
        return Err(AppError::Internal(format!(
            "{} holds a store but no key file ({KEY_FILE}); without it the store cannot be read. \
             Restore the key file from a backup, or remove {} to start a new vault",
            settings.data_dir.display(),
            store.display()
        )));
    }
    Ok(Phase::Setup)
}

impl Vault {
    /// Opens the service on a data directory: setup mode if it holds no vault, sealed otherwise.
    pub fn start(settings: Settings, clock: Arc<dyn Clock>) -> Result<Vault, AppError> {
        let phase = initial_phase(&settings)?;
        backup::remove_temporary_backups(&settings.data_dir);
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::NeverBackwards::new(clock));
        let sessions = session::Sessions::new(settings.session_idle, settings.session_max);
        Ok(Vault {
            inner: Arc::new(Inner {
                settings,
                clock,
                phase: ArcSwap::from_pointee(phase),
                lifecycle: tokio::sync::Mutex::new(()),
                throttle: Mutex::new(LoginThrottle::default()),
                kdf_permits: Semaphore::new(CONCURRENT_KDF),
                sessions,
                registration_throttle: Mutex::new(LoginThrottle::default()),
                client_auth_throttle: Mutex::new(LoginThrottle::per_address(
                    CLIENT_AUTH_FREE_FAILURES,
                )),
            }),
        })
    }

    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The current phase's name: `setup`, `sealed` or `unsealed`.
    pub fn phase_name(&self) -> &'static str {
        self.inner.phase.load().name()
    }

    /// The open vault, or the error that explains why there is none.
    pub fn open(&self) -> Result<Arc<OpenVault>, AppError> {
        match &**self.inner.phase.load() {
            Phase::Unsealed(open) => Ok(open.clone()),
            Phase::Sealed(_) => Err(AppError::Sealed),
            Phase::Setup => Err(AppError::SetupRequired),
            Phase::Erasing => Err(AppError::Erasing),
        }
    }

    /// Runs an Argon2id-heavy closure off the async runtime, at most [`CONCURRENT_KDF`] at once.
    async fn with_kdf<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let _permit = self
            .inner
            .kdf_permits
            .acquire()
            .await
            .map_err(|_| AppError::Internal("key derivation closed".into()))?;
        tokio::task::spawn_blocking(f).await.map_err(blocking_error)
    }

    /// Creates the vault (setup mode only) and logs the owner in.
    pub async fn setup(&self, passphrase: Secret) -> Result<(Secret, NewSession), AppError> {
        validate_new_passphrase(&passphrase)?;
        let _guard = self.inner.lifecycle.lock().await;
        if !matches!(**self.inner.phase.load(), Phase::Setup) {
            return Err(AppError::Conflict("the vault is already set up"));
        }
        let settings = self.inner.settings.clone();
        let now = self.now();
        let (keyfile, master, recovery) = self
            .with_kdf(move || create_vault(&settings, &passphrase, now))
            .await??;
        let session = self.install(keyfile, master, now)?;
        tracing::info!("vault created");
        Ok((Secret::new(recovery.display().as_str()), session))
    }

    /// Opens a vault just created or restored, makes it the one served, and logs the owner in.
    fn install(
        &self,
        keyfile: KeyFile,
        master: MasterKey,
        now: OffsetDateTime,
    ) -> Result<NewSession, AppError> {
        let open = OpenVault::open_guarded(
            &self.inner.settings,
            keyfile,
            master,
            self.inner.clock.clone(),
        )?;
        open.start_delivery()?;
        self.inner.phase.store(Arc::new(Phase::Unsealed(open)));
        self.inner.sessions.create(now)
    }

    /// Restores a backup (setup mode only), unseals the restored vault and logs the owner in.
    pub async fn restore(
        &self,
        backup: PathBuf,
        credential: backup::RestoreCredential,
    ) -> Result<(backup::BackupSummary, NewSession), AppError> {
        let _guard = self.inner.lifecycle.lock().await;
        if !matches!(**self.inner.phase.load(), Phase::Setup) {
            return Err(AppError::Conflict("the vault is already set up"));
        }
        let settings = self.inner.settings.clone();
        let now = self.now();
        let (keyfile, master, summary) = self
            .with_kdf(move || backup::restore(&settings, &backup, credential, now))
            .await??;
        let session = self.install(keyfile, master, now)?;
        tracing::info!(entries = summary.entries, "vault restored from a backup");
        Ok((summary, session))
    }

    /// Checks the owner's credential, unseals the vault if needed, and opens a session.
    pub async fn login(
        &self,
        credential: Credential,
        from: IpAddr,
    ) -> Result<NewSession, AppError> {
        let now = self.now();
        self.check_throttle(from, now)?;
        let keyfile = match &**self.inner.phase.load() {
            Phase::Setup => return Err(AppError::SetupRequired),
            Phase::Erasing => return Err(AppError::Erasing),
            Phase::Sealed(keyfile) => keyfile.clone(),
            Phase::Unsealed(open) => open.keyfile()?,
        };
        let method = match &credential {
            Credential::Passphrase(_) => "passphrase",
            Credential::RecoveryKey { .. } => "recovery_key",
        };
        if let Credential::RecoveryKey { new_passphrase, .. } = &credential {
            validate_new_passphrase(new_passphrase)?;
        }
        let kdf = self.inner.settings.kdf;
        let unlocked = self
            .with_kdf(
                move || -> Result<(MasterKey, Option<KeyFile>), KeyFileError> {
                    match credential {
                        Credential::Passphrase(p) => {
                            Ok((keyfile.unlock_with_passphrase(p.expose())?, None))
                        }
                        Credential::RecoveryKey {
                            recovery_key,
                            new_passphrase,
                        } => {
                            let key = RecoveryKey::parse(recovery_key.expose())?;
                            let master = keyfile.unlock_with_recovery_key(&key)?;
                            let mut updated = keyfile;
                            updated.set_passphrase(&master, new_passphrase.expose(), kdf)?;
                            Ok((master, Some(updated)))
                        }
                    }
                },
            )
            .await?;
        let (master, updated_keyfile) = match unlocked {
            Ok(ok) => ok,
            Err(e) => {
                let error = AppError::from(e);
                if matches!(error, AppError::InvalidCredentials) {
                    self.record_failure(from);
                }
                return Err(error);
            }
        };
        if let Ok(mut throttle) = self.inner.throttle.lock() {
            throttle.record_success(from);
        }
        let open = self.unseal(master).await?;
        if let Some(keyfile) = updated_keyfile {
            open.replace_keyfile(keyfile, Event::owner("passphrase.reset", None))
                .await?;
        }
        open.change(move |_| {
            Ok((
                (),
                Event::owner("session.created", None)
                    .with_detail(serde_json::json!({ "method": method })),
            ))
        })
        .await?;
        self.inner.sessions.create(now)
    }

    fn check_throttle(&self, from: IpAddr, now: OffsetDateTime) -> Result<(), AppError> {
        let wait = self
            .inner
            .throttle
            .lock()
            .map_err(|_| AppError::Internal("throttle poisoned".into()))?
            .wait(from, now);
        match wait {
            Some(wait) => Err(AppError::TooManyRequests {
                retry_after: wait.whole_seconds().max(1) as u64,
            }),
            None => Ok(()),
        }
    }

    /// Records a failed attempt at the time it failed (after the key derivation), so the
    /// back-off runs from the answer the client saw, not from when it asked.
    fn record_failure(&self, from: IpAddr) {
        let now = self.now();
        if let Ok(mut throttle) = self.inner.throttle.lock() {
            throttle.record_failure(from, now);
        }
        tracing::warn!(%from, "failed owner login");
    }

    /// Moves a sealed vault to unsealed with `master`; a vault already unsealed stays as it is.
    async fn unseal(&self, master: MasterKey) -> Result<Arc<OpenVault>, AppError> {
        let _guard = self.inner.lifecycle.lock().await;
        let keyfile = match &**self.inner.phase.load() {
            Phase::Unsealed(open) => return Ok(open.clone()),
            Phase::Setup => return Err(AppError::SetupRequired),
            Phase::Erasing => return Err(AppError::Erasing),
            Phase::Sealed(keyfile) => keyfile.clone(),
        };
        let settings = self.inner.settings.clone();
        let clock = self.inner.clock.clone();
        let open = OpenVault::open_guarded(&settings, keyfile, master, clock)?;
        open.start_delivery()?;
        self.inner
            .phase
            .store(Arc::new(Phase::Unsealed(open.clone())));
        open.change(|_| Ok(((), Event::system("vault.unsealed"))))
            .await?;
        tracing::info!("vault unsealed");
        Ok(open)
    }

    /// Unseals at start-up with an unlock key file.
    pub async fn unseal_with_unlock_key(&self, path: &Path) -> Result<(), AppError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io_error(&format!("reading {}", path.display()), e))?;
        let key = UnlockKey::parse(&text)?;
        let keyfile = match &**self.inner.phase.load() {
            Phase::Sealed(keyfile) => keyfile.clone(),
            Phase::Setup => return Err(AppError::SetupRequired),
            Phase::Erasing => return Err(AppError::Erasing),
            Phase::Unsealed(_) => return Ok(()),
        };
        let master = keyfile.unlock_with_unlock_key(&key).map_err(|e| match e {
            KeyFileError::WrongSecret => AppError::Internal(format!(
                "the unlock key in {} does not open this vault (removed or replaced?)",
                path.display()
            )),
            other => other.into(),
        })?;
        self.unseal(master).await.map(|_| ())
    }

    /// Flushes the store, if open, and remembers the audit chain's length (at shutdown). The
    /// length is read before the flush, so that it never counts an entry the flush did not
    /// cover (writes still queued by a late task); a marker that cannot be written leaves the
    /// previous one, which is still a lower bound, and does not fail the stop.
    pub fn flush(&self) -> Result<(), AppError> {
        if let Phase::Unsealed(open) = &**self.inner.phase.load() {
            let durable = audit::load_head(&open.store)?.seq;
            open.store.flush()?;
            let marked = open.keyfile().and_then(|keyfile| {
                audit::save_head_marker(&self.inner.settings.data_dir, keyfile.vault_id(), durable)
            });
            if let Err(e) = marked {
                tracing::warn!(error = %e, "the audit head marker was not updated");
            }
        }
        Ok(())
    }

    pub fn authenticate(&self, token: &str) -> Result<SessionInfo, AppError> {
        self.inner.sessions.authenticate(token, self.now())
    }

    /// Ends a session, and records that the owner logged out.
    pub async fn logout(&self, token: &str) -> Result<(), AppError> {
        self.inner.sessions.revoke(token);
        if let Ok(open) = self.open() {
            open.change(|_| Ok(((), Event::owner("session.ended", None))))
                .await?;
        }
        Ok(())
    }

    /// Changes the passphrase after checking the current one. Stored data is not re-encrypted:
    /// only the passphrase slot of the key file is rewritten.
    pub async fn change_passphrase(
        &self,
        current: Secret,
        new: Secret,
        from: IpAddr,
    ) -> Result<(), AppError> {
        validate_new_passphrase(&new)?;
        let kdf = self.inner.settings.kdf;
        let updated = self
            .with_passphrase(current, from, move |mut keyfile, master| {
                keyfile.set_passphrase(&master, new.expose(), kdf)?;
                Ok(keyfile)
            })
            .await?;
        self.open()?
            .replace_keyfile(updated, Event::owner("passphrase.changed", None))
            .await
    }

    /// Replaces the recovery key after checking the passphrase; the old key stops working. Stored
    /// data is not re-encrypted: only the key file's recovery slot is rewritten.
    pub async fn regenerate_recovery_key(
        &self,
        passphrase: Secret,
        from: IpAddr,
    ) -> Result<Secret, AppError> {
        let (updated, key) = self
            .with_passphrase(passphrase, from, |mut keyfile, master| {
                let key = keyfile.regenerate_recovery_key(&master)?;
                Ok((keyfile, key))
            })
            .await?;
        self.open()?
            .replace_keyfile(updated, Event::owner("recovery_key.regenerated", None))
            .await?;
        Ok(Secret::new(key.display().as_str()))
    }

    /// Checks the owner's passphrase against the open vault's key file (Argon2id, off the async
    /// runtime, under the login back-off: a wrong one counts as a failed login), then runs `f`
    /// with the key file and the master key it opened.
    pub(crate) async fn with_passphrase<T: Send + 'static>(
        &self,
        passphrase: Secret,
        from: IpAddr,
        f: impl FnOnce(KeyFile, MasterKey) -> Result<T, KeyFileError> + Send + 'static,
    ) -> Result<T, AppError> {
        self.check_throttle(from, self.now())?;
        let keyfile = self.open()?.keyfile()?;
        let result = self
            .with_kdf(move || {
                let master = keyfile.unlock_with_passphrase(passphrase.expose())?;
                f(keyfile, master)
            })
            .await?;
        result.map_err(|e| {
            let error = AppError::from(e);
            if matches!(error, AppError::InvalidCredentials) {
                self.record_failure(from);
            }
            error
        })
    }
}

/// Creates a vault on disk: the store first (in a side directory), then the key file, then the
/// store is moved into place. A crash before the key file is written leaves setup mode; a crash
/// after it is finished at the next start (see [`initial_phase`]).
fn create_vault(
    settings: &Settings,
    passphrase: &Secret,
    now: OffsetDateTime,
) -> Result<(KeyFile, MasterKey, RecoveryKey), AppError> {
    let dir = &settings.data_dir;
    create_private_dir(dir)?;
    let setup_store = dir.join(STORE_SETUP_DIR);
    remove_dir_if_present(&setup_store)?;
    let (keyfile, master, recovery) = KeyFile::create(passphrase.expose(), settings.kdf)?;
    {
        let (store, _) = shred::create_for_new_store(&setup_store, settings, &master, &keyfile)?;
        audit::append_offline(&store, Event::owner("vault.created", None), now)?;
        store.flush()?;
    }
    keyfile.save(&settings.key_file())?;
    audit::remove_head_marker(dir)?;
    std::fs::rename(&setup_store, settings.store_dir())
        .map_err(|e| io_error("moving the new store", e))?;
    sync_dir(dir)?;
    Ok((keyfile, master, recovery))
}

/// Makes a directory's entries (a rename, a removal) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AppError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(&format!("syncing {}", dir.display()), e))
}

/// Removes a directory and everything in it; one that is already gone is fine.
pub(crate) fn remove_dir_if_present(dir: &Path) -> Result<(), AppError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&format!("removing {}", dir.display()), e)),
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AppError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| io_error(&format!("creating {}", dir.display()), e))
}

impl OpenVault {
    /// [`OpenVault::open`], with a panic inside it turned into [`AppError::StoreDamaged`]: sled
    /// 0.34 panics on some kinds of damage to its files instead of returning an error, and the
    /// owner should learn that the store is damaged, not see an internal error.
    fn open_guarded(
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
        let subscription_index = intents::load_index(&store)?;
        records::ensure_record_count(&store)?;
        let writer = Writer::spawn(store.clone())?;
        let epochs = Arc::new(cache::Epochs::default());
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
            keys: ArcSwap::from_pointee(key_ring),
            rotation: tokio::sync::Mutex::new(()),
            issuer: settings.issuer.trim_end_matches('/').into(),
            token_lifetime: settings.token_lifetime,
            allow_loopback_webhooks: settings.allow_loopback_webhooks,
            token_cache: quick_cache::sync::Cache::new(tokens::TOKEN_CACHE_ENTRIES),
            authorizations: Mutex::new(authorize::Pending::default()),
            event_signal: tokio::sync::watch::Sender::new(0),
            subscriptions: std::sync::RwLock::new(subscription_index),
            offer_rates: Mutex::default(),
            offer_signal: tokio::sync::broadcast::Sender::new(64),
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
                brands: cache::InWriter::new(crate::store::Tree::Brands),
                agreements: cache::InWriter::new(crate::store::Tree::Agreements),
            }),
        }))
    }

    fn keyfile(&self) -> Result<KeyFile, AppError> {
        self.keyfile
            .lock()
            .map(|k| k.clone())
            .map_err(|_| AppError::Internal("key file lock poisoned".into()))
    }

    /// Saves a new key file, then records why.
    async fn replace_keyfile(&self, keyfile: KeyFile, event: Event) -> Result<(), AppError> {
        {
            let mut current = self
                .keyfile
                .lock()
                .map_err(|_| AppError::Internal("key file lock poisoned".into()))?;
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
        self.write(move |tx| {
            let (value, event) = f(tx)?;
            audit::append_in(tx, event, now)?;
            Ok(value)
        })
        .await
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

/// The opaque store key of `name` in `namespace`: a keyed hash, so store keys reveal nothing.
/// Public for tools and tests that look for a named item on disk (a record is `"record"` and its
/// path).
pub fn index_key(index: &KeyedHash, namespace: &str, name: &str) -> [u8; 32] {
    let mut data = Vec::with_capacity(namespace.len() + 1 + name.len());
    data.extend_from_slice(namespace.as_bytes());
    data.push(0);
    data.extend_from_slice(name.as_bytes());
    index.hash(&data)
}

/// The RFC 8785 canonical form of a JSON value: what hashes and signatures are computed over, so
/// anyone can recompute them from the JSON alone.
pub(crate) fn canonical(value: &serde_json::Value) -> Result<Vec<u8>, AppError> {
    serde_json_canonicalizer::to_vec(value)
        .map_err(|e| AppError::Internal(format!("canonicalising JSON: {e}")))
}

/// `sha256:` and the hex SHA-256 of a value's canonical form.
pub(crate) fn canonical_hash(value: &serde_json::Value) -> Result<String, AppError> {
    Ok(format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&crate::crypto::sha256(&canonical(value)?))
    ))
}

/// Opens a vault directly from its data directory, for the offline CLI commands (the server must
/// not be running: sled allows one process at a time).
pub fn open_offline(
    data_dir: &Path,
    passphrase: &Secret,
) -> Result<(Store, KeyFile, MasterKey), AppError> {
    let settings = Settings::new(data_dir.to_path_buf());
    let keyfile = match initial_phase(&settings)? {
        Phase::Sealed(keyfile) => keyfile,
        _ => {
            return Err(AppError::Internal(format!(
                "no vault in {}",
                data_dir.display()
            )));
        }
    };
    let master = keyfile.unlock_with_passphrase(passphrase.expose())?;
    let (store, _, _) = shred::open_store(&settings, &keyfile, &master).map_err(|e| {
        AppError::Internal(format!(
            "cannot open the store (is the server running? stop it first): {e}"
        ))
    })?;
    audit::check_head_marker(data_dir, keyfile.vault_id(), &store)?;
    Ok((store, keyfile, master))
}

/// Adds (`create`) or removes the unlock-key slot while the server is stopped, with an audit
/// entry; returns the new key when one was created.
pub fn offline_unlock_key(
    data_dir: &Path,
    passphrase: &Secret,
    now: OffsetDateTime,
    create: bool,
) -> Result<Option<UnlockKey>, AppError> {
    let (store, mut keyfile, master) = open_offline(data_dir, passphrase)?;
    let (key, action) = if create {
        (Some(keyfile.add_unlock_key(&master)?), "unlock_key.created")
    } else {
        keyfile.remove_unlock_key();
        (None, "unlock_key.removed")
    };
    keyfile.save(&data_dir.join(KEY_FILE))?;
    audit::append_offline(&store, Event::owner(action, None), now)?;
    Ok(key)
}

/// Creates a vault without a server (for `vrm-vault init`); returns the recovery key text.
pub fn init_offline(
    data_dir: &Path,
    passphrase: &Secret,
    now: OffsetDateTime,
) -> Result<Secret, AppError> {
    validate_new_passphrase(passphrase)?;
    let settings = Settings::new(data_dir.to_path_buf());
    if !matches!(initial_phase(&settings)?, Phase::Setup) {
        return Err(AppError::Conflict(
            "a vault already exists in this data directory",
        ));
    }
    let (_, _, recovery) = create_vault(&settings, passphrase, now)?;
    Ok(Secret::new(recovery.display().as_str()))
}

/// A store key in the `Meta` tree.
pub(crate) const META_AUDIT_HEAD: &[u8] = b"audit_head";
/// The latest time the running vault has seen, saved at most once a minute (see
/// [`OpenVault::now`]).
pub(crate) const META_CLOCK_FLOOR: &[u8] = b"clock_floor";
/// How far the clock moves before the vault saves it as its new floor.
const CLOCK_FLOOR_EVERY_SECONDS: i64 = 60;
