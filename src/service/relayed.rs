//! Intents through the intent relays (DESIGN §11), the vault's side: publishing, the durable
//! outbox of publications and messages, and the views the app shows.
//!
//! An intent marked `"relay": true` gets a fresh P-256 key, made for it alone and kept (sealed,
//! like every value) in the intent's own record, so erasing the intent erases the key. What
//! each relay receives is decided by `domain::relayed::relay_view` (no disclosed field, a
//! location no finer than geohash precision 5) plus the person's current terms, their hash and
//! the intent's public key; it is built once, stored, and sent as it is on every try, so a
//! retried publication is the same request (the relay answers a repeat with the same id).
//!
//! The outbox is the intent record itself: each relay's entry says whether it is published,
//! and which messages still wait for it. One background task sleeps until the earliest entry
//! is due (a set of deadlines built at unseal, as `service::deadlines` describes), sends, and
//! records the outcome with its audit entry; a relay that is down gets tries further and
//! further apart (`domain::relayed::backoff`) until the intent ends. So a POST never fails
//! because a relay is down, and a restart loses nothing: the next unseal finds what waits.
//!
//! Offers coming back, and the messages of the person's decisions, are `relayed_offers`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::OpenVault;
use super::deadlines::Deadlines;
use super::intents::{INTENTS, IntentRecord};
use crate::crypto::jwt::{SigningKey, StoredSigningKey};
use crate::domain::audit::Event;
use crate::domain::intents::ValidIntent;
use crate::domain::relayed::{
    RelayTarget, RelayView, RelayedIntent, TargetStatus, backoff, relay_view,
};
use crate::error::AppError;
use crate::relay_link::{LinkError, RelayClient, RelayUrl};
use crate::store::Store;

/// How long the intent's tokens to a relay live (the relay takes at most five minutes).
const TOKEN_SECONDS: i64 = 120;
/// The longest the outbox task sleeps without looking again.
const MAX_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// What the relay feature keeps in memory.
#[derive(Debug)]
pub(crate) struct RelayState {
    /// The configured relays, in order.
    pub(super) relays: Vec<RelayUrl>,
    pub(super) client: Option<RelayClient>,
    /// Intents with something to send, by when it is due.
    pub(super) due: Deadlines<String>,
    /// Wakes the outbox task when something new is due.
    pub(super) wake: tokio::sync::Notify,
    /// (intent id, relay URL) pairs whose offers are being read now.
    pub(super) pollers: Mutex<HashSet<(String, String)>>,
    /// Brands' published records (`{client_id, name, jwks}`) by relay and client id.
    pub(super) brands: Mutex<HashMap<(String, String), Value>>,
}

impl RelayState {
    /// Reads the intents once (at unseal) for relay work still to do.
    pub(super) fn load(relays: &[RelayUrl], store: &Store) -> RelayState {
        let mut due = Vec::new();
        for (_, record) in store.read_all(&INTENTS).flatten() {
            if let Some(at) = record.relay.as_ref().and_then(RelayedIntent::next_due) {
                due.push((at, record.intent.id));
            }
        }
        let client = match RelayClient::new() {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!(error = %e, "the relay client could not start");
                None
            }
        };
        RelayState {
            relays: relays.to_vec(),
            client,
            due: Deadlines::new(due),
            wake: tokio::sync::Notify::new(),
            pollers: Mutex::default(),
            brands: Mutex::default(),
        }
    }
}

/// What `POST /api/v1/intents/relay-preview` answers: exactly what a relay would receive, less
/// the key (a fresh one is made when the intent is sent), and what changed on the way.
#[derive(Debug, Clone)]
pub struct RelayPreview {
    pub intent: Value,
    pub changes: Vec<String>,
}

/// The claims of the intent's token to a relay.
fn intent_token(
    key: &SigningKey,
    remote_id: &str,
    audience: &str,
    now: OffsetDateTime,
) -> Result<String, AppError> {
    let jti = crate::crypto::random_array::<16>()
        .map_err(|e| AppError::internal("drawing random bytes", e))?;
    key.sign_jwt(
        "JWT",
        &json!({
            "sub": remote_id,
            "aud": audience,
            "iat": now.unix_timestamp(),
            "exp": now.unix_timestamp() + TOKEN_SECONDS,
            "jti": data_encoding::BASE64URL_NOPAD.encode(&jti),
        }),
    )
    .map_err(|e| AppError::internal("signing a relay token", e))
}

