//! The token endpoint's budget per brand: a brand may ask for [`TOKEN_BURST`] tokens at once,
//! then one every [`TOKEN_EVERY`]; past that it gets `429` with `Retry-After`.
//!
//! Every token issued is a durable write: its `jti` record and its audit entry, about 476 bytes
//! on disk, so an unthrottled brand could fill the disk at ~870 tokens a second and bury the
//! person's own log. An honest brand needs one token per grant per token lifetime (15 minutes
//! at most), plus a few for restarts: the burst covers a brand starting up with dozens of
//! grants, the sustained rate (360 an hour) is 90 times what one token per 15 minutes needs.
//! The buckets live in memory (a restart refills them) and only for brands that authenticated,
//! so an unauthenticated caller can neither spend a brand's budget nor grow the map; full buckets
//! are forgotten once there are many.

use std::collections::HashMap;
use std::sync::Mutex;

use time::Duration;

use super::OpenVault;
use crate::domain::brands::Brand;
use crate::domain::rate::{Budget, TokenBucket, retry_after_seconds};
use crate::error::OAuthError;

/// Tokens a brand may get at once.
pub const TOKEN_BURST: u32 = 60;
/// Then one per this long.
pub const TOKEN_EVERY: Duration = Duration::seconds(10);
/// Buckets kept before the full ones are swept out.
const SWEEP_ABOVE: usize = 1024;

const BUDGET: Budget = Budget {
    burst: TOKEN_BURST,
    every: TOKEN_EVERY,
};

/// Each authenticated brand's bucket, by client id.
#[derive(Debug, Default)]
pub(crate) struct TokenBudgets {
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl OpenVault {
    /// Spends one of `brand`'s token requests, or answers `429` with how long to wait.
    pub fn spend_token_budget(&self, brand: &Brand) -> Result<(), OAuthError> {
        let now = self.now();
        let mut buckets = self
            .token_budgets
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let bucket = buckets
            .entry(brand.client_id.clone())
            .or_insert_with(|| TokenBucket::full(now));
        bucket.take(BUDGET, now).map_err(|wait| {
            let seconds = retry_after_seconds(wait);
            let mut error = OAuthError::new(
                429,
                "temporarily_unavailable",
                format!(
                    "this client asked for more than {TOKEN_BURST} tokens in a short time: keep \
                     using a token until it expires; the next one can be issued in {seconds} s"
                ),
            );
            error.retry_after = Some(seconds);
            error
        })
    }
}
