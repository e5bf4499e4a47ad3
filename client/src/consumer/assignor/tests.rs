#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::protocol::{Assignment, AssignorError, Subscription, CONSUMER_PROTOCOL_VERSION};
use super::shared::{subscribed_topics, topic_set, Assignor, MemberSubscription, RebalanceProtocol};
use super::sticky::{
    all_partitions, cooperative_member_data, decode_sticky_user_data, sticky_member_data, CooperativeStickyAssignor,
    StickyAssignor,
};
use super::*;

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

fn ppt(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
    topics.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
}

fn member(id: &str, topics: &[&str]) -> MemberSubscription {
    MemberSubscription {
        member_id: id.to_owned(),
        group_instance_id: None,
        subscription: Subscription::new(topics.iter().map(|t| (*t).to_owned()).collect()),
    }
}

fn parts(out: &BTreeMap<String, Assignment>, id: &str) -> Vec<TopicPartition> {
    out[id].partitions.clone()
}

/// Every member's next subscription as our consumer would send it after `out` at
/// `generation`: owned partitions, generation and the assignor's user data.
fn next_round(
    assignor: &dyn Assignor,
    members: &[MemberSubscription],
    out: &BTreeMap<String, Assignment>,
    generation: i32,
) -> Vec<MemberSubscription> {
    members
        .iter()
        .map(|m| {
            let owned = out.get(&m.member_id).map(|a| a.partitions.clone()).unwrap_or_default();
            let mut m = m.clone();
            m.subscription.user_data = assignor.subscription_user_data(&owned, generation);
            m.subscription.owned_partitions = owned;
            m.subscription.generation_id = generation;
            m
        })
        .collect()
}

// ---- range and roundrobin: Java's Javadoc examples

#[test]
fn range_matches_java_javadoc_example() {
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let out = RangeAssignor.assign(&ppt(&[("t0", 3), ("t1", 3)]), &members).unwrap();
    assert_eq!(
        parts(&out, "C0"),
        vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
    );
    assert_eq!(parts(&out, "C1"), vec![tp("t0", 2), tp("t1", 2)]);
}

#[test]
fn roundrobin_matches_java_javadoc_examples() {
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let out = RoundRobinAssignor
        .assign(&ppt(&[("t0", 3), ("t1", 3)]), &members)
        .unwrap();
    assert_eq!(parts(&out, "C0"), vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
    assert_eq!(parts(&out, "C1"), vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);

    // The second Javadoc example: members subscribed to different topics are skipped.
    let members = [
        member("C0", &["t0"]),
        member("C1", &["t0", "t1"]),
        member("C2", &["t0", "t1", "t2"]),
    ];
    let out = RoundRobinAssignor
        .assign(&ppt(&[("t0", 1), ("t1", 2), ("t2", 3)]), &members)
        .unwrap();
    assert_eq!(parts(&out, "C0"), vec![tp("t0", 0)]);
    assert_eq!(parts(&out, "C1"), vec![tp("t1", 0)]);
    assert_eq!(
        parts(&out, "C2"),
        vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
    );
}

#[test]
fn static_members_sort_first_by_instance_id() {
    let mut a = member("a", &["t"]);
    a.group_instance_id = Some("z".into());
    let b = member("b", &["t"]);
    let mut c = member("c", &["t"]);
    c.group_instance_id = Some("y".into());
    let members = [a, b, c];
    let out = RangeAssignor.assign(&ppt(&[("t", 3)]), &members).unwrap();
    assert_eq!(parts(&out, "c"), vec![tp("t", 0)]);
    assert_eq!(parts(&out, "a"), vec![tp("t", 1)]);
    assert_eq!(parts(&out, "b"), vec![tp("t", 2)]);
    let out = RoundRobinAssignor.assign(&ppt(&[("t", 4)]), &members).unwrap();
    assert_eq!(parts(&out, "c"), vec![tp("t", 0), tp("t", 3)]);
    assert_eq!(parts(&out, "a"), vec![tp("t", 1)]);
    assert_eq!(parts(&out, "b"), vec![tp("t", 2)]);
}

#[test]
fn missing_and_unsubscribed_topics_are_skipped_and_every_member_is_listed() {
    let members = [member("a", &["t", "gone"]), member("b", &[])];
    for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        let assignor = assignor_by_name(name).unwrap();
        let out = assignor.assign(&ppt(&[("t", 2), ("other", 5)]), &members).unwrap();
        assert_eq!(parts(&out, "a"), vec![tp("t", 0), tp("t", 1)], "{name}");
        assert_eq!(parts(&out, "b"), Vec::<TopicPartition>::new(), "{name}");
    }
}

