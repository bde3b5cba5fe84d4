//! `vault witness init|serve`: a C2SP tlog-witness for the district's log (the server is
//! `vault_client::witness_server`). Needs no identity.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vault_client::witness_server::Witness;
use vault_client::{ClientError, ErrorCode};

use crate::args::WitnessCommand;
use crate::output::CommandResult;

/// How long open connections may take to finish once the witness is told to stop.
const DRAIN_MAX: Duration = Duration::from_secs(5);

fn pki_error(e: pki::PkiError) -> ClientError {
    e.into()
}

/// Runs a `vault witness` command.
pub async fn command(command: WitnessCommand) -> CommandResult {
    match command {
        WitnessCommand::Init { dir, name } => init(&dir, &name),
        WitnessCommand::Serve {
            dir,
            listen,
            log_pub,
        } => serve(&dir, &listen, &log_pub).await,
    }
}

fn init(dir: &Path, name: &str) -> CommandResult {
    let signer = pki::WitnessSigner::create(dir, name).map_err(pki_error)?;
    let vkey = signer.verifier().vkey();
    let value = json!({
        "dir": dir.display().to_string(),
        "name": name,
        "vkey": vkey,
    });
    let text = format!(
        "witness {name}: key in {}, verifier key (also in {}):\n{vkey}",
        dir.join(pki::WITNESS_KEY_FILE).display(),
        dir.join(pki::WITNESS_PUB_FILE).display()
    );
    Ok((value, text))
}

async fn serve(dir: &Path, listen: &str, log_pub: &Path) -> CommandResult {
    let log_keys = pki::load_verifiers(log_pub).map_err(pki_error)?;
    if !log_pub.exists() {
        return Err(ClientError::local(
            ErrorCode::LocalIo,
            format!(
                "{} does not exist (the district's log.pub)",
                log_pub.display()
            ),
        ));
    }
    let witness = Witness::open(dir, log_keys.clone())
        .map_err(|e| ClientError::local(ErrorCode::LocalIo, e))?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        ClientError::local(
            ErrorCode::LocalIo,
            format!("cannot listen on {listen}: {e}"),
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?;
    let vkey = witness.verifier().vkey();
    let logs: Vec<&str> = log_keys.iter().map(pki::LogVerifier::name).collect();
    println!(
        "{}",
        json!({"addr": addr.to_string(), "logs": logs, "pid": std::process::id(), "vkey": vkey})
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vault_client::witness_server::serve(
        Arc::new(witness),
        listener,
        async {
            let _ = stop_rx.await;
        },
    ));
    crate::portal::shutdown_signal().await;
    let _ = stop_tx.send(());
    if let Ok(Ok(Err(e))) = tokio::time::timeout(DRAIN_MAX, server).await {
        return Err(ClientError::local(ErrorCode::LocalIo, e.to_string()));
    }
    eprintln!("vault witness: stopped");
    Ok((Value::Null, String::new()))
}
