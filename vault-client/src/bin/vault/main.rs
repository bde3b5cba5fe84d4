//! `vault`: the command line for department systems, residents and auditors.
//!
//! Every command takes `--json` and then prints exactly one JSON object on
//! standard output; a failure prints `{"error":{"code":..,"message":..}}`
//! and exits with status 1 (refused), 3 (unavailable) or 4 (verification
//! failed); see `output`.
//!
//! This file parses the command line, connects (with failover between
//! nodes) and dispatches; each command group has its module: `documents`
//! (put, get, list), `consent` (request, requests, approve, deny), `grants`
//! (grants, grant show/verify/release, revoke), `audit` (the log's
//! checkpoints and proofs, `audit verify`, accesses), `registry` (the
//! district's purposes and departments), `receipts` (receipt export and
//! offline verification), `portal` (the resident's web
//! portal on loopback), `witness` (`vault witness init|serve`), `manual`
//! (shell completions and man pages). `args` is the
//! grammar, `output` the printing and exit status, `progress` the bar.

mod args;
mod audit;
mod consent;
mod documents;
mod grants;
mod human;
mod manual;
mod orders;
mod output;
mod portal;
mod progress;
mod receipts;
mod registry;
mod witness;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pki::Identity;
use vault_client::{ClientError, ErrorCode, GetOptions, VaultClient};

use crate::args::{Cli, Command, GrantCommand, ReceiptCommand};
use crate::output::CommandResult;

/// Pause before a command is retried on the next node, in milliseconds.
const FAILOVER_PAUSE_MS: u64 = 500;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::usage_error(e),
    };
    let json = cli.json;
    // Read while the process has one thread (see the function).
    human::remember_local_offset();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return output::report(
                json,
                Err(ClientError::local(ErrorCode::LocalIo, e.to_string())),
            )
        }
    };
    let result = runtime.block_on(run(cli));
    output::report(json, result)
}

async fn run(cli: Cli) -> CommandResult {
    match &cli.command {
        Command::Completions { shell } => return manual::completions(*shell),
        Command::Manpages { dir } => return manual::manpages(dir),
        _ => {}
    }
    if let Command::Witness { command } = cli.command {
        return witness::command(command).await;
    }
    if let Command::Receipt {
        command:
            ReceiptCommand::Verify {
                file,
                log_pub: Some(log_pub),
            },
    } = &cli.command
    {
        return receipts::verify(file, &pki::load_verifiers(log_pub)?, None);
    }
    if let Command::Grant {
        command: GrantCommand::Verify { file, ca: Some(ca) },
    } = &cli.command
    {
        if cli.identity.is_none() {
            return grants::verify_offline(None, file, Some(ca));
        }
    }
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
        return grants::verify_offline(Some(&identity), file, ca.as_deref());
    }
    if let Command::Receipt {
        command: ReceiptCommand::Verify { file, .. },
    } = &cli.command
    {
        return receipts::verify(file, identity.log_keys(), identity.witness_policy());
    }
    let progress = !cli.json && std::io::stderr().is_terminal();
    let nodes = match &cli.node {
        Some(list) => vault_client::client::parse_nodes(list),
        None => vault_client::client::default_nodes(&identity_dir)?,
    };
    if let Command::Portal(args) = cli.command {
        return portal::run(identity, nodes, args).await;
    }
    // Puts (idempotent: same record, same document id), gets (resumed
    // from the `.part` file), lists and registry reads are retried on the next node when a
    // node fails mid-command; other commands are not (an approval or a
    // revocation answered `cluster.unavailable` may have been committed).
    let retry_safe = matches!(
        cli.command,
        Command::Put { .. } | Command::Get { .. } | Command::List { .. } | Command::Registry
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
            Ok(client) => {
                let client = client.with_progress(Arc::new(progress::ProgressBar::default()));
                execute(&client, cli.command.clone(), progress).await
            }
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

/// Runs one command on a connected client; `progress` asks transfers for
/// a progress bar.
async fn execute(client: &VaultClient, command: Command, progress: bool) -> CommandResult {
    match command {
        Command::Put {
            file,
            resident,
            kind,
        } => documents::put(client, &file, &resident, &kind, progress).await,
        Command::Get {
            document_id,
            output,
            range,
            no_resume,
            grant,
            receipt,
        } => {
            let spends_use = grant.is_some();
            let options = GetOptions {
                range,
                resume: !no_resume,
                progress,
                grant,
            };
            let get = documents::get(client, document_id, &output, options, receipt.as_deref());
            // Ctrl-C: the verified bytes so far stay in FILE.part; say how
            // to go on rather than dying silently.
            tokio::select! {
                result = get => result,
                _ = tokio::signal::ctrl_c() => Err(documents::interrupted(&output, spends_use)),
            }
        }
        Command::List { resident, page } => documents::list(client, &resident, &page).await,
        Command::Request {
            resident,
            documents,
            kinds,
            purpose,
            ttl,
            issuer,
        } => {
            let scope = consent::scope(documents, kinds);
            consent::request(client, &resident, scope, &purpose, ttl, issuer).await
        }
        Command::Requests { page } => consent::requests(client, &page).await,
        Command::Order(args) => orders::order(client, args).await,
        Command::Orders { page } => orders::list(client, &page).await,
        Command::Approve {
            request_id,
            max_uses,
            ttl,
        } => consent::approve(client, request_id, max_uses, ttl).await,
        Command::Deny { request_id } => consent::deny(client, request_id).await,
        Command::Grants { page } => grants::list(client, &page).await,
        Command::Grant {
            command: GrantCommand::Show { grant_id, output },
        } => grants::show(client, grant_id, output.as_deref()).await,
        Command::Grant {
            command: GrantCommand::Release { grant_id },
        }
        | Command::Revoke { grant_id } => grants::revoke(client, grant_id).await,
        // Answered before connecting, in `run`.
        Command::Grant {
            command: GrantCommand::Verify { .. },
        } => Err(ClientError::local(
            ErrorCode::InvalidArgument,
            "unsupported command",
        )),
        Command::Audit { command } => audit::command(client, command).await,
        Command::Accesses { all, page } => audit::accesses(client, all, &page).await,
        Command::Registry => registry::registry(client).await,
        Command::Receipt {
            command: ReceiptCommand::Export { index, output },
        } => receipts::export(client, index, output).await,
        // Answered before connecting, in `run`.
        Command::Receipt {
            command: ReceiptCommand::Verify { .. },
        }
        | Command::Portal(_)
        | Command::Completions { .. }
        | Command::Manpages { .. }
        | Command::Witness { .. } => Err(ClientError::local(
            ErrorCode::InvalidArgument,
            "unsupported command",
        )),
    }
}