#[test]
fn duplicate_member_ids_are_an_error() {
    let members = [member("a", &["t"]), member("a", &["t"])];
    for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        let err = assignor_by_name(name)
            .unwrap()
            .assign(&ppt(&[("t", 2)]), &members)
            .unwrap_err();
        assert_eq!(err, AssignorError::DuplicateMember("a".into()));
    }
}

#[test]
fn names_and_protocols() {
    for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        assert_eq!(assignor_by_name(name).unwrap().name(), name);
    }
    assert!(assignor_by_name("uniform").is_none());
    assert_eq!(
        CooperativeStickyAssignor.supported_protocols(),
        &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    );
    assert_eq!(StickyAssignor.supported_protocols(), &[RebalanceProtocol::Eager]);
    assert!(RebalanceProtocol::Cooperative > RebalanceProtocol::Eager);
    assert_eq!(tp("orders", 7).to_string(), "orders-7");
}

// ---- sticky

fn sizes(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
    out.values().map(|a| a.partitions.len()).collect()
}

#[test]
fn sticky_fresh_group_is_balanced() {
    let members: Vec<_> = ["c0", "c1", "c2"].iter().map(|id| member(id, &["t0", "t1"])).collect();
    let out = StickyAssignor.assign(&ppt(&[("t0", 5), ("t1", 4)]), &members).unwrap();
    assert_eq!(sizes(&out), vec![3, 3, 3]);
    // Java's constrainedAssign deals the sorted partitions round-robin over sorted members.
    assert_eq!(parts(&out, "c0"), vec![tp("t0", 0), tp("t0", 3), tp("t1", 1)]);
}

#[test]
fn sticky_member_leaving_moves_only_its_partitions() {
    let topics = ppt(&[("t0", 7), ("t1", 5)]);
    let members: Vec<_> = ["c0", "c1", "c2"].iter().map(|id| member(id, &["t0", "t1"])).collect();
    let first = StickyAssignor.assign(&topics, &members).unwrap();
    let mut next = next_round(&StickyAssignor, &members, &first, 1);
    // Eager: owned partitions travel in the user data only.
    for m in &mut next {
        m.subscription.owned_partitions.clear();
        m.subscription.generation_id = -1;
    }
    next.retain(|m| m.member_id != "c1");
    let second = StickyAssignor.assign(&topics, &next).unwrap();
    for id in ["c0", "c2"] {
        for p in &first[id].partitions {
            assert!(second[id].partitions.contains(p), "{id} lost {p}");
        }
    }
    assert_eq!(sizes(&second), vec![6, 6]);
}

#[test]
fn sticky_member_joining_moves_the_minimum() {
    let topics = ppt(&[("t0", 7), ("t1", 5)]);
    let mut members: Vec<_> = ["c0", "c1"].iter().map(|id| member(id, &["t0", "t1"])).collect();
    let first = StickyAssignor.assign(&topics, &members).unwrap();
    members = next_round(&StickyAssignor, &members, &first, 1);
    members.push(member("c2", &["t0", "t1"]));
    let second = StickyAssignor.assign(&topics, &members).unwrap();
    assert_eq!(sizes(&second), vec![4, 4, 4]);
    let moved: usize = ["c0", "c1"]
        .iter()
        .map(|id| {
            first[*id]
                .partitions
                .iter()
                .filter(|p| !second[*id].partitions.contains(p))
                .count()
        })
        .sum();
    assert_eq!(moved, second["c2"].partitions.len());
}

