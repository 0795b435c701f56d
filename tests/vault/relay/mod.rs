//! The intent relay (DESIGN §11): `vrm-vault relay` over a real `nats-server -js`.

mod admit;
mod brands;
mod failover;
mod intents;
mod metrics;
mod offers;
mod outage;
mod production;
mod replication;
mod start;
