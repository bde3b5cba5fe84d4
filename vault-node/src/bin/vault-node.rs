//! `vault-node`: run a vault node, or the embedded development default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use vault_node::node::dev;
use vault_node::node::{self, ClusterConfig, NodeConfig};

/// Run a district document vault node.
#[derive(Parser)]
#[command(name = "vault-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(long, conflicts_with_all = ["identity", "data", "crl", "purposes", "node_id", "member", "bootstrap"])]
        config: Option<PathBuf>,
        /// The node's identity directory (cert.pem, key.pem, ca.pem).
        #[arg(long, required_unless_present = "config")]
        identity: Option<PathBuf>,
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
        /// legal_basis, ttl_s_max}); without it no access requests are taken.
        #[arg(long)]
        purposes: Option<PathBuf>,
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

#[derive(Subcommand)]
enum MemberCommand {
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
            Command::Dev {
                data,
                listen,
                nodes,
            } if nodes > 1 => return dev_cluster(&data, listen, nodes).await,
            Command::Status {
                identity,
                node,
                json,
            } => return status(&identity, node_list(&identity, node)?, json).await,
            Command::Member {
                change,
                identity,
                node,
                json,
            } => return member(change, &identity, node_list(&identity, node)?, json).await,
            Command::Run {
                config: Some(path), ..
            } => vault_node::node::config::load(&path).map_err(anyhow::Error::msg)?,
            Command::Dev { data, listen, .. } => {
                let now = vault_client::client::now_unix();
                let layout = dev::ensure_dev_pki(&data, now)?;
                dev::write_dev_nodes(&layout, &[listen])?;
                NodeConfig {
                    listen,
                    crl_path: Some(layout.crl_path()),
                    purposes_path: Some(layout.purposes_path()),
                    cluster: None,
                    data_dir: layout.node_data,
                    identity_dir: layout.node_identity,
                }
            }
            Command::Run {
                config: None,
                identity,
                data,
                listen,
                crl,
                purposes,
                node_id,
                member,
                bootstrap,
            } => {
                let cluster = match node_id {
                    Some(node_id) => {
                        let members: BTreeMap<u64, String> = member.into_iter().collect();
                        if !members.contains_key(&node_id) {
                            anyhow::bail!("--node-id {node_id} is not among the --member ids");
                        }
                        Some(ClusterConfig {
                            node_id,
                            members,
                            bootstrap,
                            policy: vault_node::rules::placement::ClusterPolicy::default(),
                        })
                    }
                    None => None,
                };
                NodeConfig {
                    listen,
                    data_dir: data.context("--data is required")?,
                    identity_dir: identity.context("--identity is required")?,
                    crl_path: crl,
                    purposes_path: purposes,
                    cluster,
                }
            }
        };
        run(config).await
    })
}

