//! A classic consumer group's coordinator (JoinGroup / SyncGroup / Heartbeat / LeaveGroup),
//! sans-IO: every call takes the time, and a request that must wait for other members is
//! answered by a later call (`join_result`, `sync_result`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_protocol::ErrorCode;

/// Where a group is in its rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A JoinGroup answer for one member.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) error: ErrorCode,
    pub(crate) generation: i32,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// For the leader only: every member with its metadata for the chosen protocol.
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    awaiting_join: bool,
    joined: Option<Joined>,
    pub(crate) assignment: Bytes,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| Some(n.as_str()) == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
}

/// One consumer group: its members, generation and committed offsets.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not joined yet.
    pending: BTreeMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    pub(crate) offsets: BTreeMap<(String, i32), Committed>,
}

/// What JoinGroup asks.
pub(crate) struct JoinArgs<'a> {
    pub(crate) member_id: &'a str,
    pub(crate) instance_id: Option<&'a str>,
    pub(crate) client_id: &'a str,
    pub(crate) protocol_type: &'a str,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    /// v4 and later: a member without an id is first given one (MEMBER_ID_REQUIRED).
    pub(crate) require_known_member_id: bool,
}

impl Group {
    pub(crate) fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline: None,
            offsets: BTreeMap::new(),
        }
    }

    /// A JoinGroup: `Ok(Some)` answers at once, `Ok(None)` means wait for `join_result`.
    pub(crate) fn join(&mut self, a: JoinArgs<'_>, now: Instant) -> Result<Option<Joined>, ErrorCode> {
        if a.protocols.is_empty() || a.protocol_type.is_empty() {
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        if !self.members.is_empty() && self.protocol_type != a.protocol_type {
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        if !self.members.is_empty()
            && !a
                .protocols
                .iter()
                .any(|(n, _)| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
        {
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        let mut member_id = a.member_id.to_owned();
        if member_id.is_empty() {
            // A static member keeps its id across restarts.
            if let Some(inst) = a.instance_id {
                if let Some((id, _)) = self
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_deref() == Some(inst))
                {
                    member_id = id.clone();
                }
            }
        }
        if member_id.is_empty() {
            member_id = format!("{}-{}", a.client_id, uuid::Uuid::new_v4());
            if a.require_known_member_id && a.instance_id.is_none() {
                self.pending.insert(member_id.clone(), now);
                return Ok(Some(Joined {
                    error: ErrorCode::MemberIdRequired,
                    generation: -1,
                    protocol: None,
                    leader: String::new(),
                    member_id,
                    members: Vec::new(),
                }));
            }
        } else if !self.members.contains_key(&member_id) && self.pending.remove(&member_id).is_none() {
            return Err(ErrorCode::UnknownMemberId);
        }
        self.protocol_type = a.protocol_type.to_owned();
        let m = self.members.entry(member_id.clone()).or_insert_with(|| Member {
            instance_id: a.instance_id.map(str::to_owned),
            client_id: a.client_id.to_owned(),
            protocols: Vec::new(),
            session_timeout: a.session_timeout,
            rebalance_timeout: a.rebalance_timeout,
            last_seen: now,
            awaiting_join: false,
            joined: None,
            assignment: Bytes::new(),
        });
        m.protocols = a.protocols;
        m.session_timeout = a.session_timeout;
        m.rebalance_timeout = a.rebalance_timeout;
        m.last_seen = now;
        m.awaiting_join = true;
        m.joined = None;
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.tick(now);
        Ok(self.join_result(&member_id, now))
    }

    /// The answer to a member's waiting JoinGroup, once the rebalance completed.
    pub(crate) fn join_result(&mut self, member_id: &str, now: Instant) -> Option<Joined> {
        self.tick(now);
        let m = self.members.get_mut(member_id)?;
        m.last_seen = now;
        m.joined.take()
    }

    /// The member id of a static member (`group.instance.id`), if it is in the group.
    pub(crate) fn member_of_instance(&self, instance_id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance_id))
            .map(|(id, _)| id.clone())
    }

    /// Whether a member's JoinGroup can still be answered (it was not removed meanwhile).
    pub(crate) fn is_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        self.state = GroupState::PreparingRebalance;
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        self.rebalance_deadline = Some(now + timeout);
    }

    /// Time passes: members whose session expired leave; a rebalance completes once every
    /// member joined or its deadline passed (the missing ones are removed).
    pub(crate) fn tick(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.awaiting_join && now.saturating_duration_since(m.last_seen) > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.members.remove(id);
            }
            self.member_left(now);
        }
        self.pending
            .retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(300));
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        let late = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !all_joined && !late {
            return;
        }
        self.members.retain(|_, m| m.awaiting_join);
        self.complete_join();
    }

    fn complete_join(&mut self) {
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        // The first protocol of the leader that every member supports.
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().cloned().unwrap_or_default(),
        };
        let protocol = self.members.get(&leader).and_then(|l| {
            l.protocols
                .iter()
                .map(|(n, _)| n.clone())
                .find(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
        });
        self.leader = Some(leader.clone());
        self.protocol = protocol.clone();
        self.state = GroupState::CompletingRebalance;
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.instance_id.clone(), m.metadata_for(protocol.as_deref())))
            .collect();
        let generation = self.generation;
        for (id, m) in &mut self.members {
            m.awaiting_join = false;
            m.assignment = Bytes::new();
            m.joined = Some(Joined {
                error: ErrorCode::None,
                generation,
                protocol: protocol.clone(),
                leader: leader.clone(),
                member_id: id.clone(),
                members: if *id == leader { all.clone() } else { Vec::new() },
            });
        }
    }

    fn member_left(&mut self, now: Instant) {
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.generation += 1;
            self.leader = None;
            self.protocol = None;
            self.rebalance_deadline = None;
        } else if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
    }

    fn check_member(&self, member_id: &str, generation: i32) -> Result<(), ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    /// A SyncGroup: `Ok(Some(assignment))` at once, `Ok(None)`: wait for `sync_result`.
    pub(crate) fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<Option<Bytes>, ErrorCode> {
        self.tick(now);
        self.check_member(member_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        if self.state == GroupState::CompletingRebalance && self.leader.as_deref() == Some(member_id) {
            for (id, a) in assignments {
                if let Some(m) = self.members.get_mut(&id) {
                    m.assignment = a;
                }
            }
            self.state = GroupState::Stable;
        }
        self.sync_result(member_id, generation, now)
    }

    /// The answer to a waiting SyncGroup, once the leader sent the assignments.
    pub(crate) fn sync_result(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<Option<Bytes>, ErrorCode> {
        self.tick(now);
        self.check_member(member_id, generation)?;
        match self.state {
            GroupState::PreparingRebalance => Err(ErrorCode::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_seen = now;
                }
                Ok(None)
            }
            GroupState::Stable => Ok(self.members.get(member_id).map(|m| m.assignment.clone())),
            GroupState::Empty => Err(ErrorCode::UnknownMemberId),
        }
    }

    pub(crate) fn heartbeat(&mut self, member_id: &str, generation: i32, now: Instant) -> ErrorCode {
        self.tick(now);
        if let Err(e) = self.check_member(member_id, generation) {
            return e;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            _ => ErrorCode::None,
        }
    }

    /// LeaveGroup of one member (by id, or by instance id for a static member).
    pub(crate) fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now: Instant) -> ErrorCode {
        let id = if member_id.is_empty() {
            instance_id.and_then(|inst| {
                self.members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_deref() == Some(inst))
                    .map(|(id, _)| id.clone())
            })
        } else {
            Some(member_id.to_owned())
        };
        match id.and_then(|id| self.members.remove(&id)) {
            Some(_) => {
                self.member_left(now);
                self.tick(now);
                ErrorCode::None
            }
            None => ErrorCode::UnknownMemberId,
        }
    }

    /// Whether an offset commit of this member and generation may be applied. As Kafka's
    /// classic groups: a member of the current generation commits while the group prepares
    /// a rebalance (an eager member commits what it revokes before it rejoins), but not while
    /// the rebalance completes (REBALANCE_IN_PROGRESS), unless in a transaction.
    pub(crate) fn may_commit(
        &mut self,
        member_id: &str,
        generation: i32,
        transactional: bool,
        now: Instant,
    ) -> ErrorCode {
        self.tick(now);
        if generation < 0 && member_id.is_empty() {
            // A commit outside group membership (assign mode, admin): only while no member
            // is in the group.
            return if self.members.is_empty() {
                ErrorCode::None
            } else {
                ErrorCode::UnknownMemberId
            };
        }
        if let Err(e) = self.check_member(member_id, generation) {
            return e;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return ErrorCode::RebalanceInProgress;
        }
        ErrorCode::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(id: &'a str, protocols: &[&str]) -> JoinArgs<'a> {
        JoinArgs {
            member_id: id,
            instance_id: None,
            client_id: "c",
            protocol_type: "consumer",
            protocols: protocols
                .iter()
                .map(|p| ((*p).to_owned(), Bytes::from_static(b"m")))
                .collect(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            require_known_member_id: true,
        }
    }

    fn joined_id(g: &mut Group, now: Instant) -> String {
        let r = g.join(args("", &["range"]), now).unwrap().unwrap();
        assert_eq!(r.error, ErrorCode::MemberIdRequired);
        r.member_id
    }

    #[test]
    fn two_members_join_sync_and_a_third_triggers_a_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new();
        let a = joined_id(&mut g, t0);
        let ja = g.join(args(&a, &["range"]), t0).unwrap().unwrap();
        assert_eq!(
            (ja.generation, ja.leader.as_str(), ja.members.len()),
            (1, a.as_str(), 1)
        );
        assert_eq!(
            g.sync(&a, 1, vec![(a.clone(), Bytes::from_static(b"A"))], t0)
                .unwrap()
                .unwrap(),
            "A"
        );
        assert_eq!(g.state, GroupState::Stable);
        // A second member: the rebalance waits for the first to rejoin.
        let b = joined_id(&mut g, t0);
        assert!(g.join(args(&b, &["range"]), t0).unwrap().is_none());
        assert_eq!(g.heartbeat(&a, 1, t0), ErrorCode::RebalanceInProgress);
        let ja = g.join(args(&a, &["range"]), t0).unwrap().unwrap();
        assert_eq!((ja.generation, ja.members.len()), (2, 2));
        let jb = g.join_result(&b, t0).unwrap();
        assert_eq!((jb.generation, jb.members.len(), jb.leader), (2, 0, a.clone()));
        // The follower waits for the leader's assignment.
        assert_eq!(g.sync(&b, 2, vec![], t0).unwrap(), None);
        let both = vec![
            (a.clone(), Bytes::from_static(b"A2")),
            (b.clone(), Bytes::from_static(b"B2")),
        ];
        assert_eq!(g.sync(&a, 2, both, t0).unwrap().unwrap(), "A2");
        assert_eq!(g.sync_result(&b, 2, t0).unwrap().unwrap(), "B2");
        assert_eq!(g.sync(&a, 1, vec![], t0).unwrap_err(), ErrorCode::IllegalGeneration);
        assert_eq!(g.may_commit(&b, 2, false, t0), ErrorCode::None);
        assert_eq!(g.may_commit("", -1, false, t0), ErrorCode::UnknownMemberId);
        // A third member: while the group prepares the rebalance, the members of generation 2
        // still commit; once it completes, until the assignment, only transactions do.
        let c = joined_id(&mut g, t0);
        assert!(g.join(args(&c, &["range"]), t0).unwrap().is_none());
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.may_commit(&a, 2, false, t0), ErrorCode::None);
        assert!(g.join(args(&b, &["range"]), t0).unwrap().is_none());
        assert!(g.join(args(&a, &["range"]), t0).unwrap().is_some());
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.may_commit(&a, 3, false, t0), ErrorCode::RebalanceInProgress);
        assert_eq!(g.may_commit(&a, 3, true, t0), ErrorCode::None);
        assert_eq!(g.may_commit(&a, 2, false, t0), ErrorCode::IllegalGeneration);
    }

    #[test]
    fn a_silent_member_is_expired_and_one_that_never_rejoins_is_dropped() {
        let t0 = Instant::now();
        let mut g = Group::new();
        let a = joined_id(&mut g, t0);
        g.join(args(&a, &["range"]), t0).unwrap().unwrap();
        g.sync(&a, 1, vec![], t0).unwrap();
        let b = joined_id(&mut g, t0);
        assert!(g.join(args(&b, &["range"]), t0).unwrap().is_none());
        // a never rejoins: after the rebalance timeout, b is alone.
        let later = t0 + Duration::from_secs(31);
        let jb = g.join_result(&b, later).unwrap();
        assert_eq!((jb.generation, jb.leader.clone(), jb.members.len()), (2, b.clone(), 1));
        assert!(!g.is_member(&a));
        // b stops heartbeating: its session expires and the group is empty.
        g.sync(&b, 2, vec![], later).unwrap();
        g.tick(later + Duration::from_secs(11));
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.heartbeat(&b, 2, later), ErrorCode::UnknownMemberId);
        assert_eq!(g.may_commit("", -1, false, later), ErrorCode::None);
    }

    #[test]
    fn unknown_members_and_mismatched_protocols_are_refused() {
        let t0 = Instant::now();
        let mut g = Group::new();
        assert_eq!(
            g.join(args("nobody", &["range"]), t0).unwrap_err(),
            ErrorCode::UnknownMemberId
        );
        let a = joined_id(&mut g, t0);
        g.join(args(&a, &["range"]), t0).unwrap().unwrap();
        let b = joined_id(&mut g, t0);
        assert_eq!(
            g.join(args(&b, &["sticky"]), t0).unwrap_err(),
            ErrorCode::InconsistentGroupProtocol
        );
        assert_eq!(g.leave(&a, None, t0), ErrorCode::None);
        assert_eq!(g.leave(&a, None, t0), ErrorCode::UnknownMemberId);
        assert_eq!(g.state, GroupState::Empty);
    }
}
