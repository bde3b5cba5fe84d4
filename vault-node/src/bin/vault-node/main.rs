//! `vault-node`: run a vault node, or the embedded development default.
//!
//! Modules per command group: [`cli`] (the commands and flags), [`run`]
//! (`run` and `dev`), [`status`] and [`member`]; [`failure`] prints a
//! failure with its stable code and picks the exit status.

mod cli;
mod failure;
mod member;
mod run;
mod status;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use vault_node::node::NodeConfig;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return failure::usage_error(e, json),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is
        // dropped: reporting it would panic the task serving a request.
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
    {
        Ok(runtime) => runtime,
        Err(e) => return failure::report(json, &e),
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure::report(json, &e),
    }
}

/// Runs one command.
async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev {
            data,
            listen,
            nodes,
        } if nodes > 1 => run::dev_cluster(&data, listen, nodes).await,
        Command::Dev { data, listen, .. } => run::run(run::dev_config(&data, listen).await?).await,
        Command::Status {
            identity,
            node,
            json,
        } => status::status(&identity, node_list(&identity, node)?, json).await,
        Command::Member {
            change,
            identity,
            node,
            json,
        } => member::member(change, &identity, node_list(&identity, node)?, json).await,
        Command::Run {
            config: Some(path), ..
        } => {
            let config = vault_node::node::config::load(&path).map_err(anyhow::Error::msg)?;
            run::run(config).await
        }
        Command::Run {
            config: None,
            identity,
            log_key,
            data,
            listen,
            crl,
            purposes,
            issuers,
            node_id,
            member,
            bootstrap,
            witness,
            metrics,
        } => {
            // Fields in this order: the cluster flags are checked first.
            let config = NodeConfig {
                witnesses: witness,
                cluster: run::cluster_config(node_id, member, bootstrap)?,
                listen,
                data_dir: data.context("--data is required")?,
                identity_dir: identity.context("--identity is required")?,
                log_key_path: log_key,
                crl_path: crl,
                purposes_path: purposes,
                issuers_path: issuers,
                limits: Default::default(),
                metrics,
            };
            run::run(config).await
        }
    }
}

/// The nodes to ask: `given` (comma-separated) if any, else the identity's
/// `nodes` file, else the default node.
fn node_list(identity_dir: &Path, given: Option<String>) -> anyhow::Result<Vec<String>> {
    Ok(match given {
        Some(list) => vault_client::client::parse_nodes(&list),
        None => vault_client::client::default_nodes(identity_dir)?,
    })
}
