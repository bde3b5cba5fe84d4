//! Access requests, consents and grants: fixed schemas, canonical versioned
//! bytes, Ed25519 signatures, and offline verification.
//!
//! The flow: a department signs an [`AccessRequest`]; the resident signs a
//! [`GrantBody`] (their consent, over exactly what is shared, with whom, for
//! what, how long, how often); a node seals body and consent into a
//! [`Grant`] with its own key. Anyone holding the district CA certificate
//! can check a grant offline with [`Grant::verify`]: two certificate chains
//! and two signatures. Use counts and revocations are state, kept by the
//! node's state machine, not here.

use serde::{Deserialize, Serialize};

use crate::cert::{verify_certificate, PeerCert, Role};
use crate::error::PkiError;
use crate::identity::{verify_signature, Identity, Signature};
use crate::ids::{
    ContentHash, DocumentId, DocumentKind, GrantId, Name, Purpose, RequestId, ResidentId,
};
use crate::statements::put_str;

/// Domain tag of an [`AccessRequest`]'s canonical bytes, version 1.
pub const ACCESS_REQUEST_TAG_V1: &[u8] = b"vault/access-request/v1\n";
/// Domain tag of a [`GrantBody`]'s canonical bytes (what the resident signs), version 1.
pub const GRANT_BODY_TAG_V1: &[u8] = b"vault/grant/v1\n";
/// Domain tag of what a node signs to seal a grant, version 1.
pub const GRANT_SEAL_TAG_V1: &[u8] = b"vault/grant-seal/v1\n";
/// The grant format version this crate writes and reads.
pub const GRANT_VERSION: u8 = 1;
/// Most documents (or kinds) one request or grant may name.
pub const GRANT_DOCUMENTS_MAX: usize = 64;
/// Longest validity a grant may have, in seconds (one year).
pub const GRANT_TTL_S_MAX: u64 = 365 * 24 * 3600;
/// Most uses a grant may allow.
pub const GRANT_USES_MAX: u32 = 10_000;
/// Largest serialized grant accepted, in bytes.
pub const GRANT_JSON_LEN_MAX: usize = 64 * 1024;

/// What a department asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "items", rename_all = "snake_case")]
pub enum RequestScope {
    /// These exact documents.
    Documents(Vec<DocumentId>),
    /// The resident's current (newest) document of each kind.
    Kinds(Vec<DocumentKind>),
}

/// A department's request for a resident's documents, signed by the department.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Whose documents.
    pub resident: ResidentId,
    /// The requesting department (its certificate CN).
    pub department: Name,
    /// Which documents.
    pub scope: RequestScope,
    /// Why: a code from the purpose registry.
    pub purpose: Purpose,
    /// How long the department asks to hold access, in seconds.
    pub ttl_s: u64,
    /// When the request was made, unix seconds.
    pub created_at: i64,
    /// Random bytes chosen by the department: two requests alike in every
    /// other field are still distinct, while a retried request keeps its id.
    #[serde(with = "crate::serde_hex::array")]
    pub nonce: [u8; 16],
}

impl AccessRequest {
    /// Canonical bytes: tag, resident, department, scope (u8 1 = documents then u16 BE count
    /// and 16-byte ids; 2 = kinds then u16 BE count and strings), purpose, ttl_s (u64 BE),
    /// created_at (i64 BE), nonce (16 bytes). Strings are u16 BE length + UTF-8.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(ACCESS_REQUEST_TAG_V1);
        put_str(&mut out, self.resident.as_str());
        put_str(&mut out, self.department.as_str());
        self.scope.put(&mut out);
        put_str(&mut out, self.purpose.as_str());
        out.extend_from_slice(&self.ttl_s.to_be_bytes());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    /// A fresh random nonce for a new request.
    pub fn new_nonce() -> Result<[u8; 16], PkiError> {
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(
            |_| PkiError::Generate {
                what: "request nonce",
                reason: "the system has no randomness".to_owned(),
            },
        )?;
        Ok(nonce)
    }

    /// Signs the request with the department's key.
    pub fn sign(&self, identity: &Identity) -> Signature {
        identity.sign(&self.canonical_bytes())
    }

    /// The request's id.
    pub fn id(&self, signature: &Signature) -> RequestId {
        RequestId::derive(&[&self.canonical_bytes(), signature.as_bytes()])
    }

    /// Checks the shape (non-empty, bounded scope; bounded ttl), that `signer` is the
    /// department named, and the signature.
    pub fn verify(&self, signature: &Signature, signer: &PeerCert) -> Result<(), PkiError> {
        let count = match &self.scope {
            RequestScope::Documents(ids) => ids.len(),
            RequestScope::Kinds(kinds) => kinds.len(),
        };
        if count == 0 || count > GRANT_DOCUMENTS_MAX {
            return Err(malformed(format!(
                "a request names 1 to {GRANT_DOCUMENTS_MAX} documents or kinds, not {count}"
            )));
        }
        if self.ttl_s == 0 || self.ttl_s > GRANT_TTL_S_MAX {
            return Err(malformed(format!(
                "a request's ttl is 1 to {GRANT_TTL_S_MAX} seconds, not {}",
                self.ttl_s
            )));
        }
        check_signer(signer, Role::Department, self.department.as_str())?;
        verify_signature(&signer.public_key, &self.canonical_bytes(), signature)
    }
}

