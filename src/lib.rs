//! vrm-vault: a personal data vault for Vendor Relationship Management.
//!
//! One person runs it; it keeps their data encrypted at rest, answers their browser, and is the
//! OAuth 2.0 authorization server and resource server for the brands they deal with: brands
//! register with an invitation, accept the person's own terms, and get short-lived tokens. The
//! crate is a library plus a thin binary (`src/main.rs`) that parses the command line and calls
//! [`http::serve_with`].
//!
//! # Layout
//!
//! Each outside dependency is owned by one module, and the boundaries are invariants:
//!
//! - [`crypto`] — the only module that imports `ring` or handles key bytes: AES-256-GCM sealing in
//!   the frozen `[version][nonce][ciphertext+tag]` layout, the 256 random bucket keys every stored
//!   value is sealed under ([`crypto::buckets`]: rotating one makes what sled keeps of a deleted
//!   item unreadable), HKDF purpose keys, HMAC for opaque
//!   store keys and pairwise pseudonyms, the key file ([`crypto::keyfile`]) where the master key
//!   lives, wrapped by an Argon2id passphrase key, by the recovery key and optionally by an
//!   unlock key, and JWTs ([`crypto::jwt`]: the ES256 signing key, pinned-algorithm
//!   verification, brands' client assertions) on `jsonwebtoken` 9.3, its last ring-based release.
//! - [`store`] — the only module that imports `sled`. Every value is sealed on the way in with
//!   associated data naming its tree and key. All writes of a running server go through one
//!   [`store::Writer`] thread, which runs queued changes in order, applies each group as one atomic
//!   batch, flushes once, and only then answers the callers. It also reseals a bucket's values
//!   during a key rotation, and reads and writes raw sealed entries for backups.
//! - [`domain`] — pure types and rules: record paths and categories, preconditions, the audit
//!   chain and its verification, login back-off, the terms of service (ODRL templates from
//!   `policies/`, validation that personal rules only narrow their IEEE 7012 basis, the
//!   evaluation of a request against them, a plain-language summary), and brands (RFC 7591
//!   client metadata, invitations, the agreement event chain and receipt document), and data
//!   grants (RFC 9396 authorization details, status, coverage, masking), intents (taxonomy,
//!   geohash geometry, the subscription index) and offers. No I/O, no clock, no cryptography.
//! - [`service`] — the use cases. [`service::Vault`] moves between setup, sealed, unsealed and
//!   erasing (while everything is being deleted);
//!   every change to an open vault goes through [`service::OpenVault::change`], which commits it
//!   with its audit entry and returns once both are durable. Terms versions, invitations, brands,
//!   agreements with their signed RFC 8785 receipts, signing keys, access tokens, data grants and
//!   the authorization-code flow live here; a brand's data read is checked, counted and audited
//!   in one writer job. Records, brands and agreement heads are read through in-memory caches of
//!   opened values that every write retires once applied (`service::cache`). Intents, subscriptions and offers too: an intent's CloudEvents go to each
//!   recipient's stream and the webhook outbox in the intent's own write, and a delivery worker
//!   sends them, signed per Standard Webhooks, through [`webhooks`]. The person's own data
//!   operations too: the streamed JSON export ([`service::export`]), encrypted backups and
//!   restore ([`service::backup`]), and deleting for real ([`service::erase`]: one intent, a
//!   brand's relationship, or everything — revoke, tell brands, sign a receipt, destroy the keys
//!   — with the bucket-key rotations of [`service::shred`]).
//! - [`http`] — the only module that imports `axum`: one router listing every route (also the
//!   OpenAPI document), extractors for authorization ([`http::auth::OwnerSession`],
//!   [`http::brand_api::BrandToken`]) and for JSON that fails in the common error shape, the
//!   OAuth endpoints ([`http::oauth`], errors in the RFC 6749 shape), security headers, the
//!   sealed-state gate, and the embedded browser app ([`http::assets`]).
//!   [`http::serve::serve_with_limits`] owns the connections: a cap on open connections, a 10 s
//!   header-read timeout that also closes idle keep-alive connections, limits on header count
//!   and size, a write timeout for clients that stop reading, and a graceful shutdown that ends
//!   event streams and drains for up to 10 s. [`http::auth::ClientIp`] reads `X-Forwarded-For` only from configured trusted
//!   proxies. [`http::metrics`] keeps Prometheus counters, served on a separate listener.
//! - [`webhooks`] — the only module that makes outbound HTTP requests (reqwest on rustls/ring).
//! - [`error`] — [`error::AppError`], with a stable code and status per variant, and
//!   [`error::OAuthError`] for the OAuth endpoints.
//! - [`config`], [`clock`], [`secret`] — the typed command line (flags, `VRM_*` environment and
//!   an optional TOML file, in that order of precedence), time as a parameter (wrapped by the
//!   service in [`clock::NeverBackwards`], so a clock set back cannot revive expired grants),
//!   and a redacting string for passphrases.
//!
//! # A request's path
//!
//! `PUT /api/v1/records/contact.email` → the connection loop's limits → security headers, request
//! id and (when on) metrics → the sealed gate (503
//! while sealed) → [`http::auth::OwnerSession`] (bearer token, or cookie plus CSRF token) → the
//! handler parses the path and `If-Match` → [`service::OpenVault::put_record`] queues a change on
//! the writer thread, which checks the precondition and stages the sealed record and its sealed
//! audit entry → the writer applies its group as one batch and flushes → `201` with the `ETag`.

pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod secret;
pub mod service;
pub mod store;
pub mod webhooks;
