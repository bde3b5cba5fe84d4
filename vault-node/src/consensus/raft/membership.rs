//! Membership changes on the leader: add a node as a learner, then as a
//! voter once it has caught up; remove a voter (never the last).

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use vault_client::wire::{MembershipChange, StatusMember};
use vault_client::ErrorCode;

use super::types::RaftHandle;
use crate::Refusal;

/// The membership once a change is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipReply {
    /// Every member after the change.
    pub members: Vec<StatusMember>,
    /// The Raft log index that committed the change.
    pub log_index: u64,
}

/// Why a membership change did not happen.
pub(crate) enum MembershipError {
    /// This node does not lead (any more): ask the leader.
    NotLeader,
    /// Refused or failed; the membership is unchanged or the outcome is in
    /// the message.
    Refused(Refusal),
}

/// How long a new learner has to answer the leader before it is removed
/// again instead of becoming a voter, in seconds.
pub const LEARNER_ANSWER_S_MAX: u64 = 30;

/// Whether learner `id` has acknowledged the leader's log (its matched log
/// id is known) within [`LEARNER_ANSWER_S_MAX`].
async fn answered(raft: &RaftHandle, id: u64) -> bool {
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(LEARNER_ANSWER_S_MAX);
    loop {
        let matched = raft
            .metrics()
            .borrow()
            .replication
            .as_ref()
            .and_then(|replication| replication.get(&id).cloned())
            .flatten();
        if matched.is_some() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The members of `membership`, voters flagged.
pub fn members_of(membership: &openraft::Membership<u64, BasicNode>) -> Vec<StatusMember> {
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| StatusMember {
            id: *id,
            addr: node.addr.clone(),
            voter: voters.contains(id),
        })
        .collect()
}

/// Applies `change` on `raft`, which must lead.
pub(crate) async fn change_membership(
    raft: &RaftHandle,
    change: MembershipChange,
) -> Result<MembershipReply, MembershipError> {
    let refused = |message: String| {
        MembershipError::Refused(Refusal::new(ErrorCode::ClusterMembership, message))
    };
    let classify = |e: RaftError<u64, ClientWriteError<u64, BasicNode>>| match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MembershipError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => refused(e.to_string()),
        other => MembershipError::Refused(Refusal::new(
            ErrorCode::ClusterUnavailable,
            format!("the membership change failed: {other}"),
        )),
    };
    let voters: std::collections::BTreeSet<u64> = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let response = match change {
        MembershipChange::Add { id, addr } => {
            if voters.contains(&id) {
                return Err(refused(format!("node {id} is a voter already")));
            }
            if !addr.contains(':') {
                return Err(refused(format!("{addr}: expected HOST:PORT")));
            }
            tracing::info!(node = id, %addr, "adding a learner");
            raft.add_learner(id, BasicNode { addr: addr.clone() }, true)
                .await
                .map_err(classify)?;
            // openraft returns at once on a short log whether or not the
            // learner exists: become a voter only once it has answered.
            if !answered(raft, id).await {
                let _ = raft
                    .change_membership(openraft::ChangeMembers::RemoveNodes([id].into()), false)
                    .await;
                return Err(refused(format!(
                    "node {id} at {addr} did not answer within {LEARNER_ANSWER_S_MAX} s, so it \
                     was not made a voter (and is no longer a learner); start it, check its \
                     certificate and address, and add it again"
                )));
            }
            tracing::info!(node = id, "the learner caught up; making it a voter");
            raft.change_membership(openraft::ChangeMembers::AddVoterIds([id].into()), false)
                .await
                .map_err(classify)?
        }
        MembershipChange::Remove { id } => {
            if !voters.contains(&id) {
                return Err(refused(format!("node {id} is not a voter")));
            }
            if voters.len() == 1 {
                return Err(refused(format!("node {id} is the last voter")));
            }
            tracing::info!(node = id, "removing a voter");
            raft.change_membership(openraft::ChangeMembers::RemoveVoters([id].into()), false)
                .await
                .map_err(classify)?
        }
    };
    let members = match &response.membership {
        Some(membership) => members_of(membership),
        None => members_of(raft.metrics().borrow().membership_config.membership()),
    };
    Ok(MembershipReply {
        members,
        log_index: response.log_id.index,
    })
}
