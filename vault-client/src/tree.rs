//! BLAKE3 verified streaming over 16 KiB chunk groups, with a pre-order outboard.
//!
//! Content of `size` bytes is cut into groups of [`GROUP_SIZE`] bytes (16 BLAKE3
//! chunks). The hash tree is BLAKE3's own tree cut off at group level, so its
//! root is always `blake3::hash(content)`. The outboard stores every parent
//! node as a 64-byte pair (left CV ‖ right CV) in pre-order.
//!
//! A transfer of a byte range is the sequence of [`Piece`]s that [`plan`]
//! yields: each parent whose span meets the range (its pair), then each group
//! that meets the range (whole, the receiver trims). [`RangeDecoder`] checks
//! every piece against the root hash before handing out a single byte.
//!
//! **Invariant:** this module does no I/O and never panics on input a peer or
//! a file controls; every bad length, range, size or hash is a [`TreeError`].
//! Sender and receiver both walk the tree with O(tree depth) state.

use std::iter::FusedIterator;
use std::ops::Range;

use blake3::hazmat::{self, ChainingValue, HasherExt, Mode};
use blake3::Hasher;

/// Bytes per group, the unit a leaf of the tree covers (16 BLAKE3 chunks).
pub const GROUP_SIZE: u64 = 16 * 1024;
/// Bytes of one outboard entry: the left and the right chaining value of a parent.
pub const PAIR_LEN: usize = 64;
/// Largest content we accept (guards arithmetic): 1 TiB.
pub const CONTENT_LEN_MAX: u64 = 1 << 40;

/// Bytes of one chaining value.
const CV_LEN: usize = 32;
/// Stack slots reserved up front for a walk: the tree over [`CONTENT_LEN_MAX`]
/// is 26 parents deep and a walk holds at most one node per level plus one.
const WALK_DEPTH_MAX: usize = 64;
/// Placeholder chaining value for walks that do not verify (the sender's plan).
const CV_NONE: ChainingValue = [0; CV_LEN];

/// Number of groups in content of `size` bytes; empty content still has one (empty) group.
pub fn group_count(size: u64) -> u64 {
    size.div_ceil(GROUP_SIZE).max(1)
}

/// Bytes of the outboard for `size`: (group_count-1)*64.
pub fn outboard_len(size: u64) -> u64 {
    (group_count(size) - 1).saturating_mul(PAIR_LEN as u64)
}

/// Why building, planning or verifying a transfer failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeError {
    /// A piece does not hash to the value its parent (or the root) promised.
    #[error("hash mismatch in the piece covering offset {offset}")]
    HashMismatch {
        /// Content offset where the span of the failing node starts.
        offset: u64,
    },
    /// A piece has a different length than the plan requires.
    #[error("piece is {actual} bytes, expected {expected}")]
    BadPieceLen {
        /// Length the plan requires.
        expected: u64,
        /// Length received.
        actual: u64,
    },
    /// A piece arrived after the transfer was complete.
    #[error("piece received after the transfer was complete")]
    UnexpectedPiece,
    /// The requested range is reversed or runs past the end of the content.
    #[error("range {start}..{end} is not within content of {size} bytes")]
    BadRange {
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Content size.
        size: u64,
    },
    /// The content is larger than [`CONTENT_LEN_MAX`].
    #[error("content of {size} bytes is larger than the maximum {CONTENT_LEN_MAX}")]
    TooLarge {
        /// Claimed content size.
        size: u64,
    },
    /// An outboard's length does not match [`outboard_len`] of its size.
    #[error("outboard is {actual} bytes, expected {expected}")]
    BadOutboardLen {
        /// [`outboard_len`] of the content size.
        expected: u64,
        /// Length given.
        actual: u64,
    },
}

impl TreeError {
    /// Stable machine-readable code for logs and the wire.
    pub fn code(&self) -> &'static str {
        match self {
            TreeError::HashMismatch { .. } => "integrity.hash_mismatch",
            TreeError::BadPieceLen { .. } => "transfer.piece_len",
            TreeError::UnexpectedPiece => "transfer.unexpected_piece",
            TreeError::BadRange { .. } => "range.invalid",
            TreeError::TooLarge { .. } => "content.too_large",
            TreeError::BadOutboardLen { .. } => "outboard.bad_len",
        }
    }
}

