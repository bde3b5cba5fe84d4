//! Witness cosignatures on checkpoints (C2SP tlog-cosignature, Ed25519 `cosignature/v1`) and
//! the policy a client checks them against (C2SP tlog-policy).
//!
//! This module **is**: witness verifier keys ([`WitnessVerifier`], vkeys of signature type
//! `0x04`), the witness's signing key ([`WitnessSigner`]: a PKCS#8 v1 file, mode 0600),
//! cosignature lines (`— <name> base64(key ID ‖ u64 BE timestamp ‖ signature)`, the signed
//! message `cosignature/v1\ntime <ts>\n` + the note body), and [`WitnessPolicy`]: which
//! witnesses a checkpoint needs (`witness`, `group`, `quorum` lines). It is **not**: the
//! witness's state or its HTTP protocol (that is `vault_client::witness`), or the log's own
//! signature (that is `log`).
//!
//! **Invariant:** a cosignature counts only when its line names a witness of the policy, its
//! key ID is that witness's, and its Ed25519 signature verifies over `cosignature/v1`, its
//! timestamp and the exact note body; each witness counts once.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::error::PkiError;
use crate::files;
use crate::identity::{check_key_permissions, verify_signature, Signature, SIGNATURE_LEN};
use crate::keys;
use crate::log_key::LogVerifier;

/// A witness's secret key file, in its state directory.
pub const WITNESS_KEY_FILE: &str = "witness.key.pem";
/// A witness's verifier key (one vkey line), in its state directory.
pub const WITNESS_PUB_FILE: &str = "witness.pub";
/// The witness policy file of an identity directory (C2SP tlog-policy).
pub const WITNESS_POLICY_FILE: &str = "witness-policy";
/// The C2SP vkey signature type of Ed25519 `cosignature/v1`.
pub const COSIGNATURE_TYPE: u8 = 0x04;
/// Longest witness name, in bytes.
pub const WITNESS_NAME_LEN_MAX: usize = 128;
/// Most witnesses, groups or logs one policy may define (each).
pub const POLICY_ITEMS_MAX: usize = 32;
/// Longest policy file, in bytes.
pub const POLICY_LEN_MAX: usize = 64 * 1024;
/// Length of a decoded Ed25519 cosignature: key ID, timestamp, signature.
const COSIGNATURE_LEN: usize = 4 + 8 + SIGNATURE_LEN;

fn bad_key(vkey: &str, reason: &str) -> PkiError {
    PkiError::BadKey {
        reason: format!(
            "witness key {:?}: {reason}",
            crate::error::truncate_for_display(vkey)
        ),
    }
}

/// Checks a witness (key) name: 1 to [`WITNESS_NAME_LEN_MAX`] bytes, no whitespace, control
/// character or `+` (C2SP signed-note key names), e.g. `witness.district.example/w1`.
pub fn check_witness_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= WITNESS_NAME_LEN_MAX
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+');
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName {
            what: "witness name",
            value: crate::error::truncate_for_display(name),
            rule: "1-128 bytes without spaces, control characters or `+`, e.g. witness.district.example/w1",
        })
    }
}

/// A witness's public key under its name: what a client checks cosignatures with.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WitnessVerifier {
    name: String,
    public_key: [u8; 32],
}

