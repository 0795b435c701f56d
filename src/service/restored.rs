//! After a restore, every brand relationship is held until the person reviews it.
//!
//! A backup may be older than what the brands were told since: that their access ended, after
//! "delete everything", or that a grant was revoked. Restoring must not quietly give them their
//! access back. So the restore leaves a mark in the store (flushed with the restored data), and
//! the first time the restored vault opens, every active brand is suspended and marked
//! `held_after_restore`, and the mark removed, in one atomic change: a crash in between holds
//! them at the next unseal instead. Suspension refuses the brand's tokens (401) and client
//! authentication, parks its deliveries and stops its grants, until the person resumes it on the
//! Brands screen. The person's assistants lose every token they held (they may have been
//! disconnected since the backup was made) and must be approved again.

use super::OpenVault;
use super::tables::BRANDS;
use crate::domain::audit::Event;
use crate::domain::brands::BrandStatus;
use crate::error::AppError;
use crate::store::{Store, Tree};

/// The mark a restore leaves in the store's meta tree.
const META_HOLD_BRANDS: &[u8] = b"hold_brands_after_restore";

/// Marks a freshly restored store (offline, before it is first opened).
pub(super) fn mark_restored(store: &Store) -> Result<(), AppError> {
    store
        .transact_offline(|tx| tx.insert(Tree::Meta, META_HOLD_BRANDS, b"1"))
        .map_err(AppError::from)?;
    Ok(())
}

impl OpenVault {
    /// Holds every active brand if the store was just restored; does nothing otherwise. Returns
    /// how many brands were held.
    pub(super) async fn hold_brands_after_restore(&self) -> Result<usize, AppError> {
        if self.store().get(Tree::Meta, META_HOLD_BRANDS)?.is_none() {
            return Ok(0);
        }
        let keys: Vec<(String, [u8; 32])> = self
            .list_brands()?
            .into_iter()
            .filter(|b| b.status == BrandStatus::Active)
            .map(|b| {
                let key = self.brand_key(&b.client_id);
                (b.client_id, key)
            })
            .collect();
        // The person's assistants: every token they hold is revoked (their approval stays, so
        // Settings lists them; each must come back through the consent page).
        let agents = self.agent_keys()?;
        let held = self
            .change(move |tx| {
                super::agents::revoke_all_in(tx, &agents)?;
                let mut held = Vec::new();
                for (client_id, key) in &keys {
                    if let Some(mut brand) = tx.read(&BRANDS, key)?
                        && brand.status == BrandStatus::Active
                    {
                        brand.status = BrandStatus::Suspended;
                        brand.held_after_restore = true;
                        tx.write(&BRANDS, key, &brand)?;
                        held.push(client_id.clone());
                    }
                }
                tx.remove(Tree::Meta, META_HOLD_BRANDS)?;
                let event = Event::system("brands.held_after_restore")
                    .with_detail(serde_json::json!({ "brands": held }));
                Ok((held.len(), event))
            })
            .await?;
        if held > 0 {
            tracing::info!(
                held,
                "brands held after the restore, until the owner resumes them"
            );
        }
        Ok(held)
    }
}