/// One document a grant covers: its id and the exact bytes (content hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GrantedDocument {
    /// The document.
    pub document_id: DocumentId,
    /// Its content hash: the grant covers these bytes and no others.
    pub content_hash: ContentHash,
}

/// What the resident consents to: signed by the resident, sealed by a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantBody {
    /// The request this answers.
    pub request_id: RequestId,
    /// The resident who consents.
    pub resident: ResidentId,
    /// The department granted access.
    pub grantee: Name,
    /// SHA-256 of the grantee certificate's SubjectPublicKeyInfo: the grant is usable only over
    /// a connection authenticated by that key.
    #[serde(with = "crate::serde_hex::array")]
    pub grantee_key_id: [u8; 32],
    /// The documents, sorted by id, no duplicates.
    pub documents: Vec<GrantedDocument>,
    /// Why.
    pub purpose: Purpose,
    /// Valid from, unix seconds.
    pub not_before: i64,
    /// Valid until, unix seconds.
    pub not_after: i64,
    /// How many fetches it allows.
    pub max_uses: u32,
}

impl GrantBody {
    /// Canonical bytes: tag, request id (16), resident, grantee, grantee key id (32),
    /// u16 BE count then per document id (16) + content hash (32), purpose, not_before
    /// (i64 BE), not_after (i64 BE), max_uses (u32 BE).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 48 * self.documents.len());
        out.extend_from_slice(GRANT_BODY_TAG_V1);
        out.extend_from_slice(self.request_id.as_bytes());
        put_str(&mut out, self.resident.as_str());
        put_str(&mut out, self.grantee.as_str());
        out.extend_from_slice(&self.grantee_key_id);
        put_count(&mut out, self.documents.len());
        for doc in &self.documents {
            out.extend_from_slice(doc.document_id.as_bytes());
            out.extend_from_slice(doc.content_hash.as_bytes());
        }
        put_str(&mut out, self.purpose.as_str());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.extend_from_slice(&self.max_uses.to_be_bytes());
        out
    }

    /// The grant's id.
    pub fn id(&self) -> GrantId {
        GrantId::derive(&[&self.canonical_bytes()])
    }

    /// The resident's consent: a signature over the canonical bytes.
    pub fn consent(&self, resident: &Identity) -> Signature {
        resident.sign(&self.canonical_bytes())
    }

    /// Checks the shape: 1..=[`GRANT_DOCUMENTS_MAX`] sorted unique documents, a window of at
    /// most [`GRANT_TTL_S_MAX`], 1..=[`GRANT_USES_MAX`] uses.
    pub fn check_shape(&self) -> Result<(), PkiError> {
        let n = self.documents.len();
        if n == 0 || n > GRANT_DOCUMENTS_MAX {
            return Err(malformed(format!(
                "a grant covers 1 to {GRANT_DOCUMENTS_MAX} documents, not {n}"
            )));
        }
        if self
            .documents
            .windows(2)
            .any(|w| w[0].document_id >= w[1].document_id)
        {
            return Err(malformed(
                "a grant's documents must be sorted by id without duplicates".into(),
            ));
        }
        let window = self.not_after.saturating_sub(self.not_before);
        if window <= 0 || window as u64 > GRANT_TTL_S_MAX {
            return Err(malformed(format!(
                "a grant is valid 1 to {GRANT_TTL_S_MAX} seconds, not {window}"
            )));
        }
        if self.max_uses == 0 || self.max_uses > GRANT_USES_MAX {
            return Err(malformed(format!(
                "a grant allows 1 to {GRANT_USES_MAX} uses, not {}",
                self.max_uses
            )));
        }
        Ok(())
    }

    /// Checks that `resident` (a verified certificate) is the resident named and signed.
    pub fn verify_consent(&self, consent: &Signature, resident: &PeerCert) -> Result<(), PkiError> {
        check_signer(resident, Role::Resident, self.resident.as_str())?;
        verify_signature(&resident.public_key, &self.canonical_bytes(), consent)
    }

    /// Whether the grant covers `document_id`.
    pub fn covers(&self, document_id: &DocumentId) -> Option<&GrantedDocument> {
        self.documents
            .binary_search_by(|d| d.document_id.cmp(document_id))
            .ok()
            .and_then(|i| self.documents.get(i))
    }
}

/// A sealed grant: the body, the resident's consent, and the node's seal, with both
/// certificates so it can be checked offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Format version ([`GRANT_VERSION`]).
    pub version: u8,
    /// What was consented to.
    pub body: GrantBody,
    /// The resident's signature over `body`.
    pub consent: Signature,
    /// The resident's certificate (DER).
    #[serde(with = "crate::serde_hex::bytes")]
    pub resident_cert: Vec<u8>,
    /// The node's signature over [`GRANT_SEAL_TAG_V1`], the body's bytes and the consent.
    pub seal: Signature,
    /// The sealing node's certificate (DER).
    #[serde(with = "crate::serde_hex::bytes")]
    pub node_cert: Vec<u8>,
}

