//! Benchmarks only; see `registry.rs` and `balance.rs`.
