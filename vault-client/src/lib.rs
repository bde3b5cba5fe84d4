//! The vault's client side: the `vault/1` wire protocol (frames, messages,
//! limits, error codes), BLAKE3 verified streaming, and the async client
//! library over quinn used by the `vault` command line and by nodes talking
//! to each other.
//!
//! **Invariant:** `wire` and `tree` do no I/O; they are plain functions over
//! bytes, fuzzable and testable without a network. `framing`, `transport`,
//! `client` and `sink` are the only modules that touch sockets or files.
//!
//! This crate does not store anything and makes no access decisions: the
//! node does. It never trusts the node either: every downloaded byte is
//! verified against the content hash the issuing department signed.

pub mod audit;
pub mod client;
pub mod error;
pub mod framing;
pub mod merkle;
pub mod sink;
pub mod transport;
pub mod tree;
pub mod wire;

pub use client::{GetOptions, GetOutcome, PutOutcome, VaultClient};
pub use error::{ClientError, ErrorCode};
pub use wire::{ByteRange, DocumentId, DocumentView};
