//! Cluster mode: three in-process nodes with district certificates
//! replicate metadata through Raft over real QUIC. A write through any
//! node (leader or follower, which forwards it) is seen by every node, and
//! grant checks on a follower read the cluster's latest state. Uploaded
//! bytes are copied to the other nodes, and a node without a copy fetches
//! one from a member before serving. Three real `vault-node` processes
//! carry the walkthrough on after one of them is killed with SIGKILL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::{DocumentKind, Purpose, RequestScope, ResidentId};
use tests::cluster::{
    alive, cli_until_served, eventually, free_addrs, free_port_run, grant_for, kill9, until_ok,
    DEADLINE, POLL,
};
use tests::{connect, path_str, pseudo_random_bytes, NodeProcess, TestPki};
use vault_node::server::{self, ClusterConfig, NodeConfig, RunningNode};

async fn start_cluster(pki: &TestPki) -> Vec<RunningNode> {
    let members = free_addrs(3);
    let mut nodes = Vec::new();
    for (&id, addr) in &members {
        let name = format!("node-{id}");
        if id != 1 {
            pki.issue_node(&name).unwrap();
        }
        let node = server::start(NodeConfig {
            listen: addr.parse().unwrap(),
            data_dir: pki.data_dir(&name),
            identity_dir: pki.identity_dir(&name),
            crl_path: Some(pki.crl_path()),
            purposes_path: Some(pki.purposes_path().unwrap()),
            cluster: Some(ClusterConfig {
                node_id: id,
                members: members.clone(),
                bootstrap: id == 1,
                policy: vault_node::placement::ClusterPolicy::default(),
            }),
        })
        .await
        .unwrap();
        nodes.push(node);
    }
    eventually("an agreed leader", || {
        let leaders: Vec<_> = nodes
            .iter()
            .map(|n| n.cluster().unwrap().leader())
            .collect();
        async move {
            let first = leaders[0]?;
            leaders.iter().all(|l| *l == Some(first)).then_some(first)
        }
    })
    .await;
    nodes
}

