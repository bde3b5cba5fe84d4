//! The Raft cluster: openraft over the node's own RocksDB and QUIC.
//!
//! [`LogStore`] keeps the Raft log ([`Cf::RaftLog`](crate::engine::meta::Cf::RaftLog))
//! and the vote, committed and purged pointers
//! ([`Cf::RaftMeta`](crate::engine::meta::Cf::RaftMeta)). [`StateMachine`] applies
//! each committed [`Proposal`] with [`crate::engine::apply::apply`], the same pure
//! function the single-node [`Ledger`](crate::consensus::ledger::Ledger) uses, with the
//! Raft log index as the command index, and writes its writes together
//! with the last applied log id and membership in one batch (unsynced: the
//! entry is already durable in the Raft log; see [`StateMachine`]).
//!
//! [`Network`] carries openraft's RPCs between nodes over QUIC (see
//! [`network`]); a node answers them once its Raft instance is attached
//! with [`RunningNode::attach_raft`](crate::node::RunningNode::attach_raft).
//! [`types`] holds openraft's type configuration, [`membership`] the
//! leader's side of membership changes. [`Cluster`] ties the pieces
//! together.
//!
//! **Where the Raft state lives:** a [`Cluster`] opens its own RocksDB in
//! the directory it is given, by convention `<data_dir>/raft/` beside the
//! single-node `<data_dir>/db/`; its replicated column families and the two
//! Raft ones are separate from the single-node vault's.
//!
//! A node started with a [`ClusterConfig`](crate::node::config::ClusterConfig)
//! orders every metadata write through [`Cluster::propose`] (a follower
//! forwards it to the leader), serves reads from the cluster's state
//! machine store, and confirms authorization reads with
//! [`Cluster::linearize`]. Blob copies are [`crate::replication`]'s.
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

pub mod membership;
pub mod network;
mod store;
pub mod types;

use membership::{change_membership, MembershipError};
pub use membership::{members_of, MembershipReply};
pub use network::Network;
pub use store::{decode_snapshot, LogStore, Records, StateMachine};
pub use types::{Forwarded, Outcome, RaftHandle, TypeConfig};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use vault_client::wire::{ErrorBody, MembershipChange, RaftRpc};
use vault_client::ErrorCode;

use crate::engine::state::Proposal;
use crate::rules::placement::ClusterPolicy;
use crate::storage::store::RocksStore;
use crate::Refusal;

pub(crate) use network::serve_rpc;

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

/// The openraft configuration of every node, with the default policy.
pub fn config() -> Result<openraft::Config, Refusal> {
    config_for(&ClusterPolicy::default())
}

/// The openraft configuration of a node running `policy`: a snapshot
/// every [`ClusterPolicy::snapshot_logs`] applied entries, and as many
/// entries kept in the log behind it for followers that lag a little.
pub fn config_for(policy: &ClusterPolicy) -> Result<openraft::Config, Refusal> {
    openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(policy.snapshot_logs),
        max_in_snapshot_log_to_keep: policy.snapshot_logs,
        purge_batch_size: (policy.snapshot_logs / 2).clamp(1, 256),
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
    /// This node is not the leader (or no longer: a deposed leader's
    /// uncommitted entry is dropped, never committed). Send it to the
    /// leader, if one is known.
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
    network: Network,
    policy: ClusterPolicy,
}

pub use crate::rules::placement::CLUSTER_DEADLINE_MS;
/// Pause between two attempts to find a leader, in milliseconds.
const LEADER_RETRY_MS: u64 = 100;
/// How long a forwarded proposal may take, in milliseconds: as long as the
/// leader itself waits for a commit (a leader that dies is noticed sooner,
/// by the election of another).
const FORWARD_TTL_MS: u64 = CLUSTER_DEADLINE_MS;
/// How long a follower waits to apply a write it forwarded before it
/// answers (read your writes), in milliseconds.
const READ_YOUR_WRITE_MS: u64 = 2_000;
/// How long one read-index query to the leader may take, in milliseconds.
/// Short, because it is safe to repeat: after a leader dies, the next
/// attempt asks the newly elected one instead of waiting out the deadline.
const READ_INDEX_TTL_MS: u64 = 1_000;

