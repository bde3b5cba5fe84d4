//! Stable error codes shared by the node and the client.
//!
//! A code never changes meaning once released: department systems script
//! against them. `docs/PROTOCOL.md` lists every code. This module is part of
//! the pure protocol: no I/O, nothing else of this crate. The client
//! library's error type, `ClientError`, lives in `client_error` (feature
//! `net`).

use std::fmt;

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
    /// A signed checkpoint is not consistent with the one the client
    /// remembered (same size with another root, or no consistency proof
    /// between them): the log forked. Both are kept as evidence.
    LogFork,
    /// The identity has a witness policy and the checkpoint lacks the
    /// cosignatures it requires.
    LogWitnessMissing,
    /// A receipt file is not a C2SP tlog-proof a vault writes.
    ReceiptMalformed,
    /// A receipt's entry is not in the signed log at its index.
    ReceiptInvalid,
    /// The resident index proof does not lead to the checkpoint's signed
    /// index root (or there is no index root or proof to check).
    LogIndexMismatch,
    /// A resident's chain of entries cannot be walked: an entry of it was not
    /// shown or did not verify, a link skips, or a shown entry is off it.
    LogChainBroken,
    /// A resident's chain has another number of entries than the index says.
    LogCountMismatch,
    /// The salt a node gave a resident is not the one the district salt key
    /// fixes for them (no σ, a σ that does not verify, another salt).
    LogWrongSalt,
    /// The certificate the grant is bound to has been revoked.
    GrantCertificateRevoked,
    /// The district's issuer registry does not let this department issue this kind.
    IssuerNotAuthorized,
    /// The request was not decided in time; the department must ask again.
    RequestExpired,
    /// The department has as many open requests for this resident as it may.
    RequestLimit,
    /// The caller (or the node as a whole) already has as many uploads,
    /// downloads or requests in progress as the node's limits allow; nothing
    /// was done: finish or cancel some, then retry.
    LimitBusy,
    /// A stream was cut because the peer sent or read nothing for the idle
    /// deadline, or the transfer outlasted its total deadline; nothing was
    /// stored.
    LimitDeadline,
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
            ErrorCode::LogFork => "log.fork",
            ErrorCode::LogWitnessMissing => "log.witness_missing",
            ErrorCode::ReceiptMalformed => "receipt.malformed",
            ErrorCode::ReceiptInvalid => "receipt.invalid",
            ErrorCode::LogIndexMismatch => "log.index_mismatch",
            ErrorCode::LogChainBroken => "log.chain_broken",
            ErrorCode::LogCountMismatch => "log.count_mismatch",
            ErrorCode::LogWrongSalt => "log.wrong_salt",
            ErrorCode::GrantCertificateRevoked => "grant.certificate_revoked",
            ErrorCode::IssuerNotAuthorized => "document.issuer_not_authorized",
            ErrorCode::RequestExpired => "request.expired",
            ErrorCode::RequestLimit => "limit.requests",
            ErrorCode::LimitBusy => "limit.busy",
            ErrorCode::LimitDeadline => "limit.deadline",
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
        ErrorCode::LogFork,
        ErrorCode::LogWitnessMissing,
        ErrorCode::ReceiptMalformed,
        ErrorCode::ReceiptInvalid,
        ErrorCode::LogIndexMismatch,
        ErrorCode::LogChainBroken,
        ErrorCode::LogCountMismatch,
        ErrorCode::LogWrongSalt,
        ErrorCode::GrantCertificateRevoked,
        ErrorCode::ClusterUnavailable,
        ErrorCode::ClusterMembership,
        ErrorCode::IssuerNotAuthorized,
        ErrorCode::RequestExpired,
        ErrorCode::RequestLimit,
        ErrorCode::LimitBusy,
        ErrorCode::LimitDeadline,
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
