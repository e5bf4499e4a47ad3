//! Unit tests of the pipeline's checkpoint record.

use super::*;

#[test]
fn checkpoint_record_round_trips_as_json() {
    let c = PipelineCheckpoint {
        format: CHECKPOINT_FORMAT,
        checkpoint_id: 4,
        subtask: 1,
        parallelism: 2,
        source_splits: vec![KafkaPartitionSplit::new("in", 3, 17, Some(40))],
        enumerator: EnumeratorState::default(),
        committables: vec![KafkaCommittable {
            transactional_id: "p-1-4".into(),
            producer_id: 7,
            epoch: 0,
            transaction_version: 2,
        }],
        writer_state: KafkaWriterState {
            transactional_id_prefix: Some("p".into()),
            subtask: 1,
            parallelism: 2,
            checkpoint_id: 4,
        },
        records_in: 10,
        records_out: 9,
    };
    let json = serde_json::to_vec(&c).unwrap();
    assert_eq!(serde_json::from_slice::<PipelineCheckpoint>(&json).unwrap(), c);
}
