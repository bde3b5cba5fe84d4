//! Cluster mode: three in-process nodes with district certificates
//! replicate metadata through Raft over real QUIC. A write through any
//! node (leader or follower, which forwards it) is seen by every node, and
//! grant checks on a follower read the cluster's latest state. Uploaded
//! bytes are copied to the other nodes, and a node without a copy fetches
//! one from a member before serving. `vault-node dev --nodes 3` starts
//! and stops a cluster of processes. (Clusters of processes killed with
//! SIGKILL are in [`crate::faults`].)

use std::sync::Arc;
use std::time::Duration;

use tests::cluster::{alive, eventually, start_led_cluster, status_cli, status_cli_exit, until_ok};
use tests::dev::DevCluster;
use tests::fixtures::flip_byte;
use tests::{connect, kind, pseudo_random_bytes, resident, GrantStory, TestPki};
use vault_client::PutOutcome;
use vault_node::node::RunningNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_node_are_seen_by_all_and_grants_are_checked_linearizably() {
    let pki = TestPki::new().unwrap();
    let nodes = start_led_cluster(&pki).await;
    let addr = |i: usize| nodes[i].addr;

    // civil-affairs puts through node 1 (leader or follower).
    let civil = connect(&pki, "civil-affairs", addr(0)).await.unwrap();
    let bytes = Arc::new(pseudo_random_bytes(40_000, 7));
    let stored = civil
        .put_bytes(
            bytes.clone(),
            &resident("resident-1"),
            &kind("marriage-certificate"),
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
    held_by_all(&nodes, &hash).await;

    // The resident reads the same bytes through nodes 2 and 3.
    for i in 1..3 {
        let r1 = connect(&pki, "resident-1", addr(i)).await.unwrap();
        let (_, got) = r1.get_bytes(doc, None, None).await.unwrap();
        assert_eq!(got, *bytes, "through node {}", i + 1);
    }

    // Request through node 2, approve through node 3, fetch through node 1.
    let housing2 = connect(&pki, "housing-bureau", addr(1)).await.unwrap();
    let r1_3 = connect(&pki, "resident-1", addr(2)).await.unwrap();
    let grant = GrantStory::new()
        .documents(vec![doc])
        .grant(&housing2, &r1_3)
        .await
        .unwrap();
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
            .map(|n| vault_node::engine::log::size(n.vault().store()).unwrap())
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
    let nodes = start_led_cluster(&pki).await;
    // Over one group and one send batch, and not a multiple of either.
    let bytes = Arc::new(pseudo_random_bytes(700_001, 9));
    let stored = put_everywhere(&pki, &nodes, &bytes).await;
    let hash = stored.content_hash;
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

/// Waits until every node holds the blob `hash` (the uploader waits for
/// one copy besides its own; the last push finishes in the background).
async fn held_by_all(nodes: &[RunningNode], hash: &pki::ContentHash) {
    eventually("the blob on every node", || {
        let held = nodes.iter().all(|n| n.vault().blobs().contains(hash));
        async move { held.then_some(()) }
    })
    .await;
}

/// civil-affairs puts `bytes` through node 1 as resident-2's birth
/// certificate; answers once every node holds the blob.
async fn put_everywhere(pki: &TestPki, nodes: &[RunningNode], bytes: &Arc<Vec<u8>>) -> PutOutcome {
    let civil = connect(pki, "civil-affairs", nodes[0].addr).await.unwrap();
    let stored = civil
        .put_bytes(
            bytes.clone(),
            &resident("resident-2"),
            &kind("birth-certificate"),
        )
        .await
        .unwrap();
    held_by_all(nodes, &stored.content_hash).await;
    stored
}

/// Whether the node's copy of `hash` authenticates in full (outboard and
/// every group).
fn authentic(node: &RunningNode, hash: &pki::ContentHash) -> bool {
    vault_node::replication::repair::verify_local(node.vault().blobs(), hash, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_copy_is_never_served_and_a_scrub_repairs_it() {
    let pki = TestPki::new().unwrap();
    let nodes = start_led_cluster(&pki).await;
    let bytes = Arc::new(pseudo_random_bytes(300_007, 11));
    let stored = put_everywhere(&pki, &nodes, &bytes).await;
    let hash = stored.content_hash;
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

/// Every copy corrupt: the get answers `integrity.corrupt`, as
/// docs/PROTOCOL.md says (it answered `cluster.unavailable`; part 6,
/// finding 6), and no byte is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copy_corrupt_is_integrity_corrupt() {
    let pki = TestPki::new().unwrap();
    let nodes = start_led_cluster(&pki).await;
    let bytes = Arc::new(pseudo_random_bytes(100_003, 12));
    let stored = put_everywhere(&pki, &nodes, &bytes).await;
    let hash = stored.content_hash;
    for node in &nodes {
        let path = node.vault().blobs().path(&hash);
        if path.exists() {
            flip_byte(&path, 1_000);
        }
    }
    let r2 = connect(&pki, "resident-2", nodes[1].addr).await.unwrap();
    let err = r2
        .get_bytes(stored.document_id, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "integrity.corrupt", "{err}");
    for node in &nodes {
        node.close();
    }
}

/// `member add` of an address where nothing listens made the node a voter
/// within milliseconds (openraft's lag check passes on a short log), and
/// the quorum then counted a dead node (part 6, finding 2). Now it is
/// refused once the learner has not answered, and the members are as
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_node_that_never_answers_is_refused_and_changes_nothing() {
    let pki = TestPki::new().unwrap();
    let nodes = start_led_cluster(&pki).await;
    let nowhere = tests::cluster::free_addrs(1)[&1].clone();
    let cluster = nodes[0].cluster().unwrap().clone();
    let started = std::time::Instant::now();
    let change = vault_client::wire::MembershipChange::Add {
        id: 5,
        addr: nowhere,
    };
    let refusal = cluster.change_membership(change).await.unwrap_err();
    assert_eq!(
        refusal.code.as_str(),
        "cluster.membership_refused",
        "{refusal}"
    );
    assert!(refusal.message.contains("did not answer"), "{refusal}");
    assert!(
        started.elapsed()
            >= Duration::from_secs(vault_node::consensus::raft::membership::LEARNER_ANSWER_S_MAX)
    );
    let metrics = cluster.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    assert_eq!(voters, vec![1, 2, 3]);
    assert!(membership.nodes().all(|(id, _)| *id != 5), "{membership:?}");
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
    let nodes = start_led_cluster(&pki).await;
    let civil = connect(&pki, "civil-affairs", nodes[0].addr).await.unwrap();
    let stored = civil
        .put_bytes(
            Arc::new(b"a registered document".to_vec()),
            &resident("resident-1"),
            &kind("id-card"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_membership_progress_and_holdings() {
    let pki = TestPki::new().unwrap();
    let nodes = start_led_cluster(&pki).await;
    let civil = connect(&pki, "civil-affairs", nodes[0].addr).await.unwrap();
    let stored = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(10_000, 5)),
            &resident("resident-1"),
            &kind("birth-certificate"),
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
            &kind("birth-certificate"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_three_nodes_and_stops_them_all() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = DevCluster::start(None, data.path()).unwrap();
    let started = dev.started_by_name();
    let addr_of = |k: u16| dev.addr(k);
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
                .put_bytes(bytes, &resident("resident-1"), &kind("id-card"))
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
        .args(["-TERM", &dev.dev.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    dev.dev.wait().unwrap();
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

/// One log identity per cluster: three node processes serve byte-identical
/// signed checkpoints at the same size, under one origin without spaces
/// that is also the key's name; a district node signing with another log
/// key is refused by the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_same_signed_checkpoint_and_another_log_key_is_refused() {
    use tests::cluster::{cli_until_served, converged, spawn_configured_cluster};
    let pki = TestPki::new().unwrap();
    let (members, procs) = spawn_configured_cluster(&pki, 3, &[]);
    let addrs: Vec<std::net::SocketAddr> = procs.iter().map(|p| p.addr).collect();
    // A write, so the log is not empty, then every node at the same size.
    let file = pki.dir.path().join("note.txt");
    std::fs::write(&file, b"one log, one key").unwrap();
    let put = cli_until_served(
        &pki,
        "civil-affairs",
        addrs[0],
        &[
            "put",
            file.to_str().unwrap(),
            "--resident",
            "resident-1",
            "--kind",
            "note",
        ],
    )
    .await;
    assert!(put.success, "{put:?}");
    let notes = eventually("three identical checkpoints", || {
        let pki = &pki;
        let addrs = &addrs;
        async move {
            converged(pki, addrs).await;
            let mut notes = Vec::new();
            for addr in addrs {
                let out = cli_until_served(pki, "auditor", *addr, &["audit", "checkpoint"]).await;
                notes.push(out.json);
            }
            let same_size = notes
                .iter()
                .all(|n| n["tree_size"] == notes[0]["tree_size"]);
            same_size.then_some(notes)
        }
    })
    .await;
    assert_eq!(members.len(), 3);
    let note = notes[0]["note"].as_str().unwrap();
    for other in &notes[1..] {
        assert_eq!(
            other["note"].as_str().unwrap(),
            note,
            "byte-identical notes"
        );
    }
    let origin = notes[0]["origin"].as_str().unwrap();
    assert_eq!(origin, tests::TEST_LOG_ORIGIN);
    assert!(!origin.contains(' ') && !origin.contains("://"), "{origin}");
    assert!(note.starts_with(&format!("{origin}\n")), "{note}");
    let signature_line = note.lines().last().unwrap();
    let name = signature_line.split(' ').nth(1).unwrap();
    assert_eq!(name, origin, "the key name is the origin");
    // The note checks with the district's verifier key alone (log.pub),
    // whichever node served it.
    let trusted = pki.ca.log_verifiers().unwrap();
    let checked = pki::Checkpoint::verify_note(note, &trusted).unwrap();
    assert!(checked.size > 0);

    // A district node certificate with a log key of its own, under the same
    // origin: the client refuses its checkpoint.
    let rogue = pki.issue_node("rogue").unwrap();
    let (key, pem) = pki::generate_log_key(tests::TEST_LOG_ORIGIN).unwrap();
    std::fs::write(rogue.join("log.key.pem"), pem).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(rogue.join("log.key.pem"), private).unwrap();
    }
    std::fs::write(rogue.join("log.pub"), format!("{}\n", key.verifier())).unwrap();
    let data = pki.data_dir("rogue");
    let node = tests::NodeProcess::spawn(&[
        "run",
        "--identity",
        rogue.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    let refused = cli_until_served(&pki, "auditor", node.addr, &["audit", "checkpoint"]).await;
    assert!(!refused.success, "{refused:?}");
    assert_eq!(
        refused.json["error"]["code"], "pki.unknown_log_key",
        "{refused:?}"
    );
    let forged = pki::Checkpoint {
        origin: tests::TEST_LOG_ORIGIN.into(),
        size: checked.size,
        root: checked.root,
        resident_index: None,
    }
    .sign(&key);
    let err = pki::Checkpoint::verify_note(&forged, &trusted).unwrap_err();
    assert_eq!(err.code(), "pki.unknown_log_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_3_when_a_member_is_down() {
    let pki = TestPki::new().unwrap();
    let nodes = start_led_cluster(&pki).await;
    let json = status_cli(&pki, "auditor", nodes[0].addr).await;
    assert_eq!(json["healthy"], true, "{json}");
    // Node 3 stops answering: the status says so and exits 3.
    nodes[2].close();
    let (code, json) = eventually("status to see node 3 down", || {
        let pki = &pki;
        let addr = nodes[0].addr;
        async move {
            let (code, json) = status_cli_exit(pki, "auditor", addr).await;
            (code != 0).then_some((code, json))
        }
    })
    .await;
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["healthy"], false, "{json}");
    let problems = json["problems"].to_string();
    assert!(problems.contains("member 3"), "{problems}");
}
