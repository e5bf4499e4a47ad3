//! Java's `RoundRobinAssignor`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::protocol::{Assignment, AssignorError};
use super::shared::{
    check_unique, finish, member_info_order, subscribed_topics, topic_set, Assignor, MemberSubscription,
    RebalanceProtocol,
};
use crate::topic_partition::TopicPartition;

// ---------------------------------------------------------------------------------------------
// roundrobin

/// Java's `RoundRobinAssignor` (`roundrobin`): every partition of every subscribed topic,
/// sorted by topic then partition, is dealt in turn to the members (static members first by
/// `group.instance.id`, then by member id), skipping members not subscribed to its topic.
/// C0 and C1 on t0 and t1 of 3 partitions each: C0 gets t0p0, t0p2, t1p1 and C1 gets t0p1,
/// t1p0, t1p2.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        check_unique(members)?;
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| member_info_order(a, b));
        let sets: Vec<BTreeSet<&str>> = sorted.iter().map(|m| topic_set(&m.subscription)).collect();
        let n = sorted.len();
        let mut out: Vec<Vec<TopicPartition>> = vec![Vec::new(); n];
        // Java's CircularIterator: peek until a subscribed member, give it the partition, step on.
        let mut next = 0usize;
        for (&topic, &count) in &subscribed_topics(partitions_per_topic, members) {
            let topic_arc: Arc<str> = Arc::from(topic);
            for partition in 0..count {
                let member = (0..n)
                    .map(|k| (next + k) % n)
                    .find(|&i| sets[i].contains(topic))
                    .ok_or(AssignorError::Internal(
                        "roundrobin: a subscribed topic has no subscriber",
                    ))?;
                out[member].push(TopicPartition {
                    topic: topic_arc.clone(),
                    partition,
                });
                next = (member + 1) % n;
            }
        }
        Ok(finish(sorted.iter().map(|m| m.member_id.as_str()).zip(out)))
    }
}
