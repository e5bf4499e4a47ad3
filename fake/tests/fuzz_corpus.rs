//! Replays the fake cluster's fuzz corpus (`fuzz/corpus/fake_request/`) and saved crashes
//! (`fuzz/artifacts/fake_request/`) through the fuzz entry point, so CI keeps what the fuzzer
//! found without a nightly toolchain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

#[test]
fn corpus_and_artifacts_replay_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files(&fuzz.join("corpus/fake_request"));
    assert!(corpus.len() >= 30, "the fake_request corpus has {} files", corpus.len());
    for f in corpus.iter().chain(&files(&fuzz.join("artifacts/fake_request"))) {
        eprintln!("{}", f.display());
        strom_fake::fuzzing::request(&fs::read(f).unwrap());
    }
    let sasl = files(&fuzz.join("corpus/fake_sasl"));
    assert!(!sasl.is_empty(), "the fake_sasl corpus is empty");
    for f in sasl.iter().chain(&files(&fuzz.join("artifacts/fake_sasl"))) {
        eprintln!("{}", f.display());
        strom_fake::fuzzing::sasl(&fs::read(f).unwrap());
    }
}

#[test]
fn fuzz_targets_and_entry_points_agree() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    let mut ours: Vec<String> = fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fake_"))
        .collect();
    ours.sort();
    assert_eq!(ours, ["fake_request.rs", "fake_sasl.rs"]);
    for (file, call) in [
        ("fake_request.rs", "strom_fake::fuzzing::request"),
        ("fake_sasl.rs", "strom_fake::fuzzing::sasl"),
    ] {
        let text = fs::read_to_string(targets.join(file)).unwrap();
        assert!(text.contains(call), "{file} calls {call}");
    }
}
