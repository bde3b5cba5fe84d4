//! The resident index: a sparse Merkle tree over SHA-256 keyed by 32-byte
//! resident tags, whose leaf for a tag commits to the tag's newest log
//! entry and number of entries ([`head_value`]). Its root is signed in each
//! checkpoint (the `resident-index` line), so a resident can check that the
//! node showed every entry of their chain (`docs/COMPLETENESS.md`).
//!
//! The tree is the depth-256 binary tree of the keys' bits (most
//! significant first) with two compressions, as in Diem's Jellyfish Merkle
//! tree: an empty subtree hashes to 32 zero bytes, and a subtree holding a
//! single leaf hashes to that leaf's hash (the leaf sits as high as it can).
//! So the root over n leaves costs O(n log n) hashes, a proof is about
//! log2(n) sibling hashes, and one update rehashes about log2(n) nodes.
//!
//! ```text
//! leaf     = SHA-256(0x00 || key (32) || value (32))
//! internal = SHA-256(0x01 || left (32) || right (32))
//! empty    = 32 zero bytes
//! ```
//!
//! [`Tree`] is persistent (path copying, shared subtrees), so a snapshot for
//! a checkpoint is a clone of one pointer. Pure: no I/O.

use std::sync::Arc;

use ring::digest;

/// A 32-byte hash (or key).
pub type Hash = [u8; 32];
/// The hash of an empty subtree.
pub const EMPTY: Hash = [0; 32];
/// Depth of the tree: one level per key bit.
pub const DEPTH: usize = 256;
/// Domain tag of a resident index leaf's value.
pub const RESIDENT_HEAD_TAG: &[u8] = b"vault/resident-head/v1\n";

/// A leaf's hash: SHA-256(0x00 || key || value).
pub fn leaf_hash(key: &Hash, value: &Hash) -> Hash {
    sha256(&[&[0x00], key, value])
}

/// An internal node's hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The value of a resident tag's leaf: SHA-256("vault/resident-head/v1\n"
/// || tag || head_index u64 BE || count u64 BE).
pub fn head_value(tag: &Hash, head: u64, count: u64) -> Hash {
    sha256(&[
        RESIDENT_HEAD_TAG,
        tag,
        &head.to_be_bytes(),
        &count.to_be_bytes(),
    ])
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Bit `depth` of `key`, most significant first (`depth` < 256).
fn bit(key: &Hash, depth: usize) -> bool {
    (key[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

/// The root over `leaves` (keys sorted ascending, without duplicates), by
/// the definition: no leaf is [`EMPTY`], one leaf is its hash, more are
/// split by the next key bit. O(n log n); the reference the tree is tested
/// against, and what an auditor computes from the whole log.
pub fn root_of(leaves: &[(Hash, Hash)]) -> Hash {
    subtree_root(leaves, 0)
}

fn subtree_root(leaves: &[(Hash, Hash)], depth: usize) -> Hash {
    match leaves {
        [] => EMPTY,
        [(key, value)] => leaf_hash(key, value),
        _ if depth >= DEPTH => EMPTY, // unreachable with distinct keys
        _ => {
            let split = leaves.partition_point(|(key, _)| !bit(key, depth));
            let (left, right) = leaves.split_at(split);
            node_hash(
                &subtree_root(left, depth + 1),
                &subtree_root(right, depth + 1),
            )
        }
    }
}

#[derive(Debug)]
enum Node {
    Empty,
    Leaf {
        key: Hash,
        value: Hash,
        hash: Hash,
        /// For a resident index leaf: the (head, count) its value commits to.
        head: Option<(u64, u64)>,
    },
    /// Holds at least two leaves.
    Internal {
        left: Arc<Node>,
        right: Arc<Node>,
        hash: Hash,
    },
}

impl Node {
    fn hash(&self) -> Hash {
        match self {
            Node::Empty => EMPTY,
            Node::Leaf { hash, .. } | Node::Internal { hash, .. } => *hash,
        }
    }

    fn leaf(key: Hash, value: Hash, head: Option<(u64, u64)>) -> Arc<Node> {
        Arc::new(Node::Leaf {
            key,
            value,
            hash: leaf_hash(&key, &value),
            head,
        })
    }

    fn internal(left: Arc<Node>, right: Arc<Node>) -> Arc<Node> {
        let hash = node_hash(&left.hash(), &right.hash());
        Arc::new(Node::Internal { left, right, hash })
    }
}

/// A sparse Merkle tree (persistent: clones share structure).
#[derive(Debug, Clone)]
pub struct Tree {
    root: Arc<Node>,
    len: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Arc::new(Node::Empty),
            len: 0,
        }
    }
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        self.root.hash()
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the leaf for `key` to `value` (inserting it if absent):
    /// O(log n) new nodes on average, the rest shared.
    pub fn insert(&mut self, key: Hash, value: Hash) {
        self.put(key, value, None);
    }

    /// Sets a resident index leaf: `tag`'s newest entry is `head` and it has
    /// `count` entries (value [`head_value`]); [`Tree::head_of`] reads them back.
    pub fn insert_head(&mut self, tag: Hash, head: u64, count: u64) {
        self.put(tag, head_value(&tag, head, count), Some((head, count)));
    }

    /// The (head, count) of `tag`'s leaf, when set by [`Tree::insert_head`].
    pub fn head_of(&self, tag: &Hash) -> Option<(u64, u64)> {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node.as_ref() {
                Node::Empty => return None,
                Node::Leaf { key, head, .. } => return head.filter(|_| key == tag),
                Node::Internal { left, right, .. } => {
                    node = if bit(tag, depth) { right } else { left };
                    depth += 1;
                }
            }
        }
    }

    fn put(&mut self, key: Hash, value: Hash, head: Option<(u64, u64)>) {
        let (root, added) = insert(&self.root, 0, key, value, head);
        self.root = root;
        self.len += usize::from(added);
    }

    /// The value of `key`'s leaf, if any.
    pub fn get(&self, key: &Hash) -> Option<Hash> {
        match self.walk(key).1 {
            Terminal::Leaf { key: k, value } if k == *key => Some(value),
            _ => None,
        }
    }

    /// The proof for `key`: of its leaf if present, else of its absence.
    pub fn prove(&self, key: &Hash) -> Proof {
        let (siblings, terminal) = self.walk(key);
        Proof { siblings, terminal }
    }

    fn walk(&self, key: &Hash) -> (Vec<Hash>, Terminal) {
        let mut siblings = Vec::new();
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node.as_ref() {
                Node::Empty => return (siblings, Terminal::Empty),
                Node::Leaf { key, value, .. } => {
                    let terminal = Terminal::Leaf {
                        key: *key,
                        value: *value,
                    };
                    return (siblings, terminal);
                }
                Node::Internal { left, right, .. } => {
                    if bit(key, depth) {
                        siblings.push(left.hash());
                        node = right;
                    } else {
                        siblings.push(right.hash());
                        node = left;
                    }
                    depth += 1;
                }
            }
        }
    }
}