#[test]
fn sticky_user_data_round_trips_and_tolerates_garbage() {
    let owned = vec![tp("a", 1), tp("b", 0), tp("a", 3)];
    let data = StickyAssignor.subscription_user_data(&owned, 9).unwrap();
    let (partitions, generation) = decode_sticky_user_data(&data).unwrap();
    assert_eq!(partitions, vec![tp("a", 1), tp("a", 3), tp("b", 0)]);
    assert_eq!(generation, Some(9));
    assert!(StickyAssignor.subscription_user_data(&[], -1).is_none());
    // V0 (Java before 2.3): no generation.
    let v0 = &data[..data.len() - 4];
    assert_eq!(decode_sticky_user_data(v0).unwrap().1, None);
    // Truncations and a hostile count never panic.
    for len in 0..data.len() - 4 {
        let _ = decode_sticky_user_data(&data[..len]);
    }
    assert!(decode_sticky_user_data(&[0x7f, 0xff, 0xff, 0xff, 0, 1]).is_none());
    let s = Subscription {
        user_data: Some(Bytes::from_static(&[1, 2, 3])),
        ..Subscription::new(vec![])
    };
    let d = sticky_member_data(&s);
    assert!(d.partitions.is_empty());
    assert_eq!(d.generation, -1);
}

