//! Receipts: a log entry with what proves it, as a C2SP tlog-proof
//! (`c2sp.org/tlog-proof@v1`): the entry's canonical bytes as the `extra`
//! line, its index, its RFC 6962 inclusion proof, and the signed
//! checkpoint verbatim. A receipt verifies offline: with the log's public
//! key(s) only, no node.
//!
//! The `extra` data is not authenticated by the format; here it is: the
//! entry's leaf hash (RFC 6962, `0x00 ‖ bytes`) must lead through the proof
//! to the checkpoint's root, so the bytes are the logged ones.
//!
//! Pure: parsing and checking text; the caller verifies the checkpoint
//! note's signature (with the district's log key) through a function it
//! passes in, so this module does not depend on how keys are held.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::merkle::{self, Hash};

/// The first line of every receipt.
pub const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Longest receipt accepted, in bytes (an entry, 64 proof hashes, a note
/// with its cosignatures).
pub const RECEIPT_LEN_MAX: usize = 64 * 1024;

/// A receipt that did not parse or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReceiptError(pub String);

fn bad(message: impl Into<String>) -> ReceiptError {
    ReceiptError(message.into())
}

/// A receipt's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's canonical bytes.
    pub entry: Vec<u8>,
    /// Its index in the log.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub note: String,
}

