//! The intent relay (DESIGN §11): `vrm-vault relay` over a real `nats-server -js`.

mod brands;
mod failover;
mod intents;
mod metrics;
mod offers;
mod outage;
mod production;
mod redelivery;
mod replication;
mod start;
