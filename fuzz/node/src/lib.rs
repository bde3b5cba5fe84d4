//! The fuzz targets' checks for what only a node parses: Raft messages
//! from its peers (and their replies), snapshots a leader sends, its TOML
//! configuration and its purpose and issuer registry files. Like
//! `vault_fuzz` (`fuzz/`), whose helpers it shares, but linking vault-node
//! and so RocksDB; `fuzz_targets/*.rs` are the libFuzzer entry points
//! (feature `libfuzzer`, `cargo fuzz --fuzz-dir fuzz/node`), and the
//! workspace's `tests` crate replays the corpora through [`TARGETS`].
//!
//! This crate is **not** part of the product.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod node;
pub mod seeds;

pub use node::{node_config, raft_rpc, raft_snapshot, registry};
pub use vault_fuzz::Check;

/// Every node target, by the name of its `fuzz_targets/<name>.rs` and its
/// corpus directory `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("raft_rpc", raft_rpc),
    ("raft_snapshot", raft_snapshot),
    ("node_config", node_config),
    ("registry", registry),
];