/// What [`Grant::verify`] established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedGrant {
    /// The grant's id.
    pub id: GrantId,
    /// The consenting resident's certificate (for a statutory grant, the
    /// approving authority's, or the ordering department's own).
    pub resident: PeerCert,
    /// The sealing node's certificate.
    pub node: PeerCert,
}

impl Grant {
    /// Seals a consented body with the node's key.
    pub fn seal(
        body: GrantBody,
        consent: Signature,
        resident_cert: Vec<u8>,
        node: &Identity,
    ) -> Grant {
        let seal = node.sign(&seal_bytes(&body, &consent));
        Grant {
            version: GRANT_VERSION,
            body,
            consent,
            resident_cert,
            seal,
            node_cert: node.cert_der().to_vec(),
        }
    }

    /// The grant's id (of its body).
    pub fn id(&self) -> GrantId {
        self.body.id()
    }

    /// Offline verification: version and shape; the resident's and the node's certificates
    /// chain to `ca_der` (valid at `not_before`, not revoked by `crls`), with roles resident
    /// and node; the consent and the seal verify. Does not check the time window, use
    /// counts or grant revocation (state the node keeps).
    pub fn verify(&self, ca_der: &[u8], crls: &[Vec<u8>]) -> Result<VerifiedGrant, PkiError> {
        if self.version != GRANT_VERSION {
            return Err(malformed(format!(
                "grant version {} is not supported (expected {GRANT_VERSION})",
                self.version
            )));
        }
        self.body.check_shape()?;
        let at = self.body.not_before;
        let resident = verify_certificate(&self.resident_cert, ca_der, crls, at)?;
        let node = verify_certificate(&self.node_cert, ca_der, crls, at)?;
        if node.role != Role::Node {
            return Err(PkiError::IssuerMismatch {
                reason: format!(
                    "the grant was sealed by a {} certificate, not a node",
                    node.role
                ),
            });
        }
        match resident.role {
            // Access by law: an authority's approval of a statutory order
            // (or the ordering department's own, where the purpose needs no
            // authority) stands where the resident's consent would.
            Role::Authority => verify_signature(
                &resident.public_key,
                &self.body.canonical_bytes(),
                &self.consent,
            )?,
            Role::Department if resident.name == self.body.grantee => verify_signature(
                &resident.public_key,
                &self.body.canonical_bytes(),
                &self.consent,
            )?,
            _ => self.body.verify_consent(&self.consent, &resident)?,
        }
        verify_signature(
            &node.public_key,
            &seal_bytes(&self.body, &self.consent),
            &self.seal,
        )?;
        Ok(VerifiedGrant {
            id: self.id(),
            resident,
            node,
        })
    }

    /// Checks only the node's seal, with an already verified node certificate.
    pub fn verify_seal(&self, node: &PeerCert) -> Result<(), PkiError> {
        check_signer(node, Role::Node, node.name.as_str())?;
        verify_signature(
            &node.public_key,
            &seal_bytes(&self.body, &self.consent),
            &self.seal,
        )
    }

    /// Serializes to JSON.
    pub fn to_json(&self) -> Result<String, PkiError> {
        serde_json::to_string_pretty(self).map_err(|e| malformed(e.to_string()))
    }

    /// Parses JSON, refusing more than [`GRANT_JSON_LEN_MAX`] bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Grant, PkiError> {
        if bytes.len() > GRANT_JSON_LEN_MAX {
            return Err(malformed(format!(
                "{} bytes is more than a grant's {GRANT_JSON_LEN_MAX}",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not a grant: {e}")))
    }
}

/// What a node signs to seal a grant.
fn seal_bytes(body: &GrantBody, consent: &Signature) -> Vec<u8> {
    let mut out = GRANT_SEAL_TAG_V1.to_vec();
    out.extend_from_slice(&body.canonical_bytes());
    out.extend_from_slice(consent.as_bytes());
    out
}

fn check_signer(cert: &PeerCert, role: Role, name: &str) -> Result<(), PkiError> {
    if cert.role != role || cert.name.as_str() != name {
        return Err(PkiError::IssuerMismatch {
            reason: format!(
                "signed by {} {}, but the statement names {role} {name}",
                cert.role, cert.name
            ),
        });
    }
    Ok(())
}

impl RequestScope {
    /// The scope's canonical bytes (an access request's and an order's):
    /// u8 1 = documents then u16 BE count and 16-byte ids; 2 = kinds then
    /// u16 BE count and strings.
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        match self {
            RequestScope::Documents(ids) => {
                out.push(1);
                put_count(out, ids.len());
                for id in ids {
                    out.extend_from_slice(id.as_bytes());
                }
            }
            RequestScope::Kinds(kinds) => {
                out.push(2);
                put_count(out, kinds.len());
                for kind in kinds {
                    put_str(out, kind.as_str());
                }
            }
        }
    }
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
}

fn malformed(reason: String) -> PkiError {
    PkiError::MalformedStatement { reason }
}
