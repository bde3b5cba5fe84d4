//! `vault-node status`: one node's status and every other member's.

use std::path::Path;

use anyhow::Context;

/// How long `vault-node status` waits for each other member's status, in
/// milliseconds; a member that does not answer in time is shown
/// unreachable.
const MEMBER_STATUS_TIMEOUT_MS: u64 = 2_000;

/// Asks one of `nodes` for its status as the identity in `identity_dir`,
/// then every other member it lists for theirs (in parallel), so one
/// command shows the whole cluster: `--json` prints the answering node's
/// status with a `nodes` array holding each member's (or, for a member that
/// did not answer, its `node_id`, `addr`, `reachable: false` and `error`),
/// and `healthy` with the `problems` found. The exit status is 3 when a
/// member did not answer or a node knows no leader (see [`problems`]).
pub(crate) async fn status(
    identity_dir: &Path,
    nodes: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    let identity = pki::Identity::load(identity_dir)
        .with_context(|| format!("cannot load the identity in {}", identity_dir.display()))?;
    let list = nodes.join(",");
    let client = vault_client::VaultClient::connect_any(identity.clone(), &nodes)
        .await
        .with_context(|| format!("cannot connect to any of {list}"))?;
    let status = client
        .status()
        .await
        .with_context(|| format!("{list} refused the status request"))?;
    let members = member_statuses(&identity, &status).await;
    let problems = problems(&status, &members);
    let verdict = if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::failure::Verdict(vault_client::error::EXIT_UNAVAILABLE).into())
    };
    if json {
        let mut value = serde_json::to_value(&status)?;
        let nodes: Vec<serde_json::Value> = members
            .iter()
            .map(|(id, addr, answer)| match answer {
                Ok(member) => {
                    let mut member = serde_json::to_value(member).unwrap_or_default();
                    member["reachable"] = true.into();
                    member
                }
                Err(error) => serde_json::json!({
                    "node_id": id, "addr": addr, "reachable": false, "error": error,
                }),
            })
            .collect();
        value["nodes"] = nodes.into();
        value["policy_agrees"] = policy_agrees(&members).into();
        value["healthy"] = problems.is_empty().into();
        value["problems"] = problems.clone().into();
        println!("{value}");
        return verdict;
    }
    print_status(&status);
    if !policy_agrees(&members) {
        println!(
            "WARNING         the members run different R/W policies (replicas, write_quorum): \
             make every [cluster] table the same"
        );
    }
    if status.cluster {
        println!();
        println!(
            "{:<4} {:<24} {:>8} {:>9} {:>10} {:>12} {:>13}",
            "id", "addr", "leader", "applied", "log size", "blobs local", "blobs placed"
        );
        for (id, addr, answer) in &members {
            match answer {
                Ok(m) => println!(
                    "{id:<4} {addr:<24} {:>8} {:>9} {:>10} {:>12} {:>13}",
                    m.leader.map_or_else(|| "-".to_string(), |l| l.to_string()),
                    m.applied_index,
                    m.log_size,
                    m.blobs_local,
                    m.blobs_placed
                        .map_or_else(|| "-".to_string(), |p| p.to_string()),
                ),
                Err(error) => println!("{id:<4} {addr:<24} unreachable: {error}"),
            }
        }
    }
    for problem in &problems {
        println!("PROBLEM         {problem}");
    }
    verdict
}

/// What makes the cluster (or the single node) not healthy: a member that
/// did not answer, a node that knows no leader (not ready: it cannot
/// order a write). Empty when all is well.
fn problems(
    status: &vault_client::wire::NodeStatus,
    members: &[(u64, String, Result<vault_client::wire::NodeStatus, String>)],
) -> Vec<String> {
    let mut problems = Vec::new();
    if status.cluster && status.leader.is_none() {
        problems.push(format!("{} knows no leader: it is not ready", status.node));
    }
    for (id, addr, answer) in members {
        match answer {
            Err(error) => problems.push(format!("member {id} at {addr} is down: {error}")),
            Ok(member)
                if member.cluster && member.leader.is_none() && member.node != status.node =>
            {
                problems.push(format!(
                    "member {id} at {addr} knows no leader: it is not ready"
                ))
            }
            Ok(_) => {}
        }
    }
    problems
}

