//! `vault`: the command line for department systems, residents and auditors.
//!
//! Every command takes `--json` and then prints exactly one JSON object on
//! standard output; a failure prints `{"error":{"code":..,"message":..}}`
//! and exits with status 1.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pki::{DocumentKind, Identity, ResidentId};
use serde_json::{json, Value};
use vault_client::{ByteRange, ClientError, DocumentId, ErrorCode, GetOptions, VaultClient};

/// The district document vault's command line.
#[derive(Parser)]
#[command(name = "vault", version, about)]
struct Cli {
    /// Identity directory (cert.pem, key.pem, ca.pem) to connect as.
    #[arg(long, global = true, env = "VAULT_IDENTITY")]
    identity: Option<PathBuf>,
    /// The node to talk to, HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "VAULT_NODE",
        default_value = "127.0.0.1:7443"
    )]
    node: String,
    /// Print one JSON object (or a JSON error) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
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
    },
    /// List a resident's documents you may see.
    List {
        /// Whose documents.
        #[arg(long)]
        resident: ResidentId,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn report(json: bool, result: Result<(Value, String), ClientError>) -> ExitCode {
    match result {
        Ok((value, text)) => {
            if json {
                println!("{value}");
            } else {
                println!("{text}");
            }
            ExitCode::SUCCESS
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
    let progress = !cli.json && std::io::stderr().is_terminal();
    let client = VaultClient::connect(identity, &cli.node).await?;
    match cli.command {
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
        } => {
            let options = GetOptions {
                range,
                resume: !no_resume,
                progress,
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
    }
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
