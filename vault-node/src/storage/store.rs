//! Metadata storage behind a narrow trait: [`RocksStore`] (the real one, on
//! disk), [`MemStore`] (in memory: unit tests and the simulation) and
//! [`FaultyStore`] (fails writes after N operations), all run through one
//! conformance suite.
//!
//! **Invariant:** a [`MetaStore::write`] is atomic and durable (synced) when
//! it returns `Ok`; when it returns `Err`, nothing of it is visible.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::engine::meta::{Cf, Entries, KeyValue, MetaStore, StoreError, Write};

type MemMap = BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

/// Each column family's memtable size, in bytes. RocksDB reserves this much
/// free disk before it clears an out-of-space error by itself (it checks
/// every 5 s), and preallocates a write-ahead log file of about this size:
/// with the default 64 MiB a node on a small volume stayed refused after
/// space was freed until it was restarted.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The RocksDB store: one column family per [`Cf`], synced writes.
pub struct RocksStore {
    db: rocksdb::DB,
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_keep_log_file_num(4);
        options.set_write_buffer_size(WRITE_BUFFER_BYTES);
        let families = Cf::ALL.iter().map(|cf| {
            let mut cf_options = rocksdb::Options::default();
            cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf_options.set_write_buffer_size(WRITE_BUFFER_BYTES);
            if *cf == Cf::Commands {
                // Commands carry certificates (~1 KiB): keep them out of the LSM.
                cf_options.set_enable_blob_files(true);
                cf_options.set_min_blob_size(1024);
            }
            rocksdb::ColumnFamilyDescriptor::new(cf.name(), cf_options)
        });
        let db = rocksdb::DB::open_cf_descriptors(&options, path, families).map_err(rocks_error)?;
        Ok(RocksStore { db })
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StoreError::Io(format!("column family {} missing", cf.name())))
    }
}

impl MetaStore for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.handle(cf)?, key).map_err(rocks_error)
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.handle(cf)?, mode) {
            let (key, value) = item.map_err(rocks_error)?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let mode = rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.handle(cf)?, mode).take(limit) {
            let (key, value) = item.map_err(rocks_error)?;
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    fn last(&self, cf: Cf) -> Result<Option<KeyValue>, StoreError> {
        match self
            .db
            .iterator_cf(self.handle(cf)?, rocksdb::IteratorMode::End)
            .next()
        {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(rocks_error)?;
                Ok(Some((key.to_vec(), value.to_vec())))
            }
        }
    }

    fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.write_with(writes, true)
    }

    fn write_unsynced(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.write_with(writes, false)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let synced = self.db.flush_wal(true).map_err(rocks_error);
        crate::metrics::METRICS.fsync("meta", started.elapsed());
        synced
    }
}

impl RocksStore {
    fn write_with(&self, writes: &[Write], sync: bool) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        for write in writes {
            match write {
                Write::Put { cf, key, value } => batch.put_cf(self.handle(*cf)?, key, value),
                Write::Delete { cf, key } => batch.delete_cf(self.handle(*cf)?, key),
            }
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(sync);
        let started = std::time::Instant::now();
        let written = self.db.write_opt(batch, &options).map_err(rocks_error);
        if sync {
            crate::metrics::METRICS.fsync("meta", started.elapsed());
        }
        written
    }
}

fn rocks_error(e: rocksdb::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("No space left") || text.contains("ENOSPC") {
        StoreError::DiskFull
    } else if text.contains("LOCK")
        && [
            "Resource temporarily unavailable",
            "No locks available",
            "lock hold by",
        ]
        .iter()
        .any(|held| text.contains(held))
    {
        // Another process (`Resource temporarily unavailable`), or this one
        // (`lock hold by current process`), holds the database.
        StoreError::InUse(text)
    } else {
        StoreError::Io(text)
    }
}

/// An in-memory store, for unit tests only.
#[derive(Default)]
pub struct MemStore {
    map: Mutex<MemMap>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemMap> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MetaStore for MemStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(cf, key.to_vec())).cloned())
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let map = self.lock();
        Ok(map
            .range((cf, prefix.to_vec())..)
            .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let map = self.lock();
        Ok(map
            .range((cf, start.to_vec())..)
            .take_while(|((c, _), _)| *c == cf)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, cf: Cf) -> Result<Option<KeyValue>, StoreError> {
        let map = self.lock();
        Ok(map
            .range((cf, Vec::new())..)
            .take_while(|((c, _), _)| *c == cf)
            .last()
            .map(|((_, k), v)| (k.clone(), v.clone())))
    }

    fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut map = self.lock();
        for write in writes {
            match write {
                Write::Put { cf, key, value } => {
                    map.insert((*cf, key.clone()), value.clone());
                }
                Write::Delete { cf, key } => {
                    map.remove(&(*cf, key.clone()));
                }
            }
        }
        Ok(())
    }
}

