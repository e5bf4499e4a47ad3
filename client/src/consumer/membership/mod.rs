//! Group membership, sans-IO: one core for the classic protocol (JoinGroup/SyncGroup/
//! Heartbeat/LeaveGroup, eager and cooperative, static members) and KIP-848
//! (ConsumerGroupHeartbeat reconciliation), and the thin async task that drives it.
//!
//! The core ([`machine::Membership`]) is a plain state machine with no clock and no I/O, in
//! quinn-proto's style: events go in with the time they happen (answers, the coordinator found
//! or not, metadata, the application's polls and its acknowledgements of hand-overs,
//! subscription changes, `handle_timeout(now)`), and `poll_action(now)` says what to do next:
//! find the coordinator, send this request, get metadata, hand these partitions over
//! (revoke, assign, lost), fail with this error, wait until then, or stop.
//!
//! What both protocols share lives once:
//! * `owned.rs`: the partitions owned and how they change hands (revoke before assign, one
//!   hand-over at a time, a revoked partition owned until acknowledged, losing everything);
//! * `common.rs`: subscription and topics, coordinator, the one operation in flight,
//!   backoff, the application's last poll and the coordinator's last answer, the member's
//!   stage (active, failed, leaving, done), the notes for the driver;
//! * `machine.rs`: the order of decisions, `max.poll.interval.ms` (leave, then lose and
//!   rejoin at the next poll), `session.timeout.ms` without an answer (lose), leaving;
//! * `errors.rs`: what each error code means, per API (Java's tables).
//!
//! `classic.rs` and `kip848.rs` are the protocols; `io.rs` what crosses to the driver;
//! `driver.rs` the task. The tests drive the core alone in made-up time: scripted scenarios
//! (`tests_classic.rs`, `tests_kip848.rs`) and seeded random events checked against the
//! invariants (`tests_random.rs`).

mod classic;
mod common;
mod driver;
mod errors;
mod io;
mod kip848;
mod machine;
mod owned;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_classic;
#[cfg(test)]
mod tests_kip848;
#[cfg(test)]
mod tests_random;

pub(crate) use driver::spawn;
