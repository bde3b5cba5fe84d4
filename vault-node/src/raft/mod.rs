//! Replication, first slice: openraft's storage on the node's own RocksDB.
//!
//! [`LogStore`] keeps the Raft log ([`Cf::RaftLog`](crate::store::Cf::RaftLog))
//! and the vote, committed and purged pointers
//! ([`Cf::RaftMeta`](crate::store::Cf::RaftMeta)). [`StateMachine`] applies
//! each committed [`Proposal`] with [`crate::state::apply`], the same pure
//! function the single-node [`Ledger`](crate::ledger::Ledger) uses, with the
//! Raft log index as the command index, and commits its writes together
//! with the last applied log id and membership in one synced batch.
//!
//! [`Network`] carries openraft's RPCs between nodes over QUIC (see
//! [`network`]); a node answers them once its Raft instance is attached
//! with [`RunningNode::attach_raft`](crate::server::RunningNode::attach_raft).
//! [`Cluster`] ties the pieces together.
//!
//! **Where the Raft state lives:** a [`Cluster`] opens its own RocksDB in
//! the directory it is given, by convention `<data_dir>/raft/` beside the
//! single-node `<data_dir>/db/`; its replicated column families and the two
//! Raft ones are separate from the single-node vault's.
//!
//! Not here yet: documents and grants are still served by the single-node
//! [`Ledger`](crate::ledger::Ledger); client writes through the leader,
//! linearizable reads and blob replication come next.
//!
//! **Invariant:** the replicated state (every column family except the two
//! Raft ones) is a pure function of the committed Raft log; a command the
//! rules refuse is refused identically on every node and still advances the
//! last applied log id.
//!
//! **Limitation:** a snapshot is the whole replicated state serialized into
//! one in-memory buffer and kept as one value in `raft_meta`; fine for the
//! metadata sizes of a district, not for millions of documents (stream
//! RocksDB checkpoints then).

pub mod network;
mod store;

pub use network::Network;
pub use store::{LogStore, StateMachine};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use vault_client::wire::ErrorBody;
use vault_client::ErrorCode;

use crate::state::{Applied, Proposal, StateError};
use crate::store::RocksStore;
use crate::Refusal;

pub(crate) use network::serve_rpc;

openraft::declare_raft_types!(
    /// The openraft type configuration of the vault: log entries carry
    /// [`Proposal`]s (a command and its seed), applying one answers an
    /// [`Outcome`]; nodes are `u64` ids with an address.
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node's openraft instance.
pub type RaftHandle = openraft::Raft<TypeConfig>;

/// Interval between the leader's heartbeats, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u64 = 250;
/// Shortest election timeout, in milliseconds.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1_000;
/// Longest election timeout, in milliseconds.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2_000;
/// Most entries in one append-entries RPC; with the entries' sizes this
/// keeps a batch well under [`RAFT_FRAME_LEN_MAX`](vault_client::wire::RAFT_FRAME_LEN_MAX).
pub const APPEND_ENTRIES_MAX: u64 = 64;
/// Snapshot chunk size, in bytes (JSON encodes a byte as up to 4).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;

/// The openraft configuration of every node.
pub fn config() -> Result<openraft::Config, Refusal> {
    openraft::Config {
        cluster_name: "vault".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        max_payload_entries: APPEND_ENTRIES_MAX,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Refusal::new(ErrorCode::Internal, format!("Raft configuration: {e}")))
}

/// Why [`Cluster::write`] did not apply a proposal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; the proposal was not appended. Send it
    /// to the leader, if one is known.
    #[error("not the leader; the leader is {leader_id:?} at {leader_addr:?}")]
    ForwardToLeader {
        /// The leader's node id, if known.
        leader_id: Option<u64>,
        /// The leader's address, if known.
        leader_addr: Option<String>,
    },
    /// Raft failed (the node is shutting down or its storage failed); the
    /// proposal may or may not have been committed.
    #[error(transparent)]
    Failed(Refusal),
}

/// One node's membership in a Raft cluster: openraft over a RocksDB of its
/// own, talking to its peers through a [`Network`].
pub struct Cluster {
    id: u64,
    raft: RaftHandle,
    store: Arc<RocksStore>,
}

