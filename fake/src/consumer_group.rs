//! KIP-848 consumer groups (ConsumerGroupHeartbeat), sans-IO: the coordinator computes a
//! target assignment (partitions of each subscribed topic spread over its members) and
//! reconciles each member towards it, never handing a partition to a member before the
//! member that owns it has revoked it. A member subscribes by names or by a regular
//! expression (`subscribed_topic_regex`), which the coordinator resolves against the topics
//! at every heartbeat, so a topic created later joins the subscription.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strom_protocol::ErrorCode;
use uuid::Uuid;

/// A partition by topic id.
pub(crate) type Tip = (Uuid, i32);

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) epoch: i32,
    pub(crate) instance_id: Option<String>,
    subscribed: BTreeSet<String>,
    /// The member's regular expression (whole topic names match), when it subscribed so.
    regex: Option<regex::Regex>,
    /// Partitions the member may consume now.
    assigned: BTreeSet<Tip>,
    /// Partitions it must give up before its next epoch.
    revoking: BTreeSet<Tip>,
    /// The assignment last sent (None: never sent).
    sent: Option<BTreeSet<Tip>>,
    last_seen: Instant,
    /// The client id of its heartbeats, and the rack it named (for ConsumerGroupDescribe).
    client_id: String,
    rack: Option<String>,
}

/// What a heartbeat asks.
pub(crate) struct Beat<'a> {
    pub(crate) member_id: &'a str,
    /// The request header's client id.
    pub(crate) client_id: &'a str,
    /// `rack_id`, when the member named one.
    pub(crate) rack: Option<&'a str>,
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<&'a str>,
    pub(crate) subscribed: Option<BTreeSet<String>>,
    /// `Some(Some(re))` subscribes by `re`, `Some(None)` drops the regex (an empty one), `None`
    /// keeps what the member had.
    pub(crate) regex: Option<Option<regex::Regex>>,
    pub(crate) owned: Option<BTreeSet<Tip>>,
}

/// What the coordinator answers.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    /// The member's whole assignment, when it changed.
    pub(crate) assignment: Option<BTreeSet<Tip>>,
}

/// A KIP-848 group as ConsumerGroupDescribe reports it.
pub(crate) struct Description {
    /// `Empty`, `Reconciling` (a member is not at the target yet) or `Stable`.
    pub(crate) state: &'static str,
    pub(crate) epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: Vec<DescribedMember>,
}

/// One member of a [`Description`].
pub(crate) struct DescribedMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack: Option<String>,
    pub(crate) epoch: i32,
    pub(crate) client_id: String,
    pub(crate) subscribed: Vec<String>,
    pub(crate) regex: Option<String>,
    /// What it may consume now.
    pub(crate) assigned: BTreeSet<Tip>,
    /// Where the coordinator moves it.
    pub(crate) target: BTreeSet<Tip>,
}

/// A KIP-848 group's membership and assignment.
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroup {
    pub(crate) epoch: i32,
    pub(crate) members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<Tip>>,
    target_epoch: i32,
}

