//! The relay's layout in NATS JetStream, created or brought up to date idempotently at start-up
//! by every instance (two instances starting together both succeed), and the connection to it.
//!
//! | name | kind | holds |
//! | --- | --- | --- |
//! | `RELAY_INTENTS` | stream, `relay.intents.<intent_id>` | each accepted intent's record (the latest only), kept until a week after it expires (per-message TTL) |
//! | `RELAY_FEEDS` | stream, `relay.feed.<client_id>.<intent_id>` | each brand's events, read by polling and SSE (`relay.feed.<client_id>.erasure` for erasure requests, which outlive the intent) |
//! | `RELAY_DELIVERIES` | work-queue stream, `relay.deliveries.<client_id>.<intent_id>` | webhook deliveries still to make (`.erasure` as for feeds) |
//! | `RELAY_OFFERS` | stream, `relay.offers.<intent_id>` | offers waiting for the intent's vault |
//! | `RELAY_MESSAGES` | stream, `relay.messages.<intent_id>.<offer_id or close>` | the vaults' decisions and closings, one per subject |
//! | `relay_brands` | KV | admitted brands: name, JWKS, status |
//! | `relay_subscriptions` | KV | each brand's subscription |
//! | `relay_tokens` | KV, entries expire | SHA-256 of each live relay access token |
//! | `relay_assertions` | KV, entries expire | client assertion ids already used (RFC 7523 replay) |
//! | `relay_intent_jtis` | KV, entries expire | ids of the vaults' message tokens already used (replay) |
//! | `relay_limits` | KV, entries expire | the abuse limits' token buckets (`super::limits`) |
//!
//! Every subject that holds something of an intent ends in the intent's id, so an erasure
//! purges it from each stream by subject.
//!
//! Every stream and bucket has the configured number of replicas and file storage, so a write
//! the relay acknowledged is on disk on that many NATS nodes. Nothing is kept on the relay's own
//! disk.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::error::RelayError;

pub const INTENTS: &str = "RELAY_INTENTS";
pub const FEEDS: &str = "RELAY_FEEDS";
pub const DELIVERIES: &str = "RELAY_DELIVERIES";
pub const OFFERS: &str = "RELAY_OFFERS";
pub const MESSAGES: &str = "RELAY_MESSAGES";
pub const BRANDS: &str = "relay_brands";
pub const SUBSCRIPTIONS: &str = "relay_subscriptions";
pub const TOKENS: &str = "relay_tokens";
pub const ASSERTIONS: &str = "relay_assertions";
pub const INTENT_JTIS: &str = "relay_intent_jtis";
pub const LIMITS: &str = "relay_limits";

/// How long an answer from JetStream may take before the relay gives up (and answers 503).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the relay keeps an intent after it expires, so the vault can still send its
/// decisions, the expiry notice and an erasure request for it.
pub const INTENT_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// An intent lives at most 30 days (the domain's limit), plus the grace, plus a day of skew.
const INTENT_MAX_AGE: Duration = Duration::from_secs(38 * 24 * 3600);
/// How long the id of a vault's message token is remembered: longer than such a token may
/// live (five minutes) plus skew.
const INTENT_JTI_MEMORY: Duration = Duration::from_secs(7 * 60);
/// Brands' feeds keep 31 days of events, enough to poll every open intent.
const FEED_MAX_AGE: Duration = Duration::from_secs(31 * 24 * 3600);
/// How long a relay access token lives.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// How long a client assertion's id is remembered: longer than an assertion may live (65 min).
const ASSERTION_MEMORY: Duration = Duration::from_secs(70 * 60);
/// Largest message the relay writes (an intent with its terms document, an offer, a message).
pub const MAX_MESSAGE_BYTES: i32 = 256 * 1024;

/// The buckets every request may need, bound once the layout exists.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub brands: kv::Store,
    pub subscriptions: kv::Store,
    pub tokens: kv::Store,
    pub assertions: kv::Store,
    pub intent_jtis: kv::Store,
    pub limits: kv::Store,
}

/// Connects to the cluster. With `wait`, the client keeps trying in the background when no
/// server answers yet (the relay starts and reports not ready); without, it fails at once (the
/// `admit` command).
pub async fn connect(urls: &[String], wait: bool) -> Result<async_nats::Client, RelayError> {
    let urls: Vec<async_nats::ServerAddr> = urls
        .iter()
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| RelayError::invalid("invalid_nats_url", format!("--nats: {e}"), "nats"))?;
    let mut options = async_nats::ConnectOptions::new()
        .name("vrm-vault relay")
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(REQUEST_TIMEOUT));
    if wait {
        options = options.retry_on_initial_connect();
    }
    options
        .connect(urls)
        .await
        .map_err(|e| RelayError::unavailable("connecting to NATS", e))
}

/// The JetStream context every relay call goes through.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

