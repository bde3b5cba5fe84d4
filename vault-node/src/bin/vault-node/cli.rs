//! The command line: every command, flag and its help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run a district document vault node.
#[derive(Parser)]
#[command(name = "vault-node", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub(crate) command: Command,
}

/// The commands: `dev` and `run` start nodes; `status` and `member`
/// talk to running ones.
#[derive(Subcommand)]
// Parsed once per process: the size of `Run` costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Run local nodes with a development PKI, created once under `--data`
    /// (identities in DATA/identities/, the CA in DATA/ca/). With
    /// `--nodes N` (N > 1), N node processes form a Raft cluster on
    /// consecutive ports from `--listen`; each prints its JSON start line,
    /// and Ctrl-C stops them all.
    Dev {
        /// Where the development PKI and the nodes' data live.
        #[arg(long, default_value = ".vault-dev")]
        data: PathBuf,
        /// Address to listen on (the first node's, in a cluster).
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
        /// How many nodes to run (1 to 9).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=9))]
        nodes: u64,
    },
    /// Run a node with an identity issued by the district CA, configured
    /// by flags or by one file (`--config`, see docs/OPERATIONS.md).
    Run {
        /// The whole configuration in a TOML file (no other flag then).
        #[arg(long, conflicts_with_all = ["identity", "log_key", "data", "crl", "purposes", "issuers", "node_id", "member", "bootstrap", "witness", "metrics"])]
        config: Option<PathBuf>,
        /// The node's identity directory (cert.pem, key.pem, ca.pem, log.pub).
        #[arg(long, required_unless_present = "config")]
        identity: Option<PathBuf>,
        /// The district's log key (log.key.pem, the same on every node; its
        /// verifier key must be in the identity's log.pub). Default:
        /// IDENTITY/log.key.pem.
        #[arg(long)]
        log_key: Option<PathBuf>,
        /// The node's data directory.
        #[arg(long, required_unless_present = "config")]
        data: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7443")]
        listen: SocketAddr,
        /// The district CRL (PEM); re-read when it changes.
        #[arg(long)]
        crl: Option<PathBuf>,
        /// The purpose registry (JSON array of {code, description,
        /// description_zh?, legal_basis, legal_basis_zh?, ttl_s_max});
        /// without it no access requests are taken.
        #[arg(long)]
        purposes: Option<PathBuf>,
        /// The issuer registry (JSON array of {department, name?, name_zh?,
        /// kinds}): which department may issue which kinds, and the
        /// departments' display names; without it every department may
        /// issue every kind.
        #[arg(long)]
        issuers: Option<PathBuf>,
        /// A witness to ask to cosign each new checkpoint, as URL=VKEY
        /// (http://HOST:PORT and its C2SP verifier key); repeat for each.
        /// A witness that does not answer within 2 s is left out of that
        /// checkpoint (logged at warn).
        #[arg(long, value_parser = vault_node::node::config::parse_witness_flag)]
        witness: Vec<vault_node::node::config::WitnessEndpoint>,
        /// Serve Prometheus metrics at http://ADDR/metrics, and /healthz
        /// and /readyz (plain HTTP: bind it to loopback or the monitoring
        /// network). Config key `metrics`.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Cluster mode: this node's Raft id (needs `--member`s).
        #[arg(long, requires = "member")]
        node_id: Option<u64>,
        /// Cluster mode: a member as ID=HOST:PORT, this node included;
        /// repeat for each member.
        #[arg(long, value_parser = parse_member, requires = "node_id")]
        member: Vec<(u64, String)>,
        /// Cluster mode: make the initial membership (one node only; does
        /// nothing once the cluster is initialized).
        #[arg(long, requires = "node_id")]
        bootstrap: bool,
    },
    /// Print a node's status (cluster membership, leader, log and applied
    /// indexes, blob and document counts). Connects as a node or an
    /// auditor identity.
    Status {
        /// The identity to connect as (a node's or an auditor's).
        #[arg(
            long,
            env = "VAULT_IDENTITY",
            default_value = ".vault-dev/identities/auditor"
        )]
        identity: PathBuf,
        /// The node to ask, HOST:PORT (several, comma-separated: the first
        /// that answers). Default: the identity's `nodes` file, else
        /// 127.0.0.1:7443.
        #[arg(long, env = "VAULT_NODE")]
        node: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add a node to the cluster (a learner until it has caught up, then a
    /// voter) or remove one. Connects as a node identity; any member
    /// passes the change to the leader.
    Member {
        #[command(subcommand)]
        change: MemberCommand,
        /// The node identity to connect as.
        #[arg(
            long,
            env = "VAULT_IDENTITY",
            default_value = ".vault-dev/identities/node-1",
            global = true
        )]
        identity: PathBuf,
        /// A member to ask, HOST:PORT (several, comma-separated: the first
        /// that answers). Default: the identity's `nodes` file, else
        /// 127.0.0.1:7443.
        #[arg(long, env = "VAULT_NODE", global = true)]
        node: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
}

/// A membership change.
#[derive(Subcommand)]
pub(crate) enum MemberCommand {
    /// Add node ID, listening at ADDR (start it first with its own id as
    /// its only member, and without --bootstrap).
    Add {
        /// The new node's Raft id.
        #[arg(long)]
        id: u64,
        /// Its HOST:PORT, a name in its certificate.
        #[arg(long)]
        addr: String,
    },
    /// Remove node ID from the cluster.
    Remove {
        /// The Raft id to remove.
        #[arg(long)]
        id: u64,
    },
}

/// Parses a `--member` as ID=HOST:PORT.
fn parse_member(text: &str) -> Result<(u64, String), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text}: expected ID=HOST:PORT"))?;
    let id = id
        .parse::<u64>()
        .map_err(|e| format!("{text}: bad node id: {e}"))?;
    if !addr.contains(':') {
        return Err(format!("{text}: expected ID=HOST:PORT"));
    }
    Ok((id, addr.to_string()))
}
