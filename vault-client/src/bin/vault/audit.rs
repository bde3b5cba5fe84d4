//! The transparency log: `vault audit checkpoint`, `audit proof`, `audit
//! consistency`, `audit verify` (the auditor's whole check), and a
//! resident's `vault accesses`. Every proof printed is checked against the
//! signed checkpoint first.

use std::path::Path;

use serde_json::json;
use vault_client::wire::Response;
use vault_client::{ClientError, VaultClient};

use crate::args::{AuditCommand, PageArgs};
use crate::human;
use crate::output::{self, strip_type, with_cursor, CommandResult};

/// `vault audit ...`.
pub async fn command(client: &VaultClient, command: AuditCommand) -> CommandResult {
    match command {
        AuditCommand::Checkpoint => checkpoint(client).await,
        AuditCommand::Proof { index, size } => proof(client, index, size).await,
        AuditCommand::Consistency { from, to } => consistency(client, from, to).await,
        AuditCommand::Verify { state, notes } => verify(client, &state, &notes).await,
    }
}

/// `vault audit checkpoint`: the signed note, its signature checked.
async fn checkpoint(client: &VaultClient) -> CommandResult {
    let (checkpoint, note) = client.checkpoint().await?;
    let value = json!({"origin": checkpoint.origin, "tree_size": checkpoint.size,
        "root_hash": hex::encode(checkpoint.root),
        "resident_index": checkpoint.resident_index.map(hex::encode), "note": note});
    Ok((value, note.trim_end().to_string()))
}

/// `vault audit proof --index I [--size N]`.
async fn proof(client: &VaultClient, index: u64, size: Option<u64>) -> CommandResult {
    // Prove against the signed checkpoint unless another size is asked.
    let (checkpoint, _) = client.checkpoint().await?;
    let size = size.unwrap_or(checkpoint.size);
    let response = client.inclusion_proof(index, Some(size)).await?;
    if let Response::InclusionProof {
        root_hash,
        tree_size,
        leaf_index,
        ..
    } = &response
    {
        if *leaf_index != index || *tree_size != size {
            return Err(mismatch("the node proved another entry or size than asked"));
        }
        check_against_checkpoint(client, &checkpoint, size, root_hash).await?;
    }
    let value = serde_json::to_value(&response).unwrap_or_default();
    let value = strip_type(value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    Ok((value, text))
}

/// `vault audit consistency --from A --to B`.
async fn consistency(client: &VaultClient, from: u64, to: u64) -> CommandResult {
    let (checkpoint, _) = client.checkpoint().await?;
    let response = client.consistency_proof(from, to).await?;
    if let Response::ConsistencyProof {
        new_root,
        new_size,
        old_size,
        ..
    } = &response
    {
        if *old_size != from || *new_size != to {
            return Err(mismatch("the node proved other sizes than asked"));
        }
        check_against_checkpoint(client, &checkpoint, to, new_root).await?;
    }
    let value = strip_type(serde_json::to_value(&response).unwrap_or_default());
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    Ok((value, text))
}

/// `vault audit verify [--state DIR] [--note FILE]...`: the report is
/// printed in full; the exit status says whether it passed. Each note must
/// verify with the identity's log keys before anything is fetched.
async fn verify(client: &VaultClient, state: &Path, notes: &[std::path::PathBuf]) -> CommandResult {
    let mut seen = Vec::with_capacity(notes.len());
    for path in notes {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::local(
                vault_client::ErrorCode::LocalIo,
                format!("{}: {e}", path.display()),
            )
        })?;
        let note = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("note").and_then(|n| n.as_str()).map(str::to_string))
            .unwrap_or(text);
        let checkpoint = pki::Checkpoint::verify_note(&note, client.identity().log_keys())
            .map_err(|e| ClientError::Refused {
                code: e.code().to_string(),
                message: format!("{}: {e}", path.display()),
            })?;
        seen.push(checkpoint);
    }
    let state = vault_client::audit::AuditState::open(state)?;
    let report = vault_client::audit::verify_seen(client, &state, &seen).await?;
    let value = serde_json::to_value(&report).unwrap_or_default();
    let mut text = format!(
        "tree size {}, {} entries checked, consistent: {}, {} violation(s)",
        report.tree_size,
        report.entries_checked,
        report.consistent,
        report.violations.len()
    );
    for v in &report.violations {
        text.push_str(&format!("\n  entry {}: {} ({})", v.index, v.rule, v.detail));
    }
    if !report.passed() {
        output::mark_failed();
    }
    Ok((value, text))
}

fn mismatch(message: &str) -> ClientError {
    ClientError::Refused {
        code: "proof.mismatch".to_string(),
        message: message.to_string(),
    }
}

/// A proof's root at `size` must be the signed root, or (for an older size)
/// be proven consistent with it.
async fn check_against_checkpoint(
    client: &VaultClient,
    checkpoint: &pki::Checkpoint,
    size: u64,
    root_hex: &str,
) -> Result<(), ClientError> {
    let signed = hex::encode(checkpoint.root);
    if size == checkpoint.size {
        if root_hex == signed {
            return Ok(());
        }
        return Err(mismatch("the proof's root is not the root the node signed"));
    }
    if size > checkpoint.size {
        return Err(mismatch(
            "the proof is for a tree larger than the signed checkpoint",
        ));
    }
    match client.consistency_proof(size, checkpoint.size).await? {
        Response::ConsistencyProof {
            old_root, new_root, ..
        } if old_root == root_hex && new_root == signed => Ok(()),
        _ => Err(mismatch(
            "the proof's root is not consistent with the signed checkpoint",
        )),
    }
}

