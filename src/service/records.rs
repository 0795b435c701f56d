//! The owner's records: list, read, write with optimistic concurrency, delete.
//!
//! A record is stored under a keyed hash of its path, so store keys reveal nothing; the path itself
//! lives inside the sealed value.

use crate::domain::audit::Event;
use crate::domain::records::{Category, Precondition, Record, RecordPath, validate_value};
use crate::error::AppError;
use crate::store::{Tree, Tx};

use super::OpenVault;

fn decode(bytes: &[u8]) -> Result<Record, AppError> {
    serde_json::from_slice(bytes).map_err(|e| AppError::Internal(format!("record is damaged: {e}")))
}

fn encode(record: &Record) -> Result<Vec<u8>, AppError> {
    serde_json::to_vec(record).map_err(|e| AppError::Internal(format!("encoding record: {e}")))
}

/// A write's outcome: the stored record, and whether it was created by this write.
#[derive(Debug)]
pub struct Written {
    pub record: Record,
    pub created: bool,
}

impl OpenVault {
    fn record_key(&self, path: &RecordPath) -> [u8; 32] {
        self.index_key("record", path.as_str())
    }

    fn current(&self, tx: &mut Tx<'_>, key: &[u8]) -> Result<Option<Record>, AppError> {
        tx.get(Tree::Records, key)?
            .as_deref()
            .map(decode)
            .transpose()
    }

    /// Every record, sorted by path.
    pub fn list_records(&self) -> Result<Vec<Record>, AppError> {
        let mut records = self
            .store()
            .iter(Tree::Records)
            .map(|item| decode(&item?.1))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(records)
    }

    pub fn get_record(&self, path: &RecordPath) -> Result<Record, AppError> {
        match self.store().get(Tree::Records, &self.record_key(path))? {
            Some(bytes) => decode(&bytes),
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
        let category = Category::resolve(path, category)?;
        let key = self.record_key(path);
        let now = self.now();
        self.change(|tx| {
            let current = self.current(tx, &key)?;
            if !precondition.holds(current.as_ref()) {
                return Err(AppError::PreconditionFailed);
            }
            let record = Record {
                path: path.as_str().to_owned(),
                value: value.clone(),
                category: category.id.to_owned(),
                version: current.as_ref().map_or(1, |r| r.version + 1),
                created_at: current.as_ref().map_or(now, |r| r.created_at),
                updated_at: now,
            };
            tx.insert(Tree::Records, &key, &encode(&record)?)?;
            let event = Event::owner("record.put", Some(record.path.clone())).with_detail(
                serde_json::json!({
                    "category": record.category,
                    "version": record.version,
                    "created": current.is_none(),
                }),
            );
            Ok((
                Written {
                    created: current.is_none(),
                    record,
                },
                event,
            ))
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
        self.change(|tx| {
            let current = self.current(tx, &key)?;
            let Some(record) = current else {
                return Err(AppError::NotFound("record at this path"));
            };
            if !precondition.holds(Some(&record)) {
                return Err(AppError::PreconditionFailed);
            }
            tx.remove(Tree::Records, &key)?;
            Ok(((), Event::owner("record.deleted", Some(record.path))))
        })
        .await
    }
}
