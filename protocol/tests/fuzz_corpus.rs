//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every saved crash
//! (`fuzz/artifacts/<target>/`) through the same entry points the fuzz targets call, so CI
//! keeps what the fuzzer found without a nightly toolchain. Also checks the fuzz targets,
//! the corpus directories and `strom_protocol::fuzzing::TARGETS` name the same set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use strom_protocol::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz entry point named {name:?}: add it to fuzzing.rs or remove the directory"))
}

/// Targets of strom-registry, strom-client and strom-fake (their own tests/fuzz_corpus.rs replay them).
const OTHER_CRATES: [&str; 3] = ["registry_", "client_", "fake_"];

fn other_crate(name: &str) -> bool {
    OTHER_CRATES.iter().any(|p| name.starts_with(p))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The corpus is replayed by every `cargo test` and lives in the repository: it stays small
/// (`scripts/fuzz` with `MERGE=1` keeps the few inputs covering the most edges): a handful
/// of files per target, for the 70-odd targets there are.
const MAX_CORPUS_FILES: usize = 400;
const MAX_CORPUS_BYTES: u64 = 2 << 20;

/// Runs every file of every `<target>/` under `dir`; returns how many per target.
fn replay(dir: &Path) -> Vec<(String, usize)> {
    let mut counts = Vec::new();
    for sub in sorted_entries(dir) {
        if !sub.is_dir() {
            continue;
        }
        let name = sub.file_name().unwrap().to_str().unwrap().to_owned();
        if other_crate(&name) {
            continue;
        }
        let run = target(&name);
        let mut n = 0;
        for file in sorted_entries(&sub) {
            if !file.is_file() {
                continue;
            }
            let data = fs::read(&file).unwrap();
            // The path first: a panic or an abort below then names its input.
            eprintln!("{name}: {}", file.display());
            run(&data);
            n += 1;
        }
        counts.push((name, n));
    }
    counts
}

#[test]
fn corpus_replays_without_panics() {
    let corpus = fuzz_dir().join("corpus");
    assert!(corpus.is_dir(), "{} is missing", corpus.display());
    let counts = replay(&corpus);
    let empty: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(t, _)| t.as_str())
        .collect();
    assert!(empty.is_empty(), "empty corpus directories: {empty:?}");
    let with_corpus: BTreeSet<&str> = counts.iter().map(|(t, _)| t.as_str()).collect();
    let missing: Vec<&str> = TARGETS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !with_corpus.contains(n))
        .collect();
    assert!(missing.is_empty(), "targets without a corpus: {missing:?}");

    let files: Vec<PathBuf> = sorted_entries(&corpus)
        .iter()
        .filter(|d| d.is_dir())
        .filter(|d| !other_crate(d.file_name().unwrap().to_str().unwrap()))
        .flat_map(|d| sorted_entries(d))
        .collect();
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    assert!(
        files.len() < MAX_CORPUS_FILES && bytes < MAX_CORPUS_BYTES,
        "corpus too large: {} files, {bytes} bytes (limits {MAX_CORPUS_FILES}, {MAX_CORPUS_BYTES})",
        files.len()
    );
}

#[test]
fn artifacts_replay_without_panics() {
    let artifacts = fuzz_dir().join("artifacts");
    if artifacts.is_dir() {
        replay(&artifacts);
    }
}

#[test]
fn fuzz_targets_match_entry_points() {
    let files: BTreeSet<String> = sorted_entries(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .filter(|n| !other_crate(n))
        .collect();
    let entry_points: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(files, entry_points);
    // Each target file calls the entry point of its own name.
    for name in &files {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let src = fs::read_to_string(&path).unwrap();
        assert!(
            src.contains(&format!("strom_protocol::fuzzing::{name}(")),
            "{} does not call fuzzing::{name}",
            path.display()
        );
    }
}
