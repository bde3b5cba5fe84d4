//! What only a node parses: Raft messages and snapshots from its peers,
//! and its configuration and registry files.

use std::path::Path;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vault_client::wire::{ErrorBody, RaftRpc, Request, Response};
use vault_node::consensus::raft::{decode_snapshot, Forwarded, MembershipReply, TypeConfig};
use vault_node::engine::state::Proposal;
use vault_node::node::config;
use vault_node::rules::grants::PurposeRegistry;
use vault_node::rules::issuers::IssuerRegistry;
use vault_node::service::registry::Registry;

/// A Raft RPC's JSON (the `rpc` of a `raft` request) decoded as the
/// receiving node decodes each kind's body (append entries, vote and
/// snapshot requests of the node's `TypeConfig`, a forwarded proposal),
/// and the input as a reply a sending node decodes (each RPC's result);
/// every value decoded re-encodes to JSON that decodes to the same JSON.
pub fn raft_rpc(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(rpc) = serde_json::from_value::<RaftRpc>(value.clone()) {
        match rpc.clone() {
            RaftRpc::AppendEntries(body) => stable::<AppendEntriesRequest<TypeConfig>>(body),
            RaftRpc::Vote(body) => stable::<VoteRequest<u64>>(body),
            RaftRpc::InstallSnapshot(body) => stable::<InstallSnapshotRequest<TypeConfig>>(body),
            RaftRpc::Propose(body) => stable::<Proposal>(body),
            RaftRpc::ReadIndex | RaftRpc::ChangeMembership(_) => {}
        }
        let request = Request::Raft { rpc };
        vault_fuzz::json_round_trip(&request);
    }
    type Append = Result<AppendEntriesResponse<u64>, RaftError<u64>>;
    type Vote = Result<VoteResponse<u64>, RaftError<u64>>;
    type Snapshot = Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>;
    stable::<Append>(value.clone());
    stable::<Vote>(value.clone());
    stable::<Snapshot>(value.clone());
    stable::<Result<Forwarded, ErrorBody>>(value.clone());
    stable::<Result<MembershipReply, ErrorBody>>(value.clone());
    stable::<Result<u64, ErrorBody>>(value.clone());
    let _ = serde_json::from_value::<Response>(value);
}

/// A snapshot as a follower assembles it from a leader's chunks: it
/// decodes or is refused, and a decoded one encoded again in the same
/// format decodes to the same metadata and records.
pub fn raft_snapshot(data: &[u8]) {
    let Ok((meta, records)) = decode_snapshot(data) else {
        return;
    };
    let header = serde_json::to_vec(&meta).expect("metadata serializes");
    let mut again = (header.len() as u32).to_be_bytes().to_vec();
    again.extend_from_slice(&header);
    for (cf, key, value) in &records {
        let name = cf.name().as_bytes();
        again.push(name.len() as u8);
        again.extend_from_slice(name);
        for part in [key, value] {
            again.extend_from_slice(&(part.len() as u32).to_be_bytes());
            again.extend_from_slice(part);
        }
    }
    let (meta_again, records_again) = decode_snapshot(&again).expect("re-encoded snapshot");
    assert_eq!(meta_again, meta);
    assert_eq!(records_again, records);
}

/// A node's TOML configuration file (`vault-node run --config FILE`): it
/// parses or is refused by name; a parsed one's relative paths are
/// resolved against the file's directory, its cluster (if any) lists its
/// own id, and its limits and policy pass their checks. Also the
/// `--witness URL=VKEY` flag.
pub fn node_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = config::parse_witness_flag(text);
    let Ok(parsed) = config::parse(text, Path::new("/etc/vault")) else {
        return;
    };
    for path in [&parsed.data_dir, &parsed.identity_dir] {
        assert!(path.is_absolute(), "{} is not resolved", path.display());
    }
    let optional = [
        &parsed.log_key_path,
        &parsed.crl_path,
        &parsed.purposes_path,
        &parsed.issuers_path,
    ];
    for path in optional.into_iter().flatten() {
        assert!(path.is_absolute(), "{} is not resolved", path.display());
    }
    if let Some(cluster) = &parsed.cluster {
        assert!(cluster.members.contains_key(&cluster.node_id));
        assert!(cluster.policy.validate().is_ok());
    }
    assert!(parsed.limits.validate().is_ok());
}

/// The purpose and issuer registry files (`--purposes`, `--issuers`), the
/// input split at its first NUL: each parses or is refused; a parsed
/// issuer registry written out as a file again (its departments) parses
/// to the same departments; and the registry answer built from both
/// encodes as a response frame.
pub fn registry(data: &[u8]) {
    let (purposes, issuers) = vault_fuzz::split_nul(data);
    let purposes = PurposeRegistry::parse(purposes, "purposes.json");
    let issuers = IssuerRegistry::parse(issuers, "issuers.json");
    if let Ok(issuers) = &issuers {
        let file = serde_json::to_vec(&issuers.departments()).unwrap();
        let again = IssuerRegistry::parse(&file, "issuers.json").expect("its own file");
        assert_eq!(again.departments(), issuers.departments());
    }
    if let Ok(purposes) = &purposes {
        let list = purposes.list();
        assert!(
            list.windows(2).all(|w| w[0].code < w[1].code),
            "by code, once"
        );
    }
    let purposes = purposes.unwrap_or_default();
    let issuers = issuers.unwrap_or_else(|_| IssuerRegistry::open());
    let answer = Registry::new(&purposes, &issuers).answer();
    let frame = vault_client::wire::encode_frame(&answer).expect("the answer fits a frame");
    assert!(frame.len() <= vault_client::wire::RESPONSE_FRAME_LEN_MAX + 4);
}

/// Decodes `value` as `T` (or not); a decoded value's JSON decodes to a
/// value with the same JSON.
fn stable<T: Serialize + DeserializeOwned>(value: serde_json::Value) {
    let Ok(decoded) = serde_json::from_value::<T>(value) else {
        return;
    };
    let json = serde_json::to_value(&decoded).expect("a decoded value serializes");
    let again: T = serde_json::from_value(json.clone()).expect("its own JSON decodes");
    assert_eq!(serde_json::to_value(&again).unwrap(), json);
}
