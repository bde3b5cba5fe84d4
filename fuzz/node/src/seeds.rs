//! The node targets' seeds: Raft messages of the node's own types, the
//! snapshot format, configuration files as docs/OPERATIONS.md writes them,
//! and the development registries. Written by [`write`] beside the other
//! targets' seeds (see `vault_fuzz::seeds`).

use std::error::Error;
use std::path::Path;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};
use pki::RequestId;
use serde::Serialize;
use vault_client::wire::{ErrorBody, MembershipChange, RaftRpc};
use vault_node::consensus::raft::{Forwarded, Outcome, TypeConfig};
use vault_node::engine::state::{Command, Proposal, Seed};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Writes the node targets' seeds into `fuzz_dir/corpus/<target>/`
/// (replacing the files of the same names); `now` is the time in them.
pub fn write(fuzz_dir: &Path, now: i64) -> Result<()> {
    let seeds: [(&str, Vec<Vec<u8>>); 4] = [
        ("raft_rpc", raft_messages(now)?),
        ("raft_snapshot", snapshots()?),
        ("node_config", configs()?),
        ("registry", registries()?),
    ];
    for (target, inputs) in seeds {
        let dir = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), input)?;
        }
    }
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn raft_messages(now: i64) -> Result<Vec<Vec<u8>>> {
    let vote = Vote::new_committed(2, 1);
    let log_id = |index| LogId::new(CommittedLeaderId::new(2, 1), index);
    let proposal = Proposal {
        command: Command::DenyRequest {
            request_id: RequestId::from_bytes([3; 16]),
            at: now,
        },
        seed: Seed {
            at: now,
            nonce: [1; 32],
            salt: [2; 32],
            salt_proofs: Vec::new(),
        },
    };
    let entries: Vec<Entry<TypeConfig>> = vec![
        Entry {
            log_id: log_id(5),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(6),
            payload: EntryPayload::Normal(proposal.clone()),
        },
    ];
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(log_id(4)),
        entries,
        leader_commit: Some(log_id(4)),
    };
    let snapshot = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(6)),
            last_membership: Default::default(),
            snapshot_id: "2-1-6-1".into(),
        },
        offset: 0,
        data: b"\x00\x00\x00\x02{}".to_vec(),
        done: true,
    };
    let vote_request = VoteRequest::new(vote, Some(log_id(6)));
    let rpcs = [
        RaftRpc::AppendEntries(serde_json::to_value(&append)?),
        RaftRpc::Vote(serde_json::to_value(&vote_request)?),
        RaftRpc::InstallSnapshot(serde_json::to_value(&snapshot)?),
        RaftRpc::Propose(serde_json::to_value(&proposal)?),
        RaftRpc::ReadIndex,
        RaftRpc::ChangeMembership(MembershipChange::Remove { id: 3 }),
    ];
    let mut out: Vec<Vec<u8>> = rpcs.iter().map(json).collect::<Result<_>>()?;
    let forwarded: std::result::Result<Forwarded, ErrorBody> = Ok(Forwarded {
        outcome: Outcome::Internal,
        log_index: 6,
    });
    let replies = [
        serde_json::json!({"Ok": "Success"}),
        serde_json::json!({"Ok": {"vote": vote, "vote_granted": true, "last_log_id": log_id(6)}}),
        serde_json::to_value(forwarded)?,
        serde_json::json!({"Ok": 6}),
        serde_json::json!({"Err": {"code": "cluster.unavailable", "message": "no leader"}}),
    ];
    for reply in replies {
        out.push(serde_json::to_vec(&reply)?);
    }
    Ok(out)
}

/// Snapshots in the format followers decode: metadata, then records.
fn snapshots() -> Result<Vec<Vec<u8>>> {
    let meta: SnapshotMeta<u64, openraft::BasicNode> = SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 6)),
        last_membership: Default::default(),
        snapshot_id: "2-1-6-1".into(),
    };
    let header = serde_json::to_vec(&meta)?;
    let mut out = (header.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&header);
    let empty = out.clone();
    for (cf, key, value) in [
        ("documents", &b"\x01\x02"[..], &b"{}"[..]),
        ("meta", b"applied_index", b"6"),
    ] {
        out.push(cf.len() as u8);
        out.extend_from_slice(cf.as_bytes());
        for part in [key, value] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(vec![empty, out])
}

fn configs() -> Result<Vec<Vec<u8>>> {
    let (witness, _) = pki::WitnessSigner::generate("witness.fuzz.example/w1")?;
    let vkey = witness.verifier().vkey();
    let full = format!(
        r#"identity = "identity"
log_key = "log.key.pem"
data = "/var/lib/vault"
listen = "0.0.0.0:7443"
crl = "crl.pem"
purposes = "purposes.json"
issuers = "issuers.json"

[[witnesses]]
url = "http://10.0.0.9:7380"
vkey = "{vkey}"

[limits]
uploads_per_caller = 16
uploads_total = 64
idle_s = 10

[cluster]
node_id = 1
bootstrap = true
replicas = 3
write_quorum = 2
members = [
  {{ id = 1, addr = "vault-a.district.example:7443" }},
  {{ id = 2, addr = "vault-b.district.example:7443" }},
  {{ id = 3, addr = "vault-c.district.example:7443" }},
]
"#
    );
    let minimal = "identity = \"id\"\ndata = \"data\"\n".to_string();
    let flag = format!("http://127.0.0.1:7380={vkey}");
    Ok([full, minimal, flag]
        .into_iter()
        .map(String::into_bytes)
        .collect())
}

fn registries() -> Result<Vec<Vec<u8>>> {
    let purposes =
        serde_json::to_vec_pretty(&vault_node::rules::grants::PurposeRegistry::development())?;
    let issuers =
        serde_json::to_vec_pretty(&vault_node::rules::issuers::IssuerRegistry::development())?;
    let both = [purposes.clone(), vec![0], issuers.clone()].concat();
    let old = br#"[{"department":"civil-affairs","kinds":["deed","*"]}]"#.to_vec();
    Ok(vec![
        both,
        [purposes, vec![0], old].concat(),
        [b"[]".to_vec(), vec![0], issuers].concat(),
    ])
}
