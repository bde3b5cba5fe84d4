//! An identity directory (cert.pem, key.pem, ca.pem), Ed25519 signatures and their check.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cert::{parse_certificate, PeerCert};
use crate::error::PkiError;
use crate::files;
use crate::keys;
use crate::log_key::{self, LogVerifier, LOG_PUB_FILE};

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A certificate, its private key and the CA certificate, loaded from an identity directory,
/// with the log keys the identity trusts (`log.pub`, if present).
#[derive(Clone)]
pub struct Identity {
    /// What the certificate says.
    pub cert: PeerCert,
    dir: PathBuf,
    log_keys: Vec<LogVerifier>,
    salt_key: Option<crate::salt_key::SaltVerifier>,
    witness_policy: Option<Arc<crate::cosignature::WitnessPolicy>>,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    ca_der: Vec<u8>,
    key_pair: Arc<Ed25519KeyPair>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads `dir/cert.pem`, `dir/key.pem`, `dir/ca.pem` and, if present, `dir/log.pub` (the
    /// district log's verifier keys) and `dir/salt.pub` (the district salt key's public half). Refuses a `key.pem` readable by group or others with
    /// `pki.key_permissions`, a key that does not match the certificate, and a `log.pub`
    /// that does not parse.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let key_path = dir.join("key.pem");
        check_key_permissions(&key_path)?;
        let key_der = files::read_key_pem(&key_path)?;
        let cert_der = files::read_cert_pem(&dir.join("cert.pem"))?;
        let ca_der = files::read_cert_pem(&dir.join("ca.pem"))?;
        let cert = parse_certificate(&cert_der)?;
        let key_pair = keys::ring_key_pair(&key_der)?;
        if key_pair.public_key().as_ref() != cert.public_key.as_slice() {
            return Err(PkiError::BadKey {
                reason: format!(
                    "{} does not belong to the certificate in cert.pem",
                    key_path.display()
                ),
            });
        }
        let log_keys = log_key::load_verifiers(&dir.join(LOG_PUB_FILE))?;
        let salt_key =
            crate::salt_key::SaltVerifier::load(&dir.join(crate::salt_key::SALT_PUB_FILE))?;
        let witness_policy = crate::cosignature::WitnessPolicy::load(
            &dir.join(crate::cosignature::WITNESS_POLICY_FILE),
        )?
        .map(Arc::new);
        Ok(Self {
            witness_policy,
            cert,
            dir: dir.to_path_buf(),
            log_keys,
            salt_key,
            cert_der,
            key_der,
            ca_der,
            key_pair: Arc::new(key_pair),
        })
    }

    /// The directory the identity was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The witness policy of the identity directory (`witness-policy`), if it has one:
    /// checkpoints then need the cosignatures it asks for.
    pub fn witness_policy(&self) -> Option<&crate::cosignature::WitnessPolicy> {
        self.witness_policy.as_deref()
    }

    /// The district log's verifier keys this identity trusts (`log.pub`; empty without one).
    pub fn log_keys(&self) -> &[LogVerifier] {
        &self.log_keys
    }

    /// The district salt key's public half (`salt.pub`), if the directory has one: what a
    /// resident checks the salt a node gives them against.
    pub fn salt_key(&self) -> Option<&crate::salt_key::SaltVerifier> {
        self.salt_key.as_ref()
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The private key, PKCS#8 DER.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_der
    }

    /// Ed25519 signature over `message` with the identity's key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let sig = self.key_pair.sign(message);
        let mut bytes = [0u8; SIGNATURE_LEN];
        bytes.copy_from_slice(sig.as_ref());
        Signature(bytes)
    }
}

/// Refuses a private key file readable by group or others (unix only).
pub(crate) fn check_key_permissions(path: &Path) -> Result<(), PkiError> {
    match files::mode_of(path)? {
        Some(mode) if mode & 0o077 != 0 => Err(PkiError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        }),
        _ => Ok(()),
    }
}

/// An Ed25519 signature; serde as a lowercase hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// Parses 128 hexadecimal characters.
    pub fn from_hex(s: &str) -> Result<Self, PkiError> {
        let mut bytes = [0u8; SIGNATURE_LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| PkiError::InvalidSignatureEncoding)?;
        Ok(Self(bytes))
    }

    /// The signature as 128 lowercase hexadecimal characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl FromStr for Signature {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Verifies an Ed25519 signature with a raw 32-byte public key. Error code `pki.bad_signature`.
pub fn verify_signature(
    public_key: &[u8],
    message: &[u8],
    signature: &Signature,
) -> Result<(), PkiError> {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, &signature.0)
        .map_err(|_| PkiError::BadSignature)
}