impl Cluster {
    /// Opens (creating if needed) the Raft state in `dir` (by convention
    /// `<data_dir>/raft/`) and starts node `id`'s Raft instance. A fresh
    /// node waits for [`Cluster::initialize`] or for a leader to add it.
    pub async fn open(id: u64, dir: &Path, network: Network) -> Result<Self, Refusal> {
        Self::open_with(id, dir, network, ClusterPolicy::default()).await
    }

    /// [`Cluster::open`] with a replication and snapshot policy.
    pub async fn open_with(
        id: u64,
        dir: &Path,
        network: Network,
        policy: ClusterPolicy,
    ) -> Result<Self, Refusal> {
        policy
            .validate()
            .map_err(|e| Refusal::new(ErrorCode::Internal, format!("cluster policy: {e}")))?;
        let storage = |e: String| Refusal::new(ErrorCode::Storage, e);
        std::fs::create_dir_all(dir).map_err(|e| storage(format!("{}: {e}", dir.display())))?;
        let store = Arc::new(RocksStore::open(dir).map_err(|e| storage(e.to_string()))?);
        let raft = openraft::Raft::new(
            id,
            Arc::new(config_for(&policy)?),
            network.clone(),
            LogStore::with_background_flush(store.clone()).map_err(|e| {
                Refusal::new(
                    ErrorCode::Internal,
                    format!("cannot start the Raft log flusher: {e}"),
                )
            })?,
            StateMachine::new(store.clone()),
        )
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("cannot start Raft: {e}")))?;
        Ok(Cluster {
            id,
            raft,
            store,
            network,
            policy,
        })
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

    /// The connections to the other members.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The other members, by id, with their addresses (from the
    /// membership this node knows).
    pub fn peers(&self) -> Vec<(u64, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    /// The replication and snapshot policy this node runs.
    pub fn policy(&self) -> &ClusterPolicy {
        &self.policy
    }

    /// The voters of the membership this node knows (what blobs are
    /// placed over).
    pub fn voters(&self) -> Vec<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().voter_ids().collect()
    }

    /// The address of member `id`, if the membership this node knows has it.
    pub fn addr_of(&self, id: u64) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.addr.clone())
    }

    /// The nodes that hold `hash` (R of the voters, by rendezvous hashing).
    pub fn placement(&self, hash: &pki::ContentHash) -> Vec<u64> {
        crate::rules::placement::replicas(hash, self.voters(), self.policy.replicas)
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
    ///
    /// A leader cut off from its majority does not step down by itself, so
    /// the wait is bounded by [`CLUSTER_DEADLINE_MS`]: after that the
    /// answer is [`ErrorCode::ClusterUnavailable`] (the entry may still be
    /// committed later, or dropped when the leader learns it was deposed).
    pub async fn write(&self, proposal: Proposal) -> Result<Outcome, WriteError> {
        let deadline = Duration::from_millis(CLUSTER_DEADLINE_MS);
        let Ok(written) = tokio::time::timeout(deadline, self.raft.client_write(proposal)).await
        else {
            return Err(WriteError::Failed(unavailable(format!(
                "the leader could not commit the write within {CLUSTER_DEADLINE_MS} ms (cut off \
                 from its majority?); it may or may not be committed: check before retrying"
            ))));
        };
        match written {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(WriteError::ForwardToLeader {
                    leader_id: forward.leader_id,
                    leader_addr: forward.leader_node.map(|node| node.addr),
                })
            }
            // This node's Raft cannot take writes (stopped, fatal storage
            // error): another node may, so the client should fail over.
            Err(e) => Err(WriteError::Failed(unavailable(format!(
                "this node's Raft cannot take the write ({e}); try another node"
            )))),
        }
    }

    /// Orders `proposal` through the cluster: applies it here when this
    /// node leads, else forwards it to the leader over the node-to-node
    /// QUIC connection and answers the leader's outcome. While no leader is
    /// known (an election), retries for up to [`CLUSTER_DEADLINE_MS`].
    ///
    /// A forward whose exchange failed after it was sent (the leader died
    /// or was deposed) is sent again, to whichever node leads by then: the
    /// state machine answers a proposal it has already applied (the same
    /// seed) with its first outcome instead of applying it twice
    /// ([`store::PROPOSAL_OUTCOME_WINDOW`]), so a grant use is counted once
    /// whichever copy commits.
    pub async fn propose(&self, proposal: Proposal) -> Result<Outcome, Refusal> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(CLUSTER_DEADLINE_MS);
        let mut lost: Option<String> = None;
        loop {
            let forward = match self.write(proposal.clone()).await {
                Ok(outcome) => return Ok(outcome),
                Err(WriteError::Failed(refusal)) => return Err(refusal),
                Err(WriteError::ForwardToLeader {
                    leader_id,
                    leader_addr,
                }) => leader_id.zip(leader_addr),
            };
            if let Some((leader, addr)) = forward.filter(|(leader, _)| *leader != self.id) {
                let body = serde_json::to_value(&proposal)
                    .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
                let rpc = RaftRpc::Propose(body);
                // Wait for the leader's answer, or until this node learns of
                // another leader (the one asked died or was deposed): then
                // the proposal is sent again to the new one.
                let answer = tokio::select! {
                    answer = self.network.forward(leader, &addr, rpc, forward_ttl()) => Some(answer),
                    () = self.leader_changes_from(leader) => None,
                };
                match answer {
                    None => {
                        tracing::info!(leader, "the leader changed while a forwarded write was in flight; sending it again");
                        lost = Some(format!(
                            "leader node {leader} was replaced while the write was in flight"
                        ));
                    }
                    Some(Ok(reply)) => match decode_reply::<Forwarded>(leader, reply) {
                        Ok(forwarded) => return Ok(self.read_your_write(forwarded).await),
                        // The leader could not order it (deposed, cut off):
                        // as safe to send again as a lost answer.
                        Err(refusal) if refusal.code == ErrorCode::ClusterUnavailable => {
                            lost = Some(format!("leader node {leader}: {}", refusal.message));
                        }
                        Err(refusal) => return Err(refusal),
                    },
                    Some(Err(network::ForwardError::NotSent(_))) => {}
                    Some(Err(network::ForwardError::Failed(message))) => {
                        tracing::info!(leader, error = %message, "a forwarded write got no answer; sending it again");
                        lost = Some(format!("leader node {leader}: {message}"));
                    }
                    Some(Err(network::ForwardError::Refused(refusal)))
                        if refusal.code == ErrorCode::ClusterUnavailable =>
                    {
                        lost = Some(refusal.message);
                    }
                    // Refused before it was ordered (not a member, a
                    // malformed call): nothing was written.
                    Some(Err(network::ForwardError::Refused(refusal))) => return Err(refusal),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(match lost {
                    Some(lost) => format!(
                        "no leader answered the write within {CLUSTER_DEADLINE_MS} ms ({lost}); \
                         it may or may not be committed: check before retrying"
                    ),
                    None => format!(
                        "no leader accepted the write within {CLUSTER_DEADLINE_MS} ms; nothing was changed"
                    ),
                }));
            }
            tokio::time::sleep(Duration::from_millis(LEADER_RETRY_MS)).await;
        }
    }

    /// Returns once this node's current leader is no longer `leader` (none
    /// during an election, or another one); never, while it stays.
    async fn leader_changes_from(&self, leader: u64) {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_and_update().current_leader != Some(leader) {
                return;
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: the forward's own timeout decides.
                std::future::pending::<()>().await;
            }
        }
    }

    /// A forwarded write's outcome, once this node has applied the entry
    /// too (for up to [`READ_YOUR_WRITE_MS`]), so the caller's next request
    /// to this node sees what it just wrote.
    async fn read_your_write(&self, forwarded: Forwarded) -> Outcome {
        let wait = Duration::from_millis(READ_YOUR_WRITE_MS);
        let applied = self
            .raft
            .wait(Some(wait))
            .applied_index_at_least(Some(forwarded.log_index), "read your write")
            .await;
        if let Err(e) = applied {
            tracing::debug!(index = forwarded.log_index, error = %e, "a forwarded write is not applied here yet");
        }
        forwarded.outcome
    }

    /// Waits until this node's state machine reflects every write committed
    /// before the call (a linearizable read point): the leader confirms its
    /// leadership with a quorum; a follower asks the leader for that read
    /// index and waits until it has applied it. Answers
    /// [`ErrorCode::ClusterUnavailable`] when that cannot be confirmed
    /// within [`CLUSTER_DEADLINE_MS`].
    pub async fn linearize(&self) -> Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(CLUSTER_DEADLINE_MS);
        loop {
            let index = match self.leader() {
                Some(leader) if leader == self.id => match self.raft.get_read_log_id().await {
                    Ok((read, _)) => Some(read.map(|id| id.index).unwrap_or(0)),
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot confirm leadership for a read");
                        None
                    }
                },
                Some(leader) => self.read_index_of(leader).await,
                None => None,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(index) = index {
                return self
                    .raft
                    .wait(Some(left))
                    .applied_index_at_least(Some(index), "linearizable read")
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        unavailable(format!("this node did not catch up with the leader: {e}"))
                    });
            }
            if left.is_zero() {
                return Err(unavailable(format!(
                    "no leader confirmed a read point within {CLUSTER_DEADLINE_MS} ms"
                )));
            }
            tokio::time::sleep(Duration::from_millis(LEADER_RETRY_MS)).await;
        }
    }

    /// Asks `leader` for its read index; `None` when it cannot answer now.
    async fn read_index_of(&self, leader: u64) -> Option<u64> {
        let addr = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            membership.get_node(&leader)?.addr.clone()
        };
        let reply = self
            .network
            .forward(
                leader,
                &addr,
                RaftRpc::ReadIndex,
                Duration::from_millis(READ_INDEX_TTL_MS),
            )
            .await
            .map_err(|e| tracing::debug!(leader, error = %e, "no read index from the leader"))
            .ok()?;
        decode_reply::<u64>(leader, reply)
            .map_err(
                |e| tracing::debug!(leader, error = %e.message, "no read index from the leader"),
            )
            .ok()
    }

    /// Changes the membership: on the leader directly, else forwarded to
    /// it. Adding waits until the new node has caught up as a learner (from
    /// the log or a snapshot) before it becomes a voter; removing takes the
    /// node out of the voters and the membership.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<MembershipReply, Refusal> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(CLUSTER_DEADLINE_MS);
        loop {
            match self.leader() {
                Some(leader) if leader == self.id => {
                    match change_membership(&self.raft, change.clone()).await {
                        Err(MembershipError::NotLeader) => {}
                        Err(MembershipError::Refused(refusal)) => return Err(refusal),
                        Ok(reply) => return Ok(reply),
                    }
                }
                Some(leader) => {
                    if let Some(addr) = self.addr_of(leader) {
                        let rpc = RaftRpc::ChangeMembership(change.clone());
                        let ttl = Duration::from_millis(MEMBERSHIP_TTL_MS);
                        match self.network.forward(leader, &addr, rpc, ttl).await {
                            Ok(reply) => return decode_reply::<MembershipReply>(leader, reply),
                            Err(network::ForwardError::NotSent(_)) => {}
                            Err(network::ForwardError::Failed(message)) => {
                                return Err(unavailable(format!(
                                    "the change was sent to leader node {leader} but its answer \
                                     was lost ({message}); check the status before retrying"
                                )))
                            }
                            Err(network::ForwardError::Refused(refusal)) => return Err(refusal),
                        }
                    }
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "no leader took the membership change within {CLUSTER_DEADLINE_MS} ms; nothing was changed"
                )));
            }
            tokio::time::sleep(Duration::from_millis(LEADER_RETRY_MS)).await;
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

