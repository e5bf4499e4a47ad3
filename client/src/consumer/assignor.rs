//! Partition assignors (owned by the assignor helper).
