//! Java's `RangeAssignor`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::protocol::{Assignment, AssignorError};
use super::shared::{
    check_unique, finish, member_info_order, subscribed_topics, topic_set, Assignor, MemberSubscription,
    RebalanceProtocol,
};
use crate::topic_partition::TopicPartition;

// ---------------------------------------------------------------------------------------------
// range

/// Java's `RangeAssignor` (`range`): per topic, the partitions in numeric order are split into
/// contiguous ranges over the members subscribed to it (static members first by
/// `group.instance.id`, then by member id); the first `partitions % members` members get one
/// extra. C0 and C1 on t0 and t1 of 3 partitions each: C0 gets t0p0, t0p1, t1p0, t1p1 and C1
/// gets t0p2, t1p2.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
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
        let mut out: Vec<Vec<TopicPartition>> = vec![Vec::new(); sorted.len()];
        for (&topic, &count) in &subscribed_topics(partitions_per_topic, members) {
            let consumers: Vec<usize> = (0..sorted.len()).filter(|&i| sets[i].contains(topic)).collect();
            if consumers.is_empty() {
                continue;
            }
            let topic: Arc<str> = Arc::from(topic);
            let per_member = count / consumers.len() as i32;
            let with_extra = count % consumers.len() as i32;
            for (i, &member) in (0i32..).zip(&consumers) {
                let start = per_member * i + i.min(with_extra);
                let len = per_member + i32::from(i < with_extra);
                out[member].extend((start..start + len).map(|p| TopicPartition {
                    topic: topic.clone(),
                    partition: p,
                }));
            }
        }
        Ok(finish(sorted.iter().map(|m| m.member_id.as_str()).zip(out)))
    }
}
