//! Cluster faults with real `vault-node` processes on loopback, each
//! configured by `vault-node run --config FILE`:
//!
//! - `kill_9_mid_upload_*`: a node dies while a department uploads through
//!   it; the `vault` CLI retries on the next node; one document, no half
//!   blob, and the blob ends up on R nodes once the dead node is back.
//! - `stopping_the_leader_while_a_resident_revokes_*`: the leader is frozen
//!   (SIGSTOP, a partition as far as its peers can tell) while a resident
//!   revokes through the majority; no node honours the grant afterwards,
//!   the old leader included once it runs again.
//! - `a_node_down_past_the_log_purge_*`: a node is killed, the others
//!   write past the snapshot and purge point, and it comes back from a
//!   snapshot with the same state and log.
//! - `a_fourth_node_joins_*`: a node is added (learner, then voter), the
//!   reconciler fetches the blobs placement gives it, and a member is
//!   removed.
//!
//! And with processes started by command-line flags (`--node-id`,
//! `--member`, `--bootstrap`):
//!
//! - `three_node_processes_serve_the_walkthrough_and_survive_a_kill`: the
//!   walkthrough carries on after `kill -9` of node 1;
//! - `kill_all_three_after_acknowledged_writes_and_restart`: every
//!   acknowledged write, spent use and revocation survives `kill -9` of
//!   all three;
//! - `use_counts_stay_exact_across_a_leader_kill`: a grant's uses stay
//!   exact when the leader is killed between fetches.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::ContentHash;
use tests::cluster::{
    cli_until_served, converged, eventually, eventually_within, free_addrs, kill9, signal,
    spawn_config, spawn_configured_cluster, status_cli, status_of, until_ok, write_config,
    DEADLINE, POLL,
};
use tests::fixtures::flip_byte;
use tests::{
    connect, files_under, kind, path_str, pseudo_random_bytes, resident, vault_command, GrantStory,
    NodeProcess, TestPki,
};

/// Where node `name`'s blob store keeps `hash`.
fn blob_path(pki: &TestPki, name: &str, hash: &ContentHash) -> std::path::PathBuf {
    let hex = hash.to_hex();
    pki.data_dir(name).join("blobs").join(&hex[..2]).join(hex)
}

/// Whether node `name`'s blob store holds a file for `hash`.
fn holds(pki: &TestPki, name: &str, hash: &ContentHash) -> bool {
    blob_path(pki, name, hash).is_file()
}

