//! Replays the registry's fuzz corpus (`fuzz/corpus/registry_*/`) and saved crashes
//! (`fuzz/artifacts/registry_*/`) through the fuzz entry points, so CI keeps what the fuzzer
//! found without a nightly toolchain; checks the targets and entry points name the same set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use strom_registry::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_str().unwrap().starts_with("registry_"))
        .collect();
    v.sort();
    v
}

fn replay(root: &Path) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for dir in dirs(root) {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let run = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no registry fuzz entry point named {name}"))
            .1;
        let mut files: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in &files {
            eprintln!("{name}: {}", f.display());
            run(&fs::read(f).unwrap());
        }
        out.push((name, files.len()));
    }
    out
}

#[test]
fn corpus_and_artifacts_replay_without_panics() {
    let counts = replay(&fuzz_dir().join("corpus"));
    let with_corpus: BTreeSet<&str> = counts.iter().filter(|(_, n)| *n > 0).map(|(t, _)| t.as_str()).collect();
    let all: BTreeSet<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(with_corpus, all, "every registry target has a corpus");
    replay(&fuzz_dir().join("artifacts"));
}

#[test]
fn fuzz_targets_match_entry_points() {
    let files: BTreeSet<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| p.file_stem().map(|s| s.to_str().unwrap().to_owned()))
        .filter(|n| n.starts_with("registry_"))
        .collect();
    let entry_points: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(files, entry_points);
}
