//! Offsets initializers: where splits start and stop (Flink's `OffsetsInitializer`), resolved
//! to concrete offsets through the admin client (Flink's `PartitionOffsetsRetrieverImpl`).
//!
//! The built-in initializers are constructors of [`OffsetsInitializer`]; a user-written one
//! implements [`CustomOffsetsInitializer`] (Flink's `OffsetsInitializer` interface) and is
//! wrapped with [`OffsetsInitializer::custom`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use strom_client::{Admin, IsolationLevel, OffsetReset, OffsetSpec};

use super::split::{KafkaPartitionSplit, TopicPartition};
use crate::{ConnectorError, Result};

/// What to do when an initializer finds no offset (no committed offset, a partition missing
/// from a specified map) and, through `auto.offset.reset`, when a starting offset is out of
/// range. Kafka's `OffsetResetStrategy`: `Earliest`, `Latest`, or `None` (fail).
pub type OffsetResetStrategy = OffsetReset;

/// What a [`CustomOffsetsInitializer`] returns: a future of one offset per partition asked
/// about. It may borrow the initializer, the partitions and the retriever.
pub type PartitionOffsetsFuture<'a> = Pin<Box<dyn Future<Output = Result<BTreeMap<TopicPartition, i64>>> + Send + 'a>>;

/// A user-written offsets initializer: Flink's `OffsetsInitializer` interface
/// (`getPartitionOffsets(partitions, retriever)` and `getAutoOffsetResetStrategy()`), for
/// where the built-in ones do not fit. Pass it to the builders as
/// [`OffsetsInitializer::custom`]`(my_initializer)`, as starting or stopping offsets.
///
/// The enumerator calls [`Self::partition_offsets`] when it discovers partitions, once per
/// discovery, with the new partitions this subtask owns (starting offsets: the initial
/// discovery only; partitions found later start at the earliest offset, as in Flink; stopping
/// offsets: every discovery). It decides nothing after that: a split restored from a
/// checkpoint continues from its checkpointed offset.
///
/// The returned map must hold exactly the partitions asked about, each with an offset `>= 0`
/// (the next record to read, or the first one not to read when stopping) or, for a starting
/// offset, one of the markers [`KafkaPartitionSplit::EARLIEST_OFFSET`],
/// [`KafkaPartitionSplit::LATEST_OFFSET`], [`KafkaPartitionSplit::COMMITTED_OFFSET`] (resolved
/// right away through the retriever). A partition missing from the map, one not asked about,
/// or any other negative value fails the discovery with [`ConnectorError::Config`] naming the
/// partition; an error the initializer returns fails it too, as it is.
///
/// ```
/// use std::collections::BTreeMap;
/// use strom_connector::source::{
///     CustomOffsetsInitializer, OffsetResetStrategy, OffsetsInitializer, PartitionOffsetsFuture,
///     PartitionOffsetsRetriever, TopicPartition,
/// };
///
/// /// Starts `n` records before the end of each partition (at its start when it has fewer).
/// struct LastN(i64);
///
/// impl CustomOffsetsInitializer for LastN {
///     fn partition_offsets<'a>(
///         &'a self,
///         partitions: &'a [TopicPartition],
///         retriever: &'a PartitionOffsetsRetriever,
///     ) -> PartitionOffsetsFuture<'a> {
///         Box::pin(async move {
///             let begin = retriever.beginning_offsets(partitions).await?;
///             let end = retriever.end_offsets(partitions).await?;
///             Ok(end
///                 .into_iter()
///                 .map(|(tp, e)| {
///                     let b = begin.get(&tp).copied().unwrap_or(0);
///                     (tp, (e - self.0).max(b))
///                 })
///                 .collect::<BTreeMap<_, _>>())
///         })
///     }
///
///     fn auto_offset_reset_strategy(&self) -> OffsetResetStrategy {
///         OffsetResetStrategy::Latest
///     }
/// }
///
/// let starting = OffsetsInitializer::custom(LastN(10));
/// assert_eq!(starting.auto_offset_reset_strategy(), OffsetResetStrategy::Latest);
/// ```
pub trait CustomOffsetsInitializer: Send + Sync {
    /// An offset for every partition of `partitions` (Flink's `getPartitionOffsets`), looked
    /// up through `retriever` as needed. Never called with an empty slice.
    fn partition_offsets<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        retriever: &'a PartitionOffsetsRetriever,
    ) -> PartitionOffsetsFuture<'a>;

    /// The `auto.offset.reset` of the readers' consumer when this initializer gives the
    /// starting offsets (Flink's `getAutoOffsetResetStrategy`): what a reader does when a
    /// starting offset is out of range.
    fn auto_offset_reset_strategy(&self) -> OffsetResetStrategy;

    /// Whether the initializer reads the group's committed offsets, so the source needs
    /// `group.id` (Flink's `OffsetsInitializerValidator`); checked when the source is built.
    /// Default false: without a group, [`PartitionOffsetsRetriever::committed_offsets`] finds
    /// none.
    fn requires_group_id(&self) -> bool {
        false
    }
}