/// Wraps a store and fails every write after the first `writes_ok`,
/// applying nothing of a failed write (what a full disk looks like).
pub struct FaultyStore<S> {
    inner: S,
    writes_left: AtomicU64,
    fault: StoreError,
}

impl<S: MetaStore> FaultyStore<S> {
    /// Lets `writes_ok` writes through, then fails with `fault`.
    pub fn new(inner: S, writes_ok: u64, fault: StoreError) -> Self {
        FaultyStore {
            inner,
            writes_left: AtomicU64::new(writes_ok),
            fault,
        }
    }
}

impl<S: MetaStore> MetaStore for FaultyStore<S> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.scan_prefix(cf, prefix, limit)
    }

    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.scan_from(cf, start, limit)
    }

    fn last(&self, cf: Cf) -> Result<Option<KeyValue>, StoreError> {
        self.inner.last(cf)
    }

    fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        let allowed = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !allowed {
            return Err(self.fault.clone());
        }
        self.inner.write(writes)
    }
}

/// The conformance suite every [`MetaStore`] must pass.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod conformance {
    use super::*;

    fn put(cf: Cf, key: &[u8], value: &[u8]) -> Write {
        Write::Put {
            cf,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    pub fn run(store: &dyn MetaStore) {
        assert_eq!(store.get(Cf::Documents, b"a").unwrap(), None);
        store
            .write(&[put(Cf::Documents, b"a", b"1"), put(Cf::Blobs, b"a", b"2")])
            .unwrap();
        assert_eq!(store.get(Cf::Documents, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(Cf::Blobs, b"a").unwrap(), Some(b"2".to_vec()));
        // Column families are separate namespaces.
        assert_eq!(store.get(Cf::Meta, b"a").unwrap(), None);
        // Prefix scans are ordered, bounded and stop at the prefix.
        store
            .write(&[
                put(Cf::ByResident, b"p\x02", b""),
                put(Cf::ByResident, b"p\x01", b""),
                put(Cf::ByResident, b"q\x00", b""),
                put(Cf::ByResident, b"p\x03", b""),
            ])
            .unwrap();
        let keys: Vec<_> = store
            .scan_prefix(Cf::ByResident, b"p", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec![b"p\x01".to_vec(), b"p\x02".to_vec(), b"p\x03".to_vec()]
        );
        assert_eq!(store.scan_prefix(Cf::ByResident, b"p", 2).unwrap().len(), 2);
        let from: Vec<_> = store
            .scan_from(Cf::ByResident, b"p\x02", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            from,
            vec![b"p\x02".to_vec(), b"p\x03".to_vec(), b"q\x00".to_vec()]
        );
        // The last entry of a family, and none of an empty one.
        assert_eq!(
            store.last(Cf::ByResident).unwrap(),
            Some((b"q\x00".to_vec(), Vec::new()))
        );
        assert_eq!(store.last(Cf::RaftLog).unwrap(), None);
        // Deletes and overwrites.
        store
            .write(&[
                Write::Delete {
                    cf: Cf::Documents,
                    key: b"a".to_vec(),
                },
                put(Cf::Blobs, b"a", b"3"),
            ])
            .unwrap();
        assert_eq!(store.get(Cf::Documents, b"a").unwrap(), None);
        assert_eq!(store.get(Cf::Blobs, b"a").unwrap(), Some(b"3".to_vec()));
        // Every column family the state machine names exists.
        let named = [
            Cf::Requests,
            Cf::PendingRequests,
            Cf::Grants,
            Cf::GrantIndex,
        ];
        for cf in Cf::ALL.iter().chain(named.iter()) {
            store
                .write(&[put(*cf, b"every", cf.name().as_bytes())])
                .unwrap();
            assert_eq!(
                store.get(*cf, b"every").unwrap(),
                Some(cf.name().as_bytes().to_vec())
            );
        }
    }

    #[test]
    fn mem_store_conforms() {
        run(&MemStore::new());
    }

    #[test]
    fn rocks_store_conforms_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path()).unwrap();
            run(&store);
        }
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.get(Cf::Blobs, b"a").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn faulty_store_applies_nothing_after_its_budget() {
        let store = FaultyStore::new(MemStore::new(), 1, StoreError::DiskFull);
        store.write(&[put(Cf::Meta, b"k", b"v")]).unwrap();
        let err = store.write(&[put(Cf::Meta, b"k2", b"v")]).unwrap_err();
        assert_eq!(err, StoreError::DiskFull);
        assert_eq!(store.get(Cf::Meta, b"k2").unwrap(), None);
        assert_eq!(store.get(Cf::Meta, b"k").unwrap(), Some(b"v".to_vec()));
    }
}
