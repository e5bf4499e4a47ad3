//! The classic protocol on the core, scripted in made-up time: joins, eager and cooperative
//! rebalances, a member the coordinator forgot, session expiry while the coordinator is
//! unreachable, a poll timeout, static members.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use strom_protocol::messages::join_group_response::JoinGroupResponseMember;
use strom_protocol::messages::JoinGroupResponse;
use strom_protocol::ErrorCode;

use super::classic::Classic;
use super::io::{Action, HandOverKind, Note, Request, Response};
use super::test_support::*;
use crate::consumer::assignor;
use crate::error::Error;
use crate::topic_partition::TopicPartition;
use crate::wire::s;

fn classic(assignors: &[&str]) -> Classic {
    Classic::new(
        assignors
            .iter()
            .map(|n| assignor::assignor_by_name(n).unwrap())
            .collect(),
    )
}

/// A member of generation 1 of group `g` as `m1`, holding `assignment`.
fn stable(assignors: &[&str], instance: Option<&str>, assignment: &[TopicPartition]) -> Drive<Classic> {
    let mut d = Drive::new(settings(instance), subscribe(&["t"]), classic(assignors));
    d.find();
    d.exchange(join_ok("m1", "leader", 1));
    d.exchange(sync_ok(assignment));
    assert_eq!(d.applied(HandOverKind::Assign), set(assignment));
    assert_eq!(d.m.commit_identity(), (1, "m1"));
    d
}

/// Answers heartbeats with NONE until `until` (the application polling throughout).
fn heartbeat_until(d: &mut Drive<Classic>, until: Duration) {
    while d.now.duration_since(d.start) < until {
        match d.action() {
            Action::Send(id, Request::Heartbeat(_)) => d.reply(id, heartbeat(ErrorCode::None)),
            Action::Wait(Some(t)) => {
                let by = t
                    .duration_since(d.now)
                    .min(until.saturating_sub(d.now.duration_since(d.start)));
                d.advance(by.max(Duration::from_millis(1)), true);
            }
            a => panic!("expected heartbeats, got {a:?}"),
        }
    }
}

#[test]
fn a_new_member_joins_with_the_id_the_coordinator_gives_then_heartbeats() {
    let mut d = Drive::new(settings(None), subscribe(&["t"]), classic(&["range"]));
    d.find();
    let Request::JoinGroup(first) = d.exchange(join_error(ErrorCode::MemberIdRequired, "m1")) else {
        panic!()
    };
    assert_eq!(first.member_id.as_str(), "");
    let Request::JoinGroup(second) = d.exchange(join_ok("m1", "leader", 1)) else {
        panic!()
    };
    assert_eq!(
        second.member_id.as_str(),
        "m1",
        "KIP-394: joins again with the id given"
    );
    assert_eq!(
        join_subscription(&Request::JoinGroup(second)).topics,
        vec!["t".to_owned()]
    );
    let Request::SyncGroup(sync) = d.exchange(sync_ok(&[tp("t", 0), tp("t", 1)])) else {
        panic!()
    };
    assert_eq!((sync.generation_id, sync.member_id.as_str()), (1, "m1"));
    assert!(sync.assignments.is_empty(), "a follower sends no assignment");
    let notes = d.notes();
    assert!(notes.contains(&Note::RebalanceStarted) && notes.contains(&Note::RebalanceSucceeded));
    assert!(notes.contains(&Note::Identity(1, "m1".into())));
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[0, 1]));
    let next = d.wait().unwrap();
    assert_eq!(next, d.now + HEARTBEAT, "the next heartbeat");
    d.advance(HEARTBEAT, true);
    let Request::Heartbeat(h) = d.exchange(heartbeat(ErrorCode::None)) else {
        panic!()
    };
    assert_eq!((h.generation_id, h.member_id.as_str()), (1, "m1"));
}

