//! Replays strom-client's fuzz corpus (`fuzz/corpus/client_*/`) and saved crashes
//! (`fuzz/artifacts/client_*/`) through the same calls as the fuzz targets, so CI keeps what
//! the fuzzer found without a nightly toolchain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

fn files(root: &Path, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root.join(target)) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

/// What fuzz/fuzz_targets/client_trace_context.rs runs.
fn trace_context(data: &[u8]) {
    let (parent, state) = data.split_at(data.len() / 2);
    let _ = strom_client::trace_context::parse(parent, Some(state));
}

#[test]
fn trace_context_corpus_and_artifacts_replay_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files(&fuzz.join("corpus"), "client_trace_context");
    assert!(corpus.len() >= 4, "the committed seeds: {corpus:?}");
    for f in corpus
        .iter()
        .chain(&files(&fuzz.join("artifacts"), "client_trace_context"))
    {
        trace_context(&fs::read(f).unwrap());
    }
    // The target file calls what this replays.
    let target = fs::read_to_string(fuzz.join("fuzz_targets/client_trace_context.rs")).unwrap();
    assert!(target.contains("strom_client::trace_context::parse(parent, Some(state))"));
}

#[test]
fn scram_corpus_and_artifacts_replay_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files(&fuzz.join("corpus"), "client_scram");
    assert!(corpus.len() >= 4, "the committed seeds: {corpus:?}");
    for f in corpus.iter().chain(&files(&fuzz.join("artifacts"), "client_scram")) {
        strom_client::fuzzing::scram_client(&fs::read(f).unwrap());
    }
    let target = fs::read_to_string(fuzz.join("fuzz_targets/client_scram.rs")).unwrap();
    assert!(target.contains("strom_client::fuzzing::scram_client(data)"));
}