/// `vault accesses [--all] [--limit N] [--cursor C]`: the resident's log
/// entries, each verified: every page, each against the first page's
/// checkpoint, or the one page asked for, against its own checkpoint.
///
/// `complete` is `true` only for the whole list proven complete against
/// the checkpoint's resident index (`VaultClient::accesses_checked`); one
/// page alone is never proven complete.
pub async fn accesses(client: &VaultClient, all: bool, page: &PageArgs) -> CommandResult {
    let (checkpoint, records, next_cursor, complete) = if page.single() {
        let one = client
            .accesses_page(all, page.cursor.clone(), page.limit, None)
            .await?;
        let complete = Err((
            "none".to_string(),
            "one page is not checked for completeness".to_string(),
        ));
        (one.checkpoint, one.entries, Some(one.next_cursor), complete)
    } else {
        let checked = client.accesses_checked(all).await?;
        let mut records = Vec::with_capacity(checked.entries.len());
        for access in checked.entries {
            records.push(access.verified?);
        }
        let complete = checked
            .complete
            .map_err(|e| (e.code().to_string(), e.to_string()));
        (checked.checkpoint, records, None, complete)
    };
    let truncated = matches!(next_cursor, Some(Some(_)));
    // Accesses by law: each disclosed order's sealed entries, checked.
    let disclosed = client.disclosures(&checkpoint, &records).await?;
    let mut rows: Vec<(u64, serde_json::Value, String)> = Vec::new();
    for d in &disclosed {
        rows.extend(crate::orders::by_law_rows(d, all));
    }
    for r in records
        .iter()
        .filter(|r| all || r.entry.event == pki::LogEvent::Fetch)
    {
        let e = &r.entry;
        rows.push((r.index, json!({
            "log_index": r.index,
            "event": e.event,
            "time": e.time,
            "actor_role": e.actor_role,
            "department": if e.actor_role == pki::Role::Department { Some(&e.actor) } else { None },
            "document_id": e.document_id,
            "kind": r.detail.kind,
            "purpose": r.detail.purpose,
            "grant_id": e.grant_id,
            "use_number": e.use_number,
            "code": e.code,
            "by_law": false,
            "verified": true,
        }), access_line(r)));
    }
    rows.sort_by_key(|(index, _, _)| *index);
    let mut items = Vec::new();
    let mut text = String::new();
    for (_, item, line) in rows {
        items.push(item);
        text.push_str(&line);
        text.push('\n');
    }
    if items.is_empty() {
        text.push_str("no accesses");
    }
    match &complete {
        Ok(()) => text.push_str("\ncomplete: this is every entry about you in the log"),
        Err((code, why)) => text.push_str(&format!("\nnot proven complete ({code}): {why}")),
    }
    let mut value = json!({"tree_size": checkpoint.size, "root_hash": hex::encode(checkpoint.root), "accesses": items, "truncated": truncated, "complete": complete.is_ok()});
    if let Err((code, why)) = &complete {
        value["incomplete"] = json!({"code": code, "message": why});
    }
    with_cursor(&mut value, next_cursor, &mut text);
    Ok((value, text.trim_end().to_string()))
}

/// One verified entry for people: "2026-12-04 11:52  housing-bureau
/// fetched marriage-certificate 45fa… for housing-subsidy (grant c81e…,
/// use 1)  [#12]".
fn access_line(r: &vault_client::client::VerifiedAccess) -> String {
    entry_line(r.index, &r.entry, &r.detail)
}

/// [`access_line`] of any checked entry.
pub fn entry_line(index: u64, e: &pki::LogEntry, detail: &pki::LogDetail) -> String {
    let who = match e.actor_role {
        pki::Role::Department => e.actor.clone(),
        pki::Role::Resident => "you".to_string(),
        pki::Role::Authority => e.actor.clone(),
        role => format!("{role} {}", e.actor).trim_end().to_string(),
    };
    let kind = detail
        .kind
        .clone()
        .unwrap_or_else(|| "document".to_string());
    let document = e
        .document_id
        .map(|d| format!(" {}", human::short(&d.to_string())))
        .unwrap_or_default();
    let what = match e.event {
        pki::LogEvent::Fetch => format!("fetched {kind}{document}"),
        pki::LogEvent::DocumentIssued => format!("issued {kind}{document}"),
        pki::LogEvent::RequestMade => "asked for your documents".to_string(),
        pki::LogEvent::Approval => "approved a request".to_string(),
        pki::LogEvent::Denial => "denied a request".to_string(),
        pki::LogEvent::GrantIssued => "received a grant".to_string(),
        pki::LogEvent::Refusal => format!("was refused ({})", e.code),
        pki::LogEvent::Revoke => "revoked a grant".to_string(),
        pki::LogEvent::OrderFiled => "filed an order for your documents".to_string(),
        pki::LogEvent::OrderApproved => "authorised an order".to_string(),
        pki::LogEvent::OrderDenied => "denied an order".to_string(),
        pki::LogEvent::SealExtended => "extended an order's seal".to_string(),
        pki::LogEvent::OrderDisclosed => "disclosed an order by law".to_string(),
        other => format!("{other:?}"),
    };
    let purpose = detail
        .purpose
        .as_ref()
        .map(|p| format!(" for {p}"))
        .unwrap_or_default();
    let grant = match (e.grant_id, e.use_number) {
        (Some(g), n) if n > 0 => format!(" (grant {}, use {n})", human::short(&g.to_string())),
        (Some(g), _) => format!(" (grant {})", human::short(&g.to_string())),
        (None, _) => String::new(),
    };
    format!(
        "{}  {who} {what}{purpose}{grant}  [#{}]",
        human::time(e.time),
        index
    )
}
