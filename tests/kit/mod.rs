//! The test kit: what the integration tests (`tests/vault`) and the benches (`tests/bench`) share
//! to start the real `vrm-vault` server, set it up as its owner, and read what a process did.
//!
//! Before it, every bench and the test suite each started servers and read `/proc` their own
//! way, and the copies drifted (kanidm keeps one `server/testkit`, crates.io one
//! `src/tests/util/test_app.rs`, for the same reason). Each bench is a crate of its own
//! (`harness = false`) and the tests are one more, so each includes this directory with
//! `#[path = "../kit/mod.rs"] mod kit;` and uses only the part it needs; hence `dead_code` is
//! allowed here.
//!
//! - [`server`]: the `serve` command line, spawning it and learning its address, and a
//!   [`server::Server`] that is killed on drop.
//! - [`owner`]: the vault's owner, typed: setup, publishing a terms template, invitations.
//! - [`brand`]: brands, typed: registration with an invitation, accepting the terms,
//!   client-credentials tokens, and the JOSE helpers to check what the vault signs.
//! - [`grant`]: data grants: an in-process server on a clock the test moves, the person's sample
//!   data, owner-made grants and their tokens, and the authorization-code flow with PKCE.
//! - [`intent`]: intentcasting: brands that subscribe ([`intent::Subscriber`]) and read their
//!   events by polling, Server-Sent Events or a webhook receiver; intents and offers.
//! - [`catalogue`]: the event catalogue of the served OpenAPI document; every event a test
//!   brand polls is checked against it.
//! - [`disk`]: what a vault leaves on disk: its files, the encodings that would betray a secret
//!   in them, a stopped vault's store opened raw, its signing key read with the passphrase.
//! - [`restore`]: `POST /api/v1/restore`, the multipart upload of a backup.
//! - [`machine`]: the CPU, the load average, a process's memory, latency percentiles.
//! - [`relay`]: the intent relay over a real `nats-server -js` (`NATS_SERVER_BIN`), each killed on
//!   drop.
//! - [`cluster`]: a NATS JetStream cluster of real `nats-server` nodes on loopback, each
//!   killable and restartable, for the relay's replication and fault tests and benches.
//! - [`relay_traffic`]: what vaults and brands send a relay instance (intents under per-intent
//!   keys, offers with signed acceptances, the vault's read), with retryable failures named.
//! - [`proc_stats`]: the store writer's groups from the server's log, and CPU time by thread.

#![allow(dead_code)]

pub mod brand;
pub mod catalogue;
pub mod cluster;
pub mod disk;
pub mod grant;
pub mod intent;
pub mod machine;
pub mod owner;
pub mod proc_stats;
pub mod relay;
pub mod relay_traffic;
pub mod restore;
pub mod server;
