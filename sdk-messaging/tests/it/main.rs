//! The messaging crate's integration tests, in one test binary (one link, one process): each module is one former test file. Tests on a broker the machine shares hold it (`support::broker_at`); the one that restarts it holds it alone.

mod support;

mod interop;
mod kafka;
mod kafka_durability;
mod kafka_foreign;
mod nats;
mod nats_durability;
mod rabbitmq;
mod rabbitmq_durability;
mod redis;
mod redis_durability;
mod typed;
