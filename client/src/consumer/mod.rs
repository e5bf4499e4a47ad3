//! The consumer.

pub mod assignor;
