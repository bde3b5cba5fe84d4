//! The district's salt key: the RSA key whose signature over a resident's name fixes that
//! resident's log salt, so that a resident can check the salt a node gives them
//! (`docs/COMPLETENESS.md` §4).
//!
//! ```text
//! message = "vault/resident-salt/v1\n" || resident
//! σ       = RSASSA-PKCS1-v1_5-SIGN(salt key, SHA-256, message)      (RFC 8017 §8.2)
//! salt    = SHA-256("vault/resident-salt/v1\n" || σ)
//! ```
//!
//! An RSA PKCS#1 v1.5 signature is *unique*: verification recomputes the one padded
//! message EM and RSA is a permutation of `0..n`, so exactly one σ < n verifies (ring
//! refuses σ ≥ n, tested below). So σ, and hence the salt, is a function of the public key
//! and the resident alone — the RSA-FDH-VRF idea of RFC 9381 with PKCS#1 v1.5 encoding — and
//! nobody, not even the key's holder, can make a second salt that verifies. Without the
//! private key nobody can compute a resident's salt, so tags stay unlinkable to residents.
//!
//! This module **is**: the key files (`salt.key.pem`, PKCS#8 "PRIVATE KEY", mode 0600, on
//! nodes and in the CA directory; `salt.pub`, PEM "RSA PUBLIC KEY" (RFC 8017 A.1.1) in every
//! identity directory), the signer ([`SaltSigner`]) and the check ([`SaltVerifier`]). Keys
//! are generated with the `rsa` crate (ring cannot generate RSA keys); ring does every
//! signature and verification.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest;
use ring::signature::{self, KeyPair as _, RsaKeyPair};

use crate::error::PkiError;
use crate::files;
use crate::identity::check_key_permissions;
use crate::ids::ResidentId;

/// The salt key's secret file: in the CA directory and in every node identity directory.
pub const SALT_KEY_FILE: &str = "salt.key.pem";
/// The salt key's public half: in the CA directory and every identity directory.
pub const SALT_PUB_FILE: &str = "salt.pub";
/// Domain tag of the signed message and of the salt's hash.
pub const RESIDENT_SALT_TAG: &[u8] = b"vault/resident-salt/v1\n";
/// Size of a generated salt key's modulus, in bits.
pub const SALT_KEY_BITS: usize = 2048;
/// Longest σ accepted, in bytes (a 8192-bit key, ring's limit for verification).
pub const SALT_PROOF_LEN_MAX: usize = 1024;

const PUB_PEM_LABEL: &str = "RSA PUBLIC KEY";

/// The message σ signs for `resident`.
pub fn salt_message(resident: &ResidentId) -> Vec<u8> {
    [RESIDENT_SALT_TAG, resident.as_str().as_bytes()].concat()
}

/// The salt σ fixes: SHA-256("vault/resident-salt/v1\n" || σ).
pub fn salt_from_proof(sigma: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(RESIDENT_SALT_TAG);
    ctx.update(sigma);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The district's salt key (secret half).
pub struct SaltSigner {
    pair: RsaKeyPair,
}

impl std::fmt::Debug for SaltSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaltSigner").finish_non_exhaustive()
    }
}

impl SaltSigner {
    /// Generates a new [`SALT_KEY_BITS`] key; answers it with its PKCS#8 PEM.
    pub fn generate() -> Result<(Self, String), PkiError> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let generate = |reason: String| PkiError::Generate {
            what: "salt key",
            reason,
        };
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, SALT_KEY_BITS)
            .map_err(|e| generate(e.to_string()))?;
        let der = key.to_pkcs8_der().map_err(|e| generate(e.to_string()))?;
        let pem = crate::keys::pkcs8_pem(der.as_bytes());
        Ok((Self::from_pkcs8(der.as_bytes())?, pem))
    }

    /// Loads `salt.key.pem` (refusing one readable by group or others).
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        check_key_permissions(path)?;
        Self::from_pkcs8(&files::read_key_pem(path)?)
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, PkiError> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| PkiError::BadKey {
            reason: format!("the salt key is not an RSA PKCS#8 key ({e})"),
        })?;
        Ok(Self { pair })
    }

    /// σ for `resident` (deterministic: the same bytes every time, on every node).
    pub fn sign(&self, resident: &ResidentId) -> Result<Vec<u8>, PkiError> {
        let mut sigma = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                &salt_message(resident),
                &mut sigma,
            )
            .map_err(|_| PkiError::BadKey {
                reason: "the salt key cannot sign".into(),
            })?;
        Ok(sigma)
    }

    /// The public half.
    pub fn verifier(&self) -> SaltVerifier {
        SaltVerifier {
            der: self.pair.public_key().as_ref().to_vec(),
        }
    }
}

/// The district's salt key (public half): checks a σ and derives the salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaltVerifier {
    /// RSAPublicKey DER (RFC 8017 A.1.1).
    der: Vec<u8>,
}

