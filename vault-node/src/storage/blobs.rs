//! The blob store: each document's bytes stored once, by BLAKE3 content
//! hash, encrypted at rest with AES-256-GCM under a key derived from the
//! node's master key and the content hash (so equal bytes still deduplicate).
//!
//! File format v1 (`docs/STORAGE.md`): a 64-byte plaintext header, then each
//! 16 KiB group sealed separately (ciphertext + 16-byte tag), then the sealed
//! outboard (the group-level BLAKE3 tree). Every seal uses the header as
//! associated data and a nonce naming what it seals, so groups cannot be
//! moved, swapped or transplanted between blobs undetected.
//!
//! **Invariant:** a blob file appears under `blobs/` only complete, verified
//! against its hash, and synced (written under `tmp/`, then renamed).
//! **Invariant:** bytes read back are authenticated before anyone sees them.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pki::ContentHash;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use vault_client::tree::{self, Outboard, OutboardBuilder, GROUP_SIZE};

/// Magic bytes at the start of every blob file.
pub const BLOB_MAGIC: &[u8; 8] = b"VAULTBL1";
/// Blob file format version.
pub const BLOB_FORMAT_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 64;
/// AEAD tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Master key length in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_KIND_GROUP: u32 = 0;
const NONCE_KIND_OUTBOARD: u32 = 1;
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Bytes written between background flushes, so a large blob's final sync
/// does not wait for the whole file to reach the disk.
pub const SYNC_INTERVAL_BYTES: u64 = 32 * 1024 * 1024;
pub use crate::rules::limits::DEFAULT_DISK_RESERVE_BYTES;

/// A blob store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The bytes did not hash to the announced content hash.
    #[error("the uploaded bytes hash to {actual}, not the announced {expected}")]
    HashMismatch {
        /// Announced.
        expected: ContentHash,
        /// Computed.
        actual: ContentHash,
    },
    /// Fewer bytes than announced.
    #[error("the upload ended after {got} of {expected} bytes")]
    Truncated {
        /// Announced size.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// More bytes than announced.
    #[error("the upload carried more than the announced {expected} bytes")]
    Oversized {
        /// Announced size.
        expected: u64,
    },
    /// Stored bytes failed authentication.
    #[error("stored blob {hash} failed its integrity check at {what}; it will not be served")]
    Integrity {
        /// Which blob.
        hash: ContentHash,
        /// Where.
        what: String,
    },
    /// No such blob on this node.
    #[error("blob {0} is not stored on this node")]
    Missing(ContentHash),
    /// The disk is full.
    #[error("the node's disk is full")]
    DiskFull,
    /// Storing the blob would leave less than the reserve free.
    #[error(
        "the node's disk has {free} bytes free and keeps {reserve} bytes for log entries; \
         a {size}-byte document does not fit until the operator frees space"
    )]
    LowSpace {
        /// Free bytes on the data directory's file system.
        free: u64,
        /// The reserve kept free.
        reserve: u64,
        /// The blob's size.
        size: u64,
    },
    /// Another I/O failure.
    #[error("blob storage I/O failed: {0}")]
    Io(String),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(28) {
            BlobError::DiskFull
        } else {
            BlobError::Io(e.to_string())
        }
    }
}

/// The encrypted, content-addressed blob store under one directory.
pub struct BlobStore {
    root: PathBuf,
    master: hkdf::Prk,
    /// Free bytes a new blob must leave (see [`DEFAULT_DISK_RESERVE_BYTES`]).
    reserve_bytes: std::sync::atomic::AtomicU64,
}