/// Incremental: feed content in any split; memory O(groups*32 bytes) at most
/// (leaf CVs, turned into pre-order pairs at finalize), never the content itself.
///
/// It does not enforce [`CONTENT_LEN_MAX`]; [`Outboard::from_bytes`] and the
/// transfer functions do.
pub struct OutboardBuilder {
    /// Hasher of the group being filled; it stays open until more bytes arrive.
    group: Hasher,
    /// Bytes fed to `group`.
    group_len: u64,
    /// Chaining values of the groups already closed.
    leaf_cvs: Vec<ChainingValue>,
    /// Bytes fed in total.
    bytes_seen: u64,
}

impl OutboardBuilder {
    /// A builder that has seen no content.
    pub fn new() -> Self {
        Self {
            group: Hasher::new(),
            group_len: 0,
            leaf_cvs: Vec::new(),
            bytes_seen: 0,
        }
    }

    /// Feeds the next `data` of the content; hashes each group with as few
    /// `update` calls as the split allows, so whole groups use SIMD.
    pub fn update(&mut self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            if self.group_len == GROUP_SIZE {
                self.close_group();
            }
            let room = GROUP_SIZE - self.group_len;
            let take = usize::try_from(room).map_or(rest.len(), |room| room.min(rest.len()));
            let (head, tail) = rest.split_at(take);
            self.group.update(head);
            self.group_len += take as u64;
            self.bytes_seen += take as u64;
            rest = tail;
        }
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes_seen
    }

    /// The root hash (equal to `blake3::hash(content)`) and the outboard.
    pub fn finalize(mut self) -> (blake3::Hash, Outboard) {
        let size = self.bytes_seen;
        if self.leaf_cvs.is_empty() {
            let pairs = Vec::new();
            return (self.group.finalize(), Outboard { size, pairs });
        }
        self.leaf_cvs.push(self.group.finalize_non_root());
        let mut pairs = vec![0; (self.leaf_cvs.len() - 1).saturating_mul(PAIR_LEN)];
        let root = Node::root(size, CV_NONE);
        let (left, right) = write_pairs(&self.leaf_cvs, root, &mut pairs);
        let hash = hazmat::merge_subtrees_root(&left, &right, Mode::Hash);
        (hash, Outboard { size, pairs })
    }

    /// Closes the full current group and opens the next one.
    fn close_group(&mut self) {
        self.leaf_cvs.push(self.group.finalize_non_root());
        let offset = self.leaf_cvs.len() as u64 * GROUP_SIZE;
        self.group = Hasher::new();
        self.group.set_input_offset(offset);
        self.group_len = 0;
    }
}

impl Default for OutboardBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The parent pairs of a content's tree, in pre-order, with the content size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outboard {
    /// Content size in bytes.
    size: u64,
    /// `outboard_len(size)` bytes: pre-order pairs.
    pairs: Vec<u8>,
}

impl Outboard {
    /// Parses an outboard read from storage; its length must equal `outboard_len(size)`.
    pub fn from_bytes(size: u64, pairs: Vec<u8>) -> Result<Self, TreeError> {
        if size > CONTENT_LEN_MAX {
            return Err(TreeError::TooLarge { size });
        }
        let expected = outboard_len(size);
        let actual = pairs.len() as u64;
        if actual != expected {
            return Err(TreeError::BadOutboardLen { expected, actual });
        }
        Ok(Self { size, pairs })
    }

    /// Content size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The pre-order pairs, `outboard_len(size)` bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.pairs
    }

    /// The pre-order pairs, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.pairs
    }

    /// The index-th pre-order pair (64 bytes), or None past the end.
    pub fn pair(&self, index: u64) -> Option<&[u8]> {
        let start = usize::try_from(index).ok()?.checked_mul(PAIR_LEN)?;
        self.pairs.get(start..start.checked_add(PAIR_LEN)?)
    }
}

/// One piece of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The parent pair at pre-order position `index` in the outboard.
    Pair {
        /// Pre-order index of the pair ([`Outboard::pair`]).
        index: u64,
    },
    /// A whole group of content.
    Group {
        /// Group number, `offset / GROUP_SIZE`.
        index: u64,
        /// Content offset of the group's first byte.
        offset: u64,
        /// Bytes in the group (only the last group may be short).
        len: u64,
    },
}

