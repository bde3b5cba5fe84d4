//! `vault-node`: run a vault node, or the embedded development default.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vault_node::dev;
use vault_node::server::{self, NodeConfig};

/// Run a district document vault node.
#[derive(Parser)]
#[command(name = "vault-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single local node with a development PKI, created once under
    /// `--data` (identities in DATA/identities/, the CA in DATA/ca/).
    Dev {
        /// Where the development PKI and the node's data live.
        #[arg(long, default_value = ".vault-dev")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
    },
    /// Run a node with an identity issued by the district CA.
    Run {
        /// The node's identity directory (cert.pem, key.pem, ca.pem).
        #[arg(long)]
        identity: PathBuf,
        /// The node's data directory.
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7443")]
        listen: SocketAddr,
        /// The district CRL (PEM); re-read when it changes.
        #[arg(long)]
        crl: Option<PathBuf>,
        /// The purpose registry (JSON array of {code, description,
        /// legal_basis, ttl_s_max}); without it no access requests are taken.
        #[arg(long)]
        purposes: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let config = match cli.command {
            Command::Dev { data, listen } => {
                let now = vault_client::client::now_unix();
                let layout = dev::ensure_dev_pki(&data, now)?;
                NodeConfig {
                    listen,
                    crl_path: Some(layout.crl_path()),
                    purposes_path: Some(layout.purposes_path()),
                    data_dir: layout.node_data,
                    identity_dir: layout.node_identity,
                }
            }
            Command::Run {
                identity,
                data,
                listen,
                crl,
                purposes,
            } => NodeConfig {
                listen,
                data_dir: data,
                identity_dir: identity,
                crl_path: crl,
                purposes_path: purposes,
            },
        };
        run(config).await
    })
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let node = server::start(config).await?;
    // One JSON line on stdout: what scripts and tests read to find the node.
    let started = serde_json::json!({
        "node": node.cert.name.as_str(),
        "pid": std::process::id(),
        "addr": node.addr.to_string(),
        "data_dir": data_dir.display().to_string(),
    });
    println!("{started}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    node.close();
    Ok(())
}
