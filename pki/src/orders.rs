//! Statutory orders: access by law, without the resident's consent.
//!
//! A department signs an [`Order`] for a resident's documents under a
//! statutory purpose, naming a case reference and how long the access
//! stays sealed. Where the purpose registry requires it, an authority (a
//! certificate of role `authority`: a court, a prosecutor) approves it by
//! signing the [`crate::GrantBody`] the node then seals, exactly as a
//! resident signs their consent; [`crate::Grant::verify`] accepts that
//! signature from an authority certificate. An authority extends a seal by
//! signing a [`SealExtension`]. Canonical bytes with domain tags, as the
//! other statements; state (approval, disclosure) is the node's.

use serde::{Deserialize, Serialize};

use crate::cert::{PeerCert, Role};
use crate::error::PkiError;
use crate::grants::{RequestScope, GRANT_DOCUMENTS_MAX, GRANT_TTL_S_MAX};
use crate::identity::{verify_signature, Identity, Signature};
use crate::ids::{Name, Purpose, RequestId, ResidentId};
use crate::statements::put_str;

/// Domain tag of an order's canonical bytes.
pub const ORDER_TAG_V1: &[u8] = b"vault/order/v1\n";
/// Domain tag of a seal extension's canonical bytes.
pub const SEAL_EXTENSION_TAG_V1: &[u8] = b"vault/seal-extension/v1\n";
/// Longest case reference, in bytes (UTF-8).
pub const CASE_REF_LEN_MAX: usize = 64;
/// Longest seal any order may ask, in seconds (5 years); the purpose
/// registry sets each statutory purpose's own, usually shorter, bound.
pub const SEAL_S_MAX: u64 = 5 * 365 * 24 * 3600;

/// What a department signs to order access by law.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Whose documents.
    pub resident: ResidentId,
    /// The ordering department (must match the signer's certificate).
    pub department: Name,
    /// Exact documents or kinds.
    pub scope: RequestScope,
    /// A statutory purpose from the registry.
    pub purpose: Purpose,
    /// The case the order belongs to (1 to [`CASE_REF_LEN_MAX`] bytes of
    /// printable text), shown to the resident on disclosure.
    pub case_ref: String,
    /// How long the access stays hidden from the resident, in seconds from
    /// when the node records the order.
    pub seal_s: u64,
    /// How long the grant is valid, in seconds.
    pub ttl_s: u64,
    /// When the department made it (unix seconds).
    pub created_at: i64,
    /// Random bytes making each order unique.
    #[serde(with = "crate::serde_hex::array")]
    pub nonce: [u8; 16],
}

impl Order {
    /// Canonical bytes: tag; resident, department (u16 BE len + UTF-8);
    /// scope as in an access request (u8 1 documents / 2 kinds, u16 count,
    /// items); purpose, case reference (u16 len + UTF-8); seal_s, ttl_s
    /// u64 BE; created_at i64 BE; nonce [16].
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(ORDER_TAG_V1);
        put_str(&mut out, self.resident.as_str());
        put_str(&mut out, self.department.as_str());
        self.scope.put(&mut out);
        put_str(&mut out, self.purpose.as_str());
        put_str(&mut out, &self.case_ref);
        out.extend_from_slice(&self.seal_s.to_be_bytes());
        out.extend_from_slice(&self.ttl_s.to_be_bytes());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    /// Signs the canonical bytes with the department's key.
    pub fn sign(&self, identity: &Identity) -> Signature {
        identity.sign(&self.canonical_bytes())
    }

    /// The order's id: a [`RequestId`] over its canonical bytes (whose
    /// domain tag differs from an access request's) and signature. The
    /// grant an order leads to names it as its `request_id`.
    pub fn id(&self, signature: &Signature) -> RequestId {
        RequestId::derive(&[&self.canonical_bytes(), signature.as_bytes()])
    }

