//! How `vault-node` fails: one line with a stable code (`error [CODE]:
//! message` on stderr, or `{"error":{"code":..,"message":..}}` on stdout
//! under `--json`), no error chain layout and no backtrace, and an exit
//! status by the code: 1 refused, 2 usage, 3 unavailable, 4 verification
//! failed ([`vault_client::error::exit_status`]).

use std::process::ExitCode;

use vault_client::error::{exit_status, usage_message, EXIT_USAGE};
use vault_client::ClientError;
use vault_node::Refusal;

/// The stable code of `e`: the first coded error in its chain (a node's
/// refusal, the client's error, a PKI error), else `cli.error`.
pub(crate) fn code_of(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(refusal) = cause.downcast_ref::<Refusal>() {
            return refusal.code.as_str().to_string();
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return client.code().to_string();
        }
        if let Some(pki) = cause.downcast_ref::<pki::PkiError>() {
            return pki.code().to_string();
        }
    }
    "cli.error".to_string()
}

/// A command that printed its whole output but whose verdict is a failure
/// with this exit status (`status` finding a member down): nothing more
/// is printed.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub(crate) struct Verdict(pub(crate) u8);

/// Prints `e` with its code and answers the exit status.
pub(crate) fn report(json: bool, e: &anyhow::Error) -> ExitCode {
    if let Some(Verdict(status)) = e.downcast_ref::<Verdict>() {
        return ExitCode::from(*status);
    }
    let code = code_of(e);
    // One line: the contexts and their causes, `: `-separated, without a
    // cause its context already quotes.
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    let message = parts.join(": ");
    print_error(json, &code, &message);
    ExitCode::from(exit_status(&code))
}

fn print_error(json: bool, code: &str, message: &str) {
    if json {
        println!(
            "{}",
            serde_json::json!({"error": {"code": code, "message": message}})
        );
    } else {
        eprintln!("error [{code}]: {message}");
    }
}

/// A bad command line: clap's own text (and help or version as asked),
/// or under `--json` one `cli.usage` error naming what is wrong; exit 2.
pub(crate) fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    print_error(json, "cli.usage", &usage_message(&e.render().to_string()));
    ExitCode::from(EXIT_USAGE)
}
