//! The intent relay (DESIGN §11): `vrm-vault relay` over a real `nats-server -js`.

mod brands;
mod events;
mod intents;
mod messages;
mod offers;
mod start;
mod vault_side;
