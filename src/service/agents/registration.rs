//! Dynamic registration of the person's assistants (RFC 7591) without an invitation, as MCP
//! clients register: anyone who can reach the vault can register, so a registration grants
//! nothing. It is a name and redirect URIs waiting for the person's approval; nobody approves it
//! within [`super::REGISTRATION_LIFETIME`] and it is purged.
//!
//! Registrations are rate-limited, since each one writes to the store: per client address
//! ([`PER_ADDRESS`]), for the whole vault ([`GLOBAL`]), and by how many may wait for approval at
//! once ([`MAX_UNAPPROVED`]).

use std::collections::HashMap;
use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use super::{AGENTS, AgentRecord, lock};
use crate::crypto::random_array;
use crate::domain::agents::ValidAgentRegistration;
use crate::domain::rate::{Budget, TokenBucket, retry_after_seconds};
use crate::error::{AppError, OAuthError};
use crate::service::OpenVault;

/// Registrations one client address may make: 5 at once, then one every 10 minutes.
pub const PER_ADDRESS: Budget = Budget {
    burst: 5,
    every: Duration::minutes(10),
};
/// Registrations the whole vault takes: 30 at once, then one a minute.
pub const GLOBAL: Budget = Budget {
    burst: 30,
    every: Duration::minutes(1),
};
/// Registrations that may wait for the person's approval at once.
pub const MAX_UNAPPROVED: usize = 100;
/// Addresses whose buckets are remembered at most; full buckets are forgotten first.
const MAX_ADDRESSES: usize = 4096;
/// The prefix of an assistant's client id, so that a person or a log reader tells it from a
/// brand's at a glance (the vault itself tells them apart by where they are stored).
pub const CLIENT_ID_PREFIX: &str = "agent-";

/// The registration budgets.
#[derive(Debug, Default)]
pub(crate) struct Budgets {
    per_address: HashMap<IpAddr, TokenBucket>,
    global: Option<TokenBucket>,
}

impl Budgets {
    /// Spends one registration from `from` at `now`, or says how long to wait. Nothing is spent
    /// when either budget refuses.
    fn take(&mut self, from: IpAddr, now: OffsetDateTime) -> Result<(), Duration> {
        if self.per_address.len() >= MAX_ADDRESSES {
            self.per_address.retain(|_, bucket| !bucket.is_full(now));
        }
        let mut address = self
            .per_address
            .get(&from)
            .copied()
            .unwrap_or_else(|| TokenBucket::full(now));
        let mut global = self.global.unwrap_or_else(|| TokenBucket::full(now));
        address.take(PER_ADDRESS, now)?;
        global.take(GLOBAL, now)?;
        if self.per_address.len() < MAX_ADDRESSES {
            self.per_address.insert(from, address);
        }
        self.global = Some(global);
        Ok(())
    }
}

fn slow_down(wait: Duration, why: &str) -> OAuthError {
    let seconds = retry_after_seconds(wait);
    let mut error = OAuthError::new(
        429,
        "slow_down",
        format!("{why}; try again in {seconds} seconds"),
    );
    error.retry_after = Some(seconds);
    error
}

impl OpenVault {
    /// Registers an assistant that came without an invitation, unapproved. `from` is the
    /// client's address, for the budgets.
    pub async fn register_agent(
        &self,
        from: IpAddr,
        metadata: ValidAgentRegistration,
    ) -> Result<AgentRecord, OAuthError> {
        let now = self.now();
        lock(&self.agents.budgets)?
            .take(from, now)
            .map_err(|wait| slow_down(wait, "too many assistants registered"))?;
        let mut unapproved = 0;
        for item in self.store().read_all(&AGENTS) {
            let (_, record) = item.map_err(AppError::from)?;
            // One past its time but not purged yet does not count.
            if record.purge_at().is_some_and(|at| at > now) {
                unapproved += 1;
            }
        }
        if unapproved >= MAX_UNAPPROVED {
            return Err(slow_down(
                super::REGISTRATION_LIFETIME,
                "too many assistants wait for the person's approval",
            ));
        }
        let random =
            random_array::<16>().map_err(|e| AppError::internal("drawing random bytes", e))?;
        let client_id = format!(
            "{CLIENT_ID_PREFIX}{}",
            data_encoding::BASE64URL_NOPAD.encode(&random)
        );
        let record = AgentRecord {
            client_id: client_id.clone(),
            client_name: metadata.client_name,
            client_uri: metadata.client_uri,
            redirect_uris: metadata.redirect_uris,
            grant_types: metadata.grant_types,
            scopes: metadata.scopes,
            registered_at: now,
            approval: None,
            last_used_at: None,
            generation: 0,
            refresh: None,
        };
        let key = self.agent_key(&client_id);
        let stored = record.clone();
        self.write(move |tx| {
            tx.write(&AGENTS, &key, &stored)?;
            Ok(())
        })
        .await?;
        if let Some(at) = record.purge_at() {
            self.agents.expiries.insert(at, client_id);
            self.alarm.0.arm(at);
        }
        tracing::info!(%from, "an assistant registered, waiting for the person's approval");
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000 + seconds)
    }

    #[test]
    fn one_address_gets_five_then_waits_and_others_are_not_held_up() {
        let mut budgets = Budgets::default();
        let a = IpAddr::from([198, 51, 100, 7]);
        let b = IpAddr::from([198, 51, 100, 8]);
        for _ in 0..5 {
            assert_eq!(budgets.take(a, at(0)), Ok(()));
        }
        assert!(budgets.take(a, at(1)).is_err());
        assert_eq!(budgets.take(b, at(1)), Ok(()));
        assert_eq!(budgets.take(a, at(600)), Ok(()));
    }

    #[test]
    fn the_whole_vault_takes_thirty_at_once_from_anywhere() {
        let mut budgets = Budgets::default();
        for i in 0..30u8 {
            assert_eq!(budgets.take(IpAddr::from([203, 0, 113, i]), at(0)), Ok(()));
        }
        assert!(budgets.take(IpAddr::from([192, 0, 2, 1]), at(0)).is_err());
        assert_eq!(budgets.take(IpAddr::from([192, 0, 2, 1]), at(60)), Ok(()));
    }
}
