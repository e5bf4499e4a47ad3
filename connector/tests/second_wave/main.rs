//! The connector's second wave in one test binary (one link instead of three, for CI's
//! time): any source and any sink through the exactly-once file sink, rescaling from a
//! checkpoint location, and checkpoints kept in Kafka.

mod file_sink;
mod kafka_checkpoint;
mod rescale;
