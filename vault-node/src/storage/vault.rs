//! One node's storage, opened from a data directory: its own metadata store
//! (RocksDB, `db/`) and the read view (in cluster mode, the Raft state
//! machine's store), the encrypted blob store, the revoked certificate
//! serials and CRLs in force, and memos of the immutable records.
//!
//! It writes no metadata: commands become durable through
//! `crate::consensus`.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use pki::{ContentHash, PeerCert, ResidentId};
use vault_client::wire::PageFill;
use vault_client::{DocumentId, ErrorCode};

use crate::engine::meta::{Cf, MetaStore};
use crate::engine::state::{self, DocumentEntry, StateError, Step, StoredGrant};
use crate::rules::access::ListScope;
use crate::storage::blobs::{BlobError, BlobStore, MASTER_KEY_LEN};
use crate::storage::store::RocksStore;
use crate::Refusal;

/// A data directory's layout version, written to `DATA/FORMAT`.
pub const DATA_FORMAT_VERSION: u32 = 3;

/// A node's storage.
pub struct Vault {
    /// The node's own metadata store (`db/`): the single-node ledger's.
    local: Arc<dyn MetaStore>,
    /// In cluster mode, the cluster's state machine store: reads come
    /// from it instead of the single-node ledger's.
    reads: std::sync::OnceLock<Arc<dyn MetaStore>>,
    blobs: BlobStore,
    revoked: RwLock<HashSet<String>>,
    /// The district CRLs in force (DER), for verifying grants' chains.
    crls: RwLock<Vec<Vec<u8>>>,
    data_dir: PathBuf,
    /// Immutable records, parsed once: documents and grants never change.
    documents: Memo<DocumentId, DocumentEntry>,
    grants: Memo<pki::GrantId, StoredGrant>,
}

/// Parsed immutable records remembered per node; cleared when full.
pub const MEMO_ENTRIES_MAX: usize = 65_536;

/// A bounded map of immutable parsed records.
struct Memo<K, V> {
    map: std::sync::Mutex<std::collections::HashMap<K, Arc<V>>>,
}