impl ConsumerGroup {
    /// One heartbeat; `topics` names each topic's id and partition count.
    pub(crate) fn heartbeat(
        &mut self,
        b: Beat<'_>,
        topics: &BTreeMap<String, (Uuid, i32)>,
        session: Duration,
        now: Instant,
    ) -> Result<Answer, ErrorCode> {
        self.expire(session, now, topics);
        if b.member_epoch == -1 || b.member_epoch == -2 {
            if self.members.remove(b.member_id).is_some() {
                self.bump(topics);
            }
            return Ok(Answer {
                member_id: b.member_id.to_owned(),
                member_epoch: b.member_epoch,
                assignment: None,
            });
        }
        let id = if b.member_epoch == 0 {
            let id = if b.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                b.member_id.to_owned()
            };
            // A static member's new incarnation replaces the old one.
            if let Some(inst) = b.instance_id {
                self.members.retain(|_, m| m.instance_id.as_deref() != Some(inst));
            }
            self.members.insert(
                id.clone(),
                Member {
                    epoch: 0,
                    instance_id: b.instance_id.map(str::to_owned),
                    subscribed: BTreeSet::new(),
                    regex: None,
                    assigned: BTreeSet::new(),
                    revoking: BTreeSet::new(),
                    sent: None,
                    last_seen: now,
                    client_id: b.client_id.to_owned(),
                    rack: b.rack.map(str::to_owned),
                },
            );
            self.bump(topics);
            id
        } else {
            let m = self.members.get(b.member_id).ok_or(ErrorCode::UnknownMemberId)?;
            if b.member_epoch != m.epoch {
                return Err(ErrorCode::FencedMemberEpoch);
            }
            b.member_id.to_owned()
        };
        let mut changed = false;
        if let Some(m) = self.members.get_mut(&id) {
            m.last_seen = now;
            if let Some(rack) = b.rack {
                m.rack = Some(rack.to_owned());
            }
            if let Some(re) = b.regex {
                m.regex = re;
            }
            let sub = match &m.regex {
                Some(re) => Some(
                    topics
                        .keys()
                        .filter(|t| !t.starts_with("__") && re.is_match(t))
                        .cloned()
                        .collect(),
                ),
                None => b.subscribed,
            };
            if let Some(sub) = sub {
                if sub != m.subscribed {
                    m.subscribed = sub;
                    changed = true;
                }
            }
            // Revocation is acknowledged when the member no longer owns the partitions.
            if let Some(owned) = &b.owned {
                if !m.revoking.is_empty() && m.revoking.is_disjoint(owned) {
                    let revoked = std::mem::take(&mut m.revoking);
                    m.assigned.retain(|t| !revoked.contains(t));
                }
            }
        }
        if changed {
            self.bump(topics);
        }
        self.reconcile(&id);
        let m = self.members.get_mut(&id).ok_or(ErrorCode::UnknownMemberId)?;
        let now_assigned: BTreeSet<Tip> = m.assigned.difference(&m.revoking).copied().collect();
        let assignment = (m.sent.as_ref() != Some(&now_assigned)).then(|| now_assigned.clone());
        if assignment.is_some() {
            m.sent = Some(now_assigned);
        }
        Ok(Answer {
            member_id: id,
            member_epoch: m.epoch,
            assignment,
        })
    }

    /// The group as ConsumerGroupDescribe reports it.
    pub(crate) fn describe(&self) -> Description {
        let state = if self.members.is_empty() {
            "Empty"
        } else if self.members.values().any(|m| m.epoch != self.target_epoch) {
            "Reconciling"
        } else {
            "Stable"
        };
        Description {
            state,
            epoch: self.epoch,
            assignment_epoch: self.target_epoch,
            members: self
                .members
                .iter()
                .map(|(id, m)| DescribedMember {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack: m.rack.clone(),
                    epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    subscribed: m.subscribed.iter().cloned().collect(),
                    // The member's own expression: the coordinator anchored it to match whole.
                    regex: m.regex.as_ref().map(|re| {
                        let s = re.as_str();
                        s.strip_prefix("^(?:")
                            .and_then(|s| s.strip_suffix(")$"))
                            .unwrap_or(s)
                            .to_owned()
                    }),
                    assigned: m.assigned.difference(&m.revoking).copied().collect(),
                    target: self.target.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Whether an offset commit of `member_id` at `epoch` may be applied.
    pub(crate) fn may_commit(&self, member_id: &str, epoch: i32) -> ErrorCode {
        match self.members.get(member_id) {
            None => ErrorCode::UnknownMemberId,
            Some(m) if m.epoch != epoch => ErrorCode::StaleMemberEpoch,
            Some(_) => ErrorCode::None,
        }
    }

    /// Members whose session expired leave.
    fn expire(&mut self, session: Duration, now: Instant, topics: &BTreeMap<String, (Uuid, i32)>) {
        let before = self.members.len();
        self.members
            .retain(|_, m| now.saturating_duration_since(m.last_seen) <= session);
        if self.members.len() != before {
            self.bump(topics);
        }
    }

    /// A new group epoch and its target assignment: each subscribed topic's partitions
    /// dealt over its (sorted) subscribers, starting where the previous topic stopped.
    fn bump(&mut self, topics: &BTreeMap<String, (Uuid, i32)>) {
        self.epoch += 1;
        let mut target: BTreeMap<String, BTreeSet<Tip>> =
            self.members.keys().map(|id| (id.clone(), BTreeSet::new())).collect();
        let mut next = 0usize;
        for (name, (tid, count)) in topics {
            let subs: Vec<&String> = self
                .members
                .iter()
                .filter(|(_, m)| m.subscribed.contains(name))
                .map(|(id, _)| id)
                .collect();
            if subs.is_empty() {
                continue;
            }
            for p in 0..*count {
                let owner = subs[next % subs.len()];
                next += 1;
                target.entry(owner.clone()).or_default().insert((*tid, p));
            }
        }
        self.target = target;
        self.target_epoch = self.epoch;
    }

    /// Moves a member towards its target: revocations first; then the partitions no other
    /// member still holds; at its target it takes the target's epoch.
    fn reconcile(&mut self, id: &str) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let held_elsewhere: BTreeSet<Tip> = self
            .members
            .iter()
            .filter(|(other, _)| other.as_str() != id)
            .flat_map(|(_, m)| m.assigned.iter().copied())
            .collect();
        let target_epoch = self.target_epoch;
        let Some(m) = self.members.get_mut(id) else { return };
        let revoke: BTreeSet<Tip> = m.assigned.difference(&target).copied().collect();
        if !revoke.is_empty() {
            m.revoking = revoke;
            return;
        }
        for t in &target {
            if !held_elsewhere.contains(t) {
                m.assigned.insert(*t);
            }
        }
        if m.assigned == target {
            m.epoch = target_epoch;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> BTreeMap<String, (Uuid, i32)> {
        [("t".to_owned(), (Uuid::from_u128(7), 4))].into()
    }

    fn beat<'a>(id: &'a str, epoch: i32, owned: Option<&BTreeSet<Tip>>) -> Beat<'a> {
        Beat {
            member_id: id,
            client_id: "c",
            rack: None,
            member_epoch: epoch,
            instance_id: None,
            subscribed: Some(["t".to_owned()].into()),
            regex: None,
            owned: owned.cloned(),
        }
    }

    #[test]
    fn a_regex_subscription_follows_the_topics_that_match_it_whole() {
        let (s, now) = (Duration::from_secs(45), Instant::now());
        let mut t: BTreeMap<String, (Uuid, i32)> = [
            ("orders-eu".to_owned(), (Uuid::from_u128(1), 2)),
            ("orders-us".to_owned(), (Uuid::from_u128(2), 1)),
            ("my-orders-eu".to_owned(), (Uuid::from_u128(3), 1)),
            ("__consumer_offsets".to_owned(), (Uuid::from_u128(4), 1)),
        ]
        .into();
        let mut g = ConsumerGroup::default();
        let regex = regex::Regex::new("^(?:orders-.*)$").unwrap();
        let first = Beat {
            member_id: "a",
            client_id: "c",
            rack: Some("r1"),
            member_epoch: 0,
            instance_id: None,
            subscribed: None,
            regex: Some(Some(regex)),
            owned: None,
        };
        let a = g.heartbeat(first, &t, s, now).unwrap();
        let ids: BTreeSet<Uuid> = a.assignment.unwrap().iter().map(|(id, _)| *id).collect();
        // Whole names only ("my-orders-eu" contains a match), and no internal topic.
        assert_eq!(ids, [Uuid::from_u128(1), Uuid::from_u128(2)].into());
        // A topic created later joins at the next heartbeat; the regex is not sent again.
        t.insert("orders-apac".to_owned(), (Uuid::from_u128(5), 1));
        let owned: BTreeSet<Tip> = [
            (Uuid::from_u128(1), 0),
            (Uuid::from_u128(1), 1),
            (Uuid::from_u128(2), 0),
        ]
        .into();
        let again = Beat {
            member_id: "a",
            client_id: "c",
            rack: None,
            member_epoch: a.member_epoch,
            instance_id: None,
            subscribed: None,
            regex: None,
            owned: Some(owned),
        };
        let a2 = g.heartbeat(again, &t, s, now).unwrap();
        assert!(a2.member_epoch > a.member_epoch, "a new target epoch");
        // As ConsumerGroupDescribe reports it: the member's own expression, rack, client id.
        let d = g.describe();
        assert_eq!(d.members.len(), 1);
        let m = &d.members[0];
        assert_eq!(
            (m.regex.as_deref(), m.rack.as_deref(), m.client_id.as_str()),
            (Some("orders-.*"), Some("r1"), "c")
        );
        assert!(m.subscribed.contains(&"orders-apac".to_owned()));
        let parts = a2.assignment.unwrap();
        assert!(parts.contains(&(Uuid::from_u128(5), 0)), "{parts:?}");
        assert_eq!(parts.len(), 4);
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revoked_it() {
        let (t, s, now) = (topics(), Duration::from_secs(45), Instant::now());
        let mut g = ConsumerGroup::default();
        let a = g.heartbeat(beat("a", 0, None), &t, s, now).unwrap();
        let a_parts = a.assignment.clone().unwrap();
        assert_eq!((a_parts.len(), a.member_epoch), (4, g.epoch));
        // b joins: nothing for it until a gives up its half.
        let b = g.heartbeat(beat("b", 0, None), &t, s, now).unwrap();
        assert_eq!(b.assignment, Some(BTreeSet::new()));
        assert_eq!(b.member_epoch, 0);
        let a2 = g
            .heartbeat(beat("a", a.member_epoch, Some(&a_parts)), &t, s, now)
            .unwrap();
        let kept = a2.assignment.unwrap();
        assert_eq!(kept.len(), 2, "a is told to keep two");
        assert_eq!(a2.member_epoch, a.member_epoch, "no new epoch before revoking");
        // Still owned by a: b gets nothing yet.
        let b2 = g.heartbeat(beat("b", 0, Some(&BTreeSet::new())), &t, s, now).unwrap();
        assert!(b2.assignment.is_none() || b2.assignment == Some(BTreeSet::new()));
        // a acknowledges: it owns only what it kept, and moves to the new epoch.
        let a3 = g
            .heartbeat(beat("a", a2.member_epoch, Some(&kept)), &t, s, now)
            .unwrap();
        assert_eq!(a3.member_epoch, g.epoch);
        let b3 = g.heartbeat(beat("b", 0, Some(&BTreeSet::new())), &t, s, now).unwrap();
        let b_parts = b3.assignment.unwrap();
        assert_eq!(b_parts.len(), 2);
        assert!(b_parts.is_disjoint(&kept), "never two owners");
        assert_eq!(b3.member_epoch, g.epoch);
        // A stale epoch is fenced; an unknown member too.
        assert_eq!(
            g.heartbeat(beat("a", 1, None), &t, s, now).unwrap_err(),
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(
            g.heartbeat(beat("zz", 3, None), &t, s, now).unwrap_err(),
            ErrorCode::UnknownMemberId
        );
        assert_eq!(g.may_commit("b", b3.member_epoch), ErrorCode::None);
        assert_eq!(g.may_commit("b", 1), ErrorCode::StaleMemberEpoch);
        // b's session expires (a heartbeats meanwhile): a gets everything back.
        let a_alive = g
            .heartbeat(
                beat("a", a3.member_epoch, Some(&kept)),
                &t,
                s,
                now + Duration::from_secs(30),
            )
            .unwrap();
        let later = now + Duration::from_secs(46);
        let a4 = g
            .heartbeat(beat("a", a_alive.member_epoch, Some(&kept)), &t, s, later)
            .unwrap();
        assert_eq!(a4.assignment.unwrap().len(), 4);
        assert!(!g.members.contains_key("b"));
    }
}
