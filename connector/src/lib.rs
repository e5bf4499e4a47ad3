//! Flink-style Kafka source and sink for Strom.
//!
//! Not implemented yet: see the connector issue. The crate exists so the workspace layout
//! matches DESIGN.md and later steps land without restructuring.