impl BlobStore {
    /// Opens the store at `root` (creating `blobs/` and `tmp/`), removing
    /// temporary files left by uploads interrupted by a crash.
    pub fn open(root: &Path, master_key: &[u8; MASTER_KEY_LEN]) -> Result<Self, BlobError> {
        fs::create_dir_all(root.join("blobs"))?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"vault/blob-key/v1");
        Ok(BlobStore {
            root: root.to_path_buf(),
            master: salt.extract(master_key),
            reserve_bytes: std::sync::atomic::AtomicU64::new(DEFAULT_DISK_RESERVE_BYTES),
        })
    }

    /// Sets the free space, in bytes, a new blob must leave on the disk.
    pub fn set_reserve_bytes(&self, bytes: u64) {
        self.reserve_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Free bytes (for unprivileged writers) on the file system holding
    /// the store.
    pub fn free_bytes(&self) -> Result<u64, BlobError> {
        let stat = rustix::fs::statvfs(self.root.as_path())
            .map_err(|e| BlobError::Io(format!("{}: {e}", self.root.display())))?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Refuses a blob of `size` bytes that would leave less than the
    /// reserve free (nothing is written).
    pub fn check_space(&self, size: u64) -> Result<(), BlobError> {
        let reserve = self
            .reserve_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let free = self.free_bytes()?;
        // The file is a little larger than the document (tags, outboard).
        let needed = size.saturating_add(size / 512).saturating_add(reserve);
        if free < needed {
            return Err(BlobError::LowSpace {
                free,
                reserve,
                size,
            });
        }
        Ok(())
    }

    /// Where the blob with `hash` lives.
    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    /// Whether the blob is stored here.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.path(hash).is_file()
    }

    /// Calls `visit` with the hash and last-modified time of every blob
    /// file stored here, one fan-out directory at a time (files whose name
    /// is not a content hash are skipped). Stops at the first error
    /// `visit` returns.
    pub fn for_each_stored(
        &self,
        mut visit: impl FnMut(ContentHash, std::time::SystemTime) -> Result<(), BlobError>,
    ) -> Result<(), BlobError> {
        for fan in fs::read_dir(self.root.join("blobs"))? {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(fan.path())? {
                let file = file?;
                let name = file.file_name();
                let Some(hash) = name.to_str().and_then(|n| ContentHash::from_hex(n).ok()) else {
                    continue;
                };
                let modified = file.metadata()?.modified()?;
                visit(hash, modified)?;
            }
        }
        Ok(())
    }

    /// Deletes the blob `hash` stored here (nothing when it is absent).
    pub fn remove(&self, hash: &ContentHash) -> Result<(), BlobError> {
        match fs::remove_file(self.path(hash)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the blob `hash` only if its file was last modified at
    /// `modified` (a copy renamed into place since, by an upload or a
    /// repair, is kept); answers whether it deleted it.
    ///
    /// The check and the unlink are two steps: a rename between them is
    /// possible but needs a whole upload to finish within microseconds of
    /// a scan that saw the old file, and the reconciler restores a copy
    /// placement gives this node.
    pub fn remove_if_unchanged(
        &self,
        hash: &ContentHash,
        modified: std::time::SystemTime,
    ) -> Result<bool, BlobError> {
        let path = self.path(hash);
        match fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(now) if now == modified => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts writing a blob that must hash to `hash` and be `size` bytes.
    pub fn writer(&self, hash: ContentHash, size: u64) -> Result<BlobWriter, BlobError> {
        self.check_space(size)?;
        let mut name = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut name)
            .map_err(|_| BlobError::Io("no randomness".into()))?;
        let tmp_path = self.root.join("tmp").join(hex::encode(name));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        let header = header(hash, size);
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        out.write_all(&header)?;
        Ok(BlobWriter {
            key: self.key(&hash)?,
            header,
            hash,
            size,
            out: Some(out),
            tmp_path,
            final_path: self.path(&hash),
            group: Vec::with_capacity(GROUP_SIZE as usize + TAG_LEN),
            group_index: 0,
            received: 0,
            builder: OutboardBuilder::new(),
            syncer: None,
            unsynced: 0,
        })
    }

    /// Opens a stored blob for reading.
    pub fn reader(&self, hash: &ContentHash) -> Result<BlobReader, BlobError> {
        let file = match File::open(self.path(hash)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(*hash))
            }
            Err(e) => return Err(e.into()),
        };
        let mut found = [0u8; HEADER_LEN];
        file.read_exact_at(&mut found, 0)
            .map_err(|_| integrity(hash, "header"))?;
        let size = u64::from_be_bytes(
            found[16..24]
                .try_into()
                .map_err(|_| integrity(hash, "header"))?,
        );
        if found != header(*hash, size) {
            return Err(integrity(hash, "header"));
        }
        Ok(BlobReader {
            key: self.key(hash)?,
            header: found,
            hash: *hash,
            size,
            file,
        })
    }

    fn key(&self, hash: &ContentHash) -> Result<LessSafeKey, BlobError> {
        let info = [hash.as_bytes().as_slice()];
        let okm = self
            .master
            .expand(&info, &AES_256_GCM)
            .map_err(|_| BlobError::Io("key derivation failed".into()))?;
        let mut key = [0u8; 32];
        okm.fill(&mut key)
            .map_err(|_| BlobError::Io("key derivation failed".into()))?;
        let unbound =
            UnboundKey::new(&AES_256_GCM, &key).map_err(|_| BlobError::Io("bad key".into()))?;
        Ok(LessSafeKey::new(unbound))
    }
}

