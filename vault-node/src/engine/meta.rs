//! The narrow storage interface the state machine reads and writes through:
//! column families ([`Cf`]), atomic batches of [`Write`]s and the [`MetaStore`]
//! trait. Pure: the stores behind it (RocksDB, in memory, fault-injecting) are
//! in [`crate::storage::store`].
//!
//! **Invariant:** a [`MetaStore::write`] is atomic and durable (synced) when
//! it returns `Ok`; when it returns `Err`, nothing of it is visible.

use std::sync::Arc;

/// A column family: one per kind of record. Keys are big-endian so they sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Cf {
    /// Node-local bookkeeping (`applied_index`).
    Meta,
    /// The command log: u64 BE index -> command JSON.
    Commands,
    /// Documents: 16-byte document id -> document entry JSON.
    Documents,
    /// Index: resident, newest first, document id -> empty.
    ByResident,
    /// Blobs known to the state machine: 32-byte content hash -> blob entry JSON.
    Blobs,
    /// Access requests: 16-byte request id -> request entry JSON.
    Requests,
    /// Index: resident, pending request id -> empty.
    PendingRequests,
    /// Grants: 16-byte grant id -> immutable stored grant JSON.
    Grants,
    /// Grant counters: 16-byte grant id -> uses, bounds, revocation (JSON).
    GrantCounters,
    /// Index: holder (resident or grantee) name, grant id -> empty.
    GrantIndex,
    /// Log entries: u64 BE index -> canonical entry.
    LogEntries,
    /// Log details: u64 BE index -> detail JSON.
    LogDetails,
    /// Log tree: level u8 | index u64 BE -> perfect subtree hash.
    LogNodes,
    /// Index: resident tag [32] | u64 BE index -> empty.
    LogByTag,
    /// Residents' log salts: resident -> 32 bytes.
    ResidentSalts,
    /// Outcomes of recent Raft proposals ([`crate::consensus::raft`]), so a retried
    /// proposal is answered, not applied twice: seed time u64 BE | first 16
    /// bytes of the seed nonce -> outcome JSON. Replicated.
    Proposals,
    /// The Raft log ([`crate::consensus::raft`]): u64 BE index -> entry JSON. Node-local,
    /// not part of the replicated state.
    RaftLog,
    /// Raft bookkeeping ([`crate::consensus::raft`]): vote, committed, last purged, last
    /// applied, membership, current snapshot. Node-local, not replicated.
    RaftMeta,
}

impl Cf {
    /// Every column family, in creation order.
    pub const ALL: [Cf; 18] = [
        Cf::Meta,
        Cf::Commands,
        Cf::Documents,
        Cf::ByResident,
        Cf::Blobs,
        Cf::Requests,
        Cf::PendingRequests,
        Cf::Grants,
        Cf::GrantCounters,
        Cf::GrantIndex,
        Cf::LogEntries,
        Cf::LogDetails,
        Cf::LogNodes,
        Cf::LogByTag,
        Cf::ResidentSalts,
        Cf::Proposals,
        Cf::RaftLog,
        Cf::RaftMeta,
    ];

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Commands => "commands",
            Cf::Documents => "documents",
            Cf::ByResident => "by_resident",
            Cf::Blobs => "blobs",
            Cf::Requests => "requests",
            Cf::PendingRequests => "pending_requests",
            Cf::Grants => "grants",
            Cf::GrantCounters => "grant_counters",
            Cf::GrantIndex => "grant_index",
            Cf::LogEntries => "log_entries",
            Cf::LogDetails => "log_details",
            Cf::LogNodes => "log_nodes",
            Cf::LogByTag => "log_by_tag",
            Cf::ResidentSalts => "resident_salts",
            Cf::Proposals => "proposals",
            Cf::RaftLog => "raft_log",
            Cf::RaftMeta => "raft_meta",
        }
    }
}

/// One change in an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Put {
        /// Column family.
        cf: Cf,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// Column family.
        cf: Cf,
        /// Key bytes.
        key: Vec<u8>,
    },
}

/// A storage failure.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full; the write was not applied.
    #[error("the disk is full; free space on the node's data volume")]
    DiskFull,
    /// Another storage failure; the write was not applied.
    #[error("storage failure: {0}")]
    Io(String),
    /// A fault injected by [`FaultyStore`].
    #[error("injected fault")]
    Injected,
    /// Another process holds the store (RocksDB's lock file): another node
    /// runs on this data directory.
    #[error(
        "the data directory is in use by another process ({0}); stop the node running on it, or give this one another data directory"
    )]
    InUse(String),
}

/// One key/value pair.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Key/value pairs returned by a scan.
pub type Entries = Vec<KeyValue>;

/// The narrow storage interface the state machine and the node use.
pub trait MetaStore: Send + Sync {
    /// Reads one value.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError>;
    /// Applies `writes` atomically and durably.
    fn write(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// Applies `writes` atomically, durable only once a later
    /// [`MetaStore::write`] to the same store returns (RocksDB: one
    /// write-ahead log, so syncing it syncs everything written before). For
    /// writes that can be redone after a crash, such as a Raft state
    /// machine's applies. The default syncs.
    fn write_unsynced(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.write(writes)
    }
    /// Makes every write so far durable, [`write_unsynced`](Self::write_unsynced)
    /// ones included (syncs the write-ahead log). The default does nothing:
    /// a store whose unsynced writes are synced has nothing pending.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Up to `limit` entries whose key is at least `start`, in key order.
    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError>;
    /// The entry with the greatest key in `cf`, if any. The default scans the
    /// whole family; stores override it with a reverse seek.
    fn last(&self, cf: Cf) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.scan_from(cf, &[], usize::MAX)?.pop())
    }
}

impl<S: MetaStore + ?Sized> MetaStore for Arc<S> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cf, key)
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        (**self).scan_prefix(cf, prefix, limit)
    }

    fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        (**self).write(writes)
    }

    fn write_unsynced(&self, writes: &[Write]) -> Result<(), StoreError> {
        (**self).write_unsynced(writes)
    }

    fn sync(&self) -> Result<(), StoreError> {
        (**self).sync()
    }

    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        (**self).scan_from(cf, start, limit)
    }

    fn last(&self, cf: Cf) -> Result<Option<KeyValue>, StoreError> {
        (**self).last(cf)
    }
}
