//! The one error type of the crate, with a stable code per variant.

use std::path::PathBuf;

/// Everything that can go wrong in the PKI layer.
///
/// Each variant's message is a sentence an operator can act on; [`PkiError::code`]
/// gives a stable, dotted code for programs and logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// An identifier (resident, document kind, holder name) does not follow its rule.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidName {
        /// Which kind of identifier was being parsed ("resident id", "name", ...).
        what: &'static str,
        /// The rejected input, truncated for display.
        value: String,
        /// The rule the input broke.
        rule: &'static str,
    },
    /// A content hash is not 64 hexadecimal characters.
    #[error("invalid content hash {value:?}: expected 64 lowercase hexadecimal characters")]
    InvalidHash {
        /// The rejected input, truncated for display.
        value: String,
    },
    /// A signature is not 128 hexadecimal characters.
    #[error("invalid signature encoding: expected 128 hexadecimal characters (64 bytes)")]
    InvalidSignatureEncoding,
    /// A role string is not one of the four roles.
    #[error("unknown role {value:?}: use one of node, department, auditor, resident")]
    InvalidRole {
        /// The rejected input, truncated for display.
        value: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", "create directory", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file that must not be overwritten already exists.
    #[error("{path} already exists; refusing to overwrite it (choose another directory or remove it deliberately)")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A PEM file is missing the expected section or is malformed.
    #[error("{path} is not a usable PEM file: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The CA's own state files (revoked.json) are corrupt.
    #[error("CA state file {path} is corrupt: {reason}; restore it from backup")]
    CorruptStore {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A serial number was not issued by this CA.
    #[error("serial {serial} was not issued by this CA (no issued/{serial}.pem); check the serial with `vault-pki inspect`")]
    UnknownSerial {
        /// The serial, as lowercase hex.
        serial: String,
    },
    /// The CA issued no unexpired certificate to this name (revocation by name).
    #[error("no unexpired certificate issued to {name} by this CA; check the name, or revoke an expired certificate by --serial")]
    UnknownName {
        /// The holder name (certificate CN).
        name: String,
    },
    /// The certificate's validity period ended before the verification time.
    #[error("certificate expired; issue a new one with `vault-pki issue`")]
    Expired,
    /// The certificate's validity period starts after the verification time.
    #[error("certificate is not valid yet; check the clocks of both machines")]
    NotYetValid,
    /// The certificate appears in a CRL.
    #[error("certificate has been revoked by the district CA; ask the CA operator for a new one")]
    Revoked,
    /// The certificate does not chain to the district CA (or is not allowed for its use).
    #[error("certificate is not trusted: {reason}; make sure it was issued by this district's CA")]
    Untrusted {
        /// What the verifier said.
        reason: String,
    },
    /// The certificate could not be parsed or breaks the district profile.
    #[error("bad certificate: {reason}")]
    BadCertificate {
        /// What was wrong.
        reason: String,
    },
    /// A signed statement (request, grant) is malformed or out of bounds.
    #[error("malformed statement: {reason}")]
    MalformedStatement {
        /// What was wrong.
        reason: String,
    },
    /// A CRL could not be parsed.
    #[error("bad certificate revocation list: {reason}; fetch a fresh crl.pem from the CA")]
    BadCrl {
        /// What was wrong.
        reason: String,
    },
    /// A private key could not be used.
    #[error("bad private key: {reason}; expected an Ed25519 PKCS#8 key made by `vault-pki issue`")]
    BadKey {
        /// What was wrong.
        reason: String,
    },
    /// A private key file is readable by group or others.
    #[error(
        "private key {path} has mode {mode:o}, readable by other users; run `chmod 600 {path}`"
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An Ed25519 signature did not verify.
    #[error(
        "signature does not verify with the signer's public key; the data or signature was altered"
    )]
    BadSignature,
    /// A checkpoint (or a log key) is not one of the log keys the identity trusts (`log.pub`).
    #[error("not signed by a trusted log key: {reason}")]
    UnknownLogKey {
        /// What was looked for and not found.
        reason: String,
    },
    /// A checkpoint lacks the witness cosignatures the identity's witness policy requires.
    #[error("not witnessed: {reason}")]
    WitnessMissing {
        /// Which cosignatures were found and which are missing.
        reason: String,
    },
    /// A statement names a different issuer than the certificate that signed it.
    #[error("statement issuer mismatch: {reason}")]
    IssuerMismatch {
        /// What did not match.
        reason: String,
    },
    /// rcgen failed to build a certificate or CRL.
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// rcgen's explanation.
        reason: String,
    },
    /// A rustls configuration could not be built.
    #[error("cannot build TLS configuration: {reason}")]
    Tls {
        /// rustls's explanation.
        reason: String,
    },
}

impl PkiError {
    /// A stable, dotted error code, e.g. `"pki.bad_signature"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName { .. } => "pki.invalid_name",
            Self::InvalidHash { .. } => "pki.invalid_hash",
            Self::InvalidSignatureEncoding => "pki.invalid_signature_encoding",
            Self::InvalidRole { .. } => "pki.invalid_role",
            Self::Io { .. } => "pki.io",
            Self::Exists { .. } => "pki.exists",
            Self::BadPem { .. } => "pki.bad_pem",
            Self::CorruptStore { .. } => "pki.corrupt_store",
            Self::UnknownSerial { .. } => "pki.unknown_serial",
            Self::UnknownName { .. } => "pki.unknown_name",
            Self::Expired => "pki.expired",
            Self::NotYetValid => "pki.not_yet_valid",
            Self::Revoked => "pki.revoked",
            Self::Untrusted { .. } => "pki.untrusted",
            Self::BadCertificate { .. } => "pki.bad_certificate",
            Self::BadCrl { .. } => "pki.bad_crl",
            Self::MalformedStatement { .. } => "pki.malformed_statement",
            Self::BadKey { .. } => "pki.bad_key",
            Self::KeyPermissions { .. } => "pki.key_permissions",
            Self::BadSignature => "pki.bad_signature",
            Self::IssuerMismatch { .. } => "pki.issuer_mismatch",
            Self::UnknownLogKey { .. } => "pki.unknown_log_key",
            Self::WitnessMissing { .. } => "pki.witness_missing",
            Self::Generate { .. } => "pki.generate",
            Self::Tls { .. } => "pki.tls",
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            return Self::Exists {
                path: path.to_path_buf(),
            };
        }
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn bad_cert(reason: impl std::fmt::Display) -> Self {
        Self::BadCertificate {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn generate(what: &'static str, err: rcgen::Error) -> Self {
        Self::Generate {
            what,
            reason: err.to_string(),
        }
    }
}

/// Shortens peer- or user-controlled input before it goes into an error message.
pub(crate) fn truncate_for_display(s: &str) -> String {
    const DISPLAY_CHARS_MAX: usize = 80;
    s.chars().take(DISPLAY_CHARS_MAX).collect()
}
