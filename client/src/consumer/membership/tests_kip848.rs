//! KIP-848 on the core, scripted in made-up time: a join, epoch bumps, a partial revocation
//! reported until acknowledged, stale answers, fencing, an assignment naming a topic
//! metadata does not know yet, leaving, a poll timeout, an old cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use strom_protocol::ErrorCode;

use super::io::{Action, HandOverKind, Note, Request};
use super::kip848::Kip848;
use super::test_support::*;
use crate::error::Error;

fn member(instance: Option<&str>) -> Drive<Kip848> {
    Drive::new(
        settings(instance),
        subscribe(&["t"]),
        Kip848::new("m".into(), HEARTBEAT),
    )
}

fn epoch_of(r: &Request) -> i32 {
    let Request::ConsumerGroupHeartbeat(h) = r else {
        panic!("not a ConsumerGroupHeartbeat: {r:?}")
    };
    h.member_epoch
}

/// A member at epoch 1 owning t-0, t-1, t-2.
fn joined() -> Drive<Kip848> {
    let mut d = member(None);
    d.find();
    let join = d.exchange(cgh("m", 1, Some(&[("t", &[0, 1, 2])])));
    assert_eq!(epoch_of(&join), 0);
    assert!(reported(&join, &["t"]).is_empty());
    let want = d.metadata(metadata(&[("t", 3)]));
    assert!(want.cached, "the client's snapshot first");
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[0, 1, 2]));
    // Acknowledged at once, with what it owns now.
    let ack = d.exchange(cgh("m", 1, None));
    assert_eq!((epoch_of(&ack), reported(&ack, &["t"])), (1, tps("t", &[0, 1, 2])));
    assert_eq!(d.m.commit_identity(), (1, "m"));
    d
}

#[test]
fn joins_with_epoch_0_and_heartbeats_at_the_coordinators_interval() {
    let mut d = joined();
    assert_eq!(d.wait(), Some(d.now + HEARTBEAT));
    d.advance(HEARTBEAT, true);
    let hb = d.exchange(cgh("m", 1, None));
    let Request::ConsumerGroupHeartbeat(h) = &hb else {
        panic!()
    };
    assert_eq!(h.member_id.as_str(), "m");
    assert_eq!(h.subscribed_topic_names.as_ref().map(Vec::len), Some(1));
}

#[test]
fn a_partial_revocation_is_reported_owned_until_acknowledged_then_the_epoch_moves() {
    let mut d = joined();
    d.advance(HEARTBEAT, true);
    // The target shrinks; the member stays at epoch 1 until it has revoked.
    d.exchange(cgh("m", 1, Some(&[("t", &[0])])));
    let h = d.hand_over();
    assert_eq!((h.kind, set(&h.partitions)), (HandOverKind::Revoke, tps("t", &[1, 2])));
    d.advance(HEARTBEAT, true);
    let keepalive = d.exchange(cgh("m", 1, None));
    assert_eq!(
        reported(&keepalive, &["t"]),
        tps("t", &[0, 1, 2]),
        "not released before the application committed"
    );
    d.m.handed_over(d.now);
    let ack = d.exchange(cgh("m", 2, None));
    assert_eq!((epoch_of(&ack), reported(&ack, &["t"])), (1, tps("t", &[0])));
    assert_eq!(d.m.commit_identity(), (2, "m"));
    assert!(d.notes().contains(&Note::Owned(tps("t", &[0]))));
    // The group grows again: assigned at the new epoch, no revocation.
    d.advance(HEARTBEAT, true);
    d.exchange(cgh("m", 3, Some(&[("t", &[0, 2])])));
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[2]));
    let ack = d.exchange(cgh("m", 3, None));
    assert_eq!((epoch_of(&ack), reported(&ack, &["t"])), (3, tps("t", &[0, 2])));
}

#[test]
fn a_newer_target_replaces_the_plan_not_yet_handed_over() {
    let mut d = joined();
    d.advance(HEARTBEAT, true);
    // Revoke t-2 and add t-3, then (while t-2 is being revoked) a target without t-3.
    d.exchange(cgh("m", 1, Some(&[("t", &[0, 1, 3])])));
    assert_eq!(d.hand_over().kind, HandOverKind::Revoke);
    d.advance(HEARTBEAT, true);
    d.exchange(cgh("m", 2, Some(&[("t", &[0, 1])])));
    d.m.handed_over(d.now);
    // t-3 is never handed over: the newest target does not have it.
    let ack = d.exchange(cgh("m", 2, None));
    assert_eq!(reported(&ack, &["t"]), tps("t", &[0, 1]));
    assert!(matches!(d.action(), Action::Wait(_)));
}

#[test]
fn a_stale_answer_never_takes_the_epoch_back() {
    let mut d = joined();
    d.advance(HEARTBEAT, true);
    d.exchange(cgh("m", 5, None));
    d.advance(HEARTBEAT, true);
    d.exchange(cgh("m", 4, Some(&[("t", &[7])])));
    assert_eq!(d.m.commit_identity(), (5, "m"));
    assert!(matches!(d.action(), Action::Wait(_)), "the stale target is ignored");
    assert_eq!(d.m.owned(), &tps("t", &[0, 1, 2]));
}

