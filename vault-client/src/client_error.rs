//! The client library's error type, [`ClientError`]: what a caller of
//! [`crate::VaultClient`] (or the `vault` command line) sees fail, each with
//! a stable code.
//!
//! Part of the `net` feature: it converts quinn's stream and connection
//! errors. The pure protocol's errors ([`WireError`], [`TreeError`]) carry
//! no quinn types and convert into it here.

use crate::error::ErrorCode;
use crate::tree::TreeError;
use crate::wire::{ErrorBody, WireError, RESET_INTEGRITY};

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

    /// A connection failure, from its description. A TLS alert the node
    /// sent about this identity's own certificate (revoked, expired,
    /// untrusted) is not a lost connection: it is the node's refusal,
    /// `auth.certificate_revoked` or `tls.bad_certificate`, and retrying
    /// will not help.
    pub fn connection(text: impl Into<String>) -> Self {
        let text = text.into();
        let refused = |code: ErrorCode, what: &str| ClientError::Refused {
            code: code.as_str().to_string(),
            message: format!("the node refused this identity's certificate: {what} ({text})"),
        };
        match peer_tls_alert(&text) {
            Some(TLS_ALERT_CERTIFICATE_REVOKED) => refused(
                ErrorCode::CertificateRevoked,
                "it is revoked; ask the district CA operator for a new one",
            ),
            Some(TLS_ALERT_CERTIFICATE_EXPIRED) => refused(
                ErrorCode::BadCertificate,
                "it has expired (or is not valid yet); ask the district CA operator to issue a new one",
            ),
            Some(42 | 43 | 46 | 48 | 49) => refused(
                ErrorCode::BadCertificate,
                "it is not a certificate of this district's CA, or not one a node accepts",
            ),
            _ => ClientError::Connection(text),
        }
    }

    /// Whether retrying (and resuming) may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Connection(_))
    }
}

/// TLS alert `certificate_revoked` (RFC 8446 §6).
const TLS_ALERT_CERTIFICATE_REVOKED: u8 = 44;
/// TLS alert `certificate_expired`.
const TLS_ALERT_CERTIFICATE_EXPIRED: u8 = 45;

/// The TLS alert the *peer* closed the connection with, from quinn's
/// description of a CONNECTION_CLOSE carrying a crypto error (`aborted by
/// peer: the cryptographic handshake failed: error 44: …`). A local
/// handshake failure (the node's certificate refused here) does not say
/// "by peer" and is not matched.
fn peer_tls_alert(text: &str) -> Option<u8> {
    const MARK: &str = "aborted by peer: the cryptographic handshake failed: error ";
    let rest = &text[text.find(MARK)? + MARK.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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
        ClientError::connection(e.to_string())
    }
}

impl From<quinn::WriteError> for ClientError {
    fn from(e: quinn::WriteError) -> Self {
        ClientError::connection(e.to_string())
    }
}

impl From<quinn::ReadExactError> for ClientError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => ClientError::connection(
                "the node ended the stream early; retry to resume".to_string(),
            ),
            quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code))
                if code.into_inner() == u64::from(RESET_INTEGRITY) =>
            {
                integrity_reset()
            }
            quinn::ReadExactError::ReadError(e) => ClientError::connection(e.to_string()),
        }
    }
}

/// The node found stored bytes corrupt and stopped the transfer (it reset
/// the stream with [`RESET_INTEGRITY`]).
pub(crate) fn integrity_reset() -> ClientError {
    ClientError::local(
        ErrorCode::Integrity,
        "the node found the stored document corrupt and stopped; nothing was kept",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_alert_about_this_certificate_is_a_refusal_not_a_lost_connection() {
        let revoked = ClientError::connection(
            "aborted by peer: the cryptographic handshake failed: error 44: invalid peer certificate: Revoked",
        );
        assert_eq!(revoked.code(), "auth.certificate_revoked");
        assert!(!revoked.is_transient());
        let expired = ClientError::connection(
            "connection lost: aborted by peer: the cryptographic handshake failed: error 45",
        );
        assert_eq!(expired.code(), "tls.bad_certificate");
        assert!(expired.to_string().contains("expired"), "{expired}");
        // The node's own certificate refused here, and a timeout, stay
        // connection failures.
        let local = ClientError::connection(
            "the cryptographic handshake failed: error 42: invalid peer certificate: UnknownIssuer",
        );
        assert_eq!(local.code(), "connection.failed");
        assert!(ClientError::connection("timed out").is_transient());
    }
}
