//! The producer's sequencing and answer handling, sans-IO (no I/O, no clock: elapsed time is
//! an argument). Per partition ([`PartState`]): the producer id and epoch its sequences belong
//! to, the next sequence, and which batch may go next (a retry only as the oldest unresolved
//! batch; new data never mixes epochs). Per answer ([`verdict`]): what a partition's error
//! code in a Produce response means for its batch (acknowledge, retry with or without a
//! KIP-360 epoch bump, fail, or fence the producer), and ([`may_retry`]) whether a failed
//! batch still may be sent again. The sender (`sender.rs`) is the driver: it keeps one
//! `PartState` per partition, asks before each send and applies each verdict.

use std::collections::VecDeque;
use std::time::Duration;

use strom_protocol::ErrorCode;

#[derive(Debug)]
pub(super) struct PartState {
    /// The producer id and epoch this partition's sequences belong to. It lags the
    /// producer's after an epoch bump until the partition's unresolved batches are done.
    pub(super) pid_epoch: (i64, i16),
    pub(super) next_seq: i32,
    pub(super) inflight: usize,
    /// Base sequences of batches sent under `pid_epoch` and not yet resolved (in flight or
    /// queued for a retry), oldest first.
    pub(super) unresolved: VecDeque<i32>,
    /// The last sequence acknowledged under `pid_epoch`. Until there is one the partition
    /// sends one batch at a time: a broker with no state for a producer accepts any first
    /// sequence (KAFKA-7190), so a second batch could overtake a failed first.
    pub(super) last_acked: Option<i32>,
}

impl Default for PartState {
    fn default() -> Self {
        PartState {
            pid_epoch: (-1, -1),
            next_seq: 0,
            inflight: 0,
            unresolved: VecDeque::new(),
            last_acked: None,
        }
    }
}

impl PartState {
    /// Sequences restart at 0 under `pid_epoch`.
    pub(super) fn restart(&mut self, pid_epoch: (i64, i16)) {
        self.pid_epoch = pid_epoch;
        self.next_seq = 0;
        self.unresolved.clear();
        self.last_acked = None;
    }

    /// Whether `seq` is the sequence right after the last acknowledged one.
    pub(super) fn is_next(&self, seq: i32) -> bool {
        match self.last_acked {
            Some(last) => next_sequence(last, 1) == seq,
            None => seq == 0,
        }
    }

    /// Whether the queue head `head` (its stamp, if it was sent before) may go now, moving the
    /// partition to `current` first if it has nothing unresolved under an older epoch.
    pub(super) fn may_send(&mut self, head: Option<(i64, i16, i32)>, current: (i64, i16)) -> bool {
        match head {
            // A retry: only the oldest unresolved batch, so it cannot overtake an older one.
            Some((_, _, seq)) => self.unresolved.front() == Some(&seq),
            None if self.pid_epoch == current => true,
            // New data waits until the old epoch's batches are resolved, then starts at 0.
            None if self.unresolved.is_empty() => {
                self.restart(current);
                true
            }
            None => false,
        }
    }
}

/// What kind of producer answers are judged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mode {
    /// `enable.idempotence` (producer ids and sequences on every batch).
    pub(super) idempotent: bool,
    /// A `transactional.id` is set.
    pub(super) transactional: bool,
}

/// What a batch's answer in a Produce response means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Written, or a duplicate of a batch already written (DUPLICATE_SEQUENCE_NUMBER): done.
    Acked,
    /// Send it again if [`may_retry`] allows. `bump`: first bump the epoch (KIP-360), as
    /// the broker lost or refused this producer's sequence state; `refresh`: the partition's
    /// leadership may have moved, ask for metadata.
    Retry { bump: bool, refresh: bool },
    /// The transactional producer is fenced (another took over its id, or the coordinator
    /// bumped the epoch): the batch fails and so does the producer.
    Fenced,
    /// Not retriable: the batch fails with the code.
    Fail,
}