impl Piece {
    /// Bytes the piece occupies on the wire: 64 for a pair, `len` for a group.
    pub fn wire_len(&self) -> u64 {
        match self {
            Piece::Pair { .. } => PAIR_LEN as u64,
            Piece::Group { len, .. } => *len,
        }
    }
}

/// Sender side: the pieces to send for `range`, in order. An empty range
/// yields no pieces, except that for `size == 0` the range `0..0` yields the
/// single empty group (so a receiver can check the root of an empty document).
pub fn plan(size: u64, range: Range<u64>) -> Result<Plan, TreeError> {
    let walk = Walk::new(size, range, CV_NONE)?;
    Ok(Plan { walk })
}

/// Iterator over the pieces of a transfer, with O(tree depth) state.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pre-order walk over the nodes that meet the range.
    walk: Walk,
}

impl Plan {
    /// Total bytes the pieces will occupy on the wire; O(tree depth) work.
    pub fn encoded_len(size: u64, range: Range<u64>) -> Result<u64, TreeError> {
        check_request(size, &range)?;
        Ok(encoded_len_below(Node::root(size, CV_NONE), &range))
    }
}

impl Iterator for Plan {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        self.walk.advance(CV_NONE, CV_NONE).map(|node| node.piece())
    }
}

impl FusedIterator for Plan {}

/// Receiver side: verifies pieces in plan order against the root, O(tree depth) memory.
#[derive(Debug, Clone)]
pub struct RangeDecoder {
    /// The same walk as the sender's plan, with the CV each node must hash to.
    walk: Walk,
    /// The first error; once set, every call fails with it.
    failed: Option<TreeError>,
}

/// Verified content: `bytes` are the content at `offset`, trimmed to the requested range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// Content offset of `bytes[0]`.
    pub offset: u64,
    /// Verified content bytes inside the requested range.
    pub bytes: &'a [u8],
}

impl RangeDecoder {
    /// A decoder for `range` of the content with hash `root` and `size` bytes.
    pub fn new(root: &blake3::Hash, size: u64, range: Range<u64>) -> Result<Self, TreeError> {
        let walk = Walk::new(size, range, *root.as_bytes())?;
        Ok(Self { walk, failed: None })
    }

    /// The piece expected next (same sequence as [`plan`]); None when complete or failed.
    pub fn next_piece(&self) -> Option<Piece> {
        match self.failed {
            Some(_) => None,
            None => self.walk.peek().map(Node::piece),
        }
    }

    /// Verifies `bytes` as the next piece (its length must equal
    /// `next_piece().wire_len()`). A group yields its part inside the range,
    /// already trimmed; a pair yields None. After any error the decoder stays
    /// failed and every later call returns that error.
    pub fn verify_next<'a>(&mut self, bytes: &'a [u8]) -> Result<Option<Verified<'a>>, TreeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.verify_piece(bytes);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// True when every piece has been verified and none failed.
    pub fn is_done(&self) -> bool {
        self.failed.is_none() && self.walk.peek().is_none()
    }

    /// Checks one piece against the node on top of the walk and advances.
    fn verify_piece<'a>(&mut self, bytes: &'a [u8]) -> Result<Option<Verified<'a>>, TreeError> {
        let node = *self.walk.peek().ok_or(TreeError::UnexpectedPiece)?;
        let expected = node.piece().wire_len();
        let actual = bytes.len() as u64;
        if actual != expected {
            return Err(TreeError::BadPieceLen { expected, actual });
        }
        let mismatch = TreeError::HashMismatch {
            offset: node.offset,
        };
        if node.is_parent() {
            let (left, right) =
                split_pair(bytes).ok_or(TreeError::BadPieceLen { expected, actual })?;
            if !self.pair_matches(&node, &left, &right) {
                return Err(mismatch);
            }
            self.walk.advance(left, right);
            return Ok(None);
        }
        if !self.group_matches(&node, bytes) {
            return Err(mismatch);
        }
        self.walk.advance(CV_NONE, CV_NONE);
        trim(&self.walk.range, &node, bytes).map(Some)
    }

    /// Whether the pair hashes to the CV `node` must have.
    fn pair_matches(&self, node: &Node, left: &ChainingValue, right: &ChainingValue) -> bool {
        if self.walk.is_root(node) {
            hazmat::merge_subtrees_root(left, right, Mode::Hash) == node.cv
        } else {
            hazmat::merge_subtrees_non_root(left, right, Mode::Hash) == node.cv
        }
    }

    /// Whether the group's bytes hash to the CV `node` must have.
    fn group_matches(&self, node: &Node, bytes: &[u8]) -> bool {
        if self.walk.is_root(node) {
            blake3::hash(bytes) == node.cv
        } else {
            leaf_cv(node.offset, bytes) == node.cv
        }
    }
}

