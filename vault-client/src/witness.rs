//! The witness protocol (C2SP tlog-witness), pure: the `add-checkpoint` request body, and the
//! decision a witness takes on it given what it cosigned last.
//!
//! This module **is**: [`AddCheckpoint`] (`old <size>\n`, up to [`PROOF_LINES_MAX`] base64
//! consistency-proof hashes, a blank line, the checkpoint note), its encoding and parsing,
//! and [`decide`]: the witness's state machine for one log (`Latest` in, the checkpoint to
//! cosign or a [`Refusal`] with its HTTP status out). It is **not**: HTTP, files or a clock
//! (the server is `witness_server`, the node's client `witness_client`).
//!
//! **Invariant:** a witness cosigns a checkpoint only when its log key signed it and it is the
//! witness's latest cosigned tree for that origin or provably extends it (RFC 6962
//! consistency), so it never cosigns two trees of one log that are not consistent.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::merkle::{self, Hash};

/// Most consistency-proof lines an `add-checkpoint` body may carry (C2SP tlog-witness).
pub const PROOF_LINES_MAX: usize = 63;
/// Largest `add-checkpoint` body accepted, in bytes: `old` line, 63 proof lines (45 bytes
/// each) and a note of at most `pki::NOTE_LEN_MAX`.
pub const ADD_CHECKPOINT_LEN_MAX: usize = 64 + PROOF_LINES_MAX * 45 + 1 + pki::NOTE_LEN_MAX;
/// The path of the request under a witness's URL prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
/// The content type of a 409 answer's body, `<size>\n`.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// One `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the submitter believes the witness cosigned last (0: none).
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn encode(&self) -> String {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&BASE64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Parses a request body (refusals are `400 Bad Request`).
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        let bad = |why: &str| Refusal::BadRequest(why.to_string());
        if body.len() > ADD_CHECKPOINT_LEN_MAX {
            return Err(bad("the body is too long"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| !n.is_empty() && (n == &"0" || !n.starts_with('0')))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("the first line is not `old <size>`"))?;
        let proof = lines
            .map(|l| {
                BASE64
                    .decode(l)
                    .ok()
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))
            })
            .collect::<Result<Vec<Hash>, Refusal>>()?;
        if proof.len() > PROOF_LINES_MAX {
            return Err(bad("more than 63 proof lines"));
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: note.to_string(),
        })
    }
}

/// What a witness remembers of one log: the tree it cosigned last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// Its size.
    pub size: u64,
    /// Its root.
    #[serde(with = "pki::serde_hex::array")]
    pub root: Hash,
}

/// Why a witness does not cosign, with the HTTP status C2SP tlog-witness gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the body does not parse, or `old` is larger than the checkpoint's size.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404: the origin is not a log the witness knows.
    #[error("unknown log {0:?}")]
    UnknownLog(String),
    /// 403: no signature by the log's key verifies.
    #[error("the checkpoint carries no valid signature of its log: {0}")]
    Unsigned(String),
    /// 409: `old` is not the witness's latest cosigned size, or the checkpoint is of that
    /// size with another root; the body tells the latest size.
    #[error("the witness's latest cosigned size is {latest}: {why}")]
    Conflict {
        /// The witness's latest cosigned size (the 409 body).
        latest: u64,
        /// What conflicted.
        why: String,
    },
    /// 422: the consistency proof does not verify.
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
}

impl Refusal {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::UnknownLog(_) => 404,
            Refusal::Unsigned(_) => 403,
            Refusal::Conflict { .. } => 409,
            Refusal::BadProof(_) => 422,
        }
    }
}

