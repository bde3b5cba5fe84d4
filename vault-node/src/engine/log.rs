//! The transparency log's storage: entries, details and RFC 6962 tree
//! nodes in the metadata store's column families (through
//! [`MetaStore`]), appended by the state
//! machine (so every node that applies the same commands computes the same
//! tree), and read back for checkpoints and proofs.
//!
//! Layout: `log_entries` (index u64 BE -> canonical entry), `log_details`
//! (index -> detail JSON), `log_nodes` (level u8 | index u64 BE -> the hash
//! of the perfect subtree of 2^level leaves starting at index * 2^level),
//! `log_by_tag` (resident tag (32 bytes) | index -> empty), `resident_salts`
//! (resident -> 32-byte salt), `meta/log_size`, `meta/tag_head/<tag>`
//! (head index u64 BE | count u64 BE: the tag's newest entry and how many
//! it has, which gives each new entry its `prev` link and is the resident
//! index's leaf).
//!
//! **Invariant:** a leaf and every perfect subtree it completes are written
//! in the same synced batch as the command that caused them; a fetch's entry
//! is durable before the first byte of the document leaves the node.

use std::collections::HashMap;

use pki::{LogDetail, LogEntry, ResidentId};
use vault_client::merkle::{self, Hash};
use vault_client::ErrorCode;

use crate::engine::meta::{Cf, MetaStore, StoreError, Write};
use crate::Refusal;

const LOG_SIZE_KEY: &[u8] = b"log_size";
/// Most entries one page of a log read returns.
pub const LOG_PAGE_MAX: u64 = 1000;

/// One entry to append, with its detail.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// The public entry.
    pub entry: LogEntry,
    /// The detail behind its commitment.
    pub detail: LogDetail,
}

/// The number of entries in the log.
pub fn size(state: &dyn MetaStore) -> Result<u64, StoreError> {
    match state.get(Cf::Meta, LOG_SIZE_KEY)? {
        Some(bytes) => bytes
            .as_slice()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Io("the log size record is damaged".into())),
        None => Ok(0),
    }
}

fn node_key(level: u8, index: u64) -> Vec<u8> {
    let mut key = vec![level];
    key.extend_from_slice(&index.to_be_bytes());
    key
}

const TAG_HEAD_PREFIX: &[u8] = b"tag_head/";

fn tag_head_key(tag: &[u8; 32]) -> Vec<u8> {
    let mut key = TAG_HEAD_PREFIX.to_vec();
    key.extend_from_slice(tag);
    key
}

/// A tag's newest entry and its number of entries (`None` for a tag with
/// none). From the `tag_head` record; for a tag whose entries were all
/// written before the record existed, from `log_by_tag` (and the record is
/// written with the tag's next entry). Replicated state only, so every node
/// computes the same links.
pub fn tag_head(state: &dyn MetaStore, tag: &[u8; 32]) -> Result<Option<(u64, u64)>, StoreError> {
    if let Some(bytes) = state.get(Cf::Meta, &tag_head_key(tag))? {
        let damaged = || StoreError::Io("a tag head record is damaged".into());
        let head: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(damaged)?;
        let count: [u8; 8] = bytes
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(damaged)?;
        return Ok(Some((u64::from_be_bytes(head), u64::from_be_bytes(count))));
    }
    let indexes = indexes_of(state, tag)?;
    Ok(indexes.last().map(|head| (*head, indexes.len() as u64)))
}

