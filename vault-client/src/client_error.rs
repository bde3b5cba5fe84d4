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
                if code.into_inner() == u64::from(RESET_INTEGRITY) =>
            {
                integrity_reset()
            }
            quinn::ReadExactError::ReadError(e) => ClientError::Connection(e.to_string()),
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