#[test]
fn a_fenced_member_loses_everything_and_rejoins_with_epoch_0_once_the_application_let_go() {
    let mut d = joined();
    d.advance(HEARTBEAT, true);
    d.exchange(cgh_error(ErrorCode::FencedMemberEpoch));
    assert!(d.notes().contains(&Note::Identity(0, "m".into())));
    let h = d.hand_over();
    assert_eq!((h.kind, set(&h.partitions)), (HandOverKind::Lost, tps("t", &[0, 1, 2])));
    d.advance(HEARTBEAT * 3, true);
    assert!(
        matches!(d.action(), Action::Wait(None)),
        "no heartbeat while the application holds them"
    );
    d.m.handed_over(d.now);
    let join = d.exchange(cgh("m", 7, None));
    assert_eq!(epoch_of(&join), 0);
    assert!(reported(&join, &["t"]).is_empty());
    let Request::ConsumerGroupHeartbeat(h) = join else {
        panic!()
    };
    assert_eq!(h.member_id.as_str(), "m", "the same member id");
}

#[test]
fn an_assignment_naming_an_unknown_topic_is_applied_as_far_as_metadata_resolves() {
    let mut d = member(None);
    d.find();
    d.exchange(cgh("m", 1, Some(&[("t", &[0]), ("u", &[0, 1])])));
    assert!(d.metadata(metadata(&[("t", 1)])).cached);
    assert!(!d.metadata(metadata(&[("t", 1)])).cached, "then asked of a broker");
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[0]));
    let ack = d.exchange(cgh("m", 1, None));
    assert_eq!(reported(&ack, &["t", "u"]), tps("t", &[0]));
    // A heartbeat interval later, metadata is asked again; now it knows u.
    let Some(at) = d.wait() else { panic!() };
    d.advance(at.duration_since(d.now), true);
    let want = d.metadata(metadata(&[("t", 1), ("u", 2)]));
    assert!(!want.cached);
    assert_eq!(d.applied(HandOverKind::Assign), tps("u", &[0, 1]));
    let ack = d.exchange(cgh("m", 1, None));
    let mut all = tps("t", &[0]);
    all.extend(tps("u", &[0, 1]));
    assert_eq!(reported(&ack, &["t", "u"]), all);
}

#[test]
fn leaving_sends_the_leave_epoch_of_the_member_kind() {
    for (instance, epoch) in [(None, -1), (Some("i1"), -2)] {
        let mut d = Drive::new(
            settings(instance),
            subscribe(&["t"]),
            Kip848::new("m".into(), HEARTBEAT),
        );
        d.find();
        d.exchange(cgh("m", 1, None));
        d.m.leave(d.now);
        let leave = d.exchange(cgh("m", epoch, None));
        assert_eq!(epoch_of(&leave), epoch);
        assert!(matches!(d.action(), Action::Done));
    }
}

#[test]
fn a_poll_timeout_leaves_and_the_next_poll_rejoins_with_epoch_0() {
    let mut d = joined();
    let last_poll = d.now;
    let leave = loop {
        match d.action() {
            Action::Send(id, r) if epoch_of(&r) > 0 => d.reply(id, cgh("m", 1, None)),
            Action::Send(id, r) => break (id, r),
            Action::Wait(Some(t)) => {
                let by = t.duration_since(d.now);
                d.advance(by, false);
            }
            a => panic!("unexpected {a:?}"),
        }
    };
    assert_eq!(d.now.duration_since(last_poll), MAX_POLL);
    assert_eq!(epoch_of(&leave.1), -1);
    d.reply(leave.0, cgh("m", -1, None));
    assert_eq!(d.wait(), None);
    d.advance(Duration::from_millis(1), true);
    assert_eq!(d.applied(HandOverKind::Lost), tps("t", &[0, 1, 2]));
    let join = d.exchange(cgh("m", 9, None));
    assert_eq!(epoch_of(&join), 0);
}

#[test]
fn session_expiry_without_answers_loses_the_partitions() {
    let mut d = joined();
    let last_answer = d.now;
    loop {
        match d.action() {
            Action::Send(id, _) => {
                d.m.handle_response(d.now, id, Err(Error::kafka(ErrorCode::RequestTimedOut)))
            }
            Action::FindCoordinator(id) => {
                d.m.coordinator_failed(d.now, id, &Error::kafka(ErrorCode::NetworkException))
            }
            Action::Wait(Some(t)) => {
                let by = t.duration_since(d.now);
                d.advance(by, true);
            }
            Action::HandOver(h) => {
                assert_eq!(h.kind, HandOverKind::Lost);
                assert_eq!(d.now.duration_since(last_answer), SESSION);
                break;
            }
            a => panic!("unexpected {a:?}"),
        }
    }
    assert_eq!(d.m.commit_identity(), (0, "m"));
}

#[test]
fn a_cluster_without_the_api_is_a_configuration_error() {
    let mut d = member(None);
    match d.action() {
        Action::FindCoordinator(id) => {
            let mut info = coordinator();
            info.consumer_group_heartbeat = false;
            d.m.coordinator_found(d.now, id, info);
        }
        a => panic!("{a:?}"),
    }
    match d.action() {
        Action::Fail(e) => assert!(e.to_string().contains("group.protocol=classic"), "{e}"),
        a => panic!("expected the failure, got {a:?}"),
    }
    assert!(matches!(d.action(), Action::Done));
}

#[test]
fn a_fatal_code_fails_with_the_brokers_message() {
    let mut d = member(None);
    d.find();
    d.exchange(cgh_error(ErrorCode::GroupMaxSizeReached));
    match d.action() {
        Action::Fail(e) => assert_eq!(e.kafka_code(), Some(ErrorCode::GroupMaxSizeReached)),
        a => panic!("expected the failure, got {a:?}"),
    }
}