/// What a failed call tells the person, in words (no code, no URL path).
pub(super) fn failure_words(error: &LinkError) -> String {
    match error {
        LinkError::Unavailable { reason, .. } => format!("the relay is unreachable ({reason})"),
        LinkError::Refused { message, .. } if !message.is_empty() => {
            format!("the relay refused it: {message}")
        }
        LinkError::Refused { status, .. } => format!("the relay refused it (HTTP {status})"),
        LinkError::BadAnswer(why) => format!("the relay's answer could not be read ({why})"),
    }
}

impl OpenVault {
    /// The relays this vault publishes to (`serve --relay`).
    pub fn relays(&self) -> &[RelayUrl] {
        &self.relayed.relays
    }

    fn relay_refusals(&self, intent: &ValidIntent) -> Result<(), AppError> {
        if self.relayed.relays.is_empty() {
            return Err(AppError::invalid_at(
                "relay_not_configured",
                "relay",
                "this vault has no intent relay: start it with --relay URL to send intents to \
                 brands you have not met",
            ));
        }
        if !intent.disclose.is_empty() {
            return Err(AppError::invalid_at(
                "invalid_intent",
                "disclose",
                "an intent sent through a relay never carries your data: remove the fields to \
                 disclose (you can share them when you accept an offer)",
            ));
        }
        Ok(())
    }

    /// What the relays would receive of `intent` (the key aside), with the terms in force.
    fn relay_body(&self, intent: &ValidIntent) -> Result<(Value, RelayView), AppError> {
        let view = relay_view(intent);
        let terms = self.current_terms()?;
        let document = terms.version.document.clone();
        let hash = super::canonical_hash(&document)?;
        let mut body = view.fields.clone();
        if let Some(map) = body.as_object_mut() {
            map.insert("terms".into(), document);
            map.insert("terms_hash".into(), json!(hash));
        }
        Ok((body, view))
    }

    /// Exactly what a relay would receive of this intent, less the key, and what was
    /// coarsened or left out.
    pub fn relay_preview(&self, intent: &ValidIntent) -> Result<RelayPreview, AppError> {
        self.relay_refusals(intent)?;
        let (body, view) = self.relay_body(intent)?;
        Ok(RelayPreview {
            intent: body,
            changes: view.changes,
        })
    }

    /// Creates an intent that also goes to every configured relay, under a key of its own.
    /// The relays are reached in the background: one that is down fails nothing here.
    pub async fn create_relayed_intent(
        &self,
        intent: ValidIntent,
    ) -> Result<IntentRecord, AppError> {
        self.relay_refusals(&intent)?;
        let (mut body, _) = self.relay_body(&intent)?;
        let key = SigningKey::generate().map_err(|e| AppError::internal("making a key", e))?;
        let mut jwk = serde_json::to_value(key.public_jwk())
            .map_err(|e| AppError::internal("encoding a key", e))?;
        // The key's thumbprint stays as its kid (it says nothing but the key itself).
        if let Some(map) = jwk.as_object_mut() {
            map.remove("use");
        }
        body["jwk"] = jwk;
        let now = self.now();
        let relayed = RelayedIntent {
            body,
            targets: self
                .relayed
                .relays
                .iter()
                .map(|url| RelayTarget::new(url.to_string(), now))
                .collect(),
            ended: false,
            end_message: None,
        };
        let record = self
            .create_intent_with(intent, Some((relayed, key.stored())))
            .await?;
        self.relay_due(&record.intent.id, now);
        Ok(record)
    }

    /// Something is due for `intent_id` at `at`: the outbox task looks then.
    pub(super) fn relay_due(&self, intent_id: &str, at: OffsetDateTime) {
        self.relayed.due.insert(at, intent_id.to_owned());
        self.relayed.wake.notify_one();
    }

