//! What every connection to one broker records: kept by the registry, one per node.

use std::sync::atomic::Ordering;

use super::cells::{Gauge, Meter, Stat};

/// What every connection to one broker records (group `node-metrics`, tag `node-id`).
pub(crate) struct NodeInstruments {
    pub(crate) request: Meter,
    pub(crate) response: Meter,
    pub(crate) request_latency: Stat,
    pub(crate) outgoing_byte: Meter,
    pub(crate) incoming_byte: Meter,
    pub(super) connection_creation: Meter,
    pub(super) connection_close: Meter,
    pub(super) connection_count: Gauge,
    pub(crate) successful_authentication: Meter,
    pub(crate) failed_authentication: Meter,
    pub(crate) successful_reauthentication: Meter,
    pub(crate) failed_reauthentication: Meter,
    pub(super) live: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for NodeInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeInstruments").finish_non_exhaustive()
    }
}

impl NodeInstruments {
    pub(crate) fn opened(&self) {
        self.connection_creation.add(1);
        let n = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        self.connection_count.set(n as f64);
    }

    pub(crate) fn closed(&self) {
        self.connection_close.add(1);
        let n = self.live.fetch_sub(1, Ordering::Relaxed) - 1;
        self.connection_count.set(n.max(0) as f64);
    }
}