#[test]
fn the_leader_assigns_from_the_subscribed_topics_metadata() {
    let mut d = Drive::new(settings(None), subscribe(&["t"]), classic(&["range"]));
    d.find();
    let sub = assignor::Subscription::new(vec!["t".into()])
        .encode(assignor::CONSUMER_PROTOCOL_VERSION)
        .unwrap();
    let members = ["m1", "m2"]
        .iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m))
                .with_metadata(sub.clone())
        })
        .collect();
    let (id, _) = d.send();
    d.reply(
        id,
        Response::JoinGroup(
            JoinGroupResponse::default()
                .with_member_id(s("m1"))
                .with_leader(s("m1"))
                .with_generation_id(4)
                .with_protocol_name(Some(s("range")))
                .with_members(members),
        ),
    );
    let want = d.metadata(metadata(&[("t", 4)]));
    assert_eq!((want.topics, want.cached), (Some(vec!["t".to_owned()]), false));
    let Request::SyncGroup(sync) = d.exchange(sync_ok(&[tp("t", 0), tp("t", 1)])) else {
        panic!()
    };
    assert_eq!(sync.assignments.len(), 2);
    for a in &sync.assignments {
        let got = assignor::Assignment::decode(a.assignment.clone()).unwrap();
        assert_eq!(got.partitions.len(), 2, "range splits 4 partitions over 2 members");
    }
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[0, 1]));
}

#[test]
fn an_eager_member_revokes_everything_before_it_joins_again() {
    let mut d = stable(&["range"], None, &[tp("t", 0), tp("t", 1)]);
    d.advance(HEARTBEAT, true);
    d.exchange(heartbeat(ErrorCode::RebalanceInProgress));
    let h = d.hand_over();
    assert_eq!((h.kind, set(&h.partitions)), (HandOverKind::Revoke, tps("t", &[0, 1])));
    // Until the application is done, no JoinGroup: the partitions are still its.
    assert_eq!(d.m.owned(), &tps("t", &[0, 1]));
    d.advance(HEARTBEAT, true);
    let Request::Heartbeat(_) = d.exchange(heartbeat(ErrorCode::RebalanceInProgress)) else {
        panic!("heartbeats go on while the application revokes")
    };
    assert!(matches!(d.action(), Action::Wait(_)));
    d.m.handed_over(d.now);
    let join = d.exchange(join_ok("m1", "leader", 2));
    let sub = join_subscription(&join);
    assert!(sub.owned_partitions.is_empty(), "eager: joins owning nothing");
    assert_eq!(sub.generation_id, 1);
    d.exchange(sync_ok(&[tp("t", 1)]));
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[1]));
    assert_eq!(d.m.commit_identity(), (2, "m1"));
}

#[test]
fn a_cooperative_member_keeps_its_partitions_and_revokes_only_what_moves() {
    let mut d = stable(&["cooperative-sticky"], None, &[tp("t", 0), tp("t", 1), tp("t", 2)]);
    d.advance(HEARTBEAT, true);
    d.exchange(heartbeat(ErrorCode::RebalanceInProgress));
    let join = d.exchange(join_ok("m1", "leader", 2));
    assert_eq!(set(&join_subscription(&join).owned_partitions), tps("t", &[0, 1, 2]));
    d.exchange(sync_ok(&[tp("t", 0), tp("t", 1)]));
    let revoked = d.hand_over();
    assert_eq!(
        (revoked.kind, set(&revoked.partitions)),
        (HandOverKind::Revoke, tps("t", &[2]))
    );
    d.advance(HEARTBEAT, true);
    let Request::Heartbeat(h) = d.exchange(heartbeat(ErrorCode::None)) else {
        panic!("a heartbeat while the application revokes")
    };
    assert_eq!(h.generation_id, 2);
    d.m.handed_over(d.now);
    assert!(
        d.applied(HandOverKind::Assign).is_empty(),
        "nothing added, and the listener is told"
    );
    // KIP-429: joins again at once, so t-2 can go to its new owner.
    let join = d.exchange(join_ok("m1", "leader", 3));
    assert_eq!(set(&join_subscription(&join).owned_partitions), tps("t", &[0, 1]));
}

#[test]
fn a_cooperative_member_whose_generation_was_reset_loses_what_it_held_before_joining() {
    let mut d = stable(&["cooperative-sticky"], None, &[tp("t", 0)]);
    d.advance(HEARTBEAT, true);
    d.exchange(heartbeat(ErrorCode::RebalanceInProgress));
    d.exchange(join_ok("m1", "leader", 2));
    d.exchange(sync_error(ErrorCode::IllegalGeneration));
    // Java's onJoinPrepare: no generation to keep them in.
    assert_eq!(d.applied(HandOverKind::Lost), tps("t", &[0]));
    let join = d.exchange(join_ok("m1", "leader", 3));
    let sub = join_subscription(&join);
    assert!(sub.owned_partitions.is_empty());
    let Request::JoinGroup(j) = join else { panic!() };
    assert_eq!(j.member_id.as_str(), "m1", "ILLEGAL_GENERATION keeps the member id");
}