impl WitnessVerifier {
    /// A verifier for `name` ([`check_witness_name`]) and an Ed25519 public key.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, PkiError> {
        check_witness_name(name)?;
        Ok(WitnessVerifier {
            name: name.to_owned(),
            public_key,
        })
    }

    /// Parses a vkey `<name>+<8 hex key ID>+<base64(0x04 ‖ 32-byte key)>`; the key ID must
    /// match the name and key.
    pub fn parse(vkey: &str) -> Result<Self, PkiError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad_key(vkey, "expected <name>+<key id>+<key>"));
        };
        let data = BASE64
            .decode(data)
            .map_err(|_| bad_key(vkey, "the key is not base64"))?;
        let (Some(&COSIGNATURE_TYPE), Ok(public_key)) = (
            data.first(),
            <[u8; 32]>::try_from(&data[1.min(data.len())..]),
        ) else {
            return Err(bad_key(
                vkey,
                "not an Ed25519 cosignature key (type 0x04 and 32 bytes)",
            ));
        };
        let verifier = WitnessVerifier::new(name, public_key)?;
        if id.len() != 8 || hex::encode(verifier.key_id()) != id.to_ascii_lowercase() {
            return Err(bad_key(vkey, "the key ID does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The witness's name (the key name on its cosignature lines).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// C2SP key ID: SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4].
    pub fn key_id(&self) -> [u8; 4] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(self.name.as_bytes());
        ctx.update(&[b'\n', COSIGNATURE_TYPE]);
        ctx.update(&self.public_key);
        let mut out = [0u8; 4];
        out.copy_from_slice(&ctx.finish().as_ref()[..4]);
        out
    }

    /// The vkey string, `<name>+<key id>+<base64 keydata>`.
    pub fn vkey(&self) -> String {
        let mut data = vec![COSIGNATURE_TYPE];
        data.extend_from_slice(&self.public_key);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            BASE64.encode(data)
        )
    }

    /// Checks one signature line of a note against this witness: `Ok(None)` when the line is
    /// not this witness's (another name or key ID), `Ok(Some(timestamp))` when it is and its
    /// signature verifies over `body` (the note body, with its final newline), and an error
    /// when it is this witness's but malformed or its signature fails.
    pub fn verify_line(&self, body: &str, line: &str) -> Result<Option<u64>, PkiError> {
        let Some((name, blob)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.split_once(' '))
        else {
            return Ok(None);
        };
        if name != self.name {
            return Ok(None);
        }
        let Ok(blob) = BASE64.decode(blob.trim_end()) else {
            return Ok(None);
        };
        if blob.len() < 4 || blob[..4] != self.key_id() {
            return Ok(None);
        }
        if blob.len() != COSIGNATURE_LEN {
            return Err(PkiError::MalformedStatement {
                reason: format!("{}'s cosignature is not {COSIGNATURE_LEN} bytes", self.name),
            });
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&blob[4..12]);
        let timestamp = u64::from_be_bytes(ts);
        if timestamp >= 1 << 63 {
            return Err(PkiError::MalformedStatement {
                reason: format!("{}'s cosignature timestamp is over 2^63 - 1", self.name),
            });
        }
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&blob[12..]);
        verify_signature(
            &self.public_key,
            &cosignature_message(body, timestamp),
            &Signature(sig),
        )?;
        Ok(Some(timestamp))
    }
}

impl std::fmt::Display for WitnessVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.vkey())
    }
}

/// The message an Ed25519 `cosignature/v1` signs: `cosignature/v1\ntime <ts>\n` and the
/// note body (with its final newline, without signature lines).
pub fn cosignature_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// Splits a signed note into its body (with its final newline) and its signature lines.
pub fn split_note(note: &str) -> Result<(String, Vec<&str>), PkiError> {
    if note.len() > crate::log::NOTE_LEN_MAX {
        return Err(PkiError::MalformedStatement {
            reason: "note longer than its limit".into(),
        });
    }
    let (body, signatures) =
        note.split_once("\n\n")
            .ok_or_else(|| PkiError::MalformedStatement {
                reason: "a signed note has a blank line before its signatures".into(),
            })?;
    Ok((format!("{body}\n"), signatures.lines().collect()))
}