#[test]
fn sticky_higher_generation_claim_wins() {
    let topics = ppt(&[("t", 4)]);
    let mut c0 = member("c0", &["t"]);
    c0.subscription.user_data = StickyAssignor.subscription_user_data(&[tp("t", 0), tp("t", 1)], 5);
    let mut c1 = member("c1", &["t"]);
    c1.subscription.user_data = StickyAssignor.subscription_user_data(&[tp("t", 1), tp("t", 2)], 4);
    let out = StickyAssignor.assign(&topics, &[c0, c1]).unwrap();
    assert_eq!(parts(&out, "c0"), vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(parts(&out, "c1"), vec![tp("t", 2), tp("t", 3)]);
}

#[test]
fn sticky_general_path_is_complete_sticky_and_locally_balanced() {
    let topics = ppt(&[("a", 6), ("b", 6)]);
    let members = vec![member("c0", &["a"]), member("c1", &["a", "b"]), member("c2", &["b"])];
    let first = StickyAssignor.assign(&topics, &members).unwrap();
    assert_eq!(sizes(&first), vec![4, 4, 4]);
    check_complete(&topics, &members, &first, true);
    // c3 joins on both topics: everyone keeps what balance allows, c3 gets 3.
    let mut next = next_round(&StickyAssignor, &members, &first, 1);
    next.push(member("c3", &["a", "b"]));
    let second = StickyAssignor.assign(&topics, &next).unwrap();
    check_complete(&topics, &next, &second, true);
    assert_eq!(sizes(&second), vec![3, 3, 3, 3]);
    let moved: usize = ["c0", "c1", "c2"]
        .iter()
        .map(|id| {
            first[*id]
                .partitions
                .iter()
                .filter(|p| !second[*id].partitions.contains(p))
                .count()
        })
        .sum();
    assert_eq!(moved, 3);
}

// ---- cooperative-sticky

#[test]
fn cooperative_moves_partitions_in_two_rebalances() {
    let topics = ppt(&[("t0", 4), ("t1", 2)]);
    let a = &CooperativeStickyAssignor;
    let mut members: Vec<_> = ["c0", "c1"].iter().map(|id| member(id, &["t0", "t1"])).collect();
    let first = a.assign(&topics, &members).unwrap();
    assert_eq!(sizes(&first), vec![3, 3]);
    check_complete(&topics, &members, &first, true);

    members = next_round(a, &members, &first, 1);
    members.push(member("c2", &["t0", "t1"]));
    let second = a.assign(&topics, &members).unwrap();
    // Round 1: c0 and c1 each give one up; nobody gets it yet.
    assert_eq!(sizes(&second), vec![2, 2, 0]);
    let mut seen = BTreeSet::new();
    for (id, asg) in &second {
        assert!(asg.partitions.iter().all(|p| seen.insert(p.clone())), "{id}");
        assert!(
            asg.partitions.iter().all(|p| first[id].partitions.contains(p)),
            "{id} gained"
        );
    }
    let revoked: BTreeSet<_> = first
        .values()
        .flat_map(|a| a.partitions.clone())
        .filter(|p| !seen.contains(p))
        .collect();
    assert_eq!(revoked.len(), 2);

    // Round 2, after c0 and c1 revoked: c2 gets exactly those.
    members = next_round(a, &members, &second, 2);
    let third = a.assign(&topics, &members).unwrap();
    check_complete(&topics, &members, &third, true);
    assert_eq!(third["c2"].partitions.iter().cloned().collect::<BTreeSet<_>>(), revoked);
    assert_eq!(parts(&third, "c0"), parts(&second, "c0"));
    assert_eq!(parts(&third, "c1"), parts(&second, "c1"));
}

#[test]
fn cooperative_doubly_claimed_partition_is_withheld() {
    let topics = ppt(&[("t", 4)]);
    let mut c0 = member("c0", &["t"]);
    c0.subscription.owned_partitions = vec![tp("t", 0), tp("t", 1)];
    c0.subscription.generation_id = 3;
    let mut c1 = member("c1", &["t"]);
    c1.subscription.owned_partitions = vec![tp("t", 1), tp("t", 2)];
    c1.subscription.generation_id = 3;
    let out = CooperativeStickyAssignor
        .assign(&topics, &[c0.clone(), c1.clone()])
        .unwrap();
    assert_eq!(parts(&out, "c0"), vec![tp("t", 0)]);
    assert_eq!(parts(&out, "c1"), vec![tp("t", 2), tp("t", 3)]);
    // A newer generation's claim wins outright.
    c0.subscription.generation_id = 4;
    let out = CooperativeStickyAssignor.assign(&topics, &[c0, c1]).unwrap();
    assert_eq!(parts(&out, "c0"), vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(parts(&out, "c1"), vec![tp("t", 2), tp("t", 3)]);
}

#[test]
fn cooperative_user_data_is_the_generation() {
    let data = CooperativeStickyAssignor.subscription_user_data(&[], 7).unwrap();
    assert_eq!(&data[..], &[0, 0, 0, 7]);
    assert_eq!(
        &CooperativeStickyAssignor.subscription_user_data(&[], -1).unwrap()[..],
        &[0xff; 4]
    );
    // A v1 subscription (no generation field) carries it in the user data.
    let s = Subscription {
        user_data: Some(data),
        owned_partitions: vec![tp("t", 0)],
        ..Subscription::default()
    };
    let d = cooperative_member_data(&s);
    assert_eq!((d.generation, d.partitions), (7, vec![tp("t", 0)]));
    let s = Subscription {
        user_data: Some(Bytes::from_static(&[1])),
        ..Subscription::default()
    };
    assert_eq!(cooperative_member_data(&s).generation, -1);
    let s = Subscription {
        generation_id: 3,
        user_data: Some(Bytes::from_static(&[0, 0, 0, 9])),
        ..Subscription::default()
    };
    assert_eq!(cooperative_member_data(&s).generation, 3);
}

// ---- randomized invariants

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Every partition of every subscribed existing topic assigned exactly once
/// (`complete`) or at most once, only to members subscribed to its topic, nothing else.
fn check_complete(
    topics: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    out: &BTreeMap<String, Assignment>,
    complete: bool,
) {
    assert_eq!(out.len(), members.len());
    let mut seen = BTreeSet::new();
    for m in members {
        for p in &out[&m.member_id].partitions {
            assert!(
                m.subscription.topics.iter().any(|t| **t == *p.topic),
                "{p} to unsubscribed {}",
                m.member_id
            );
            assert!((0..topics[&*p.topic]).contains(&p.partition), "{p} does not exist");
            assert!(seen.insert(p.clone()), "{p} assigned twice");
        }
    }
    if complete {
        let expected: BTreeSet<_> = all_partitions(&subscribed_topics(topics, members)).collect();
        assert_eq!(seen, expected);
    }
}

/// No member with two or more partitions more than a member that could take one of them.
fn check_locally_balanced(members: &[MemberSubscription], out: &BTreeMap<String, Assignment>) {
    for a in members {
        let la = out[&a.member_id].partitions.len();
        for p in &out[&a.member_id].partitions {
            for b in members
                .iter()
                .filter(|b| b.subscription.topics.iter().any(|t| **t == *p.topic))
            {
                assert!(
                    out[&b.member_id].partitions.len() + 1 >= la,
                    "{p} could move to {}",
                    b.member_id
                );
            }
        }
    }
}

#[test]
fn random_groups_get_valid_assignments() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for case in 0..300 {
        let n_topics = 1 + rng.below(4);
        let topics: BTreeMap<String, i32> = (0..n_topics).map(|t| (format!("t{t}"), rng.below(9) as i32)).collect();
        let mut universe: Vec<String> = topics.keys().cloned().collect();
        universe.push("missing".into());
        let pick =
            |rng: &mut XorShift| -> Vec<String> { universe.iter().filter(|_| rng.below(3) != 0).cloned().collect() };
        let same = rng.below(2) == 0;
        let common = pick(&mut rng);
        let mut next_id = 0;
        let mut new_member = |rng: &mut XorShift| {
            next_id += 1;
            let topics = if same { common.clone() } else { pick(rng) };
            MemberSubscription {
                member_id: format!("m{:02}", (next_id * 7) % 100),
                group_instance_id: None,
                subscription: Subscription::new(topics),
            }
        };
        let initial: Vec<_> = (0..1 + rng.below(6)).map(|_| new_member(&mut rng)).collect();

        for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
            let assignor = assignor_by_name(name).unwrap();
            let cooperative = name == "cooperative-sticky";
            let sticky = name.contains("sticky");
            let mut members = initial.clone();
            let mut previous: Option<BTreeMap<String, Assignment>> = None;
            for round in 0..8 {
                let changed = round < 3 && rng.below(2) == 0;
                if changed {
                    if rng.below(2) == 0 && members.len() > 1 {
                        let i = rng.below(members.len() as u64) as usize;
                        members.remove(i);
                    } else {
                        members.push(new_member(&mut rng));
                    }
                }
                let out = assignor.assign(&topics, &members).unwrap();
                let settled = !cooperative || round >= 5;
                check_complete(&topics, &members, &out, settled);
                if cooperative {
                    // Never give a partition that another member still owns.
                    for (id, a) in &out {
                        for p in &a.partitions {
                            for m in members.iter().filter(|m| m.member_id != *id) {
                                assert!(
                                    !m.subscription.owned_partitions.contains(p),
                                    "case {case}: {p} owned twice"
                                );
                            }
                        }
                    }
                }
                if sticky && settled {
                    let all_same = members
                        .windows(2)
                        .all(|w| topic_set(&w[0].subscription) == topic_set(&w[1].subscription));
                    if all_same {
                        let s = sizes(&out);
                        assert!(
                            s.iter().max().unwrap_or(&0) - s.iter().min().unwrap_or(&0) <= 1,
                            "case {case} {name}: {s:?}"
                        );
                    } else {
                        check_locally_balanced(&members, &out);
                    }
                    // Stable: an unchanged group keeps a complete assignment as it is.
                    if let Some(prev) = previous.as_ref().filter(|_| !changed && round >= 6) {
                        assert_eq!(prev, &out, "case {case} {name} round {round}");
                    }
                }
                members = next_round(assignor.as_ref(), &members, &out, round + 1);
                previous = Some(out);
            }
        }
    }
}