/// The verdict on a batch answered with `code`. `part` is the batch's partition and `seq`
/// the batch's (producer id, epoch, base sequence), for an idempotent producer.
///
/// Out of order (OUT_OF_ORDER_SEQUENCE_NUMBER) on the batch right after the last
/// acknowledged one is a real gap, and UNKNOWN_PRODUCER_ID means the broker lost the
/// producer's state: both bump the epoch and renumber (KIP-360). Out of order on a later
/// batch only echoes an earlier batch still being retried (Java's `canRetry`): retried as
/// it is. A transactional producer does not bump on its own (it recovers by aborting).
pub(super) fn verdict(code: ErrorCode, mode: Mode, part: Option<&PartState>, seq: Option<(i64, i16, i32)>) -> Verdict {
    match code {
        ErrorCode::None | ErrorCode::DuplicateSequenceNumber => Verdict::Acked,
        ErrorCode::OutOfOrderSequenceNumber | ErrorCode::UnknownProducerId
            if mode.idempotent && !mode.transactional =>
        {
            let gap = code == ErrorCode::UnknownProducerId
                || part.is_some_and(|p| {
                    seq.is_some_and(|(pid, epoch, seq)| (pid, epoch) == p.pid_epoch && p.is_next(seq))
                });
            Verdict::Retry {
                bump: gap,
                refresh: false,
            }
        }
        ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced if mode.transactional => Verdict::Fenced,
        ErrorCode::InvalidProducerEpoch if mode.idempotent => Verdict::Retry {
            bump: true,
            refresh: false,
        },
        c if c.is_retriable() => Verdict::Retry {
            bump: false,
            refresh: true,
        },
        _ => Verdict::Fail,
    }
}

/// Whether a batch that failed (retriably or not) is sent again: only a retriable failure,
/// within `delivery.timeout.ms` of the batch's creation (`age`), under `retries` attempts,
/// and never with acks=0 (no answer to learn from).
pub(super) fn may_retry(
    retriable: bool,
    age: Duration,
    delivery_timeout: Duration,
    attempts: u32,
    retries: u32,
    acks_none: bool,
) -> bool {
    retriable && age < delivery_timeout && attempts < retries && !acks_none
}

