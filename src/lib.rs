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
//! Each outside dependency is owned by one module, and the boundaries are invariants: only
//! `crypto` imports ring and holds key bytes, only `store` imports sled, only `http` imports axum,
//! only `relay` imports the NATS client, only `webhooks` and `relay_link` make outbound
//! requests, and `domain` does no I/O, reads no clock and does no cryptography. One entry per
//! module; each module's own docs hold the detail.
//!
//! - [`crypto`] — AES-256-GCM sealing, the shreddable bucket keys, HKDF and HMAC, the
//!   Argon2id-wrapped key file, JWTs (ES256 signing key kept as
//!   [`crypto::jwt::StoredSigningKey`], pinned-algorithm verification, client assertions), DPoP
//!   proofs and their RFC 7638 thumbprints ([`crypto::dpop`]), device cookies for the login
//!   back-off ([`crypto::device`], their key in a file of its own, usable while sealed),
//!   per-brand aliases of the vault's ids ([`crypto::alias`]), the relay's brand key sets, and
//!   the relay's JOSE ([`crypto::relay_jose`]: offer digests, acceptance checks, and the
//!   ECDH-ES/A256GCM JWE of disclosed fields, composed on ring).
//! - [`store`] — sealed values in sled, one writer thread that commits groups atomically and
//!   flushes before answering, transactions, raw sealed entries for backups,
//!   [`store::Table`], a tree with its value type, and per-tree disk use.
//! - [`domain`] — pure rules: records and data categories, the audit chain with its retention
//!   and signed checkpoint ([`domain::retention`]), back-off (reserved before each passphrase
//!   check; per device for known devices, [`domain::login`]), token buckets
//!   ([`domain::rate`]), consent-request budgets ([`domain::consent_budget`]), summaries of
//!   refused brand requests ([`domain::refusals`]), terms of service (with terms built by
//!   choosing from a template, [`domain::terms::guided`]), brands and agreements, data grants
//!   with [`domain::grants::decide_use`] (the property-tested decision whether a brand may use
//!   a grant now) and per-field sharing verdicts, intents and their subscription index,
//!   offers, what a relay may see of an intent ([`domain::relayed`]), the person's assistants'
//!   scopes and registration rules ([`domain::agents`]) and their proposals
//!   ([`domain::proposals`]), the Activity screen's plain sentences, and webhook delivery health
//!   ([`domain::delivery`]).
//! - [`service`] — the use cases: the vault's phases ([`service::Vault`]: setup, sealed,
//!   unsealed, locking from the app, erasing), the open vault's small core
//!   ([`service::OpenVault`]: store, writer, clock, caches, and [`service::OpenVault::change`],
//!   which commits a change with its audit entry) plus one file and one state struct per
//!   feature, the typed tables of the store, and deadline-driven background work (webhook
//!   deliveries, intent expiry, expired token ids and the audit retention sleep until their next
//!   deadline; nothing polls). What new terms do to brands that agreed to older ones is
//!   `service::terms_change`; every identifier a brand receives is its own
//!   (`service::aliases`, applied where brand events are written); a restored vault holds every
//!   brand until the person resumes it (`service::restored`); intents sent through relays,
//!   with their durable publish outbox, verified offers and messages to relayed brands
//!   (`service::relayed`, `service::relayed_offers`); the person's own assistants, MCP clients
//!   ([`service::agents`]: registration without an invitation, the person's approval, tokens
//!   for `/mcp`), what their tools do (`service::agent_tools`) and the proposals the person
//!   confirms (`service::proposals`).
//! - [`http`] — one router listing every route (also the OpenAPI document, completed with the
//!   event catalogue in its `webhooks` section by `http::catalogue`), extractors for
//!   authorization ([`http::auth::OwnerSession`], [`http::brand_api::BrandToken`] with DPoP,
//!   [`http::agents::AgentCaller`] for `/mcp` with the RFC 9728 challenge),
//!   for repeated parameters ([`http::extract::RecordPathParam`], [`http::extract::Unsealed`])
//!   and for JSON that fails in the common error shape, the status of each error
//!   ([`http::error::status_of`]), the OAuth endpoints (with PAR, RFC 9207 `iss` and DPoP), what
//!   brand routes answer while the vault holds no clients (`http::no_vault`), the relay's routes
//!   (`http::relay`), the MCP server on rmcp (`http::mcp`, tools in `http::mcp::tools`), the
//!   assistants' OAuth and consent routes (`http::agent_oauth`, `http::agent_owner`), and the
//!   hardened connection loop ([`http::serve::serve_with_limits`]) that serves the API and the
//!   metrics listener alike.
//! - [`relay`] — the intent relay (`vrm-vault relay`, DESIGN §11): a stateless front over NATS
//!   JetStream and the only module that imports `async-nats`: admitted brands and their
//!   `private_key_jwt` tokens, subscriptions matched with the domain's index, vaults' intents
//!   (`relay::record`: an intent's record, its id derived from its key), brands' feeds and
//!   webhook deliveries through one shared work-queue consumer (`relay::events`), offers with
//!   signed acceptances, the vault's messages to brands (`relay::messages`), a brand's feed as
//!   SSE (`relay::live`), abuse limits shared through NATS KV (`relay::limits`), batch
//!   admission (`relay::admit`) and Prometheus counters with consumer lag
//!   (`relay::metrics`); its routes and OpenAPI document are `http::relay`.
//! - [`relay_link`] — the vault's HTTP client for intent relays (`serve --relay`): publishing,
//!   long-polling offers, brands' published keys, messages; bounded, no redirects, no ambient
//!   proxy, and no NATS.
//! - [`webhooks`] — outbound webhook deliveries (reqwest on rustls/ring) behind an SSRF filter
//!   over the IANA special-purpose registries at DNS resolution, never through an ambient proxy.
//! - [`files`] — files and directories holding personal data or keys, created 0600/0700
//!   whatever the umask (the binary also sets umask 077).
//! - [`error`] — [`error::AppError`]: a stable code per failure, validation failures naming
//!   their field, token refusals saying why ([`error::TokenRefusal`], RFC 6750
//!   `error_description`), internal failures keeping a fixed context and their typed source; and
//!   [`error::OAuthError`] for the OAuth endpoints.
//! - [`config`], [`clock`], [`secret`] — the typed command line (flags, `VRM_*` environment, a
//!   TOML file), time as a parameter (never backwards for the service), a redacting string.
//!
//! # A request's path
//!
//! `PUT /api/v1/records/contact.email` → the connection loop's limits → security headers, request
//! id and (when on) metrics → the sealed gate (503
//! while sealed) → [`http::auth::OwnerSession`] (bearer token, or cookie plus CSRF token) → the
//! [`http::extract::RecordPathParam`] parses the path, the handler reads `If-Match` →
//! [`service::OpenVault::put_record`] queues a change on
//! the writer thread, which checks the precondition and stages the sealed record and its sealed
//! audit entry → the writer applies its group as one batch and flushes → `201` with the `ETag`.

pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod files;
pub mod http;
pub mod relay;
pub mod relay_link;
pub mod secret;
pub mod service;
pub mod store;
pub mod webhooks;
