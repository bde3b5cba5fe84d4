//! Helpers for cluster tests, with in-process members or real
//! `vault-node` processes: loopback addresses, configuration files for
//! `vault-node run --config`, waiting and retrying within a deadline,
//! `kill -9`, and status queries.
//!
//! The helpers panic (with what they were waiting for) when a deadline
//! passes: they are for tests.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vault_client::wire::NodeStatus;
use vault_node::node::{self, ClusterConfig, NodeConfig, RunningNode};
use vault_node::rules::placement::ClusterPolicy;

use crate::{path_str, NodeProcess, TestPki};

/// Every wait gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two polls.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it answers `Some`, for at most [`DEADLINE`].
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    check: impl FnMut() -> F,
) -> T {
    eventually_within(what, DEADLINE, check).await
}

/// Polls `check` until it answers `Some`, for at most `deadline`.
pub async fn eventually_within<T, F: Future<Output = Option<T>>>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// `n` loopback addresses (ids 1..=n) that were free a moment ago.
pub fn free_addrs(n: u64) -> BTreeMap<u64, String> {
    loopback_addrs(n).unwrap()
}

/// [`free_addrs`], failing instead of panicking (for the benchmark).
pub fn loopback_addrs(n: u64) -> std::io::Result<BTreeMap<u64, String>> {
    let sockets = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut addrs = BTreeMap::new();
    for (id, socket) in (1..).zip(&sockets) {
        addrs.insert(id, socket.local_addr()?.to_string());
    }
    Ok(addrs)
}

/// Starts `n` cluster members in this process on fresh loopback
/// addresses, node 1 bootstrapping, with the default policy; issues the
/// node identities `node-2`.. it needs. Does not wait for a leader.
pub async fn start_cluster(pki: &TestPki, n: u64) -> anyhow::Result<Vec<RunningNode>> {
    let members = loopback_addrs(n)?;
    let mut nodes = Vec::new();
    for (&id, addr) in &members {
        let name = format!("node-{id}");
        if id != 1 {
            pki.issue_node(&name)?;
        }
        let node = node::start(NodeConfig {
            witnesses: Vec::new(),
            log_key_path: None,
            listen: addr.parse()?,
            data_dir: pki.data_dir(&name),
            identity_dir: pki.identity_dir(&name),
            crl_path: Some(pki.crl_path()),
            purposes_path: Some(pki.purposes_path()?),
            issuers_path: None,
            cluster: Some(ClusterConfig {
                node_id: id,
                members: members.clone(),
                bootstrap: id == 1,
                policy: ClusterPolicy::default(),
            }),
            limits: Default::default(),
            metrics: None,
        })
        .await?;
        nodes.push(node);
    }
    Ok(nodes)
}

/// [`start_cluster`] of three, then waits until all three name the same
/// leader.
pub async fn start_led_cluster(pki: &TestPki) -> Vec<RunningNode> {
    let nodes = start_cluster(pki, 3).await.unwrap();
    eventually("an agreed leader", || {
        let leader = agreed_leader(&nodes, None);
        async move { leader }
    })
    .await;
    nodes
}

/// The leader every in-process node but `skip` names, if they agree.
pub fn agreed_leader(nodes: &[RunningNode], skip: Option<usize>) -> Option<u64> {
    let leaders: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, n)| n.cluster().and_then(|c| c.leader()))
        .collect();
    let first = (*leaders.first()?)?;
    leaders.iter().all(|l| *l == Some(first)).then_some(first)
}

