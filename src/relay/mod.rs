//! The intent relay (DESIGN §11): a shared meeting place where vaults publish intents and
//! brands the person has never met answer them. `vrm-vault relay` runs it.
//!
//! A relay instance is a stateless HTTP front over a NATS JetStream cluster: every stream and
//! bucket it uses is in [`nats`], nothing is on its own disk, and any instance serves any
//! request. This module is the only one that imports the NATS client (`async-nats`); its HTTP
//! routes are in `http::relay`, since only `http` imports axum.
//!
//! - [`config`] — the `relay` and `relay admit` command lines.
//! - [`deliveries`] — signed webhook deliveries through one durable work-queue consumer shared
//!   by all instances.
//! - [`intents`] — brands' subscriptions (matched with the domain's index), vaults' intents
//!   and the brands' feeds.
//! - [`admit`] — `relay admit --batch`: many brands from one file of JSON lines.
//! - [`brands`] — admitted brands, their published keys, and relay access tokens obtained with
//!   a `private_key_jwt` client assertion, whose claim rules are [`assertion`]'s.
//! - [`offers`] — brands' offers with their signed acceptance of the person's terms, and the
//!   vault's read of them with the intent's key.
//! - [`metrics`] — what an instance counts, and its consumers' lag, for Prometheus.
//!   vault's read of them with the intent's key (a long poll).
//! - [`messages`] — the vault's messages to brands: decisions on offers (with the agreement
//!   receipt and the disclosed fields as a JWE), withdrawal, expiry and erasure.
//! - [`record`] — an intent's record (open or closed, whom it reached), its id derived from
//!   its key, and the vault's tokens signed with that key.
//! - [`limits`] — abuse limits shared by every instance: token buckets in a NATS KV bucket.
//! - [`live`] — a brand's feed as a live stream for Server-Sent Events, resumable by sequence.
//! - [`events`] — the CloudEvents the relay sends and how each reaches a brand's feed and
//!   webhook.
//! - [`nats`] — connecting, and the streams and buckets, created idempotently.
//! - [`error`] — [`RelayError`], mapped to the vault's JSON error shape by `http::relay`.
//!
//! Built so far: start-up, the layout, health and readiness; brand admission, the brands'
//! published keys and relay tokens; subscriptions, intents, polling and webhooks; offers and
//! the vault's read of them; the vault's messages to brands; Server-Sent Events.

pub mod admit;
pub mod assertion;
pub mod brands;
pub mod config;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod intents;
pub mod limits;
pub mod live;
pub mod messages;
pub mod metrics;
pub mod nats;
pub mod offers;
pub mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::OnceCell;

use crate::clock::Clock;
use crate::domain::intents::SubscriptionIndex;
pub use error::RelayError;
use nats::Buckets;

/// What an instance is told at start-up.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The relay's public URL without a trailing slash: the OAuth issuer, the `source` of its
    /// events, the audience of client assertions.
    pub public_url: String,
    /// Replicas of each stream and bucket.
    pub replicas: usize,
    /// Whether brands' webhooks may target loopback addresses (local testing only).
    pub allow_loopback_webhooks: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the per-address limit).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The abuse limits.
    pub limits: limits::Limits,
}

/// One relay instance's handle on the cluster; cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Set once the layout exists; until then every call that needs it answers 503.
    buckets: OnceCell<Buckets>,
    settings: RelaySettings,
    clock: Arc<dyn Clock>,
    /// Every brand's subscription, kept equal to the bucket by [`Relay::follow_subscriptions`].
    index: RwLock<SubscriptionIndex>,
    /// Whether the index holds every subscription the bucket held when watching began: until
    /// then the instance is not ready and takes no intent (it could miss a brand).
    index_current: AtomicBool,
    /// Set when the instance cannot serve with this configuration at all (see
    /// [`Relay::failed`]); the sentence for the operator.
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// What this instance counted since it started.
    counters: metrics::Counters,
}

