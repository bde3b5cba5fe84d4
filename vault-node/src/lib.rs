//! The vault node: a QUIC endpoint with mutual TLS in front of a RocksDB
//! metadata store, an encrypted content-addressed blob store, and the
//! deterministic state machine every metadata change goes through.
//!
//! Layers, lowest first; a module uses only its own layer and those below
//! (the order is written once, in `layers.toml` at the repository root, and
//! checked by `vault-layers` in `.ci/run`):
//!
//! | layer | holds |
//! |---|---|
//! | [`metrics`] | counters and histograms (atomics, no I/O), rendered as Prometheus text |
//! | [`engine`] | commands, records, `apply`, log entries and tree, grant state; no I/O, clock or RNG |
//! | [`rules`] | access, grant and placement decisions as plain functions; the clock |
//! | [`storage`] | the RocksDB, in-memory and faulty stores, the blob store, the data directory |
//! | [`consensus`] | how a command becomes durable: the single-node ledger or the Raft cluster |
//! | [`replication`] | blob copies across a cluster: push, fetch, scrub, repair |
//! | [`service`] | request handlers: a typed request and caller in, a reply out |
//! | [`net`] | the QUIC endpoint, the caller's identity, streaming, the CRL watcher |
//! | [`node`] | configuration, the development set-up, starting a node |
//!
//! **Invariant:** metadata changes only through
//! [`engine::state::Command`]s applied by [`engine::apply::apply`]; a blob
//! is durable and verified before the command that names it is committed.

pub mod consensus;
pub mod engine;
pub mod metrics;
pub mod net;
pub mod node;
pub mod replication;
pub mod rules;
pub mod service;
pub mod storage;

use vault_client::wire::ErrorBody;
use vault_client::ErrorCode;

/// A refused or failed request: a stable code and a sentence a person can
/// act on. Sent to the caller and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Stable code.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The wire form.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.as_str().to_string(),
            message: self.message.clone(),
        }
    }
}

impl From<pki::PkiError> for Refusal {
    fn from(e: pki::PkiError) -> Self {
        let code = match e.code() {
            "pki.revoked" => ErrorCode::CertificateRevoked,
            "pki.bad_signature" => ErrorCode::BadSignature,
            "pki.issuer_mismatch" => ErrorCode::IssuerMismatch,
            _ => ErrorCode::BadCertificate,
        };
        Refusal::new(code, e.to_string())
    }
}
