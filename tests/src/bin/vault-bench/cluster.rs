//! The cluster suite: puts and grant-checked gets through a three-node
//! in-process cluster (real QUIC, Raft and RocksDB) beside the same
//! through the single node of the run; the repair rate of a follower that
//! lost its copies; and the time from stopping the leader to the next
//! successful put through a survivor.
//!
//! The rows carry the CPU this process used per operation (clients and
//! in-process nodes alike), from `/proc/self/stat`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pki::{DocumentKind, ResidentId};
use tests::cluster::{agreed_leader, start_cluster};
use tests::{connect, pseudo_random_bytes, GrantStory, TestPki};
use vault_client::VaultClient;
use vault_node::node::RunningNode;

use crate::report::{measure, measure_concurrent, Row};
use crate::{parse_size, raw, Args};

/// Clients for the cluster suite's throughput rows.
const CLUSTER_CLIENTS: usize = 16;
/// How long the nodes may take to agree on a leader, and a put through a
/// survivor to succeed after the leader stopped.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);
/// How long a failover may take before the suite gives up.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);

/// Puts and verified gets of `--cluster-sizes` documents through a
/// three-node cluster (spread over its nodes, or through the leader with
/// `--cluster-leader-only`) beside the same through `single`; the repair
/// rate; then the failover time (not with `--cluster-throughput-only`).
pub(crate) async fn suite(
    pki: &TestPki,
    single: &RunningNode,
    raw_client: &quinn::Connection,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = args.min();
    let cluster_pki = TestPki::new()?;
    let started = Instant::now();
    let nodes = start_cluster(&cluster_pki, 3).await?;
    let leader = wait_for_leader(&nodes, None).await?;
    let leader_index = node_index(&nodes, leader)?;
    let three = connect(&cluster_pki, "civil-affairs", nodes[leader_index].addr).await?;
    let mut rows = Vec::new();
    let follower = (0..nodes.len())
        .find(|&i| i != leader_index)
        .context("no follower")?;
    if !args.cluster_throughput_only {
        rows.extend(repair_rows(&nodes, follower, &three, raw_client, min, started).await?);
    }
    let single_addrs = [single.addr];
    let cluster_addrs: Vec<SocketAddr> = if args.cluster_leader_only {
        vec![nodes[leader_index].addr]
    } else {
        nodes.iter().map(|n| n.addr).collect()
    };
    for size_text in &args.cluster_sizes {
        let size = parse_size(size_text)?;
        let base = throughput_rows(pki, &single_addrs, "1-node", size, min).await?;
        let mut clustered =
            throughput_rows(&cluster_pki, &cluster_addrs, "3-node", size, min).await?;
        clustered[0].ceiling = Some(("1-node put (concurrent)", 0.0));
        clustered[1].ceiling = Some(("1-node grant-checked get (concurrent)", 0.0));
        rows.extend(base);
        rows.extend(clustered);
    }
    if !args.cluster_throughput_only {
        rows.push(failover_row(&cluster_pki, &nodes, leader, leader_index).await?);
    }
    for node in &nodes {
        node.close();
    }
    Ok(rows)
}

