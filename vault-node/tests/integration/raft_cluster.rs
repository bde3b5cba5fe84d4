//! Three in-process nodes replicate over real QUIC with district
//! certificates: writes through the leader reach every state machine, and
//! a new leader takes over when the old one stops.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pki::{CertificateAuthority, Identity, IssueParams, Name, Role};
use vault_client::framing::{read_frame, write_frame};
use vault_client::wire::{RaftRpc, Request, Response, RESPONSE_FRAME_LEN_MAX};
use vault_node::consensus::raft::{Cluster, Network, Outcome, WriteError};
use vault_node::engine::meta::MetaStore;
use vault_node::engine::state::{Applied, Command, Proposal, Seed};
use vault_node::node::{self, NodeConfig, RunningNode};

/// Every wait in these tests gives up after this long.
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn now() -> i64 {
    vault_client::client::now_unix()
}

struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca =
            CertificateAuthority::init(&dir.path().join("ca"), "Test District", now()).unwrap();
        ca.create_log_key("test.district.example/vault", false, now())
            .unwrap();
        Pki { dir, ca }
    }

    fn issue(&self, role: Role, name: &str) -> PathBuf {
        self.issue_in(role, name, None, name)
    }

    /// Issues `name`'s certificate, naming `cluster`, into identities/`dir`.
    fn issue_in(&self, role: Role, name: &str, cluster: Option<&str>, dir: &str) -> PathBuf {
        let mut params = IssueParams::new(role, Name::parse(name).unwrap(), now());
        if role == Role::Node {
            params.sans = vec!["localhost".into(), "127.0.0.1".into()];
        }
        params.cluster = cluster.map(|c| Name::parse(c).unwrap());
        let out = self.dir.path().join("identities").join(dir);
        self.ca.issue(&params, &out).unwrap();
        out
    }
}

struct Node {
    server: RunningNode,
    cluster: Cluster,
}

async fn start_node(pki: &Pki, id: u64) -> Node {
    start_node_in(pki, id, None).await
}

/// Starts node `id`, its certificate naming `cluster`.
async fn start_node_in(pki: &Pki, id: u64, cluster: Option<&str>) -> Node {
    let name = format!("node-{id}");
    let identity_dir = pki.issue_in(Role::Node, &name, cluster, &name);
    let data_dir = pki.dir.path().join("data").join(&name);
    let server = node::start(NodeConfig {
        witnesses: Vec::new(),
        log_key_path: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.clone(),
        identity_dir,
        crl_path: None,
        purposes_path: None,
        issuers_path: None,
        cluster: None,
        limits: Default::default(),
        metrics: None,
    })
    .await
    .unwrap();
    let network = Network::new(server.endpoint().clone(), server.identity()).unwrap();
    let cluster = Cluster::open(id, &data_dir.join("raft"), network)
        .await
        .unwrap();
    assert!(server.attach_raft(cluster.raft().clone()));
    Node { server, cluster }
}

fn refusal(n: u8) -> Proposal {
    Proposal {
        command: Command::RecordRefusal {
            role: Role::Department,
            by: Name::parse("tax-office").unwrap(),
            code: "grant.exhausted".into(),
            document_id: None,
            grant_id: None,
            request_id: None,
        },
        seed: Seed {
            at: 1_700_000_000 + i64::from(n),
            nonce: [n; 32],
            salt: [n.wrapping_add(100); 32],
            salt_proofs: Vec::new(),
        },
    }
}

fn log_root(store: &dyn MetaStore) -> (u64, vault_client::merkle::Hash) {
    let size = vault_node::engine::log::size(store).unwrap();
    (
        size,
        vault_node::engine::log::subtree(store, 0, size).unwrap(),
    )
}

