//! Integration tests: the real `vrm-vault` binary on a free loopback port and a temporary data
//! directory, driven over HTTP the way the web app and scripts drive it.
//!
//! One test binary with modules (each test binary is a separate link, which costs minutes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod at_rest;
mod audit;
mod brand_answers;
mod crash;
mod dpop;
mod faults;
mod grants;
mod hardening;
mod intents;
#[path = "../kit/mod.rs"]
mod kit;
mod lifecycle;
mod logs;
mod oauth;
mod openapi;
mod par;
mod portability;
mod records;
mod support;
mod terms;
