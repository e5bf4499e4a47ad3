//! Kafka sink (owned by the sink/checkpoint helper).
