//! Stable error codes shared by the node and the client, and the client's
//! error type.
//!
//! A code never changes meaning once released: department systems script
//! against them. `docs/PROTOCOL.md` lists every code.

use std::fmt;

use crate::tree::TreeError;
use crate::wire::{ErrorBody, WireError};

/// Every stable error code the vault emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The caller's certificate does not allow this request.
    Forbidden,
    /// No document with that id.
    NotFound,
    /// A frame could not be parsed.
    FrameMalformed,
    /// A frame exceeded its size limit.
    FrameTooLarge,
    /// A document id was not 32 hex characters.
    BadDocumentId,
    /// An argument was invalid (range, size, name...).
    InvalidArgument,
    /// The uploaded bytes do not hash to the announced content hash.
    HashMismatch,
    /// The upload ended before the announced size.
    Truncated,
    /// The upload carried more bytes than announced.
    Oversized,
    /// A document larger than the vault accepts.
    TooLarge,
    /// A signature did not verify.
    BadSignature,
    /// The record names an issuer other than the certificate that sent it.
    IssuerMismatch,
    /// The record's issue time is too far from the node's clock.
    ClockSkew,
    /// Stored bytes failed their integrity check; they were not served.
    Integrity,
    /// A certificate was not acceptable (chain, role, validity).
    BadCertificate,
    /// The caller's certificate has been revoked.
    CertificateRevoked,
    /// The node's disk is full; nothing was stored.
    DiskFull,
    /// Storage failed; nothing was stored.
    Storage,
    /// The connection failed or was refused.
    Connection,
    /// A local file could not be read or written.
    LocalIo,
    /// The node broke the protocol.
    Protocol,
    /// An unexpected failure inside the node.
    Internal,
    /// No access request with that id.
    RequestNotFound,
    /// The request was already approved or denied.
    RequestAlreadyDecided,
    /// Only the resident a request names may decide it.
    RequestNotAddressee,
    /// An approval asked for more than the request (documents, time, purpose, holder).
    RequestWidened,
    /// The purpose code is not in the node's purpose registry.
    UnknownPurpose,
    /// The requested validity exceeds what the purpose allows.
    TtlTooLong,
    /// No grant with that id.
    GrantNotFound,
    /// A grant's consent or seal does not verify: forged or altered.
    GrantBadSignature,
    /// A grant is signed by a key the district CA did not certify.
    GrantUntrusted,
    /// The grant is bound to another department's key.
    GrantHolderMismatch,
    /// A cluster node cannot reach a leader (or a quorum) to order a write
    /// or confirm a read; nothing was changed by this request.
    ClusterUnavailable,
    /// A membership change was refused (unknown node, last voter, a change
    /// already in progress); the membership is unchanged.
    ClusterMembership,
    /// The grant's validity window has ended.
    GrantExpired,
    /// The grant's validity window has not begun.
    GrantNotYetValid,
    /// The grant's uses are all spent.
    GrantExhausted,
    /// The grant was revoked or given up.
    GrantRevoked,
    /// The document is not covered by the grant.
    GrantOutOfScope,
    /// Grant bytes that do not parse or exceed their limits.
    GrantMalformed,
    /// The log's stored entries do not match its tree; no checkpoint is signed.
    LogCorrupt,
    /// A log index or size outside the log.
    LogRange,
    /// The certificate the grant is bound to has been revoked.
    GrantCertificateRevoked,
}