/// A witness's signing key with its name.
#[derive(Clone)]
pub struct WitnessSigner {
    verifier: WitnessVerifier,
    pair: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for WitnessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessSigner")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl WitnessSigner {
    /// A signer from PKCS#8 DER and a name.
    pub fn from_pkcs8(der: &[u8], name: &str) -> Result<Self, PkiError> {
        let pair = keys::ring_key_pair(der)?;
        let public: [u8; 32] =
            pair.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| PkiError::BadKey {
                    reason: "not an Ed25519 public key".into(),
                })?;
        Ok(WitnessSigner {
            verifier: WitnessVerifier::new(name, public)?,
            pair: Arc::new(pair),
        })
    }

    /// Loads `dir/witness.key.pem` (refused when readable by group or others) under the name
    /// of `dir/witness.pub`, which must hold its public key.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let key_path = dir.join(WITNESS_KEY_FILE);
        check_key_permissions(&key_path)?;
        let der = files::read_key_pem(&key_path)?;
        let pub_path = dir.join(WITNESS_PUB_FILE);
        let text = String::from_utf8(files::read(&pub_path)?).map_err(|_| PkiError::BadKey {
            reason: format!("{} is not UTF-8", pub_path.display()),
        })?;
        let verifier = WitnessVerifier::parse(text.trim())?;
        let signer = WitnessSigner::from_pkcs8(&der, verifier.name())?;
        if signer.verifier != verifier {
            return Err(PkiError::BadKey {
                reason: format!(
                    "{} does not hold the public key of {}",
                    pub_path.display(),
                    key_path.display()
                ),
            });
        }
        Ok(signer)
    }

    /// A new witness key: the signer and its PEM (RFC 8410 PKCS#8 v1).
    pub fn generate(name: &str) -> Result<(Self, String), PkiError> {
        check_witness_name(name)?;
        let key = keys::generate("witness key")?;
        let der = key.pair.serialize_der();
        Ok((WitnessSigner::from_pkcs8(&der, name)?, key.pem))
    }

    /// Writes a new key into `dir` (created 0700 if missing): `witness.key.pem` (0600, never
    /// overwritten) and `witness.pub` (its vkey, 0644).
    pub fn create(dir: &Path, name: &str) -> Result<Self, PkiError> {
        let (signer, pem) = WitnessSigner::generate(name)?;
        if !dir.exists() {
            files::create_dir(dir, 0o700)?;
        }
        files::write_new(&dir.join(WITNESS_KEY_FILE), pem.as_bytes(), 0o600)?;
        files::replace(
            &dir.join(WITNESS_PUB_FILE),
            format!("{}\n", signer.verifier.vkey()).as_bytes(),
            0o644,
        )?;
        Ok(signer)
    }

    /// The witness's verifier key.
    pub fn verifier(&self) -> &WitnessVerifier {
        &self.verifier
    }

    /// The cosignature line over `body` (a note body with its final newline) at `timestamp`
    /// (unix seconds), with its final newline.
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let sig = self.pair.sign(&cosignature_message(body, timestamp));
        let mut blob = self.verifier.key_id().to_vec();
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.verifier.name, BASE64.encode(blob))
    }
}

/// One name of a policy: a witness or a group.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A witness policy (C2SP tlog-policy): the witnesses a client knows, groups of them, and the
/// quorum a checkpoint's cosignatures must reach. `log` lines, when present, also restrict
/// which logs are accepted; URLs are kept but not used by clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessPolicy {
    logs: Vec<LogVerifier>,
    /// The policy's name for each witness, its key and its URL.
    witnesses: Vec<(String, WitnessVerifier, Option<String>)>,
    groups: Vec<Group>,
    /// `None`: `quorum none`.
    quorum: Option<Member>,
}

