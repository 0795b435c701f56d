//! vrm-vault: a personal data vault for Vendor Relationship Management.
//!
//! One person runs it; it keeps their data encrypted at rest and answers their browser and, in
//! later versions, the brands they deal with. The crate is a library plus a thin binary
//! (`src/main.rs`) that parses the command line and calls [`http::serve`].
//!
//! # Layout
//!
//! Each outside dependency is owned by one module, and the boundaries are invariants:
//!
//! - [`crypto`] — the only module that imports `ring` or handles key bytes: AES-256-GCM sealing in
//!   the frozen `[version][nonce][ciphertext+tag]` layout, HKDF purpose keys, HMAC for opaque
//!   store keys, and the key file ([`crypto::keyfile`]) where the master key lives, wrapped by an
//!   Argon2id passphrase key, by the recovery key and optionally by an unlock key.
//! - [`store`] — the only module that imports `sled`. Every value is sealed on the way in with
//!   associated data naming its tree and key. All writes of a running server go through one
//!   [`store::Writer`] thread, which runs queued changes in order, applies each group as one atomic
//!   batch, flushes once, and only then answers the callers.
//! - [`domain`] — pure types and rules: record paths and categories, preconditions, the audit
//!   chain and its verification, login back-off, and the terms of service (ODRL templates from
//!   `policies/`, validation that personal rules only narrow their IEEE 7012 basis, and the
//!   evaluation of a request against them). No I/O, no clock, no cryptography.
//! - [`service`] — the use cases. [`service::Vault`] moves between setup, sealed and unsealed;
//!   every change to an open vault goes through [`service::OpenVault::change`], which commits it
//!   with its audit entry and returns once both are durable.
//! - [`http`] — the only module that imports `axum`: one router listing every route (also the
//!   OpenAPI document), extractors for authorization ([`http::auth::OwnerSession`]) and for JSON
//!   that fails in the common error shape, security headers, the sealed-state gate, and the
//!   embedded browser app ([`http::assets`]).
//! - [`error`] — the one [`error::AppError`], with a stable code and status per variant.
//! - [`config`], [`clock`], [`secret`] — the typed command line, time as a parameter, and a
//!   redacting string for passphrases.
//!
//! # A request's path
//!
//! `PUT /api/v1/records/contact.email` → security headers and request id → the sealed gate (503
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