impl<K: std::hash::Hash + Eq + Copy, V> Memo<K, V> {
    fn new() -> Self {
        Memo {
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn get_or(&self, key: K, load: impl FnOnce() -> Result<V, Refusal>) -> Result<Arc<V>, Refusal> {
        let lock = || self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = lock().get(&key) {
            return Ok(value.clone());
        }
        let value = Arc::new(load()?);
        let mut map = lock();
        if map.len() >= MEMO_ENTRIES_MAX {
            map.clear();
        }
        map.insert(key, value.clone());
        Ok(value)
    }
}

impl Vault {
    /// Opens (creating if needed) the node's data directory: `db/` (RocksDB),
    /// `blobs/` and `tmp/` (blob store), `master.key` (0600).
    pub fn open(data_dir: &Path) -> Result<Self, Refusal> {
        fs::create_dir_all(data_dir)
            .map_err(|e| storage(format!("{}: {e}", data_dir.display())))?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| storage(format!("{}: {e}", data_dir.display())))?;
        check_format(data_dir)?;
        let key_path = data_dir.join("master.key");
        if !key_path.exists() {
            if let Some(blob) = any_blob(data_dir) {
                return Err(storage(format!(
                    "{} holds encrypted blobs (e.g. {}) but no master.key: a new key would \
                     make every one unreadable, so the node does not start; restore this \
                     node's master.key (mode 0600) from its backup",
                    data_dir.display(),
                    blob.display()
                )));
            }
        }
        let master = master_key(&key_path)?;
        let store = RocksStore::open(&data_dir.join("db")).map_err(|e| storage(e.to_string()))?;
        let store: Arc<dyn MetaStore> = Arc::new(store);
        let blobs = BlobStore::open(data_dir, &master).map_err(Refusal::from)?;
        check_master_key(data_dir, &master, &blobs)?;
        Self::from_parts(store, blobs, data_dir)
    }

    /// Builds a vault over any store (unit tests use [`crate::storage::store::MemStore`]).
    pub fn from_parts(
        store: Arc<dyn MetaStore>,
        blobs: BlobStore,
        data_dir: &Path,
    ) -> Result<Self, Refusal> {
        Ok(Vault {
            local: store,
            reads: std::sync::OnceLock::new(),
            blobs,
            revoked: RwLock::new(HashSet::new()),
            crls: RwLock::new(Vec::new()),
            data_dir: data_dir.to_path_buf(),
            documents: Memo::new(),
            grants: Memo::new(),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The metadata store (reads): the cluster's state machine store once
    /// [`Vault::read_from`] set it, else the node's own ([`Vault::local_store`]).
    pub fn store(&self) -> &dyn MetaStore {
        match self.reads.get() {
            Some(store) => store.as_ref(),
            None => self.local.as_ref(),
        }
    }

    /// The node's own metadata store (`db/`), which the single-node ledger
    /// writes (in cluster mode the Raft state machine has its own).
    pub fn local_store(&self) -> Arc<dyn MetaStore> {
        self.local.clone()
    }

    /// Serves every later read from `store` (cluster mode: the Raft state
    /// machine's store). Only the first call takes effect; returns whether
    /// this one did. Call before serving any request.
    pub fn read_from(&self, store: Arc<dyn MetaStore>) -> bool {
        self.reads.set(store).is_ok()
    }

    /// Whether this node holds a verified blob for `hash` that the state
    /// machine knows about.
    pub fn has_blob(&self, hash: &ContentHash) -> Result<bool, Refusal> {
        let known = state::blob(self.store(), hash)
            .map_err(Refusal::from)?
            .is_some();
        Ok(known && self.blobs.contains(hash))
    }

    /// A document by id (records are immutable, so parsed ones are remembered).
    pub fn document(&self, id: DocumentId) -> Result<Arc<DocumentEntry>, Refusal> {
        self.documents.get_or(id, || {
            state::document(self.store(), id)
                .map_err(Refusal::from)?
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::NotFound,
                        format!("no document {id}; check the id printed by `vault put`"),
                    )
                })
        })
    }

    /// A grant's immutable part by id (remembered once parsed).
    pub fn stored_grant(&self, id: pki::GrantId) -> Result<Arc<StoredGrant>, Refusal> {
        self.grants.get_or(id, || {
            state::stored_grant(self.store(), id)
                .map_err(Refusal::from)?
                .ok_or_else(|| Refusal::new(ErrorCode::GrantNotFound, format!("no grant {id}")))
        })
    }

    /// One page of the documents of `resident` within `scope`, newest
    /// first, each as `view` shows it: from `cursor` (a previous page's
    /// `next_cursor`) on, at most `limit` ([`state::LIST_LEN_MAX`] when
    /// absent) and bounded in bytes (see [`state::page`]).
    pub fn list<T: serde::Serialize>(
        &self,
        resident: &ResidentId,
        scope: &ListScope,
        cursor: Option<&str>,
        limit: Option<u32>,
        view: &dyn Fn(&DocumentEntry) -> T,
    ) -> Result<state::Page<T>, Refusal> {
        let store = self.store();
        let prefix = state::resident_prefix(resident);
        let from = state::page_from(cursor)?;
        let fill = PageFill::new(limit, state::LIST_LEN_MAX);
        state::page(
            store,
            Cf::ByResident,
            &prefix,
            from.as_deref(),
            fill,
            &mut |key| {
                let id = DocumentId::from_bytes(state::tail_id(key)?);
                let entry = state::document(store, id)?.ok_or_else(|| {
                    StateError::Corrupt(format!("index names missing document {id}"))
                })?;
                let visible = match scope {
                    ListScope::All => true,
                    ListScope::IssuedBy(name) => &entry.record.issuer == name,
                };
                Ok(if visible {
                    Step::Item(view(&entry))
                } else {
                    Step::Skip
                })
            },
        )
    }

    /// Whether the CRL revokes certificate `serial` (lowercase hex).
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(serial)
    }