    /// Starts the outbox task, and the offer readers of the open intents already published;
    /// both stop when the vault is closed.
    pub(crate) fn start_relay_link(self: &Arc<Self>) {
        let Some(client) = self.relayed.client.clone() else {
            return;
        };
        if let Ok(intents) = self.list_intents() {
            let now = self.now();
            for record in intents {
                self.resume_relayed(&record, now);
            }
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(vault) = Weak::upgrade(&weak) else {
                    return;
                };
                if vault.alarm.0.stopped() {
                    return;
                }
                let now = vault.clock.now();
                for (_, id) in vault.relayed.due.take_due(now) {
                    vault.relay_work(&client, &id).await;
                }
                let now = vault.clock.now();
                let wait = vault
                    .relayed
                    .due
                    .first_after(now)
                    .map(|at| std::time::Duration::try_from(at - now).unwrap_or_default())
                    .unwrap_or(MAX_IDLE)
                    .min(MAX_IDLE);
                let wake = Arc::clone(&vault);
                drop(vault);
                tokio::select! {
                    _ = wake.relayed.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                drop(wake);
            }
        });
    }

    /// At unseal: an intent that ended while its end was not yet queued for the relays (a
    /// crash in between) gets it queued now; published open ones have their offers read.
    fn resume_relayed(self: &Arc<Self>, record: &IntentRecord, now: OffsetDateTime) {
        let Some(relayed) = &record.relay else {
            return;
        };
        if !record.intent.is_open(now) && !relayed.ended {
            let vault = Arc::clone(self);
            let id = record.intent.id.clone();
            let kind = if record.intent.withdrawn_at.is_some() {
                "withdrawn"
            } else {
                "expired"
            };
            tokio::spawn(async move { vault.relay_intent_ended(&id, kind).await });
            return;
        }
        if record.intent.is_open(now) {
            for target in &relayed.targets {
                if target.status == TargetStatus::Published {
                    self.start_polling(&record.intent.id, &target.url);
                }
            }
        }
    }

    /// Updates one relay's entry of an intent in the writer, with the audit entry `event`
    /// makes of the entry as updated (none: no entry); reschedules the intent.
    pub(super) async fn update_target(
        &self,
        intent_id: &str,
        url: &str,
        update: impl FnOnce(&mut RelayTarget, &mut RelayedIntent) + Send + 'static,
        event: Option<Event>,
    ) -> Result<Option<RelayedIntent>, AppError> {
        let key = self.intent_key(intent_id);
        let url = url.to_owned();
        let apply = move |tx: &mut crate::store::Tx<'_>| {
            let Some(mut record) = tx.read(&INTENTS, &key)? else {
                return Ok(None);
            };
            let Some(relayed) = record.relay.as_mut() else {
                return Ok(None);
            };
            let Some(index) = relayed.targets.iter().position(|t| t.url == url) else {
                return Ok(None);
            };
            let mut target = relayed.targets[index].clone();
            update(&mut target, relayed);
            relayed.targets[index] = target;
            let kept = relayed.clone();
            tx.write(&INTENTS, &key, &record)?;
            Ok(Some(kept))
        };
        let updated = match event {
            Some(event) => self.change(move |tx| Ok((apply(tx)?, event))).await?,
            None => self.write(apply).await?,
        };
        if let Some(at) = updated.as_ref().and_then(RelayedIntent::next_due) {
            self.relay_due(intent_id, at);
        }
        Ok(updated)
    }

    /// Does what is due for one intent at each of its relays.
    async fn relay_work(self: &Arc<Self>, client: &RelayClient, intent_id: &str) {
        let record = match self.intent(intent_id) {
            Ok(record) => record,
            Err(AppError::NotFound(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading an intent for its relays");
                self.relay_due(intent_id, self.now() + time::Duration::seconds(5));
                return;
            }
        };
        let (Some(relayed), Some(key)) = (&record.relay, &record.relay_key) else {
            return;
        };
        let now = self.now();
        for target in &relayed.targets {
            if !target.has_work() || target.next_attempt_at.is_some_and(|at| at > now) {
                continue;
            }
            let result = match target.status {
                TargetStatus::Pending => {
                    self.publish_to(client, &record, relayed, target, now).await
                }
                TargetStatus::Published => self.send_first(client, &record, key, target).await,
                TargetStatus::Failed => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "recording a relay outcome");
                self.relay_due(intent_id, now + time::Duration::seconds(5));
            }
        }
        // Something may be left due (a message after the one just sent).
        if let Ok(record) = self.intent(intent_id)
            && let Some(at) = record.relay.as_ref().and_then(RelayedIntent::next_due)
        {
            self.relay_due(intent_id, at);
        }
    }

    async fn publish_to(
        self: &Arc<Self>,
        client: &RelayClient,
        record: &IntentRecord,
        relayed: &RelayedIntent,
        target: &RelayTarget,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        let id = record.intent.id.clone();
        if !record.intent.is_open(now) {
            let why = "the intent ended before the relay could be reached".to_owned();
            self.update_target(
                &id,
                &target.url,
                move |t, _| {
                    t.status = TargetStatus::Failed;
                    t.next_attempt_at = None;
                    t.error = Some(why);
                },
                None,
            )
            .await?;
            return Ok(());
        }
        let url = RelayUrl::parse(&target.url)
            .map_err(|_| AppError::broken("a stored relay URL does not parse"))?;
        match client.publish(&url, &relayed.body).await {
            Ok(remote_id) => {
                let attempts = target.failures + 1;
                let event = Event::system("relay.published").with_detail(json!({
                    "intent": id, "relay": target.url, "attempts": attempts,
                }));
                let remote = remote_id.clone();
                self.update_target(
                    &id,
                    &target.url,
                    move |t, r| {
                        t.status = TargetStatus::Published;
                        t.remote_id = Some(remote);
                        t.error = None;
                        t.failures = 0;
                        // An end queued while the publication was on its way goes after it.
                        if let Some(end) = r.end_message.clone() {
                            t.outbox.push(crate::domain::relayed::PendingMessage {
                                body: end,
                                failures: 0,
                            });
                        }
                        t.next_attempt_at = (!t.outbox.is_empty()).then_some(now);
                    },
                    Some(event),
                )
                .await?;
                if !relayed.ended {
                    self.start_polling(&id, &target.url);
                }
            }
            Err(e) => {
                let words = failure_words(&e);
                let failures = target.failures + 1;
                let retry = e.is_retryable();
                let next = now + backoff(failures, e.retry_after());
                // The first failure and a final one are on the record; the tries in between
                // are counted on the intent.
                let event = (failures == 1 || !retry).then(|| {
                    Event::system("relay.publish_failed").with_detail(json!({
                        "intent": id, "relay": target.url, "error": words,
                        "retrying": retry,
                    }))
                });
                self.update_target(
                    &id,
                    &target.url,
                    move |t, _| {
                        t.failures = failures;
                        t.error = Some(words);
                        if retry {
                            t.next_attempt_at = Some(next);
                        } else {
                            t.status = TargetStatus::Failed;
                            t.next_attempt_at = None;
                        }
                    },
                    event,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Sends the first message waiting for one relay.
    async fn send_first(
        &self,
        client: &RelayClient,
        record: &IntentRecord,
        key: &StoredSigningKey,
        target: &RelayTarget,
    ) -> Result<(), AppError> {
        let (Some(message), Some(remote_id)) = (target.outbox.first(), &target.remote_id) else {
            return Ok(());
        };
        let id = record.intent.id.clone();
        let url = RelayUrl::parse(&target.url)
            .map_err(|_| AppError::broken("a stored relay URL does not parse"))?;
        let key = key
            .open()
            .map_err(|e| AppError::internal("opening the intent's key", e))?;
        let now = self.now();
        let token = intent_token(&key, remote_id, &url.messages_url(remote_id), now)?;
        let kind = message.body["type"].as_str().unwrap_or_default().to_owned();
        let sent_body = message.body.clone();
        match client.message(&url, remote_id, &token, &message.body).await {
            Ok(_) => {
                let event = Event::system("relay.message_sent").with_detail(json!({
                    "intent": id, "relay": target.url, "type": kind,
                    "offer": sent_body.get("offer_id"),
                }));
                self.update_target(
                    &id,
                    &target.url,
                    move |t, _| {
                        if t.outbox.first().is_some_and(|m| m.body == sent_body) {
                            t.outbox.remove(0);
                        }
                        t.failures = 0;
                        t.error = None;
                        t.next_attempt_at = (!t.outbox.is_empty()).then_some(now);
                    },
                    Some(event),
                )
                .await?;
            }
            Err(e) => {
                let words = failure_words(&e);
                let retry = e.is_retryable() && !e.is_not_found();
                let failures = target.failures + 1;
                let next = now + backoff(failures, e.retry_after());
                let event = (failures == 1 || !retry).then(|| {
                    Event::system("relay.message_failed").with_detail(json!({
                        "intent": id, "relay": target.url, "type": kind, "error": words,
                        "retrying": retry,
                    }))
                });
                self.update_target(
                    &id,
                    &target.url,
                    move |t, _| {
                        t.error = Some(words);
                        if retry {
                            t.failures = failures;
                            t.next_attempt_at = Some(next);
                        } else {
                            // Refused: this message will never go; the next one may.
                            if t.outbox.first().is_some_and(|m| m.body == sent_body) {
                                t.outbox.remove(0);
                            }
                            t.failures = 0;
                            t.next_attempt_at = (!t.outbox.is_empty()).then_some(now);
                        }
                    },
                    event,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// A token by the intent's key for `audience` at the relay that knows the intent as
    /// `remote_id`.
    pub(super) fn relay_token(
        &self,
        record: &IntentRecord,
        remote_id: &str,
        audience: &str,
    ) -> Result<String, AppError> {
        let key = record
            .relay_key
            .as_ref()
            .ok_or(AppError::NotFound("intent key"))?
            .open()
            .map_err(|e| AppError::internal("opening the intent's key", e))?;
        intent_token(&key, remote_id, audience, self.now())
    }

    /// Queues `message` in the writer, with its audit entry: for the relay at `to`, or, with
    /// none, as the intent's end for all its relays. Returns the intent's relays as updated.
    pub(super) async fn queue_relay_message(
        &self,
        intent_id: &str,
        message: Value,
        to: Option<String>,
        event: Event,
    ) -> Result<Option<RelayedIntent>, AppError> {
        let key = self.intent_key(intent_id);
        let now = self.now();
        let updated = self
            .change(move |tx| {
                let Some(mut record) = tx.read(&INTENTS, &key)? else {
                    return Ok((None, event));
                };
                let Some(relayed) = record.relay.as_mut() else {
                    return Ok((None, event));
                };
                if relayed.ended {
                    return Ok((None, event));
                }
                match &to {
                    Some(url) => {
                        relayed.queue_to(url, &message, now);
                    }
                    None => relayed.queue_end(
                        &message,
                        now,
                        "the intent ended before the relay could be reached",
                    ),
                }
                let kept = relayed.clone();
                tx.write(&INTENTS, &key, &record)?;
                Ok((Some(kept), event))
            })
            .await?;
        if let Some(at) = updated.as_ref().and_then(RelayedIntent::next_due) {
            self.relay_due(intent_id, at);
        }
        Ok(updated)
    }

    /// The intent ended (`withdrawn` or `expired`): its relays are told. Failures are logged:
    /// the end is found again at the next unseal.
    pub(crate) async fn relay_intent_ended(&self, intent_id: &str, kind: &str) {
        let Ok(record) = self.intent(intent_id) else {
            return;
        };
        if record.relay.as_ref().is_none_or(|r| r.ended) {
            return;
        }
        let event = Event::system("relay.intent_ended")
            .with_detail(json!({"intent": intent_id, "type": kind}));
        if let Err(e) = self
            .queue_relay_message(intent_id, json!({"type": kind}), None, event)
            .await
        {
            tracing::warn!(error = %e, "queueing an intent's end for its relays");
        }
    }

    /// Before everything is deleted: each relayed intent not yet ended has its relays sent
    /// `erasure` at once, all together, within `deadline` (the data, and the outbox with it,
    /// are gone right after). Returns how many relays were told and how many could not be.
    pub(super) async fn tell_relays_erasure(
        &self,
        deadline: std::time::Duration,
    ) -> (usize, usize) {
        let Some(client) = self.relayed.client.clone() else {
            return (0, 0);
        };
        let mut sends = Vec::new();
        for record in self.list_intents().unwrap_or_default() {
            let Some(relayed) = &record.relay else {
                continue;
            };
            if relayed.ended {
                continue;
            }
            for target in &relayed.targets {
                let (Some(remote_id), TargetStatus::Published) = (&target.remote_id, target.status)
                else {
                    continue;
                };
                let Ok(url) = RelayUrl::parse(&target.url) else {
                    continue;
                };
                let Ok(token) = self.relay_token(&record, remote_id, &url.messages_url(remote_id))
                else {
                    continue;
                };
                let client = client.clone();
                let remote_id = remote_id.clone();
                sends.push(async move {
                    client
                        .message(&url, &remote_id, &token, &json!({"type": "erasure"}))
                        .await
                        .is_ok()
                });
            }
        }
        let total = sends.len();
        let told = tokio::time::timeout(deadline, futures_util::future::join_all(sends))
            .await
            .map(|results| results.into_iter().filter(|ok| *ok).count())
            .unwrap_or(0);
        if total > 0 {
            tracing::info!(told, total, "relays told of the erasure");
        }
        (told, total - told)
    }
}
