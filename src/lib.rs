//! vrm-vault
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod secret;
pub mod service;
pub mod store;