/// A node of the tree: a parent if it spans more than one group, else a leaf.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Content offset of the span.
    offset: u64,
    /// Bytes in the span.
    len: u64,
    /// Pre-order index of the pair, meaningful for parents only.
    index: u64,
    /// CV the node must hash to (the root hash for the root).
    cv: ChainingValue,
}

impl Node {
    /// The root node of content of `size` bytes.
    fn root(size: u64, cv: ChainingValue) -> Self {
        Self {
            offset: 0,
            len: size,
            index: 0,
            cv,
        }
    }

    fn is_parent(&self) -> bool {
        self.len > GROUP_SIZE
    }

    fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// Whether the span shares at least one byte with `range`.
    fn meets(&self, range: &Range<u64>) -> bool {
        range.start < range.end && range.start < self.end() && self.offset < range.end
    }

    fn covered_by(&self, range: &Range<u64>) -> bool {
        range.start <= self.offset && self.end() <= range.end
    }

    fn piece(&self) -> Piece {
        if self.is_parent() {
            Piece::Pair { index: self.index }
        } else {
            let (index, offset, len) = (self.offset / GROUP_SIZE, self.offset, self.len);
            Piece::Group { index, offset, len }
        }
    }

    /// The two children of a parent, split exactly as BLAKE3 splits.
    fn children(&self, left_cv: ChainingValue, right_cv: ChainingValue) -> (Node, Node) {
        let left_len = hazmat::left_subtree_len(self.len);
        let left = Node {
            offset: self.offset,
            len: left_len,
            index: self.index + 1,
            cv: left_cv,
        };
        // The left subtree is whole groups and holds left_len/GROUP_SIZE - 1 pairs.
        let right = Node {
            offset: self.offset + left_len,
            len: self.len - left_len,
            index: self.index + left_len / GROUP_SIZE,
            cv: right_cv,
        };
        (left, right)
    }
}

/// Pre-order walk over the nodes whose span meets a range; shared by sender and receiver.
#[derive(Debug, Clone)]
struct Walk {
    /// Content size.
    size: u64,
    /// Requested range, already checked against `size`.
    range: Range<u64>,
    /// Nodes still to visit, next on top; at most one per tree level plus one.
    stack: Vec<Node>,
}

impl Walk {
    fn new(size: u64, range: Range<u64>, root_cv: ChainingValue) -> Result<Self, TreeError> {
        check_request(size, &range)?;
        let mut stack = Vec::with_capacity(WALK_DEPTH_MAX);
        let root = Node::root(size, root_cv);
        if size == 0 || root.meets(&range) {
            stack.push(root);
        }
        Ok(Self { size, range, stack })
    }

    fn peek(&self) -> Option<&Node> {
        self.stack.last()
    }

    fn is_root(&self, node: &Node) -> bool {
        node.offset == 0 && node.len == self.size
    }

    /// Pops the next node; for a parent, queues the children that meet the
    /// range, with the CVs its pair gave them.
    fn advance(&mut self, left_cv: ChainingValue, right_cv: ChainingValue) -> Option<Node> {
        let node = self.stack.pop()?;
        if node.is_parent() {
            let (left, right) = node.children(left_cv, right_cv);
            for child in [right, left] {
                if child.meets(&self.range) {
                    self.stack.push(child);
                }
            }
        }
        Some(node)
    }
}

