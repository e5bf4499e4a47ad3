//! Broker harness.
