//! `vault completions SHELL` and `vault manpages DIR`: shell completions
//! and man pages generated from the command line's grammar ([`crate::args`]),
//! so they never disagree with it.

use std::path::Path;

use clap::CommandFactory;
use serde_json::json;
use vault_client::{ClientError, ErrorCode};

use crate::args::Cli;
use crate::output::CommandResult;

/// Prints the completion script for `shell` on standard output.
pub fn completions(shell: clap_complete::Shell) -> CommandResult {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "vault", &mut out);
    let script = String::from_utf8(out)
        .map_err(|e| ClientError::local(ErrorCode::Internal, format!("completion script: {e}")))?;
    // The script itself is the output, with or without --json.
    print!("{script}");
    Ok((serde_json::Value::Null, String::new()))
}

/// Writes `vault.1` and one page per command (`vault-get.1`,
/// `vault-grant-show.1`, …) into `dir`.
pub fn manpages(dir: &Path) -> CommandResult {
    let io = |e: std::io::Error, p: &Path| {
        ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    let mut written = Vec::new();
    write_pages(&Cli::command(), "vault", dir, &mut written).map_err(|(e, p)| io(e, &p))?;
    let text = format!(
        "{} man pages written to {} (try: man -l {})",
        written.len(),
        dir.display(),
        dir.join("vault.1").display()
    );
    Ok((
        json!({"dir": dir.display().to_string(), "pages": written}),
        text,
    ))
}

/// The page of `command` (named `name`) and, recursively, of its commands.
fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<(), (std::io::Error, std::path::PathBuf)> {
    // Usage lines read `vault grant show …`; the page is vault-grant-show(1).
    let command = command.clone().bin_name(name.replace('-', " "));
    let file = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_string())
        .render(&mut page)
        .map_err(|e| (e, file.clone()))?;
    std::fs::write(&file, page).map_err(|e| (e, file.clone()))?;
    written.push(format!("{name}.1"));
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_gets_a_page_and_bash_completes_every_command() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (value, _) = manpages(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let pages: Vec<String> =
            serde_json::from_value(value["pages"].clone()).unwrap_or_else(|e| panic!("{e}"));
        for page in [
            "vault.1",
            "vault-get.1",
            "vault-grant-verify.1",
            "vault-audit-verify.1",
        ] {
            assert!(pages.contains(&page.to_string()), "{page} in {pages:?}");
        }
        let get = std::fs::read_to_string(dir.path().join("vault-get.1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get.contains("half\\-open"), "{get}");
        let mut command = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut command, "vault", &mut out);
        let script = String::from_utf8_lossy(&out);
        for word in ["accesses", "portal", "receipt", "--grant", "--max-uses"] {
            assert!(script.contains(word), "{word}");
        }
    }
}