#[derive(Clone)]
enum Kind {
    Earliest,
    Latest,
    Committed(OffsetReset),
    Timestamp(i64),
    Specified {
        offsets: BTreeMap<TopicPartition, i64>,
        reset: OffsetReset,
    },
    Custom(Arc<dyn CustomOffsetsInitializer>),
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Earliest => f.write_str("Earliest"),
            Kind::Latest => f.write_str("Latest"),
            Kind::Committed(r) => f.debug_tuple("Committed").field(r).finish(),
            Kind::Timestamp(t) => f.debug_tuple("Timestamp").field(t).finish(),
            Kind::Specified { offsets, reset } => f
                .debug_struct("Specified")
                .field("offsets", offsets)
                .field("reset", reset)
                .finish(),
            Kind::Custom(c) => f
                .debug_tuple("Custom")
                .field(&format_args!("{:p}", Arc::as_ptr(c)))
                .finish(),
        }
    }
}

/// Built-in initializers compare by value, custom ones by identity (the same `Arc`, that is
/// clones of one [`OffsetsInitializer::custom`]).
impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Kind::Earliest, Kind::Earliest) | (Kind::Latest, Kind::Latest) => true,
            (Kind::Committed(a), Kind::Committed(b)) => a == b,
            (Kind::Timestamp(a), Kind::Timestamp(b)) => a == b,
            (Kind::Specified { offsets, reset }, Kind::Specified { offsets: o2, reset: r2 }) => {
                offsets == o2 && reset == r2
            }
            (Kind::Custom(a), Kind::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Kind {}

/// Where each partition starts (or stops): Flink's `OffsetsInitializer` factories
/// ([`Self::earliest`], [`Self::latest`], [`Self::committed_offsets`], [`Self::timestamp`],
/// [`Self::offsets`]) and a user's own ([`Self::custom`], a [`CustomOffsetsInitializer`]).
/// Cheap to clone.
///
/// Resolved with [`OffsetsInitializer::resolve`] to a concrete offset per partition; "latest"
/// is the high watermark, or the last stable offset when the source reads `read_committed`.
/// Equality compares the built-in ones by value and custom ones by identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsInitializer {
    kind: Kind,
}

impl OffsetsInitializer {
    /// The log start offset of each partition (the default starting offsets).
    pub fn earliest() -> Self {
        OffsetsInitializer { kind: Kind::Earliest }
    }

    /// The log end offset of each partition when resolved (as a stopping initializer: the end
    /// offsets when the source starts). Under `read_committed`, the last stable offset.
    pub fn latest() -> Self {
        OffsetsInitializer { kind: Kind::Latest }
    }

    /// The group's committed offsets; a partition without one uses `reset`.
    /// `OffsetResetStrategy::None` is Flink's `committedOffsets()`: a partition without a
    /// committed offset is an error. Needs `group.id`.
    pub fn committed_offsets(reset: OffsetResetStrategy) -> Self {
        OffsetsInitializer {
            kind: Kind::Committed(reset),
        }
    }

    /// The first offset whose record timestamp is `>= timestamp_ms`; the end offset when there
    /// is none (a partition with no such record yet). Must not be negative.
    pub fn timestamp(timestamp_ms: i64) -> Self {
        OffsetsInitializer {
            kind: Kind::Timestamp(timestamp_ms),
        }
    }

