//! Integration tests: the real `vrm-vault` binary on a free loopback port and a temporary data
//! directory, driven over HTTP the way the web app and scripts drive it.
//!
//! One test binary with modules (each test binary is a separate link, which costs minutes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod activity;
mod agents;
mod at_rest;
mod audit;
mod brand_answers;
mod catalogue;
mod consent_flood;
mod crash;
mod disk_use;
mod dpop;
mod egress;
mod faults;
mod grants;
mod hardening;
mod intents;
#[path = "../kit/mod.rs"]
mod kit;
mod lifecycle;
mod linking;
mod lock;
mod login_throttle;
mod logs;
mod mcp;
mod oauth;
mod openapi;
mod par;
mod portability;
mod private_files;
mod probing;
mod readme;
mod records;
mod relay;
mod sharing;
mod streams;
mod support;
mod terms;
mod terms_change;