#[test]
fn conflicting_and_bogus_claims_still_give_valid_assignments() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let topics = ppt(&[("a", 5), ("b", 3)]);
    for _ in 0..300 {
        let members: Vec<MemberSubscription> = (0..1 + rng.below(5))
            .map(|i| {
                let subscribed: &[&str] = if rng.below(3) == 0 { &["a"] } else { &["a", "b"] };
                let mut m = member(&format!("m{i}"), subscribed);
                m.subscription.owned_partitions = (0..rng.below(8))
                    .map(|_| tp(["a", "b", "zzz"][rng.below(3) as usize], rng.below(7) as i32 - 1))
                    .collect();
                m.subscription.generation_id = rng.below(4) as i32 - 1;
                m.subscription.user_data = StickyAssignor
                    .subscription_user_data(&m.subscription.owned_partitions, m.subscription.generation_id);
                m
            })
            .collect();
        check_complete(
            &topics,
            &members,
            &StickyAssignor.assign(&topics, &members).unwrap(),
            true,
        );
        check_complete(
            &topics,
            &members,
            &CooperativeStickyAssignor.assign(&topics, &members).unwrap(),
            false,
        );
    }
}

// ---- consumer protocol codec

fn sample_subscription() -> Subscription {
    Subscription {
        topics: vec!["foo".into(), "bar".into()],
        user_data: Some(Bytes::from_static(b"\x00\x01\x02")),
        owned_partitions: vec![tp("foo", 0), tp("foo", 2), tp("bar", 1)],
        generation_id: 12,
        rack_id: Some("rack-a".into()),
    }
}