/// Appends records: entry (a tagged one linked to the tag's previous entry,
/// version 3), detail, leaf, every perfect subtree completed, the tag index
/// and head, and the new size.
pub fn append_all(
    state: &dyn MetaStore,
    records: Vec<LogRecord>,
    writes: &mut Vec<Write>,
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut next = size(state)?;
    let mut fresh: HashMap<(u8, u64), Hash> = HashMap::new();
    let mut heads: HashMap<[u8; 32], Option<(u64, u64)>> = HashMap::new();
    for mut record in records {
        let tag = record.entry.resident_tag;
        if tag != [0; 32] {
            let head = match heads.get(&tag) {
                Some(head) => *head,
                None => tag_head(state, &tag)?,
            };
            record.entry.prev = Some(head.map_or(0, |(index, _)| index + 1));
            let count = head.map_or(0, |(_, count)| count) + 1;
            heads.insert(tag, Some((next, count)));
            let mut value = next.to_be_bytes().to_vec();
            value.extend_from_slice(&count.to_be_bytes());
            writes.push(put(Cf::Meta, tag_head_key(&tag), value));
        }
        let bytes = record.entry.canonical_bytes();
        let leaf = merkle::leaf_hash(&bytes);
        let index = next;
        writes.push(put(Cf::LogEntries, index.to_be_bytes().to_vec(), bytes));
        let detail =
            serde_json::to_vec(&record.detail).map_err(|e| StoreError::Io(e.to_string()))?;
        writes.push(put(Cf::LogDetails, index.to_be_bytes().to_vec(), detail));
        if record.entry.resident_tag != [0; 32] {
            let mut key = record.entry.resident_tag.to_vec();
            key.extend_from_slice(&index.to_be_bytes());
            writes.push(put(Cf::LogByTag, key, Vec::new()));
        }
        let (mut level, mut i, mut hash) = (0u8, index, leaf);
        writes.push(put(Cf::LogNodes, node_key(0, i), hash.to_vec()));
        fresh.insert((0, i), hash);
        while i & 1 == 1 {
            let left = match fresh.get(&(level, i - 1)) {
                Some(h) => *h,
                None => stored_node(state, level, i - 1)?,
            };
            hash = merkle::node_hash(&left, &hash);
            level += 1;
            i >>= 1;
            writes.push(put(Cf::LogNodes, node_key(level, i), hash.to_vec()));
            fresh.insert((level, i), hash);
        }
        next += 1;
    }
    writes.push(put(
        Cf::Meta,
        LOG_SIZE_KEY.to_vec(),
        next.to_be_bytes().to_vec(),
    ));
    Ok(())
}

fn stored_node(state: &dyn MetaStore, level: u8, index: u64) -> Result<Hash, StoreError> {
    state
        .get(Cf::LogNodes, &node_key(level, index))?
        .and_then(|v| v.as_slice().try_into().ok())
        .ok_or_else(|| StoreError::Io(format!("log tree node {level}/{index} is missing")))
}

fn put(cf: Cf, key: Vec<u8>, value: Vec<u8>) -> Write {
    Write::Put { cf, key, value }
}

/// The hash of leaves `[start, start + len)` from stored perfect subtrees.
pub fn subtree(state: &dyn MetaStore, start: u64, len: u64) -> Result<Hash, Refusal> {
    if len == 0 {
        return Ok(merkle::empty_root());
    }
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let level = len.trailing_zeros() as u8;
        return stored_node(state, level, start / len).map_err(corrupt_store);
    }
    let k = 1u64 << (63 - (len - 1).leading_zeros());
    let left = subtree(state, start, k)?;
    let right = subtree(state, start + k, len - k)?;
    Ok(merkle::node_hash(&left, &right))
}

fn corrupt_store(e: StoreError) -> Refusal {
    Refusal::new(
        ErrorCode::LogCorrupt,
        format!("the log's tree is damaged: {e}"),
    )
}

/// What a verification established: the first `size()` entries parse,
/// hash to their stored leaves, and their recomputed root equals the
/// stored tree's, `root()`. Keeps the tree's frontier (the perfect subtrees
/// of the verified leaves, O(log n) hashes), so the next verification
/// hashes only the entries appended since ([`verify_from`]).
#[derive(Debug, Clone, Default)]
pub struct Verified {
    frontier: merkle::RootBuilder,
}

