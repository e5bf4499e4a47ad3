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

/// Runs `f` on the committed corpus (at least `min_seeds` files) and the saved crashes of
/// `target`, and checks the target file calls `call`.
fn replay(target: &str, min_seeds: usize, call: &str, f: impl Fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files(&fuzz.join("corpus"), target);
    assert!(corpus.len() >= min_seeds, "the committed seeds of {target}: {corpus:?}");
    for f_ in corpus.iter().chain(&files(&fuzz.join("artifacts"), target)) {
        f(&fs::read(f_).unwrap());
    }
    // The target file calls what this replays.
    let source = fs::read_to_string(fuzz.join(format!("fuzz_targets/{target}.rs"))).unwrap();
    assert!(source.contains(call), "{target}.rs does not call {call}");
}

/// What fuzz/fuzz_targets/client_trace_context.rs runs.
#[cfg(feature = "opentelemetry")]
fn trace_context(data: &[u8]) {
    let (parent, state) = data.split_at(data.len() / 2);
    let _ = strom_client::trace_context::parse(parent, Some(state));
}

#[cfg(feature = "opentelemetry")]
#[test]
fn trace_context_corpus_and_artifacts_replay_without_panics() {
    replay(
        "client_trace_context",
        4,
        "strom_client::trace_context::parse(parent, Some(state))",
        trace_context,
    );
}

#[test]
fn keystore_jks_corpus_and_artifacts_replay_without_panics() {
    replay(
        "client_keystore_jks",
        5,
        "strom_client::fuzzing::keystore_jks(data)",
        strom_client::fuzzing::keystore_jks,
    );
}

#[test]
fn keystore_pkcs12_corpus_and_artifacts_replay_without_panics() {
    replay(
        "client_keystore_pkcs12",
        8,
        "strom_client::fuzzing::keystore_pkcs12(data)",
        strom_client::fuzzing::keystore_pkcs12,
    );
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
