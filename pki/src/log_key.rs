//! The district's log key: one Ed25519 key with which every node of the district signs
//! checkpoints, named by the log's origin (C2SP tlog-checkpoint: the key name is the origin).
//!
//! This module **is**: origins (a schema-less URL such as `district.example/vault`), C2SP
//! signed-note verifier keys ([`LogVerifier`], the `<name>+<hash>+<base64 keydata>` string
//! that standard note verifiers take; one per line in `log.pub`), and the signer
//! ([`LogSigner`]: `log.key.pem`, RFC 8410 PKCS#8 v1, mode 0600, paired with its verifier key).
//! It is **not**: the checkpoint format (that is `log`), or where the files are copied (that
//! is `ca` and `identity`).
//!
//! **Invariant:** a signer's name is always the origin of the checkpoints it signs, and a
//! key file is only used with the verifier key whose public key it holds.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::error::PkiError;
use crate::files;
use crate::identity::{check_key_permissions, Signature, SIGNATURE_LEN};
use crate::keys;

/// The log's secret key file: in the CA directory and in every node identity directory.
pub const LOG_KEY_FILE: &str = "log.key.pem";
/// The log's verifier keys, one C2SP vkey per line: in the CA directory and in every
/// identity directory, next to `ca.pem`.
pub const LOG_PUB_FILE: &str = "log.pub";
/// Longest origin (and so key name), in bytes.
pub const ORIGIN_LEN_MAX: usize = 128;
/// Most verifier keys one `log.pub` may list.
pub const LOG_VERIFIERS_MAX: usize = 16;
/// The C2SP signature type byte of Ed25519.
const ED25519_TYPE: u8 = 0x01;

/// Checks an origin: 1 to [`ORIGIN_LEN_MAX`] bytes, no whitespace or control characters,
/// no `+` (it separates a verifier key's fields) and no URL scheme (`https://`): C2SP
/// tlog-checkpoint asks for a schema-less URL, e.g. `district.example/vault`.
pub fn check_origin(origin: &str) -> Result<(), PkiError> {
    let rule = "a schema-less URL of 1-128 bytes without spaces, `+` or `://`, e.g. district.example/vault";
    let ok = !origin.is_empty()
        && origin.len() <= ORIGIN_LEN_MAX
        && !origin
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        && !origin.contains("://");
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName {
            what: "log origin",
            value: crate::error::truncate_for_display(origin),
            rule,
        })
    }
}

/// A log's public key under its name (= the origin): what a client checks checkpoints with.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogVerifier {
    name: String,
    public_key: [u8; 32],
}

impl LogVerifier {
    /// A verifier for `name` (an origin, [`check_origin`]) and an Ed25519 public key.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, PkiError> {
        check_origin(name)?;
        Ok(LogVerifier {
            name: name.to_owned(),
            public_key,
        })
    }

    /// Parses a C2SP verifier key: `<name>+<8 hex: key hash>+<base64(0x01 || 32-byte key)>`.
    /// The key hash must match the name and key.
    pub fn parse(vkey: &str) -> Result<Self, PkiError> {
        let bad = |reason: &str| PkiError::BadKey {
            reason: format!(
                "verifier key {:?}: {reason}",
                crate::error::truncate_for_display(vkey)
            ),
        };
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <name>+<hash>+<key>"));
        };
        let data = BASE64
            .decode(data)
            .map_err(|_| bad("the key is not base64"))?;
        let (Some(&ED25519_TYPE), Ok(public_key)) = (
            data.first(),
            <[u8; 32]>::try_from(&data[1.min(data.len())..]),
        ) else {
            return Err(bad("not an Ed25519 key (type 0x01 and 32 bytes)"));
        };
        let verifier = LogVerifier::new(name, public_key)?;
        if hash.len() != 8 || hex::encode(verifier.key_hash()) != hash.to_ascii_lowercase() {
            return Err(bad("the key hash does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The key's name: the origin of the checkpoints it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// C2SP key hash: the first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
    pub fn key_hash(&self) -> [u8; 4] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(self.name.as_bytes());
        ctx.update(&[b'\n', ED25519_TYPE]);
        ctx.update(&self.public_key);
        let mut out = [0u8; 4];
        out.copy_from_slice(&ctx.finish().as_ref()[..4]);
        out
    }

    /// The C2SP verifier key string, `<name>+<hash>+<base64 keydata>`.
    pub fn vkey(&self) -> String {
        let mut data = vec![ED25519_TYPE];
        data.extend_from_slice(&self.public_key);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_hash()),
            BASE64.encode(data)
        )
    }
}

impl std::fmt::Display for LogVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.vkey())
    }
}

/// Parses a `log.pub` text: one verifier key per line; blank lines and lines starting
/// with `#` are ignored. At most [`LOG_VERIFIERS_MAX`] keys.
pub fn parse_verifiers(text: &str) -> Result<Vec<LogVerifier>, PkiError> {
    let verifiers: Vec<LogVerifier> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(LogVerifier::parse)
        .collect::<Result<_, _>>()?;
    if verifiers.len() > LOG_VERIFIERS_MAX {
        return Err(PkiError::BadKey {
            reason: format!("more than {LOG_VERIFIERS_MAX} log verifier keys"),
        });
    }
    Ok(verifiers)
}