/// Every member's status: the one already asked (`status`) and, in
/// parallel, every other member listed in it.
async fn member_statuses(
    identity: &pki::Identity,
    status: &vault_client::wire::NodeStatus,
) -> Vec<(u64, String, Result<vault_client::wire::NodeStatus, String>)> {
    let mut asks = tokio::task::JoinSet::new();
    for member in &status.members {
        if Some(member.id) == status.node_id {
            continue;
        }
        let (identity, id, addr) = (identity.clone(), member.id, member.addr.clone());
        asks.spawn(async move {
            let ask = async {
                let client = vault_client::VaultClient::connect(identity, &addr).await?;
                client.status().await
            };
            let timeout = std::time::Duration::from_millis(MEMBER_STATUS_TIMEOUT_MS);
            let answer = match tokio::time::timeout(timeout, ask).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {MEMBER_STATUS_TIMEOUT_MS} ms")),
            };
            (id, addr, answer)
        });
    }
    let mut all = Vec::new();
    if let Some(id) = status.node_id {
        let addr = status
            .members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.addr.clone())
            .unwrap_or_default();
        all.push((id, addr, Ok(status.clone())));
    }
    while let Some(joined) = asks.join_next().await {
        if let Ok(answer) = joined {
            all.push(answer);
        }
    }
    all.sort_by_key(|(id, _, _)| *id);
    all
}

/// Whether every member that answered runs the same R and W (the policy
/// is per node, from its configuration file, not held in Raft).
fn policy_agrees(
    members: &[(u64, String, Result<vault_client::wire::NodeStatus, String>)],
) -> bool {
    let mut policies = members
        .iter()
        .filter_map(|(_, _, answer)| answer.as_ref().ok())
        .map(|m| (m.replicas, m.write_quorum));
    let first = policies.next();
    policies.all(|p| Some(p) == first)
}

/// Prints one node's status as text.
fn print_status(status: &vault_client::wire::NodeStatus) {
    println!("node            {}", status.node);
    match status.node_id {
        Some(id) => {
            println!("cluster         node {id}");
            let leader = status
                .leader
                .map_or_else(|| "unknown".to_string(), |l| l.to_string());
            println!("leader          {leader}");
            for member in &status.members {
                let role = if member.voter { "voter" } else { "learner" };
                println!("member          {} {} {role}", member.id, member.addr);
            }
            println!("last log index  {}", status.last_log_index.unwrap_or(0));
        }
        None => println!("cluster         no (single node)"),
    }
    println!("applied index   {}", status.applied_index);
    println!("log size        {}", status.log_size);
    println!("blobs (local)   {}", status.blobs_local);
    println!("documents       {}", status.documents);
    if let Some(placed) = status.blobs_placed {
        println!("blobs (placed)  {placed}");
    }
    if let Some(r) = &status.repair {
        println!(
            "repair          {} scrubs: {} checked, {} repaired, {} failed, {} orphans collected; {} reads repaired",
            r.scrubs, r.checked, r.repaired, r.failed, r.orphans_collected, r.read_repaired
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(replicas: usize, write_quorum: usize) -> vault_client::wire::NodeStatus {
        vault_client::wire::NodeStatus {
            node: "node-1".into(),
            cluster: true,
            node_id: Some(1),
            leader: Some(1),
            members: Vec::new(),
            last_log_index: Some(1),
            applied_index: 1,
            log_size: 1,
            blobs_local: 0,
            documents: 0,
            blobs_placed: Some(0),
            snapshot_index: None,
            purged_index: None,
            replicas: Some(replicas),
            write_quorum: Some(write_quorum),
            repair: None,
        }
    }

    #[test]
    fn members_with_another_r_or_w_are_flagged_and_unreachable_ones_ignored() {
        let row = |id: u64, answer| (id, format!("127.0.0.1:{id}"), answer);
        let same = vec![
            row(1, Ok(member(3, 2))),
            row(2, Ok(member(3, 2))),
            row(3, Err("no answer".to_string())),
        ];
        assert!(policy_agrees(&same));
        let other_w = vec![row(1, Ok(member(3, 2))), row(2, Ok(member(3, 1)))];
        assert!(!policy_agrees(&other_w));
        let other_r = vec![row(1, Ok(member(3, 2))), row(2, Ok(member(2, 2)))];
        assert!(!policy_agrees(&other_r));
        assert!(policy_agrees(&[]));
    }

    #[test]
    fn a_member_down_or_without_a_leader_is_a_problem() {
        let row = |id: u64, answer| (id, format!("127.0.0.1:{id}"), answer);
        let me = member(3, 2);
        let all_up = vec![row(1, Ok(me.clone())), row(2, Ok(member(3, 2)))];
        assert!(problems(&me, &all_up).is_empty());
        let one_down = vec![row(1, Ok(me.clone())), row(2, Err("no answer".into()))];
        let found = problems(&me, &one_down);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("member 2"), "{found:?}");
        let mut leaderless = me.clone();
        leaderless.leader = None;
        assert_eq!(
            problems(&leaderless, &[row(1, Ok(leaderless.clone()))]).len(),
            1
        );
    }
}