/// `DefaultRecordBatch.incrementSequence`: sequences wrap at i32::MAX.
pub(super) fn next_sequence(seq: i32, count: u32) -> i32 {
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    if seq > i32::MAX - count {
        count - (i32::MAX - seq) - 1
    } else {
        seq + count
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use strom_protocol::ErrorCode;

    use super::{may_retry, next_sequence, verdict, Mode, PartState, Verdict};

    const IDEMPOTENT: Mode = Mode {
        idempotent: true,
        transactional: false,
    };
    const TRANSACTIONAL: Mode = Mode {
        idempotent: true,
        transactional: true,
    };
    const PLAIN: Mode = Mode {
        idempotent: false,
        transactional: false,
    };

    /// A partition of producer 7 epoch 0 that has 0..=9 acknowledged.
    fn acked_to_9() -> PartState {
        PartState {
            pid_epoch: (7, 0),
            next_seq: 30,
            last_acked: Some(9),
            ..PartState::default()
        }
    }

    #[test]
    fn answers_as_java_judges_them() {
        let p = acked_to_9();
        let retry = |bump, refresh| Verdict::Retry { bump, refresh };
        // Written, or already written.
        assert_eq!(
            verdict(ErrorCode::None, IDEMPOTENT, Some(&p), Some((7, 0, 10))),
            Verdict::Acked
        );
        assert_eq!(
            verdict(
                ErrorCode::DuplicateSequenceNumber,
                IDEMPOTENT,
                Some(&p),
                Some((7, 0, 10))
            ),
            Verdict::Acked
        );
        // Out of order right after the last acknowledged batch: a real gap, renumber.
        assert_eq!(
            verdict(
                ErrorCode::OutOfOrderSequenceNumber,
                IDEMPOTENT,
                Some(&p),
                Some((7, 0, 10))
            ),
            retry(true, false)
        );
        // On a later batch: an echo of the earlier one's failure, retried as it is.
        assert_eq!(
            verdict(
                ErrorCode::OutOfOrderSequenceNumber,
                IDEMPOTENT,
                Some(&p),
                Some((7, 0, 20))
            ),
            retry(false, false)
        );
        // Of an older epoch than the partition's: not a gap of this epoch.
        assert_eq!(
            verdict(
                ErrorCode::OutOfOrderSequenceNumber,
                IDEMPOTENT,
                Some(&p),
                Some((7, 1, 10))
            ),
            retry(false, false)
        );
        assert_eq!(
            verdict(ErrorCode::UnknownProducerId, IDEMPOTENT, Some(&p), Some((7, 0, 20))),
            retry(true, false)
        );
        assert_eq!(
            verdict(ErrorCode::InvalidProducerEpoch, IDEMPOTENT, Some(&p), Some((7, 0, 10))),
            retry(true, false)
        );
        // A transactional producer never bumps by itself: fenced, or the transaction fails.
        assert_eq!(
            verdict(
                ErrorCode::InvalidProducerEpoch,
                TRANSACTIONAL,
                Some(&p),
                Some((7, 0, 10))
            ),
            Verdict::Fenced
        );
        assert_eq!(
            verdict(ErrorCode::ProducerFenced, TRANSACTIONAL, Some(&p), Some((7, 0, 10))),
            Verdict::Fenced
        );
        assert_eq!(
            verdict(
                ErrorCode::OutOfOrderSequenceNumber,
                TRANSACTIONAL,
                Some(&p),
                Some((7, 0, 10))
            ),
            Verdict::Fail
        );
        // Leadership and availability: retried after a metadata refresh.
        for code in [
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::RequestTimedOut,
        ] {
            assert_eq!(
                verdict(code, IDEMPOTENT, Some(&p), Some((7, 0, 10))),
                retry(false, true)
            );
            assert_eq!(verdict(code, PLAIN, None, None), retry(false, true));
        }
        // Not retriable.
        for code in [
            ErrorCode::MessageTooLarge,
            ErrorCode::InvalidRecord,
            ErrorCode::TopicAuthorizationFailed,
        ] {
            assert_eq!(verdict(code, IDEMPOTENT, Some(&p), Some((7, 0, 10))), Verdict::Fail);
        }
        // Without idempotence, sequence errors are not this producer's to fix.
        assert_eq!(
            verdict(ErrorCode::OutOfOrderSequenceNumber, PLAIN, None, None),
            Verdict::Fail
        );
    }

    #[test]
    fn retries_stop_at_the_limits() {
        let t = Duration::from_secs(120);
        assert!(may_retry(true, Duration::from_secs(1), t, 0, 5, false));
        assert!(
            !may_retry(false, Duration::from_secs(1), t, 0, 5, false),
            "not retriable"
        );
        assert!(!may_retry(true, t, t, 0, 5, false), "delivery.timeout.ms reached");
        assert!(
            !may_retry(true, Duration::from_secs(1), t, 5, 5, false),
            "retries used up"
        );
        assert!(!may_retry(true, Duration::from_secs(1), t, 0, 5, true), "acks=0");
    }

    #[test]
    fn sequences_wrap_like_java() {
        assert_eq!(next_sequence(0, 5), 5);
        assert_eq!(next_sequence(i32::MAX - 2, 3), 0);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 5), 3);
    }

    /// The reassignment race (a retry of a batch that may be in the new leader's log racing
    /// older ones, then renumbered under a new epoch) cannot happen: a retry goes only as the
    /// oldest unresolved batch, and new data never mixes epochs on a partition.
    #[test]
    fn retries_go_oldest_first_and_epochs_never_mix() {
        let e0 = (7, 0);
        let mut ps = PartState::default();
        assert!(
            ps.may_send(None, e0),
            "first data moves the partition to the current epoch"
        );
        assert_eq!(ps.pid_epoch, e0);
        // Batches at 0, 10, 20 sent; all fail and are queued again in order.
        ps.unresolved.extend([0, 10, 20]);
        assert!(ps.may_send(Some((7, 0, 0)), e0));
        assert!(!ps.may_send(Some((7, 0, 10)), e0), "10 waits until 0 is resolved");
        ps.unresolved.pop_front();
        ps.last_acked = Some(9);
        assert!(ps.may_send(Some((7, 0, 10)), e0));
        assert!(
            ps.is_next(10) && !ps.is_next(20),
            "out of order on 20 is an echo, on 10 a gap"
        );

        // The producer bumped to epoch 1 for another partition: this one finishes 10 and 20
        // under epoch 0 and sends no new data meanwhile.
        let e1 = (7, 1);
        assert!(!ps.may_send(None, e1));
        assert_eq!(ps.pid_epoch, e0);
        ps.unresolved.clear();
        ps.last_acked = Some(29);
        assert!(ps.may_send(None, e1), "resolved: new data starts epoch 1");
        assert_eq!((ps.pid_epoch, ps.next_seq, ps.last_acked), (e1, 0, None));
        assert!(ps.is_next(0));
    }

    #[test]
    fn the_next_sequence_wraps() {
        let ps = PartState {
            last_acked: Some(i32::MAX),
            ..PartState::default()
        };
        assert!(ps.is_next(0));
    }
}
