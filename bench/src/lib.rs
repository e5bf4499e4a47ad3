//! Broker-level benchmark scenarios (S1–S6 of the performance plan) will live here.
//!
//! Codec micro-benchmarks are in `protocol/benches`; see BENCHMARKS.md.