/// The node process currently leading, by index into `addrs`.
async fn leader_index(pki: &TestPki, addrs: &[SocketAddr]) -> usize {
    let statuses = converged(pki, addrs).await;
    let leader = statuses[0].leader.unwrap();
    statuses
        .iter()
        .position(|s| s.node_id == Some(leader))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_leaves_one_document_and_the_blob_on_r_nodes() {
    let pki = TestPki::new().unwrap();
    let (members, mut procs) = spawn_configured_cluster(&pki, 3, &["scrub_interval_s = 1"]);
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    converged(&pki, &addrs).await;

    // 48 MiB through node 2 first, then 3 and 1 (the CLI's failover list).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vehicle.bin");
    let data = pseudo_random_bytes(48 << 20, 7);
    std::fs::write(&file, &data).unwrap();
    let node_list = format!("{},{},{}", addrs[1], addrs[2], addrs[0]);
    let put_args = [
        "put",
        path_str(&file).unwrap(),
        "--resident",
        "resident-1",
        "--kind",
        "vehicle-record",
    ];
    let put = vault_command(&pki.identity_dir("civil-affairs"), &node_list, &put_args)
        .unwrap()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Kill node 2 once part of the body sits in its tmp/.
    let tmp = pki.data_dir("node-2").join("tmp");
    eventually("the upload to reach node 2", || {
        let started = files_under(&tmp)
            .iter()
            .any(|f| f.metadata().map(|m| m.len() > 4 << 20).unwrap_or(false));
        async move { started.then_some(()) }
    })
    .await;
    kill9(&mut procs[1]);
    let killed_at = Instant::now();

    let output = tokio::task::spawn_blocking(move || put.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "put failed: {stdout} {stderr}");
    assert!(stderr.contains("retrying on another node"), "{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let hash = ContentHash::from_hex(out["content_hash"].as_str().unwrap()).unwrap();
    eprintln!(
        "the put finished {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    // Exactly one document, readable and intact.
    let civil = connect(&pki, "civil-affairs", addrs[0]).await.unwrap();
    let who = resident("resident-1");
    let listed = until_ok("the list", || civil.list(&who)).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (_, fetched) = civil
        .get_bytes(listed[0].document_id, None, None)
        .await
        .unwrap();
    assert!(fetched == data, "the fetched copy differs");

    // Node 2 restarts with no half blob; the scrub gives it the blob, so it
    // ends up on R = 3 nodes.
    procs[1] = spawn_config(&write_config(
        &pki,
        2,
        &members,
        false,
        &["scrub_interval_s = 1"],
    ));
    assert!(files_under(&tmp).is_empty(), "{:?}", files_under(&tmp));
    eventually("the blob on all three nodes", || {
        let all = (1..=3).all(|i| holds(&pki, &format!("node-{i}"), &hash));
        async move { all.then_some(()) }
    })
    .await;
    let statuses = converged(&pki, &addrs).await;
    for status in &statuses {
        assert_eq!(status.documents, 1, "{status:?}");
        assert_eq!(status.blobs_local, 1, "{status:?}");
        assert_eq!(status.blobs_placed, Some(1), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_leader_while_a_resident_revokes_leaves_no_node_honouring_the_grant() {
    let pki = TestPki::new().unwrap();
    let (_members, procs) = spawn_configured_cluster(&pki, 3, &[]);
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    let leader = leader_index(&pki, &addrs).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    let civil = connect(&pki, "civil-affairs", addrs[followers[0]])
        .await
        .unwrap();
    let put = civil
        .put_bytes(
            std::sync::Arc::new(b"household register".to_vec()),
            &resident("resident-1"),
            &kind("household-register"),
        )
        .await
        .unwrap();
    let housing = connect(&pki, "housing-bureau", addrs[followers[0]])
        .await
        .unwrap();
    let resident_client = connect(&pki, "resident-1", addrs[followers[1]])
        .await
        .unwrap();
    let grant = GrantStory::new()
        .documents(vec![put.document_id])
        .max_uses(10)
        .grant(&housing, &resident_client)
        .await
        .unwrap();
    housing
        .get_bytes(put.document_id, None, Some(grant.id()))
        .await
        .unwrap();

    // Freeze the leader, then revoke through the majority.
    signal(&procs[leader], "STOP");
    let revoked_at = Instant::now();
    until_ok("the revocation", || {
        resident_client.revoke_grant(grant.id())
    })
    .await;
    eprintln!(
        "revoked {:.1} s after the leader stopped",
        revoked_at.elapsed().as_secs_f64()
    );
    for &i in &followers {
        let client = connect(&pki, "housing-bureau", addrs[i]).await.unwrap();
        let err = client
            .get_bytes(put.document_id, None, Some(grant.id()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "grant.revoked", "node {}: {err}", i + 1);
    }

    // The old leader runs again: its first answers must not honour the
    // grant either (it may answer cluster.unavailable while it learns it
    // was deposed, never the document).
    signal(&procs[leader], "CONT");
    let old = connect(&pki, "housing-bureau", addrs[leader])
        .await
        .unwrap();
    let grant_id = grant.id();
    eventually("the old leader's refusal", || {
        let old = &old;
        async move {
            match old.get_bytes(put.document_id, None, Some(grant_id)).await {
                Ok(_) => panic!("the old leader honoured a revoked grant"),
                Err(e) if e.code() == "grant.revoked" => Some(()),
                Err(e) => {
                    assert!(
                        matches!(e.code(), "cluster.unavailable" | "connection.failed"),
                        "unexpected refusal: {e}"
                    );
                    None
                }
            }
        }
    })
    .await;
    // One use, before the revocation; every node agrees.
    let statuses = converged(&pki, &addrs).await;
    assert!(statuses.iter().all(|s| s.log_size == statuses[0].log_size));
    let shown = resident_client.grants().await.unwrap();
    let view = shown.iter().find(|g| g.grant_id == grant.id()).unwrap();
    assert_eq!(view.uses, 1, "{view:?}");
    assert!(view.revoked, "{view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_past_the_log_purge_catches_up_from_a_snapshot() {
    let pki = TestPki::new().unwrap();
    let policy = ["snapshot_logs = 10", "scrub_interval_s = 1"];
    let (members, mut procs) = spawn_configured_cluster(&pki, 3, &policy);
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    converged(&pki, &addrs).await;
    let civil = connect(&pki, "civil-affairs", addrs[0]).await.unwrap();
    civil
        .put_bytes(
            std::sync::Arc::new(b"first".to_vec()),
            &resident("resident-1"),
            &kind("id-card"),
        )
        .await
        .unwrap();
    converged(&pki, &addrs).await;

    kill9(&mut procs[2]);
    let (who, tax) = (resident("resident-1"), kind("tax-paper"));
    let mut hashes = Vec::new();
    for n in 0..40u32 {
        let body = format!("tax paper {n}");
        let out = until_ok("a put", || {
            civil.put_bytes(std::sync::Arc::new(body.clone().into_bytes()), &who, &tax)
        })
        .await;
        hashes.push(out.content_hash);
    }
    let live = [addrs[0], addrs[1]];
    // openraft purges in the background once a snapshot is built (and no
    // replication still reads the entries): wait for it on both.
    eventually("the log purged on both live nodes", || async {
        let statuses = converged(&pki, &live).await;
        statuses
            .iter()
            .all(|s| s.purged_index.unwrap_or(0) >= 20)
            .then_some(())
    })
    .await;

    procs[2] = spawn_config(&write_config(&pki, 3, &members, false, &policy));
    let after = converged(&pki, &addrs).await;
    assert_eq!(after[2].documents, 41, "{:?}", after[2]);
    assert!(
        after[2].snapshot_index.unwrap_or(0) >= 20,
        "node 3 did not install a snapshot: {:?}",
        after[2]
    );
    // The same log: equal checkpoints' roots at equal sizes.
    let mut roots = BTreeMap::new();
    for addr in &addrs {
        let auditor = connect(&pki, "auditor", *addr).await.unwrap();
        let (checkpoint, _) = until_ok("a checkpoint", || auditor.checkpoint()).await;
        roots.insert(checkpoint.size, checkpoint.root);
    }
    assert_eq!(roots.len(), 1, "the nodes' logs differ: {roots:?}");
    // And the blobs it missed, fetched by the reconciler.
    eventually("node 3's blobs", || {
        let all = hashes.iter().all(|h| holds(&pki, "node-3", h));
        async move { all.then_some(()) }
    })
    .await;
}

/// Runs `vault-node member ARGS` as node-1's identity against `node`.
fn member_cli(pki: &TestPki, node: SocketAddr, args: &[&str]) -> serde_json::Value {
    let output = member_cli_as(pki, "node-1", node, args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "member {args:?}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Runs `vault-node member ARGS` as `identity` against `node`.
fn member_cli_as(
    pki: &TestPki,
    identity: &str,
    node: SocketAddr,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(tests::bin("vault-node").unwrap())
        .arg("member")
        .args(args)
        .args(["--identity", path_str(&pki.identity_dir(identity)).unwrap()])
        .args(["--node", &node.to_string(), "--json"])
        .output()
        .unwrap()
}

/// Whether every blob of `hashes` is on each node placement gives it
/// (R = `replicas` over `voters`).
fn placed_everywhere(
    pki: &TestPki,
    hashes: &[ContentHash],
    voters: &[u64],
    replicas: usize,
) -> bool {
    hashes.iter().all(|h| {
        vault_node::rules::placement::replicas(h, voters.iter().copied(), replicas)
            .iter()
            .all(|n| holds(pki, &format!("node-{n}"), h))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_as_a_learner_then_a_voter_and_a_member_leaves() {
    let pki = TestPki::new().unwrap();
    let policy = ["replicas = 2", "write_quorum = 2", "scrub_interval_s = 1"];
    let (members, procs) = spawn_configured_cluster(&pki, 3, &policy);
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    converged(&pki, &addrs).await;
    let civil = connect(&pki, "civil-affairs", addrs[1]).await.unwrap();
    let mut hashes = Vec::new();
    let mut documents = Vec::new();
    for n in 0..12u32 {
        let body = format!("marriage certificate {n}");
        let out = civil
            .put_bytes(
                std::sync::Arc::new(body.clone().into_bytes()),
                &resident("resident-1"),
                &kind("marriage-certificate"),
            )
            .await
            .unwrap();
        hashes.push(out.content_hash);
        documents.push(out.document_id);
    }
    // R = 2 of 3: each blob on its two placed nodes (the uploader may keep
    // a third copy).
    eventually("placement over three voters", || {
        let ok = placed_everywhere(&pki, &hashes, &[1, 2, 3], 2);
        async move { ok.then_some(()) }
    })
    .await;

    // A node certificate the cluster does not list may not change the
    // membership, not even to add itself; nothing changes.
    pki.issue_node("node-9").unwrap();
    let stranger = member_cli_as(&pki, "node-9", addrs[0], &["remove", "--id", "2"]);
    // Under --json the refusal is one JSON object on stdout, with its code.
    let stdout = String::from_utf8_lossy(&stranger.stdout);
    assert!(!stranger.status.success(), "{stdout}");
    let refusal: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a member")),
        "{refusal}"
    );
    let statuses = converged(&pki, &addrs).await;
    assert!(
        statuses.iter().all(|s| s.members.len() == 3),
        "{statuses:?}"
    );

    // Node 4 starts knowing only itself, then is added.
    pki.issue_node("node-4").unwrap();
    let addr4 = free_addrs(1)[&1].clone();
    let mut solo = BTreeMap::new();
    solo.insert(4, addr4.clone());
    let node4 = spawn_config(&write_config(&pki, 4, &solo, false, &policy));
    let added = member_cli(&pki, addrs[2], &["add", "--id", "4", "--addr", &addr4]);
    let voters: Vec<u64> = added["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4], "{added}");
    let all4: Vec<SocketAddr> = addrs.iter().copied().chain([node4.addr]).collect();
    let statuses = converged(&pki, &all4).await;
    assert_eq!(statuses[3].documents, 12);
    assert_eq!(statuses[3].members.len(), 4);
    // The reconciler moves the blobs node 4 now places.
    eventually_within(
        "placement over four voters",
        Duration::from_secs(60),
        || {
            let ok = placed_everywhere(&pki, &hashes, &[1, 2, 3, 4], 2);
            async move { ok.then_some(()) }
        },
    )
    .await;
    let placed4 = status_of(&pki, node4.addr).await.unwrap().blobs_placed;
    assert!(placed4.unwrap_or(0) > 0, "{placed4:?}");

    // Node 1 leaves; the three others carry on, and serve every document.
    let removed = member_cli(&pki, node4.addr, &["remove", "--id", "1"]);
    assert_eq!(removed["members"].as_array().unwrap().len(), 3, "{removed}");
    let rest = [addrs[1], addrs[2], node4.addr];
    let statuses = converged(&pki, &rest).await;
    assert!(statuses.iter().all(|s| s.members.len() == 3));
    let via4 = connect(&pki, "civil-affairs", node4.addr).await.unwrap();
    for (document, hash) in documents.iter().zip(&hashes) {
        let (outcome, _) = until_ok("a document via node 4", || {
            via4.get_bytes(*document, None, None)
        })
        .await;
        assert_eq!(&outcome.document.record.content_hash, hash);
    }
    via4.put_bytes(
        std::sync::Arc::new(b"after the change".to_vec()),
        &resident("resident-1"),
        &kind("id-card"),
    )
    .await
    .unwrap();
    let _ = members;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_while_the_members_change_catches_up_when_it_returns() {
    let pki = TestPki::new().unwrap();
    let policy = ["scrub_interval_s = 1"];
    let (members, mut procs) = spawn_configured_cluster(&pki, 3, &policy);
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    converged(&pki, &addrs).await;
    let civil = connect(&pki, "civil-affairs", addrs[1]).await.unwrap();
    let (who, household) = (resident("resident-1"), kind("household-registration"));
    let put = |n: u32| {
        let (civil, who, household) = (&civil, &who, &household);
        async move {
            let body = format!("household registration {n}");
            until_ok("a put", || {
                civil.put_bytes(
                    std::sync::Arc::new(body.clone().into_bytes()),
                    who,
                    household,
                )
            })
            .await
        }
    };
    put(0).await;

    // Node 3 goes down; node 4 replaces node 1 meanwhile (added first, so
    // three of four are alive throughout), and node 1 is stopped.
    kill9(&mut procs[2]);
    pki.issue_node("node-4").unwrap();
    let addr4 = free_addrs(1)[&1].clone();
    let node4 = spawn_config(&write_config(
        &pki,
        4,
        &BTreeMap::from([(4, addr4.clone())]),
        false,
        &policy,
    ));
    member_cli(&pki, addrs[1], &["add", "--id", "4", "--addr", &addr4]);
    let removed = member_cli(&pki, node4.addr, &["remove", "--id", "1"]);
    let ids: Vec<u64> = removed["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 3, 4], "{removed}");
    kill9(&mut procs[0]);
    for n in 1..=5 {
        put(n).await;
    }

    // Node 3 returns with its old configuration (members 1, 2, 3) and an old
    // view of the membership, and node 2 freezes: nodes 3 and 4 are the
    // majority now, so node 3 must vote for node 4 and take its appends,
    // although its view does not list node 4. It catches up, learns the
    // new membership and fetches the blobs it missed.
    procs[2] = spawn_config(&write_config(&pki, 3, &members, false, &policy));
    signal(&procs[1], "STOP");
    let via4 = connect(&pki, "civil-affairs", node4.addr).await.unwrap();
    until_ok("a put through node 4 with node 2 frozen", || {
        via4.put_bytes(
            std::sync::Arc::new(b"household registration 6".to_vec()),
            &who,
            &household,
        )
    })
    .await;
    signal(&procs[1], "CONT");
    let now = [addrs[1], addrs[2], node4.addr];
    let statuses = converged(&pki, &now).await;
    let node3 = &statuses[1];
    // Seven puts acknowledged (a put retried after an ambiguous failure
    // signs a new record, so there may be one more); `converged` checked
    // that node 3 holds as many as the others.
    assert!(node3.documents >= 7, "{node3:?}");
    let ids: Vec<u64> = node3.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![2, 3, 4], "{node3:?}");
    let pki = &pki;
    eventually("node 3's blobs", || async move {
        let status = status_of(pki, now[1]).await?;
        (status.blobs_local >= status.blobs_placed?).then_some(())
    })
    .await;
    // And it serves: a get through node 3.
    let r1 = connect(pki, "resident-1", addrs[2]).await.unwrap();
    let listed = until_ok("a list through node 3", || r1.list(&who)).await;
    assert_eq!(listed.len() as u64, node3.documents);
    let (_, bytes) = r1
        .get_bytes(listed[0].document_id, None, None)
        .await
        .unwrap();
    assert!(bytes.starts_with(b"household registration"));
}

/// Node `name`'s stored copy of `hash`, as bytes on disk.
fn stored_bytes(pki: &TestPki, name: &str, hash: &ContentHash) -> Vec<u8> {
    std::fs::read(blob_path(pki, name, hash)).unwrap()
}

/// Node `addr`'s repair totals.
async fn repair_of(pki: &TestPki, addr: SocketAddr) -> Option<vault_client::wire::RepairStatus> {
    status_of(pki, addr).await?.repair
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_on_one_node_is_never_served_and_is_repaired_from_a_replica() {
    let pki = TestPki::new().unwrap();
    // One scrub 5 s after start, then none for an hour: the first half of
    // the test sees reads alone.
    let quiet = ["scrub_interval_s = 3600"];
    let (members, mut procs) = spawn_configured_cluster(&pki, 3, &quiet);
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    converged(&pki, &addrs).await;
    eventually("node 2's first scrub", || async {
        repair_of(&pki, addrs[1]).await.filter(|r| r.scrubs >= 1)
    })
    .await;
    let civil = connect(&pki, "civil-affairs", addrs[0]).await.unwrap();
    let data = std::sync::Arc::new(pseudo_random_bytes(300_007, 21));
    let stored = civil
        .put_bytes(
            data.clone(),
            &resident("resident-1"),
            &kind("birth-certificate"),
        )
        .await
        .unwrap();
    let hash = stored.content_hash;
    eventually("the blob on all three nodes", || {
        let all = (1..=3).all(|i| holds(&pki, &format!("node-{i}"), &hash));
        async move { all.then_some(()) }
    })
    .await;

    // A byte inside the first group of node 2's copy: a read through node 2
    // gets the right bytes (the client checks them against the issuer's
    // hash), served from a verified copy node 2 fetched from a replica.
    let damaged = flip_byte(&blob_path(&pki, "node-2", &hash), 1_000);
    let r1 = connect(&pki, "resident-1", addrs[1]).await.unwrap();
    let (_, got) = r1.get_bytes(stored.document_id, None, None).await.unwrap();
    assert!(got == *data, "node 2 served other bytes");
    let repair = repair_of(&pki, addrs[1]).await.unwrap();
    assert_eq!(repair.read_repaired, 1, "{repair:?}");
    assert_ne!(stored_bytes(&pki, "node-2", &hash), damaged);

    // A byte in a later group, while node 2 is down; it restarts with a
    // scrub every second, which detects the damage and repairs the copy.
    kill9(&mut procs[1]);
    let damaged = flip_byte(&blob_path(&pki, "node-2", &hash), 200_000);
    let scrubbing = ["scrub_interval_s = 1"];
    procs[1] = spawn_config(&write_config(&pki, 2, &members, false, &scrubbing));
    let repair = eventually("node 2's scrub to repair the copy", || async {
        repair_of(&pki, addrs[1]).await.filter(|r| r.repaired >= 1)
    })
    .await;
    assert_eq!((repair.repaired, repair.failed), (1, 0), "{repair:?}");
    assert_ne!(stored_bytes(&pki, "node-2", &hash), damaged);
    for i in [1, 3] {
        let other = repair_of(&pki, addrs[i - 1]).await.unwrap();
        assert_eq!(
            (other.repaired, other.failed),
            (0, 0),
            "node {i}: {other:?}"
        );
    }

    // Node 2's repaired copy authenticates in full, read back offline.
    kill9(&mut procs[1]);
    let vault = vault_node::storage::vault::Vault::open(&pki.data_dir("node-2")).unwrap();
    assert!(vault_node::replication::repair::verify_local(vault.blobs(), &hash, None).unwrap());
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
    let put = |client: Arc<vault_client::VaultClient>, bytes: Arc<Vec<u8>>, name: &'static str| async move {
        client
            .put_bytes(bytes, &resident("resident-1"), &kind(name))
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
    let r1_3 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let grant = GrantStory::new()
        .documents(vec![doc])
        .max_uses(3)
        .grant(&housing2, &r1_3)
        .await
        .unwrap();
    let housing1 = connect(&pki, "housing-bureau", addrs[0]).await.unwrap();
    let (_, got) = housing1
        .get_bytes(doc, None, Some(grant.id()))
        .await
        .unwrap();
    assert_eq!(got, *bytes);

    // kill -9 node 1 (the bootstrap node, most likely the leader).
    kill9(&mut procs[0]);

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
    for (i, name) in kinds.iter().enumerate() {
        let civil = Arc::new(connect(&pki, "civil-affairs", addrs[i]).await.unwrap());
        let bytes = Arc::new(pseudo_random_bytes(20_000 + i * 1_000, 20 + i as u64));
        let stored = until_ok("a put", || {
            let (civil, bytes) = (civil.clone(), bytes.clone());
            async move {
                civil
                    .put_bytes(bytes, &resident("resident-1"), &kind(name))
                    .await
            }
        })
        .await;
        docs.push((stored.document_id, bytes));
    }

    // A grant with two uses, one spent; another grant, revoked.
    let housing2 = connect(&pki, "housing-bureau", addrs[1]).await.unwrap();
    let r1_3 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let used = GrantStory::new()
        .documents(vec![docs[0].0])
        .max_uses(2)
        .grant(&housing2, &r1_3)
        .await
        .unwrap()
        .id();
    let housing1 = connect(&pki, "housing-bureau", addrs[0]).await.unwrap();
    let (_, got) = housing1
        .get_bytes(docs[0].0, None, Some(used))
        .await
        .unwrap();
    assert_eq!(got, *docs[0].1);
    let revoked = GrantStory::new()
        .documents(vec![docs[1].0])
        .max_uses(2)
        .grant(&housing2, &r1_3)
        .await
        .unwrap()
        .id();
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
                    &kind("marriage-certificate"),
                )
                .await
        }
    })
    .await
    .document_id;
    let housing = connect(&pki, "housing-bureau", addrs[1]).await.unwrap();
    let r1 = connect(&pki, "resident-1", addrs[2]).await.unwrap();
    let grant = GrantStory::new()
        .documents(vec![doc])
        .max_uses(3)
        .grant(&housing, &r1)
        .await
        .unwrap()
        .id();
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
