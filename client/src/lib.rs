//! Async Kafka client for Strom.
