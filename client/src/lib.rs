//! Async Kafka client for Strom, on tokio.
//!
//! Today: [`Connection`], one pipelined broker connection with version negotiation, and the
//! client [`Error`]. The metadata-aware `Client`, admin, producer and consumer build on it.

mod connection;
mod error;

pub use connection::{Connection, ConnectionConfig};
pub use error::{Error, Result};
pub use strom_protocol as protocol;