/// Retries an idempotent call until it succeeds, for at most [`DEADLINE`].
pub async fn until_ok<T, F: Future<Output = Result<T, vault_client::ClientError>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) => assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}: {e}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGKILLs a node process and reaps it.
pub fn kill9(proc: &mut NodeProcess) {
    proc.child.kill().unwrap();
    proc.child.wait().unwrap();
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`) to a node process.
pub fn signal(proc: &NodeProcess, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(proc.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Runs the `vault` CLI as `identity` against `addr`, retrying while the
/// answer is `connection.failed` or `cluster.unavailable` (a node starting
/// or an election), for at most [`DEADLINE`]. Only for idempotent calls.
pub async fn cli_until_served(
    pki: &TestPki,
    identity: &str,
    addr: SocketAddr,
    args: &[&str],
) -> crate::CliOutput {
    let dir = pki.identity_dir(identity);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let start = Instant::now();
    loop {
        let (dir2, args2) = (dir.clone(), args.clone());
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args2.iter().map(String::as_str).collect();
            crate::vault_cli(&dir2, addr, &args).unwrap()
        })
        .await
        .unwrap();
        let code = out.json["error"]["code"].as_str().unwrap_or("");
        if !matches!(code, "connection.failed" | "cluster.unavailable") {
            return out;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {args:?} through {addr}: {out:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Writes `node-<id>`'s `vault-node run --config` file: member `id` of
/// `members` (the bootstrap node when `bootstrap`), with `policy` lines
/// (`key = value`, e.g. `snapshot_logs = 10`) added to `[cluster]`.
pub fn write_config(
    pki: &TestPki,
    id: u64,
    members: &BTreeMap<u64, String>,
    bootstrap: bool,
    policy: &[&str],
) -> PathBuf {
    let name = format!("node-{id}");
    let mut text = format!(
        "identity = {:?}\ndata = {:?}\nlisten = {:?}\ncrl = {:?}\npurposes = {:?}\n\n[cluster]\nnode_id = {id}\nbootstrap = {bootstrap}\n",
        path_str(&pki.identity_dir(&name)).unwrap(),
        path_str(&pki.data_dir(&name)).unwrap(),
        members[&id],
        path_str(&pki.crl_path()).unwrap(),
        path_str(&pki.purposes_path().unwrap()).unwrap(),
    );
    for line in policy {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("members = [\n");
    for (member, addr) in members {
        text.push_str(&format!("  {{ id = {member}, addr = {addr:?} }},\n"));
    }
    text.push_str("]\n");
    let path = pki.data_dir(&name).with_extension("toml");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `vault-node run --config FILE`.
pub fn spawn_config(config: &std::path::Path) -> NodeProcess {
    NodeProcess::spawn(&["run", "--config", path_str(config).unwrap()]).unwrap()
}

/// Issues node identities, writes configuration files and starts `n`
/// node processes (node 1 bootstraps) with `policy` lines; answers the
/// members and the processes (index `i` is node `i + 1`).
pub fn spawn_configured_cluster(
    pki: &TestPki,
    n: u64,
    policy: &[&str],
) -> (BTreeMap<u64, String>, Vec<NodeProcess>) {
    for id in 2..=n {
        pki.issue_node(&format!("node-{id}")).unwrap();
    }
    let members = free_addrs(n);
    let procs = members
        .keys()
        .map(|id| spawn_config(&write_config(pki, *id, &members, *id == 1, policy)))
        .collect();
    (members, procs)
}

/// A node's status, asked as the auditor (`None` while it cannot answer).
pub async fn status_of(pki: &TestPki, addr: SocketAddr) -> Option<NodeStatus> {
    let client = crate::connect(pki, "auditor", addr).await.ok()?;
    client.status().await.ok()
}

/// Runs `vault-node status --json` against `addr` as `identity`: its JSON,
/// asserting it exited 0 when `healthy` and 3 when not (a member down, or
/// a node without a leader).
pub async fn status_cli(pki: &TestPki, identity: &str, addr: SocketAddr) -> serde_json::Value {
    let (code, json) = status_cli_exit(pki, identity, addr).await;
    let healthy = json["healthy"].as_bool();
    assert!(
        (code == 0 && healthy == Some(true)) || (code == 3 && healthy == Some(false)),
        "status exited {code} with {json}"
    );
    json
}

/// Runs `vault-node status --json`: its exit status and JSON.
pub async fn status_cli_exit(
    pki: &TestPki,
    identity: &str,
    addr: SocketAddr,
) -> (i32, serde_json::Value) {
    let exe = crate::bin("vault-node").unwrap();
    let dir = pki.identity_dir(identity);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["status", "--json", "--identity", path_str(&dir).unwrap()])
            .args(["--node", &addr.to_string()])
            .env_remove("VAULT_IDENTITY")
            .env_remove("VAULT_NODE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "status printed no JSON ({e}): {} / {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), json)
}

/// Waits until every node of `addrs` answers its status with the same
/// applied index, log size and document count, with a leader known;
/// answers the statuses.
pub async fn converged(pki: &TestPki, addrs: &[SocketAddr]) -> Vec<NodeStatus> {
    eventually("the nodes to agree", || async move {
        let mut all = Vec::new();
        for addr in addrs {
            all.push(status_of(pki, *addr).await?);
        }
        let first = &all[0];
        let agree = all.iter().all(|s| {
            s.leader.is_some()
                && s.leader == first.leader
                && s.applied_index == first.applied_index
                && s.log_size == first.log_size
                && s.documents == first.documents
                // Membership entries do not move the vault's applied
                // index: agree on the members too, or a follower still on
                // the previous membership passes for converged.
                && s.members == first.members
        });
        agree.then_some(all)
    })
    .await
}

/// A loopback port `p` with `p`, `p + 1` and `p + 2` free a moment ago.
pub fn free_port_run() -> u16 {
    loop {
        let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        if base > 65_000 {
            continue;
        }
        let rest: Vec<_> = (1..3)
            .filter_map(|k| std::net::UdpSocket::bind(("127.0.0.1", base + k)).ok())
            .collect();
        if rest.len() == 2 {
            return base;
        }
    }
}

/// Whether process `pid` runs (exists and is not a zombie).
pub fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true)
}
