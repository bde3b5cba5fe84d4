//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`: the
//! seeds and every input a fuzzer once crashed on) replayed through the
//! targets' checks, without AddressSanitizer: the smoke test of
//! `fuzz/` that runs with every suite run. `write_seeds` (ignored)
//! regenerates the seeds and the fixture district.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every target with its cargo-fuzz project directory.
fn targets() -> Vec<(PathBuf, &'static str, vault_fuzz::Check)> {
    let pure = vault_fuzz::TARGETS
        .iter()
        .map(|(n, c)| (fuzz_dir(), *n, *c));
    let node = vault_fuzz_node::TARGETS
        .iter()
        .map(|(n, c)| (fuzz_dir().join("node"), *n, *c));
    pure.chain(node).collect()
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (_, name, check) in targets() {
        let files = tests::files_under(&fuzz_dir().join("corpus").join(name));
        assert!(files.len() >= 2, "{name} has {} seeds", files.len());
        for file in files {
            let input = std::fs::read(&file).unwrap();
            let replay = std::panic::catch_unwind(|| check(&input));
            assert!(replay.is_ok(), "{} fails {name}", file.display());
        }
    }
}

#[test]
fn every_target_has_its_libfuzzer_entry_point() {
    for (dir, name, _) in targets() {
        let path = dir.join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("::{name}(data)")),
            "{}",
            path.display()
        );
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} is no [[bin]]"
        );
    }
    let fixtures = fuzz_dir().join("fixtures");
    for file in vault_fuzz::fixtures::FILES {
        let len = std::fs::metadata(fixtures.join(file)).unwrap().len();
        assert!(len > 0, "fixture {file} is empty: run write_seeds");
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus/*/seed-* and fuzz/fixtures/: run to regenerate them"]
fn write_seeds() {
    let scratch = tempfile::tempdir().unwrap();
    vault_fuzz::seeds::write(scratch.path(), &fuzz_dir(), tests::now()).unwrap();
    vault_fuzz_node::seeds::write(&fuzz_dir(), tests::now()).unwrap();
}