#[test]
fn subscription_round_trips_every_version() {
    let full = sample_subscription();
    for version in 0..=CONSUMER_PROTOCOL_VERSION {
        let bytes = full.encode(version).unwrap();
        assert_eq!(&bytes[..2], &version.to_be_bytes());
        let decoded = Subscription::decode(bytes).unwrap();
        let mut expected = full.clone();
        if version < 1 {
            expected.owned_partitions.clear();
        }
        if version < 2 {
            expected.generation_id = -1;
        }
        if version < 3 {
            expected.rack_id = None;
        }
        assert_eq!(decoded, expected, "v{version}");
    }
    let empty = Subscription::default();
    assert_eq!(Subscription::decode(empty.encode(3).unwrap()).unwrap(), empty);
    assert!(matches!(
        full.encode(4),
        Err(AssignorError::UnsupportedVersion { version: 4, .. })
    ));
    assert!(matches!(full.encode(-1), Err(AssignorError::UnsupportedVersion { .. })));
}

#[test]
fn assignment_round_trips_every_version() {
    let full = Assignment {
        partitions: vec![tp("t1", 0), tp("t1", 1), tp("t0", 5)],
        user_data: Some(Bytes::from_static(b"xyz")),
    };
    for version in 0..=CONSUMER_PROTOCOL_VERSION {
        assert_eq!(
            Assignment::decode(full.encode(version).unwrap()).unwrap(),
            full,
            "v{version}"
        );
    }
    let empty = Assignment::default();
    assert_eq!(Assignment::decode(empty.encode(0).unwrap()).unwrap(), empty);
}

/// A Java big-endian string: i16 length, UTF-8.
fn s(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(&(v.len() as i16).to_be_bytes());
    out.extend_from_slice(v.as_bytes());
}

