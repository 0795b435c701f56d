//! The vault's pure core: types and rules with no I/O, no clock reads and no cryptography.
//!
//! Everything here takes the current time as a parameter and returns decisions, so it can be tested
//! exhaustively without a server, a disk or a clock.

pub mod activity;
pub mod agents;
pub mod audit;
pub mod brands;
pub mod consent_budget;
pub mod delivery;
pub mod grants;
pub mod intents;
pub mod login;
pub mod offers;
pub mod proposals;
pub mod rate;
pub mod records;
pub mod refusals;
pub mod relayed;
pub mod retention;
pub mod terms;
