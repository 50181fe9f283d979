//! Benchmarks only; see `overhead.rs` and `instructions.rs`.
