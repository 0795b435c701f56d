//! Locking the running vault from the app ("Lock the vault now"): the open vault is closed, its
//! keys leave memory with it, every owner session ends, and the vault is sealed as after a
//! restart, so brands get 503 until the passphrase unlocks it again, without a restart.
//!
//! The open vault is shared (`Arc`) by requests in flight, brands' event streams and the delivery
//! worker; locking swaps the phase first, so nothing new reaches it, then wakes the streams so
//! they notice and let go. Its store closes when the last holder drops it. Unlocking again waits
//! for that (bounded), because sled refuses to open a store that is still open.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::OpenVault;
use super::lifecycle::{Phase, Vault};
use crate::domain::audit::Event;
use crate::error::AppError;

/// How long unlocking waits for the locked vault's last holder to let go.
const CLOSE_PATIENCE: Duration = Duration::from_secs(10);
const CLOSE_POLL: Duration = Duration::from_millis(25);

impl Vault {
    /// Seals the running vault now. Already sealed is fine; setup or erasing is not a vault to
    /// lock.
    pub async fn lock(&self) -> Result<(), AppError> {
        let _guard = self.inner.lifecycle.lock().await;
        let open = match &**self.inner.phase.load() {
            Phase::Unsealed(open) => open.clone(),
            Phase::Sealed(_) => return Ok(()),
            Phase::Setup => return Err(AppError::SetupRequired),
            Phase::Erasing => return Err(AppError::Erasing),
        };
        open.change(|_| Ok(((), Event::owner("vault.sealed", None))))
            .await?;
        let keyfile = open.keyfile()?;
        self.inner.phase.store(Arc::new(Phase::Sealed(keyfile)));
        self.inner.sessions.clear();
        if let Ok(mut closing) = self.inner.closing.lock() {
            *closing = Some(Arc::downgrade(&open));
        }
        // Brands' event streams wake, see the vault is no longer the current one, and end.
        open.announce_events();
        tracing::info!("vault locked by the owner");
        // Closing sled flushes; nothing waits for it here.
        tokio::task::spawn_blocking(move || drop(open));
        Ok(())
    }

    /// Whether `open` is the vault requests are served from now (not one locked since).
    pub fn is_current(&self, open: &Arc<OpenVault>) -> bool {
        matches!(&**self.inner.phase.load(), Phase::Unsealed(current) if Arc::ptr_eq(current, open))
    }

    /// Before unsealing: waits until a vault locked earlier is closed, so its store can be opened
    /// again. Fails with 503 if something still holds it after [`CLOSE_PATIENCE`].
    pub(super) async fn wait_for_locked_vault(&self) -> Result<(), AppError> {
        let weak: Option<Weak<OpenVault>> = self
            .inner
            .closing
            .lock()
            .map(|mut c| c.take())
            .unwrap_or_default();
        let Some(weak) = weak else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + CLOSE_PATIENCE;
        while weak.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                if let Ok(mut closing) = self.inner.closing.lock() {
                    *closing = Some(weak);
                }
                // Still sealed, as far as anyone can tell: 503, try again.
                return Err(AppError::Sealed);
            }
            tokio::time::sleep(CLOSE_POLL).await;
        }
        Ok(())
    }
}
