//! The node's status ([`Request::Status`](vault_client::wire::Request::Status)),
//! for operators (node identities) and auditors: cluster membership, Raft
//! and state machine progress, and what the node holds.

use std::path::Path;
use std::sync::Arc;

use pki::{PeerCert, Role};
use vault_client::wire::{NodeStatus, Response, StatusMember};
use vault_client::ErrorCode;

use crate::consensus::raft::Cluster;
use crate::engine::meta::{Cf, MetaStore};
use crate::engine::state::StateError;
use crate::replication::Replication;
use crate::rules::placement::ClusterPolicy;
use crate::storage::vault::Vault;
use crate::Refusal;

/// Entries read per scan when counting documents.
const COUNT_BATCH: usize = 10_000;

/// Answers a status request from a node or an auditor.
pub async fn handle(
    node: &str,
    vault: &Arc<Vault>,
    replication: Option<&Arc<Replication>>,
    caller: &PeerCert,
) -> Result<Response, Refusal> {
    require_node_or_auditor(caller)?;
    let cluster = match replication.map(|r| &r.cluster) {
        Some(cluster) => Some(cluster_view(cluster).await?),
        None => None,
    };
    let local = count_local(vault).await?;
    let view = cluster.as_ref();
    Ok(Response::Status {
        status: NodeStatus {
            node: node.to_string(),
            cluster: view.is_some(),
            node_id: view.map(|c| c.node_id),
            leader: view.and_then(|c| c.leader),
            members: view.map(|c| c.members.clone()).unwrap_or_default(),
            last_log_index: view.map(|c| c.last_log_index),
            applied_index: local.applied_index,
            log_size: local.log_size,
            blobs_local: local.blobs_local,
            documents: local.documents,
            blobs_placed: view.map(|c| c.blobs_placed),
            snapshot_index: view.and_then(|c| c.snapshot_index),
            purged_index: view.and_then(|c| c.purged_index),
            replicas: view.map(|c| c.policy.replicas),
            write_quorum: view.map(|c| c.policy.write_quorum),
            repair: replication.map(|r| r.totals()),
        },
    })
}

/// Refuses every caller but nodes and auditors.
fn require_node_or_auditor(caller: &PeerCert) -> Result<(), Refusal> {
    if matches!(caller.role, Role::Node | Role::Auditor) {
        return Ok(());
    }
    Err(Refusal::new(
        ErrorCode::Forbidden,
        format!(
            "only nodes and auditors read a node's status; {} holds a {} certificate",
            caller.name,
            caller.role.as_str()
        ),
    ))
}

/// What a cluster node adds to its status.
struct ClusterView {
    node_id: u64,
    leader: Option<u64>,
    members: Vec<StatusMember>,
    last_log_index: u64,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    policy: ClusterPolicy,
    blobs_placed: u64,
}

/// Raft progress, the blobs placed here and the membership (read in that
/// order, as the status always has).
async fn cluster_view(cluster: &Arc<Cluster>) -> Result<ClusterView, Refusal> {
    let (snapshot_index, purged_index) = {
        let metrics = cluster.raft().metrics().borrow().clone();
        (
            metrics.snapshot.map(|id| id.index),
            metrics.purged.map(|id| id.index),
        )
    };
    let policy = *cluster.policy();
    let blobs_placed = count_placed(cluster).await?;
    let metrics = cluster.raft().metrics().borrow().clone();
    Ok(ClusterView {
        node_id: cluster.id(),
        leader: metrics.current_leader,
        members: crate::consensus::raft::members_of(metrics.membership_config.membership()),
        last_log_index: metrics.last_log_index.unwrap_or(0),
        snapshot_index,
        purged_index,
        policy,
        blobs_placed,
    })
}

/// What every node counts locally.
struct LocalCounts {
    applied_index: u64,
    log_size: u64,
    documents: u64,
    blobs_local: u64,
}

/// Counts the applied index, log size, documents and blob files, on a
/// blocking thread.
async fn count_local(vault: &Arc<Vault>) -> Result<LocalCounts, Refusal> {
    let vault = vault.clone();
    tokio::task::spawn_blocking(move || -> Result<_, Refusal> {
        let store = vault.store();
        Ok(LocalCounts {
            applied_index: crate::engine::state::applied_index(store)?,
            log_size: crate::engine::log::size(store).map_err(StateError::from)?,
            documents: count(store, Cf::Documents).map_err(StateError::from)?,
            blobs_local: count_files(&vault.data_dir().join("blobs")),
        })
    })
    .await
    .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
}

/// How many of the blobs the state machine knows are placed on this node.
async fn count_placed(cluster: &Arc<Cluster>) -> Result<u64, Refusal> {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || -> Result<u64, Refusal> {
        let store = cluster.store();
        let voters = cluster.voters();
        let replicas = cluster.policy().replicas;
        let mut placed = 0u64;
        let mut start = Vec::new();
        loop {
            let entries = store
                .scan_from(Cf::Blobs, &start, COUNT_BATCH)
                .map_err(StateError::from)?;
            for (key, _) in &entries {
                let Ok(bytes) = <[u8; 32]>::try_from(key.as_slice()) else {
                    continue;
                };
                let hash = pki::ContentHash(bytes);
                let chosen =
                    crate::rules::placement::replicas(&hash, voters.iter().copied(), replicas);
                if chosen.contains(&cluster.id()) {
                    placed += 1;
                }
            }
            match entries.last() {
                Some((key, _)) if entries.len() == COUNT_BATCH => {
                    start = key.clone();
                    start.push(0);
                }
                _ => return Ok(placed),
            }
        }
    })
    .await
    .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
}

/// How many entries `cf` holds.
fn count(store: &dyn MetaStore, cf: Cf) -> Result<u64, crate::engine::meta::StoreError> {
    let mut total = 0u64;
    let mut start = Vec::new();
    loop {
        let entries = store.scan_from(cf, &start, COUNT_BATCH)?;
        total += entries.len() as u64;
        match entries.last() {
            Some((key, _)) if entries.len() == COUNT_BATCH => {
                start = key.clone();
                start.push(0);
            }
            _ => return Ok(total),
        }
    }
}

/// How many files lie under `dir` (one level of fan-out directories).
fn count_files(dir: &Path) -> u64 {
    let Ok(fans) = std::fs::read_dir(dir) else {
        return 0;
    };
    fans.flatten()
        .filter(|fan| fan.path().is_dir())
        .filter_map(|fan| std::fs::read_dir(fan.path()).ok())
        .map(|files| files.flatten().filter(|f| f.path().is_file()).count() as u64)
        .sum()
}