impl Cluster {
    /// Opens (creating if needed) the Raft state in `dir` (by convention
    /// `<data_dir>/raft/`) and starts node `id`'s Raft instance. A fresh
    /// node waits for [`Cluster::initialize`] or for a leader to add it.
    pub async fn open(id: u64, dir: &Path, network: Network) -> Result<Self, Refusal> {
        let storage = |e: String| Refusal::new(ErrorCode::Storage, e);
        std::fs::create_dir_all(dir).map_err(|e| storage(format!("{}: {e}", dir.display())))?;
        let store = Arc::new(RocksStore::open(dir).map_err(|e| storage(e.to_string()))?);
        let raft = openraft::Raft::new(
            id,
            Arc::new(config()?),
            network,
            LogStore::new(store.clone()),
            StateMachine::new(store.clone()),
        )
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("cannot start Raft: {e}")))?;
        Ok(Cluster { id, raft, store })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The openraft instance (to attach to the server, or for metrics).
    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }

    /// The replicated state as this node has applied it (for reads; not
    /// linearizable).
    pub fn store(&self) -> &Arc<RocksStore> {
        &self.store
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Makes a new cluster of `members` (node id to `HOST:PORT`), this node
    /// among them. Call on one node only, once.
    pub async fn initialize(&self, members: BTreeMap<u64, String>) -> Result<(), Refusal> {
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        self.raft
            .initialize(nodes)
            .await
            .map_err(|e| Refusal::new(ErrorCode::Internal, format!("cannot initialize: {e}")))
    }

    /// Proposes `proposal` and waits until it is committed and applied
    /// here; answers what applying it answered. Only the leader accepts.
    pub async fn write(&self, proposal: Proposal) -> Result<Outcome, WriteError> {
        match self.raft.client_write(proposal).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(WriteError::ForwardToLeader {
                    leader_id: forward.leader_id,
                    leader_addr: forward.leader_node.map(|node| node.addr),
                })
            }
            Err(e) => Err(WriteError::Failed(Refusal::new(
                ErrorCode::Internal,
                format!("Raft write failed: {e}"),
            ))),
        }
    }

    /// Stops this node's Raft instance (the store stays open until drop).
    pub async fn shutdown(&self) -> Result<(), Refusal> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| Refusal::new(ErrorCode::Internal, format!("Raft shutdown: {e}")))
    }
}

/// What applying one Raft log entry answered the proposer. Deterministic:
/// every node computes the same outcome for the same entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A blank or membership entry: nothing for the vault.
    Internal,
    /// The command was applied.
    Applied(Applied),
    /// The command was refused by a rule; the state is unchanged.
    Refused(ErrorBody),
    /// The command contradicted the state; the state is unchanged.
    Conflict(String),
}

impl Outcome {
    /// The outcome as the single-node [`Ledger`](crate::ledger::Ledger)
    /// reports it: `None` for an internal entry.
    pub fn into_result(self) -> Result<Option<Applied>, StateError> {
        match self {
            Outcome::Internal => Ok(None),
            Outcome::Applied(applied) => Ok(Some(applied)),
            Outcome::Refused(body) => match ErrorCode::parse(&body.code) {
                Some(code) => Err(StateError::Refused(Refusal::new(code, body.message))),
                None => Err(StateError::Conflict(format!(
                    "{}: {}",
                    body.code, body.message
                ))),
            },
            Outcome::Conflict(message) => Err(StateError::Conflict(message)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn raft_outcomes_round_trip_through_json() {
        let outcomes = [
            Outcome::Internal,
            Outcome::Applied(Applied::GrantUsed { use_number: 3 }),
            Outcome::Refused(Refusal::new(ErrorCode::GrantNotFound, "no grant").body()),
            Outcome::Conflict("blob size differs".into()),
        ];
        for outcome in outcomes {
            let text = serde_json::to_string(&outcome).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), outcome);
        }
        let refused = Outcome::Refused(Refusal::new(ErrorCode::GrantNotFound, "no grant").body());
        assert_eq!(
            refused.into_result(),
            Err(StateError::Refused(Refusal::new(
                ErrorCode::GrantNotFound,
                "no grant"
            )))
        );
    }
}