#[test]
fn a_member_the_coordinator_forgot_loses_its_partitions_and_joins_as_new() {
    let mut d = stable(&["range"], None, &[tp("t", 0), tp("t", 1)]);
    d.advance(HEARTBEAT, true);
    d.exchange(heartbeat(ErrorCode::UnknownMemberId));
    assert!(d.notes().contains(&Note::Identity(-1, String::new())));
    let h = d.hand_over();
    assert_eq!((h.kind, set(&h.partitions)), (HandOverKind::Lost, tps("t", &[0, 1])));
    assert!(
        matches!(d.action(), Action::Wait(_)),
        "no JoinGroup before the application dropped them"
    );
    d.m.handed_over(d.now);
    let Request::JoinGroup(j) = d.exchange(join_ok("m2", "leader", 2)) else {
        panic!()
    };
    assert_eq!(j.member_id.as_str(), "");
}

#[test]
fn session_expiry_while_the_coordinator_is_unreachable_loses_the_partitions() {
    let mut d = stable(&["range"], None, &[tp("t", 0)]);
    let last_answer = d.now;
    d.advance(HEARTBEAT, true);
    let (id, _) = d.send();
    d.m.handle_response(d.now, id, Err(Error::kafka(ErrorCode::NetworkException)));
    assert!(d.notes().iter().any(|n| matches!(n, Note::CoordinatorLost(_))));
    // The coordinator cannot be found again: lookups fail, each after a backoff.
    let mut lookups = 0;
    loop {
        match d.action() {
            Action::FindCoordinator(id) => {
                lookups += 1;
                d.m.coordinator_failed(d.now, id, &Error::kafka(ErrorCode::CoordinatorNotAvailable));
            }
            Action::Wait(Some(t)) => {
                assert!(t > d.now);
                let by = t.duration_since(d.now);
                d.advance(by, true);
            }
            Action::HandOver(h) => {
                assert_eq!((h.kind, set(&h.partitions)), (HandOverKind::Lost, tps("t", &[0])));
                assert_eq!(
                    d.now.duration_since(last_answer),
                    SESSION,
                    "lost at session.timeout.ms, not before"
                );
                break;
            }
            a => panic!("unexpected {a:?}"),
        }
    }
    assert!(lookups > 10, "lookups every retry.backoff.ms: {lookups}");
    d.m.handed_over(d.now);
    assert_eq!(d.m.commit_identity().0, -1);
}

/// Answers heartbeats while the application does not poll, until the member leaves for the
/// poll timeout: the LeaveGroup it sends, if any.
fn stop_polling(d: &mut Drive<Classic>) -> Option<(super::io::OpId, strom_protocol::messages::LeaveGroupRequest)> {
    loop {
        match d.action() {
            Action::Send(id, Request::Heartbeat(_)) => d.reply(id, heartbeat(ErrorCode::None)),
            Action::Send(id, Request::LeaveGroup(l)) => return Some((id, l)),
            Action::Wait(Some(t)) => {
                let by = t.duration_since(d.now);
                d.advance(by, false);
            }
            Action::Wait(None) => return None,
            a => panic!("unexpected {a:?}"),
        }
    }
}

#[test]
fn a_poll_timeout_leaves_and_the_next_poll_rejoins() {
    let mut d = stable(&["range"], None, &[tp("t", 0)]);
    let last_poll = d.now;
    let (id, l) = stop_polling(&mut d).expect("a LeaveGroup");
    assert_eq!(d.now.duration_since(last_poll), MAX_POLL);
    assert_eq!(l.members[0].member_id.as_str(), "m1");
    d.reply(id, Response::LeaveGroup(Default::default()));
    assert_eq!(d.wait(), None, "nothing until the application polls again");
    assert_eq!(
        d.m.commit_identity(),
        (1, "m1"),
        "a commit now is fenced by the coordinator"
    );
    d.advance(Duration::from_secs(60), false);
    assert_eq!(d.wait(), None);
    d.advance(Duration::from_millis(1), true);
    assert_eq!(d.applied(HandOverKind::Lost), tps("t", &[0]));
    let Request::JoinGroup(j) = d.exchange(join_ok("m2", "leader", 2)) else {
        panic!()
    };
    assert_eq!(j.member_id.as_str(), "", "joins as a new member");
}

#[test]
fn a_static_member_sends_no_leave_group() {
    let mut d = stable(&["range"], Some("i1"), &[tp("t", 0)]);
    let last_poll = d.now;
    // A poll timeout: no LeaveGroup, the partitions wait for it until the session ends.
    assert!(stop_polling(&mut d).is_none());
    assert_eq!(d.now.duration_since(last_poll), MAX_POLL);
    assert!(d.m.waiting_for_poll());
    // Closing: nothing to send, done at once.
    d.m.leave(d.now);
    assert!(matches!(d.action(), Action::Done));
}

