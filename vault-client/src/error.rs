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
    /// The command was interrupted (Ctrl-C) before it finished; what it had
    /// kept (a download's `.part` file) is left for a retry.
    Interrupted,
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
    /// No statutory order with that id.
    OrderNotFound,
    /// The order was already approved or denied.
    OrderAlreadyDecided,
    /// The purpose is not statutory: access without consent is not allowed for it.
    OrderNotStatutory,
    /// The purpose's registry entry does not let this department invoke it.
    OrderDepartmentNotAllowed,
    /// The seal asked for is longer than the purpose allows.
    OrderSealTooLong,
    /// The purpose requires an authority to approve each order.
    OrderNeedsAuthority,
    /// The order is already disclosed (its seal cannot be extended).
    OrderDisclosed,
    /// The order is still sealed: its resident cannot read it yet.
    OrderSealed,
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
            ErrorCode::Interrupted => "local.interrupted",
            ErrorCode::Protocol => "protocol.violation",
            ErrorCode::Internal => "internal",
            ErrorCode::RequestNotFound => "request.not_found",
            ErrorCode::RequestAlreadyDecided => "request.already_decided",
            ErrorCode::RequestNotAddressee => "request.not_addressee",
            ErrorCode::RequestWidened => "request.widened",
            ErrorCode::UnknownPurpose => "request.unknown_purpose",
            ErrorCode::TtlTooLong => "request.ttl_too_long",
            ErrorCode::OrderNotFound => "order.not_found",
            ErrorCode::OrderAlreadyDecided => "order.already_decided",
            ErrorCode::OrderNotStatutory => "order.not_statutory",
            ErrorCode::OrderDepartmentNotAllowed => "order.department_not_allowed",
            ErrorCode::OrderSealTooLong => "order.seal_too_long",
            ErrorCode::OrderNeedsAuthority => "order.needs_authority",
            ErrorCode::OrderDisclosed => "order.disclosed",
            ErrorCode::OrderSealed => "order.sealed",
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
        ErrorCode::Interrupted,
        ErrorCode::Protocol,
        ErrorCode::Internal,
        ErrorCode::RequestNotFound,
        ErrorCode::RequestAlreadyDecided,
        ErrorCode::RequestNotAddressee,
        ErrorCode::RequestWidened,
        ErrorCode::UnknownPurpose,
        ErrorCode::TtlTooLong,
        ErrorCode::OrderNotFound,
        ErrorCode::OrderAlreadyDecided,
        ErrorCode::OrderNotStatutory,
        ErrorCode::OrderDepartmentNotAllowed,
        ErrorCode::OrderSealTooLong,
        ErrorCode::OrderNeedsAuthority,
        ErrorCode::OrderDisclosed,
        ErrorCode::OrderSealed,
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

/// Exit status of a command that failed with a refusal: the node or a
/// local check said no (a bad argument, a missing permission, a spent
/// grant...). Retrying the same thing will not help.
pub const EXIT_REFUSED: u8 = 1;
/// Exit status of a bad command line (`cli.usage`).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the vault could not be reached or could not take the
/// work now (no connection, no quorum, over a limit, disk full): retrying
/// later may help.
pub const EXIT_UNAVAILABLE: u8 = 3;
/// Exit status when something failed verification: corrupt bytes, a
/// forged signature, a forked or corrupt log, an invalid receipt, an
/// audit that did not pass.
pub const EXIT_VERIFICATION: u8 = 4;

/// The exit status the command-line tools (`vault`, `vault-node`) give a
/// failure with `code` (a code this build does not know is a refusal).
pub fn exit_status(code: &str) -> u8 {
    match code {
        "cli.usage" => EXIT_USAGE,
        "connection.failed"
        | "cluster.unavailable"
        | "limit.busy"
        | "limit.deadline"
        | "storage.disk_full" => EXIT_UNAVAILABLE,
        "integrity.corrupt"
        | "log.corrupt"
        | "log.fork"
        | "log.witness_missing"
        | "receipt.invalid"
        | "grant.bad_signature"
        | "grant.untrusted_signer"
        | "record.bad_signature" => EXIT_VERIFICATION,
        _ => EXIT_REFUSED,
    }
}

/// The one-sentence message of a command-line parse error: clap's text
/// without its `error: ` prefix and usage lines, and with the names of the
/// arguments it lists (a missing `--data` is named, not just "the following
/// required arguments were not provided").
pub fn usage_message(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.trim_start_matches("error: "));
        }
    }
    let message = parts.join(" ");
    if message.is_empty() {
        "bad command line".to_string()
    } else {
        message
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

    #[test]
    fn exit_statuses_tell_refusal_usage_unavailable_and_verification_apart() {
        assert_eq!(exit_status("grant.expired"), EXIT_REFUSED);
        assert_eq!(exit_status("some.future_code"), EXIT_REFUSED);
        assert_eq!(exit_status("cli.usage"), EXIT_USAGE);
        assert_eq!(
            exit_status(ErrorCode::Connection.as_str()),
            EXIT_UNAVAILABLE
        );
        assert_eq!(
            exit_status(ErrorCode::ClusterUnavailable.as_str()),
            EXIT_UNAVAILABLE
        );
        assert_eq!(exit_status(ErrorCode::DiskFull.as_str()), EXIT_UNAVAILABLE);
        assert_eq!(
            exit_status(ErrorCode::Integrity.as_str()),
            EXIT_VERIFICATION
        );
        assert_eq!(exit_status(ErrorCode::LogFork.as_str()), EXIT_VERIFICATION);
        // Every code the vault emits has a status among the four.
        for code in ErrorCode::ALL {
            assert!((1..=4).contains(&exit_status(code.as_str())), "{code}");
        }
    }

    #[test]
    fn a_usage_message_keeps_the_missing_argument_names() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        --data <DATA>\n\nUsage: vault-node run --data <DATA>\n\nFor more \
                        information, try '--help'.\n";
        assert_eq!(
            usage_message(rendered),
            "the following required arguments were not provided: --data <DATA>"
        );
        assert_eq!(
            usage_message("error: unexpected argument '--x' found\n"),
            "unexpected argument '--x' found"
        );
        assert_eq!(usage_message(""), "bad command line");
    }
}
