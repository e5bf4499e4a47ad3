//! Partition assignors of the classic consumer group protocol, client side and sans-IO.
//!
//! In the classic protocol (JoinGroup/SyncGroup) the broker elects one member the group
//! leader and hands it every member's [`Subscription`]; the leader runs an [`Assignor`] over
//! them and the topic metadata, and sends each member its [`Assignment`] in SyncGroup. No IO,
//! no clock, no randomness: the same input always gives the same output.
//!
//! Mirrors Java's kafka-clients (the ground truth):
//!
//! * [`RangeAssignor`] (`range`), [`RoundRobinAssignor`] (`roundrobin`): Java's
//!   `RangeAssignor` and `RoundRobinAssignor`, output identical to Java's.
//! * [`StickyAssignor`] (`sticky`), [`CooperativeStickyAssignor`] (`cooperative-sticky`):
//!   Java's `StickyAssignor` and `CooperativeStickyAssignor` over `AbstractStickyAssignor`
//!   (KIP-54, KIP-429, KIP-792).
//! * [`Subscription`] and [`Assignment`] encode and decode the embedded
//!   `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` bytes as Java's
//!   `ConsumerProtocol` does: an `i16` version, then the non-flexible struct body.
//!
//! Where Java walks a `HashMap` (whose order is an accident of hashing) we walk members by
//! member id, so the result is deterministic but can differ from Java's in which member gets
//! which of several equally good partitions. Also different from Java, on purpose:
//!
//! * Rack-aware assignment (KIP-881) is not implemented: rack ids are carried in
//!   [`Subscription::rack_id`] but ignored by every assignor, as Java does when the partition
//!   racks are unknown.
//! * The sticky assignors' general path (members with different subscriptions) is simpler
//!   than Java's `generalAssign`: keep every valid owned partition, give each unowned partition
//!   to the least loaded member subscribed to its topic (most constrained partitions first),
//!   then, while a member holds a partition that a member with at least two fewer partitions
//!   could take, move one such partition (preferring one the member did not own before).
//!   That is Java's balance criterion (`isBalanced` / `performReassignments`), but it does
//!   not prefer a partition's previous owner from an older generation, and with cooperative
//!   rebalancing it can take more than one follow-up rebalance to settle, as Java's can.
//! * Owned partitions of a topic that no longer has that partition number are dropped (Java
//!   keeps them in the constrained path).
//! * Three or more claims on one partition: the highest generation wins when exactly one
//!   member claims it at that generation, otherwise nobody keeps it (Java's outcome depends on
//!   the order it meets the claims).

mod protocol;
mod range;
mod round_robin;
mod shared;
mod sticky;
#[cfg(test)]
mod tests;

pub use crate::topic_partition::TopicPartition;
pub use protocol::{Assignment, AssignorError, Subscription, CONSUMER_PROTOCOL_VERSION};
pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use shared::{Assignor, MemberSubscription, RebalanceProtocol};
pub use sticky::{CooperativeStickyAssignor, StickyAssignor};

/// The built-in assignor called `name` (`range`, `roundrobin`, `sticky`, `cooperative-sticky`).
pub fn assignor_by_name(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "range" => Some(Box::new(RangeAssignor)),
        "roundrobin" => Some(Box::new(RoundRobinAssignor)),
        "sticky" => Some(Box::new(StickyAssignor)),
        "cooperative-sticky" => Some(Box::new(CooperativeStickyAssignor)),
        _ => None,
    }
}