impl SaltVerifier {
    /// Loads `salt.pub`; `None` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, PkiError> {
        if !path.exists() {
            return Ok(None);
        }
        let text = String::from_utf8(files::read(path)?).map_err(|_| PkiError::BadPem {
            path: path.to_path_buf(),
            reason: "not UTF-8".into(),
        })?;
        Self::from_pem(&text)
            .map(Some)
            .map_err(|reason| PkiError::BadPem {
                path: path.to_path_buf(),
                reason,
            })
    }

    fn from_pem(text: &str) -> Result<Self, String> {
        let begin = format!("-----BEGIN {PUB_PEM_LABEL}-----");
        let end = format!("-----END {PUB_PEM_LABEL}-----");
        let body = text
            .split_once(&begin)
            .and_then(|(_, rest)| rest.split_once(&end))
            .map(|(body, _)| body)
            .ok_or_else(|| format!("no {PUB_PEM_LABEL} section"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = BASE64
            .decode(b64)
            .map_err(|_| "bad base64 in the RSA PUBLIC KEY section".to_string())?;
        if der.is_empty() {
            return Err("an empty RSA PUBLIC KEY section".into());
        }
        Ok(Self { der })
    }

    /// `salt.pub`'s text.
    pub fn to_pem(&self) -> String {
        let b64 = BASE64.encode(&self.der);
        let mut pem = format!("-----BEGIN {PUB_PEM_LABEL}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PUB_PEM_LABEL}-----\n"));
        pem
    }

    /// Checks σ for `resident` and answers the salt it fixes; `pki.bad_signature` when it
    /// does not verify (a wrong key, another resident's σ, any σ ≥ n).
    pub fn salt(&self, resident: &ResidentId, sigma: &[u8]) -> Result<[u8; 32], PkiError> {
        if sigma.len() > SALT_PROOF_LEN_MAX {
            return Err(PkiError::BadSignature);
        }
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.der)
            .verify(&salt_message(resident), sigma)
            .map_err(|_| PkiError::BadSignature)?;
        Ok(salt_from_proof(sigma))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn resident(name: &str) -> ResidentId {
        ResidentId::parse(name).unwrap()
    }

    /// a + b as big-endian numbers of `a.len()` bytes; `None` on overflow.
    fn add_be(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; a.len()];
        let mut carry = 0u16;
        for i in (0..a.len()).rev() {
            let j = (b.len() + i).checked_sub(a.len());
            let sum = u16::from(a[i]) + j.map_or(0, |j| u16::from(b[j])) + carry;
            out[i] = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        (carry == 0).then_some(out)
    }

    #[test]
    fn a_salt_is_fixed_by_the_key_and_checked_by_its_public_half() {
        let (signer, pem) = SaltSigner::generate().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let verifier = SaltVerifier::from_pem(&signer.verifier().to_pem()).unwrap();
        assert_eq!(verifier, signer.verifier());
        let alice = resident("110101199001011234");
        let sigma = signer.sign(&alice).unwrap();
        assert_eq!(sigma, signer.sign(&alice).unwrap(), "deterministic");
        assert_eq!(sigma.len(), SALT_KEY_BITS / 8);
        let salt = verifier.salt(&alice, &sigma).unwrap();
        assert_eq!(salt, salt_from_proof(&sigma));
        // Another resident's σ, an altered σ, another key's σ: refused.
        let bob = resident("110101199001015678");
        assert_eq!(
            verifier.salt(&bob, &sigma).unwrap_err().code(),
            "pki.bad_signature"
        );
        let mut altered = sigma.clone();
        altered[100] ^= 1;
        assert!(verifier.salt(&alice, &altered).is_err());
        let (other, _) = SaltSigner::generate().unwrap();
        let foreign = other.sign(&alice).unwrap();
        assert!(verifier.salt(&alice, &foreign).is_err());
        assert!(verifier.salt(&alice, &[]).is_err());
    }

    #[test]
    fn sigma_plus_n_does_not_verify_so_the_salt_is_unique() {
        let (signer, _) = SaltSigner::generate().unwrap();
        let verifier = signer.verifier();
        let n = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(signer.pair.public()).n;
        // σ + n is the same residue mod n; RSA would map it to the same padded
        // message, so uniqueness rests on refusing every σ ≥ n. Find residents
        // whose σ + n still fits in the modulus's length (σ < 2^k − n).
        let mut tried = 0;
        for i in 0..64 {
            let r = resident(&format!("resident-{i}"));
            let sigma = signer.sign(&r).unwrap();
            let Some(wrapped) = add_be(&sigma, &n) else {
                continue;
            };
            tried += 1;
            assert_ne!(wrapped, sigma);
            assert!(verifier.salt(&r, &sigma).is_ok());
            assert_eq!(
                verifier.salt(&r, &wrapped).unwrap_err().code(),
                "pki.bad_signature"
            );
        }
        assert!(tried > 0, "some σ + n fits in 2048 bits");
        // n itself, and a σ one byte longer with a leading zero: refused too.
        assert!(verifier.salt(&resident("resident-0"), &n).is_err());
        let sigma = signer.sign(&resident("resident-0")).unwrap();
        let padded = [&[0u8][..], &sigma].concat();
        assert!(verifier.salt(&resident("resident-0"), &padded).is_err());
    }

    #[test]
    fn salt_pub_files_round_trip_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SALT_PUB_FILE);
        assert_eq!(SaltVerifier::load(&path).unwrap(), None);
        let (signer, _) = SaltSigner::generate().unwrap();
        std::fs::write(&path, signer.verifier().to_pem()).unwrap();
        assert_eq!(SaltVerifier::load(&path).unwrap(), Some(signer.verifier()));
        std::fs::write(&path, "not a key").unwrap();
        assert_eq!(SaltVerifier::load(&path).unwrap_err().code(), "pki.bad_pem");
    }
}
