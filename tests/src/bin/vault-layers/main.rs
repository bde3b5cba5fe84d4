//! `vault-layers`: the layer check of `.ci/run`. It reads `layers.toml` (the one place the
//! layer order is written), parses every `.rs` file of each crate named there with `syn`, and
//! fails if a module uses a module of a higher layer, if modules (files) form a cycle, or if a
//! top-level module is in no layer.
//!
//! Usage: `vault-layers [CONFIG]`; without an argument it uses the `layers.toml` found in the
//! current directory or the nearest one above it. Exit status 0 when clean, 1 on a problem, 2
//! when the configuration or a source file cannot be read.
//!
//! What counts as a reference (see [`scan`]): `use` trees, paths in code and types (`crate::`,
//! `super::`, `self::`, a child module's name, a name a `use` brought in), followed through
//! named `pub use` re-exports. Items under `#[cfg(test)]` are not checked (tests may use any
//! layer), and a reference inside one file is never a problem. The crate root
//! (`lib.rs`) is no layer: it may declare and re-export anything, and its own items may be used
//! from everywhere. It is a static reader, not the compiler: see [`scan`] for what it misses.

mod check;
mod scan;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;

/// The whole of `layers.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The crates to check, each with its own layers.
    #[serde(rename = "crate")]
    crates: Vec<CrateLayers>,
}

/// One crate's entry in `layers.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrateLayers {
    /// The crate's package name, for messages.
    name: String,
    /// Its `src/` folder, relative to the folder of `layers.toml`.
    src: PathBuf,
    /// Its top-level modules by layer, lowest first.
    layers: Vec<Vec<String>>,
}

/// The outcome of a run: problems (empty when clean) and a one-line summary.
#[derive(Debug)]
struct Report {
    /// One message per problem.
    problems: Vec<String>,
    /// What was checked.
    summary: String,
}

/// Runs the check on the given or nearest `layers.toml`; see the crate doc for the exit status.
fn main() -> ExitCode {
    let config = match std::env::args_os().nth(1) {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::current_dir()
            .ok()
            .and_then(|dir| find_config(&dir)),
    };
    let Some(config) = config else {
        eprintln!("vault-layers: no layers.toml in this folder or any above it");
        return ExitCode::from(2);
    };
    match run(&config) {
        Ok(report) if report.problems.is_empty() => {
            println!("{}", report.summary);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            report
                .problems
                .iter()
                .for_each(|problem| eprintln!("{problem}"));
            eprintln!(
                "vault-layers: {} problem(s); the order is in {}",
                report.problems.len(),
                config.display()
            );
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("vault-layers: {error}");
            ExitCode::from(2)
        }
    }
}

/// The `layers.toml` in `dir` or the nearest folder above it.
fn find_config(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("layers.toml"))
        .find(|path| path.is_file())
}