fn resident(name: &str) -> ResidentId {
    ResidentId::parse(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_node_are_seen_by_all_and_grants_are_checked_linearizably() {
    let pki = TestPki::new().unwrap();
    let nodes = start_cluster(&pki).await;
    let addr = |i: usize| nodes[i].addr;

    // civil-affairs puts through node 1 (leader or follower).
    let civil = connect(&pki, "civil-affairs", addr(0)).await.unwrap();
    let bytes = Arc::new(pseudo_random_bytes(40_000, 7));
    let stored = civil
        .put_bytes(
            bytes.clone(),
            &resident("resident-1"),
            &DocumentKind::parse("marriage-certificate").unwrap(),
        )
        .await
        .unwrap();
    let doc = stored.document_id;

    // The resident sees it through every node.
    for i in 0..3 {
        let r1 = connect(&pki, "resident-1", addr(i)).await.unwrap();
        eventually("the document on every node", || {
            let r1 = &r1;
            async move {
                let listed = r1.list(&resident("resident-1")).await.ok()?;
                listed.iter().any(|d| d.document_id == doc).then_some(())
            }
        })
        .await;
    }

    // Every node ends up holding the bytes (the uploader waits for one
    // copy besides its own; the last push finishes in the background).
    let hash = stored.content_hash;
    eventually("the blob on every node", || {
        let held = nodes.iter().all(|n| n.vault().blobs().contains(&hash));
        async move { held.then_some(()) }
    })
    .await;

    // The resident reads the same bytes through nodes 2 and 3.
    for i in 1..3 {
        let r1 = connect(&pki, "resident-1", addr(i)).await.unwrap();
        let (_, got) = r1.get_bytes(doc, None, None).await.unwrap();
        assert_eq!(got, *bytes, "through node {}", i + 1);
    }

    // Request through node 2, approve through node 3, fetch through node 1.
    let housing2 = connect(&pki, "housing-bureau", addr(1)).await.unwrap();
    let request_id = housing2
        .request_access(
            &resident("resident-1"),
            RequestScope::Documents(vec![doc]),
            &Purpose::parse("housing-subsidy").unwrap(),
            3600,
        )
        .await
        .unwrap();
    let r1_3 = connect(&pki, "resident-1", addr(2)).await.unwrap();
    let view = eventually("the request on node 3", || {
        let r1_3 = &r1_3;
        async move {
            r1_3.pending_requests()
                .await
                .ok()?
                .into_iter()
                .find(|r| r.request_id == request_id)
        }
    })
    .await;
    let body = r1_3.approval_body(&view, 1, None).unwrap();
    let grant = r1_3.approve(body).await.unwrap();
    let housing1 = connect(&pki, "housing-bureau", addr(0)).await.unwrap();
    let (_, fetched) = housing1
        .get_bytes(doc, None, Some(grant.id()))
        .await
        .unwrap();
    assert_eq!(fetched, *bytes);

    // The one use is spent: a follower's check sees it at once.
    for i in 1..3 {
        let housing = connect(&pki, "housing-bureau", addr(i)).await.unwrap();
        let err = housing
            .get_bytes(doc, None, Some(grant.id()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "grant.exhausted", "through node {}", i + 1);
    }

    // Every node's state machine holds the same log.
    let sizes = eventually("equal logs", || {
        let sizes: Vec<_> = nodes
            .iter()
            .map(|n| vault_node::log::size(n.vault().store()).unwrap())
            .collect();
        async move { sizes.iter().all(|s| *s == sizes[0]).then_some(sizes) }
    })
    .await;
    assert!(sizes[0] >= 4, "log sizes {sizes:?}");
    for node in &nodes {
        node.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_copy_fetches_the_blob_from_a_member() {
    let pki = TestPki::new().unwrap();
    let nodes = start_cluster(&pki).await;
    let civil = connect(&pki, "civil-affairs", nodes[0].addr).await.unwrap();
    // Over one group and one send batch, and not a multiple of either.
    let bytes = Arc::new(pseudo_random_bytes(700_001, 9));
    let stored = civil
        .put_bytes(
            bytes.clone(),
            &resident("resident-2"),
            &DocumentKind::parse("birth-certificate").unwrap(),
        )
        .await
        .unwrap();
    let hash = stored.content_hash;
    eventually("the blob on every node", || {
        let held = nodes.iter().all(|n| n.vault().blobs().contains(&hash));
        async move { held.then_some(()) }
    })
    .await;
    // A node certificate the cluster does not list may not fetch the
    // plaintext, nor push a blob: only members copy blobs.
    pki.issue_node("node-7").unwrap();
    let rogue = connect(&pki, "node-7", nodes[0].addr).await.unwrap();
    let fetch = vault_client::wire::Request::FetchBlob { content_hash: hash };
    let push = vault_client::wire::Request::PushBlob {
        content_hash: hash,
        size: 5,
    };
    for request in [fetch, push] {
        let err = rogue.call(&request).await.unwrap_err();
        assert_eq!(err.code(), "auth.forbidden", "{err}");
        assert!(err.to_string().contains("not a member"), "{err}");
    }
    // Node 3 loses its copy; reading through it fetches one again.
    std::fs::remove_file(nodes[2].vault().blobs().path(&hash)).unwrap();
    assert!(!nodes[2].vault().blobs().contains(&hash));
    let r2 = connect(&pki, "resident-2", nodes[2].addr).await.unwrap();
    let (_, got) = r2.get_bytes(stored.document_id, None, None).await.unwrap();
    assert_eq!(got, *bytes);
    assert!(nodes[2].vault().blobs().contains(&hash));
    for node in &nodes {
        node.close();
    }
}

/// Flips one byte of the blob file at `path`, at `offset`.
fn flip_byte(path: &std::path::Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// Whether the node's copy of `hash` authenticates in full (outboard and
/// every group).
fn authentic(node: &RunningNode, hash: &pki::ContentHash) -> bool {
    vault_node::repair::verify_local(node.vault().blobs(), hash, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_copy_is_never_served_and_a_scrub_repairs_it() {
    let pki = TestPki::new().unwrap();
    let nodes = start_cluster(&pki).await;
    let civil = connect(&pki, "civil-affairs", nodes[0].addr).await.unwrap();
    let bytes = Arc::new(pseudo_random_bytes(300_007, 11));
    let stored = civil
        .put_bytes(
            bytes.clone(),
            &resident("resident-2"),
            &DocumentKind::parse("birth-certificate").unwrap(),
        )
        .await
        .unwrap();
    let hash = stored.content_hash;
    eventually("the blob on every node", || {
        let held = nodes.iter().all(|n| n.vault().blobs().contains(&hash));
        async move { held.then_some(()) }
    })
    .await;
    let path = nodes[1].vault().blobs().path(&hash);
    // A byte inside the first group: that group no longer authenticates.
    flip_byte(&path, 1_000);
    assert!(!authentic(&nodes[1], &hash));
    // Reading through node 2 still returns the right bytes: it fetches a
    // verified copy from a member instead of serving its own.
    let r2 = connect(&pki, "resident-2", nodes[1].addr).await.unwrap();
    let (_, got) = r2.get_bytes(stored.document_id, None, None).await.unwrap();
    assert_eq!(got, *bytes);
    assert!(authentic(&nodes[1], &hash));
    // Corrupt it again (a later group this time); a scrub repairs it.
    flip_byte(&path, 200_000);
    assert!(!authentic(&nodes[1], &hash));
    let counts = nodes[1].scrub_once().await;
    assert!(counts.checked >= 1, "{counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert!(authentic(&nodes[1], &hash));
    // The other nodes' copies were never touched and stay authentic.
    let counts = nodes[0].scrub_once().await;
    assert_eq!((counts.repaired, counts.failed), (0, 0), "{counts:?}");
    assert!(authentic(&nodes[0], &hash));
    for node in &nodes {
        node.close();
    }
}

/// Stores `bytes` on `node` as a blob no document refers to (what a failed
/// upload leaves), last modified `age` ago.
fn plant_orphan(node: &RunningNode, bytes: &[u8], age: Duration) -> pki::ContentHash {
    let hash = pki::ContentHash(*blake3::hash(bytes).as_bytes());
    let blobs = node.vault().blobs();
    let mut writer = blobs.writer(hash, bytes.len() as u64).unwrap();
    writer.write(bytes).unwrap();
    writer.finish().unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(blobs.path(&hash))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
    hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_collects_orphans_past_the_grace_and_keeps_the_rest() {
    let pki = TestPki::new().unwrap();
    let nodes = start_cluster(&pki).await;
    let civil = connect(&pki, "civil-affairs", nodes[0].addr).await.unwrap();
    let stored = civil
        .put_bytes(
            Arc::new(b"a registered document".to_vec()),
            &resident("resident-1"),
            &DocumentKind::parse("id-card").unwrap(),
        )
        .await
        .unwrap();
    eventually("the blob on node 2", || {
        let held = nodes[1].vault().blobs().contains(&stored.content_hash);
        async move { held.then_some(()) }
    })
    .await;
    // Two orphans on node 2: one older than the grace (three hours), one young
    // (an upload whose registration may still come).
    let old = plant_orphan(
        &nodes[1],
        b"left by a failed upload",
        Duration::from_secs(4 * 3_600),
    );
    let young = plant_orphan(&nodes[1], b"an upload in flight", Duration::from_secs(60));
    // The registered blob is old too: age alone must not get it collected.
    let registered = std::fs::File::options()
        .write(true)
        .open(nodes[1].vault().blobs().path(&stored.content_hash))
        .unwrap();
    registered
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(4 * 3_600))
        .unwrap();

    // (The node's own scheduled scrub may run first; either way the old
    // orphan goes and nothing else does.)
    let counts = nodes[1].scrub_once().await;
    assert!(counts.orphans_collected <= 1, "{counts:?}");
    let blobs = nodes[1].vault().blobs();
    assert!(!blobs.contains(&old));
    assert!(blobs.contains(&young));
    assert!(authentic(&nodes[1], &stored.content_hash));
    // A second scrub finds nothing more to collect.
    assert_eq!(nodes[1].scrub_once().await.orphans_collected, 0);
    for node in &nodes {
        node.close();
    }
}

/// Runs `vault-node status --json` against `addr` as `identity`.
async fn status_cli(
    pki: &TestPki,
    identity: &str,
    addr: std::net::SocketAddr,
) -> serde_json::Value {
    let exe = tests::bin("vault-node").unwrap();
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
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_membership_progress_and_holdings() {
    let pki = TestPki::new().unwrap();
    let nodes = start_cluster(&pki).await;
    let civil = connect(&pki, "civil-affairs", nodes[0].addr).await.unwrap();
    let stored = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(10_000, 5)),
            &resident("resident-1"),
            &DocumentKind::parse("birth-certificate").unwrap(),
        )
        .await
        .unwrap();
    let leader = nodes[0].cluster().unwrap().leader().unwrap();
    for (i, node) in nodes.iter().enumerate() {
        let auditor = connect(&pki, "auditor", node.addr).await.unwrap();
        let status = eventually("the document and its blob on every node", || {
            let auditor = &auditor;
            async move {
                let status = auditor.status().await.ok()?;
                (status.documents == 1 && status.blobs_local == 1).then_some(status)
            }
        })
        .await;
        assert!(status.cluster);
        assert_eq!(status.node, format!("node-{}", i + 1));
        assert_eq!(status.node_id, Some(i as u64 + 1));
        assert_eq!(status.leader, Some(leader));
        let ids: Vec<u64> = status.members.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(status.log_size >= 1, "{status:?}");
        assert!(status.applied_index >= 1, "{status:?}");
        assert!(
            status.last_log_index.unwrap() >= status.applied_index,
            "{status:?}"
        );
    }
    assert!(nodes[2].vault().blobs().contains(&stored.content_hash));
    // A node identity may ask too, and the command line prints the same.
    let json = status_cli(&pki, "node-2", nodes[1].addr).await;
    assert_eq!(json["cluster"], true);
    assert_eq!(json["node_id"], 2);
    assert_eq!(json["members"].as_array().unwrap().len(), 3);
    assert_eq!(json["documents"], 1);
    // Anyone else is refused.
    let r1 = connect(&pki, "resident-1", nodes[0].addr).await.unwrap();
    let refused = r1.status().await.unwrap_err();
    assert_eq!(refused.code(), "auth.forbidden", "{refused}");
    for node in &nodes {
        node.close();
    }

    // A single node reports no cluster.
    let pki = TestPki::new().unwrap();
    let node = tests::start_node(&pki).await.unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(1_000, 6)),
            &resident("resident-1"),
            &DocumentKind::parse("birth-certificate").unwrap(),
        )
        .await
        .unwrap();
    let auditor = connect(&pki, "auditor", node.addr).await.unwrap();
    let status = auditor.status().await.unwrap();
    assert!(!status.cluster);
    assert_eq!(status.node, "node-1");
    assert_eq!((status.node_id, status.leader), (None, None));
    assert!(status.members.is_empty());
    assert_eq!(status.last_log_index, None);
    assert_eq!((status.documents, status.blobs_local), (1, 1));
    assert!(
        status.log_size >= 1 && status.applied_index >= 1,
        "{status:?}"
    );
    let json = status_cli(&pki, "auditor", node.addr).await;
    assert_eq!(json["cluster"], false);
    assert_eq!(json["documents"], 1);
    assert_eq!(json["blobs_local"], 1);
    node.close();
}

/// Spawns `vault-node run` in cluster mode as member `id` of `members`.
fn spawn_member(pki: &TestPki, id: u64, members: &BTreeMap<u64, String>) -> NodeProcess {
    let name = format!("node-{id}");
    let identity = pki.identity_dir(&name);
    let data = pki.data_dir(&name);
    let crl = pki.crl_path();
    let purposes = pki.purposes_path().unwrap();
    let listen = members[&id].clone();
    let id_text = id.to_string();
    let member_args: Vec<String> = members
        .iter()
        .map(|(member, addr)| format!("{member}={addr}"))
        .collect();
    let mut args = vec![
        "run",
        "--identity",
        path_str(&identity).unwrap(),
        "--data",
        path_str(&data).unwrap(),
        "--listen",
        &listen,
        "--crl",
        path_str(&crl).unwrap(),
        "--purposes",
        path_str(&purposes).unwrap(),
        "--node-id",
        &id_text,
    ];
    for member in &member_args {
        args.push("--member");
        args.push(member);
    }
    if id == 1 {
        args.push("--bootstrap");
    }
    NodeProcess::spawn(&args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_processes_serve_the_walkthrough_and_survive_a_kill() {
    let pki = TestPki::new().unwrap();
    pki.issue_node("node-2").unwrap();
    pki.issue_node("node-3").unwrap();
    let members = free_addrs(3);
    let mut procs: Vec<NodeProcess> = members
        .keys()
        .map(|id| spawn_member(&pki, *id, &members))
        .collect();
    let addrs: Vec<_> = procs.iter().map(|p| p.addr).collect();
    for (proc, (id, addr)) in procs.iter().zip(&members) {
        assert_eq!(proc.started["node"], format!("node-{id}"));
        assert_eq!(&proc.addr.to_string(), addr);
    }
    let put = |client: Arc<vault_client::VaultClient>, bytes: Arc<Vec<u8>>, kind: &'static str| async move {
        client
            .put_bytes(
                bytes,
                &resident("resident-1"),
                &DocumentKind::parse(kind).unwrap(),
            )
            .await
    };

    // Put through node 1 (retried while the cluster elects its leader; a
    // repeated put of the same record is the same document).
    let civil1 = Arc::new(connect(&pki, "civil-affairs", addrs[0]).await.unwrap());
    let bytes = Arc::new(pseudo_random_bytes(300_000, 11));
    let doc = until_ok("a put through node 1", || {
        put(civil1.clone(), bytes.clone(), "marriage-certificate")
    })
    .await
    .document_id;

    // Get through nodes 2 and 3: the same bytes.
    for (i, addr) in addrs.iter().enumerate().skip(1) {
        let r1 = connect(&pki, "resident-1", *addr).await.unwrap();
        let (_, got) = r1.get_bytes(doc, None, None).await.unwrap();
        assert_eq!(got, *bytes, "through node {}", i + 1);
    }

    // Request through node 2, approve through node 3, fetch through node 1.
    let housing2 = connect(&pki, "housing-bureau", addrs[1]).await.unwrap();
    let request_id = housing2
        .request_access(
            &resident("resident-1"),
            RequestScope::Documents(vec![doc]),
            &Purpose::parse("housing-subsidy").unwrap(),
            3600,
        )
        .await
        .unwrap();
    let r1_3 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let view = eventually("the request on node 3", || {
        let r1_3 = &r1_3;
        async move {
            r1_3.pending_requests()
                .await
                .ok()?
                .into_iter()
                .find(|r| r.request_id == request_id)
        }
    })
    .await;
    let grant = r1_3
        .approve(r1_3.approval_body(&view, 3, None).unwrap())
        .await
        .unwrap();
    let housing1 = connect(&pki, "housing-bureau", addrs[0]).await.unwrap();
    let (_, got) = housing1
        .get_bytes(doc, None, Some(grant.id()))
        .await
        .unwrap();
    assert_eq!(got, *bytes);

    // kill -9 node 1 (the bootstrap node, most likely the leader).
    procs[0].child.kill().unwrap();
    procs[0].child.wait().unwrap();

    // The walkthrough continues on nodes 2 and 3.
    let civil2 = Arc::new(connect(&pki, "civil-affairs", addrs[1]).await.unwrap());
    let bytes2 = Arc::new(pseudo_random_bytes(120_000, 12));
    let doc2 = until_ok("a put through node 2 after the kill", || {
        put(civil2.clone(), bytes2.clone(), "birth-certificate")
    })
    .await
    .document_id;
    let r1_3 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let (_, got) = r1_3.get_bytes(doc2, None, None).await.unwrap();
    assert_eq!(got, *bytes2);
    let housing3 = connect(&pki, "housing-bureau", addrs[2]).await.unwrap();
    let (_, got) = housing3
        .get_bytes(doc, None, Some(grant.id()))
        .await
        .unwrap();
    assert_eq!(got, *bytes);
    // Two of three uses are spent, whichever node counted them.
    let (_, got) = housing2
        .get_bytes(doc, None, Some(grant.id()))
        .await
        .unwrap();
    assert_eq!(got, *bytes);
    let err = housing3
        .get_bytes(doc, None, Some(grant.id()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "grant.exhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_three_nodes_and_stops_them_all() {
    let data = tempfile::tempdir().unwrap();
    let base = free_port_run();
    let listen = format!("127.0.0.1:{base}");
    let mut dev = std::process::Command::new(tests::bin("vault-node").unwrap())
        .args(["dev", "--nodes", "3", "--data"])
        .arg(data.path())
        .args(["--listen", &listen])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = dev.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut started = BTreeMap::new();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        started.insert(json["node"].as_str().unwrap().to_string(), json);
    }
    let addr_of =
        |k: u16| -> std::net::SocketAddr { format!("127.0.0.1:{}", base + k).parse().unwrap() };
    for k in 0..3u16 {
        let json = &started[&format!("node-{}", k + 1)];
        assert_eq!(json["addr"], addr_of(k).to_string());
        assert!(json["pid"].as_u64().is_some());
        assert!(json["data_dir"]
            .as_str()
            .unwrap()
            .ends_with(&format!("node-{}", k + 1)));
    }
    // The dev identities work against the cluster: put through node 1,
    // get through node 3.
    let identity =
        |name: &str| pki::Identity::load(&data.path().join("identities").join(name)).unwrap();
    let civil = Arc::new(
        vault_client::VaultClient::connect(identity("civil-affairs"), &addr_of(0).to_string())
            .await
            .unwrap(),
    );
    let bytes = Arc::new(pseudo_random_bytes(30_000, 13));
    let stored = until_ok("a put through dev node 1", || {
        let civil = civil.clone();
        let bytes = bytes.clone();
        async move {
            civil
                .put_bytes(
                    bytes,
                    &resident("resident-1"),
                    &DocumentKind::parse("id-card").unwrap(),
                )
                .await
        }
    })
    .await;
    let r1 = vault_client::VaultClient::connect(identity("resident-1"), &addr_of(2).to_string())
        .await
        .unwrap();
    let (_, got) = r1.get_bytes(stored.document_id, None, None).await.unwrap();
    assert_eq!(got, *bytes);

    // SIGTERM to the parent stops every node.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    dev.wait().unwrap();
    let pids: Vec<u64> = started
        .values()
        .map(|j| j["pid"].as_u64().unwrap())
        .collect();
    eventually("every dev node to exit", || {
        let gone = pids.iter().all(|pid| !alive(*pid));
        async move { gone.then_some(()) }
    })
    .await;
}

/// Starts three `vault-node run` processes on fresh loopback addresses.
fn spawn_cluster(pki: &TestPki) -> (BTreeMap<u64, String>, Vec<NodeProcess>) {
    pki.issue_node("node-2").unwrap();
    pki.issue_node("node-3").unwrap();
    let members = free_addrs(3);
    let procs = members
        .keys()
        .map(|id| spawn_member(pki, *id, &members))
        .collect();
    (members, procs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_three_after_acknowledged_writes_and_restart() {
    let pki = TestPki::new().unwrap();
    let (members, mut procs) = spawn_cluster(&pki);
    let addrs: Vec<_> = procs.iter().map(|p| p.addr).collect();

    // Three documents, each put through a different node.
    let kinds = ["marriage-certificate", "birth-certificate", "id-card"];
    let mut docs = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let civil = Arc::new(connect(&pki, "civil-affairs", addrs[i]).await.unwrap());
        let bytes = Arc::new(pseudo_random_bytes(20_000 + i * 1_000, 20 + i as u64));
        let stored = until_ok("a put", || {
            let (civil, bytes) = (civil.clone(), bytes.clone());
            async move {
                civil
                    .put_bytes(
                        bytes,
                        &resident("resident-1"),
                        &DocumentKind::parse(kind).unwrap(),
                    )
                    .await
            }
        })
        .await;
        docs.push((stored.document_id, bytes));
    }

    // A grant with two uses, one spent; another grant, revoked.
    let housing2 = connect(&pki, "housing-bureau", addrs[1]).await.unwrap();
    let r1_3 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let used = grant_for(&housing2, &r1_3, vec![docs[0].0], 2).await.id();
    let housing1 = connect(&pki, "housing-bureau", addrs[0]).await.unwrap();
    let (_, got) = housing1
        .get_bytes(docs[0].0, None, Some(used))
        .await
        .unwrap();
    assert_eq!(got, *docs[0].1);
    let revoked = grant_for(&housing2, &r1_3, vec![docs[1].0], 2).await.id();
    r1_3.revoke_grant(revoked).await.unwrap();
    drop((housing1, housing2, r1_3));

    // kill -9 every node, then start them again on the same data and ports
    // (the bootstrap flag is a no-op once the membership exists).
    for proc in &mut procs {
        kill9(proc);
    }
    drop(procs);
    let procs: Vec<NodeProcess> = members
        .keys()
        .map(|id| spawn_member(&pki, *id, &members))
        .collect();
    assert_eq!(procs.iter().map(|p| p.addr).collect::<Vec<_>>(), addrs);

    // Every acknowledged document is served, by its issuer, through every
    // node; the spent use and the revocation survived.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("copy");
    let out = out.to_str().unwrap();
    let used = used.to_string();
    let revoked = revoked.to_string();
    for (i, addr) in addrs.iter().enumerate() {
        for (doc, bytes) in &docs {
            let doc = doc.to_string();
            let got =
                cli_until_served(&pki, "civil-affairs", *addr, &["get", &doc, "-o", out]).await;
            assert!(got.success, "node {}: {got:?}", i + 1);
            assert_eq!(std::fs::read(out).unwrap(), **bytes, "node {}", i + 1);
        }
        let listed = cli_until_served(&pki, "resident-1", *addr, &["grants"]).await;
        assert!(listed.success, "{listed:?}");
        let grants = listed.json["grants"].as_array().unwrap();
        let find = |id: &str| {
            grants
                .iter()
                .find(|g| g["grant_id"] == id)
                .unwrap_or_else(|| panic!("grant {id} missing on node {}: {listed:?}", i + 1))
        };
        assert_eq!(find(&used)["uses"], 1, "node {}", i + 1);
        assert_eq!(find(&revoked)["revoked"], true, "node {}", i + 1);
        let doc1 = docs[1].0.to_string();
        let refused = cli_until_served(
            &pki,
            "housing-bureau",
            *addr,
            &["get", &doc1, "--grant", &revoked, "-o", out],
        )
        .await;
        assert_eq!(
            refused.json["error"]["code"],
            "grant.revoked",
            "node {}: {refused:?}",
            i + 1
        );
    }

    // All three report the same log and documents (once the background
    // logging of the reads above has settled everywhere).
    let statuses = eventually("equal status on every node", || {
        let pki = &pki;
        let addrs = &addrs;
        async move {
            let mut all = Vec::new();
            for addr in addrs {
                all.push(status_cli(pki, "auditor", *addr).await);
            }
            let same = all.iter().all(|s| {
                s["log_size"] == all[0]["log_size"]
                    && s["documents"] == all[0]["documents"]
                    && s["applied_index"] == all[0]["applied_index"]
            });
            same.then_some(all)
        }
    })
    .await;
    assert_eq!(statuses[0]["documents"], 3, "{statuses:?}");
    let log_size = statuses[0]["log_size"].as_u64().unwrap();
    assert!(log_size >= 7, "{statuses:?}");

    // The auditor verifies each node's log: the same tree everywhere.
    let mut sizes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let state = work.path().join(format!("audit-state-{i}"));
        let verified = cli_until_served(
            &pki,
            "auditor",
            *addr,
            &["audit", "verify", "--state", state.to_str().unwrap()],
        )
        .await;
        assert!(verified.success, "node {}: {verified:?}", i + 1);
        assert_eq!(verified.json["consistent"], true, "{verified:?}");
        assert_eq!(verified.json["violations"].as_array().unwrap().len(), 0);
        sizes.push(verified.json["tree_size"].as_u64().unwrap());
    }
    assert!(sizes.iter().all(|s| *s == sizes[0]), "tree sizes {sizes:?}");
    assert_eq!(sizes[0], log_size, "{statuses:?}");
    drop(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_counts_stay_exact_across_a_leader_kill() {
    let pki = TestPki::new().unwrap();
    let (_members, mut procs) = spawn_cluster(&pki);
    let addrs: Vec<_> = procs.iter().map(|p| p.addr).collect();
    let civil = Arc::new(connect(&pki, "civil-affairs", addrs[0]).await.unwrap());
    let bytes = Arc::new(pseudo_random_bytes(50_000, 31));
    let doc = until_ok("a put", || {
        let (civil, bytes) = (civil.clone(), bytes.clone());
        async move {
            civil
                .put_bytes(
                    bytes,
                    &resident("resident-1"),
                    &DocumentKind::parse("marriage-certificate").unwrap(),
                )
                .await
        }
    })
    .await
    .document_id;
    let housing = connect(&pki, "housing-bureau", addrs[1]).await.unwrap();
    let r1 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let grant = grant_for(&housing, &r1, vec![doc], 3).await.id();
    let (_, got) = housing.get_bytes(doc, None, Some(grant)).await.unwrap();
    assert_eq!(got, *bytes);
    drop((civil, housing, r1));

    // Find the leader every node agrees on, and kill -9 it.
    let leader = eventually("an agreed leader", || {
        let pki = &pki;
        let addrs = &addrs;
        async move {
            let mut leaders = Vec::new();
            for addr in addrs {
                leaders.push(status_cli(pki, "auditor", *addr).await["leader"].as_u64());
            }
            let first = leaders[0]?;
            leaders.iter().all(|l| *l == Some(first)).then_some(first)
        }
    })
    .await;
    let dead = usize::try_from(leader - 1).unwrap();
    kill9(&mut procs[dead]);
    let survivors: Vec<_> = (0..3).filter(|i| *i != dead).map(|i| addrs[i]).collect();

    // Fetch through the survivors, alternating, until refused.
    let start = Instant::now();
    let mut successes = 0;
    let mut attempt = 0usize;
    let refusal = loop {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out fetching after the kill ({successes} fetched)"
        );
        let addr = survivors[attempt % survivors.len()];
        attempt += 1;
        let result = match connect(&pki, "housing-bureau", addr).await {
            Ok(client) => client.get_bytes(doc, None, Some(grant)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((_, got)) => {
                assert_eq!(got, *bytes);
                successes += 1;
            }
            Err(e) if matches!(e.code(), "connection.failed" | "cluster.unavailable") => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refusal.code(), "grant.exhausted", "{refusal}");
    assert_eq!(successes, 2, "fetches after the leader was killed");
}