fn i32be(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// What Java's `ConsumerProtocol.serializeSubscription(new Subscription(["t0", "t1"]), 0)`
/// writes: version, topics, null user data.
fn java_subscription_v0() -> Vec<u8> {
    let mut b = vec![0, 0];
    i32be(&mut b, 2);
    s(&mut b, "t0");
    s(&mut b, "t1");
    i32be(&mut b, -1);
    b
}

/// Java 3.5+ cooperative-sticky at generation 5 owning foo-0 and foo-2 with
/// `client.rack=rack-a`: topics, user data (the generation), owned partitions by topic,
/// generation, rack.
fn java_subscription_v3() -> Vec<u8> {
    let mut b = vec![0, 3];
    i32be(&mut b, 1);
    s(&mut b, "foo");
    i32be(&mut b, 4);
    i32be(&mut b, 5);
    i32be(&mut b, 1);
    s(&mut b, "foo");
    i32be(&mut b, 2);
    i32be(&mut b, 0);
    i32be(&mut b, 2);
    i32be(&mut b, 5);
    s(&mut b, "rack-a");
    b
}

#[test]
fn decodes_java_subscriptions() {
    let v0 = Subscription::decode(Bytes::from(java_subscription_v0())).unwrap();
    assert_eq!(v0, Subscription::new(vec!["t0".into(), "t1".into()]));
    assert_eq!(&v0.encode(0).unwrap()[..], &java_subscription_v0()[..]);

    let v3 = Subscription::decode(Bytes::from(java_subscription_v3())).unwrap();
    let expected = Subscription {
        topics: vec!["foo".into()],
        user_data: Some(Bytes::from_static(&[0, 0, 0, 5])),
        owned_partitions: vec![tp("foo", 0), tp("foo", 2)],
        generation_id: 5,
        rack_id: Some("rack-a".into()),
    };
    assert_eq!(v3, expected);
    assert_eq!(&v3.encode(3).unwrap()[..], &java_subscription_v3()[..]);
    assert_eq!(cooperative_member_data(&v3).generation, 5);
}

#[test]
fn decodes_java_assignment() {
    // ConsumerProtocol.serializeAssignment(new Assignment([t0-0, t0-1, t1-0]), 0)
    let mut b = vec![0, 0];
    i32be(&mut b, 2);
    s(&mut b, "t0");
    i32be(&mut b, 2);
    i32be(&mut b, 0);
    i32be(&mut b, 1);
    s(&mut b, "t1");
    i32be(&mut b, 1);
    i32be(&mut b, 0);
    i32be(&mut b, -1);
    let a = Assignment::decode(Bytes::from(b.clone())).unwrap();
    assert_eq!(a.partitions, vec![tp("t0", 0), tp("t0", 1), tp("t1", 0)]);
    assert_eq!(a.user_data, None);
    assert_eq!(&a.encode(0).unwrap()[..], &b[..]);
}

#[test]
fn newer_versions_are_read_as_ours() {
    // A hypothetical v4 with a field we do not know after the v3 body.
    let mut b = java_subscription_v3();
    b[1] = 4;
    b.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let decoded = Subscription::decode(Bytes::from(b)).unwrap();
    assert_eq!(decoded.rack_id.as_deref(), Some("rack-a"));
    assert_eq!(decoded.generation_id, 5);

    let mut a = Assignment {
        partitions: vec![tp("x", 3)],
        user_data: None,
    }
    .encode(3)
    .unwrap()
    .to_vec();
    a[0] = 0x7f;
    a.push(1);
    assert_eq!(Assignment::decode(Bytes::from(a)).unwrap().partitions, vec![tp("x", 3)]);
}

#[test]
fn truncated_and_garbage_input_is_an_error_not_a_panic() {
    let sub = sample_subscription().encode(3).unwrap();
    for len in 0..sub.len() {
        assert!(
            Subscription::decode(sub.slice(..len)).is_err(),
            "subscription cut at {len}"
        );
    }
    let asg = Assignment {
        partitions: vec![tp("t", 1), tp("u", 2)],
        user_data: Some(Bytes::from_static(b"ud")),
    }
    .encode(1)
    .unwrap();
    for len in 0..asg.len() {
        assert!(Assignment::decode(asg.slice(..len)).is_err(), "assignment cut at {len}");
    }
    assert!(matches!(
        Subscription::decode(Bytes::from_static(&[0xff, 0xff])),
        Err(AssignorError::UnsupportedVersion { version: -1, .. })
    ));
    // Huge and negative counts with nothing behind them.
    assert!(Subscription::decode(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_err());
    assert!(Assignment::decode(Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff])).is_err());
    assert!(Subscription::decode(Bytes::from_static(&[0, 0, 0xff, 0xff, 0xff, 0xfe])).is_err());
    // Invalid UTF-8 in a topic name.
    assert!(Subscription::decode(Bytes::from_static(&[
        0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff
    ]))
    .is_err());
    // Random bytes: any result, no panic.
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for _ in 0..2000 {
        let len = rng.below(40) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        if let Some(v) = bytes.get_mut(0) {
            *v = 0;
        }
        if let Some(v) = bytes.get_mut(1) {
            *v %= 5;
        }
        let _ = Subscription::decode(Bytes::from(bytes.clone()));
        let _ = Assignment::decode(Bytes::from(bytes.clone()));
        let _ = decode_sticky_user_data(&bytes);
    }
}
