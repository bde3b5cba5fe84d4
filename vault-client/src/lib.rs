//! The vault's client side: the `vault/1` wire protocol (frames, messages,
//! limits, error codes), BLAKE3 verified streaming, and the async client
//! library over quinn used by the `vault` command line and by nodes talking
//! to each other.
//!
//! The crate is in two layers, and every module refers (through `crate::`)
//! only to modules before it in this order, never back:
//!
//! - **The pure protocol** (always built): [`error`] (stable error codes),
//!   [`tree`] (BLAKE3 verified streaming), [`merkle`] (RFC 6962), [`smt`]
//!   (the resident index: a sparse Merkle tree and its proofs), [`wire`]
//!   (messages, the frame codec with its incremental decoder, limits, reset
//!   codes, the byte-range rule), [`replay`] (the auditor's rules and
//!   checks), [`receipt`] (C2SP tlog-proof receipts, verified offline),
//!   [`witness`] (the C2SP tlog-witness request and the witness's decision) and
//!   [`progress`] (the progress-reporting interface).
//! - **The network** (feature `net`, default): `client_error`
//!   (`ClientError`), `framing` (frames on quinn streams, the
//!   request-with-deadline exchange), `transport` (endpoints, the peer's
//!   certificate), `sink` (a transfer's local files), `checkpoints` (the
//!   last trusted checkpoint a client remembers, and fork evidence),
//!   `client` (`VaultClient`), `audit` (the auditor over the network),
//!   `witness_client` (a node asking a witness to cosign, HTTP/1.1) and, with
//!   the feature `cli`, `witness_server` (the witness: `vault witness serve`).
//!
//! **Invariant:** the pure layer does no I/O and has no quinn, tokio,
//! indicatif or socket crate in its dependency closure
//! (`cargo tree -p vault-client --no-default-features -e normal`); it is
//! plain functions over bytes, fuzzable and testable without a network.
//! The `vault` binary (features `net` and `cli`) draws the progress bar.
//!
//! This crate does not store anything and makes no access decisions: the
//! node does. It never trusts the node either: every downloaded byte is
//! verified against the content hash the issuing department signed.

pub mod error;
pub mod merkle;
pub mod orders;
pub mod progress;
pub mod receipt;
pub mod replay;
pub mod smt;
pub mod tree;
pub mod wire;
pub mod witness;

#[cfg(feature = "net")]
pub mod audit;
#[cfg(feature = "net")]
pub mod checkpoints;
#[cfg(feature = "net")]
pub mod client;
#[cfg(feature = "net")]
pub mod client_error;
#[cfg(feature = "net")]
pub mod framing;
#[cfg(feature = "net")]
pub mod order_client;
#[cfg(feature = "net")]
pub mod sink;
#[cfg(feature = "net")]
pub mod transport;
#[cfg(feature = "net")]
pub mod witness_client;
#[cfg(feature = "cli")]
pub mod witness_server;

#[cfg(feature = "net")]
pub use client::{GetOptions, GetOutcome, PutOutcome, VaultClient};
#[cfg(feature = "net")]
pub use client_error::ClientError;
pub use error::ErrorCode;
pub use progress::Progress;
pub use wire::{ByteRange, DocumentId, DocumentView};