impl WitnessPolicy {
    /// Parses a policy file: `log <vkey> [url]`, `witness <name> <vkey> [url]`,
    /// `group <name> all|any|<k> <name>…`, exactly one `quorum <name>|none`; blank lines and
    /// `#` comments ignored; names defined before use, each member at most once per group.
    pub fn parse(text: &str) -> Result<Self, PkiError> {
        let bad = |n: usize, reason: String| PkiError::MalformedStatement {
            reason: format!("witness policy line {n}: {reason}"),
        };
        if text.len() > POLICY_LEN_MAX {
            return Err(bad(0, format!("longer than {POLICY_LEN_MAX} bytes")));
        }
        if text
            .bytes()
            .any(|b| b < 0x20 && b != b'\t' && b != b'\n' || b == 0x7f)
        {
            return Err(bad(0, "a control character".into()));
        }
        let mut policy = WitnessPolicy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut quorum_seen = false;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["log", vkey, rest @ ..] if rest.len() <= 1 => {
                    let log = LogVerifier::parse(vkey).map_err(|e| bad(n, e.to_string()))?;
                    if policy
                        .logs
                        .iter()
                        .any(|l| l.public_key() == log.public_key())
                    {
                        return Err(bad(n, "a log listed twice".into()));
                    }
                    policy.logs.push(log);
                }
                ["witness", name, vkey, rest @ ..] if rest.len() <= 1 => {
                    if policy.lookup(name).is_some() || *name == "none" {
                        return Err(bad(n, format!("{name} is already defined")));
                    }
                    let key = WitnessVerifier::parse(vkey).map_err(|e| bad(n, e.to_string()))?;
                    if policy
                        .witnesses
                        .iter()
                        .any(|(_, w, _)| w.public_key() == key.public_key())
                    {
                        return Err(bad(n, "a witness key listed twice".into()));
                    }
                    // The policy's name for the witness is the line's; the key's own name
                    // is what its cosignature lines carry.
                    policy.witnesses.push((
                        (*name).to_string(),
                        key,
                        rest.first().map(|u| (*u).to_string()),
                    ));
                }
                ["group", name, threshold, members @ ..] if !members.is_empty() => {
                    if policy.lookup(name).is_some() || *name == "none" {
                        return Err(bad(n, format!("{name} is already defined")));
                    }
                    let mut list = Vec::new();
                    for m in members {
                        let member = policy
                            .lookup(m)
                            .ok_or_else(|| bad(n, format!("{m} is not defined before")))?;
                        if list.contains(&member) {
                            return Err(bad(n, format!("{m} listed twice")));
                        }
                        list.push(member);
                    }
                    let k = match *threshold {
                        "all" => list.len(),
                        "any" => 1,
                        k => k
                            .parse::<usize>()
                            .ok()
                            .filter(|v| (1..=list.len()).contains(v) && v.to_string() == k)
                            .ok_or_else(|| {
                                bad(
                                    n,
                                    format!("threshold {k} is not all, any or 1..={}", list.len()),
                                )
                            })?,
                    };
                    policy.groups.push(Group {
                        name: (*name).to_string(),
                        threshold: k,
                        members: list,
                    });
                }
                ["quorum", name] => {
                    if quorum_seen {
                        return Err(bad(n, "a second quorum line".into()));
                    }
                    quorum_seen = true;
                    policy.quorum = match *name {
                        "none" => None,
                        name => Some(
                            policy
                                .lookup(name)
                                .ok_or_else(|| bad(n, format!("{name} is not defined before")))?,
                        ),
                    };
                }
                _ => {
                    return Err(bad(
                        n,
                        format!(
                            "not a policy line: {:?}",
                            crate::error::truncate_for_display(line)
                        ),
                    ))
                }
            }
            if policy.logs.len() > POLICY_ITEMS_MAX
                || policy.witnesses.len() > POLICY_ITEMS_MAX
                || policy.groups.len() > POLICY_ITEMS_MAX
            {
                return Err(bad(n, format!("more than {POLICY_ITEMS_MAX} of one kind")));
            }
        }
        if !quorum_seen {
            return Err(bad(0, "no quorum line".into()));
        }
        Ok(policy)
    }

    /// Reads an identity directory's policy file; none when it is missing.
    pub fn load(path: &Path) -> Result<Option<Self>, PkiError> {
        if !path.exists() {
            return Ok(None);
        }
        let text =
            String::from_utf8(files::read(path)?).map_err(|_| PkiError::MalformedStatement {
                reason: format!("{} is not UTF-8", path.display()),
            })?;
        WitnessPolicy::parse(&text).map(Some)
    }

    /// A policy requiring every one of `witnesses` (named by their key names); `quorum none`
    /// when there are none.
    pub fn requiring_all(witnesses: &[WitnessVerifier]) -> String {
        let mut text = String::from("# Checkpoints need a cosignature of every witness below.\n");
        for w in witnesses {
            text.push_str(&format!("witness {} {}\n", w.name(), w.vkey()));
        }
        match witnesses {
            [] => text.push_str("quorum none\n"),
            [one] => text.push_str(&format!("quorum {}\n", one.name())),
            many => {
                let names: Vec<&str> = many.iter().map(WitnessVerifier::name).collect();
                text.push_str(&format!(
                    "group all-witnesses all {}\nquorum all-witnesses\n",
                    names.join(" ")
                ));
            }
        }
        text
    }

    /// The witnesses the policy knows.
    pub fn witnesses(&self) -> impl Iterator<Item = &WitnessVerifier> {
        self.witnesses.iter().map(|(_, w, _)| w)
    }

    /// Checks a signed note's cosignatures: answers the names of the witnesses whose
    /// cosignature verified, or `pki.witness_missing` when they do not reach the quorum (a
    /// listed witness's line whose signature fails counts as missing, and is named). When the
    /// policy lists logs, the note must also verify with one of them.
    pub fn check(&self, note: &str) -> Result<Vec<String>, PkiError> {
        if !self.logs.is_empty() {
            crate::log::Checkpoint::verify_note(note, &self.logs)?;
        }
        let (body, lines) = split_note(note)?;
        let mut cosigned = vec![false; self.witnesses.len()];
        let mut failures = Vec::new();
        for (i, (_, w, _)) in self.witnesses.iter().enumerate() {
            for line in &lines {
                match w.verify_line(&body, line) {
                    Ok(Some(_)) => cosigned[i] = true,
                    Ok(None) => {}
                    Err(e) => failures.push(format!("{}: {e}", w.name())),
                }
            }
        }
        let names: Vec<String> = self
            .witnesses
            .iter()
            .zip(&cosigned)
            .filter(|(_, c)| **c)
            .map(|((_, w, _), _)| w.name().to_string())
            .collect();
        let met = match &self.quorum {
            None => true,
            Some(m) => self.witnessed(m, &cosigned),
        };
        if met {
            return Ok(names);
        }
        let known: Vec<&str> = self.witnesses().map(WitnessVerifier::name).collect();
        let mut reason = format!(
            "the checkpoint lacks the cosignatures its witness policy requires (cosigned by: {}; known witnesses: {})",
            if names.is_empty() { "none".to_string() } else { names.join(", ") },
            known.join(", ")
        );
        if !failures.is_empty() {
            reason.push_str(&format!("; refused: {}", failures.join("; ")));
        }
        Err(PkiError::WitnessMissing { reason })
    }

    fn witnessed(&self, member: &Member, cosigned: &[bool]) -> bool {
        match member {
            Member::Witness(i) => cosigned[*i],
            Member::Group(g) => {
                let group = &self.groups[*g];
                group
                    .members
                    .iter()
                    .filter(|m| self.witnessed(m, cosigned))
                    .count()
                    >= group.threshold
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<Member> {
        if let Some(i) = self.witnesses.iter().position(|(n, _, _)| n == name) {
            return Some(Member::Witness(i));
        }
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(Member::Group)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::Checkpoint;

    /// RFC 8032 test 1's secret key.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    /// The C2SP tlog-cosignature example's checkpoint body and timestamp.
    const C2SP_BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const C2SP_TIME: u64 = 1_679_315_147;

    fn fixed_signer() -> WitnessSigner {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(RFC8032_SEED, &mut seed).unwrap();
        WitnessSigner::from_pkcs8(&keys::pkcs8_v1_der(&seed), "witness.example.com/w1").unwrap()
    }

    #[test]
    fn the_fixed_vector_matches_an_independent_implementation() {
        // Computed with Python's `cryptography` (Ed25519PrivateKey.from_private_bytes of the
        // RFC 8032 seed), SHA-256 key ID and struct.pack(">Q", time), independently of this
        // crate; the timestamp bytes are those of the C2SP example (`…AAAABkGFDL…`).
        let signer = fixed_signer();
        assert_eq!(
            signer.verifier().vkey(),
            "witness.example.com/w1+7e6f4aaa+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
        );
        let line = signer.cosign(C2SP_BODY, C2SP_TIME);
        assert_eq!(
            line,
            "\u{2014} witness.example.com/w1 fm9KqgAAAABkGFDL+TPmh4BYuAjsYRoqMJCWb/gWJaeRF/kmm5tlCr9sJ57DLErur7K0yDXc2ArN+TIuotuB/HbuL3AJsp3bv/aNCQ==\n"
        );
        let v = WitnessVerifier::parse(&signer.verifier().vkey()).unwrap();
        assert_eq!(
            v.verify_line(C2SP_BODY, line.trim_end()).unwrap(),
            Some(C2SP_TIME)
        );
        assert_eq!(
            cosignature_message("b\n", 7),
            b"cosignature/v1\ntime 7\nb\n".to_vec()
        );
    }

    #[test]
    fn cosignatures_verify_and_alterations_are_refused() {
        let (signer, pem) = WitnessSigner::generate("witness.district.example/w1").unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let v = signer.verifier().clone();
        let body = "o\n5\nAAAA\n";
        let line = signer.cosign(body, 1_700_000_000);
        assert_eq!(v.verify_line(body, &line).unwrap(), Some(1_700_000_000));
        // Another body, another time in the line: the signature fails.
        assert_eq!(
            v.verify_line("o\n6\nAAAA\n", &line).unwrap_err().code(),
            "pki.bad_signature"
        );
        let other_time = signer.cosign(body, 1_700_000_001);
        let mut blob = BASE64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        let other = BASE64
            .decode(other_time.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        blob[4..12].copy_from_slice(&other[4..12]);
        let forged = format!("\u{2014} {} {}", v.name(), BASE64.encode(&blob));
        assert_eq!(
            v.verify_line(body, &forged).unwrap_err().code(),
            "pki.bad_signature"
        );
        // Lines of others (a log signature, another witness) are not this witness's.
        let (other, _) = WitnessSigner::generate("witness.district.example/w2").unwrap();
        assert_eq!(v.verify_line(body, &other.cosign(body, 1)).unwrap(), None);
        assert_eq!(v.verify_line(body, "not a signature").unwrap(), None);
        // vkeys: type 0x04 only, the key ID checked.
        assert_eq!(WitnessVerifier::parse(&v.vkey()).unwrap(), v);
        let (log, _) = crate::log_key::generate("district.example/vault").unwrap();
        assert_eq!(
            WitnessVerifier::parse(&log.verifier().vkey())
                .unwrap_err()
                .code(),
            "pki.bad_key"
        );
        let renamed = v.vkey().replacen("w1", "w9", 1);
        assert_eq!(
            WitnessVerifier::parse(&renamed).unwrap_err().code(),
            "pki.bad_key"
        );
    }

    fn signed_note(size: u64) -> (String, crate::log_key::LogSigner) {
        let (log, _) = crate::log_key::generate("district.example/vault").unwrap();
        let note = Checkpoint {
            origin: log.origin().into(),
            size,
            root: [3; 32],
            resident_index: None,
        }
        .sign(&log);
        (note, log)
    }

    fn cosigned(note: &str, signers: &[&WitnessSigner]) -> String {
        let (body, _) = split_note(note).unwrap();
        let mut out = note.to_string();
        for s in signers {
            out.push_str(&s.cosign(&body, 1_700_000_000));
        }
        out
    }

    #[test]
    fn policies_count_valid_cosignatures_against_their_quorum() {
        let w: Vec<WitnessSigner> = (1..=3)
            .map(|i| WitnessSigner::generate(&format!("w{i}.example")).unwrap().0)
            .collect();
        let (note, log) = signed_note(9);
        let text = format!(
            "# two of three\nlog {}\nwitness A {}\nwitness B {}\n\twitness C {} http://127.0.0.1:1\ngroup two 2 A B C\nquorum two\n",
            log.verifier().vkey(),
            w[0].verifier().vkey(),
            w[1].verifier().vkey(),
            w[2].verifier().vkey()
        );
        let policy = WitnessPolicy::parse(&text).unwrap();
        assert_eq!(policy.witnesses().count(), 3);
        let err = policy.check(&cosigned(&note, &[&w[0]])).unwrap_err();
        assert_eq!(err.code(), "pki.witness_missing");
        assert!(err.to_string().contains("w1.example"), "{err}");
        assert_eq!(
            policy.check(&cosigned(&note, &[&w[0], &w[2]])).unwrap(),
            vec!["w1.example".to_string(), "w3.example".to_string()]
        );
        // The same witness twice counts once.
        assert!(policy.check(&cosigned(&note, &[&w[1], &w[1]])).is_err());
        // A cosignature over another checkpoint does not count.
        let (other, _) = signed_note(10);
        let moved = cosigned(&other, &[&w[0], &w[1]]);
        let lines: String = moved.lines().skip(5).map(|l| format!("{l}\n")).collect();
        assert!(policy.check(&format!("{note}{lines}")).is_err());
        // A log the policy does not list.
        let (foreign, _) = signed_note(9);
        assert_eq!(
            policy
                .check(&cosigned(&foreign, &[&w[0], &w[1]]))
                .unwrap_err()
                .code(),
            "pki.unknown_log_key"
        );
        // quorum none; requiring_all.
        assert!(WitnessPolicy::parse("quorum none\n")
            .unwrap()
            .check(&note)
            .is_ok());
        let all = WitnessPolicy::parse(&WitnessPolicy::requiring_all(&[
            w[0].verifier().clone(),
            w[1].verifier().clone(),
        ]))
        .unwrap();
        assert!(all.check(&cosigned(&note, &[&w[0]])).is_err());
        assert!(all.check(&cosigned(&note, &[&w[1], &w[0]])).is_ok());
        let one = WitnessPolicy::parse(&WitnessPolicy::requiring_all(&[w[2].verifier().clone()]))
            .unwrap();
        assert!(one.check(&cosigned(&note, &[&w[2]])).is_ok());
    }

    #[test]
    fn malformed_policies_are_refused() {
        let (a, _) = WitnessSigner::generate("a.example").unwrap();
        let va = a.verifier().vkey();
        for bad in [
            String::new(),
            "quorum A\n".to_string(),
            format!("witness A {va}\n"),
            format!("witness A {va}\nwitness B {va}\nquorum A\n"),
            format!("witness A {va}\nquorum A\nquorum A\n"),
            format!("witness A {va}\ngroup G 2 A\nquorum G\n"),
            format!("witness A {va}\ngroup G 01 A\nquorum G\n"),
            format!("witness A {va}\ngroup G any A A\nquorum G\n"),
            format!("witness A {va}\ngroup G any\nquorum G\n"),
            format!("witness none {va}\nquorum none\n"),
            format!("witness A {va}\nfrobnicate\nquorum A\n"),
            format!("witness A {va}\rquorum A\n"),
        ] {
            assert!(WitnessPolicy::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(
            WitnessPolicy::parse(&format!("witness A {va}\ngroup G all A\nquorum G\n")).is_ok()
        );
    }

    #[test]
    fn keys_are_created_private_and_load_with_their_vkey() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let signer = WitnessSigner::create(&path, "w.example").unwrap();
        let loaded = WitnessSigner::load(&path).unwrap();
        assert_eq!(loaded.verifier(), signer.verifier());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path.join(WITNESS_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            WitnessSigner::create(&path, "w.example")
                .unwrap_err()
                .code(),
            "pki.exists"
        );
    }
}
