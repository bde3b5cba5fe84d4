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
//! Not here yet: the network, the cluster, the server wiring.
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

mod store;

pub use store::{LogStore, StateMachine};

use serde::{Deserialize, Serialize};
use vault_client::wire::ErrorBody;
use vault_client::ErrorCode;

use crate::state::{Applied, Proposal, StateError};
use crate::Refusal;

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
