//! Replays the committed fuzz corpus (fuzz/corpus/<target>/*) through the
//! fuzz targets' entry points, so every input the fuzzer kept (and every
//! hand-written seed) is checked by `cargo test` too.

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in hotfixd::fuzzing::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target has a corpus)", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(r.is_ok(), "{name}: {} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "{name} has an empty corpus");
        replayed += n;
    }
    assert!(replayed >= 20);
}