/// Polls `check` until it answers `Some`, for at most [`DEADLINE`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The index (into `nodes`) of the node that all of `alive` agree leads.
async fn agreed_leader(nodes: &[Node], alive: &[usize], not: Option<u64>) -> usize {
    eventually("an agreed leader", || {
        let leader = nodes[alive[0]].cluster.leader()?;
        if Some(leader) == not {
            return None;
        }
        let index = alive
            .iter()
            .copied()
            .find(|&i| nodes[i].cluster.id() == leader)?;
        alive
            .iter()
            .all(|&i| nodes[i].cluster.leader() == Some(leader))
            .then_some(index)
    })
    .await
}

/// Writes through the leader, following `ForwardToLeader` (which means the
/// proposal was not appended, so a retry cannot apply it twice).
async fn write(nodes: &[Node], alive: &[usize], proposal: Proposal) -> Outcome {
    let start = Instant::now();
    loop {
        let leader = agreed_leader(nodes, alive, None).await;
        match nodes[leader].cluster.write(proposal.clone()).await {
            Ok(outcome) => return outcome,
            Err(WriteError::ForwardToLeader { .. }) => {
                assert!(start.elapsed() < DEADLINE, "no leader accepted the write");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// Waits until every node in `alive` holds a log of `size` entries with
/// the same root; returns the root.
async fn converged(nodes: &[Node], alive: &[usize], size: u64) -> vault_client::merkle::Hash {
    eventually("the logs to converge", || {
        let roots: Vec<_> = alive
            .iter()
            .map(|&i| log_root(&**nodes[i].cluster.store()))
            .collect();
        let first = roots[0];
        (first.0 == size && roots.iter().all(|r| *r == first)).then_some(first.1)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_survive_the_leader() {
    let pki = Pki::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(&pki, id).await);
    }
    let members: BTreeMap<u64, String> = nodes
        .iter()
        .map(|n| (n.cluster.id(), n.server.addr.to_string()))
        .collect();
    nodes[0].cluster.initialize(members).await.unwrap();
    let all = [0, 1, 2];

    for n in 1..=3 {
        let outcome = write(&nodes, &all, refusal(n)).await;
        assert_eq!(outcome, Outcome::Applied(Applied::Recorded));
    }
    let root = converged(&nodes, &all, 3).await;

    // A follower does not take writes; it names the leader.
    let leader = agreed_leader(&nodes, &all, None).await;
    let follower = (leader + 1) % 3;
    match nodes[follower].cluster.write(refusal(99)).await {
        Err(WriteError::ForwardToLeader { leader_id, .. }) => assert!(leader_id.is_some()),
        other => panic!("a follower accepted a write: {other:?}"),
    }

    // Stop the leader: the other two elect a new one and go on.
    let old = nodes[leader].cluster.id();
    nodes[leader].cluster.shutdown().await.unwrap();
    nodes[leader].server.close();
    let alive: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = agreed_leader(&nodes, &alive, Some(old)).await;
    assert_ne!(nodes[new_leader].cluster.id(), old);
    let outcome = write(&nodes, &alive, refusal(4)).await;
    assert_eq!(outcome, Outcome::Applied(Applied::Recorded));
    let after = converged(&nodes, &alive, 4).await;
    assert_ne!(after, root);
    // The stopped node kept the first three entries.
    assert_eq!(log_root(&**nodes[leader].cluster.store()), (3, root));

    for &i in &alive {
        nodes[i].cluster.shutdown().await.unwrap();
        nodes[i].server.close();
    }
}

/// Connects to `node` as `identity_dir`'s holder and sends a malformed vote.
async fn raft_rpc_as(identity_dir: &Path, node: &RunningNode) -> Response {
    send_rpc_as(
        identity_dir,
        node,
        RaftRpc::Vote(serde_json::json!({"not": "a vote"})),
    )
    .await
}

/// Connects to `node` as `identity_dir`'s holder and sends `rpc`.
async fn send_rpc_as(identity_dir: &Path, node: &RunningNode, rpc: RaftRpc) -> Response {
    let request = Request::Raft { rpc };
    let identity = Identity::load(identity_dir).unwrap();
    let tls = pki::client_tls_config(&identity).unwrap();
    let config = vault_client::transport::client_config(tls).unwrap();
    let socket = vault_client::transport::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut endpoint = vault_client::transport::endpoint(socket, None).unwrap();
    endpoint.set_default_client_config(config);
    let connection = endpoint
        .connect(node.addr, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    write_frame(&mut send, &request).await.unwrap();
    send.finish().unwrap();
    let response = read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX)
        .await
        .unwrap();
    connection.close(0u32.into(), b"done");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_may_send_raft_rpcs() {
    let pki = Pki::new();
    let node = start_node(&pki, 1).await;
    let department = pki.issue(Role::Department, "tax-office");
    match raft_rpc_as(&department, &node.server).await {
        Response::Error(body) => assert_eq!(body.code, "auth.forbidden"),
        other => panic!("a department's Raft RPC was answered: {other:?}"),
    }
    // A node gets past the role check; the body is then decoded and refused.
    let peer = pki.issue(Role::Node, "node-2");
    match raft_rpc_as(&peer, &node.server).await {
        Response::Error(body) => assert_eq!(body.code, "frame.malformed"),
        other => panic!("a malformed Raft RPC was answered: {other:?}"),
    }
    node.cluster.shutdown().await.unwrap();
    node.server.close();
}

/// A vote request from candidate `id` in term 9.
fn vote_from(id: u64) -> RaftRpc {
    let request = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(9, id), None);
    RaftRpc::Vote(serde_json::to_value(request).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_speaks_only_for_its_own_raft_id() {
    let pki = Pki::new();
    let node = start_node(&pki, 1).await;
    // Members 1 and 2 (node 2 never runs: only its certificate is used).
    let members = BTreeMap::from([
        (1, node.server.addr.to_string()),
        (2, "127.0.0.1:9".to_string()),
    ]);
    node.cluster.initialize(members).await.unwrap();
    let member = pki.issue(Role::Node, "node-2");
    // node-2 claiming to be candidate 3: refused before Raft sees it.
    match send_rpc_as(&member, &node.server, vote_from(3)).await {
        Response::Error(body) => assert_eq!(body.code, "auth.forbidden", "{body:?}"),
        other => panic!("a vote for another node was answered: {other:?}"),
    }
    // Speaking for itself, it reaches Raft, which answers (and does not
    // grant the vote: node 1's log is ahead of the candidate's).
    match send_rpc_as(&member, &node.server, vote_from(2)).await {
        Response::Raft { reply } => {
            assert_eq!(reply["Ok"]["vote_granted"], false, "{reply}");
        }
        other => panic!("a vote from node 2 was not answered: {other:?}"),
    }
    // This node's certificate names no cluster, so a node certificate the
    // membership does not list reaches nothing, even speaking for itself:
    // no vote, no forwarded call (another cluster's or a removed node's key).
    let stranger = pki.issue(Role::Node, "node-7");
    for rpc in [vote_from(7), RaftRpc::ReadIndex] {
        match send_rpc_as(&stranger, &node.server, rpc).await {
            Response::Error(body) => assert_eq!(body.code, "auth.forbidden", "{body:?}"),
            other => panic!("a non-member's Raft call was answered: {other:?}"),
        }
    }

    // A certificate not named node-<id> speaks for no one.
    let odd = pki.issue(Role::Node, "archive-node");
    match send_rpc_as(&odd, &node.server, vote_from(1)).await {
        Response::Error(body) => assert_eq!(body.code, "auth.forbidden", "{body:?}"),
        other => panic!("an unnamed node's vote was answered: {other:?}"),
    }
    node.cluster.shutdown().await.unwrap();
    node.server.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_a_named_cluster_takes_raft_messages_only_from_that_cluster() {
    let pki = Pki::new();
    let node = start_node_in(&pki, 1, Some("district-a")).await;
    let members = BTreeMap::from([
        (1, node.server.addr.to_string()),
        (2, "127.0.0.1:9".to_string()),
    ]);
    node.cluster.initialize(members).await.unwrap();
    // Member 2 of the same cluster reaches Raft (which does not grant the
    // vote: node 1's log is ahead).
    let same = pki.issue_in(Role::Node, "node-2", Some("district-a"), "node-2-a");
    match send_rpc_as(&same, &node.server, vote_from(2)).await {
        Response::Raft { reply } => assert_eq!(reply["Ok"]["vote_granted"], false, "{reply}"),
        other => panic!("a vote from the same cluster was not answered: {other:?}"),
    }
    // A node of the same cluster that this node's view does not list (added
    // while this node was away) reaches Raft too: a stale view must not lock
    // this node out of the cluster's next leader. It may not forward calls.
    let newcomer = pki.issue_in(Role::Node, "node-7", Some("district-a"), "node-7-a");
    match send_rpc_as(&newcomer, &node.server, vote_from(7)).await {
        Response::Raft { reply } => assert_eq!(reply["Ok"]["vote_granted"], false, "{reply}"),
        other => panic!("a vote from a newcomer of the cluster was not answered: {other:?}"),
    }
    match send_rpc_as(&newcomer, &node.server, RaftRpc::ReadIndex).await {
        Response::Error(body) => assert_eq!(body.code, "auth.forbidden", "{body:?}"),
        other => panic!("a non-member's read index was answered: {other:?}"),
    }
    // The same name and id in another cluster, or in none, reaches nothing.
    let other = pki.issue_in(Role::Node, "node-2", Some("district-b"), "node-2-b");
    let none = pki.issue_in(Role::Node, "node-2", None, "node-2-none");
    for (dir, theirs) in [(&other, "district-b"), (&none, "(none)")] {
        match send_rpc_as(dir, &node.server, vote_from(2)).await {
            Response::Error(body) => {
                assert_eq!(body.code, "auth.forbidden", "{body:?}");
                assert!(body.message.contains(theirs), "{body:?}");
            }
            other => panic!("a vote from another cluster was answered: {other:?}"),
        }
    }
    node.cluster.shutdown().await.unwrap();
    node.server.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_catches_up_from_a_snapshot() {
    let pki = Pki::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(&pki, id).await);
    }
    // Nodes 1 and 2 form the cluster; node 3 runs but is not a member yet.
    let members: BTreeMap<u64, String> = nodes[..2]
        .iter()
        .map(|n| (n.cluster.id(), n.server.addr.to_string()))
        .collect();
    nodes[0].cluster.initialize(members).await.unwrap();
    let pair = [0, 1];
    for n in 1..=3 {
        let outcome = write(&nodes, &pair, refusal(n)).await;
        assert_eq!(outcome, Outcome::Applied(Applied::Recorded));
    }
    let root = converged(&nodes, &pair, 3).await;

    // The leader snapshots and drops its log: node 3 can only catch up
    // through a snapshot sent over QUIC.
    let leader = agreed_leader(&nodes, &pair, None).await;
    let raft = nodes[leader].cluster.raft().clone();
    let applied = raft.metrics().borrow().last_applied.unwrap();
    raft.trigger().snapshot().await.unwrap();
    eventually("the snapshot", || {
        (raft.metrics().borrow().snapshot >= Some(applied)).then_some(())
    })
    .await;
    raft.trigger().purge_log(applied.index).await.unwrap();
    eventually("the purge", || {
        (raft.metrics().borrow().purged >= Some(applied)).then_some(())
    })
    .await;
    let learner = openraft::BasicNode {
        addr: nodes[2].server.addr.to_string(),
    };
    raft.add_learner(3, learner, true).await.unwrap();
    assert_eq!(converged(&nodes, &[0, 1, 2], 3).await, root);
    let installed = nodes[2].cluster.raft().metrics().borrow().snapshot;
    assert!(installed >= Some(applied), "node 3 holds no snapshot");

    for node in &nodes {
        node.cluster.shutdown().await.unwrap();
        node.server.close();
    }
}