    /// Checks the shape (scope 1 to 64 items, ttl and seal within their
    /// bounds, a case reference) and the department's signature.
    pub fn verify(&self, signature: &Signature, signer: &PeerCert) -> Result<(), PkiError> {
        let count = match &self.scope {
            RequestScope::Documents(ids) => ids.len(),
            RequestScope::Kinds(kinds) => kinds.len(),
        };
        if count == 0 || count > GRANT_DOCUMENTS_MAX {
            return Err(malformed(format!(
                "an order names 1 to {GRANT_DOCUMENTS_MAX} documents or kinds, not {count}"
            )));
        }
        if self.ttl_s == 0 || self.ttl_s > GRANT_TTL_S_MAX {
            return Err(malformed(format!(
                "an order's ttl is 1 to {GRANT_TTL_S_MAX} seconds, not {}",
                self.ttl_s
            )));
        }
        if self.seal_s > SEAL_S_MAX {
            return Err(malformed(format!(
                "an order's seal is at most {SEAL_S_MAX} seconds, not {}",
                self.seal_s
            )));
        }
        check_case_ref(&self.case_ref)?;
        if signer.role != Role::Department || signer.name != self.department {
            return Err(PkiError::IssuerMismatch {
                reason: format!(
                    "signed by {} {}, but the order names department {}",
                    signer.role, signer.name, self.department
                ),
            });
        }
        verify_signature(&signer.public_key, &self.canonical_bytes(), signature)
    }
}

/// Checks a case reference: 1 to [`CASE_REF_LEN_MAX`] bytes, no control
/// characters.
pub fn check_case_ref(case_ref: &str) -> Result<(), PkiError> {
    if case_ref.is_empty()
        || case_ref.len() > CASE_REF_LEN_MAX
        || case_ref.chars().any(char::is_control)
    {
        return Err(malformed(format!(
            "a case reference is 1 to {CASE_REF_LEN_MAX} bytes of printable text"
        )));
    }
    Ok(())
}

/// What an authority signs to keep an order sealed longer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealExtension {
    /// Which order.
    pub order_id: RequestId,
    /// The new end of the seal (unix seconds).
    pub seal_until: i64,
    /// When the authority signed it (unix seconds).
    pub signed_at: i64,
}

impl SealExtension {
    /// Canonical bytes: tag; order id [16]; seal_until, signed_at i64 BE.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = SEAL_EXTENSION_TAG_V1.to_vec();
        out.extend_from_slice(self.order_id.as_bytes());
        out.extend_from_slice(&self.seal_until.to_be_bytes());
        out.extend_from_slice(&self.signed_at.to_be_bytes());
        out
    }

    /// Signs with the authority's key.
    pub fn sign(&self, identity: &Identity) -> Signature {
        identity.sign(&self.canonical_bytes())
    }

    /// Checks the signature is an authority's.
    pub fn verify(&self, signature: &Signature, signer: &PeerCert) -> Result<(), PkiError> {
        if signer.role != Role::Authority {
            return Err(PkiError::IssuerMismatch {
                reason: format!(
                    "a seal is extended by an authority, not {} {}",
                    signer.role, signer.name
                ),
            });
        }
        verify_signature(&signer.public_key, &self.canonical_bytes(), signature)
    }
}

fn malformed(reason: String) -> PkiError {
    PkiError::MalformedStatement { reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::DocumentKind;

    fn order() -> Order {
        Order {
            resident: ResidentId::parse("resident-1").unwrap(),
            department: Name::parse("police").unwrap(),
            scope: RequestScope::Kinds(vec![DocumentKind::parse("tax-record").unwrap()]),
            purpose: Purpose::parse("criminal-investigation").unwrap(),
            case_ref: "CASE-2026-17".into(),
            seal_s: 60,
            ttl_s: 3600,
            created_at: 1_000,
            nonce: [1; 16],
        }
    }

    #[test]
    fn every_field_changes_the_bytes_and_the_tag_differs_from_a_request() {
        let base = order().canonical_bytes();
        assert!(base.starts_with(ORDER_TAG_V1));
        let mut o = order();
        o.case_ref = "CASE-2026-18".into();
        assert_ne!(o.canonical_bytes(), base);
        let mut o = order();
        o.seal_s = 61;
        assert_ne!(o.canonical_bytes(), base);
        let mut o = order();
        o.ttl_s = 3601;
        assert_ne!(o.canonical_bytes(), base);
    }

    #[test]
    fn case_references_are_bounded_and_printable() {
        assert!(check_case_ref("A-1").is_ok());
        assert!(check_case_ref("").is_err());
        assert!(check_case_ref("a\nb").is_err());
        assert!(check_case_ref(&"x".repeat(CASE_REF_LEN_MAX + 1)).is_err());
    }
}
