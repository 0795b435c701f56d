//! Brands' event streams: every CloudEvent a brand receives is appended to its stream in the
//! store, in the same atomic write as what caused it, and numbered from one global counter.
//! Polling and Server-Sent Events read the stream after a cursor; webhooks deliver it from the
//! outbox, which the same write fills.
//!
//! Because the event and its outbox entry are written with the change that produced them, an
//! acknowledged intent is never lost by a crash; the delivery worker picks up where it stopped.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{OpenVault, index_key};
use crate::crypto::KeyedHash;
use crate::domain::grants::GrantStatus;
use crate::error::{AppError, TokenRefusal};
use crate::store::{Table, Tree, Tx};

use super::tables::{EVENT_SEQ, EVENTS, META_EVENT_SEQ};

/// Webhook deliveries still to make, under the event's big-endian number.
pub(crate) const OUTBOX: Table<OutboxEntry> = Table::new(Tree::Outbox, "outbox entry");

/// Most events one poll or one SSE catch-up returns.
pub const MAX_EVENTS_PAGE: usize = 500;

/// The stream prefix of a brand: 16 bytes of a keyed hash of its client id.
pub(crate) fn stream_prefix(index: &KeyedHash, client_id: &str) -> [u8; 16] {
    let full = index_key(index, "events", client_id);
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&full[..16]);
    prefix
}

fn stream_key(prefix: &[u8; 16], seq: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(prefix);
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// A webhook delivery still to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub client_id: String,
    /// The `webhook-id`: the event's id, the same on every attempt so brands can de-duplicate.
    pub webhook_id: String,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Appends `event` to a brand's stream (and to the outbox if it takes webhooks) inside a change.
/// Returns the event's number, its cursor.
pub(crate) fn append_in(
    tx: &mut Tx<'_>,
    index: &KeyedHash,
    client_id: &str,
    event: &Value,
    webhook: bool,
    now: OffsetDateTime,
) -> Result<u64, AppError> {
    // Every identifier in the brand's copy is the brand's own (see `aliases`).
    let mut event = event.clone();
    super::aliases::for_brand(index, client_id, &mut event);
    let event = &event;
    let seq = tx.read(&EVENT_SEQ, META_EVENT_SEQ)?.unwrap_or(0) + 1;
    tx.write(&EVENT_SEQ, META_EVENT_SEQ, &seq)?;
    tx.write(
        &EVENTS,
        &stream_key(&stream_prefix(index, client_id), seq),
        event,
    )?;
    if webhook {
        let entry = OutboxEntry {
            seq,
            client_id: client_id.to_owned(),
            webhook_id: event
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        };
        tx.write(&OUTBOX, &seq.to_be_bytes(), &entry)?;
    }
    Ok(seq)
}

/// What the events feature keeps in memory: a counter that moves on whenever events were
/// written, so SSE streams and the delivery worker wake without polling the store.
#[derive(Debug)]
pub(crate) struct EventState {
    signal: tokio::sync::watch::Sender<u64>,
}

impl EventState {
    pub(super) fn new() -> EventState {
        EventState {
            signal: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl OpenVault {
    /// A brand's events after `cursor` (0: from the start), oldest first, at most `limit`.
    pub fn events_after(
        &self,
        client_id: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Value)>, AppError> {
        let prefix = stream_prefix(&self.index, client_id);
        let start = stream_key(&prefix, cursor);
        let mut events = Vec::new();
        // Walked undecoded, so that the value just past the page (or another brand's stream)
        // is never decoded: only what is returned is.
        for item in self.store().iter_after(EVENTS.tree(), Some(&start)) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || events.len() >= limit.clamp(1, MAX_EVENTS_PAGE) {
                break;
            }
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&key[16..24]);
            let event = EVENTS.decode(&value)?;
            events.push((u64::from_be_bytes(seq), event));
        }
        Ok(events)
    }

    /// One event of a brand's stream, by number.
    pub fn event(&self, client_id: &str, seq: u64) -> Result<Option<Value>, AppError> {
        let key = stream_key(&stream_prefix(&self.index, client_id), seq);
        Ok(self.store().read(&EVENTS, &key)?)
    }

    /// Wakes everyone waiting for new events (SSE streams, the delivery worker). Also called
    /// when access was withdrawn (see [`OpenVault::change`]), so open streams check their token
    /// again at once and end.
    pub(crate) fn announce_events(&self) {
        self.events.signal.send_modify(|n| *n += 1);
    }

    /// Whether an event stream opened with `token` may go on, and until when: the token's
    /// expiry, or the expiry of the grant it carries if that comes first. Everything a brand
    /// call checks is checked (revocation, the brand, its agreement), and the grant a grant
    /// token carries must still be active.
    pub fn stream_access(&self, token: &str) -> Result<OffsetDateTime, AppError> {
        let access = self.verify_stream_token(token)?;
        let mut until = OffsetDateTime::from_unix_timestamp(access.claims.exp)
            .map_err(|_| AppError::InvalidToken(TokenRefusal::Expired))?;
        if let Some(grant_id) = access.claims.grant_id() {
            let grant = self.grant_for(&access.brand, grant_id)?;
            // A grant paused by new terms keeps its stream: the brand learns the news there.
            if !matches!(
                self.grant_status(&grant)?,
                GrantStatus::Active | GrantStatus::Suspended
            ) {
                return Err(AppError::InvalidToken(TokenRefusal::GrantEnded(
                    "it is no longer active".into(),
                )));
            }
            until = until.min(grant.expires_at);
        }
        Ok(until)
    }

    /// A receiver that changes whenever new events were written.
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.signal.subscribe()
    }
}
