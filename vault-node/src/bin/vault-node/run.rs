//! `vault-node run` and `vault-node dev`: the configuration from flags or
//! the development PKI, one node in this process, or a development cluster
//! of node processes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Child;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use vault_node::node::dev::{self, DevLayout};
use vault_node::node::{self, ClusterConfig, NodeConfig};

/// How long a development cluster's node may take to stop after SIGTERM,
/// in seconds, before it is killed.
const DEV_NODE_STOP_TIMEOUT_S: u64 = 10;

/// Runs one node with `config` until Ctrl-C or SIGTERM, after printing
/// its JSON start line.
pub(crate) async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let node = node::start(config).await?;
    // One JSON line on stdout: what scripts and tests read to find the node.
    let started = serde_json::json!({
        "node": node.cert.name.as_str(),
        "pid": std::process::id(),
        "addr": node.addr.to_string(),
        "data_dir": data_dir.display().to_string(),
        "metrics": node.metrics_addr.map(|a| a.to_string()),
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

/// The configuration of the single development node listening at
/// `listen`, with the development PKI under `data` (made once), and its
/// witness started in this process (the development identities' policies
/// require its cosignature).
pub(crate) async fn dev_config(data: &Path, listen: SocketAddr) -> anyhow::Result<NodeConfig> {
    let now = vault_client::client::now_unix();
    let layout = dev::ensure_dev_pki(data, now)?;
    dev::write_dev_nodes(&layout, &[listen])?;
    let witness = dev::start_dev_witness(&layout).await?;
    Ok(NodeConfig {
        witnesses: vec![witness],
        listen,
        crl_path: Some(layout.crl_path()),
        purposes_path: Some(layout.purposes_path()),
        issuers_path: Some(layout.issuers_path()),
        cluster: None,
        limits: Default::default(),
        metrics: None,
        log_key_path: Some(layout.log_key_path()),
        data_dir: layout.node_data,
        identity_dir: layout.node_identity,
    })
}

/// The cluster part of `run`'s flags: none without `--node-id`, which
/// must be among the `--member` ids.
pub(crate) fn cluster_config(
    node_id: Option<u64>,
    member: Vec<(u64, String)>,
    bootstrap: bool,
) -> anyhow::Result<Option<ClusterConfig>> {
    let Some(node_id) = node_id else {
        return Ok(None);
    };
    let members: BTreeMap<u64, String> = member.into_iter().collect();
    if !members.contains_key(&node_id) {
        anyhow::bail!("--node-id {node_id} is not among the --member ids");
    }
    Ok(Some(ClusterConfig {
        node_id,
        members,
        bootstrap,
        policy: vault_node::rules::placement::ClusterPolicy::default(),
    }))
}

/// Runs `nodes` node processes (this binary's `run`, one per node) on
/// consecutive ports from `listen`, relays their start lines, and stops
/// them all on Ctrl-C or SIGTERM.
pub(crate) async fn dev_cluster(data: &Path, listen: SocketAddr, nodes: u64) -> anyhow::Result<()> {
    let now = vault_client::client::now_unix();
    let layout = dev::ensure_dev_cluster(data, nodes, now)?;
    let members = member_addrs(listen, nodes)?;
    let listens: Vec<SocketAddr> = members.iter().map(|(_, addr)| *addr).collect();
    dev::write_dev_nodes(&layout, &listens)?;
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut children = Vec::new();
    let (lines, relay) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (id, addr) in &members {
        let mut child = spawn_node(&exe, &layout, *id, *addr, &members)?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_lines(stdout, lines.clone()));
        }
        children.push(child);
    }
    drop(lines);
    let stopped = relay_until_stopped(relay).await?;
    tracing::info!(
        reason = stopped.unwrap_or("the nodes' output closed"),
        "stopping the nodes"
    );
    stop_nodes(&mut children).await;
    Ok(())
}

/// Node ids 1 to `nodes` with consecutive ports from `listen`'s.
fn member_addrs(listen: SocketAddr, nodes: u64) -> anyhow::Result<Vec<(u64, SocketAddr)>> {
    (1..=nodes)
        .map(|id| {
            let port = listen
                .port()
                .checked_add(u16::try_from(id - 1).unwrap_or(u16::MAX))
                .context("the node ports run past 65535")?;
            Ok((id, SocketAddr::new(listen.ip(), port)))
        })
        .collect()
}

/// Starts node `id` of the development cluster as `exe run`, its stdout
/// piped; node 1 bootstraps the cluster.
fn spawn_node(
    exe: &Path,
    layout: &DevLayout,
    id: u64,
    addr: SocketAddr,
    members: &[(u64, SocketAddr)],
) -> anyhow::Result<Child> {
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("run")
        .arg("--identity")
        .arg(layout.node_identity(id))
        .arg("--log-key")
        .arg(layout.log_key_path())
        .arg("--data")
        .arg(layout.node_data(id))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--crl")
        .arg(layout.crl_path())
        .arg("--purposes")
        .arg(layout.purposes_path())
        .arg("--issuers")
        .arg(layout.issuers_path())
        .arg("--node-id")
        .arg(id.to_string());
    for (member, member_addr) in members {
        command
            .arg("--member")
            .arg(format!("{member}={member_addr}"));
    }
    if id == 1 {
        command.arg("--bootstrap");
    }
    command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
        .spawn()
        .with_context(|| format!("cannot start node {id}"))
}

/// Sends every line of a node's stdout to `lines` until either closes.
async fn forward_lines(stdout: tokio::process::ChildStdout, lines: UnboundedSender<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if lines.send(line).is_err() {
            return;
        }
    }
}

/// Prints the nodes' lines until Ctrl-C, SIGTERM (the reason returned) or
/// every node's output closed (`None`).
async fn relay_until_stopped(
    mut relay: UnboundedReceiver<String>,
) -> anyhow::Result<Option<&'static str>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(loop {
        tokio::select! {
            line = relay.recv() => match line {
                Some(line) => println!("{line}"),
                None => break None,
            },
            _ = tokio::signal::ctrl_c() => break Some("interrupted"),
            _ = term.recv() => break Some("terminated"),
        }
    })
}

/// Sends every node SIGTERM (each shuts down cleanly), then kills those
/// still running after [`DEV_NODE_STOP_TIMEOUT_S`].
async fn stop_nodes(children: &mut [Child]) {
    for child in children.iter_mut() {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for child in children.iter_mut() {
        let timeout = Duration::from_secs(DEV_NODE_STOP_TIMEOUT_S);
        let waited = tokio::time::timeout(timeout, child.wait()).await;
        if waited.is_err() {
            let _ = child.kill().await;
        }
    }
}
