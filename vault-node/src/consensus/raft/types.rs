//! The openraft types of the vault: the type configuration (entries carry
//! [`Proposal`]s, applying one answers an [`Outcome`]), the Raft handle,
//! and the leader's answer to a forwarded proposal.

use serde::{Deserialize, Serialize};
use vault_client::wire::ErrorBody;
use vault_client::ErrorCode;

use crate::engine::state::{Applied, Proposal, StateError};
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

/// A node's openraft instance.
pub type RaftHandle = openraft::Raft<TypeConfig>;

/// The leader's answer to a forwarded proposal: what applying it answered,
/// and the index of its log entry (the follower waits to apply it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// What applying the entry answered.
    pub outcome: Outcome,
    /// The entry's Raft log index.
    pub log_index: u64,
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
    /// The outcome as the single-node [`Ledger`](crate::consensus::ledger::Ledger)
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