/// Runs `nodes` node processes (this binary's `run`, one per node) on
/// consecutive ports from `listen`, relays their start lines, and stops
/// them all on Ctrl-C or SIGTERM.
async fn dev_cluster(data: &Path, listen: SocketAddr, nodes: u64) -> anyhow::Result<()> {
    let now = vault_client::client::now_unix();
    let layout = dev::ensure_dev_cluster(data, nodes, now)?;
    let members: Vec<(u64, SocketAddr)> = (1..=nodes)
        .map(|id| {
            let port = listen
                .port()
                .checked_add(u16::try_from(id - 1).unwrap_or(u16::MAX))
                .context("the node ports run past 65535")?;
            Ok((id, SocketAddr::new(listen.ip(), port)))
        })
        .collect::<anyhow::Result<_>>()?;
    let listens: Vec<SocketAddr> = members.iter().map(|(_, addr)| *addr).collect();
    dev::write_dev_nodes(&layout, &listens)?;
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut children = Vec::new();
    let (lines, mut relay) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (id, addr) in &members {
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("run")
            .arg("--identity")
            .arg(layout.node_identity(*id))
            .arg("--data")
            .arg(layout.node_data(*id))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--crl")
            .arg(layout.crl_path())
            .arg("--purposes")
            .arg(layout.purposes_path())
            .arg("--node-id")
            .arg(id.to_string());
        for (member, member_addr) in &members {
            command
                .arg("--member")
                .arg(format!("{member}={member_addr}"));
        }
        if *id == 1 {
            command.arg("--bootstrap");
        }
        command
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        if let Some(stdout) = child.stdout.take() {
            let lines = lines.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut reader = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if lines.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        children.push(child);
    }
    drop(lines);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stopped = loop {
        tokio::select! {
            line = relay.recv() => match line {
                Some(line) => println!("{line}"),
                None => break None,
            },
            _ = tokio::signal::ctrl_c() => break Some("interrupted"),
            _ = term.recv() => break Some("terminated"),
        }
    };
    tracing::info!(
        reason = stopped.unwrap_or("the nodes' output closed"),
        "stopping the nodes"
    );
    for child in &mut children {
        if let Some(pid) = child.id() {
            // SIGTERM first: each node shuts down cleanly.
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for child in &mut children {
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await;
        if waited.is_err() {
            let _ = child.kill().await;
        }
    }
    Ok(())
}

/// Sends a membership change to one of `nodes` as the node identity in
/// `identity_dir`.
async fn member(
    change: MemberCommand,
    identity_dir: &Path,
    nodes: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    use vault_client::wire::MembershipChange;
    let identity = pki::Identity::load(identity_dir)
        .with_context(|| format!("cannot load the identity in {}", identity_dir.display()))?;
    let client = vault_client::VaultClient::connect_any(identity, &nodes)
        .await
        .with_context(|| format!("cannot connect to any of {}", nodes.join(",")))?;
    let change = match change {
        MemberCommand::Add { id, addr } => MembershipChange::Add { id, addr },
        MemberCommand::Remove { id } => MembershipChange::Remove { id },
    };
    let (members, log_index) = client
        .change_membership(change)
        .await
        .context("the membership change was refused")?;
    if json {
        let value = serde_json::json!({ "members": members, "log_index": log_index });
        println!("{value}");
        return Ok(());
    }
    for m in &members {
        let role = if m.voter { "voter" } else { "learner" };
        println!("member          {} {} {role}", m.id, m.addr);
    }
    println!("committed at    {log_index}");
    Ok(())
}

/// The nodes to ask: `given` (comma-separated) if any, else the identity's
/// `nodes` file, else the default node.
fn node_list(identity_dir: &Path, given: Option<String>) -> anyhow::Result<Vec<String>> {
    Ok(match given {
        Some(list) => vault_client::client::parse_nodes(&list),
        None => vault_client::client::default_nodes(identity_dir)?,
    })
}

/// How long `vault-node status` waits for each other member's status, in
/// milliseconds; a member that does not answer in time is shown
/// unreachable.
const MEMBER_STATUS_TIMEOUT_MS: u64 = 2_000;

/// Asks one of `nodes` for its status as the identity in `identity_dir`,
/// then every other member it lists for theirs (in parallel), so one
/// command shows the whole cluster: `--json` prints the answering node's
/// status with a `nodes` array holding each member's (or, for a member that
/// did not answer, its `node_id`, `addr`, `reachable: false` and `error`).
async fn status(identity_dir: &Path, nodes: Vec<String>, json: bool) -> anyhow::Result<()> {
    let identity = pki::Identity::load(identity_dir)
        .with_context(|| format!("cannot load the identity in {}", identity_dir.display()))?;
    let list = nodes.join(",");
    let client = vault_client::VaultClient::connect_any(identity.clone(), &nodes)
        .await
        .with_context(|| format!("cannot connect to any of {list}"))?;
    let status = client
        .status()
        .await
        .with_context(|| format!("{list} refused the status request"))?;
    let members = member_statuses(&identity, &status).await;
    if json {
        let mut value = serde_json::to_value(&status)?;
        let nodes: Vec<serde_json::Value> = members
            .iter()
            .map(|(id, addr, answer)| match answer {
                Ok(member) => {
                    let mut member = serde_json::to_value(member).unwrap_or_default();
                    member["reachable"] = true.into();
                    member
                }
                Err(error) => serde_json::json!({
                    "node_id": id, "addr": addr, "reachable": false, "error": error,
                }),
            })
            .collect();
        value["nodes"] = nodes.into();
        value["policy_agrees"] = policy_agrees(&members).into();
        println!("{value}");
        return Ok(());
    }
    print_status(&status);
    if !policy_agrees(&members) {
        println!(
            "WARNING         the members run different R/W policies (replicas, write_quorum): \
             make every [cluster] table the same"
        );
    }
    if status.cluster {
        println!();
        println!(
            "{:<4} {:<24} {:>8} {:>9} {:>10} {:>12} {:>13}",
            "id", "addr", "leader", "applied", "log size", "blobs local", "blobs placed"
        );
        for (id, addr, answer) in &members {
            match answer {
                Ok(m) => println!(
                    "{id:<4} {addr:<24} {:>8} {:>9} {:>10} {:>12} {:>13}",
                    m.leader.map_or_else(|| "-".to_string(), |l| l.to_string()),
                    m.applied_index,
                    m.log_size,
                    m.blobs_local,
                    m.blobs_placed
                        .map_or_else(|| "-".to_string(), |p| p.to_string()),
                ),
                Err(error) => println!("{id:<4} {addr:<24} unreachable: {error}"),
            }
        }
    }
    Ok(())
}

/// Every member's status: the one already asked (`status`) and, in
/// parallel, every other member listed in it.
async fn member_statuses(
    identity: &pki::Identity,
    status: &vault_client::wire::NodeStatus,
) -> Vec<(u64, String, Result<vault_client::wire::NodeStatus, String>)> {
    let mut asks = tokio::task::JoinSet::new();
    for member in &status.members {
        if Some(member.id) == status.node_id {
            continue;
        }
        let (identity, id, addr) = (identity.clone(), member.id, member.addr.clone());
        asks.spawn(async move {
            let ask = async {
                let client = vault_client::VaultClient::connect(identity, &addr).await?;
                client.status().await
            };
            let timeout = std::time::Duration::from_millis(MEMBER_STATUS_TIMEOUT_MS);
            let answer = match tokio::time::timeout(timeout, ask).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {MEMBER_STATUS_TIMEOUT_MS} ms")),
            };
            (id, addr, answer)
        });
    }
    let mut all = Vec::new();
    if let Some(id) = status.node_id {
        let addr = status
            .members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.addr.clone())
            .unwrap_or_default();
        all.push((id, addr, Ok(status.clone())));
    }
    while let Some(joined) = asks.join_next().await {
        if let Ok(answer) = joined {
            all.push(answer);
        }
    }
    all.sort_by_key(|(id, _, _)| *id);
    all
}

/// Whether every member that answered runs the same R and W (the policy
/// is per node, from its configuration file, not held in Raft).
fn policy_agrees(
    members: &[(u64, String, Result<vault_client::wire::NodeStatus, String>)],
) -> bool {
    let mut policies = members
        .iter()
        .filter_map(|(_, _, answer)| answer.as_ref().ok())
        .map(|m| (m.replicas, m.write_quorum));
    let first = policies.next();
    policies.all(|p| Some(p) == first)
}

/// Prints one node's status as text.
fn print_status(status: &vault_client::wire::NodeStatus) {
    println!("node            {}", status.node);
    match status.node_id {
        Some(id) => {
            println!("cluster         node {id}");
            let leader = status
                .leader
                .map_or_else(|| "unknown".to_string(), |l| l.to_string());
            println!("leader          {leader}");
            for member in &status.members {
                let role = if member.voter { "voter" } else { "learner" };
                println!("member          {} {} {role}", member.id, member.addr);
            }
            println!("last log index  {}", status.last_log_index.unwrap_or(0));
        }
        None => println!("cluster         no (single node)"),
    }
    println!("applied index   {}", status.applied_index);
    println!("log size        {}", status.log_size);
    println!("blobs (local)   {}", status.blobs_local);
    println!("documents       {}", status.documents);
    if let Some(placed) = status.blobs_placed {
        println!("blobs (placed)  {placed}");
    }
    if let Some(r) = &status.repair {
        println!(
            "repair          {} scrubs: {} checked, {} repaired, {} failed, {} orphans collected; {} reads repaired",
            r.scrubs, r.checked, r.repaired, r.failed, r.orphans_collected, r.read_repaired
        );
    }
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let node = node::start(config).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(replicas: usize, write_quorum: usize) -> vault_client::wire::NodeStatus {
        vault_client::wire::NodeStatus {
            node: "node-1".into(),
            cluster: true,
            node_id: Some(1),
            leader: Some(1),
            members: Vec::new(),
            last_log_index: Some(1),
            applied_index: 1,
            log_size: 1,
            blobs_local: 0,
            documents: 0,
            blobs_placed: Some(0),
            snapshot_index: None,
            purged_index: None,
            replicas: Some(replicas),
            write_quorum: Some(write_quorum),
            repair: None,
        }
    }

    #[test]
    fn members_with_another_r_or_w_are_flagged_and_unreachable_ones_ignored() {
        let row = |id: u64, answer| (id, format!("127.0.0.1:{id}"), answer);
        let same = vec![
            row(1, Ok(member(3, 2))),
            row(2, Ok(member(3, 2))),
            row(3, Err("no answer".to_string())),
        ];
        assert!(policy_agrees(&same));
        let other_w = vec![row(1, Ok(member(3, 2))), row(2, Ok(member(3, 1)))];
        assert!(!policy_agrees(&other_w));
        let other_r = vec![row(1, Ok(member(3, 2))), row(2, Ok(member(2, 2)))];
        assert!(!policy_agrees(&other_r));
        assert!(policy_agrees(&[]));
    }
}
