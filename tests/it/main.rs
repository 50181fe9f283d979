//! The workspace's cross-crate tests (the SDK through its public API, the README, the examples, the module-cycle check), in one test binary (one link, one process): each module is one former test file.

// The renamed-crate test names the SDK under another name, as a renamed dependency would
// be: in the extern prelude, where the generated code's `::renamed_sdk` paths look.
extern crate sdk as renamed_sdk;

mod support;

mod balance;
mod batch;
mod cache;
mod circuit_breaker;
mod classify;
mod config;
mod discovery;
mod ecommerce;
mod errors;
mod fallback;
mod health;
mod hedge;
mod macro_ui;
mod metrics;
mod middleware;
mod mockall;
mod module_cycles;
mod msrv;
mod observability;
mod opentelemetry;
mod readme;
mod renamed_crate;
mod retry;
mod secrets;
mod soak;
mod testing;
mod tower_http;
mod transport;
mod typed_clients;
