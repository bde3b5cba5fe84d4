//! Membership changes asked for by an operator's tool holding a member's
//! node identity (`vault-node member add|remove`).

use pki::{PeerCert, Role};
use vault_client::wire::{MembershipChange, Response};
use vault_client::ErrorCode;

use crate::consensus::Cluster;
use crate::rules::access::require_role;
use crate::Refusal;

/// Answers a membership change: node identities of members only.
pub async fn change(
    cluster: Option<&Cluster>,
    caller: &PeerCert,
    change: MembershipChange,
) -> Result<Response, Refusal> {
    require_role(caller, Role::Node, "change the membership")?;
    let Some(cluster) = cluster else {
        return Err(Refusal::new(
            ErrorCode::ClusterMembership,
            "this node runs no cluster",
        ));
    };
    // Only a member may change who the members are: a node certificate
    // the cluster does not list (another cluster's, a removed node's)
    // could otherwise add itself or remove the voters.
    if !crate::consensus::raft::network::is_member(cluster.raft(), caller) {
        tracing::warn!(by = %caller.name, ?change, "membership change refused: not a member");
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "{} is not a member of this cluster; run the change with a member's node identity",
                caller.name
            ),
        ));
    }
    tracing::info!(by = %caller.name, ?change, "membership change requested");
    let reply = cluster.change_membership(change).await?;
    Ok(Response::Membership {
        members: reply.members,
        log_index: reply.log_index,
    })
}
