//! `vault-node member add|remove`: a membership change sent to any member.

use std::path::Path;

use anyhow::Context;

use super::cli::MemberCommand;

/// Sends a membership change to one of `nodes` as the node identity in
/// `identity_dir`.
pub(crate) async fn member(
    change: MemberCommand,
    identity_dir: &Path,
    nodes: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    use vault_client::wire::MembershipChange;
    let identity = pki::Identity::load(identity_dir)
        .with_context(|| format!("cannot load the identity in {}", identity_dir.display()))?;
    let client = vault_client::VaultClient::connect_any(identity, &nodes)
        .await
        .with_context(|| format!("cannot connect to any of {}", nodes.join(",")))?;
    let change = match change {
        MemberCommand::Add { id, addr } => MembershipChange::Add { id, addr },
        MemberCommand::Remove { id } => MembershipChange::Remove { id },
    };
    let (members, log_index) = client
        .change_membership(change)
        .await
        .context("the membership change was refused")?;
    if json {
        let value = serde_json::json!({ "members": members, "log_index": log_index });
        println!("{value}");
        return Ok(());
    }
    for m in &members {
        let role = if m.voter { "voter" } else { "learner" };
        println!("member          {} {} {role}", m.id, m.addr);
    }
    println!("committed at    {log_index}");
    Ok(())
}
