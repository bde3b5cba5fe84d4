//! RFC 6962 Merkle tree math over SHA-256: leaf and node hashes, the root
//! of a run of leaves, and inclusion and consistency proofs (generation
//! over any subtree-hash source, and verification). No I/O, no panics on
//! input: any independent RFC 6962 implementation can check our proofs.

use ring::digest;

/// A SHA-256 hash.
pub type Hash = [u8; 32];
/// Most hashes a proof may carry (a tree of 2^64 leaves needs 2 * 64).
pub const PROOF_LEN_MAX: usize = 128;

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Index or sizes out of range.
    #[error("proof parameters out of range: {0}")]
    Range(String),
    /// The proof has the wrong number of hashes.
    #[error("the proof has {got} hashes, expected {want}")]
    Length {
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        want: usize,
    },
    /// The proof does not lead to the expected root.
    #[error("the proof does not match the root")]
    Mismatch,
}

impl ProofError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Range(_) => "proof.range",
            ProofError::Length { .. } => "proof.length",
            ProofError::Mismatch => "proof.mismatch",
        }
    }
}

/// SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0]);
    ctx.update(entry);
    finish(ctx)
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[1]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

/// SHA-256 of nothing: the root of an empty tree.
pub fn empty_root() -> Hash {
    finish(digest::Context::new(&digest::SHA256))
}