    /// The given offsets; a partition not in the map uses its committed offset (when a group is
    /// set), else the earliest offset. Values may be concrete offsets or the split markers
    /// [`KafkaPartitionSplit::EARLIEST_OFFSET`], [`KafkaPartitionSplit::LATEST_OFFSET`],
    /// [`KafkaPartitionSplit::COMMITTED_OFFSET`].
    pub fn offsets(offsets: impl IntoIterator<Item = (TopicPartition, i64)>) -> Self {
        Self::offsets_with_reset(offsets, OffsetReset::Earliest)
    }

    /// [`Self::offsets`] with `reset` for partitions missing from the map (and with no committed
    /// offset) and for out-of-range starting offsets; `OffsetResetStrategy::None` makes a
    /// missing partition an error.
    pub fn offsets_with_reset(
        offsets: impl IntoIterator<Item = (TopicPartition, i64)>,
        reset: OffsetResetStrategy,
    ) -> Self {
        OffsetsInitializer {
            kind: Kind::Specified {
                offsets: offsets.into_iter().collect(),
                reset,
            },
        }
    }

    /// A user-written initializer (Flink's custom `OffsetsInitializer`); see
    /// [`CustomOffsetsInitializer`] for what it must return.
    pub fn custom(initializer: impl CustomOffsetsInitializer + 'static) -> Self {
        Self::from_custom(Arc::new(initializer))
    }

    /// [`Self::custom`] from a shared trait object.
    pub fn from_custom(initializer: Arc<dyn CustomOffsetsInitializer>) -> Self {
        OffsetsInitializer {
            kind: Kind::Custom(initializer),
        }
    }

    /// Whether this is a [`Self::custom`] initializer.
    pub fn is_custom(&self) -> bool {
        matches!(self.kind, Kind::Custom(_))
    }

    /// The `auto.offset.reset` a reader's consumer gets when this initializer gives the starting
    /// offsets (Flink's `getAutoOffsetResetStrategy`): earliest → earliest, latest → latest,
    /// committed → its reset, timestamp → latest, specified → its reset, custom → what it says.
    pub fn auto_offset_reset_strategy(&self) -> OffsetResetStrategy {
        match &self.kind {
            Kind::Earliest => OffsetReset::Earliest,
            Kind::Latest | Kind::Timestamp(_) => OffsetReset::Latest,
            Kind::Committed(reset) => *reset,
            Kind::Specified { reset, .. } => *reset,
            Kind::Custom(c) => c.auto_offset_reset_strategy(),
        }
    }

    /// Whether a consumer group's `auto.offset.reset` says all this initializer means for a
    /// partition the group has no committed offset for (earliest, latest, committed with a
    /// reset): what elastic mode can honour.
    pub(crate) fn is_a_reset(&self) -> bool {
        matches!(self.kind, Kind::Earliest | Kind::Latest | Kind::Committed(_))
    }

    /// Whether resolving may need the group's committed offsets, so `group.id` must be set
    /// (Flink's `OffsetsInitializerValidator`). A specified map only needs it for
    /// [`KafkaPartitionSplit::COMMITTED_OFFSET`] values: for missing partitions the committed
    /// lookup is skipped without a group.
    pub fn requires_group_id(&self) -> bool {
        match &self.kind {
            Kind::Committed(_) => true,
            Kind::Specified { offsets, .. } => offsets.values().any(|o| *o == KafkaPartitionSplit::COMMITTED_OFFSET),
            Kind::Custom(c) => c.requires_group_id(),
            _ => false,
        }
    }

