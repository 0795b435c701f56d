//! The audit log as the Activity screen shows it: each entry with its kind, the brand's name and
//! a plain sentence (domain/activity.rs), filtered here by kind, brand and words over what is
//! shown, so that a brand's reads are found by the brand's name across the whole log, not only
//! in the page loaded. The stored entries are not touched.

use std::collections::HashMap;

use super::OpenVault;
use super::tables::AUDIT;
use crate::domain::activity::{ActivityKind, brand_of, sentence};
use crate::domain::audit::AuditEntry;
use crate::error::AppError;

/// Most entries one filtered request reads before answering with what it found and where to
/// go on: a search for something rare in a long log answers in pages instead of all at once.
const MAX_SCAN: usize = 5_000;

/// Which entries to show; all of them when empty.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub kind: Option<ActivityKind>,
    /// A brand's client id.
    pub brand: Option<String>,
    /// Lower-case words that must all appear in what the entry shows.
    pub words: Vec<String>,
}

impl ActivityFilter {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.brand.is_none() && self.words.is_empty()
    }
}

/// One entry with what the screen shows of it.
#[derive(Debug, Clone)]
pub struct ActivityItem {
    pub entry: AuditEntry,
    pub kind: ActivityKind,
    pub brand_id: Option<String>,
    pub brand_name: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ActivityPage {
    pub items: Vec<ActivityItem>,
    /// Pass as `before` for the next, older page; `None` at the start of the log.
    pub next_before: Option<u64>,
}

impl OpenVault {
    /// Entries older than `before` (or the newest) that match `filter`, at most `limit`, newest
    /// first.
    pub fn activity_page(
        &self,
        before: Option<u64>,
        limit: usize,
        filter: &ActivityFilter,
    ) -> Result<ActivityPage, AppError> {
        let limit = limit.clamp(1, super::audit::MAX_PAGE);
        let scan = if filter.is_empty() {
            limit + 1
        } else {
            MAX_SCAN
        };
        let before_key = before.map(u64::to_be_bytes);
        let mut names: HashMap<String, Option<String>> = HashMap::new();
        let mut items = Vec::with_capacity(limit);
        let mut last_seen = None;
        let mut more = false;
        for (scanned, item) in self
            .store()
            .read_rev_before(&AUDIT, before_key.as_ref().map(|k| &k[..]))
            .enumerate()
        {
            if items.len() == limit || scanned == scan {
                more = true;
                break;
            }
            let (_, entry) = item?;
            last_seen = Some(entry.seq);
            let shown = self.show(entry, &mut names)?;
            if matches(&shown, filter) {
                items.push(shown);
            }
        }
        Ok(ActivityPage {
            items,
            next_before: if more { last_seen } else { None },
        })
    }

    fn show(
        &self,
        entry: AuditEntry,
        names: &mut HashMap<String, Option<String>>,
    ) -> Result<ActivityItem, AppError> {
        let brand_id = brand_of(&entry).map(str::to_owned);
        let brand_name = match &brand_id {
            None => None,
            Some(id) => match names.get(id) {
                Some(name) => name.clone(),
                None => {
                    // A removed brand's name survives in the entry that removed it.
                    let name = self.find_brand(id)?.map(|b| b.client_name).or_else(|| {
                        entry
                            .detail
                            .as_ref()
                            .and_then(|d| d.get("client_name"))
                            .and_then(|n| n.as_str())
                            .map(str::to_owned)
                    });
                    names.insert(id.clone(), name.clone());
                    name
                }
            },
        };
        Ok(ActivityItem {
            kind: ActivityKind::of(&entry.action),
            summary: sentence(&entry, brand_name.as_deref()),
            brand_id,
            brand_name,
            entry,
        })
    }
}

fn matches(item: &ActivityItem, filter: &ActivityFilter) -> bool {
    if filter.kind.is_some_and(|k| k != item.kind) {
        return false;
    }
    if filter
        .brand
        .as_ref()
        .is_some_and(|b| item.brand_id.as_deref() != Some(b.as_str()))
    {
        return false;
    }
    if filter.words.is_empty() {
        return true;
    }
    let shown = [
        item.summary.as_deref().unwrap_or_default(),
        item.brand_name.as_deref().unwrap_or_default(),
        item.entry.action.as_str(),
        item.kind.as_str(),
    ]
    .join(" ")
    .to_lowercase();
    filter.words.iter().all(|w| shown.contains(w.as_str()))
}
