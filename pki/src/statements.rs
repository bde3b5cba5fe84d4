//! Signed statements: canonical, versioned bytes signed with Ed25519. Never JSON.

use serde::{Deserialize, Serialize};

use crate::cert::{PeerCert, Role};
use crate::error::PkiError;
use crate::identity::{verify_signature, Identity, Signature};
use crate::ids::{ContentHash, DocumentId, DocumentKind, Name, ResidentId};

/// Domain tag that starts the canonical bytes of an [`IssueRecord`], version 1.
pub const ISSUE_RECORD_TAG_V1: &[u8] = b"vault/issue-record/v1\n";

/// What an issuing department signs when it puts a document in the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRecord {
    /// The resident the document is about.
    pub resident: ResidentId,
    /// The kind of document.
    pub kind: DocumentKind,
    /// BLAKE3 hash of the document's bytes.
    pub content_hash: ContentHash,
    /// Size of the document in bytes.
    pub size: u64,
    /// When the department issued it, unix seconds.
    pub issued_at: i64,
    /// The issuing department's name (its certificate CN).
    pub issuer: Name,
}

impl IssueRecord {
    /// Canonical bytes: [`ISSUE_RECORD_TAG_V1`], then resident, kind (u16 BE length + UTF-8),
    /// content hash (32 raw bytes), size, issued_at (8 bytes BE each), issuer (u16 BE length + UTF-8).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ISSUE_RECORD_TAG_V1.len() + 3 * 66 + 32 + 16);
        out.extend_from_slice(ISSUE_RECORD_TAG_V1);
        put_str(&mut out, self.resident.as_str());
        put_str(&mut out, self.kind.as_str());
        out.extend_from_slice(self.content_hash.as_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        put_str(&mut out, self.issuer.as_str());
        out
    }

    /// Signs the canonical bytes with the identity's key.
    pub fn sign(&self, identity: &Identity) -> Signature {
        identity.sign(&self.canonical_bytes())
    }

    /// The id of the document this signed record registers.
    pub fn document_id(&self, signature: &Signature) -> DocumentId {
        DocumentId::derive(&[&self.canonical_bytes(), signature.as_bytes()])
    }

    /// Checks that `issuer` is a department named `self.issuer` (`pki.issuer_mismatch`) and that
    /// `signature` verifies with its public key (`pki.bad_signature`).
    ///
    /// The caller must have verified `issuer` (e.g. with [`crate::verify_certificate`]).
    pub fn verify(&self, signature: &Signature, issuer: &PeerCert) -> Result<(), PkiError> {
        if issuer.role != Role::Department {
            return Err(PkiError::IssuerMismatch {
                reason: format!(
                    "the signing certificate has role {}, only a department may issue documents",
                    issuer.role
                ),
            });
        }
        if issuer.name != self.issuer {
            return Err(PkiError::IssuerMismatch {
                reason: format!(
                    "the record names issuer {} but was signed by {}",
                    self.issuer, issuer.name
                ),
            });
        }
        verify_signature(&issuer.public_key, &self.canonical_bytes(), signature)
    }
}

/// Appends a u16 big-endian length and the UTF-8 bytes. Every string here is a parsed id of at
/// most [`crate::NAME_LEN_MAX`] bytes, so the length always fits.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_are_stable() -> Result<(), PkiError> {
        let record = IssueRecord {
            resident: ResidentId::parse("resident-1")?,
            kind: DocumentKind::parse("marriage-certificate")?,
            content_hash: ContentHash([0x11; 32]),
            size: 1024,
            issued_at: 1_700_000_000,
            issuer: Name::parse("civil-affairs")?,
        };
        let golden = [
            "7661756c742f69737375652d7265636f72642f76310a", // "vault/issue-record/v1\n"
            "000a",
            "7265736964656e742d31", // resident-1
            "0014",
            "6d617272696167652d6365727469666963617465", // marriage-certificate
            "1111111111111111111111111111111111111111111111111111111111111111", // hash
            "0000000000000400",                         // size 1024
            "000000006553f100",                         // issued_at 1_700_000_000
            "000d",
            "636976696c2d61666661697273", // civil-affairs
        ]
        .concat();
        assert_eq!(hex::encode(record.canonical_bytes()), golden);
        Ok(())
    }
}