    /// Checks values that can be wrong before any lookup: a negative timestamp, a negative
    /// specified offset that is no marker.
    pub fn validate(&self) -> Result<()> {
        match &self.kind {
            Kind::Timestamp(ts) if *ts < 0 => Err(ConnectorError::Config(format!(
                "OffsetsInitializer::timestamp({ts}): the timestamp must not be negative"
            ))),
            Kind::Specified { offsets, .. } => match offsets.iter().find(|(_, o)| **o < 0 && !is_marker(**o)) {
                Some((tp, o)) => Err(ConnectorError::Config(format!(
                    "specified offset {o} for {tp}: expected an offset >= 0 or a marker \
                         (-1 latest, -2 earliest, -3 committed)"
                ))),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A concrete offset for every partition of `partitions`, looked up through `retriever`.
    ///
    /// Fails with [`ConnectorError::Config`] when the initializer is invalid, when a group is
    /// needed but not set, or when a partition has no committed offset and the reset strategy
    /// is `None`; with [`ConnectorError::Client`] when a lookup fails (unknown topic...).
    pub async fn resolve(
        &self,
        partitions: &[TopicPartition],
        retriever: &PartitionOffsetsRetriever,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.validate()?;
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        match &self.kind {
            Kind::Earliest => retriever.beginning_offsets(partitions).await,
            Kind::Latest => retriever.end_offsets(partitions).await,
            Kind::Committed(reset) => {
                let group = retriever.require_group("committed offsets", partitions)?;
                let mut out = retriever.committed_offsets(partitions).await?;
                let missing: Vec<TopicPartition> =
                    partitions.iter().filter(|tp| !out.contains_key(*tp)).cloned().collect();
                out.extend(reset_offsets(&missing, *reset, retriever, Some(group)).await?);
                Ok(out)
            }
            Kind::Timestamp(ts) => {
                // End offsets first, as Flink does: a record appended between the two lookups
                // is then read rather than skipped.
                let end = retriever.end_offsets(partitions).await?;
                let mut out = retriever.offsets_for_times(partitions, *ts).await?;
                for (tp, o) in end {
                    out.entry(tp).or_insert(o);
                }
                Ok(out)
            }
            Kind::Specified { offsets, reset } => resolve_specified(offsets, *reset, partitions, retriever).await,
            Kind::Custom(custom) => {
                let returned = custom.partition_offsets(partitions, retriever).await?;
                check_custom(partitions, returned, retriever).await
            }
        }
    }
}

/// Checks what a custom initializer returned against what it was asked, and resolves the
/// markers it may use, so splits always hold concrete offsets.
async fn check_custom(
    partitions: &[TopicPartition],
    returned: BTreeMap<TopicPartition, i64>,
    retriever: &PartitionOffsetsRetriever,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let asked: BTreeSet<&TopicPartition> = partitions.iter().collect();
    if let Some(tp) = returned.keys().find(|tp| !asked.contains(tp)) {
        return Err(ConnectorError::Config(format!(
            "the custom offsets initializer returned an offset for {tp}, which it was not asked about              (asked: {})",
            list(partitions)
        )));
    }
    let missing: Vec<TopicPartition> = partitions
        .iter()
        .filter(|tp| !returned.contains_key(*tp))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ConnectorError::Config(format!(
            "the custom offsets initializer returned no offset for {}",
            list(&missing)
        )));
    }
    if let Some((tp, o)) = returned.iter().find(|(_, o)| **o < 0 && !is_marker(**o)) {
        return Err(ConnectorError::Config(format!(
            "the custom offsets initializer returned offset {o} for {tp}: expected an offset >= 0 or a marker              (-1 latest, -2 earliest, -3 committed)"
        )));
    }
    // Markers resolve as in a specified map, without a fallback: a COMMITTED_OFFSET marker
    // for a partition with no committed offset is an error.
    resolve_specified(&returned, OffsetReset::None, partitions, retriever).await
}

/// A specified map: concrete offsets as given, markers looked up, missing partitions from the
/// group's committed offsets (when there is a group), then `reset`.
async fn resolve_specified(
    offsets: &BTreeMap<TopicPartition, i64>,
    reset: OffsetReset,
    partitions: &[TopicPartition],
    retriever: &PartitionOffsetsRetriever,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let mut out = BTreeMap::new();
    let (mut earliest, mut latest, mut committed, mut missing) = (vec![], vec![], vec![], vec![]);
    for tp in partitions {
        match offsets.get(tp) {
            Some(&o) if o >= 0 => {
                out.insert(tp.clone(), o);
            }
            Some(&KafkaPartitionSplit::EARLIEST_OFFSET) => earliest.push(tp.clone()),
            Some(&KafkaPartitionSplit::LATEST_OFFSET) => latest.push(tp.clone()),
            Some(_) => committed.push(tp.clone()),
            None => missing.push(tp.clone()),
        }
    }
    out.extend(retriever.beginning_offsets(&earliest).await?);
    out.extend(retriever.end_offsets(&latest).await?);
    if !committed.is_empty() {
        retriever.require_group("a COMMITTED_OFFSET marker", &committed)?;
    }
    // Partitions not in the map: their committed offset when there is a group
    // (Flink's SpecifiedOffsetsInitializer), then the reset strategy.
    let lookup: Vec<TopicPartition> = match retriever.group_id() {
        Some(_) => committed.iter().chain(&missing).cloned().collect(),
        None => Vec::new(),
    };
    let found = retriever.committed_offsets(&lookup).await?;
    let unresolved: Vec<TopicPartition> = committed
        .into_iter()
        .chain(missing)
        .filter(|tp| !found.contains_key(tp))
        .collect();
    out.extend(found);
    out.extend(reset_offsets(&unresolved, reset, retriever, retriever.group_id()).await?);
    Ok(out)
}

/// The Flink default: start from the earliest offsets.
impl Default for OffsetsInitializer {
    fn default() -> Self {
        Self::earliest()
    }
}

fn is_marker(o: i64) -> bool {
    matches!(
        o,
        KafkaPartitionSplit::EARLIEST_OFFSET
            | KafkaPartitionSplit::LATEST_OFFSET
            | KafkaPartitionSplit::COMMITTED_OFFSET
    )
}

async fn reset_offsets(
    partitions: &[TopicPartition],
    reset: OffsetReset,
    retriever: &PartitionOffsetsRetriever,
    group: Option<&str>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    match reset {
        OffsetReset::Earliest => retriever.beginning_offsets(partitions).await,
        OffsetReset::Latest => retriever.end_offsets(partitions).await,
        OffsetReset::None => Err(ConnectorError::Config(format!(
            "no initial offset for {} (group {}) and the reset strategy is None",
            list(partitions),
            group.unwrap_or("<none>")
        ))),
    }
}

fn list(partitions: &[TopicPartition]) -> String {
    let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// Looks offsets up for initializers through an [`Admin`] (Flink's
/// `PartitionOffsetsRetrieverImpl`): ListOffsets per topic, OffsetFetch for the group.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct PartitionOffsetsRetriever {
    admin: Admin,
    group_id: Option<String>,
    read_committed: bool,
}

impl PartitionOffsetsRetriever {
    /// A retriever for `group_id` (needed for committed offsets only); `isolation` decides
    /// what "end offset" means (high watermark, or last stable offset for read_committed).
    pub fn new(admin: Admin, group_id: Option<String>, isolation: IsolationLevel) -> Self {
        PartitionOffsetsRetriever {
            admin,
            group_id,
            read_committed: isolation == IsolationLevel::ReadCommitted,
        }
    }