/// The witness's decision on `request` for a log whose latest cosigned tree is `latest`
/// (`None`: never cosigned), with the log keys it accepts: the checkpoint to cosign (and to
/// remember as the new latest), or why not.
pub fn decide(
    request: &AddCheckpoint,
    log_keys: &[pki::LogVerifier],
    latest: impl FnOnce(&str) -> Option<Latest>,
) -> Result<pki::Checkpoint, Refusal> {
    let (body, _) =
        pki::split_note(&request.note).map_err(|e| Refusal::BadRequest(e.to_string()))?;
    let origin = body.lines().next().unwrap_or_default();
    if !log_keys.iter().any(|k| k.name() == origin) {
        return Err(Refusal::UnknownLog(origin.to_string()));
    }
    let checkpoint =
        pki::Checkpoint::verify_note(&request.note, log_keys).map_err(|e| match e {
            pki::PkiError::MalformedStatement { reason } => Refusal::BadRequest(reason),
            other => Refusal::Unsigned(other.to_string()),
        })?;
    if request.old > checkpoint.size {
        return Err(Refusal::BadRequest(format!(
            "old size {} is larger than the checkpoint's size {}",
            request.old, checkpoint.size
        )));
    }
    let latest = latest(origin).unwrap_or(Latest {
        size: 0,
        root: merkle::empty_root(),
    });
    if request.old != latest.size {
        return Err(Refusal::Conflict {
            latest: latest.size,
            why: format!("the request says old {}", request.old),
        });
    }
    if checkpoint.size == latest.size {
        if checkpoint.root != latest.root && latest.size > 0 {
            return Err(Refusal::Conflict {
                latest: latest.size,
                why: "a checkpoint of that size with another root".into(),
            });
        }
        if !request.proof.is_empty() {
            return Err(Refusal::BadProof(
                "a proof between equal sizes is empty".into(),
            ));
        }
        return Ok(checkpoint);
    }
    if latest.size == 0 {
        if !request.proof.is_empty() {
            return Err(Refusal::BadProof("a proof from size 0 is empty".into()));
        }
        return Ok(checkpoint);
    }
    merkle::verify_consistency(
        latest.size,
        checkpoint.size,
        &latest.root,
        &checkpoint.root,
        &request.proof,
    )
    .map_err(|e| Refusal::BadProof(e.to_string()))?;
    Ok(checkpoint)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Log {
        key: pki::LogSigner,
        leaves: Vec<Hash>,
    }

    impl Log {
        fn new() -> Self {
            let (key, _) = pki::generate_log_key("district.example/vault").unwrap();
            Log {
                key,
                leaves: Vec::new(),
            }
        }
        fn grow(&mut self, n: usize) {
            for _ in 0..n {
                let i = self.leaves.len() as u64;
                self.leaves.push(merkle::leaf_hash(&i.to_be_bytes()));
            }
        }
        fn root(&self, size: u64) -> Hash {
            let mut leaves = merkle::RootBuilder::new();
            for l in &self.leaves[..size as usize] {
                leaves.push(*l);
            }
            leaves.root()
        }
        fn note(&self, size: u64, root: Hash) -> String {
            pki::Checkpoint {
                origin: self.key.origin().into(),
                size,
                root,
                resident_index: None,
            }
            .sign(&self.key)
        }
        fn request(&self, old: u64, size: u64) -> AddCheckpoint {
            let proof = if old == 0 || old == size {
                vec![]
            } else {
                merkle::consistency_proof::<merkle::ProofError>(old, size, &mut |s, l| {
                    let mut f = merkle::RootBuilder::new();
                    for leaf in &self.leaves[s as usize..(s + l) as usize] {
                        f.push(*leaf);
                    }
                    Ok(f.root())
                })
                .unwrap()
            };
            AddCheckpoint {
                old,
                proof,
                note: self.note(size, self.root(size)),
            }
        }
        fn keys(&self) -> Vec<pki::LogVerifier> {
            vec![self.key.verifier().clone()]
        }
    }

    /// The witness's state for one log, as the server keeps it.
    fn submit(log: &Log, state: &mut Option<Latest>, req: &AddCheckpoint) -> Result<(), Refusal> {
        let body = AddCheckpoint::parse(req.encode().as_bytes())?;
        assert_eq!(&body, req);
        let c = decide(&body, &log.keys(), |_| *state)?;
        *state = Some(Latest {
            size: c.size,
            root: c.root,
        });
        Ok(())
    }

    #[test]
    fn the_witness_cosigns_first_and_consistent_checkpoints_only() {
        let mut log = Log::new();
        let mut state = None;
        log.grow(5);
        // First checkpoint: old 0, no proof.
        submit(&log, &mut state, &log.request(0, 5)).unwrap();
        assert_eq!(state.unwrap().size, 5);
        // The same again: fine, nothing changes.
        submit(&log, &mut state, &log.request(5, 5)).unwrap();
        // Consistent growth with a proof.
        log.grow(8);
        submit(&log, &mut state, &log.request(5, 13)).unwrap();
        assert_eq!(state.unwrap().size, 13);
        // old ≠ the latest cosigned size: 409 with the size.
        let stale = submit(&log, &mut state, &log.request(5, 13)).unwrap_err();
        assert_eq!(stale.status(), 409);
        assert!(matches!(stale, Refusal::Conflict { latest: 13, .. }));
        let fresh = submit(&log, &mut state, &log.request(0, 13)).unwrap_err();
        assert!(matches!(fresh, Refusal::Conflict { latest: 13, .. }));
        // Same size, another root (a fork): 409, and the state is unchanged.
        let forked = AddCheckpoint {
            old: 13,
            proof: vec![],
            note: log.note(13, [9; 32]),
        };
        let err = submit(&log, &mut state, &forked).unwrap_err();
        assert_eq!(err.status(), 409);
        assert_eq!(state.unwrap().root, log.root(13));
        // A bad proof: 422.
        log.grow(3);
        let mut bad = log.request(13, 16);
        bad.proof[0][0] ^= 1;
        assert_eq!(submit(&log, &mut state, &bad).unwrap_err().status(), 422);
        // A larger tree that does not extend the cosigned one: 422 too.
        let other = AddCheckpoint {
            old: 13,
            proof: log.request(13, 16).proof,
            note: log.note(16, [1; 32]),
        };
        assert_eq!(submit(&log, &mut state, &other).unwrap_err().status(), 422);
        assert_eq!(state.unwrap().size, 13);
        // old > new: 400.
        assert_eq!(
            submit(&log, &mut state, &log.request(16, 16).with_old(17))
                .unwrap_err()
                .status(),
            400
        );
        submit(&log, &mut state, &log.request(13, 16)).unwrap();
    }

    impl AddCheckpoint {
        fn with_old(mut self, old: u64) -> Self {
            self.old = old;
            self
        }
    }

    #[test]
    fn unknown_logs_and_bad_signatures_are_refused() {
        let mut log = Log::new();
        log.grow(2);
        let req = log.request(0, 2);
        let other = Log::new();
        // The witness does not know this log: 404.
        let err = decide(&req, &[], |_| None).unwrap_err();
        assert_eq!(err.status(), 404);
        // Known origin, another key (the signature is not the log's): 403.
        let err = decide(&req, &other.keys(), |_| None).unwrap_err();
        assert_eq!(err.status(), 403);
        let altered = AddCheckpoint {
            note: req.note.replacen("\n2\n", "\n3\n", 1),
            ..req.clone()
        };
        assert_eq!(
            decide(&altered, &log.keys(), |_| None)
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn bodies_parse_strictly() {
        for bad in [
            "",
            "old 1\n",
            "old x\n\nnote",
            "old 01\n\nnote",
            "new 1\n\nnote",
            "old 1\n!!!\n\nnote",
            "old 1\nAAAA\n\nnote",
        ] {
            assert_eq!(
                AddCheckpoint::parse(bad.as_bytes()).unwrap_err().status(),
                400,
                "{bad:?}"
            );
        }
        let many = format!(
            "old 1\n{}\nnote",
            format!("{}\n", BASE64.encode([0u8; 32])).repeat(64)
        );
        assert!(AddCheckpoint::parse(many.as_bytes()).is_err());
        let long = vec![b'a'; ADD_CHECKPOINT_LEN_MAX + 1];
        assert!(AddCheckpoint::parse(&long).is_err());
    }
}