/// `magic | version u16 | reserved u16 | group size u32 | size u64 |
/// content hash [32] | reserved [8]`, all big-endian.
fn header(hash: ContentHash, size: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(BLOB_MAGIC);
    h[8..10].copy_from_slice(&BLOB_FORMAT_VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&(GROUP_SIZE as u32).to_be_bytes());
    h[16..24].copy_from_slice(&size.to_be_bytes());
    h[24..56].copy_from_slice(hash.as_bytes());
    h
}

fn nonce(kind: u32, index: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..4].copy_from_slice(&kind.to_be_bytes());
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn integrity(hash: &ContentHash, what: &str) -> BlobError {
    BlobError::Integrity {
        hash: *hash,
        what: what.to_string(),
    }
}

/// Byte offset of group `index` in a blob file.
fn group_offset(index: u64) -> u64 {
    HEADER_LEN as u64 + index * (GROUP_SIZE + TAG_LEN as u64)
}

/// Writes one blob: hashes, builds the outboard and encrypts as bytes
/// arrive, holding one group in memory. Dropped unfinished, it removes its
/// temporary file.
pub struct BlobWriter {
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    hash: ContentHash,
    size: u64,
    out: Option<BufWriter<File>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    group: Vec<u8>,
    group_index: u64,
    received: u64,
    builder: OutboardBuilder,
    syncer: Option<Syncer>,
    unsynced: u64,
}

