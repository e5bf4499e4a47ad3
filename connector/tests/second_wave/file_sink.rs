//! The exactly-once file sink (`FileSink`, through `TwoPhaseCommitSink`) under a pipeline
//! reading the real broker, crash-tested like the Kafka sink: an injected crash at every
//! checkpoint stage in turn, and a child process SIGKILLed at random instants; each time the
//! next run recovers from the file checkpoint store, and in the end the final part files hold
//! every input record exactly once, with no part left in progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{Admin, ClientConfig, IsolationLevel, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_connector::checkpoint::{CheckpointStoreExt, FileCheckpointStore};
use strom_connector::file_sink::{FileCommittable, FileSink, FileWriterState};
use strom_connector::pipeline::{CrashAction, CrashAt, Pipeline, PipelineCheckpoint, PipelineEnd};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{broker, child_env, child_runtime, init_test_logging, unique_topic};

const CHILD_ENV: &str = "STROM_FILE_SINK_TEST_CHILD";

type FileCheckpoint = PipelineCheckpoint<FileCommittable, FileWriterState>;

/// A fresh directory for one test, removed when the test passes.
struct TestDir(PathBuf);

impl TestDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(unique_topic(&format!("strom-file-sink-{tag}")));
        std::fs::create_dir_all(&p).unwrap();
        TestDir(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn input_topic(n: usize) -> String {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic("file-sink-in");
    admin
        .create_topics(&[NewTopic::new(&topic, 3).replication_factor(1)])
        .await
        .unwrap();
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.set("linger.ms", "5").unwrap();
    let p = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        let rec =
            ProducerRecord::new(&topic, Bytes::from(format!("f-{i:06}"))).partition(i32::try_from(i % 3).unwrap());
        pending.push(p.send(rec).await.unwrap());
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
    topic
}

/// Input → upper case, sleeping 1 ms every `every` records so checkpoints fall mid-input →
/// part files of at most 4 KiB in `out`, checkpoints in `checkpoints`.
fn pipeline(
    bootstrap: &str,
    topic: &str,
    out: &Path,
    checkpoints: &Path,
    every: u64,
) -> Pipeline<String, String, String, FileSink<String>> {
    let source = KafkaSource::builder()
        .bootstrap_servers(bootstrap)
        .topics([topic])
        .isolation_level(IsolationLevel::ReadCommitted)
        .bounded(OffsetsInitializer::latest())
        .deserializer(deserializer::string())
        .build()
        .unwrap();
    let sink = FileSink::for_row_format(out, |s: &String, buf: &mut Vec<u8>| {
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'\n');
    })
    .part_suffix(".txt")
    .max_part_size(4096)
    .build()
    .unwrap();
    let mut n = 0u64;
    Pipeline::new(source, sink)
        .map(move |s: String| {
            n += 1;
            if n.is_multiple_of(every) {
                std::thread::sleep(Duration::from_millis(1));
            }
            s.to_uppercase()
        })
        .checkpoint_interval(Duration::from_millis(100))
        .checkpoint_store(FileCheckpointStore::new(checkpoints).unwrap())
}

/// Every line of the final part files of `out`, and the names of files left in progress.
fn read_parts(out: &Path) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut in_progress) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".inprogress") {
            in_progress.push(name);
        } else {
            assert!(
                name.starts_with("part-") && name.ends_with(".txt"),
                "unexpected file {name}"
            );
            let text = std::fs::read_to_string(e.path()).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'), "{name} is torn: {text:?}");
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    (lines, in_progress)
}