#[test]
fn a_restarted_static_member_joins_with_its_instance_id_and_gets_its_partitions_back() {
    let d = stable(&["range"], Some("i1"), &[tp("t", 1)]);
    drop(d);
    let mut d = Drive::new(settings(Some("i1")), subscribe(&["t"]), classic(&["range"]));
    d.find();
    let Request::JoinGroup(j) = d.exchange(join_ok("m9", "leader", 1)) else {
        panic!()
    };
    assert_eq!(
        (j.member_id.as_str(), j.group_instance_id.as_ref().map(|i| i.as_str())),
        ("", Some("i1"))
    );
    let Request::SyncGroup(sync) = d.exchange(sync_ok(&[tp("t", 1)])) else {
        panic!()
    };
    assert_eq!(sync.generation_id, 1, "the same generation: no rebalance");
    assert_eq!(d.applied(HandOverKind::Assign), tps("t", &[1]));
}

#[test]
fn a_fenced_instance_id_is_fatal_and_the_partitions_are_lost() {
    let mut d = stable(&["range"], Some("i1"), &[tp("t", 0)]);
    d.advance(HEARTBEAT, true);
    d.exchange(heartbeat(ErrorCode::FencedInstanceId));
    match d.action() {
        Action::Fail(e) => assert_eq!(e.kafka_code(), Some(ErrorCode::FencedInstanceId)),
        a => panic!("expected the failure, got {a:?}"),
    }
    assert_eq!(d.applied(HandOverKind::Lost), tps("t", &[0]));
    assert!(
        matches!(d.action(), Action::Done),
        "a static member sends no LeaveGroup"
    );
}

#[test]
fn closing_sends_leave_group_and_waits_for_it_a_bounded_time() {
    let mut d = stable(&["range"], None, &[tp("t", 0)]);
    d.m.leave(d.now);
    let (_, r) = d.send();
    let Request::LeaveGroup(l) = r else { panic!() };
    assert_eq!(
        l.members[0].reason.as_ref().map(|r| r.as_str()),
        Some("the consumer is closing")
    );
    let until = d.wait().unwrap();
    assert_eq!(until, d.now + Duration::from_secs(5));
    d.advance(Duration::from_secs(5), true);
    assert!(matches!(d.action(), Action::Done));
}

#[test]
fn a_pattern_is_resolved_against_every_topic_and_followed() {
    let re = regex::Regex::new("^t.*$").unwrap();
    let mut d = Drive::new(
        settings(None),
        crate::consumer::state::Subscription::Pattern(re),
        classic(&["range"]),
    );
    let want = d.metadata(metadata(&[("t1", 1), ("x", 1)]));
    assert_eq!(want.topics, None);
    d.find();
    let join = d.exchange(join_ok("m1", "leader", 1));
    assert_eq!(join_subscription(&join).topics, vec!["t1".to_owned()]);
    d.exchange(sync_ok(&[tp("t1", 0)]));
    d.applied(HandOverKind::Assign);
    // metadata.max.age.ms later a new topic matches: the member joins again.
    heartbeat_until(&mut d, Duration::from_secs(300));
    d.metadata(metadata(&[("t1", 1), ("t2", 1), ("x", 1)]));
    assert_eq!(d.applied(HandOverKind::Revoke), tps("t1", &[0]), "eager: revokes first");
    let join = d.exchange(join_ok("m1", "leader", 2));
    assert_eq!(join_subscription(&join).topics, vec!["t1".to_owned(), "t2".to_owned()]);
}

#[test]
fn coordinator_errors_look_it_up_again_after_a_backoff() {
    let mut d = Drive::new(settings(None), subscribe(&["t"]), classic(&["range"]));
    d.find();
    d.exchange(join_error(ErrorCode::NotCoordinator, ""));
    assert_eq!(d.wait(), Some(d.now + BACKOFF));
    d.advance(BACKOFF, true);
    d.find();
    d.exchange(join_error(ErrorCode::GroupAuthorizationFailed, ""));
    match d.action() {
        Action::Fail(e) => assert_eq!(e.kafka_code(), Some(ErrorCode::GroupAuthorizationFailed)),
        a => panic!("expected the failure, got {a:?}"),
    }
    assert!(matches!(d.action(), Action::Done), "no member id: nothing to leave");
}
