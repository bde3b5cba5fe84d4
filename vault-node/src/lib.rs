//! The vault node: a QUIC endpoint with mutual TLS in front of a RocksDB
//! metadata store, an encrypted content-addressed blob store, and the
//! deterministic state machine every metadata change goes through.
//!
//! Layers, from pure to I/O: [`access`] and [`state`] decide (no I/O);
//! [`store`] and [`blobs`] persist; [`vault`] ties storage together;
//! [`server`] drives it all from the network; [`dev`] sets up a
//! development PKI for the embedded default.
//!
//! **Invariant:** metadata changes only through [`state::Command`]s applied
//! by [`state::apply`]; a blob is durable and verified before the command
//! that names it is committed.

pub mod access;
pub mod audit;
pub mod blobs;
pub mod config;
pub mod consent;
pub mod dev;
pub mod grants;
pub mod ledger;
pub mod log;
pub mod placement;
pub mod raft;
pub mod repair;
pub mod replica;
pub mod server;
pub mod state;
pub mod status;
pub mod store;
pub mod transparency;
pub mod vault;

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