impl ErrorCode {
    /// The stable dotted string form, as printed in JSON errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Forbidden => "auth.forbidden",
            ErrorCode::NotFound => "document.not_found",
            ErrorCode::FrameMalformed => "frame.malformed",
            ErrorCode::FrameTooLarge => "frame.too_large",
            ErrorCode::BadDocumentId => "document.bad_id",
            ErrorCode::InvalidArgument => "request.invalid",
            ErrorCode::HashMismatch => "upload.hash_mismatch",
            ErrorCode::Truncated => "upload.truncated",
            ErrorCode::Oversized => "upload.oversized",
            ErrorCode::TooLarge => "upload.too_large",
            ErrorCode::BadSignature => "record.bad_signature",
            ErrorCode::IssuerMismatch => "record.issuer_mismatch",
            ErrorCode::ClockSkew => "record.clock_skew",
            ErrorCode::Integrity => "integrity.corrupt",
            ErrorCode::BadCertificate => "tls.bad_certificate",
            ErrorCode::CertificateRevoked => "auth.certificate_revoked",
            ErrorCode::DiskFull => "storage.disk_full",
            ErrorCode::Storage => "storage.failed",
            ErrorCode::Connection => "connection.failed",
            ErrorCode::LocalIo => "local.io",
            ErrorCode::Protocol => "protocol.violation",
            ErrorCode::Internal => "internal",
            ErrorCode::RequestNotFound => "request.not_found",
            ErrorCode::RequestAlreadyDecided => "request.already_decided",
            ErrorCode::RequestNotAddressee => "request.not_addressee",
            ErrorCode::RequestWidened => "request.widened",
            ErrorCode::UnknownPurpose => "request.unknown_purpose",
            ErrorCode::TtlTooLong => "request.ttl_too_long",
            ErrorCode::GrantNotFound => "grant.not_found",
            ErrorCode::ClusterUnavailable => "cluster.unavailable",
            ErrorCode::ClusterMembership => "cluster.membership_refused",
            ErrorCode::GrantBadSignature => "grant.bad_signature",
            ErrorCode::GrantUntrusted => "grant.untrusted_signer",
            ErrorCode::GrantHolderMismatch => "grant.holder_mismatch",
            ErrorCode::GrantExpired => "grant.expired",
            ErrorCode::GrantNotYetValid => "grant.not_yet_valid",
            ErrorCode::GrantExhausted => "grant.exhausted",
            ErrorCode::GrantRevoked => "grant.revoked",
            ErrorCode::GrantOutOfScope => "grant.out_of_scope",
            ErrorCode::GrantMalformed => "grant.malformed",
            ErrorCode::LogCorrupt => "log.corrupt",
            ErrorCode::LogRange => "log.range",
            ErrorCode::GrantCertificateRevoked => "grant.certificate_revoked",
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::FrameMalformed,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadDocumentId,
        ErrorCode::InvalidArgument,
        ErrorCode::HashMismatch,
        ErrorCode::Truncated,
        ErrorCode::Oversized,
        ErrorCode::TooLarge,
        ErrorCode::BadSignature,
        ErrorCode::IssuerMismatch,
        ErrorCode::ClockSkew,
        ErrorCode::Integrity,
        ErrorCode::BadCertificate,
        ErrorCode::CertificateRevoked,
        ErrorCode::DiskFull,
        ErrorCode::Storage,
        ErrorCode::Connection,
        ErrorCode::LocalIo,
        ErrorCode::Protocol,
        ErrorCode::Internal,
        ErrorCode::RequestNotFound,
        ErrorCode::RequestAlreadyDecided,
        ErrorCode::RequestNotAddressee,
        ErrorCode::RequestWidened,
        ErrorCode::UnknownPurpose,
        ErrorCode::TtlTooLong,
        ErrorCode::GrantNotFound,
        ErrorCode::GrantBadSignature,
        ErrorCode::GrantUntrusted,
        ErrorCode::GrantHolderMismatch,
        ErrorCode::GrantExpired,
        ErrorCode::GrantNotYetValid,
        ErrorCode::GrantExhausted,
        ErrorCode::GrantRevoked,
        ErrorCode::GrantOutOfScope,
        ErrorCode::GrantMalformed,
        ErrorCode::LogCorrupt,
        ErrorCode::LogRange,
        ErrorCode::GrantCertificateRevoked,
        ErrorCode::ClusterUnavailable,
        ErrorCode::ClusterMembership,
    ];

    /// Parses the dotted string form.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|code| code.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure seen by the client library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node refused or failed the request.
    #[error("{message}")]
    Refused {
        /// The node's stable code (kept as text: a newer node may send codes
        /// this client does not know).
        code: String,
        /// The node's explanation.
        message: String,
    },
    /// A local precondition or check failed.
    #[error("{message}")]
    Local {
        /// Stable code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The connection to the node failed; a retry may succeed (a download
    /// keeps its `.part` file and resumes).
    #[error("connection to the node failed: {0}")]
    Connection(String),
}

impl ClientError {
    /// The stable code as a string.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Refused { code, .. } => code,
            ClientError::Local { code, .. } => code.as_str(),
            ClientError::Connection(_) => ErrorCode::Connection.as_str(),
        }
    }

    /// Builds a local error.
    pub fn local(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError::Local {
            code,
            message: message.into(),
        }
    }

    /// Whether retrying (and resuming) may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Connection(_))
    }
}

impl From<ErrorBody> for ClientError {
    fn from(body: ErrorBody) -> Self {
        ClientError::Refused {
            code: body.code,
            message: body.message,
        }
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        ClientError::local(
            ErrorCode::Protocol,
            format!("the node sent a bad frame: {e}"),
        )
    }
}

impl From<TreeError> for ClientError {
    fn from(e: TreeError) -> Self {
        ClientError::local(
            ErrorCode::Integrity,
            format!("verification failed, the bytes were discarded: {e}"),
        )
    }
}

impl From<pki::PkiError> for ClientError {
    fn from(e: pki::PkiError) -> Self {
        ClientError::Refused {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<quinn::ConnectionError> for ClientError {
    fn from(e: quinn::ConnectionError) -> Self {
        ClientError::Connection(e.to_string())
    }
}

impl From<quinn::WriteError> for ClientError {
    fn from(e: quinn::WriteError) -> Self {
        ClientError::Connection(e.to_string())
    }
}

impl From<quinn::ReadExactError> for ClientError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => ClientError::Connection(
                "the node ended the stream early; retry to resume".to_string(),
            ),
            quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code))
                if code.into_inner() == u64::from(crate::wire::RESET_INTEGRITY) =>
            {
                crate::client::integrity_reset()
            }
            quinn::ReadExactError::ReadError(e) => ClientError::Connection(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
    }
}
