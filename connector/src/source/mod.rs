//! Kafka source (owned by the source helper).