    /// The group whose committed offsets are read.
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn require_group(&self, what: &str, partitions: &[TopicPartition]) -> Result<&str> {
        self.group_id.as_deref().ok_or_else(|| {
            ConnectorError::Config(format!(
                "group.id is required because {} start or stop at {what}",
                list(partitions)
            ))
        })
    }

    /// Log start offsets.
    pub async fn beginning_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list(partitions, OffsetSpec::Earliest).await
    }

    /// Log end offsets (the last stable offsets under read_committed).
    pub async fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list(partitions, OffsetSpec::Latest).await
    }

    /// Per partition, the first offset whose record timestamp is `>= ` the partition's
    /// timestamp (Flink's `offsetsForTimes(Map<TopicPartition, Long>)`); partitions with no
    /// such record are left out.
    pub async fn offsets_for_timestamps(
        &self,
        timestamps: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_time: BTreeMap<i64, Vec<TopicPartition>> = BTreeMap::new();
        for (tp, ts) in timestamps {
            if *ts < 0 {
                return Err(ConnectorError::Config(format!(
                    "offsets_for_timestamps: timestamp {ts} for {tp} is negative"
                )));
            }
            by_time.entry(*ts).or_default().push(tp.clone());
        }
        let mut out = BTreeMap::new();
        for (ts, tps) in by_time {
            out.extend(self.offsets_for_times(&tps, ts).await?);
        }
        Ok(out)
    }

    /// The first offset with a timestamp `>= timestamp_ms` per partition; partitions with no
    /// such record are left out.
    pub async fn offsets_for_times(
        &self,
        partitions: &[TopicPartition],
        timestamp_ms: i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut out = self.list(partitions, OffsetSpec::Timestamp(timestamp_ms)).await?;
        out.retain(|_, o| *o >= 0);
        Ok(out)
    }

    /// The group's committed offsets of `partitions`; partitions without one (and every
    /// partition when no group is set) are left out.
    pub async fn committed_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        let Some(group) = &self.group_id else {
            return Ok(BTreeMap::new());
        };
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let all = self.admin.group_offsets(group).await?;
        Ok(partitions
            .iter()
            .filter_map(|tp| {
                all.get(&(tp.topic.to_string(), tp.partition))
                    .filter(|o| **o >= 0)
                    .map(|o| (tp.clone(), *o))
            })
            .collect())
    }

    async fn list(&self, partitions: &[TopicPartition], spec: OffsetSpec) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&*tp.topic).or_default().push(tp.partition);
        }
        let mut out = BTreeMap::new();
        for (topic, parts) in by_topic {
            let listed = self
                .admin
                .list_offsets_isolated(topic, &parts, spec, self.read_committed)
                .await?;
            out.extend(
                listed
                    .into_iter()
                    .map(|l| (TopicPartition::new(topic, l.partition), l.offset)),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn reset_strategies_follow_flink() {
        assert_eq!(
            OffsetsInitializer::earliest().auto_offset_reset_strategy(),
            OffsetReset::Earliest
        );
        assert_eq!(
            OffsetsInitializer::latest().auto_offset_reset_strategy(),
            OffsetReset::Latest
        );
        assert_eq!(
            OffsetsInitializer::timestamp(5).auto_offset_reset_strategy(),
            OffsetReset::Latest
        );
        assert_eq!(
            OffsetsInitializer::committed_offsets(OffsetReset::None).auto_offset_reset_strategy(),
            OffsetReset::None
        );
        assert_eq!(
            OffsetsInitializer::committed_offsets(OffsetReset::Earliest).auto_offset_reset_strategy(),
            OffsetReset::Earliest
        );
        assert_eq!(
            OffsetsInitializer::offsets([(tp(0), 3)]).auto_offset_reset_strategy(),
            OffsetReset::Earliest
        );
        assert_eq!(
            OffsetsInitializer::offsets_with_reset([(tp(0), 3)], OffsetReset::Latest).auto_offset_reset_strategy(),
            OffsetReset::Latest
        );
        assert_eq!(OffsetsInitializer::default(), OffsetsInitializer::earliest());
    }

    struct Fixed(i64);

    impl CustomOffsetsInitializer for Fixed {
        fn partition_offsets<'a>(
            &'a self,
            partitions: &'a [TopicPartition],
            _retriever: &'a PartitionOffsetsRetriever,
        ) -> PartitionOffsetsFuture<'a> {
            let out = partitions.iter().map(|tp| (tp.clone(), self.0)).collect();
            Box::pin(async move { Ok(out) })
        }

        fn auto_offset_reset_strategy(&self) -> OffsetResetStrategy {
            OffsetReset::None
        }
    }

    #[test]
    fn custom_initializers_compare_by_identity_and_report_their_reset() {
        let a = OffsetsInitializer::custom(Fixed(3));
        assert!(a.is_custom() && !OffsetsInitializer::earliest().is_custom());
        assert_eq!(a, a.clone(), "clones share the initializer");
        assert_ne!(
            a,
            OffsetsInitializer::custom(Fixed(3)),
            "two custom initializers differ"
        );
        assert_ne!(a, OffsetsInitializer::earliest());
        assert_eq!(a.auto_offset_reset_strategy(), OffsetReset::None);
        assert!(!a.requires_group_id(), "the default");
        assert!(!a.is_a_reset(), "elastic mode cannot honour a custom initializer");
        a.validate().unwrap();
        assert!(format!("{a:?}").contains("Custom"), "{a:?}");
    }

    #[test]
    fn group_requirement_and_validation() {
        assert!(OffsetsInitializer::committed_offsets(OffsetReset::Latest).requires_group_id());
        assert!(!OffsetsInitializer::offsets([(tp(0), 3)]).requires_group_id());
        assert!(OffsetsInitializer::offsets([(tp(0), KafkaPartitionSplit::COMMITTED_OFFSET)]).requires_group_id());
        assert!(!OffsetsInitializer::latest().requires_group_id());

        let e = OffsetsInitializer::timestamp(-1).validate().unwrap_err();
        assert!(e.to_string().contains("must not be negative"), "{e}");
        let e = OffsetsInitializer::offsets([(tp(4), -7)]).validate().unwrap_err();
        assert!(e.to_string().contains("-7 for t-4"), "{e}");
        OffsetsInitializer::offsets([(tp(0), -1), (tp(1), -2), (tp(2), -3), (tp(3), 0)])
            .validate()
            .unwrap();
    }
}