/// Returns the new subtree and whether a leaf was added.
fn insert(
    node: &Arc<Node>,
    depth: usize,
    key: Hash,
    value: Hash,
    head: Option<(u64, u64)>,
) -> (Arc<Node>, bool) {
    match node.as_ref() {
        Node::Empty => (Node::leaf(key, value, head), true),
        Node::Leaf { key: k, .. } if *k == key => (Node::leaf(key, value, head), false),
        Node::Leaf { key: k, .. } => {
            let new = Node::leaf(key, value, head);
            (split(depth, node.clone(), *k, key, new), true)
        }
        Node::Internal { left, right, .. } => {
            if bit(&key, depth) {
                let (right, added) = insert(right, depth + 1, key, value, head);
                (Node::internal(left.clone(), right), added)
            } else {
                let (left, added) = insert(left, depth + 1, key, value, head);
                (Node::internal(left, right.clone()), added)
            }
        }
    }
}

/// The subtree at `depth` holding the leaf `existing` (key `old`) and a
/// new leaf (`key` ≠ `old`): internal nodes down to the first bit where
/// the keys differ.
fn split(depth: usize, existing: Arc<Node>, old: Hash, key: Hash, new: Arc<Node>) -> Arc<Node> {
    let empty = || Arc::new(Node::Empty);
    if depth >= DEPTH {
        return existing; // unreachable: distinct keys differ in some bit
    }
    match (bit(&old, depth), bit(&key, depth)) {
        (false, true) => Node::internal(existing, new),
        (true, false) => Node::internal(new, existing),
        (false, false) => Node::internal(split(depth + 1, existing, old, key, new), empty()),
        (true, true) => Node::internal(empty(), split(depth + 1, existing, old, key, new)),
    }
}

/// Where a key's path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    /// An empty subtree: the key is absent.
    Empty,
    /// A single leaf: the key's own (present) or another key's (absent).
    Leaf {
        /// The leaf's key.
        key: Hash,
        /// The leaf's value.
        value: Hash,
    },
}