fn stream_config(name: &str, subjects: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_message_size: MAX_MESSAGE_BYTES,
        // Publishers set `Nats-Msg-Id`; a retried publish within this window is stored once.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// The stream behind a KV bucket: what async-nats' `create_key_value` would make (one value
/// per key, roll-ups, no deletes of single messages, discard new), except that reads go to the
/// stream's leader (`allow_direct: false`). async-nats makes buckets with `allow_direct`, which
/// lets any replica answer a read, including a follower that has not yet applied the latest
/// write: with 3 replicas, a token issued through one instance was "unknown" to the next
/// request on the other. Relay reads are few and small; read-after-write across instances
/// matters more. Every instance writes this same configuration, so they never disagree.
fn kv_stream_config(bucket: &str, max_age: Duration, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(String::new()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        max_message_size: MAX_MESSAGE_BYTES,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: false,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// What [`ensure_layout`] does with a stream or bucket that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Bring it to this configuration, replica count included (`vrm-vault relay`: the serving
    /// instances' `--replicas` is the layout's). A change of replicas is logged.
    Update,
    /// Leave it as it is and only create what is missing (the operator's one-shot commands, so
    /// that `relay admit` without `--replicas` never scales a cluster's streams down).
    Keep,
}

/// Creates every stream and bucket, or (with [`Existing::Update`]) updates them to this
/// configuration; safe to run from any number of instances at once.
///
/// A replica count the cluster cannot hold is reported as [`RelayError::Misconfigured`] when it
/// never can (a server not in a cluster) and as unavailable when it may once more nodes are up
/// (JetStream's "insufficient resources": it cannot tell a node that is down from one that was
/// never there).
pub async fn ensure_layout(
    js: &jetstream::Context,
    replicas: usize,
    existing: Existing,
) -> Result<Buckets, RelayError> {
    let streams = [
        stream::Config {
            max_age: INTENT_MAX_AGE,
            allow_message_ttl: true,
            // Each change of an intent's record replaces it (compare-and-set by sequence).
            max_messages_per_subject: 1,
            ..stream_config(INTENTS, "relay.intents.*", replicas)
        },
        stream::Config {
            max_age: FEED_MAX_AGE,
            ..stream_config(FEEDS, "relay.feed.*.*", replicas)
        },
        stream::Config {
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: INTENT_MAX_AGE,
            ..stream_config(DELIVERIES, "relay.deliveries.*.*", replicas)
        },
        stream::Config {
            max_age: INTENT_MAX_AGE,
            ..stream_config(OFFERS, "relay.offers.*", replicas)
        },
        stream::Config {
            max_age: INTENT_MAX_AGE,
            ..stream_config(MESSAGES, "relay.messages.*.*", replicas)
        },
    ];
    for config in streams {
        let name = config.name.clone();
        let held = current_replicas(js, &name).await?;
        let result = match (existing, held) {
            (Existing::Keep, Some(_)) => continue,
            (Existing::Keep, None) => js.create_stream(config).await.map(|_| ()),
            (Existing::Update, held) => {
                if let Some(held) = held.filter(|held| *held != replicas) {
                    tracing::warn!(
                        stream = %name, from = held, to = replicas,
                        "changing the stream's replicas to --replicas"
                    );
                }
                js.create_or_update_stream(config).await.map(|_| ())
            }
        };
        result.map_err(|e| {
            placement_error(&e, replicas)
                .unwrap_or_else(|| RelayError::unavailable("creating the relay's streams", e))
        })?;
    }
    let bucket = |name: &'static str, max_age| async move {
        let config = kv_stream_config(name, max_age, replicas);
        let held = current_replicas(js, &config.name).await?;
        let made = match (existing, held) {
            (Existing::Keep, Some(_)) => Ok(()),
            (Existing::Keep, None) => js.create_stream(config).await.map(|_| ()),
            (Existing::Update, held) => {
                if let Some(held) = held.filter(|held| *held != replicas) {
                    tracing::warn!(
                        bucket = name,
                        from = held,
                        to = replicas,
                        "changing the bucket's replicas to --replicas"
                    );
                }
                js.create_or_update_stream(config).await.map(|_| ())
            }
        };
        made.map_err(|e| {
            placement_error(&e, replicas)
                .unwrap_or_else(|| RelayError::unavailable("creating the relay's buckets", e))
        })?;
        js.get_key_value(name)
            .await
            .map_err(|e| RelayError::unavailable("binding the relay's buckets", e))
    };
    Ok(Buckets {
        brands: bucket(BRANDS, Duration::ZERO).await?,
        subscriptions: bucket(SUBSCRIPTIONS, Duration::ZERO).await?,
        tokens: bucket(TOKENS, TOKEN_LIFETIME + Duration::from_secs(60)).await?,
        assertions: bucket(ASSERTIONS, ASSERTION_MEMORY).await?,
        intent_jtis: bucket(INTENT_JTIS, INTENT_JTI_MEMORY).await?,
        limits: bucket(LIMITS, super::limits::LIMIT_MEMORY).await?,
    })
}

/// The replicas of the stream `name` as JetStream holds it, or `None` if there is none.
async fn current_replicas(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<usize>, RelayError> {
    match js.get_stream(name).await {
        Ok(stream) => Ok(Some(stream.cached_info().config.num_replicas)),
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(error)
                if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            Ok(None)
        }
        Err(e) => Err(RelayError::unavailable("reading the relay's streams", e)),
    }
}

/// The operator's sentence for a stream JetStream would not place with `replicas` replicas.
fn placement_error(
    e: &jetstream::context::CreateStreamError,
    replicas: usize,
) -> Option<RelayError> {
    let jetstream::context::CreateStreamErrorKind::JetStream(error) = e.kind() else {
        return None;
    };
    match error.error_code() {
        jetstream::ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED => {
            Some(RelayError::Misconfigured(format!(
                "--replicas {replicas} needs a NATS cluster of at least {replicas} JetStream servers, \
             but the NATS server the relay reached is not in a cluster; start the relay with \
             --replicas 1 or run nats-server as a cluster"
            )))
        }
        jetstream::ErrorCode::INSUFFICIENT_RESOURCES | jetstream::ErrorCode::CLUSTER_NO_PEERS => {
            Some(RelayError::Unavailable {
                context: "JetStream cannot place every replica: the cluster has fewer JetStream \
                      servers up than --replicas (start the missing nodes, or lower --replicas)",
                source: Some(error.to_string().into()),
            })
        }
        _ => None,
    }
}