/// Rejects sizes over the maximum and ranges that are reversed or run past the end.
fn check_request(size: u64, range: &Range<u64>) -> Result<(), TreeError> {
    if size > CONTENT_LEN_MAX {
        return Err(TreeError::TooLarge { size });
    }
    if range.start > range.end || range.end > size {
        let (start, end) = (range.start, range.end);
        return Err(TreeError::BadRange { start, end, size });
    }
    Ok(())
}

/// Wire bytes of the pieces at and below `node`; descends only into partly covered parents.
fn encoded_len_below(node: Node, range: &Range<u64>) -> u64 {
    if !node.meets(range) {
        return 0;
    }
    if node.covered_by(range) {
        return outboard_len(node.len) + node.len;
    }
    if !node.is_parent() {
        return node.len;
    }
    let (left, right) = node.children(CV_NONE, CV_NONE);
    PAIR_LEN as u64 + encoded_len_below(left, range) + encoded_len_below(right, range)
}

/// Fills in the pairs of the parent `node` and every parent below it;
/// returns the node's (left, right) chaining values.
fn write_pairs(
    leaf_cvs: &[ChainingValue],
    node: Node,
    pairs: &mut [u8],
) -> (ChainingValue, ChainingValue) {
    let (left, right) = node.children(CV_NONE, CV_NONE);
    let left_cv = subtree_cv(leaf_cvs, left, pairs);
    let right_cv = subtree_cv(leaf_cvs, right, pairs);
    let start = usize::try_from(node.index).map_or(usize::MAX, |i| i.saturating_mul(PAIR_LEN));
    if let Some(slot) = pairs.get_mut(start..start.saturating_add(PAIR_LEN)) {
        let (slot_left, slot_right) = slot.split_at_mut(CV_LEN);
        slot_left.copy_from_slice(&left_cv);
        slot_right.copy_from_slice(&right_cv);
    }
    (left_cv, right_cv)
}

/// Non-root chaining value of `node`, writing the pairs below it.
fn subtree_cv(leaf_cvs: &[ChainingValue], node: Node, pairs: &mut [u8]) -> ChainingValue {
    if !node.is_parent() {
        let group = usize::try_from(node.offset / GROUP_SIZE).unwrap_or(usize::MAX);
        return leaf_cvs.get(group).copied().unwrap_or(CV_NONE);
    }
    let (left, right) = write_pairs(leaf_cvs, node, pairs);
    hazmat::merge_subtrees_non_root(&left, &right, Mode::Hash)
}

/// Non-root chaining value of a group at `offset` (a multiple of GROUP_SIZE; bytes non-empty).
fn leaf_cv(offset: u64, bytes: &[u8]) -> ChainingValue {
    let mut hasher = Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(bytes);
    hasher.finalize_non_root()
}

/// Splits a 64-byte pair into its left and right chaining values.
fn split_pair(bytes: &[u8]) -> Option<(ChainingValue, ChainingValue)> {
    let (left, rest) = bytes.split_first_chunk::<CV_LEN>()?;
    let (right, _) = rest.split_first_chunk::<CV_LEN>()?;
    Some((*left, *right))
}

