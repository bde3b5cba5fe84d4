//! `vault`: the command line for department systems, residents and auditors.
//!
//! Every command takes `--json` and then prints exactly one JSON object on
//! standard output; a failure prints `{"error":{"code":..,"message":..}}`
//! and exits with status 1.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pki::{DocumentKind, GrantId, Identity, Purpose, RequestId, RequestScope, ResidentId};
use serde_json::{json, Value};
use vault_client::{ByteRange, ClientError, DocumentId, ErrorCode, GetOptions, VaultClient};

/// The district document vault's command line.
#[derive(Parser)]
#[command(name = "vault", version, about)]
struct Cli {
    /// Identity directory (cert.pem, key.pem, ca.pem) to connect as.
    #[arg(long, global = true, env = "VAULT_IDENTITY")]
    identity: Option<PathBuf>,
    /// The node(s) to talk to: HOST:PORT, or several comma separated,
    /// preferred in order (the next is tried when one does not answer
    /// within 250 ms). Default: the identity's `nodes` file, else
    /// 127.0.0.1:7443.
    #[arg(long, global = true, env = "VAULT_NODE")]
    node: Option<String>,
    /// Print one JSON object (or a JSON error) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Clone)]
enum Command {
    /// Put a document issued by your department into the vault.
    Put {
        /// The file to store.
        file: PathBuf,
        /// The resident the document belongs to.
        #[arg(long)]
        resident: ResidentId,
        /// The kind of document, e.g. marriage-certificate.
        #[arg(long)]
        kind: DocumentKind,
    },
    /// Fetch a document, verified against the issuer's signed hash.
    Get {
        /// The document id printed by `vault put` or `vault list`.
        document_id: DocumentId,
        /// Where to write it (written to FILE.part, renamed when verified).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Fetch only bytes START..END.
        #[arg(long, value_parser = parse_range)]
        range: Option<ByteRange>,
        /// Start over instead of resuming an interrupted download.
        #[arg(long)]
        no_resume: bool,
        /// Fetch under this grant (a department other than the issuer).
        #[arg(long)]
        grant: Option<pki::GrantId>,
    },
    /// List a resident's documents you may see.
    List {
        /// Whose documents.
        #[arg(long)]
        resident: ResidentId,
    },
    /// (Department) Ask a resident for documents, for a purpose.
    Request {
        /// Whose documents.
        #[arg(long)]
        resident: ResidentId,
        /// Exact documents, comma separated.
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "kinds",
            required_unless_present = "kinds"
        )]
        documents: Vec<DocumentId>,
        /// Kinds of document (the resident's current one of each), comma separated.
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<DocumentKind>,
        /// Purpose code from the district's registry, e.g. housing-subsidy.
        #[arg(long)]
        purpose: Purpose,
        /// How long access is asked for: 3600, 90m, 12h, 30d.
        #[arg(long, value_parser = parse_duration)]
        ttl: u64,
    },
    /// (Resident) List pending requests addressed to you.
    Requests,
    /// (Resident) Approve a request: sign a grant, possibly narrowed.
    Approve {
        /// The request id shown by `vault requests`.
        request_id: RequestId,
        /// Fetches the grant allows.
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// Shorter validity than asked: 3600, 90m, 12h, 30d.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<u64>,
    },
    /// (Resident) Deny a request.
    Deny {
        /// The request id.
        request_id: RequestId,
    },
    /// Grants you gave (resident) or hold (department).
    Grants,
    /// Show, verify or give up one grant.
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// (Resident) Revoke a grant; effective for the next fetch.
    Revoke {
        /// The grant id.
        grant_id: GrantId,
    },
    /// The transparency log: checkpoints, proofs, and the auditor's check.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// (Resident) Every access to your documents, each checked against an
    /// inclusion proof in the signed log.
    Accesses {
        /// Every log entry about you, not only fetches.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Clone)]
enum AuditCommand {
    /// Print the current signed checkpoint (C2SP signed note).
    Checkpoint,
    /// Inclusion proof of one entry (RFC 6962).
    Proof {
        /// The entry's index.
        #[arg(long)]
        index: u64,
        /// Prove against this tree size (default: the current size).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof between two tree sizes (RFC 6962).
    Consistency {
        /// The older size.
        #[arg(long)]
        from: u64,
        /// The newer size.
        #[arg(long)]
        to: u64,
    },
    /// (Auditor) Verify the whole log: signature, consistency with the last
    /// trusted checkpoint, the tree, and the access rules.
    Verify {
        /// Where the trusted checkpoint is kept between runs.
        #[arg(long, default_value = ".vault-audit")]
        state: PathBuf,
    },
}

#[derive(Subcommand, Clone)]
enum GrantCommand {
    /// Show a grant; with -o, save the sealed grant for offline checks.
    Show {
        /// The grant id.
        grant_id: GrantId,
        /// Write the sealed grant (JSON) here.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Verify a saved grant offline: chains to the district CA, consent and
    /// seal signatures, validity window. No network.
    Verify {
        /// The sealed grant (JSON, from `grant show -o`).
        file: PathBuf,
        /// The district CA certificate (defaults to the identity's ca.pem).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// (Department) Give up a grant you hold.
    Release {
        /// The grant id.
        grant_id: GrantId,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return report(
                json,
                Err(ClientError::local(ErrorCode::LocalIo, e.to_string())),
            )
        }
    };
    let result = runtime.block_on(run(cli));
    report(json, result)
}

/// Usage errors: JSON under `--json` (code `cli.usage`, exit 2), else clap's text.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args().any(|a| a == "--json");
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let message = e.to_string();
    let first = message.lines().next().unwrap_or("bad command line");
    println!(
        "{}",
        json!({"error": {"code": "cli.usage", "message": first.trim_start_matches("error: ")}})
    );
    ExitCode::from(2)
}

/// Set by a command whose output is complete but whose verdict is a
/// failure (`audit verify` finding violations): exit status 1.
static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn report(json: bool, result: Result<(Value, String), ClientError>) -> ExitCode {
    match result {
        Ok((value, text)) => {
            if json {
                println!("{value}");
            } else {
                println!("{text}");
            }
            if FAILED.load(std::sync::atomic::Ordering::SeqCst) {
                ExitCode::FAILURE
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
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(Value, String), ClientError> {
    let identity_dir = cli.identity.clone().ok_or_else(|| {
        ClientError::local(
            ErrorCode::InvalidArgument,
            "no identity: pass --identity DIR or set VAULT_IDENTITY",
        )
    })?;
    let identity = Identity::load(&identity_dir)?;
    if let Command::Grant {
        command: GrantCommand::Verify { file, ca },
    } = &cli.command
    {
        return verify_grant_offline(&identity, file, ca.as_deref());
    }
    let progress = !cli.json && std::io::stderr().is_terminal();
    let nodes = match &cli.node {
        Some(list) => vault_client::client::parse_nodes(list),
        None => vault_client::client::default_nodes(&identity_dir)?,
    };
    // Puts (idempotent: same record, same document id), gets (resumed
    // from the `.part` file) and lists are retried on the next node when a
    // node fails mid-command; other commands are not (an approval or a
    // revocation answered `cluster.unavailable` may have been committed).
    let retry_safe = matches!(
        cli.command,
        Command::Put { .. } | Command::Get { .. } | Command::List { .. }
    );
    // A get under a grant whose node answered `cluster.unavailable` is not
    // retried: its use may have been counted (though no byte was sent), and
    // another attempt would spend a second one. (A connection lost in the
    // middle of the transfer is resumed elsewhere, spending one more use,
    // as any resumed grant download does.)
    let unavailable_is_retried = !matches!(cli.command, Command::Get { grant: Some(_), .. });
    let attempts = if retry_safe { nodes.len().max(1) } else { 1 };
    let mut attempt = 0;
    loop {
        let mut order = nodes.clone();
        order.rotate_left(attempt % nodes.len().max(1));
        let result = match VaultClient::connect_any(identity.clone(), &order).await {
            Ok(client) => execute(&client, cli.command.clone(), progress).await,
            Err(e) => Err(e),
        };
        attempt += 1;
        match result {
            Err(e)
                if attempt < attempts
                    && (e.is_transient()
                        || (unavailable_is_retried && e.code() == "cluster.unavailable")) =>
            {
                eprintln!("{e}; retrying on another node");
                tokio::time::sleep(std::time::Duration::from_millis(FAILOVER_PAUSE_MS)).await;
            }
            other => return other,
        }
    }
}

/// Pause before a command is retried on the next node, in milliseconds.
const FAILOVER_PAUSE_MS: u64 = 500;

async fn execute(
    client: &VaultClient,
    command: Command,
    progress: bool,
) -> Result<(Value, String), ClientError> {
    match command {
        Command::Put {
            file,
            resident,
            kind,
        } => {
            let out = client.put_file(&file, &resident, &kind, progress).await?;
            let text = format!(
                "{} stored ({} bytes, blake3 {}){}",
                out.document_id,
                out.size,
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
        Command::Get {
            document_id,
            output,
            range,
            no_resume,
            grant,
        } => {
            let options = GetOptions {
                range,
                resume: !no_resume,
                progress,
                grant,
            };
            let out = client.get_to_file(document_id, &output, options).await?;
            let record = &out.document.record;
            let text = format!(
                "{} -> {} ({} bytes, blake3 {} verified; issued by {} on {} for {}, {})",
                document_id,
                output.display(),
                out.bytes,
                record.content_hash,
                out.issuer.name,
                record.issued_at,
                record.resident,
                record.kind
            );
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
            });
            Ok((value, text))
        }
        Command::List { resident } => {
            let documents = client.list(&resident).await?;
            let mut text = String::new();
            let items: Vec<Value> = documents
                .iter()
                .map(|d| {
                    text.push_str(&format!(
                        "{}  {:<24} {:>12} bytes  issued by {} at {}\n",
                        d.document_id,
                        d.record.kind,
                        d.record.size,
                        d.record.issuer,
                        d.record.issued_at
                    ));
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
            let value = json!({"resident": resident.as_str(), "documents": items});
            Ok((value, text.trim_end().to_string()))
        }
        Command::Audit { command } => audit_command(client, command).await,
        Command::Accesses { all } => accesses(client, all).await,
        other => consent_command(client, other).await,
    }
}

async fn audit_command(
    client: &VaultClient,
    command: AuditCommand,
) -> Result<(Value, String), ClientError> {
    match command {
        AuditCommand::Checkpoint => {
            let (checkpoint, note) = client.checkpoint().await?;
            let value = json!({"origin": checkpoint.origin, "tree_size": checkpoint.size,
                "root_hash": hex::encode(checkpoint.root), "note": note});
            Ok((value, note.trim_end().to_string()))
        }
        AuditCommand::Proof { index, size } => {
            // Prove against the signed checkpoint unless another size is asked.
            let (checkpoint, _) = client.checkpoint().await?;
            let size = size.unwrap_or(checkpoint.size);
            let response = client.inclusion_proof(index, Some(size)).await?;
            if let vault_client::wire::Response::InclusionProof {
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
        AuditCommand::Consistency { from, to } => {
            let (checkpoint, _) = client.checkpoint().await?;
            let response = client.consistency_proof(from, to).await?;
            if let vault_client::wire::Response::ConsistencyProof {
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
        AuditCommand::Verify { state } => {
            let state = vault_client::audit::AuditState::open(&state)?;
            let report = vault_client::audit::verify(client, &state).await?;
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
                // The report is still printed in full; the exit status says it failed.
                FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Ok((value, text))
        }
    }
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
        vault_client::wire::Response::ConsistencyProof {
            old_root, new_root, ..
        } if old_root == root_hex && new_root == signed => Ok(()),
        _ => Err(mismatch(
            "the proof's root is not consistent with the signed checkpoint",
        )),
    }
}

/// Drops the wire enum's `type` tag, leaving the named fields.
fn strip_type(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.remove("type");
    }
    value
}

async fn accesses(client: &VaultClient, all: bool) -> Result<(Value, String), ClientError> {
    let (checkpoint, records, truncated) = client.accesses(all).await?;
    let mut items = Vec::new();
    let mut text = String::new();
    for r in records
        .iter()
        .filter(|r| all || r.entry.event == pki::LogEvent::Fetch)
    {
        let e = &r.entry;
        items.push(json!({
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
            "verified": true,
        }));
        text.push_str(&format!(
            "#{} {} {:?} by {} {} document {} purpose {} grant {} use {}\n",
            r.index,
            e.time,
            e.event,
            e.actor_role,
            e.actor,
            e.document_id.map(|d| d.to_string()).unwrap_or_default(),
            r.detail.purpose.clone().unwrap_or_default(),
            e.grant_id.map(|g| g.to_string()).unwrap_or_default(),
            e.use_number
        ));
    }
    if items.is_empty() {
        text.push_str("no accesses");
    }
    if truncated {
        text.push_str("\n(older entries left out: the newest 1000 are shown)");
    }
    let value = json!({"tree_size": checkpoint.size, "root_hash": hex::encode(checkpoint.root), "accesses": items, "truncated": truncated});
    Ok((value, text.trim_end().to_string()))
}

async fn consent_command(
    client: &VaultClient,
    command: Command,
) -> Result<(Value, String), ClientError> {
    match command {
        Command::Request {
            resident,
            documents,
            kinds,
            purpose,
            ttl,
        } => {
            let scope = if documents.is_empty() {
                RequestScope::Kinds(kinds)
            } else {
                RequestScope::Documents(documents)
            };
            let request_id = client
                .request_access(&resident, scope, &purpose, ttl)
                .await?;
            let text = format!("request {request_id} sent to {resident}");
            Ok((json!({"request_id": request_id}), text))
        }
        Command::Requests => {
            let requests = client.pending_requests().await?;
            let mut text = String::new();
            for r in &requests {
                text.push_str(&format!(
                    "{}  {} asks for {} document(s) for {} ({}; {}), {} s\n",
                    r.request_id,
                    r.department,
                    r.documents.len(),
                    r.purpose,
                    r.purpose_description,
                    r.legal_basis,
                    r.ttl_s
                ));
                for d in &r.documents {
                    text.push_str(&format!(
                        "    {} {} issued by {}\n",
                        d.document_id, d.kind, d.issuer
                    ));
                }
            }
            if requests.is_empty() {
                text.push_str("no pending requests");
            }
            Ok((json!({"requests": requests}), text.trim_end().to_string()))
        }
        Command::Approve {
            request_id,
            max_uses,
            ttl,
        } => {
            let request = client
                .pending_requests()
                .await?
                .into_iter()
                .find(|r| r.request_id == request_id)
                .ok_or_else(|| ClientError::Refused {
                    code: ErrorCode::RequestNotFound.as_str().to_string(),
                    message: format!("no pending request {request_id} addressed to you"),
                })?;
            let body = client.approval_body(&request, max_uses, ttl)?;
            let grant = client.approve(body).await?;
            let id = grant.id();
            let text = format!(
                "grant {id}: {} may fetch {} document(s) {} time(s) until {}",
                grant.body.grantee,
                grant.body.documents.len(),
                grant.body.max_uses,
                grant.body.not_after
            );
            Ok((
                json!({"grant_id": id, "request_id": request_id, "documents": grant.body.documents, "not_after": grant.body.not_after, "max_uses": grant.body.max_uses}),
                text,
            ))
        }
        Command::Deny { request_id } => {
            client.deny(request_id).await?;
            Ok((
                json!({"request_id": request_id, "denied": true}),
                format!("request {request_id} denied"),
            ))
        }
        Command::Grants => {
            let grants = client.grants().await?;
            let mut text = String::new();
            for g in &grants {
                text.push_str(&format!(
                    "{}  {} -> {} for {}, {}/{} uses, until {}{}\n",
                    g.grant_id,
                    g.resident,
                    g.grantee,
                    g.purpose,
                    g.uses,
                    g.max_uses,
                    g.not_after,
                    if g.revoked { ", revoked" } else { "" }
                ));
            }
            if grants.is_empty() {
                text.push_str("no grants");
            }
            Ok((json!({"grants": grants}), text.trim_end().to_string()))
        }
        Command::Grant {
            command: GrantCommand::Show { grant_id, output },
        } => {
            let (view, sealed) = client.show_grant(grant_id).await?;
            if let Some(path) = &output {
                let text = sealed.to_json()?;
                std::fs::write(path, text).map_err(|e| {
                    ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
                })?;
            }
            let text = serde_json::to_string_pretty(&view).unwrap_or_default();
            Ok((json!({"grant": view, "sealed": sealed}), text))
        }
        Command::Grant {
            command: GrantCommand::Release { grant_id },
        }
        | Command::Revoke { grant_id } => {
            client.revoke_grant(grant_id).await?;
            Ok((
                json!({"grant_id": grant_id, "revoked": true}),
                format!("grant {grant_id} revoked"),
            ))
        }
        _ => Err(ClientError::local(
            ErrorCode::InvalidArgument,
            "unsupported command",
        )),
    }
}

/// `vault grant verify FILE`: no network, only the CA certificate.
fn verify_grant_offline(
    identity: &Identity,
    file: &std::path::Path,
    ca: Option<&std::path::Path>,
) -> Result<(Value, String), ClientError> {
    let local = |e: std::io::Error, p: &std::path::Path| {
        ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", p.display()))
    };
    let bytes = std::fs::read(file).map_err(|e| local(e, file))?;
    let grant = pki::Grant::from_json(&bytes).map_err(|e| ClientError::Refused {
        code: ErrorCode::GrantMalformed.as_str().to_string(),
        message: e.to_string(),
    })?;
    let ca_der = match ca {
        Some(path) => pki::read_certificate_pem(path)?,
        None => identity.ca_der().to_vec(),
    };
    let verified = grant.verify(&ca_der, &[]).map_err(|e| {
        let code = match e.code() {
            "pki.bad_signature" | "pki.issuer_mismatch" => ErrorCode::GrantBadSignature,
            "pki.untrusted" | "pki.bad_certificate" => ErrorCode::GrantUntrusted,
            _ => ErrorCode::GrantMalformed,
        };
        ClientError::Refused {
            code: code.as_str().to_string(),
            message: e.to_string(),
        }
    })?;
    let now = vault_client::client::now_unix();
    let body = &grant.body;
    let window = if now < body.not_before {
        "not_yet_valid"
    } else if now > body.not_after {
        "expired"
    } else {
        "valid"
    };
    let value = json!({
        "grant_id": verified.id,
        "valid_signatures": true,
        "resident": verified.resident.name.as_str(),
        "sealed_by": verified.node.name.as_str(),
        "grantee": body.grantee.as_str(),
        "purpose": body.purpose.as_str(),
        "documents": body.documents,
        "not_before": body.not_before,
        "not_after": body.not_after,
        "max_uses": body.max_uses,
        "window": window,
    });
    let text = format!(
        "grant {}: signatures valid (consent by {}, sealed by {}); {} for {}, window {}",
        verified.id, verified.resident.name, verified.node.name, body.grantee, body.purpose, window
    );
    Ok((value, text))
}

/// Durations: plain seconds, or a number with s, m, h or d.
fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad duration {text:?}: use e.g. 3600, 90m, 12h, 30d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit {unit:?}: use s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("bad duration {text:?}"))
}

fn parse_range(text: &str) -> Result<ByteRange, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| "expected START..END, e.g. 0..1024".to_string())?;
    let start: u64 = start.parse().map_err(|_| format!("bad start {start:?}"))?;
    let end: u64 = end.parse().map_err(|_| format!("bad end {end:?}"))?;
    if start > end {
        return Err("START must not exceed END".into());
    }
    Ok(ByteRange { start, end })
}
