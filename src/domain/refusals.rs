//! A summary of brands' refused data requests, so that probing is on the record without flooding
//! it.
//!
//! A brand that asks for fields its grant does not cover, or keeps asking after its grant ended,
//! is refused every time; the person should be able to see that it happened. One audit entry per
//! refusal would let a brand grow the person's hash-chained, never-pruned log at will, so the
//! refusals are counted per grant in windows of [`WINDOW`], and an entry is due at the 1st, 2nd,
//! 4th, 8th … refusal of a window, each carrying the count so far. `n` refusals in a window thus
//! make at most ⌊log2 n⌋ + 1 entries, the first one at once, and the last entry's count is at
//! least half the true count. (An exact count would need an entry written when the window closes,
//! after the brand has gone; the doubling keeps every entry caused by a request.)
//!
//! The entries count refusals and never name the paths asked for: those strings are the brand's
//! choice, most name records the person does not have, and naming only the ones that exist
//! would make the entry's content depend on what the person holds for no gain to them.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

/// How long one count of refusals runs before it starts again at zero.
pub const WINDOW: Duration = Duration::hours(1);
/// Grants counted at most; the one whose window started first is forgotten first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: OffsetDateTime,
    count: u64,
}

/// An audit entry that is due: the refusals of one grant so far in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalSummary {
    pub refused: u64,
    pub since: OffsetDateTime,
}

/// Counts refused data requests per grant.
#[derive(Debug, Default)]
pub struct RefusalTally {
    by_grant: HashMap<String, Window>,
}

impl RefusalTally {
    /// Counts one refusal of `grant_id` at `now`; returns the summary to write to the audit log
    /// when one is due.
    pub fn count(&mut self, grant_id: &str, now: OffsetDateTime) -> Option<RefusalSummary> {
        if self.by_grant.len() >= MAX_TRACKED
            && !self.by_grant.contains_key(grant_id)
            && let Some(oldest) = self
                .by_grant
                .iter()
                .min_by_key(|(_, w)| w.started)
                .map(|(id, _)| id.clone())
        {
            self.by_grant.remove(&oldest);
        }
        let window = self.by_grant.entry(grant_id.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now - window.started >= WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
        window.count.is_power_of_two().then_some(RefusalSummary {
            refused: window.count,
            since: window.started,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_summarised_at_doubling_counts_per_grant_and_window() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut tally = RefusalTally::default();
        let due: Vec<u64> = (0..50)
            .filter_map(|_| tally.count("g_1", t0).map(|s| s.refused))
            .collect();
        assert_eq!(due, [1, 2, 4, 8, 16, 32]);
        // Each grant has its own count.
        assert_eq!(
            tally.count("g_2", t0),
            Some(RefusalSummary {
                refused: 1,
                since: t0
            })
        );
        // A new window starts again, and says when it started.
        let later = t0 + WINDOW;
        assert_eq!(
            tally.count("g_1", later),
            Some(RefusalSummary {
                refused: 1,
                since: later
            })
        );
        assert_eq!(tally.count("g_1", later).map(|s| s.refused), Some(2));
        assert_eq!(tally.count("g_1", later), None);
    }

    #[test]
    fn the_tally_forgets_the_oldest_grant_beyond_its_bound() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut tally = RefusalTally::default();
        for n in 0..MAX_TRACKED + 1 {
            tally.count(&format!("g_{n}"), t0 + Duration::seconds(n as i64));
        }
        assert_eq!(tally.by_grant.len(), MAX_TRACKED);
        assert!(!tally.by_grant.contains_key("g_0"));
    }
}
