//! Replays every seed (`fuzz/corpus/<target>/`) and every input a fuzzer once
//! crashed on (`fuzz/regressions/<target>/`) through its target: the regression
//! tests of the fuzzers, run by the normal test suite without libFuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, target) in vfplex_fuzz::TARGETS {
        let mut seeds = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(dir) = std::fs::read_dir(base.join(kind).join(name)) else {
                continue;
            };
            for e in dir.flatten() {
                let data = std::fs::read(e.path()).unwrap();
                let r = std::panic::catch_unwind(|| target(&data));
                assert!(r.is_ok(), "{name}: {} panics", e.path().display());
                seeds += usize::from(kind == "corpus");
                ran += 1;
            }
        }
        assert!(seeds > 0, "target {name} has no seed corpus");
    }
    eprintln!(
        "replayed {ran} inputs through {} targets",
        vfplex_fuzz::TARGETS.len()
    );
}