impl Relay {
    /// Connects (retrying in the background while no NATS server answers) and starts making
    /// sure the layout exists; returns at once, so `/healthz` answers and `/readyz` says 503
    /// until NATS is there.
    pub async fn start(
        urls: &[String],
        settings: RelaySettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Relay, RelayError> {
        let client = nats::connect(urls, true).await?;
        let relay = Relay::from_client(client, settings, clock);
        let background = relay.clone();
        tokio::spawn(async move { background.ensure_layout_until_done().await });
        Ok(relay)
    }

    /// A relay on an established connection; the layout is made by [`Relay::ensure_layout`].
    pub fn from_client(
        client: async_nats::Client,
        settings: RelaySettings,
        clock: Arc<dyn Clock>,
    ) -> Relay {
        let js = nats::jetstream(client.clone());
        Relay {
            inner: Arc::new(Inner {
                client,
                js,
                buckets: OnceCell::new(),
                settings,
                clock,
                index: RwLock::new(SubscriptionIndex::new()),
                index_current: AtomicBool::new(false),
                fatal: tokio::sync::watch::Sender::new(None),
                counters: metrics::Counters::default(),
            }),
        }
    }

    /// Creates or binds every stream and bucket; `existing` says whether streams and buckets
    /// already there are brought to this instance's replica count.
    pub async fn ensure_layout(&self, existing: nats::Existing) -> Result<(), RelayError> {
        self.inner
            .buckets
            .get_or_try_init(|| {
                nats::ensure_layout(&self.inner.js, self.inner.settings.replicas, existing)
            })
            .await
            .map(|_| ())
    }

    /// Resolves, with the operator's sentence, if this instance found it can never serve with
    /// its configuration (`--replicas 3` against a NATS server that is not in a cluster);
    /// `vrm-vault relay` then stops with that message instead of retrying for ever.
    pub async fn failed(&self) -> String {
        let mut fatal = self.inner.fatal.subscribe();
        let message = fatal
            .wait_for(Option::is_some)
            .await
            .map(|message| message.clone().unwrap_or_default());
        match message {
            Ok(message) => message,
            // The sender lives as long as `self`: this cannot end; never resolve.
            Err(_) => std::future::pending().await,
        }
    }

    async fn ensure_layout_until_done(&self) {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.ensure_layout(nats::Existing::Update).await {
                Ok(()) => {
                    tracing::info!("relay streams and buckets ready");
                    let deliverer = self.clone();
                    tokio::spawn(async move { deliverer.deliver_webhooks().await });
                    self.follow_subscriptions().await;
                    return;
                }
                Err(RelayError::Misconfigured(message)) => {
                    tracing::error!(%message, "the relay cannot serve with this configuration");
                    self.inner.fatal.send_replace(Some(message));
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e.report(), "NATS JetStream not ready; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    pub fn settings(&self) -> &RelaySettings {
        &self.inner.settings
    }

    /// This instance's counters (`GET /metrics`).
    pub fn counters(&self) -> &metrics::Counters {
        &self.inner.counters
    }

    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The buckets, or 503 while the layout does not exist yet.
    pub(crate) fn buckets(&self) -> Result<&Buckets, RelayError> {
        self.inner.buckets.get().ok_or(RelayError::Unavailable {
            context: "the relay's streams and buckets are not ready yet",
            source: None,
        })
    }

    pub(crate) fn set_index_current(&self, current: bool) {
        self.inner.index_current.store(current, Ordering::SeqCst);
    }

    /// 503 until this instance's subscription index has caught up with the bucket.
    pub(crate) fn index_ready(&self) -> Result<(), RelayError> {
        if self.inner.index_current.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(RelayError::Unavailable {
                context: "the subscription index is still loading",
                source: None,
            })
        }
    }

    /// Ready when the layout exists, the subscription index has caught up, and JetStream answers now (a round trip, so a lost NATS
    /// connection shows at once rather than when the client notices).
    pub async fn ready(&self) -> Result<(), RelayError> {
        self.buckets()?;
        self.index_ready()?;
        if self.inner.client.connection_state() != async_nats::connection::State::Connected {
            return Err(RelayError::Unavailable {
                context: "not connected to NATS",
                source: None,
            });
        }
        match tokio::time::timeout(nats::REQUEST_TIMEOUT, self.inner.js.query_account()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RelayError::unavailable("asking JetStream for its state", e)),
            Err(_) => Err(RelayError::Unavailable {
                context: "JetStream did not answer in time",
                source: None,
            }),
        }
    }

    /// Sends what is buffered and closes the connection.
    pub async fn close(&self) {
        if let Err(e) = self.inner.client.flush().await {
            tracing::warn!(error = %e, "flushing the NATS connection at shutdown failed");
        }
    }
}
