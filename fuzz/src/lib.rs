//! The fuzz targets' checks: one function per parser of bytes a peer or a
//! file controls, each taking the fuzzer's input and panicking only when a
//! property fails (a parser that panics, a round trip that changes a
//! value, canonical bytes that two different statements share, a decoder
//! that hands out a byte it did not verify).
//!
//! The libFuzzer entry points (`fuzz_targets/*.rs`, feature `libfuzzer`)
//! call these under AddressSanitizer (`scripts/fuzz`); the workspace's
//! `tests` crate replays the committed corpora (`fuzz/corpus/<target>/`)
//! through the same functions without it (`fuzz_corpus` in the suite), and
//! writes those corpora with [`seeds::write`].
//!
//! The node's parsers (Raft messages and snapshots, its configuration and
//! registry files) are fuzzed by `fuzz/node/` (`vault-fuzz-node`), which
//! links vault-node and so RocksDB; these targets build without it.
//!
//! This crate is **not** part of the product: nothing in the workspace's
//! binaries links it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod certs;
pub mod fixtures;
mod frames;
mod log;
mod notes;
pub mod seeds;
mod statements;
mod tree;

pub use certs::certificate;
pub use frames::{frame_decoder, node_status, request_frame, response_frame};
pub use log::{audit_replay, log_entry};
pub use notes::{checkpoint, cosignature, receipt, witness_request};
pub use statements::{access_request, grant_body, grant_json, issue_record};
pub use tree::tree_decoder;

/// A fuzz target's check.
pub type Check = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/<name>.rs` and its
/// corpus directory `corpus/<name>/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("request_frame", request_frame),
    ("response_frame", response_frame),
    ("frame_decoder", frame_decoder),
    ("tree_decoder", tree_decoder),
    ("grant_json", grant_json),
    ("grant_body", grant_body),
    ("access_request", access_request),
    ("issue_record", issue_record),
    ("log_entry", log_entry),
    ("audit_replay", audit_replay),
    ("checkpoint", checkpoint),
    ("cosignature", cosignature),
    ("witness_request", witness_request),
    ("receipt", receipt),
    ("node_status", node_status),
    ("certificate", certificate),
];

/// `data` up to its first NUL byte and after it (the second part empty
/// when there is none): two statements from one input, for the targets
/// that compare two (JSON holds no raw NUL).
pub fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `value` through JSON and back, which must give it again.
pub fn json_round_trip<T>(value: &T) -> Vec<u8>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_vec(value).expect("a parsed value serializes");
    let again: T = serde_json::from_slice(&json).expect("its own JSON parses");
    assert_eq!(&again, value, "the JSON round trip changed the value");
    json
}