/// The part of a verified group that lies inside `range`.
fn trim<'a>(range: &Range<u64>, node: &Node, bytes: &'a [u8]) -> Result<Verified<'a>, TreeError> {
    let start = range.start.max(node.offset);
    let end = range.end.min(node.end());
    let lo = usize::try_from(start.saturating_sub(node.offset)).unwrap_or(usize::MAX);
    let hi = usize::try_from(end.saturating_sub(node.offset)).unwrap_or(usize::MAX);
    let expected = node.len;
    let actual = bytes.len() as u64;
    let bytes = bytes
        .get(lo..hi)
        .ok_or(TreeError::BadPieceLen { expected, actual })?;
    Ok(Verified {
        offset: start,
        bytes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;

    const SIZES: &[u64] = &[
        0,
        1,
        1023,
        1024,
        1025,
        16383,
        16384,
        16385,
        32768,
        32769,
        5 * 16384 + 7,
        (1 << 20) + 3,
    ];

    /// Deterministic pseudo-random content (xorshift), so failures reproduce.
    fn content(size: u64, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn build(content: &[u8], split: usize) -> (blake3::Hash, Outboard) {
        let mut builder = OutboardBuilder::new();
        for part in content.chunks(split.max(1)) {
            builder.update(part);
        }
        assert_eq!(builder.bytes_seen(), content.len() as u64);
        builder.finalize()
    }

    /// The bytes a sender puts on the wire for `piece`.
    fn piece_bytes<'a>(content: &'a [u8], outboard: &'a Outboard, piece: Piece) -> &'a [u8] {
        match piece {
            Piece::Pair { index } => outboard.pair(index).unwrap(),
            Piece::Group { offset, len, .. } => &content[offset as usize..(offset + len) as usize],
        }
    }

    /// Runs a whole transfer; returns the concatenated verified bytes.
    fn transfer(
        content: &[u8],
        root: &blake3::Hash,
        outboard: &Outboard,
        range: Range<u64>,
    ) -> Vec<u8> {
        let size = content.len() as u64;
        let mut decoder = RangeDecoder::new(root, size, range.clone()).unwrap();
        let mut out = Vec::new();
        let mut wire_len = 0;
        for piece in plan(size, range.clone()).unwrap() {
            assert_eq!(decoder.next_piece(), Some(piece));
            wire_len += piece.wire_len();
            if let Some(verified) = decoder
                .verify_next(piece_bytes(content, outboard, piece))
                .unwrap()
            {
                assert_eq!(verified.offset, range.start + out.len() as u64);
                out.extend_from_slice(verified.bytes);
            }
        }
        assert!(decoder.is_done());
        assert_eq!(decoder.next_piece(), None);
        assert_eq!(Plan::encoded_len(size, range).unwrap(), wire_len);
        out
    }

    #[test]
    fn root_is_blake3_hash_for_edge_sizes() {
        for &size in SIZES {
            let data = content(size, size);
            for split in [1000, 16384, usize::MAX] {
                let (root, outboard) = build(&data, split);
                assert_eq!(root, blake3::hash(&data), "size {size} split {split}");
                assert_eq!(outboard.as_bytes().len() as u64, outboard_len(size));
                assert_eq!(outboard.size(), size);
            }
        }
    }

    #[test]
    fn whole_content_round_trips_for_edge_sizes() {
        for &size in SIZES {
            let data = content(size, size + 1);
            let (root, outboard) = build(&data, usize::MAX);
            assert_eq!(transfer(&data, &root, &outboard, 0..size), data);
        }
    }

    #[test]
    fn counts_and_lengths() {
        assert_eq!(group_count(0), 1);
        assert_eq!(group_count(1), 1);
        assert_eq!(group_count(GROUP_SIZE), 1);
        assert_eq!(group_count(GROUP_SIZE + 1), 2);
        assert_eq!(outboard_len(0), 0);
        assert_eq!(outboard_len(GROUP_SIZE * 5 + 7), 5 * 64);
        assert_eq!(outboard_len(u64::MAX), (group_count(u64::MAX) - 1) * 64);
        assert_eq!(Piece::Pair { index: 3 }.wire_len(), 64);
    }

    #[test]
    fn empty_content_sends_one_empty_group() {
        let pieces: Vec<Piece> = plan(0, 0..0).unwrap().collect();
        assert_eq!(
            pieces,
            [Piece::Group {
                index: 0,
                offset: 0,
                len: 0
            }]
        );
        let mut decoder = RangeDecoder::new(&blake3::hash(b""), 0, 0..0).unwrap();
        let verified = decoder.verify_next(&[]).unwrap().unwrap();
        assert_eq!(
            verified,
            Verified {
                offset: 0,
                bytes: &[]
            }
        );
        assert!(decoder.is_done());
        let mut wrong = RangeDecoder::new(&blake3::hash(b"x"), 0, 0..0).unwrap();
        assert_eq!(
            wrong.verify_next(&[]),
            Err(TreeError::HashMismatch { offset: 0 })
        );
    }

    #[test]
    fn empty_range_of_nonempty_content_sends_nothing() {
        assert_eq!(plan(100_000, 500..500).unwrap().count(), 0);
        assert_eq!(Plan::encoded_len(100_000, 500..500).unwrap(), 0);
        let decoder = RangeDecoder::new(&blake3::hash(b""), 100_000, 500..500).unwrap();
        assert!(decoder.is_done());
    }

    #[test]
    fn bad_requests_are_errors() {
        let max = CONTENT_LEN_MAX;
        let bad_range = TreeError::BadRange {
            start: 5,
            end: 11,
            size: 10,
        };
        assert_eq!(plan(10, 5..11).unwrap_err(), bad_range);
        assert_eq!(
            plan(10, Range { start: 6, end: 5 }).unwrap_err().code(),
            "range.invalid"
        );
        assert_eq!(
            plan(max + 1, 0..1).unwrap_err(),
            TreeError::TooLarge { size: max + 1 }
        );
        assert_eq!(
            plan(u64::MAX, 0..u64::MAX).unwrap_err().code(),
            "content.too_large"
        );
        assert!(Plan::encoded_len(10, 0..11).is_err());
        assert!(RangeDecoder::new(&blake3::hash(b""), 10, 11..12).is_err());
        assert!(RangeDecoder::new(&blake3::hash(b""), max + 1, 0..0).is_err());
    }

    #[test]
    fn outboard_from_bytes_checks_len() {
        let (_, outboard) = build(&content(40_000, 1), usize::MAX);
        let bytes = outboard.clone().into_bytes();
        assert_eq!(
            Outboard::from_bytes(40_000, bytes.clone()).unwrap(),
            outboard
        );
        let err = Outboard::from_bytes(40_000, bytes[1..].to_vec()).unwrap_err();
        assert_eq!(
            err,
            TreeError::BadOutboardLen {
                expected: 128,
                actual: 127
            }
        );
        assert_eq!(err.code(), "outboard.bad_len");
        assert!(Outboard::from_bytes(CONTENT_LEN_MAX + 1, Vec::new()).is_err());
        assert_eq!(outboard.pair(1).map(<[u8]>::len), Some(64));
        assert_eq!(outboard.pair(2), None);
        assert_eq!(outboard.pair(u64::MAX), None);
    }

    #[test]
    fn wrong_piece_len_fails_and_decoder_stays_failed() {
        let data = content(50_000, 7);
        let (root, outboard) = build(&data, usize::MAX);
        let mut decoder = RangeDecoder::new(&root, 50_000, 0..50_000).unwrap();
        let err = decoder.verify_next(&outboard.as_bytes()[..63]).unwrap_err();
        assert_eq!(
            err,
            TreeError::BadPieceLen {
                expected: 64,
                actual: 63
            }
        );
        assert_eq!(err.code(), "transfer.piece_len");
        assert_eq!(decoder.verify_next(outboard.pair(0).unwrap()), Err(err));
        assert_eq!(decoder.next_piece(), None);
        assert!(!decoder.is_done());
    }

    #[test]
    fn piece_after_completion_is_unexpected() {
        let data = content(100, 7);
        let mut decoder = RangeDecoder::new(&blake3::hash(&data), 100, 0..100).unwrap();
        assert!(decoder.verify_next(&data).unwrap().is_some());
        assert!(decoder.is_done());
        assert_eq!(decoder.verify_next(&data), Err(TreeError::UnexpectedPiece));
        assert_eq!(
            TreeError::UnexpectedPiece.code(),
            "transfer.unexpected_piece"
        );
    }

    #[test]
    fn huge_content_plans_touch_only_boundary_paths() {
        let size = CONTENT_LEN_MAX;
        let whole = Plan::encoded_len(size, 0..size).unwrap();
        assert_eq!(whole, outboard_len(size) + size);
        let range = size / 3..size / 3 + 1;
        let pieces: Vec<Piece> = plan(size, range.clone()).unwrap().collect();
        assert_eq!(pieces.len() as u64, 26 + 1); // one pair per level, then one group
        let wire: u64 = pieces.iter().map(Piece::wire_len).sum();
        assert_eq!(Plan::encoded_len(size, range).unwrap(), wire);
        let last = plan(size, size - 1..size).unwrap().last().unwrap();
        let groups = group_count(size);
        let offset = size - GROUP_SIZE;
        assert_eq!(
            last,
            Piece::Group {
                index: groups - 1,
                offset,
                len: GROUP_SIZE
            }
        );
    }

    /// Range strategy: a size and two indices turned into start <= end <= size.
    fn range_of(size: u64, a: Index, b: Index) -> Range<u64> {
        let (x, y) = (
            a.index(size as usize + 1) as u64,
            b.index(size as usize + 1) as u64,
        );
        x.min(y)..x.max(y)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn root_is_blake3_hash_for_any_split(
            size in 0u64..300_000,
            seed: u64,
            splits in proptest::collection::vec(0usize..40_000, 0..20),
        ) {
            let data = content(size, seed);
            let mut builder = OutboardBuilder::default();
            let mut rest = &data[..];
            for split in splits {
                let (head, tail) = rest.split_at(split.min(rest.len()));
                builder.update(head);
                rest = tail;
            }
            builder.update(rest);
            let (root, outboard) = builder.finalize();
            prop_assert_eq!(root, blake3::hash(&data));
            prop_assert_eq!(outboard, build(&data, usize::MAX).1);
        }

        #[test]
        fn any_range_round_trips(size in 0u64..300_000, seed: u64, a: Index, b: Index) {
            let data = content(size, seed);
            let (root, outboard) = build(&data, usize::MAX);
            let range = range_of(size, a, b);
            let out = transfer(&data, &root, &outboard, range.clone());
            prop_assert_eq!(&out[..], &data[range.start as usize..range.end as usize]);
        }

        #[test]
        fn any_flipped_byte_is_caught(
            size in 1u64..200_000,
            seed: u64,
            a: Index,
            b: Index,
            which: Index,
            at: Index,
            bit in 0u8..8,
        ) {
            let data = content(size, seed);
            let (root, outboard) = build(&data, usize::MAX);
            let range = range_of(size, a, b);
            let pieces: Vec<Piece> = plan(size, range.clone()).unwrap().collect();
            prop_assume!(!pieces.is_empty());
            let target = which.index(pieces.len());
            let mut decoder = RangeDecoder::new(&root, size, range).unwrap();
            for (i, piece) in pieces.into_iter().enumerate() {
                let mut bytes = piece_bytes(&data, &outboard, piece).to_vec();
                if i == target {
                    let flip = at.index(bytes.len());
                    bytes[flip] ^= 1 << bit;
                    prop_assert!(decoder.verify_next(&bytes).is_err());
                    prop_assert!(decoder.verify_next(&bytes).is_err());
                    return Ok(());
                }
                if let Some(v) = decoder.verify_next(&bytes).unwrap() {
                    let start = v.offset as usize;
                    prop_assert_eq!(v.bytes, &data[start..start + v.bytes.len()]);
                }
            }
        }

        #[test]
        fn wrong_root_fails_first_piece(size in 0u64..200_000, seed: u64, a: Index, b: Index) {
            let data = content(size, seed);
            let (_, outboard) = build(&data, usize::MAX);
            let range = range_of(size, a, b);
            let wrong = blake3::hash(b"not the content");
            let mut decoder = RangeDecoder::new(&wrong, size, range.clone()).unwrap();
            if let Some(piece) = plan(size, range).unwrap().next() {
                let err = decoder.verify_next(piece_bytes(&data, &outboard, piece)).unwrap_err();
                prop_assert_eq!(err.code(), "integrity.hash_mismatch");
            }
        }

        #[test]
        fn wrong_size_fails_when_range_reaches_last_group(
            size in 0u64..200_000,
            wrong_size in 0u64..200_000,
            seed: u64,
            a: Index,
        ) {
            prop_assume!(size != wrong_size);
            let data = content(size, seed);
            let (root, outboard) = build(&data, usize::MAX);
            let start = a.index(wrong_size.max(1) as usize) as u64;
            let mut decoder = RangeDecoder::new(&root, wrong_size, start..wrong_size).unwrap();
            let mut failed = false;
            while let Some(piece) = decoder.next_piece() {
                // Serve what the sender has, padded with zeros where the decoder wants more.
                let mut bytes = match piece {
                    Piece::Pair { index } => outboard.pair(index).unwrap_or(&[]).to_vec(),
                    Piece::Group { offset, .. } => {
                        data.get(offset as usize..).unwrap_or(&[]).to_vec()
                    }
                };
                bytes.resize(piece.wire_len() as usize, 0);
                failed |= decoder.verify_next(&bytes).is_err();
            }
            prop_assert!(failed && !decoder.is_done());
        }
    }
}
