//! The owner's records: list, read, write with optimistic concurrency, delete.
//!
//! A record is stored under a keyed hash of its path, so store keys reveal nothing; the path itself
//! lives inside the sealed value.

use crate::domain::audit::Event;
use crate::domain::records::{
    DataCategory, Precondition, Record, RecordPath, validate_value, validate_well_known,
};
use crate::error::AppError;
use crate::store::{Store, Tree, Tx, TxError};

use super::OpenVault;
use super::tables::{META_RECORD_COUNT, RECORD_COUNT, RECORDS};

/// Most records in one page.
pub const MAX_PAGE: usize = 1000;
/// Roughly the most bytes of record values in one page.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// A page of records and where the next one starts.
#[derive(Debug)]
pub struct RecordPage {
    pub records: Vec<Record>,
    /// Opaque: pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<Vec<u8>>,
}

fn current(tx: &mut Tx<'_>, key: &[u8]) -> Result<Option<Record>, AppError> {
    Ok(tx.read(&RECORDS, key)?)
}

/// A write's outcome: the stored record, and whether it was created by this write.
#[derive(Debug)]
pub struct Written {
    pub record: Record,
    pub created: bool,
}

/// Stages a record write inside a change if `precondition` holds.
pub(crate) fn stage_record(
    tx: &mut Tx<'_>,
    key: &[u8],
    path: RecordPath,
    value: serde_json::Value,
    category: &str,
    now: time::OffsetDateTime,
    precondition: Precondition,
) -> Result<Written, AppError> {
    let current = current(tx, key)?;
    if !precondition.holds(current.as_ref()) {
        return Err(AppError::PreconditionFailed);
    }
    let record = Record {
        path,
        value,
        category: category.to_owned(),
        version: current.as_ref().map_or(1, |r| r.version + 1),
        created_at: current.as_ref().map_or(now, |r| r.created_at),
        updated_at: now,
    };
    tx.write(&RECORDS, key, &record)?;
    if current.is_none() {
        adjust_record_count(tx, 1)?;
    }
    Ok(Written {
        created: current.is_none(),
        record,
    })
}

fn adjust_record_count(tx: &mut Tx<'_>, delta: i64) -> Result<(), AppError> {
    let count = tx.read(&RECORD_COUNT, META_RECORD_COUNT)?.unwrap_or(0);
    let count = count.saturating_add_signed(delta);
    tx.write(&RECORD_COUNT, META_RECORD_COUNT, &count)?;
    Ok(())
}

/// How many records the store holds.
pub(crate) fn record_count(store: &Store) -> Result<u64, AppError> {
    Ok(store.read(&RECORD_COUNT, META_RECORD_COUNT)?.unwrap_or(0))
}

/// Counts the records of a vault made before the count was kept (once, at start-up).
pub(crate) fn ensure_record_count(store: &Store) -> Result<(), AppError> {
    if store.get(RECORD_COUNT.tree(), META_RECORD_COUNT)?.is_some() {
        return Ok(());
    }
    let count = store.count(RECORDS.tree())?;
    store
        .transact_offline(|tx| tx.write(&RECORD_COUNT, META_RECORD_COUNT, &count))
        .map_err(|e| match e {
            TxError::Abort(e) => AppError::from(e),
            TxError::Store(e) => AppError::from(e),
        })?;
    Ok(())
}

impl OpenVault {
    pub(crate) fn record_key(&self, path: &RecordPath) -> [u8; 32] {
        self.index_key("record", path.as_str())
    }

    /// A page of records after `cursor`, in store order (stable, but unrelated to the paths: keys
    /// are keyed hashes). A page ends after `limit` records or about [`PAGE_BYTES`] of values, so
    /// listing a large vault never holds it all in memory.
    pub fn list_records(
        &self,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, AppError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut last_key = None;
        let mut more = false;
        for item in self.store().iter_after(Tree::Records, cursor) {
            if records.len() >= limit || bytes >= PAGE_BYTES {
                more = true;
                break;
            }
            let (key, value) = item?;
            bytes += value.len();
            records.push(RECORDS.decode(&value)?);
            last_key = Some(key);
        }
        Ok(RecordPage {
            records,
            next_cursor: if more { last_key } else { None },
        })
    }

    /// One record, from the cache of opened records when it holds the current version.
    pub fn get_record(&self, path: &RecordPath) -> Result<Record, AppError> {
        let key = self.record_key(path);
        let record = self.records_cache.get(&key, || {
            self.store()
                .get(Tree::Records, &key)?
                .map(|bytes| Ok((RECORDS.decode(&bytes)?, bytes.len())))
                .transpose()
        })?;
        match record {
            Some(record) => Ok(Record::clone(&record)),
            None => Err(AppError::NotFound("record at this path")),
        }
    }

    /// Creates or replaces a record if `precondition` holds; durable when this returns.
    pub async fn put_record(
        &self,
        path: &RecordPath,
        value: serde_json::Value,
        category: Option<&str>,
        precondition: Precondition,
    ) -> Result<Written, AppError> {
        validate_value(&value)?;
        validate_well_known(path, &value)?;
        let category = DataCategory::resolve(path, category)?;
        let key = self.record_key(path);
        let now = self.now();
        let path = path.clone();
        self.change(move |tx| {
            let written = stage_record(tx, &key, path, value, category.id, now, precondition)?;
            let event = Event::owner("record.put", Some(written.record.path.to_string()))
                .with_detail(serde_json::json!({
                    "category": written.record.category,
                    "version": written.record.version,
                    "created": written.created,
                }));
            Ok((written, event))
        })
        .await
    }

    /// Deletes a record if `precondition` holds.
    pub async fn delete_record(
        &self,
        path: &RecordPath,
        precondition: Precondition,
    ) -> Result<(), AppError> {
        let key = self.record_key(path);
        self.change(move |tx| {
            let current = current(tx, &key)?;
            let Some(record) = current else {
                return Err(AppError::NotFound("record at this path"));
            };
            if !precondition.holds(Some(&record)) {
                return Err(AppError::PreconditionFailed);
            }
            tx.remove(Tree::Records, &key)?;
            adjust_record_count(tx, -1)?;
            Ok(((), Event::owner("record.deleted", Some(record.path.into()))))
        })
        .await?;
        // What sled keeps of the record becomes unreadable once its bucket has a new key.
        self.shred_buckets([crate::store::Store::bucket(Tree::Records, &key)].into())
            .await
    }
}
