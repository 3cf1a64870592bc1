//! The fuzz corpus in `fuzz/corpus/` replayed through the fuzz targets' own checks
//! (`fuzz/src/lib.rs`), on stable and in every test run: each input a fuzzer once found
//! interesting, crashes included, keeps being checked after the fuzzer has stopped.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = drover_tests::workspace_root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{} of {} {target} inputs fail: {failed:#?}", failed.len(), files.len());
}

#[test]
fn the_workflow_corpus_parses_without_a_broken_promise() {
    replay("workflow", checks::workflow);
}

#[test]
fn the_inventory_corpus_parses_without_a_broken_promise() {
    replay("inventory", checks::inventory);
}

#[test]
fn the_plugin_outcome_corpus_decodes_without_a_leak_or_a_panic() {
    replay("plugin_outcome", checks::plugin_outcome);
}