impl Receipt {
    /// The receipt as text (ends with the note's own final newline).
    pub fn encode(&self) -> String {
        let mut out = format!(
            "{RECEIPT_HEADER}\nextra {}\nindex {}\n",
            BASE64.encode(&self.entry),
            self.index
        );
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Parses a receipt (the structure only; see [`Self::verify`]).
    pub fn parse(text: &str) -> Result<Receipt, ReceiptError> {
        if text.len() > RECEIPT_LEN_MAX {
            return Err(bad("the receipt is longer than any receipt can be"));
        }
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(RECEIPT_HEADER) {
            return Err(bad(format!(
                "not a receipt: the first line must be {RECEIPT_HEADER}"
            )));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let entry = match line.strip_prefix("extra ") {
            Some(extra) => {
                let bytes = BASE64
                    .decode(extra)
                    .map_err(|_| bad("the extra line is not base64"))?;
                line = lines.next().ok_or_else(|| bad("no index line"))?;
                bytes
            }
            None => return Err(bad("no extra line: a vault receipt carries its entry")),
        };
        let index_text = line
            .strip_prefix("index ")
            .ok_or_else(|| bad("no index line"))?;
        if index_text.len() > 1 && index_text.starts_with('0') {
            return Err(bad("the index has leading zeroes"));
        }
        let index: u64 = index_text
            .parse()
            .map_err(|_| bad("the index is not a number"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() >= merkle::PROOF_LEN_MAX {
                return Err(bad("the proof is longer than any tree needs"));
            }
            let bytes = BASE64
                .decode(line)
                .map_err(|_| bad("a proof line is not base64"))?;
            let hash: Hash = bytes
                .try_into()
                .map_err(|_| bad("a proof line is not a SHA-256 hash"))?;
            proof.push(hash);
        }
        Ok(Receipt {
            entry,
            index,
            proof,
            note: note.to_string(),
        })
    }

    /// Checks the receipt: `check_note` verifies the checkpoint note's
    /// signature(s) and answers its size and root; the entry's leaf must
    /// lead through the proof to that root. Answers the entry and the
    /// checkpoint's size.
    pub fn verify<E>(
        &self,
        check_note: impl FnOnce(&str) -> Result<(u64, Hash), E>,
    ) -> Result<(pki::LogEntry, u64), ReceiptVerifyError<E>> {
        let (size, root) = check_note(&self.note).map_err(ReceiptVerifyError::Checkpoint)?;
        let leaf = merkle::leaf_hash(&self.entry);
        merkle::verify_inclusion(self.index, size, &leaf, &self.proof, &root)
            .map_err(|e| ReceiptVerifyError::Proof(e.to_string()))?;
        let entry = pki::LogEntry::parse(&self.entry)
            .map_err(|e| ReceiptVerifyError::Proof(format!("the entry does not parse: {e}")))?;
        Ok((entry, size))
    }
}

/// Why a receipt did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptVerifyError<E> {
    /// The checkpoint's signature (or cosignatures) did not verify.
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(E),
    /// The entry is not in the checkpointed tree at its index.
    #[error("the entry is not in the signed log at its index: {0}")]
    Proof(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Vec<u8> {
        let mut e = pki::LogEntry::new(
            pki::LogEvent::Fetch,
            1_800_000_000 + i64::from(n),
            pki::Role::Department,
            "housing-bureau",
        );
        e.use_number = u32::from(n);
        e.canonical_bytes()
    }

    /// A tree of `n` entries, and a receipt for entry `i` with `note`
    /// standing for the checkpoint.
    fn receipt(n: u8, i: u8) -> (Receipt, u64, Hash) {
        let leaves: Vec<Hash> = (0..n).map(|k| merkle::leaf_hash(&entry(k))).collect();
        let mut builder = merkle::RootBuilder::new();
        for leaf in &leaves {
            builder.push(*leaf);
        }
        let root = builder.root();
        let mut subtree = |start: u64, len: u64| -> Result<Hash, merkle::ProofError> {
            let mut b = merkle::RootBuilder::new();
            for leaf in &leaves[start as usize..(start + len) as usize] {
                b.push(*leaf);
            }
            Ok(b.root())
        };
        let proof = merkle::inclusion_proof(u64::from(i), leaves.len() as u64, &mut subtree)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let r = Receipt {
            entry: entry(i),
            index: u64::from(i),
            proof,
            note: "dev.district.example/vault\n7\nroot\n\n— dev.district.example/vault sig\n"
                .into(),
        };
        (r, u64::from(n), root)
    }

    #[test]
    fn a_receipt_round_trips_and_verifies_against_its_root() {
        let (r, size, root) = receipt(7, 3);
        let text = r.encode();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
        assert!(text.contains("\nindex 3\n"));
        let back = Receipt::parse(&text).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(back, r);
        let checked = back.verify(|note| {
            assert!(note.starts_with("dev.district.example/vault\n"));
            Ok::<_, String>((size, root))
        });
        let (e, s) = checked.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((e.use_number, s), (3, 7));
    }

    #[test]
    fn a_changed_entry_index_proof_or_root_is_refused() {
        let (r, size, root) = receipt(7, 3);
        let ok = |r: &Receipt| r.verify(|_| Ok::<_, String>((size, root))).is_ok();
        assert!(ok(&r));
        let mut other = r.clone();
        other.entry = entry(4);
        assert!(!ok(&other), "another entry");
        let mut other = r.clone();
        other.index = 4;
        assert!(!ok(&other), "another index");
        let mut other = r.clone();
        other.proof[0][0] ^= 1;
        assert!(!ok(&other), "a changed proof");
        assert!(
            r.verify(|_| Ok::<_, String>((size, [0; 32]))).is_err(),
            "another root"
        );
        assert!(r
            .verify(|_| Err::<(u64, Hash), _>("bad signature".to_string()))
            .is_err());
    }

    #[test]
    fn malformed_receipts_are_refused() {
        let (r, _, _) = receipt(3, 1);
        let text = r.encode();
        for broken in [
            text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            text.replacen("index 1", "index 01", 1),
            text.replacen("index 1", "index x", 1),
            text.replacen("\n\n", "\n", 1),
            text.replacen("extra ", "extra !", 1),
            "c2sp.org/tlog-proof@v1\nindex 1\n\nnote\n".to_string(),
            "x".repeat(RECEIPT_LEN_MAX + 1),
        ] {
            assert!(Receipt::parse(&broken).is_err(), "{broken:?}");
        }
    }
}
