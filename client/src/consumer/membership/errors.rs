//! What an error code in a coordinator's answer means for the member: one table per API.
//!
//! The classic tables follow Java's `AbstractCoordinator` (`JoinGroupResponseHandler`,
//! `SyncGroupResponseHandler`, `HeartbeatResponseHandler`); the KIP-848 one follows
//! `AbstractHeartbeatRequestManager.onErrorResponse`. Where Java throws on an unexpected
//! code, a retriable one is retried here after `retry.backoff.ms` (a broker may add codes)
//! and anything else fails the membership.

use strom_protocol::ErrorCode;

/// The member's reaction to an answer's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reaction {
    /// No error.
    Proceed,
    /// KIP-394 (MEMBER_ID_REQUIRED): join again at once, with the member id the answer gave.
    RejoinWithMemberId,
    /// The group is rebalancing: join again at once.
    Rejoin,
    /// The generation this member joined is gone (the coordinator moved on, or forgot the
    /// member): join again, as a new member when `forget_member_id`. Whatever it owned is
    /// lost when it joins (Java's `onJoinPrepare` with a reset generation).
    Reset { forget_member_id: bool },
    /// The member is no longer in the group: its partitions are lost now, then it joins
    /// again (as a new member when `forget_member_id`; a KIP-848 member keeps its id and
    /// joins with epoch 0).
    Lose { forget_member_id: bool },
    /// The coordinator moved or is not ready: find it again.
    FindCoordinator,
    /// Try again after `retry.backoff.ms`.
    Backoff,
    /// Membership cannot go on; `lose`: the partitions are lost as well.
    Fatal { lose: bool },
}

/// JoinGroup (Java's `JoinGroupResponseHandler`).
pub(super) fn join_group(code: ErrorCode) -> Reaction {
    match code {
        ErrorCode::None => Reaction::Proceed,
        ErrorCode::MemberIdRequired => Reaction::RejoinWithMemberId,
        ErrorCode::UnknownMemberId => Reaction::Reset { forget_member_id: true },
        // Not in Java's table (a JoinGroup carries no generation); a broker that says so
        // wants a fresh join, as Strom always did.
        ErrorCode::IllegalGeneration => Reaction::Reset {
            forget_member_id: false,
        },
        // "Could indicate a replication timeout on the broker" (Java): retry.
        ErrorCode::RebalanceInProgress | ErrorCode::CoordinatorLoadInProgress => Reaction::Backoff,
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => Reaction::FindCoordinator,
        // FENCED_INSTANCE_ID, INCONSISTENT_GROUP_PROTOCOL, INVALID_SESSION_TIMEOUT,
        // INVALID_GROUP_ID, GROUP_AUTHORIZATION_FAILED, GROUP_MAX_SIZE_REACHED,
        // UNSUPPORTED_VERSION: fatal in Java.
        c if c.is_retriable() => Reaction::Backoff,
        _ => Reaction::Fatal { lose: false },
    }
}

/// SyncGroup (Java's `SyncGroupResponseHandler`).
pub(super) fn sync_group(code: ErrorCode) -> Reaction {
    match code {
        ErrorCode::None => Reaction::Proceed,
        ErrorCode::RebalanceInProgress => Reaction::Rejoin,
        ErrorCode::UnknownMemberId => Reaction::Reset { forget_member_id: true },
        // "The member ID might still be valid" (Java).
        ErrorCode::IllegalGeneration => Reaction::Reset {
            forget_member_id: false,
        },
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => Reaction::FindCoordinator,
        c if c.is_retriable() => Reaction::Backoff,
        // FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED and the unexpected.
        _ => Reaction::Fatal { lose: false },
    }
}

/// Heartbeat (Java's `HeartbeatResponseHandler`).
pub(super) fn heartbeat(code: ErrorCode) -> Reaction {
    match code {
        ErrorCode::None => Reaction::Proceed,
        ErrorCode::RebalanceInProgress => Reaction::Rejoin,
        // Java keeps the member id on ILLEGAL_GENERATION: it is still valid.
        ErrorCode::IllegalGeneration => Reaction::Lose {
            forget_member_id: false,
        },
        ErrorCode::UnknownMemberId => Reaction::Lose { forget_member_id: true },
        // Another process took this group.instance.id: this one must stop.
        ErrorCode::FencedInstanceId => Reaction::Fatal { lose: true },
        ErrorCode::GroupAuthorizationFailed => Reaction::Fatal { lose: false },
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress => {
            Reaction::FindCoordinator
        }
        // Java fails the heartbeat thread on an unexpected code; Strom keeps heartbeating.
        _ => Reaction::Backoff,
    }
}

