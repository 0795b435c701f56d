//! The intent relay (DESIGN §11): `vrm-vault relay` over a real `nats-server -js`.

mod admit;
mod brands;
mod events;
mod failover;
mod intents;
mod limits;
mod messages;
mod metrics;
mod offers;
mod openapi;
mod outage;
mod production;
mod redelivery;
mod replication;
mod start;
mod vault_side;