fn finish(ctx: digest::Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Computes the root of leaves pushed one at a time, in O(log n) memory.
#[derive(Debug, Default, Clone)]
pub struct RootBuilder {
    /// Perfect subtrees, largest first: (leaf count, hash).
    stack: Vec<(u64, Hash)>,
    size: u64,
}

impl RootBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (1u64, leaf);
        while let Some(&(count, left)) = self.stack.last() {
            if count != node.0 {
                break;
            }
            self.stack.pop();
            node = (count * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// Leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The largest power of two strictly less than `n` (n >= 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The RFC 6962 inclusion proof (audit path) of leaf `index` in a tree of
/// `size`, using `subtree(start, len)` for the hash of leaves
/// `[start, start + len)`.
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    subtree: &mut dyn FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E>
where
    E: From<ProofError>,
{
    if index >= size {
        return Err(ProofError::Range(format!("leaf {index} is not in a tree of {size}")).into());
    }
    let mut proof = Vec::new();
    let (mut start, mut len, mut m) = (0u64, size, index);
    // Walk down from the root, collecting siblings, then reverse.
    while len > 1 {
        let k = split(len);
        if m < k {
            proof.push(subtree(start + k, len - k)?);
            len = k;
        } else {
            proof.push(subtree(start, k)?);
            start += k;
            m -= k;
            len -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The RFC 6962 consistency proof between tree sizes `old` and `new`.
pub fn consistency_proof<E>(
    old: u64,
    new: u64,
    subtree: &mut dyn FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E>
where
    E: From<ProofError>,
{
    if old == 0 || old > new {
        return Err(ProofError::Range(format!("no consistency proof from {old} to {new}")).into());
    }
    let mut proof = Vec::new();
    subproof(old, 0, new, true, subtree, &mut proof)?;
    Ok(proof)
}

/// SUBPROOF(m, D[start:start+n], b) from RFC 6962 section 2.1.2.
fn subproof<E>(
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    subtree: &mut dyn FnMut(u64, u64) -> Result<Hash, E>,
    proof: &mut Vec<Hash>,
) -> Result<(), E> {
    if m == n {
        if !whole {
            proof.push(subtree(start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, k, whole, subtree, proof)?;
        proof.push(subtree(start + k, n - k)?);
    } else {
        subproof(m - k, start + k, n - k, false, subtree, proof)?;
        proof.push(subtree(start, k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf {index} is not in a tree of {size}"
        )));
    }
    if proof.len() > PROOF_LEN_MAX {
        return Err(ProofError::Length {
            got: proof.len(),
            want: PROOF_LEN_MAX,
        });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::Length {
                got: proof.len(),
                want: 0,
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if &r != root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if let Some(verdict) = consistency_without_path(old, new, old_root, new_root, proof) {
        return verdict;
    }
    let (fr, sr) = consistency_roots(old, new, old_root, proof)?;
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// The verdict on a consistency proof that needs no path walk (sizes out
/// of order, equal sizes, an empty old tree) or whose length is out of
/// bounds; `None` when the path must be walked.
fn consistency_without_path(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Option<Result<(), ProofError>> {
    let empty = |verdict: Result<(), ProofError>| {
        if proof.is_empty() {
            verdict
        } else {
            Err(ProofError::Length {
                got: proof.len(),
                want: 0,
            })
        }
    };
    if old > new {
        return Some(Err(ProofError::Range(format!(
            "old size {old} exceeds new size {new}"
        ))));
    }
    if old == new {
        let same = if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
        return Some(empty(same));
    }
    if old == 0 {
        return Some(empty(Ok(())));
    }
    if proof.is_empty() || proof.len() > PROOF_LEN_MAX {
        return Some(Err(ProofError::Length {
            got: proof.len(),
            want: 1,
        }));
    }
    None
}

/// Walks a consistency proof from `0 < old < new` (RFC 9162 2.1.4.2 steps
/// 2-7), answering the old and the new root it leads to.
fn consistency_roots(
    old: u64,
    new: u64,
    old_root: &Hash,
    proof: &[Hash],
) -> Result<(Hash, Hash), ProofError> {
    let mut path: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::Length { got: 0, want: 1 });
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return Err(ProofError::Length {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    Ok((fr, sr))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference MTH straight from RFC 6962, recursive over leaf hashes.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn source(leaves: &[Hash]) -> impl FnMut(u64, u64) -> Result<Hash, ProofError> + '_ {
        move |start, len| Ok(mth(&leaves[start as usize..(start + len) as usize]))
    }

    #[test]
    fn known_answer_for_the_empty_tree() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    proptest! {
        #[test]
        fn builder_matches_reference(n in 0u64..300) {
            let l = leaves(n);
            let mut b = RootBuilder::new();
            for h in &l {
                b.push(*h);
            }
            prop_assert_eq!(b.root(), mth(&l));
        }

        #[test]
        fn inclusion_proofs_verify_and_fail_when_tampered(n in 1u64..200, i in 0u64..200, flip in 0usize..64) {
            let i = i % n;
            let l = leaves(n);
            let root = mth(&l);
            let proof = inclusion_proof(i, n, &mut source(&l)).unwrap();
            prop_assert!(verify_inclusion(i, n, &l[i as usize], &proof, &root).is_ok());
            let other = leaf_hash(b"other");
            prop_assert!(verify_inclusion(i, n, &other, &proof, &root).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let k = flip % bad.len();
                bad[k][0] ^= 1;
                prop_assert!(verify_inclusion(i, n, &l[i as usize], &bad, &root).is_err());
                prop_assert!(verify_inclusion(i, n, &l[i as usize], &proof[1..], &root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_fail_when_tampered(n in 1u64..200, m in 1u64..200) {
            let m = 1 + (m - 1) % n;
            let l = leaves(n);
            let (old_root, new_root) = (mth(&l[..m as usize]), mth(&l));
            let proof = consistency_proof(m, n, &mut source(&l)).unwrap();
            prop_assert!(verify_consistency(m, n, &old_root, &new_root, &proof).is_ok());
            let forked = leaf_hash(b"fork");
            prop_assert!(verify_consistency(m, n, &forked, &new_root, &proof).is_err() || m == n && proof.is_empty() && forked == new_root);
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                bad[0] = node_hash(first, first);
                prop_assert!(verify_consistency(m, n, &old_root, &new_root, &bad).is_err());
            }
        }

        #[test]
        fn arbitrary_proofs_never_panic(i in 0u64..1000, n in 0u64..1000, k in 0usize..20) {
            let proof = vec![[3u8; 32]; k];
            let _ = verify_inclusion(i, n, &[1; 32], &proof, &[2; 32]);
            let _ = verify_consistency(i, n, &[1; 32], &[2; 32], &proof);
        }
    }
}
