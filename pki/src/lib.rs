//! The district PKI: the trust layer of the document vault.
//!
//! This crate **is**: the district certificate authority (an Ed25519 root kept in a CA
//! directory, issuing certificates with rcgen and revoking them with signed CRLs), reading
//! certificates back (x509-parser) and verifying them offline (webpki), the role and name a
//! certificate carries, identity directories, Ed25519 signatures, the canonical bytes of
//! signed statements, identifier newtypes, and building rustls configurations for mutual TLS.
//!
//! This crate is **not**: a network component. **Invariant:** it performs no network I/O:
//! it opens no sockets and fetches no CRLs; its only I/O is reading and writing the CA and
//! identity directories it is pointed at. Storage, QUIC and the wire protocol live in
//! `vault-client` and `vault-node`.
//!
//! **Invariant:** a certificate's role comes from its subject OU and its name from its
//! subject CN, and from nothing else. Every key is Ed25519, except the district salt key
//! (RSA, `salt_key`: a unique signature fixes each resident's log salt).

mod ca;
mod cert;
mod cosignature;
mod error;
mod files;
mod grants;
mod identity;
mod ids;
mod keys;
mod log;
mod log_key;
mod orders;
mod salt_key;
pub mod serde_hex;
mod statements;
mod tls;

pub use ca::{
    CertificateAuthority, IssueParams, RevokedEntry, CA_VALIDITY_S, CERT_VALIDITY_S, CLOCK_SKEW_S,
    CRL_VALIDITY_S, DISTRICT_LEN_MAX, RESIDENT_CERT_VALIDITY_S, REVOKED_STORE_VERSION, SERIAL_LEN,
};
pub use cert::{
    load_crls, parse_certificate, read_certificate_pem, revoked_serials, verify_certificate,
    PeerCert, Role, ED25519_PUBLIC_KEY_LEN,
};
pub use cosignature::{
    check_witness_name, cosignature_message, split_note, WitnessPolicy, WitnessSigner,
    WitnessVerifier, COSIGNATURE_TYPE, POLICY_ITEMS_MAX, POLICY_LEN_MAX, WITNESS_KEY_FILE,
    WITNESS_NAME_LEN_MAX, WITNESS_POLICY_FILE, WITNESS_PUB_FILE,
};
pub use error::PkiError;
pub use grants::{
    AccessRequest, Grant, GrantBody, GrantedDocument, RequestScope, VerifiedGrant,
    ACCESS_REQUEST_TAG_V1, GRANT_BODY_TAG_V1, GRANT_DOCUMENTS_MAX, GRANT_JSON_LEN_MAX,
    GRANT_SEAL_TAG_V1, GRANT_TTL_S_MAX, GRANT_USES_MAX, GRANT_VERSION,
};
pub use identity::{verify_signature, Identity, Signature, SIGNATURE_LEN};
pub use ids::{
    ContentHash, DocumentId, DocumentKind, GrantId, Name, Purpose, RequestId, ResidentId, ID_LEN,
    NAME_LEN_MAX,
};
pub use log::{
    resident_tag, Checkpoint, LogDetail, LogEntry, LogEvent, LOG_ENTRY_DOCUMENTS_MAX,
    LOG_ENTRY_LEN_MAX, LOG_ENTRY_TAG_V1, LOG_ENTRY_TAG_V2, LOG_ENTRY_TAG_V3, NOTE_LEN_MAX,
    RESIDENT_INDEX_LINE,
};
pub use log_key::{
    check_origin, generate as generate_log_key, load_verifiers, parse_verifiers, verifiers_text,
    LogSigner, LogVerifier, LOG_KEY_FILE, LOG_PUB_FILE, LOG_VERIFIERS_MAX, ORIGIN_LEN_MAX,
};
pub use orders::{
    check_case_ref, Order, SealExtension, CASE_REF_LEN_MAX, ORDER_TAG_V1, SEAL_EXTENSION_TAG_V1,
    SEAL_S_MAX,
};
pub use salt_key::{
    salt_from_proof, salt_message, SaltSigner, SaltVerifier, RESIDENT_SALT_TAG, SALT_KEY_BITS,
    SALT_KEY_FILE, SALT_PROOF_LEN_MAX, SALT_PUB_FILE,
};
pub use statements::{IssueRecord, ISSUE_RECORD_TAG_V1};
pub use tls::{client_tls_config, crypto_provider, server_tls_config, ALPN};
