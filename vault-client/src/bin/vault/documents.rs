//! Documents: `vault put`, `vault get` and `vault list`.

use std::path::Path;

use pki::{DocumentKind, ResidentId};
use serde_json::{json, Value};
use vault_client::{ClientError, DocumentId, ErrorCode, GetOptions, VaultClient};

use crate::args::PageArgs;
use crate::human;
use crate::output::{with_cursor, CommandResult};

/// `vault put FILE --resident R --kind K`.
pub async fn put(
    client: &VaultClient,
    file: &Path,
    resident: &ResidentId,
    kind: &DocumentKind,
    progress: bool,
) -> CommandResult {
    let out = client.put_file(file, resident, kind, progress).await?;
    let text = format!(
        "stored {} as document {} (blake3 {}){}",
        human::size(out.size),
        out.document_id,
        out.content_hash,
        if out.deduplicated {
            ", deduplicated"
        } else {
            ""
        }
    );
    let value = json!({
        "document_id": out.document_id,
        "content_hash": out.content_hash,
        "size": out.size,
        "deduplicated": out.deduplicated,
    });
    Ok((value, text))
}

/// `vault get ID -o FILE [--range A..B] [--no-resume] [--grant G]`.
pub async fn get(
    client: &VaultClient,
    document_id: DocumentId,
    output: &Path,
    options: GetOptions,
    receipt_path: Option<&Path>,
) -> CommandResult {
    if let Some(path) = receipt_path.filter(|p| p.exists()) {
        return Err(ClientError::local(
            ErrorCode::LocalIo,
            format!(
                "{} already exists; choose another --receipt FILE",
                path.display()
            ),
        ));
    }
    let options_grant = options.grant;
    let out = client.get_to_file(document_id, output, options).await?;
    // The fetch's entry, proven in the signed log (and that checkpoint
    // checked against the one this identity remembers): a department
    // knows its fetch was logged, and may keep the proof.
    // The use this fetch spent, as its logged entry says (0: no grant).
    let mut use_number = 0u32;
    let logged = match out.log_index {
        Some(index) => {
            let receipt = client.receipt(index).await.map_err(|e| {
                ClientError::local(
                    ErrorCode::parse(e.code()).unwrap_or(ErrorCode::Integrity),
                    format!(
                        "{} was written, but its log entry {index} could not be proven: {e}",
                        output.display()
                    ),
                )
            })?;
            if let Some(path) = receipt_path {
                crate::receipts::write_new(path, &receipt.encode())?;
            }
            if let Ok(entry) = pki::LogEntry::parse(&receipt.entry) {
                if entry.grant_id.is_some() {
                    use_number = entry.use_number;
                }
            }
            true
        }
        None => false,
    };
    let record = &out.document.record;
    let text = format!(
        "{} written to {} ({}{}, verified against the hash {} signed): {} of {}, issued {}",
        document_id,
        output.display(),
        human::size(out.bytes),
        if out.resumed_from > 0 {
            format!(", resumed from {}", human::size(out.resumed_from))
        } else {
            String::new()
        },
        out.issuer.name,
        record.kind,
        record.resident,
        human::time(record.issued_at),
    );
    let text = match (&options_grant, use_number) {
        (Some(grant), n) if n > 0 => format!("{text}\nspent use {n} of grant {grant}"),
        _ => text,
    };
    let value = json!({
        "document_id": document_id,
        "content_hash": record.content_hash,
        "size": record.size,
        "issuer": out.issuer.name.as_str(),
        "resident": record.resident.as_str(),
        "kind": record.kind.as_str(),
        "issued_at": record.issued_at,
        "bytes_written": out.bytes,
        "resumed_from": out.resumed_from,
        "output": output.display().to_string(),
        "log_index": out.log_index,
        "logged": logged,
        "receipt": receipt_path.map(|p| p.display().to_string()),
        "grant_use": (use_number > 0).then_some(use_number),
    });
    Ok((value, text))
}

/// The error of a download stopped by Ctrl-C: where its bytes are and how
/// to resume.
pub fn interrupted(output: &Path, spends_use: bool) -> ClientError {
    let mut part = output.as_os_str().to_owned();
    part.push(".part");
    let part = Path::new(&part);
    let kept = std::fs::metadata(part)
        .map(|m| format!("{} kept in {}", human::size(m.len()), part.display()))
        .unwrap_or_else(|_| "nothing was written yet".to_string());
    ClientError::local(
        ErrorCode::Interrupted,
        format!(
            "interrupted: {kept}; run the same command again to resume{}",
            if spends_use {
                " (the resumed fetch spends one more use of the grant)"
            } else {
                ""
            }
        ),
    )
}

/// `vault list --resident R [--limit N] [--cursor C]`: every page, or the
/// one asked for.
pub async fn list(client: &VaultClient, resident: &ResidentId, page: &PageArgs) -> CommandResult {
    let (documents, next_cursor) = if page.single() {
        let one = client
            .list_page(resident, page.cursor.clone(), page.limit)
            .await?;
        (one.items, Some(one.next_cursor))
    } else {
        (client.list(resident).await?, None)
    };
    let rows: Vec<Vec<String>> = documents
        .iter()
        .map(|d| {
            vec![
                d.document_id.to_string(),
                d.record.kind.to_string(),
                human::size(d.record.size),
                d.record.issuer.to_string(),
                human::time(d.record.issued_at),
            ]
        })
        .collect();
    let mut text = if rows.is_empty() {
        String::new()
    } else {
        human::table(&["DOCUMENT", "KIND", "SIZE", "ISSUER", "ISSUED"], &rows) + "\n"
    };
    let items: Vec<Value> = documents
        .iter()
        .map(|d| {
            json!({
                "document_id": d.document_id,
                "kind": d.record.kind.as_str(),
                "content_hash": d.record.content_hash,
                "size": d.record.size,
                "issuer": d.record.issuer.as_str(),
                "issued_at": d.record.issued_at,
            })
        })
        .collect();
    if items.is_empty() {
        text.push_str("no documents you may see");
    }
    let mut value = json!({"resident": resident.as_str(), "documents": items});
    with_cursor(&mut value, next_cursor, &mut text);
    Ok((value, text.trim_end().to_string()))
}