/// Reads a `log.pub` file; a missing file gives no keys.
pub fn load_verifiers(path: &Path) -> Result<Vec<LogVerifier>, PkiError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8(files::read(path)?).map_err(|_| PkiError::BadKey {
        reason: format!("{} is not UTF-8", path.display()),
    })?;
    parse_verifiers(&text)
}

/// The text of a `log.pub` file listing `verifiers`, newest first.
pub fn verifiers_text(verifiers: &[LogVerifier]) -> String {
    verifiers.iter().map(|v| format!("{v}\n")).collect()
}

/// The log's signing key with its name: what a node signs checkpoints with.
#[derive(Clone)]
pub struct LogSigner {
    verifier: LogVerifier,
    pair: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl LogSigner {
    /// Loads `log.key.pem` (refused when readable by group or others) and pairs it with the
    /// one of `verifiers` (the node's `log.pub`) that holds its public key: that key's name
    /// is the origin the node signs under.
    pub fn load(key_path: &Path, verifiers: &[LogVerifier]) -> Result<Self, PkiError> {
        check_key_permissions(key_path)?;
        let der = files::read_key_pem(key_path)?;
        let pair = keys::ring_key_pair(&der)?;
        let public: &[u8] = pair.public_key().as_ref();
        let verifier = verifiers
            .iter()
            .find(|v| v.public_key.as_slice() == public)
            .cloned()
            .ok_or_else(|| PkiError::UnknownLogKey {
                reason: format!(
                    "the log key {} matches no verifier key in log.pub ({} listed); \
                     copy the CA's log.pub beside it (into the node's identity directory)",
                    key_path.display(),
                    verifiers.len()
                ),
            })?;
        Ok(LogSigner {
            verifier,
            pair: Arc::new(pair),
        })
    }

    /// A signer from PKCS#8 DER and an origin (tests, and [`generate`]).
    pub fn from_pkcs8(der: &[u8], origin: &str) -> Result<Self, PkiError> {
        let pair = keys::ring_key_pair(der)?;
        let public: [u8; 32] =
            pair.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| PkiError::BadKey {
                    reason: "not an Ed25519 public key".into(),
                })?;
        Ok(LogSigner {
            verifier: LogVerifier::new(origin, public)?,
            pair: Arc::new(pair),
        })
    }

    /// The origin (the key's name).
    pub fn origin(&self) -> &str {
        self.verifier.name()
    }

    /// The verifier key clients check this signer's checkpoints with.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut bytes = [0u8; SIGNATURE_LEN];
        bytes.copy_from_slice(self.pair.sign(message).as_ref());
        Signature(bytes)
    }
}

/// A new log key for `origin`: the signer and its `log.key.pem` text (RFC 8410 PKCS#8 v1).
pub fn generate(origin: &str) -> Result<(LogSigner, String), PkiError> {
    check_origin(origin)?;
    let key = keys::generate("log key")?;
    let der = key.pair.serialize_der();
    Ok((LogSigner::from_pkcs8(&der, origin)?, key.pem))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_schema_less_urls_without_spaces() {
        for good in ["district.example/vault", "dev.district.example/vault", "a"] {
            check_origin(good).unwrap();
        }
        for bad in [
            "",
            "Dev District/vault-log",
            "https://district.example/vault",
            "a+b",
            "tab\there",
            &"x".repeat(ORIGIN_LEN_MAX + 1),
        ] {
            assert_eq!(check_origin(bad).unwrap_err().code(), "pki.invalid_name");
        }
    }

    #[test]
    fn verifier_keys_round_trip_and_their_hash_is_checked() {
        let (signer, pem) = generate("district.example/vault").unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let vkey = signer.verifier().vkey();
        assert!(vkey.starts_with("district.example/vault+"), "{vkey}");
        assert_eq!(LogVerifier::parse(&vkey).unwrap(), *signer.verifier());
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts[1].len(), 8);
        let renamed = vkey.replacen("district.example/vault", "other.example/vault", 1);
        assert_eq!(
            LogVerifier::parse(&renamed).unwrap_err().code(),
            "pki.bad_key"
        );
        for bad in ["", "a+b", "a+00000000+AAAA", "a+b+!!"] {
            assert!(LogVerifier::parse(bad).is_err(), "{bad}");
        }
        let text = format!("# the district's log\n\n{vkey}\n");
        assert_eq!(parse_verifiers(&text).unwrap().len(), 1);
    }

    #[test]
    fn the_go_note_verifier_key_format_is_read() {
        // golang.org/x/mod/sumdb/note's documented example verifier key.
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let v = LogVerifier::parse(vkey).unwrap();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.vkey(), vkey);
    }
}