    /// A copy of the revoked serials (for logging them; fetches use
    /// [`Vault::is_revoked`], which copies nothing).
    pub fn revoked_serials(&self) -> HashSet<String> {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The district CRLs in force (DER).
    pub fn crls(&self) -> Vec<Vec<u8>> {
        self.crls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the CRLs in force (DER) and the serials they revoke.
    pub fn set_crls(&self, crls: Vec<Vec<u8>>, serials: HashSet<String>) {
        *self.crls.write().unwrap_or_else(|p| p.into_inner()) = crls;
        self.set_revoked(serials);
    }

    /// Replaces the set of revoked certificate serials (from the CRL).
    pub fn set_revoked(&self, serials: HashSet<String>) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        *revoked = serials;
    }

    /// Refuses a caller whose certificate was revoked after it connected.
    pub fn check_not_revoked(&self, caller: &PeerCert) -> Result<(), Refusal> {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        if revoked.contains(&caller.serial_hex) {
            return Err(Refusal::new(
                ErrorCode::CertificateRevoked,
                format!(
                    "certificate {} of {} has been revoked by the district CA",
                    caller.serial_hex, caller.name
                ),
            ));
        }
        Ok(())
    }
}

fn check_format(data_dir: &Path) -> Result<(), Refusal> {
    let path = data_dir.join("FORMAT");
    match fs::read_to_string(&path) {
        Ok(text) if text.trim() == DATA_FORMAT_VERSION.to_string() => Ok(()),
        Ok(text) => Err(storage(format!(
            "{} holds data format {}, this node reads format {DATA_FORMAT_VERSION} (no migration \
             exists: start with an empty data directory; a development setup is started over by \
             removing its directory, e.g. .vault-dev)",
            data_dir.display(),
            text.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::write(&path, format!("{DATA_FORMAT_VERSION}\n"))
                .map_err(|e| storage(format!("{}: {e}", path.display())))
        }
        Err(e) => Err(storage(format!("{}: {e}", path.display()))),
    }
}

/// Reads the node's master key, creating it (0600, random) on first start.
fn master_key(path: &Path) -> Result<[u8; MASTER_KEY_LEN], Refusal> {
    if path.exists() {
        let mode = fs::metadata(path)
            .map_err(|e| storage(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(storage(format!(
                "{} is readable by others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            )));
        }
        let bytes = fs::read(path).map_err(|e| storage(e.to_string()))?;
        return bytes.as_slice().try_into().map_err(|_| {
            storage(format!(
                "{} is not a {MASTER_KEY_LEN}-byte key",
                path.display()
            ))
        });
    }
    let mut key = [0u8; MASTER_KEY_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| storage("no randomness for the master key".into()))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| storage(format!("{}: {e}", path.display())))?;
    file.write_all(&key)
        .and_then(|_| file.sync_all())
        .map_err(|e| storage(format!("{}: {e}", path.display())))?;
    Ok(key)
}

/// The key check value file: BLAKE3 derive-key of the master key, so a key
/// that does not belong to this data directory's blobs is refused at start.
const KEY_CHECK_FILE: &str = "master.key.check";

/// Compares the master key with the data directory's key check value,
/// writing it when missing — after checking the key against a stored blob
/// when there is one (a directory from before the check existed).
fn check_master_key(
    data_dir: &Path,
    master: &[u8; MASTER_KEY_LEN],
    blobs: &BlobStore,
) -> Result<(), Refusal> {
    let check = hex::encode(blake3::derive_key("vault/master-key-check/v1", master));
    let path = data_dir.join(KEY_CHECK_FILE);
    let mismatch = || {
        storage(format!(
            "{}/master.key does not belong to this data directory: its blobs were encrypted \
             under another key; restore this node's own master.key from its backup",
            data_dir.display()
        ))
    };
    match fs::read_to_string(&path) {
        Ok(stored) if stored.trim() == check => return Ok(()),
        Ok(_) => return Err(mismatch()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(storage(format!("{}: {e}", path.display()))),
    }
    if let Some(hash) =
        any_blob(data_dir).and_then(|p| p.file_name()?.to_str()?.parse::<ContentHash>().ok())
    {
        if let Err(BlobError::Integrity { .. }) = blobs.reader(&hash).and_then(|r| r.outboard()) {
            return Err(mismatch());
        }
    }
    fs::write(&path, format!("{check}\n")).map_err(|e| storage(format!("{}: {e}", path.display())))
}

/// One blob file of the data directory, if it holds any.
fn any_blob(data_dir: &Path) -> Option<PathBuf> {
    let fanouts = fs::read_dir(data_dir.join("blobs")).ok()?;
    fanouts
        .flatten()
        .filter_map(|fanout| fs::read_dir(fanout.path()).ok())
        .flat_map(|files| files.flatten())
        .map(|file| file.path())
        .find(|path| path.is_file())
}

fn storage(message: String) -> Refusal {
    Refusal::new(ErrorCode::Storage, message)
}

impl From<BlobError> for Refusal {
    fn from(e: BlobError) -> Self {
        let code = match &e {
            BlobError::HashMismatch { .. } => ErrorCode::HashMismatch,
            BlobError::Truncated { .. } => ErrorCode::Truncated,
            BlobError::Oversized { .. } => ErrorCode::Oversized,
            BlobError::Integrity { .. } => ErrorCode::Integrity,
            BlobError::Missing(_) => ErrorCode::Integrity,
            BlobError::DiskFull | BlobError::LowSpace { .. } => ErrorCode::DiskFull,
            _ => ErrorCode::Storage,
        };
        let message = match code {
            ErrorCode::Integrity => e.to_string(),
            _ => format!("{e}; nothing was stored"),
        };
        Refusal::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_data_directory_without_its_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let hash = {
            let vault = Vault::open(&data).unwrap();
            let bytes = b"a blob".to_vec();
            let hash = ContentHash(*blake3::hash(&bytes).as_bytes());
            let mut writer = vault.blobs().writer(hash, bytes.len() as u64).unwrap();
            writer.write(&bytes).unwrap();
            writer.finish().unwrap();
            hash
        };
        let key = fs::read(data.join("master.key")).unwrap();
        // Restored without master.key: refused, and no new key is made.
        fs::remove_file(data.join("master.key")).unwrap();
        let refusal = Vault::open(&data).err().unwrap();
        assert_eq!(refusal.code, ErrorCode::Storage);
        assert!(
            refusal.message.contains("no master.key"),
            "{}",
            refusal.message
        );
        assert!(!data.join("master.key").exists());
        // Another node's key: refused by the key check value.
        write_key(&data, &[7u8; MASTER_KEY_LEN]);
        let refusal = Vault::open(&data).err().unwrap();
        assert!(
            refusal.message.contains("does not belong"),
            "{}",
            refusal.message
        );
        // Without the check value (an older directory), the blob decides.
        fs::remove_file(data.join(KEY_CHECK_FILE)).unwrap();
        let refusal = Vault::open(&data).err().unwrap();
        assert!(
            refusal.message.contains("does not belong"),
            "{}",
            refusal.message
        );
        assert!(!data.join(KEY_CHECK_FILE).exists());
        // Its own key restored: it opens and reads the blob.
        fs::remove_file(data.join("master.key")).unwrap();
        write_key(&data, &key);
        let vault = Vault::open(&data).unwrap();
        assert!(vault.blobs().reader(&hash).unwrap().outboard().is_ok());
        assert!(data.join(KEY_CHECK_FILE).exists());
    }

    fn write_key(data: &Path, key: &[u8]) {
        let _ = fs::remove_file(data.join("master.key"));
        fs::write(data.join("master.key"), key).unwrap();
        fs::set_permissions(data.join("master.key"), fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn a_data_directory_of_another_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("FORMAT"), "2\n").unwrap();
        let refusal = Vault::open(&data).err().unwrap();
        assert_eq!(refusal.code, ErrorCode::Storage);
        assert!(refusal.message.contains("format 2"), "{}", refusal.message);
        assert!(refusal.message.contains("empty data directory"));
        assert_eq!(fs::read_to_string(data.join("FORMAT")).unwrap(), "2\n");
        assert!(!data.join("master.key").exists());
        // A fresh directory is written with the current format.
        let fresh = dir.path().join("fresh");
        Vault::open(&fresh).unwrap();
        let written = fs::read_to_string(fresh.join("FORMAT")).unwrap();
        assert_eq!(written.trim(), DATA_FORMAT_VERSION.to_string());
    }
}