impl Verified {
    /// Entries verified.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Their root hash.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// Recomputes the tree of the first `size` entries from the entries
/// themselves and checks it against the stored tree; names the first entry
/// that does not match. Reads and hashes every entry: O(size).
pub fn verify(state: &dyn MetaStore, size: u64) -> Result<Hash, Refusal> {
    Ok(verify_from(state, &Verified::default(), size)?.root())
}

/// Extends `from` to the first `size` entries: checks only entries
/// `from.size()..size` (each parses and hashes to its stored leaf), then
/// that the root over the verified frontier and the new leaves equals the
/// stored tree's root of `size` (read from O(log size) stored nodes). Time
/// grows with the entries added, not with the log.
///
/// What it does not see: an entry below `from.size()` changed on disk
/// after it was verified (its stored leaf and the tree's nodes are still
/// the ones the root is composed of). [`verify`] from nothing sees that,
/// and so does an auditor comparing leaves (`entry.changed`).
pub fn verify_from(state: &dyn MetaStore, from: &Verified, size: u64) -> Result<Verified, Refusal> {
    if size < from.size() {
        return Err(Refusal::new(
            ErrorCode::LogCorrupt,
            format!(
                "the log has {size} entries, fewer than the {} verified before",
                from.size()
            ),
        ));
    }
    let mut builder = from.frontier.clone();
    let mut expected = from.size();
    while expected < size {
        let want = (size - expected).min(VERIFY_PAGE) as usize;
        let page = state
            .scan_from(Cf::LogEntries, &expected.to_be_bytes(), want)
            .map_err(|e| Refusal::new(ErrorCode::Storage, e.to_string()))?;
        if page.is_empty() {
            break;
        }
        for (key, value) in page {
            verify_one(state, &key, &value, expected, &mut builder)?;
            expected += 1;
        }
    }
    if expected != size {
        return Err(corrupt_at(expected, "is missing"));
    }
    if builder.root() != subtree(state, 0, size)? {
        return Err(Refusal::new(
            ErrorCode::LogCorrupt,
            "the log's stored tree does not match its entries".to_string(),
        ));
    }
    Ok(Verified { frontier: builder })
}

/// Entries read per page while verifying.
const VERIFY_PAGE: u64 = 10_000;

fn verify_one(
    state: &dyn MetaStore,
    key: &[u8],
    value: &[u8],
    expected: u64,
    builder: &mut merkle::RootBuilder,
) -> Result<(), Refusal> {
    {
        let index = u64::from_be_bytes(key.try_into().unwrap_or([0xff; 8]));
        if index != expected {
            return Err(corrupt_at(expected, "is missing or out of order"));
        }
        if pki::LogEntry::parse(value).is_err() {
            return Err(corrupt_at(index, "does not parse"));
        }
        let leaf = merkle::leaf_hash(value);
        let stored = stored_node(state, 0, index).map_err(corrupt_store)?;
        if leaf != stored {
            return Err(corrupt_at(index, "does not match the tree"));
        }
        builder.push(leaf);
    }
    Ok(())
}

fn corrupt_at(index: u64, what: &str) -> Refusal {
    Refusal::new(
        ErrorCode::LogCorrupt,
        format!("log entry {index} {what}; the node will not sign a checkpoint over a damaged log"),
    )
}

/// Entries `[start, start + count)` (bounded by [`LOG_PAGE_MAX`] and the size).
pub fn entries(state: &dyn MetaStore, start: u64, count: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    let count = count.min(LOG_PAGE_MAX);
    let mut out = Vec::new();
    for index in start..start.saturating_add(count) {
        match state.get(Cf::LogEntries, &index.to_be_bytes())? {
            Some(bytes) => out.push(bytes),
            None => break,
        }
    }
    Ok(out)
}

/// One entry and its detail.
pub fn entry_with_detail(
    state: &dyn MetaStore,
    index: u64,
) -> Result<Option<(Vec<u8>, LogDetail)>, StoreError> {
    let Some(entry) = state.get(Cf::LogEntries, &index.to_be_bytes())? else {
        return Ok(None);
    };
    let detail = state
        .get(Cf::LogDetails, &index.to_be_bytes())?
        .and_then(|d| serde_json::from_slice(&d).ok())
        .ok_or_else(|| StoreError::Io(format!("log detail {index} is missing")))?;
    Ok(Some((entry, detail)))
}

/// Most tagged entries scanned for one resident.
pub const TAG_SCAN_MAX: usize = 1_000_000;

/// Indexes of the entries tagged `tag`, oldest first (at most [`TAG_SCAN_MAX`]).
pub fn indexes_of(state: &dyn MetaStore, tag: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
    Ok(state
        .scan_prefix(Cf::LogByTag, tag, TAG_SCAN_MAX)?
        .into_iter()
        .filter_map(|(key, _)| {
            key.get(32..40)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        })
        .collect())
}

/// A resident's salt, if one was chosen.
pub fn salt(state: &dyn MetaStore, resident: &ResidentId) -> Result<Option<[u8; 32]>, StoreError> {
    Ok(state
        .get(Cf::ResidentSalts, resident.as_str().as_bytes())?
        .and_then(|v| v.as_slice().try_into().ok()))
}

/// Salts chosen while applying one command (so two records for a new
/// resident in the same command use the same salt).
#[derive(Default)]
pub struct Salts {
    chosen: HashMap<ResidentId, [u8; 32]>,
}

impl Salts {
    /// The resident's tag: with the stored salt, or the proposer's fresh
    /// one (written once).
    pub fn tag(
        &mut self,
        state: &dyn MetaStore,
        resident: &ResidentId,
        fresh: [u8; 32],
        writes: &mut Vec<Write>,
    ) -> Result<[u8; 32], StoreError> {
        if let Some(salt) = self.chosen.get(resident) {
            return Ok(pki::resident_tag(salt, resident));
        }
        let salt = match salt(state, resident)? {
            Some(salt) => salt,
            None => {
                writes.push(put(
                    Cf::ResidentSalts,
                    resident.as_str().as_bytes().to_vec(),
                    fresh.to_vec(),
                ));
                fresh
            }
        };
        self.chosen.insert(resident.clone(), salt);
        Ok(pki::resident_tag(&salt, resident))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::store::MemStore;
    use pki::{LogEvent, Role};

    fn record(i: u8) -> LogRecord {
        LogRecord {
            entry: LogEntry {
                resident_tag: [i; 32],
                code: "auth.forbidden".into(),
                commitment: [i; 32],
                ..LogEntry::new(
                    LogEvent::Refusal,
                    i64::from(i),
                    Role::Department,
                    "tax-office",
                )
            },
            detail: LogDetail {
                resident: None,
                kind: None,
                purpose: None,
                nonce: [i; 32],
                case_ref: None,
            },
        }
    }

    /// A store holding `n` entries appended one command at a time.
    fn log_of(n: u8) -> MemStore {
        let store = MemStore::new();
        for i in 0..n {
            let mut writes = Vec::new();
            append_all(&store, vec![record(i)], &mut writes).unwrap();
            store.write(&writes).unwrap();
        }
        store
    }

    #[test]
    fn the_stored_tree_matches_an_independent_root() {
        for n in [1u8, 2, 3, 5, 8, 13] {
            let store = log_of(n);
            let mut builder = merkle::RootBuilder::new();
            for i in 0..n {
                // Each entry its tag's first (record i has tag [i; 32], 0 none).
                let mut entry = record(i).entry;
                entry.prev = (i != 0).then_some(0);
                builder.push(merkle::leaf_hash(&entry.canonical_bytes()));
            }
            assert_eq!(verify(&store, u64::from(n)).unwrap(), builder.root());
            assert_eq!(subtree(&store, 0, u64::from(n)).unwrap(), builder.root());
        }
    }

    /// Appends `n` more entries (numbered from `from`) to `store`.
    fn append(store: &MemStore, from: u8, n: u8) {
        for i in from..from + n {
            let mut writes = Vec::new();
            append_all(store, vec![record(i)], &mut writes).unwrap();
            store.write(&writes).unwrap();
        }
    }

    fn flip_entry(store: &MemStore, index: u64) {
        let key = index.to_be_bytes().to_vec();
        let mut bytes = store.get(Cf::LogEntries, &key).unwrap().unwrap();
        bytes[40] ^= 1;
        store
            .write(&[Write::Put {
                cf: Cf::LogEntries,
                key,
                value: bytes,
            }])
            .unwrap();
    }

    #[test]
    fn incremental_verification_reaches_the_full_root_step_by_step() {
        let store = MemStore::new();
        let mut verified = Verified::default();
        let mut total = 0u8;
        for step in [1u8, 2, 5, 0, 8, 13] {
            append(&store, total, step);
            total += step;
            verified = verify_from(&store, &verified, u64::from(total)).unwrap();
            assert_eq!(verified.size(), u64::from(total));
            assert_eq!(verified.root(), verify(&store, u64::from(total)).unwrap());
        }
        // A smaller size than verified is refused.
        assert_eq!(
            verify_from(&store, &verified, 3).unwrap_err().code,
            ErrorCode::LogCorrupt
        );
    }

    #[test]
    fn incremental_verification_checks_the_new_range_and_the_whole_root() {
        let store = log_of(6);
        let verified = verify_from(&store, &Verified::default(), 6).unwrap();
        append(&store, 6, 4);
        // A damaged new entry is named.
        flip_entry(&store, 8);
        let err = verify_from(&store, &verified, 10).unwrap_err();
        assert!(err.message.contains("entry 8 "), "{}", err.message);

        // A stored tree node of the old range that no longer matches what was
        // verified, and that the new root is composed of, is caught.
        let store = log_of(6);
        let verified = verify_from(&store, &Verified::default(), 6).unwrap();
        append(&store, 6, 1);
        store
            .write(&[Write::Put {
                cf: Cf::LogNodes,
                key: node_key(2, 0),
                value: vec![0; 32],
            }])
            .unwrap();
        assert_eq!(
            verify_from(&store, &verified, 7).unwrap_err().code,
            ErrorCode::LogCorrupt
        );

        // An old entry changed after it was verified is not seen incrementally
        // (its stored leaf still matches the tree), only by a full check.
        let store = log_of(6);
        let verified = verify_from(&store, &Verified::default(), 6).unwrap();
        flip_entry(&store, 2);
        append(&store, 6, 2);
        assert!(verify_from(&store, &verified, 8).is_ok());
        let err = verify(&store, 8).unwrap_err();
        assert!(err.message.contains("entry 2 "), "{}", err.message);
    }

    #[test]
    fn tagged_entries_link_to_the_tags_previous_entry() {
        // Tags 1, 2, 1, 0 (none), 1 in one batch, then 2 and 1 in another.
        let store = MemStore::new();
        let tagged = |tag: u8| {
            let mut r = record(tag);
            r.entry.resident_tag = [tag; 32];
            r
        };
        let mut writes = Vec::new();
        let batch = [1u8, 2, 1, 0, 1].map(tagged).to_vec();
        append_all(&store, batch, &mut writes).unwrap();
        store.write(&writes).unwrap();
        let mut writes = Vec::new();
        append_all(&store, vec![tagged(2), tagged(1)], &mut writes).unwrap();
        store.write(&writes).unwrap();
        let prevs: Vec<Option<u64>> = entries(&store, 0, 10)
            .unwrap()
            .iter()
            .map(|b| LogEntry::parse(b).unwrap().prev)
            .collect();
        // Entry 3 has no tag, so no link (version 1).
        assert_eq!(
            prevs,
            [Some(0), Some(0), Some(1), None, Some(3), Some(2), Some(5)]
        );
        assert_eq!(tag_head(&store, &[1; 32]).unwrap(), Some((6, 4)));
        assert_eq!(tag_head(&store, &[2; 32]).unwrap(), Some((5, 2)));
        assert_eq!(tag_head(&store, &[9; 32]).unwrap(), None);
    }

    #[test]
    fn altered_removed_and_reordered_entries_are_named() {
        let key = |i: u64| i.to_be_bytes().to_vec();
        let altered = log_of(6);
        let mut bytes = altered.get(Cf::LogEntries, &key(3)).unwrap().unwrap();
        bytes[40] ^= 1;
        altered
            .write(&[Write::Put {
                cf: Cf::LogEntries,
                key: key(3),
                value: bytes,
            }])
            .unwrap();
        assert!(verify(&altered, 6)
            .unwrap_err()
            .message
            .contains("entry 3 "));

        let removed = log_of(6);
        removed
            .write(&[Write::Delete {
                cf: Cf::LogEntries,
                key: key(2),
            }])
            .unwrap();
        assert!(verify(&removed, 6)
            .unwrap_err()
            .message
            .contains("entry 2 "));

        let swapped = log_of(6);
        let a = swapped.get(Cf::LogEntries, &key(1)).unwrap().unwrap();
        let b = swapped.get(Cf::LogEntries, &key(4)).unwrap().unwrap();
        swapped
            .write(&[
                Write::Put {
                    cf: Cf::LogEntries,
                    key: key(1),
                    value: b,
                },
                Write::Put {
                    cf: Cf::LogEntries,
                    key: key(4),
                    value: a,
                },
            ])
            .unwrap();
        let err = verify(&swapped, 6).unwrap_err();
        assert_eq!(err.code, ErrorCode::LogCorrupt);
        assert!(err.message.contains("entry 1 "), "{}", err.message);
    }
}