/// How long a forwarded membership change may take (a new learner may
/// have to receive a snapshot first), in milliseconds.
const MEMBERSHIP_TTL_MS: u64 = 300_000;

fn forward_ttl() -> Duration {
    Duration::from_millis(FORWARD_TTL_MS)
}

fn unavailable(message: String) -> Refusal {
    Refusal::new(ErrorCode::ClusterUnavailable, message)
}

/// Decodes a leader's `Result<T, ErrorBody>` reply to a forwarded call.
fn decode_reply<T: serde::de::DeserializeOwned>(
    leader: u64,
    reply: serde_json::Value,
) -> Result<T, Refusal> {
    let result: Result<T, ErrorBody> = serde_json::from_value(reply).map_err(|e| {
        Refusal::new(
            ErrorCode::Protocol,
            format!("node {leader} sent a malformed reply: {e}"),
        )
    })?;
    result.map_err(|body| match ErrorCode::parse(&body.code) {
        Some(code) => Refusal::new(code, body.message),
        None => Refusal::new(
            ErrorCode::Internal,
            format!("{}: {}", body.code, body.message),
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::state::{Applied, StateError};

    #[test]
    fn raft_outcomes_round_trip_through_json() {
        let outcomes = [
            Outcome::Internal,
            Outcome::Applied(Applied::GrantUsed {
                use_number: 3,
                log_index: None,
            }),
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
