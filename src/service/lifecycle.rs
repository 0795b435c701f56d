//! The vault's life: setup, sealed, unsealed and erasing, with login, unseal and passphrase
//! changes.
//!
//! [`Vault`] is the service every request shares; it holds the [`Phase`] the vault is in and the
//! things that outlive any one open vault (sessions, login back-off, the key-derivation permits).
//! Once unsealed, the use cases run on the [`OpenVault`] the phase holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use time::{Duration, OffsetDateTime};
use tokio::sync::Semaphore;

use super::attempts::{AttemptFrom, Devices};
use super::session::{self, NewSession, SessionInfo};
use super::{
    CONCURRENT_KDF, KEY_FILE, MAX_PASSPHRASE_CHARS, MIN_PASSPHRASE_CHARS, OpenVault, STORE_DIR,
    STORE_OLD_DIR, STORE_SETUP_DIR, audit, backup, blocking_error, create_private_dir, erase,
    file_error, io_error, remove_dir_if_present, shred, sync_dir, tokens,
};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::crypto::keyfile::{KdfParams, KeyFile, KeyFileError, RecoveryKey, UnlockKey};
use crate::domain::audit::Event;
use crate::domain::login::LoginThrottle;
use crate::error::{AppError, DataDirError};
use crate::secret::Secret;

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
    /// The proxy webhooks go through, if the self-hoster configured one (never an ambient one).
    pub webhook_proxy: Option<crate::webhooks::WebhookProxy>,
    /// The intent relays intents marked for the relay are published to (`serve --relay`).
    pub relays: Vec<crate::relay_link::RelayUrl>,
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            issuer: "http://127.0.0.1:8080".into(),
            token_lifetime: tokens::MAX_TOKEN_LIFETIME,
            allow_loopback_webhooks: false,
            webhook_proxy: None,
            relays: Vec::new(),
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

    pub(super) fn store_dir(&self) -> PathBuf {
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
    pub(super) inner: Arc<Inner>,
}

