//! What `vault` prints and how it exits: one JSON object (or a JSON error)
//! under `--json`, else text; exit status 0, or by the failure's code
//! ([`vault_client::error::exit_status`]): 1 refused, 2 usage error, 3
//! unavailable (connection, quorum, limits, disk), 4 verification failed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};
use vault_client::ClientError;

/// What a command prints on success: its JSON object and its text.
pub type CommandResult = Result<(Value, String), ClientError>;

/// Set by a command whose output is complete but whose verdict is a
/// failure (`audit verify` finding violations): exit status 4.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Marks the run failed although its output is printed in full.
pub fn mark_failed() {
    FAILED.store(true, Ordering::SeqCst);
}

/// Usage errors: JSON under `--json` (code `cli.usage`, exit 2; the message
/// names any missing argument), else clap's text.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args().any(|a| a == "--json");
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let message = vault_client::error::usage_message(&e.render().to_string());
    println!(
        "{}",
        json!({"error": {"code": "cli.usage", "message": message}})
    );
    ExitCode::from(vault_client::error::EXIT_USAGE)
}

/// Adds a single page's `next_cursor` to a listing's JSON (`null` at the
/// end) and a line saying where to go on to its text; `None` (the whole
/// listing was read) adds nothing.
pub fn with_cursor(value: &mut Value, next_cursor: Option<Option<String>>, text: &mut String) {
    let Some(next) = next_cursor else {
        return;
    };
    if let Some(cursor) = &next {
        text.push_str(&format!("\n(more: --cursor {cursor})"));
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("next_cursor".into(), json!(next));
    }
}

/// Prints a command's outcome (JSON or text) and picks the exit status.
pub fn report(json: bool, result: CommandResult) -> ExitCode {
    match result {
        // A command that printed its own output (`vault portal`).
        Ok((Value::Null, text)) if text.is_empty() => ExitCode::SUCCESS,
        Ok((value, text)) => {
            if json {
                println!("{value}");
            } else {
                println!("{text}");
            }
            if FAILED.load(Ordering::SeqCst) {
                ExitCode::from(vault_client::error::EXIT_VERIFICATION)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    json!({"error": {"code": e.code(), "message": e.to_string()}})
                );
            } else {
                eprintln!("error [{}]: {e}", e.code());
            }
            ExitCode::from(vault_client::error::exit_status(e.code()))
        }
    }
}

/// Drops the wire enum's `type` tag, leaving the named fields.
pub fn strip_type(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.remove("type");
    }
    value
}