/// Each of the `n` inputs exactly once in `lines`.
fn assert_exactly_once(n: usize, lines: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in lines {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicates, e.g. {dups:?}");
    let missing: Vec<String> = (0..n)
        .map(|i| format!("F-{i:06}"))
        .filter(|v| !counts.contains_key(v.as_str()))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost, e.g. {missing:?}");
    assert_eq!(lines.len(), n, "unexpected lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_is_exactly_once_across_a_crash_at_each_stage() {
    const N: usize = 6000;
    let topic = input_topic(N).await;
    let dir = TestDir::new("stages");
    let (out, checkpoints) = (dir.0.join("out"), dir.0.join("checkpoints"));
    let store = FileCheckpointStore::new(&checkpoints).unwrap();
    for point in [
        "records:+500",
        "before-precommit:+2",
        "after-precommit:+2",
        "after-store:+2",
        "during-commit:+2",
        "after-commit:+2",
        "records:+300",
    ] {
        let at: CrashAt = point.parse().unwrap();
        let p = pipeline(&broker().bootstrap, &topic, &out, &checkpoints, 5).crash_at(at, CrashAction::Fail);
        let e = p.run().await.unwrap_err();
        assert!(e.to_string().contains("crash injected"), "{point}: {e}");
        // Nothing visible beyond what a stored checkpoint holds.
        let (lines, _) = read_parts(&out);
        let stored: Option<(u64, FileCheckpoint)> = store.latest_json().unwrap();
        let done = stored.as_ref().map_or(0, |(_, c)| c.records_out as usize);
        assert!(
            lines.len() <= done,
            "{point}: {} lines visible, checkpoint holds {done}",
            lines.len()
        );
    }
    let summary = pipeline(&broker().bootstrap, &topic, &out, &checkpoints, 5)
        .run()
        .await
        .unwrap();
    assert_eq!(summary.end, PipelineEnd::EndOfInput);
    assert!(summary.restored_from.is_some());
    let (lines, in_progress) = read_parts(&out);
    assert!(in_progress.is_empty(), "left in progress: {in_progress:?}");
    assert_exactly_once(N, &lines);
}

/// Child-process entry point; does nothing in a normal test run.
#[test]
fn file_sink_child() {
    let Some(rt) = child_runtime(CHILD_ENV) else {
        return;
    };
    let var = child_env;
    let code = rt.block_on(async {
        let p = pipeline(
            &var("STROM_FILE_SINK_BOOTSTRAP"),
            &var("STROM_FILE_SINK_TOPIC"),
            Path::new(&var("STROM_FILE_SINK_OUT")),
            Path::new(&var("STROM_FILE_SINK_CHECKPOINTS")),
            2,
        );
        match p.run().await {
            Ok(s) => {
                println!("done: {s:?}");
                0
            }
            Err(e) => {
                eprintln!("failed: {e}");
                3
            }
        }
    });
    std::process::exit(code);
}

/// The pipeline as a child process, SIGKILLed at random instants (nothing flushed, closed or
/// cleaned up), then run to its end: exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_is_exactly_once_across_sigkills() {
    const N: usize = 6000;
    let topic = input_topic(N).await;
    let dir = TestDir::new("kills");
    let (out, checkpoints) = (dir.0.join("out"), dir.0.join("checkpoints"));
    let spawn = || {
        let log = std::fs::File::create(dir.0.join("child.log")).unwrap();
        Command::new(std::env::current_exe().unwrap())
            .args([
                "file_sink::file_sink_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, "1")
            .env("STROM_FILE_SINK_BOOTSTRAP", &broker().bootstrap)
            .env("STROM_FILE_SINK_TOPIC", &topic)
            .env("STROM_FILE_SINK_OUT", &out)
            .env("STROM_FILE_SINK_CHECKPOINTS", &checkpoints)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    };
    // A seeded schedule of kills, 300-900 ms into each run.
    let mut seed = 0x5eed_u64 ^ u64::from(std::process::id());
    let mut kills = 0;
    for _ in 0..4 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis(300 + (seed >> 33) % 600);
        let mut child = spawn();
        tokio::time::sleep(after).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "every run ended before its kill: the input is too small to test kills"
    );
    let mut child = spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the last run did not finish within 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(dir.0.join("child.log")).unwrap_or_default();
    assert!(status.success(), "the last run failed ({status}):\n{log}");
    let (lines, in_progress) = read_parts(&out);
    assert!(in_progress.is_empty(), "left in progress: {in_progress:?}");
    assert_exactly_once(N, &lines);
}

// ---------------------------------------------------------------------------------------
// Any sink: a TwoPhaseCommitSink of the test's own whose pre-commit fails.

mod memory_sink {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use strom_connector::sink::{DeliveryGuarantee, SinkCommitter, SinkRestore, SinkWriter, TwoPhaseCommitSink};
    use strom_connector::{ConnectorError, Result};

    /// Committed lines, and the checkpoints whose lines are in them.
    #[derive(Debug, Default)]
    pub(crate) struct Store {
        pub(crate) lines: Vec<String>,
        pub(crate) committed: BTreeSet<u64>,
    }

    /// Lines staged per checkpoint, committed into a shared store; pre-commit refuses
    /// checkpoint `fail_at`.
    #[derive(Debug, Clone)]
    pub(crate) struct MemorySink {
        pub(crate) store: Arc<Mutex<Store>>,
        pub(crate) fail_at: Option<u64>,
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Committer(Arc<Mutex<Store>>);

    impl SinkCommitter<(u64, Vec<String>)> for Committer {
        async fn commit(&self, committables: &[(u64, Vec<String>)]) -> Result<()> {
            let mut store = self.0.lock().unwrap();
            for (id, lines) in committables {
                if store.committed.insert(*id) {
                    store.lines.extend(lines.iter().cloned());
                }
            }
            Ok(())
        }
    }

    pub(crate) struct Writer {
        sink: MemorySink,
        staged: Vec<String>,
    }

    impl TwoPhaseCommitSink<String> for MemorySink {
        type Committable = (u64, Vec<String>);
        type WriterState = ();
        type Committer = Committer;
        type Writer = Writer;

        async fn restore_writer(
            &self,
            _subtask: u32,
            _parallelism: u32,
            restore: &SinkRestore<(u64, Vec<String>), ()>,
        ) -> Result<Writer> {
            Committer(self.store.clone()).commit(&restore.committables).await?;
            Ok(Writer {
                sink: self.clone(),
                staged: Vec::new(),
            })
        }
    }

    impl SinkWriter<String> for Writer {
        type Committable = (u64, Vec<String>);
        type WriterState = ();
        type Committer = Committer;

        async fn write(&mut self, element: &String, _timestamp: Option<i64>) -> Result<()> {
            self.staged.push(element.clone());
            Ok(())
        }

        async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Vec<(u64, Vec<String>)>> {
            if self.sink.fail_at == Some(checkpoint_id) {
                return Err(ConnectorError::Sink(format!(
                    "pre-commit of checkpoint {checkpoint_id} refused"
                )));
            }
            Ok(vec![(checkpoint_id, std::mem::take(&mut self.staged))])
        }

        fn snapshot_state(&self, _checkpoint_id: u64) {}

        fn committer(&self) -> Committer {
            Committer(self.sink.store.clone())
        }

        fn delivery_guarantee(&self) -> DeliveryGuarantee {
            DeliveryGuarantee::ExactlyOnce
        }

        async fn close(self) -> Result<()> {
            Ok(())
        }

        async fn abort(self) -> Result<()> {
            Ok(())
        }
    }
}

/// A sink that fails to pre-commit ends the run with its error, naming the checkpoint; the
/// next run recovers from the last stored checkpoint and the output is exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_fails_to_pre_commit_ends_the_run_and_loses_nothing() {
    use memory_sink::{MemorySink, Store};
    const N: usize = 3000;
    let topic = input_topic(N).await;
    let dir = TestDir::new("precommit");
    let store = std::sync::Arc::new(std::sync::Mutex::new(Store::default()));
    let run = |fail_at: Option<u64>| {
        let source = KafkaSource::builder()
            .bootstrap_servers(&broker().bootstrap)
            .topics([&topic])
            .bounded(OffsetsInitializer::latest())
            .deserializer(deserializer::string())
            .build()
            .unwrap();
        let sink = MemorySink {
            store: store.clone(),
            fail_at,
        };
        let mut n = 0u64;
        Pipeline::new(source, sink)
            .map(move |s: String| {
                n += 1;
                if n.is_multiple_of(3) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                s.to_uppercase()
            })
            .checkpoint_interval(Duration::from_millis(100))
            .checkpoint_store(FileCheckpointStore::new(dir.0.join("checkpoints")).unwrap())
            .run()
    };
    let e = run(Some(3)).await.unwrap_err();
    assert!(e.to_string().contains("pre-commit of checkpoint 3 refused"), "{e}");
    assert_eq!(store.lock().unwrap().committed.iter().max(), Some(&2));
    let summary = run(None).await.unwrap();
    assert_eq!(summary.restored_from, Some(2));
    assert_exactly_once(N, &store.lock().unwrap().lines);
}

// ---------------------------------------------------------------------------------------
// Any source: a source of the test's own (no Kafka at all) into the file sink.

mod vec_source {
    use std::time::{Duration, Instant};

    use serde::{Deserialize, Serialize};
    use strom_connector::metrics::SourceReaderMetrics;
    use strom_connector::source::{
        Boundedness, Discovered, Source, SourceElement, SourceEnumerator, SplitReader, WatermarkCombiner,
        WatermarkEvent, WatermarkStrategy,
    };
    use strom_connector::Result;

    /// `splits` numbered sequences of `per_split` lines each: split `s` holds `v-<s>-<i>`,
    /// event time `i`.
    #[derive(Debug, Clone)]
    pub(crate) struct VecSource {
        pub(crate) splits: u32,
        pub(crate) per_split: u64,
    }

    /// A split and the next line to read.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct VecSplit {
        id: u32,
        next: u64,
        end: u64,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub(crate) struct Handed {
        done: bool,
    }

    pub(crate) struct Enumerator {
        source: VecSource,
        subtask: usize,
        parallelism: usize,
        state: Handed,
    }

    pub(crate) struct Reader {
        splits: Vec<VecSplit>,
        no_more: bool,
        combiner: WatermarkCombiner<String>,
        last_wm: Option<i64>,
    }

    impl Source<String> for VecSource {
        type Split = VecSplit;
        type EnumeratorState = Handed;
        type Enumerator = Enumerator;
        type Reader = Reader;

        fn boundedness(&self) -> Boundedness {
            Boundedness::Bounded
        }

        async fn create_enumerator(&self, subtask: usize, parallelism: usize) -> Result<Enumerator> {
            Ok(Enumerator {
                source: self.clone(),
                subtask,
                parallelism,
                state: Handed::default(),
            })
        }

        async fn create_reader(
            &self,
            _subtask: usize,
            watermarks: WatermarkStrategy<String>,
            _metrics: SourceReaderMetrics,
        ) -> Result<Reader> {
            Ok(Reader {
                splits: Vec::new(),
                no_more: false,
                combiner: watermarks.create_combiner(),
                last_wm: None,
            })
        }
    }

    impl SourceEnumerator for Enumerator {
        type Split = VecSplit;
        type State = Handed;

        async fn discover(&mut self) -> Result<Discovered<VecSplit>> {
            let mut new_splits = Vec::new();
            if !self.state.done {
                for id in 0..self.source.splits {
                    if id as usize % self.parallelism == self.subtask {
                        new_splits.push(VecSplit {
                            id,
                            next: 0,
                            end: self.source.per_split,
                        });
                    }
                }
                self.state.done = true;
            }
            Ok(Discovered {
                new_splits,
                removed: Vec::new(),
            })
        }

        fn snapshot_state(&self) -> Handed {
            self.state.clone()
        }

        fn restore_state(&mut self, state: Handed) {
            self.state = state;
        }

        fn initial_discovery_done(&self) -> bool {
            self.state.done
        }

        fn discovery_interval(&self) -> Option<Duration> {
            None
        }
    }

    impl SplitReader<String> for Reader {
        type Split = VecSplit;

        async fn add_splits(&mut self, splits: Vec<VecSplit>) -> Result<()> {
            let now = Instant::now();
            for s in splits {
                self.combiner.add_split(format!("v-{}", s.id), now);
                self.splits.push(s);
            }
            Ok(())
        }

        async fn poll(&mut self, timeout: Duration) -> Result<Vec<SourceElement<String>>> {
            if self.splits.is_empty() {
                tokio::time::sleep(timeout).await;
                return Ok(Vec::new());
            }
            let now = Instant::now();
            let mut out = Vec::new();
            for s in &mut self.splits {
                for _ in 0..20 {
                    if s.next >= s.end {
                        break;
                    }
                    let value = format!("v-{}-{}", s.id, s.next);
                    let ts = i64::try_from(s.next).unwrap();
                    self.combiner.on_event(&format!("v-{}", s.id), &value, ts, now);
                    out.push(SourceElement::new(value, ts, "vec", i32::try_from(s.id).unwrap(), ts));
                    s.next += 1;
                }
            }
            for s in self.splits.iter().filter(|s| s.next >= s.end) {
                self.combiner.remove_split(&format!("v-{}", s.id));
            }
            self.splits.retain(|s| s.next < s.end);
            Ok(out)
        }

        fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<VecSplit>> {
            Ok(self.splits.clone())
        }

        fn notify_no_more_splits(&mut self) {
            self.no_more = true;
        }

        fn is_finished(&self) -> bool {
            self.no_more && self.splits.is_empty()
        }

        fn active_splits(&self) -> usize {
            self.splits.len()
        }

        fn emit_watermark(&mut self, now: Instant) -> Option<WatermarkEvent> {
            let ev = self.combiner.on_periodic_emit(now);
            if let Some(WatermarkEvent::Watermark(w)) = ev {
                self.last_wm = Some(w);
            }
            ev
        }

        fn current_watermark(&self) -> Option<i64> {
            self.last_wm
        }

        async fn close(self) -> Result<()> {
            Ok(())
        }
    }
}

/// A source and a sink that are not Kafka's, through the same pipeline: a source of the
/// test's own (no broker involved) into the file sink, two subtasks, a crash at every
/// checkpoint stage of each, then runs to the end: every line exactly once; the process
/// function sees the custom source's split, position and event time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_source_into_the_file_sink_is_exactly_once_across_crashes() {
    use strom_connector::process::{Collector, ProcessContext};
    use vec_source::VecSource;
    const SPLITS: u32 = 5;
    const PER_SPLIT: u64 = 1500;
    init_test_logging();
    let dir = TestDir::new("custom-source");
    let out = dir.0.join("out");
    let build = |subtask: usize| {
        let sink = FileSink::for_row_format(&out, |s: &String, buf: &mut Vec<u8>| {
            buf.extend_from_slice(s.as_bytes());
            buf.push(b'\n');
        })
        .part_suffix(".txt")
        .max_part_size(2048)
        .build()
        .unwrap();
        let source = VecSource {
            splits: SPLITS,
            per_split: PER_SPLIT,
        };
        let mut n = 0u64;
        Pipeline::new(source, sink)
            .process(
                move |v: String, ctx: &ProcessContext<'_>, out: &mut Collector<'_, String>| {
                    n += 1;
                    if n.is_multiple_of(2) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    assert_eq!(v, format!("v-{}-{}", ctx.partition(), ctx.offset()));
                    assert_eq!((ctx.topic(), ctx.timestamp()), ("vec", ctx.offset()));
                    out.collect(v.to_uppercase());
                },
            )
            .checkpoint_interval(Duration::from_millis(100))
            .checkpoint_store(FileCheckpointStore::new(dir.0.join(format!("checkpoints-{subtask}"))).unwrap())
            .subtask(subtask, 2)
    };
    for subtask in 0..2 {
        for point in [
            "before-precommit:+2",
            "after-precommit:+2",
            "after-store:+2",
            "during-commit:+2",
            "after-commit:+2",
            "records:+300",
        ] {
            let at: CrashAt = point.parse().unwrap();
            let e = build(subtask).crash_at(at, CrashAction::Fail).run().await.unwrap_err();
            assert!(e.to_string().contains("crash injected"), "{point}: {e}");
        }
        let summary = build(subtask).run().await.unwrap();
        assert_eq!(summary.end, PipelineEnd::EndOfInput);
    }
    let (lines, in_progress) = read_parts(&out);
    assert!(in_progress.is_empty(), "left in progress: {in_progress:?}");
    let mut expected: Vec<String> = (0..SPLITS)
        .flat_map(|s| (0..PER_SPLIT).map(move |i| format!("V-{s}-{i}")))
        .collect();
    let mut got = lines;
    expected.sort();
    got.sort();
    assert_eq!(got.len(), expected.len(), "lines");
    assert!(got == expected, "not exactly once");
}

/// A rescale to parallelism 0, or a subtask index beyond the parallelism, is a clear
/// configuration error before anything is read or written.
#[tokio::test]
async fn a_parallelism_of_zero_or_a_subtask_beyond_it_is_refused() {
    use memory_sink::{MemorySink, Store};
    use strom_connector::checkpoint::MemoryCheckpointLocation;
    use strom_connector::ConnectorError;
    use vec_source::VecSource;
    let store = std::sync::Arc::new(std::sync::Mutex::new(Store::default()));
    for (subtask, parallelism) in [(0, 0), (2, 2), (5, 3)] {
        let e = Pipeline::new(
            VecSource {
                splits: 2,
                per_split: 10,
            },
            MemorySink {
                store: store.clone(),
                fail_at: None,
            },
        )
        .checkpoint_location(MemoryCheckpointLocation::new())
        .subtask(subtask, parallelism)
        .run()
        .await
        .unwrap_err();
        assert!(matches!(e, ConnectorError::Config(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains(&format!("subtask {subtask} of parallelism {parallelism}")),
            "{e}"
        );
    }
    assert!(store.lock().unwrap().lines.is_empty());
}