/// Failed brand client authentications allowed per address before back-off: more than for the
/// owner's passphrase, since a brand's server retrying with a stale secret is common and a
/// 256-bit secret is not guessable anyway; the back-off bounds the work a flood of bad
/// assertions costs.
pub const CLIENT_AUTH_FREE_FAILURES: u32 = 10;

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) settings: Settings,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) phase: ArcSwap<Phase>,
    /// Serialises phase changes (setup, unseal).
    pub(super) lifecycle: tokio::sync::Mutex<()>,
    pub(super) throttle: Mutex<LoginThrottle>,
    pub(super) kdf_permits: Semaphore,
    pub(super) sessions: session::Sessions,
    /// Back-off for registration attempts with a wrong initial access token, per address.
    pub(super) registration_throttle: Mutex<LoginThrottle>,
    /// Back-off for failed brand client authentication, per address only.
    pub(super) client_auth_throttle: Mutex<LoginThrottle>,
    /// The key of the device cookies that give known devices a back-off of their own.
    pub(super) devices: Devices,
    /// The vault the owner last locked, until it is closed (lock.rs).
    pub(super) closing: Mutex<Option<std::sync::Weak<OpenVault>>>,
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
        let keyfile =
            KeyFile::load(&key_file).map_err(|e| AppError::internal("reading the key file", e))?;
        if !store.exists() {
            if setup_store.exists() {
                // Setup, a restore or a migration made the new store complete and stopped
                // before moving it into place.
                std::fs::rename(&setup_store, &store)
                    .map_err(|e| io_error("finishing setup", e))?;
            } else {
                return Err(AppError::internal(
                    "opening the data directory",
                    DataDirError::StoreMissing {
                        key_file: key_file.clone(),
                        store: store.clone(),
                    },
                ));
            }
        }
        // A migration stopped after the new store was in place: the old one can go.
        remove_dir_if_present(&settings.data_dir.join(STORE_OLD_DIR))?;
        return Ok(Phase::Sealed(keyfile));
    }
    if store.exists() {
        return Err(AppError::internal(
            "opening the data directory",
            DataDirError::KeyFileMissing {
                data_dir: settings.data_dir.clone(),
                key_file: KEY_FILE,
                store: store.clone(),
            },
        ));
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
        let devices = Devices::open(&settings.data_dir, !matches!(phase, Phase::Setup));
        Ok(Vault {
            inner: Arc::new(Inner {
                settings,
                clock,
                phase: ArcSwap::from_pointee(phase),
                lifecycle: tokio::sync::Mutex::new(()),
                throttle: Mutex::new(LoginThrottle::default()),
                kdf_permits: Semaphore::new(CONCURRENT_KDF),
                sessions,
                // Per address only: invitation tokens cannot be guessed, and a global back-off
                // would let strangers' wrong tokens block every brand's registration.
                registration_throttle: Mutex::new(LoginThrottle::per_address(
                    crate::domain::login::FREE_FAILURES,
                )),
                client_auth_throttle: Mutex::new(LoginThrottle::per_address(
                    CLIENT_AUTH_FREE_FAILURES,
                )),
                devices,
                closing: Mutex::new(None),
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
            .map_err(|_| AppError::broken("key derivation closed"))?;
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
        let session = self.install(keyfile, master, now).await?;
        tracing::info!("vault created");
        Ok((Secret::new(recovery.display().as_str()), session))
    }

    /// Opens a vault just created or restored, makes it the one served, and logs the owner in.
    async fn install(
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
        // A restored vault holds its brands before anyone can reach it and before its delivery
        // worker sends anything (restored.rs).
        open.hold_brands_after_restore().await?;
        open.start_delivery()?;
        open.start_relay_link();
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
        let session = self.install(keyfile, master, now).await?;
        tracing::info!(entries = summary.entries, "vault restored from a backup");
        Ok((summary, session))
    }

    /// Checks the owner's credential, unseals the vault if needed, and opens a session. The
    /// attempt counts against the login back-off before the credential is checked (see
    /// `domain::login`).
    pub async fn login(
        &self,
        credential: Credential,
        from: impl Into<AttemptFrom>,
    ) -> Result<NewSession, AppError> {
        let attempt = self.begin_attempt(&from.into())?;
        let result = self.login_checked(credential).await;
        attempt.settle(&result);
        result
    }

    async fn login_checked(&self, credential: Credential) -> Result<NewSession, AppError> {
        let now = self.now();
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
            Err(e) => return Err(AppError::from(e)),
        };
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

    /// Moves a sealed vault to unsealed with `master`; a vault already unsealed stays as it is.
    async fn unseal(&self, master: MasterKey) -> Result<Arc<OpenVault>, AppError> {
        let _guard = self.inner.lifecycle.lock().await;
        let keyfile = match &**self.inner.phase.load() {
            Phase::Unsealed(open) => return Ok(open.clone()),
            Phase::Setup => return Err(AppError::SetupRequired),
            Phase::Erasing => return Err(AppError::Erasing),
            Phase::Sealed(keyfile) => keyfile.clone(),
        };
        self.wait_for_locked_vault().await?;
        let settings = self.inner.settings.clone();
        let clock = self.inner.clock.clone();
        let open = OpenVault::open_guarded(&settings, keyfile, master, clock)?;
        // A restore interrupted before its brands were held finishes here, before any delivery.
        open.hold_brands_after_restore().await?;
        open.start_delivery()?;
        open.start_relay_link();
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
        let text = std::fs::read_to_string(path).map_err(|e| file_error("reading", path, e))?;
        let key = UnlockKey::parse(&text)?;
        let keyfile = match &**self.inner.phase.load() {
            Phase::Sealed(keyfile) => keyfile.clone(),
            Phase::Setup => return Err(AppError::SetupRequired),
            Phase::Erasing => return Err(AppError::Erasing),
            Phase::Unsealed(_) => return Ok(()),
        };
        let master = keyfile.unlock_with_unlock_key(&key).map_err(|e| match e {
            KeyFileError::WrongSecret => AppError::internal(
                "unsealing with the unlock key",
                DataDirError::ForeignUnlockKey(path.to_path_buf()),
            ),
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
        from: impl Into<AttemptFrom>,
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
        from: impl Into<AttemptFrom>,
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
        from: impl Into<AttemptFrom>,
        f: impl FnOnce(KeyFile, MasterKey) -> Result<T, KeyFileError> + Send + 'static,
    ) -> Result<T, AppError> {
        let attempt = self.begin_attempt(&from.into())?;
        let result = async {
            let keyfile = self.open()?.keyfile()?;
            self.with_kdf(move || {
                let master = keyfile.unlock_with_passphrase(passphrase.expose())?;
                f(keyfile, master)
            })
            .await?
            .map_err(AppError::from)
        }
        .await;
        attempt.settle(&result);
        result
    }
}

/// Creates a vault on disk: the store first (in a side directory), then the key file, then the
/// store is moved into place. A crash before the key file is written leaves setup mode; a crash
/// after it is finished at the next start (see [`initial_phase`]).
pub(super) fn create_vault(
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
