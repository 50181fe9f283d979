//! The event bus's integration tests, in one test binary (one link, one process): each module is one former test file.

mod support;

mod api;
mod delivery;
mod durability;
mod paused;