/// ConsumerGroupHeartbeat (Java's `AbstractHeartbeatRequestManager.onErrorResponse`).
pub(super) fn consumer_group_heartbeat(code: ErrorCode) -> Reaction {
    match code {
        ErrorCode::None => Reaction::Proceed,
        // Java's transitionToFenced: release everything, rejoin with epoch 0 and the same id.
        ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId => Reaction::Lose {
            forget_member_id: false,
        },
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => Reaction::FindCoordinator,
        ErrorCode::CoordinatorLoadInProgress => Reaction::Backoff,
        // GROUP_AUTHORIZATION_FAILED, INVALID_REQUEST, GROUP_MAX_SIZE_REACHED,
        // UNSUPPORTED_ASSIGNOR, UNSUPPORTED_VERSION, UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID
        // and the unexpected: fatal in Java.
        c if c.is_retriable() => Reaction::Backoff,
        _ => Reaction::Fatal { lose: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_tables_follow_java() {
        assert_eq!(join_group(ErrorCode::MemberIdRequired), Reaction::RejoinWithMemberId);
        assert_eq!(
            join_group(ErrorCode::UnknownMemberId),
            Reaction::Reset { forget_member_id: true }
        );
        assert_eq!(join_group(ErrorCode::CoordinatorLoadInProgress), Reaction::Backoff);
        assert_eq!(join_group(ErrorCode::NotCoordinator), Reaction::FindCoordinator);
        for fatal in [
            ErrorCode::FencedInstanceId,
            ErrorCode::InconsistentGroupProtocol,
            ErrorCode::GroupAuthorizationFailed,
            ErrorCode::GroupMaxSizeReached,
            ErrorCode::InvalidSessionTimeout,
        ] {
            assert_eq!(join_group(fatal), Reaction::Fatal { lose: false }, "{fatal:?}");
            assert_eq!(sync_group(fatal), Reaction::Fatal { lose: false }, "{fatal:?}");
        }
        assert_eq!(sync_group(ErrorCode::RebalanceInProgress), Reaction::Rejoin);
        assert_eq!(
            sync_group(ErrorCode::IllegalGeneration),
            Reaction::Reset {
                forget_member_id: false
            }
        );
        assert_eq!(heartbeat(ErrorCode::RebalanceInProgress), Reaction::Rejoin);
        assert_eq!(
            heartbeat(ErrorCode::IllegalGeneration),
            Reaction::Lose {
                forget_member_id: false
            }
        );
        assert_eq!(
            heartbeat(ErrorCode::UnknownMemberId),
            Reaction::Lose { forget_member_id: true }
        );
        assert_eq!(heartbeat(ErrorCode::FencedInstanceId), Reaction::Fatal { lose: true });
        assert_eq!(
            heartbeat(ErrorCode::CoordinatorLoadInProgress),
            Reaction::FindCoordinator
        );
    }

    #[test]
    fn kip848_table_follows_java() {
        for fenced in [ErrorCode::FencedMemberEpoch, ErrorCode::UnknownMemberId] {
            assert_eq!(
                consumer_group_heartbeat(fenced),
                Reaction::Lose {
                    forget_member_id: false
                }
            );
        }
        assert_eq!(
            consumer_group_heartbeat(ErrorCode::CoordinatorNotAvailable),
            Reaction::FindCoordinator
        );
        assert_eq!(
            consumer_group_heartbeat(ErrorCode::CoordinatorLoadInProgress),
            Reaction::Backoff
        );
        for fatal in [
            ErrorCode::GroupAuthorizationFailed,
            ErrorCode::InvalidRequest,
            ErrorCode::GroupMaxSizeReached,
            ErrorCode::UnsupportedAssignor,
            ErrorCode::UnsupportedVersion,
            ErrorCode::UnreleasedInstanceId,
        ] {
            assert_eq!(
                consumer_group_heartbeat(fatal),
                Reaction::Fatal { lose: false },
                "{fatal:?}"
            );
        }
    }
}