/// Flushes a file's dirty pages on a background thread while writing goes on.
struct Syncer {
    tx: std::sync::mpsc::SyncSender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(file: File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                // Best effort: the final sync_all in finish() is the durable one.
                let _ = file.sync_data();
            }
        });
        Syncer {
            tx,
            thread: Some(thread),
        }
    }

    /// Asks for a flush unless one is already pending.
    fn poke(&self) {
        let _ = self.tx.try_send(());
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (tx, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl BlobWriter {
    /// Appends bytes of the blob.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        if self.received + data.len() as u64 > self.size {
            return Err(BlobError::Oversized {
                expected: self.size,
            });
        }
        self.received += data.len() as u64;
        self.builder.update(data);
        while !data.is_empty() {
            let room = GROUP_SIZE as usize - self.group.len();
            let take = room.min(data.len());
            self.group.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.group.len() == GROUP_SIZE as usize {
                self.seal_group()?;
            }
        }
        Ok(())
    }

    fn seal_group(&mut self) -> Result<(), BlobError> {
        let nonce = nonce(NONCE_KIND_GROUP, self.group_index);
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(self.header), &mut self.group)
            .map_err(|_| BlobError::Io("encryption failed".into()))?;
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| BlobError::Io("writer closed".into()))?;
        out.write_all(&self.group)?;
        self.unsynced += self.group.len() as u64;
        if self.unsynced >= SYNC_INTERVAL_BYTES {
            // The flushing thread starts only once this many bytes have
            // arrived: an upload that stalls early holds no thread.
            if self.syncer.is_none() {
                self.syncer = Some(Syncer::start(out.get_ref().try_clone()?));
            }
            out.flush()?;
            if let Some(syncer) = &self.syncer {
                syncer.poke();
            }
            self.unsynced = 0;
        }
        self.group.clear();
        self.group_index += 1;
        Ok(())
    }

    /// Checks size and hash, seals the outboard, syncs, and moves the blob
    /// into place. Returns false when an identical blob was already there.
    pub fn finish(mut self) -> Result<bool, BlobError> {
        if self.received != self.size {
            return Err(BlobError::Truncated {
                expected: self.size,
                got: self.received,
            });
        }
        let builder = std::mem::take(&mut self.builder);
        let (root, outboard) = builder.finalize();
        let actual = ContentHash(*root.as_bytes());
        if actual != self.hash {
            return Err(BlobError::HashMismatch {
                expected: self.hash,
                actual,
            });
        }
        if !self.group.is_empty() || self.size == 0 {
            self.seal_group()?;
        }
        let mut sealed = outboard.into_bytes();
        self.key
            .seal_in_place_append_tag(
                nonce(NONCE_KIND_OUTBOARD, 0),
                Aad::from(self.header),
                &mut sealed,
            )
            .map_err(|_| BlobError::Io("encryption failed".into()))?;
        let mut out = self
            .out
            .take()
            .ok_or_else(|| BlobError::Io("writer closed".into()))?;
        out.write_all(&sealed)?;
        let file = out
            .into_inner()
            .map_err(|e| BlobError::from(e.into_error()))?;
        let started = std::time::Instant::now();
        file.sync_all()?;
        crate::metrics::METRICS.fsync("blob", started.elapsed());
        let parent = self
            .final_path
            .parent()
            .ok_or_else(|| BlobError::Io("bad blob path".into()))?;
        if !parent.is_dir() {
            // A new fan-out directory: make its entry in `blobs/` durable
            // too, or a power loss could drop the directory with the copy.
            fs::create_dir_all(parent)?;
            if let Some(blobs) = parent.parent() {
                File::open(blobs)?.sync_all()?;
            }
        }
        let fresh = !self.final_path.exists();
        fs::rename(&self.tmp_path, &self.final_path)?;
        File::open(parent)?.sync_all()?;
        Ok(fresh)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Unfinished (or failed): leave nothing behind.
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// Reads one stored blob, authenticating every group before returning it.
pub struct BlobReader {
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    hash: ContentHash,
    size: u64,
    file: File,
}

impl BlobReader {
    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads and authenticates the outboard.
    pub fn outboard(&self) -> Result<Outboard, BlobError> {
        let groups = tree::group_count(self.size);
        let data_end = HEADER_LEN as u64 + self.size + groups * TAG_LEN as u64;
        let len = tree::outboard_len(self.size) as usize + TAG_LEN;
        let mut sealed = vec![0u8; len];
        self.file
            .read_exact_at(&mut sealed, data_end)
            .map_err(|_| integrity(&self.hash, "outboard"))?;
        let plain = self
            .key
            .open_in_place(
                nonce(NONCE_KIND_OUTBOARD, 0),
                Aad::from(self.header),
                &mut sealed,
            )
            .map_err(|_| integrity(&self.hash, "outboard"))?;
        let plain_len = plain.len();
        sealed.truncate(plain_len);
        Outboard::from_bytes(self.size, sealed).map_err(|_| integrity(&self.hash, "outboard"))
    }

    /// Reads and authenticates group `index` into `buf` (which must hold
    /// `GROUP_SIZE + TAG_LEN` bytes); returns the plaintext.
    pub fn read_group<'a>(&self, index: u64, buf: &'a mut [u8]) -> Result<&'a [u8], BlobError> {
        let start = index * GROUP_SIZE;
        if start > self.size || (start == self.size && self.size != 0) {
            return Err(BlobError::Io(format!("group {index} out of range")));
        }
        let plain_len = (self.size - start).min(GROUP_SIZE) as usize;
        let sealed = buf
            .get_mut(..plain_len + TAG_LEN)
            .ok_or_else(|| BlobError::Io("buffer too small".into()))?;
        self.file
            .read_exact_at(sealed, group_offset(index))
            .map_err(|_| integrity(&self.hash, &format!("group {index}")))?;
        let plain = self
            .key
            .open_in_place(
                nonce(NONCE_KIND_GROUP, index),
                Aad::from(self.header),
                sealed,
            )
            .map_err(|_| integrity(&self.hash, &format!("group {index}")))?;
        Ok(plain)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> BlobStore {
        BlobStore::open(dir, &[9u8; 32]).unwrap()
    }

    fn put(store: &BlobStore, data: &[u8]) -> ContentHash {
        let hash = ContentHash(*blake3::hash(data).as_bytes());
        let mut writer = store.writer(hash, data.len() as u64).unwrap();
        for chunk in data.chunks(7000) {
            writer.write(chunk).unwrap();
        }
        writer.finish().unwrap();
        hash
    }

    fn read_all(store: &BlobStore, hash: &ContentHash) -> Result<Vec<u8>, BlobError> {
        let reader = store.reader(hash)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; GROUP_SIZE as usize + TAG_LEN];
        for index in 0..tree::group_count(reader.size()) {
            out.extend_from_slice(reader.read_group(index, &mut buf)?);
        }
        reader.outboard()?;
        Ok(out)
    }

    #[test]
    fn round_trips_and_is_encrypted_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for size in [0usize, 1, 16384, 16385, 100_000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let hash = put(&store, &data);
            assert_eq!(read_all(&store, &hash).unwrap(), data);
            let raw = fs::read(store.path(&hash)).unwrap();
            if size >= 64 {
                assert!(
                    !raw.windows(64).any(|w| w == &data[..64]),
                    "plaintext on disk"
                );
            }
        }
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn wrong_hash_truncation_and_oversize_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let data = vec![5u8; 40_000];
        let hash = ContentHash(*blake3::hash(&data).as_bytes());
        let mut w = store.writer(ContentHash([0; 32]), 40_000).unwrap();
        w.write(&data).unwrap();
        assert!(matches!(w.finish(), Err(BlobError::HashMismatch { .. })));
        let mut w = store.writer(hash, 40_000).unwrap();
        w.write(&data[..39_999]).unwrap();
        assert!(matches!(w.finish(), Err(BlobError::Truncated { .. })));
        let mut w = store.writer(hash, 40_000).unwrap();
        w.write(&data).unwrap();
        assert!(matches!(w.write(&[1]), Err(BlobError::Oversized { .. })));
        drop(w);
        assert!(!store.contains(&hash));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_flipped_byte_anywhere_is_an_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let hash = put(&store, &data);
        let path = store.path(&hash);
        let clean = fs::read(&path).unwrap();
        for pos in [
            0usize,
            20,
            64,
            64 + 16_000,
            clean.len() - 1,
            clean.len() - 40,
        ] {
            let mut bad = clean.clone();
            bad[pos] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            let err = read_all(&store, &hash).unwrap_err();
            assert!(
                matches!(err, BlobError::Integrity { .. }),
                "pos {pos}: {err}"
            );
        }
    }

    #[test]
    fn a_different_master_key_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let hash = put(&store(dir.path()), b"secret document");
        let other = BlobStore::open(dir.path(), &[1u8; 32]).unwrap();
        assert!(matches!(
            read_all(&other, &hash),
            Err(BlobError::Integrity { .. })
        ));
    }
}
