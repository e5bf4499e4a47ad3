//! An idempotent producer's sequencing of one partition, sans-IO: the producer id and
//! epoch its sequences belong to, the next sequence, and which batch may go next (a retry
//! only as the oldest unresolved batch; new data never mixes epochs). The sender keeps one
//! per partition and asks it before each send.

use std::collections::VecDeque;

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
    use super::{next_sequence, PartState};

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
