//! Receipts: `vault receipt export` (a log entry with its inclusion proof
//! and the signed checkpoint, as a C2SP tlog-proof file) and `vault
//! receipt verify` (offline: the district's log keys only).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use vault_client::receipt::Receipt;
use vault_client::{ClientError, ErrorCode, VaultClient};

use crate::output::CommandResult;

fn local(e: std::io::Error, path: &Path) -> ClientError {
    ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
}

/// `vault receipt export --index N [-o FILE]`: written only once checked,
/// to a new file (an existing one is never overwritten).
pub async fn export(client: &VaultClient, index: u64, output: Option<PathBuf>) -> CommandResult {
    let path = output.unwrap_or_else(|| PathBuf::from(format!("vault-entry-{index}.tlog-proof")));
    if path.exists() {
        return Err(ClientError::local(
            ErrorCode::LocalIo,
            format!("{} already exists; choose another -o FILE", path.display()),
        ));
    }
    let receipt = client.receipt(index).await?;
    write_new(&path, &receipt.encode())?;
    let (checkpoint, _) = client.checkpoint().await?;
    Ok((
        json!({"index": index, "output": path, "tree_size": checkpoint.size.max(index + 1), "origin": checkpoint.origin}),
        format!(
            "receipt for log entry {index} written to {} (verify it anywhere with `vault receipt verify {}`)",
            path.display(),
            path.display()
        ),
    ))
}

/// Writes `text` to a new file (never over an existing one), synced.
pub fn write_new(path: &Path, text: &str) -> Result<(), ClientError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| local(e, path))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| local(e, path))
}

/// `vault receipt verify FILE [--log-pub FILE]`: no network. With the
/// identity's witness policy (not with `--log-pub`), the receipt's
/// checkpoint must carry the cosignatures it requires
/// (`log.witness_missing`).
pub fn verify(
    file: &Path,
    log_keys: &[pki::LogVerifier],
    policy: Option<&pki::WitnessPolicy>,
) -> CommandResult {
    let text = std::fs::read_to_string(file).map_err(|e| local(e, file))?;
    let receipt = Receipt::parse(&text).map_err(|e| {
        ClientError::local(
            ErrorCode::ReceiptMalformed,
            format!("{} is not a vault receipt: {e}", file.display()),
        )
    })?;
    let (entry, checkpoint) = vault_client::client::verify_receipt(&receipt, log_keys)?;
    let witnessed = match policy {
        Some(policy) => Some(vault_client::client::check_witnesses(
            policy,
            &receipt.note,
        )?),
        None => None,
    };
    let value = json!({
        "valid": true,
        "index": receipt.index,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root_hash": hex::encode(checkpoint.root),
        "entry": entry,
        "witnessed_by": witnessed,
    });
    let text = format!(
        "valid: entry {} ({:?} by {} {}, at unix time {}) is in {} at size {}",
        receipt.index,
        entry.event,
        entry.actor_role,
        entry.actor,
        entry.time,
        checkpoint.origin,
        checkpoint.size
    );
    Ok((value, text))
}
