//! Remembered `jti`s (live access tokens, spent client assertions) are forgotten as they expire.
//!
//! Each is kept only until its `exp`: after that a token is refused for its expiry and an
//! assertion for its own, so the record guards nothing. Unseal drops those already expired
//! ([`super::tokens::prune_jtis`]) and puts the rest in an ordered set of deadlines; each new
//! `jti` is added as it is written, and the background task ([`super::deadlines`]) removes the
//! records that come due, in batches, without rescanning the store. So the tree holds what the
//! token budget ([`super::token_budget`]) lets live at once, not every token ever issued.

use time::{Duration, OffsetDateTime};

use super::OpenVault;
use super::deadlines::{Alarm, Deadlines};
use super::tables::JTIS;
use crate::store::Store;

/// Records removed in one write, so that a large batch does not hold the writer long.
const BATCH: usize = 512;
/// How soon a batch that could not be written is tried again.
const RETRY: Duration = Duration::seconds(5);

/// When each remembered `jti` expires, by store key.
#[derive(Debug)]
pub(crate) struct JtiExpiries {
    due: Deadlines<Vec<u8>>,
}

fn deadline(exp: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(exp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl JtiExpiries {
    /// Reads the remembered `jti`s once, at unseal; one that does not decode is due at once
    /// (as [`super::tokens::prune_jtis`] treats it).
    pub(super) fn load(store: &Store, alarm: &Alarm) -> JtiExpiries {
        let mut due = Vec::new();
        for item in store.iter(JTIS.tree()) {
            match item {
                Ok((key, value)) => due.push((deadline(JTIS.decode(&value).unwrap_or(0)), key)),
                Err(e) => alarm.read_error("remembered jti", &e),
            }
        }
        JtiExpiries {
            due: Deadlines::new(due),
        }
    }
}

impl OpenVault {
    /// A `jti` record was written under `key`, to be forgotten at `exp` (Unix seconds).
    pub(crate) fn jti_expires(&self, key: &[u8], exp: i64) {
        let at = deadline(exp);
        self.jti_expiries.due.insert(at, key.to_vec());
        self.alarm.0.arm(at);
    }

    /// Removes the `jti` records that expired by `now` (run by the background worker); returns
    /// when the next one expires.
    pub(crate) async fn prune_expired_jtis(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let due = self.jti_expiries.due.take_due(now);
        let seconds = now.unix_timestamp();
        for batch in due.chunks(BATCH) {
            let keys: Vec<Vec<u8>> = batch.iter().map(|(_, key)| key.clone()).collect();
            let removed = self
                .write(move |tx| {
                    for key in &keys {
                        // Removed only if still expired: a record written again under the same
                        // key since (it cannot be, but the check costs nothing) stays.
                        let exp = match tx.get(JTIS.tree(), key)? {
                            Some(value) => JTIS.decode(&value).unwrap_or(0),
                            None => continue,
                        };
                        if exp <= seconds {
                            tx.remove(JTIS.tree(), key)?;
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = removed {
                tracing::warn!(error = %e, "forgetting expired token ids");
                // The worker looks at the deadlines next: no alarm needed.
                for (_, key) in batch {
                    self.jti_expiries.due.insert(now + RETRY, key.clone());
                }
            }
        }
        self.jti_expiries.due.first_after(now)
    }
}