/// A proof for one key: the sibling hashes along its path from the root
/// down, and where the path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Sibling hashes, the root's child's first (at most [`DEPTH`]).
    pub siblings: Vec<Hash>,
    /// The subtree the path ends in.
    pub terminal: Terminal,
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtError {
    /// More siblings than the tree is deep.
    #[error("the index proof has {0} siblings, more than 256")]
    TooLong(usize),
    /// The proof ends in another leaf, or none, where `key`'s was claimed;
    /// or in `key`'s leaf where its absence was.
    #[error("the index proof ends in a different leaf than claimed")]
    WrongTerminal,
    /// The proof ends in a leaf that is not on the key's path.
    #[error("the index proof's leaf is not on the key's path")]
    OffPath,
    /// The proof does not lead to the root.
    #[error("the index proof does not lead to the signed index root")]
    Mismatch,
}

impl Proof {
    /// Checks that, in the tree of `root`, `key`'s leaf has `value` (with
    /// `Some`) or that `key` has no leaf (with `None`).
    pub fn verify(&self, root: &Hash, key: &Hash, value: Option<&Hash>) -> Result<(), SmtError> {
        let depth = self.siblings.len();
        if depth > DEPTH {
            return Err(SmtError::TooLong(depth));
        }
        let mut hash = match (&self.terminal, value) {
            (Terminal::Leaf { key: k, value: v }, Some(want)) if k == key && v == want => {
                leaf_hash(k, v)
            }
            (Terminal::Leaf { key: k, value: v }, None) if k != key => {
                // A leaf standing for the whole subtree on `key`'s path:
                // it must share the path's first `depth` bits.
                if (0..depth).any(|d| bit(k, d) != bit(key, d)) {
                    return Err(SmtError::OffPath);
                }
                leaf_hash(k, v)
            }
            (Terminal::Empty, None) => EMPTY,
            _ => return Err(SmtError::WrongTerminal),
        };
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            hash = if bit(key, d) {
                node_hash(sibling, &hash)
            } else {
                node_hash(&hash, sibling)
            };
        }
        if hash == *root {
            Ok(())
        } else {
            Err(SmtError::Mismatch)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(first: u8, last: u8) -> Hash {
        let mut k = [0u8; 32];
        k[0] = first;
        k[31] = last;
        k
    }

    /// The reference: a depth-256 tree without compression, then
    /// compressed by the rule (a subtree with one leaf is that leaf):
    /// computed level by level over every bit, independently of the split
    /// by `partition_point`.
    fn naive_root(leaves: &BTreeMap<Hash, Hash>) -> Hash {
        fn go(leaves: &[(&Hash, &Hash)], depth: usize) -> Hash {
            if leaves.is_empty() {
                return EMPTY;
            }
            if leaves.len() == 1 {
                return leaf_hash(leaves[0].0, leaves[0].1);
            }
            let left: Vec<_> = leaves
                .iter()
                .copied()
                .filter(|(k, _)| !bit(k, depth))
                .collect();
            let right: Vec<_> = leaves
                .iter()
                .copied()
                .filter(|(k, _)| bit(k, depth))
                .collect();
            node_hash(&go(&left, depth + 1), &go(&right, depth + 1))
        }
        let all: Vec<_> = leaves.iter().collect();
        go(&all, 0)
    }

    #[test]
    fn small_trees_have_the_specified_hashes() {
        let t = Tree::new();
        assert_eq!(t.root(), EMPTY);
        let (a, b) = (key(0x00, 1), key(0x80, 2));
        let mut one = Tree::new();
        one.insert(a, [1; 32]);
        assert_eq!(one.root(), leaf_hash(&a, &[1; 32]));
        let mut two = one.clone();
        two.insert(b, [2; 32]);
        assert_eq!(
            two.root(),
            node_hash(&leaf_hash(&a, &[1; 32]), &leaf_hash(&b, &[2; 32]))
        );
        // Keys sharing their first bit: an empty left subtree at the top.
        let (c, d) = (key(0x80, 3), key(0xc0, 4));
        let mut shared = Tree::new();
        shared.insert(d, [4; 32]);
        shared.insert(c, [3; 32]);
        assert_eq!(
            shared.root(),
            node_hash(
                &EMPTY,
                &node_hash(&leaf_hash(&c, &[3; 32]), &leaf_hash(&d, &[4; 32]))
            )
        );
        // The clone taken before is unchanged (persistence).
        assert_eq!(one.root(), leaf_hash(&a, &[1; 32]));
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        // Updating a leaf changes the root, not the count.
        two.insert(a, [9; 32]);
        assert_eq!(two.len(), 2);
        assert_eq!(two.get(&a), Some([9; 32]));
        assert_eq!(two.get(&key(0x40, 0)), None);
    }

    #[test]
    fn proofs_of_presence_and_absence_verify_and_lies_do_not() {
        let mut t = Tree::new();
        let keys: Vec<Hash> = (0..20u8).map(|i| key(i.wrapping_mul(37), i)).collect();
        for (i, k) in keys.iter().enumerate() {
            t.insert(*k, [i as u8; 32]);
        }
        let root = t.root();
        for (i, k) in keys.iter().enumerate() {
            let proof = t.prove(k);
            assert!(proof.siblings.len() <= 10, "{}", proof.siblings.len());
            proof.verify(&root, k, Some(&[i as u8; 32])).unwrap();
            // The wrong value, or a claim of absence, fails.
            assert!(proof.verify(&root, k, Some(&[0xee; 32])).is_err());
            assert_eq!(proof.verify(&root, k, None), Err(SmtError::WrongTerminal));
        }
        // An absent key: ends in an empty subtree or another key's leaf.
        let absent = key(0xff, 0xff);
        let proof = t.prove(&absent);
        proof.verify(&root, &absent, None).unwrap();
        assert!(proof.verify(&root, &absent, Some(&[0; 32])).is_err());
        // A present key's proof offered as the absence of another key that
        // is not on its path is refused.
        let other = t.prove(&keys[3]);
        let elsewhere = key(keys[3][0] ^ 0x80, 0);
        assert!(other.verify(&root, &elsewhere, None).is_err());
        // A tampered sibling fails.
        let mut tampered = t.prove(&keys[0]);
        tampered.siblings[0][0] ^= 1;
        assert_eq!(
            tampered.verify(&root, &keys[0], Some(&[0; 32])),
            Err(SmtError::Mismatch)
        );
        let too_long = Proof {
            siblings: vec![EMPTY; 257],
            terminal: Terminal::Empty,
        };
        assert_eq!(
            too_long.verify(&root, &absent, None),
            Err(SmtError::TooLong(257))
        );
    }

    #[test]
    fn resident_head_values_bind_tag_head_and_count() {
        let tag = [7; 32];
        let v = head_value(&tag, 5, 2);
        assert_ne!(v, head_value(&tag, 5, 3));
        assert_ne!(v, head_value(&tag, 6, 2));
        assert_ne!(v, head_value(&[8; 32], 5, 2));
        let mut bytes = RESIDENT_HEAD_TAG.to_vec();
        bytes.extend_from_slice(&tag);
        bytes.extend_from_slice(&5u64.to_be_bytes());
        bytes.extend_from_slice(&2u64.to_be_bytes());
        assert_eq!(v, sha256(&[&bytes]));
    }

    /// Keys that often share long prefixes (few distinct first bytes), so
    /// deep splits are exercised.
    fn keys() -> impl Strategy<Value = Vec<(Hash, u8)>> {
        proptest::collection::vec(
            (0u8..4, any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| {
                let mut k = [0u8; 32];
                k[0] = a << 6;
                k[1] = b & 0x0f;
                k[31] = c;
                (k, c)
            }),
            0..60,
        )
    }

    proptest! {
        #[test]
        fn the_tree_matches_the_naive_root_in_any_order(entries in keys(), probe in any::<[u8; 32]>()) {
            let mut tree = Tree::new();
            let mut reference = BTreeMap::new();
            for (k, v) in &entries {
                tree.insert(*k, [*v; 32]);
                reference.insert(*k, [*v; 32]);
                prop_assert_eq!(tree.root(), naive_root(&reference));
            }
            prop_assert_eq!(tree.len(), reference.len());
            let sorted: Vec<(Hash, Hash)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(root_of(&sorted), tree.root());
            // Inserted in reverse: the same root.
            let mut reversed = Tree::new();
            for (k, v) in sorted.iter().rev() {
                reversed.insert(*k, *v);
            }
            prop_assert_eq!(reversed.root(), tree.root());
            let root = tree.root();
            for (k, v) in &reference {
                tree.prove(k).verify(&root, k, Some(v)).unwrap();
            }
            if !reference.contains_key(&probe) {
                let proof = tree.prove(&probe);
                prop_assert!(proof.verify(&root, &probe, None).is_ok());
                prop_assert!(proof.verify(&root, &probe, Some(&[0; 32])).is_err());
            }
        }
    }
}