/// Failover: a client already connected to a surviving node; stop the
/// leader (close its endpoint, shut its Raft down), then put until one
/// succeeds. The row's latency is that time.
async fn failover_row(
    pki: &TestPki,
    nodes: &[RunningNode],
    leader: u64,
    leader_index: usize,
) -> anyhow::Result<Row> {
    let survivor = (0..nodes.len())
        .find(|&i| i != leader_index)
        .context("no survivor")?;
    let client = connect(pki, "civil-affairs", nodes[survivor].addr).await?;
    let resident = ResidentId::parse("resident-1")?;
    let kind = DocumentKind::parse("bench")?;
    let stopped = &nodes[leader_index];
    let start = Instant::now();
    stopped.close();
    stopped
        .cluster()
        .context("not in cluster mode")?
        .shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut attempt = 0u64;
    let elapsed = loop {
        attempt += 1;
        let bytes = Arc::new(pseudo_random_bytes(4096, 9_000_000 + attempt));
        match client.put_bytes(bytes, &resident, &kind).await {
            Ok(_) => break start.elapsed(),
            Err(e) => anyhow::ensure!(
                start.elapsed() < FAILOVER_WAIT,
                "no put through a survivor after the leader stopped: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let new_leader = wait_for_leader(nodes, Some(leader_index)).await?;
    let workload = format!(
        "failover time: {} ms (node-{leader} -> node-{new_leader})",
        elapsed.as_millis()
    );
    let mut row = Row::new(workload, 0, 1, elapsed);
    row.latency = Some((elapsed, elapsed));
    Ok(row)
}

/// The repair rate: a follower loses its copies of [`REPAIR_BLOBS`] blobs
/// of [`REPAIR_BLOB_BYTES`]; one scrub fetches them back, verified, from
/// its members. Beside it, raw quinn downloads of the same size.
async fn repair_rows(
    nodes: &[RunningNode],
    follower: usize,
    client: &vault_client::VaultClient,
    raw_client: &quinn::Connection,
    min: Duration,
    started: Instant,
) -> anyhow::Result<Vec<Row>> {
    let resident = ResidentId::parse("resident-1")?;
    let kind = DocumentKind::parse("repair-bench")?;
    let mut hashes = Vec::new();
    for k in 0..REPAIR_BLOBS {
        // Distinct bytes for each blob (nothing deduplicates).
        let mut bytes = pseudo_random_bytes(REPAIR_BLOB_BYTES as usize, 7);
        bytes[..8].copy_from_slice(&k.to_le_bytes());
        let put = client.put_bytes(Arc::new(bytes), &resident, &kind).await?;
        hashes.push(put.content_hash);
    }
    let blobs = nodes[follower].vault().blobs();
    let start = Instant::now();
    while !hashes.iter().all(|h| blobs.contains(h)) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the follower never got its copies"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the background scrub that runs after start finish first, so the
    // one measured here is the only one repairing.
    let quiet = Duration::from_secs(vault_node::replication::repair::SCRUB_FIRST_DELAY_S + 3);
    tokio::time::sleep(quiet.saturating_sub(started.elapsed())).await;
    for hash in &hashes {
        blobs.remove(hash)?;
    }
    let start = Instant::now();
    let counts = nodes[follower].scrub_once().await;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        counts.repaired == REPAIR_BLOBS && counts.failed == 0,
        "the scrub repaired {counts:?}"
    );
    let ceiling = measure(
        "raw quinn download (repair ceiling)",
        REPAIR_BLOB_BYTES,
        min,
        || raw::download(raw_client, REPAIR_BLOB_BYTES),
    )
    .await?;
    let repair = Row {
        workload: format!(
            "repair: {REPAIR_BLOBS} lost copies re-fetched by one scrub ({} MiB)",
            counts.repaired_bytes >> 20
        ),
        size: REPAIR_BLOB_BYTES,
        ops: REPAIR_BLOBS,
        elapsed,
        latency: None,
        ceiling: Some(("raw quinn download (repair ceiling)", 0.0)),
    };
    Ok(vec![ceiling, repair])
}

/// Blobs lost and repaired in the repair measurement.
const REPAIR_BLOBS: u64 = 8;
/// Their size.
const REPAIR_BLOB_BYTES: u64 = 8 << 20;

/// Waits (up to 30 s) until every node but `skip` names the same leader.
async fn wait_for_leader(nodes: &[RunningNode], skip: Option<usize>) -> anyhow::Result<u64> {
    let start = Instant::now();
    loop {
        if let Some(leader) = agreed_leader(nodes, skip) {
            return Ok(leader);
        }
        anyhow::ensure!(
            start.elapsed() < CLUSTER_WAIT,
            "no agreed leader after {CLUSTER_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The index in `nodes` of the member with id `id`.
fn node_index(nodes: &[RunningNode], id: u64) -> anyhow::Result<usize> {
    nodes
        .iter()
        .position(|n| n.cluster().map(|c| c.id()) == Some(id))
        .context("leader is not a member")
}

/// `{label} put (concurrent)` (distinct bytes each time) and `{label}
/// grant-checked get (concurrent)` of `size`-byte documents by
/// [`CLUSTER_CLIENTS`] clients spread over `addrs`, each holding its own
/// grant.
async fn throughput_rows(
    pki: &TestPki,
    addrs: &[SocketAddr],
    label: &str,
    size: u64,
    min: Duration,
) -> anyhow::Result<Vec<Row>> {
    let resident = ResidentId::parse("resident-1")?;
    let kind = DocumentKind::parse(if size > 4096 { "scan" } else { "form" })?;
    let issuer = connect(pki, "civil-affairs", addrs[0]).await?;
    let doc = issuer
        .put_bytes(
            Arc::new(pseudo_random_bytes(size as usize, size)),
            &resident,
            &kind,
        )
        .await?
        .document_id;
    let (putters, getters) = throughput_clients(pki, addrs, doc).await?;
    settle_disk();
    let ticks = cpu_ticks();
    let payload = Arc::new(pseudo_random_bytes(size as usize, 77));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(size << 20));
    let (put_resident, put_kind) = (resident.clone(), DocumentKind::parse("bench")?);
    let mut put = measure_concurrent(
        &format!("{label} put (concurrent)"),
        size,
        min,
        putters,
        move |client, _| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut bytes = (*payload).clone();
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            let (resident, kind) = (put_resident.clone(), put_kind.clone());
            async move {
                client.put_bytes(Arc::new(bytes), &resident, &kind).await?;
                Ok(())
            }
        },
    )
    .await?;
    with_cpu(&mut put, ticks);
    let get = get_row(label, size, doc, getters, min).await?;
    Ok(vec![put, get])
}

/// Clients of [`throughput_rows`], [`CLUSTER_CLIENTS`] of each kind spread
/// over `addrs`: civil-affairs putters (numbered), and housing-bureau
/// getters each holding its own grant of `doc` (the most uses a grant
/// allows, approved by resident-1 through `addrs[0]`).
async fn throughput_clients(
    pki: &TestPki,
    addrs: &[SocketAddr],
    doc: pki::DocumentId,
) -> anyhow::Result<(
    Vec<(Arc<VaultClient>, u64)>,
    Vec<(Arc<VaultClient>, pki::GrantId)>,
)> {
    let approver = connect(pki, "resident-1", addrs[0]).await?;
    let story = GrantStory::new()
        .documents(vec![doc])
        .max_uses(pki::GRANT_USES_MAX);
    let mut putters = Vec::new();
    let mut getters = Vec::new();
    for i in 0..CLUSTER_CLIENTS {
        let addr = addrs[i % addrs.len()];
        putters.push((
            Arc::new(connect(pki, "civil-affairs", addr).await?),
            i as u64,
        ));
        let holder = connect(pki, "housing-bureau", addr).await?;
        let grant = story.grant(&holder, &approver).await?;
        getters.push((Arc::new(holder), grant.id()));
    }
    Ok((putters, getters))
}

/// `{label} grant-checked get (concurrent)` of `doc` by `getters`, with
/// the CPU used per get.
async fn get_row(
    label: &str,
    size: u64,
    doc: pki::DocumentId,
    getters: Vec<(Arc<VaultClient>, pki::GrantId)>,
    min: Duration,
) -> anyhow::Result<Row> {
    settle_disk();
    let ticks = cpu_ticks();
    let mut get = measure_concurrent(
        &format!("{label} grant-checked get (concurrent)"),
        size,
        min,
        getters,
        move |client, grant| async move {
            let (_, bytes) = client.get_bytes(doc, None, Some(grant)).await?;
            anyhow::ensure!(bytes.len() as u64 == size);
            Ok(())
        },
    )
    .await?;
    with_cpu(&mut get, ticks);
    Ok(get)
}

/// Writes every dirty page back (`sync`) so a workload does not pay for
/// the writeback of the one before it (the 1-node and 3-node rows run one
/// after the other on the same disk).
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// CPU time this process (clients and in-process nodes alike) has used, in
/// clock ticks (1/100 s), from /proc/self/stat; 0 where unavailable.
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Appends the CPU used per operation since `since` to the row's name
/// (`name [cpu X ms/op]`); answers the ticks now.
fn with_cpu(row: &mut Row, since: u64) -> u64 {
    let now = cpu_ticks();
    if row.ops > 0 && now > since {
        let ms = (now - since) as f64 * 10.0 / row.ops as f64;
        row.workload = format!("{} [cpu {ms:.2} ms/op]", row.workload);
    }
    now
}
