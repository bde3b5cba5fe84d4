//! Ed25519 private keys as the CA writes them: RFC 8410 PKCS#8 v1 ("PRIVATE KEY" PEM).
//!
//! This module **is**: generating a key and its file bytes, and reading a key file's
//! DER back into a signing key for rcgen (CA) or ring (identities).
//! It is **not**: file I/O or permissions (that is `files` and `identity`).
//!
//! **Invariant:** every key this crate writes is the 48-byte RFC 8410 `PrivateKeyInfo`
//! (version 0, algorithm id-Ed25519 1.3.101.112, the 32-byte seed in an OCTET STRING in
//! an OCTET STRING), which OpenSSL 3 and Python's `cryptography` read. Reading accepts
//! that and the PKCS#8 v2 documents (with the public key) older versions wrote.

use rcgen::{KeyPair, PKCS_ED25519};
use ring::rand::SecureRandom;
use ring::signature::Ed25519KeyPair;
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::error::PkiError;

/// Length of an Ed25519 private key seed, in bytes.
pub(crate) const ED25519_SEED_LEN: usize = 32;
/// Length of an RFC 8410 PKCS#8 v1 Ed25519 key, DER, in bytes.
pub(crate) const PKCS8_V1_LEN: usize = 48;
/// The DER of an RFC 8410 PKCS#8 v1 Ed25519 key up to its seed: SEQUENCE (46 bytes),
/// INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING (34) { OCTET STRING (32) }.
const PKCS8_V1_PREFIX: [u8; PKCS8_V1_LEN - ED25519_SEED_LEN] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Base64 characters per PEM line (RFC 7468).
const PEM_LINE_CHARS: usize = 64;

/// A freshly generated Ed25519 key: rcgen's handle for signing, and the PEM to write.
pub(crate) struct NewKey {
    /// The key, for signing certificates (and, for the CA, CRLs).
    pub(crate) pair: KeyPair,
    /// The key as RFC 8410 PKCS#8 v1 PEM ("PRIVATE KEY"), to write with mode 0600.
    pub(crate) pem: String,
}

/// Generates an Ed25519 key from the system random number generator.
pub(crate) fn generate(what: &'static str) -> Result<NewKey, PkiError> {
    let mut seed = [0u8; ED25519_SEED_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| PkiError::Generate {
            what,
            reason: "the system random number generator failed".to_owned(),
        })?;
    let der = pkcs8_v1_der(&seed);
    let pair = rcgen_key_pair(&der)?;
    let pem = pkcs8_pem(&der);
    Ok(NewKey { pair, pem })
}

/// The RFC 8410 PKCS#8 v1 DER of the Ed25519 key with this seed.
pub(crate) fn pkcs8_v1_der(seed: &[u8; ED25519_SEED_LEN]) -> [u8; PKCS8_V1_LEN] {
    let mut der = [0u8; PKCS8_V1_LEN];
    der[..PKCS8_V1_PREFIX.len()].copy_from_slice(&PKCS8_V1_PREFIX);
    der[PKCS8_V1_PREFIX.len()..].copy_from_slice(seed);
    der
}

/// PKCS#8 DER as a PEM "PRIVATE KEY" section (64-character lines, trailing newline).
pub(crate) fn pkcs8_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for (i, c) in b64.chars().enumerate() {
        if i > 0 && i % PEM_LINE_CHARS == 0 {
            pem.push('\n');
        }
        pem.push(c);
    }
    pem.push('\n');
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// An Ed25519 key from PKCS#8 DER (v1 or v2) for rcgen. Error code `pki.bad_key`.
pub(crate) fn rcgen_key_pair(der: &[u8]) -> Result<KeyPair, PkiError> {
    // rcgen (ring backend) reads Ed25519 with `from_pkcs8_maybe_unchecked`: v1 and v2.
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519).map_err(
        |e| PkiError::BadKey {
            reason: e.to_string(),
        },
    )
}

/// An Ed25519 key from PKCS#8 DER (v1 or v2) for ring. Error code `pki.bad_key`.
///
/// A v2 document's public key is checked against its seed; a v1 document has none.
pub(crate) fn ring_key_pair(der: &[u8]) -> Result<Ed25519KeyPair, PkiError> {
    Ed25519KeyPair::from_pkcs8(der)
        .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
        .map_err(|e| PkiError::BadKey {
            reason: e.to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ring::signature::{KeyPair as _, UnparsedPublicKey, ED25519};
    use rustls_pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn a_generated_key_is_the_48_byte_v1_document_in_pem() {
        let key = generate("test key").unwrap();
        assert!(key.pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(key.pem.ends_with("-----END PRIVATE KEY-----\n"));
        let der = PrivatePkcs8KeyDer::from_pem_slice(key.pem.as_bytes()).unwrap();
        let der = der.secret_pkcs8_der();
        assert_eq!(der.len(), PKCS8_V1_LEN);
        assert_eq!(hex::encode(&der[..16]), "302e020100300506032b657004220420");
        // rcgen signs with the same key it was handed.
        assert_eq!(key.pair.serialize_der(), der);
        // ring loads it; its public key is rcgen's; a signature verifies with it.
        let ring_pair = ring_key_pair(der).unwrap();
        assert_eq!(ring_pair.public_key().as_ref(), key.pair.public_key_raw());
        let sig = ring_pair.sign(b"message");
        UnparsedPublicKey::new(&ED25519, key.pair.public_key_raw())
            .verify(b"message", sig.as_ref())
            .unwrap();
    }

    #[test]
    fn a_v2_document_and_its_v1_form_are_the_same_key() {
        let rng = ring::rand::SystemRandom::new();
        let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let v2 = v2.as_ref();
        // ring's v2 layout: version 1, then the seed at the same offset as in v1.
        assert_eq!(hex::encode(&v2[..5]), "3051020101");
        let seed: [u8; ED25519_SEED_LEN] = v2[16..48].try_into().unwrap();
        let v1 = pkcs8_v1_der(&seed);
        let from_v2 = ring_key_pair(v2).unwrap();
        let from_v1 = ring_key_pair(&v1).unwrap();
        assert_eq!(from_v2.public_key().as_ref(), from_v1.public_key().as_ref());
        assert_eq!(
            rcgen_key_pair(v2).unwrap().public_key_raw(),
            rcgen_key_pair(&v1).unwrap().public_key_raw()
        );
        // Ed25519 is deterministic: the same key gives the same signature.
        assert_eq!(from_v2.sign(b"m").as_ref(), from_v1.sign(b"m").as_ref());
    }

    #[test]
    fn a_key_that_is_not_ed25519_pkcs8_is_refused() {
        for der in [&b""[..], &[0x30, 0x00], &PKCS8_V1_PREFIX] {
            assert_eq!(ring_key_pair(der).unwrap_err().code(), "pki.bad_key");
            assert_eq!(rcgen_key_pair(der).unwrap_err().code(), "pki.bad_key");
        }
    }
}
