//! Checkpoint storage (owned by the sink/checkpoint helper).
