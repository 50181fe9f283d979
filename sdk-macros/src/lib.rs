//! Procedural macros for the service SDK.
//!
//! This crate is part of the workspace layout; `#[service_interface]` and its method
//! attributes (`#[service_call]`, `#[retry]`, `#[circuit_breaker]`, `#[cached]`,
//! `#[timeout]`) are built on top of the `sdk` runtime's pipeline and are not part of this
//! release yet. Use `ServiceSdk::get_client` for calls in the meantime.
