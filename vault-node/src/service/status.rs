//! The node's status ([`Request::Status`](vault_client::wire::Request::Status)),
//! for operators (node identities) and auditors: cluster membership, Raft
//! and state machine progress, and what the node holds.

use std::path::Path;
use std::sync::Arc;

use pki::{PeerCert, Role};
use vault_client::wire::{NodeStatus, Response};
use vault_client::ErrorCode;

use crate::engine::meta::{Cf, MetaStore};
use crate::engine::state::StateError;
use crate::replication::Replication;
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
    if !matches!(caller.role, Role::Node | Role::Auditor) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "only nodes and auditors read a node's status; {} holds a {} certificate",
                caller.name,
                caller.role.as_str()
            ),
        ));
    }
    let cluster = replication.map(|r| &r.cluster);
    let raft_progress = cluster.map(|cluster| {
        let metrics = cluster.raft().metrics().borrow().clone();
        (
            metrics.snapshot.map(|id| id.index),
            metrics.purged.map(|id| id.index),
            *cluster.policy(),
        )
    });
    let placed = match cluster {
        Some(cluster) => Some(count_placed(cluster).await?),
        None => None,
    };
    let (node_id, leader, members, last_log_index) = match cluster {
        Some(cluster) => {
            let metrics = cluster.raft().metrics().borrow().clone();
            let members =
                crate::consensus::raft::members_of(metrics.membership_config.membership());
            (
                Some(cluster.id()),
                metrics.current_leader,
                members,
                Some(metrics.last_log_index.unwrap_or(0)),
            )
        }
        None => (None, None, Vec::new(), None),
    };
    let vault = vault.clone();
    let counted = tokio::task::spawn_blocking(move || -> Result<_, Refusal> {
        let store = vault.store();
        let applied_index = crate::engine::state::applied_index(store)?;
        let log_size = crate::engine::log::size(store).map_err(StateError::from)?;
        let documents = count(store, Cf::Documents).map_err(StateError::from)?;
        let blobs_local = count_files(&vault.data_dir().join("blobs"));
        Ok((applied_index, log_size, documents, blobs_local))
    })
    .await
    .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))??;
    let (applied_index, log_size, documents, blobs_local) = counted;
    Ok(Response::Status {
        status: NodeStatus {
            node: node.to_string(),
            cluster: cluster.is_some(),
            node_id,
            leader,
            members,
            last_log_index,
            applied_index,
            log_size,
            blobs_local,
            documents,
            blobs_placed: placed,
            snapshot_index: raft_progress.and_then(|p| p.0),
            purged_index: raft_progress.and_then(|p| p.1),
            replicas: raft_progress.map(|p| p.2.replicas),
            write_quorum: raft_progress.map(|p| p.2.write_quorum),
            repair: replication.map(|r| r.totals()),
        },
    })
}

/// How many of the blobs the state machine knows are placed on this node.
async fn count_placed(cluster: &Arc<crate::consensus::raft::Cluster>) -> Result<u64, Refusal> {
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