/// Checks every crate `config` names; `Err` only when something cannot be read or parsed.
fn run(config: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let parsed: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    let root = config.parent().unwrap_or(Path::new("."));
    let (mut problems, mut modules, mut references) = (Vec::new(), 0, 0);
    for krate in &parsed.crates {
        let scan = scan::scan_crate(root, &krate.src)?;
        problems.extend(check::check(&krate.name, &krate.layers, &scan));
        modules += scan.modules.len();
        references += scan.references.len();
    }
    let crates = parsed.crates.len();
    let summary = format!(
        "vault-layers: {crates} crates, {modules} modules, {references} references, no cycles, no upward imports"
    );
    Ok(Report { problems, summary })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// Runs the check on a crate `demo` made of `files` (path under `src/`, text) with `layers`.
    fn check_fixture(layers: &str, files: &[(&str, &str)]) -> Report {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!("[[crate]]\nname = \"demo\"\nsrc = \"demo/src\"\nlayers = {layers}\n");
        fs::write(dir.path().join("layers.toml"), config).expect("write config");
        for (path, text) in files {
            let path = dir.path().join("demo/src").join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
            fs::write(path, text).expect("write source");
        }
        run(&dir.path().join("layers.toml")).expect("run")
    }

    /// The references of a fixture, as `from -> to` strings, sorted, duplicates removed.
    fn references(files: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join("src").join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
            fs::write(path, text).expect("write source");
        }
        let scan = scan::scan_crate(dir.path(), Path::new("src")).expect("scan");
        let mut found: Vec<String> = scan
            .references
            .iter()
            .map(|r| format!("{} -> {}", check::show(&r.from), check::show(&r.to)))
            .collect();
        found.sort();
        found.dedup();
        found
    }

    const LIB: (&str, &str) = (
        "lib.rs",
        "pub mod low; pub mod high;\npub use high::Top;\npub struct Root;\n",
    );

    #[test]
    fn clean_tree_passes() {
        let low = ("low.rs", "use crate::Root;\npub fn f() -> Root { Root }\n");
        let high = (
            "high.rs",
            "use crate::low;\npub struct Top;\npub fn g() { low::f(); }\n",
        );
        let report = check_fixture(r#"[["low"], ["high"]]"#, &[LIB, low, high]);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(
            report.summary.contains("1 crates, 3 modules, 2 references"),
            "{}",
            report.summary
        );
    }

    #[test]
    fn upward_import_fails_naming_file_and_line() {
        let low = (
            "low.rs",
            "pub fn f() {}\n\npub fn g() { crate::high::h() }\n",
        );
        let high = (
            "high.rs",
            "pub fn h() { super::low::f() }\npub struct Top;\n",
        );
        let report = check_fixture(r#"[["low"], ["high"]]"#, &[LIB, low, high]);
        let upward = "demo/src/low.rs:3: low uses high (layer high is above low)";
        assert_eq!(report.problems[0], upward, "{:?}", report.problems);
    }

    #[test]
    fn reexport_from_the_root_is_followed() {
        let low = ("low.rs", "pub fn f(_: crate::Top) {}\n");
        let high = ("high.rs", "pub struct Top;\n");
        let report = check_fixture(r#"[["low"], ["high"]]"#, &[LIB, low, high]);
        assert!(
            report.problems[0].contains("low.rs:1: low uses high"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn cycle_fails_naming_each_step() {
        let lib = ("lib.rs", "pub mod a;\n");
        let a = ("a/mod.rs", "mod x;\nmod y;\n");
        let x = ("a/x.rs", "use super::y::Y;\npub struct X;\n");
        let y = ("a/y.rs", "pub struct Y;\n\nfn f(_: super::x::X) {}\n");
        let report = check_fixture(r#"[["a"]]"#, &[lib, a, x, y]);
        let expected = "cycle: a::x -> a::y -> a::x\n  demo/src/a/x.rs:1: a::x uses a::y\n  demo/src/a/y.rs:3: a::y uses a::x";
        assert_eq!(report.problems, [expected]);
    }

    #[test]
    fn unplaced_and_unknown_modules_fail() {
        let lib = ("lib.rs", "pub mod a;\npub mod b;\n");
        let report = check_fixture(r#"[["a", "c"]]"#, &[lib, ("a.rs", ""), ("b.rs", "")]);
        let expected = [
            "layers.toml: demo has no top-level module c",
            "demo/src/b.rs: module b is not in layers.toml",
        ];
        assert_eq!(report.problems, expected);
    }

    #[test]
    fn grouped_nested_super_and_self_imports_resolve() {
        let files = [
            ("lib.rs", "pub mod e; pub mod s;\n"),
            ("e/mod.rs", "pub mod st; pub mod au; pub mod gr;\npub use st::Command;\n"),
            ("e/st.rs", "pub struct Command;\n"),
            ("e/au.rs", "use crate::{s, e::{st::{self, Command}, gr as g}};\n"),
            ("e/gr.rs", "use self::inner::X;\nmod inner { pub struct X; fn f() -> super::super::st::Command { todo!() } }\n"),
            ("s/mod.rs", "pub mod caller;\nfn f() { let _ = caller::who(); let _: crate::e::Command; }\n"),
            ("s/caller.rs", "pub fn who() {}\n#[cfg(test)]\nmod tests { use super::*; fn t() { assert_eq!(crate::e::au::N, 1); } }\n"),
        ];
        let expected = [
            "e -> e::st",
            "e::au -> e::gr",
            "e::au -> e::st",
            "e::au -> s",
            "e::gr -> e::st",
            "s -> e::st",
            "s -> s::caller",
            // No "s::caller -> e::au": #[cfg(test)] items are not checked.
        ];
        assert_eq!(references(&files), expected);
    }

    #[test]
    fn visibility_locals_and_other_crates_are_not_references() {
        let files = [
            ("lib.rs", "pub mod a;\n"),
            ("a/mod.rs", "pub mod b;\npub(crate) fn f() {}\n"),
            ("a/b.rs", "pub(super) fn g(a: u8) -> u8 { let b = a; std::cmp::max(b, ::core::primitive::u8::MIN) }\n"),
        ];
        assert!(references(&files).is_empty(), "{:?}", references(&files));
    }
}
