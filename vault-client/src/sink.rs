//! Local files of a transfer. Where a download's verified bytes go:
//! `FILE.part` beside the output, with a small `FILE.part.json` naming the
//! document so that an interrupted download resumes only into the same
//! document. Only verified bytes are ever written, in order, so the `.part`
//! file's length (rounded down to a group) is the verified prefix. And
//! [`hash_file`], which an upload and a resumed download both use.
//!
//! Part of the `net` feature (the writer runs on tokio's blocking pool).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pki::ContentHash;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::client_error::ClientError;
use crate::error::ErrorCode;
use crate::tree::GROUP_SIZE;
use crate::wire::{DocumentId, DocumentView};

/// Verified pieces queued between the network and the file writer.
const WRITE_QUEUE_DEPTH: usize = 64;
/// Bytes read from a local file at a time, in bytes.
pub(crate) const FILE_CHUNK_BYTES: usize = 1024 * 1024;

/// The `.part` and `.part.json` files of one output path.
#[derive(Debug, Clone)]
pub struct PartState {
    out: PathBuf,
    part: PathBuf,
    meta: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct PartMeta {
    document_id: DocumentId,
    content_hash: ContentHash,
    size: u64,
    /// A whole-document download (only those are resumed; a range's part
    /// file is not a prefix of the document).
    #[serde(default)]
    full: bool,
}

impl PartState {
    /// The state files for output `out`.
    pub fn new(out: &Path) -> Self {
        let mut part = out.as_os_str().to_owned();
        part.push(".part");
        let mut meta = part.clone();
        meta.push(".json");
        PartState {
            out: out.to_path_buf(),
            part: PathBuf::from(part),
            meta: PathBuf::from(meta),
        }
    }

    /// The offset a download of `document_id` may resume from (0 when
    /// there is nothing to resume; a part of another document is discarded).
    pub fn resumable_offset(&self, document_id: DocumentId) -> u64 {
        let meta: Option<PartMeta> = fs::read(&self.meta)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let len = fs::metadata(&self.part).map(|m| m.len()).ok();
        match (meta, len) {
            (Some(meta), Some(len))
                if meta.full && meta.document_id == document_id && len <= meta.size =>
            {
                len / GROUP_SIZE * GROUP_SIZE
            }
            _ => {
                self.discard();
                0
            }
        }
    }

    /// Removes the `.part` and `.part.json` files.
    pub fn discard(&self) {
        let _ = fs::remove_file(&self.part);
        let _ = fs::remove_file(&self.meta);
    }

    /// Checks, before anything is fetched (or a grant use spent), that the
    /// download can land: the output is not a directory, and the `.part`
    /// file can be created beside it. Creates nothing that was not there.
    pub fn check_writable(&self) -> Result<(), ClientError> {
        if self.out.is_dir() {
            return Err(ClientError::local(
                ErrorCode::LocalIo,
                format!(
                    "{} is a directory; name the output file (e.g. {}); nothing was fetched",
                    self.out.display(),
                    self.out.join("document.pdf").display()
                ),
            ));
        }
        let existed = self.part.exists();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.part)
            .map_err(|e| {
                ClientError::local(
                    ErrorCode::LocalIo,
                    format!(
                        "cannot write {}: {e}; choose another output path; nothing was fetched",
                        self.part.display()
                    ),
                )
            })?;
        if !existed {
            let _ = fs::remove_file(&self.part);
        }
        Ok(())
    }

    /// Renames the completed `.part` into place. On failure the verified
    /// `.part` file is kept (the error names it).
    pub fn commit(&self) -> Result<(), ClientError> {
        fs::rename(&self.part, &self.out).map_err(|e| {
            ClientError::local(
                ErrorCode::LocalIo,
                format!(
                    "cannot move the download into {}: {e}; the verified bytes are kept in {}",
                    self.out.display(),
                    self.part.display()
                ),
            )
        })?;
        let _ = fs::remove_file(&self.meta);
        Ok(())
    }
}

/// Writes verified bytes into the `.part` file on a blocking thread.
pub struct FileSink {
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    writer: tokio::task::JoinHandle<std::io::Result<File>>,
    part: PathBuf,
}

impl FileSink {
    /// Opens the part file, truncated to `resume_from`.
    pub fn open(
        state: &PartState,
        document: &DocumentView,
        resume_from: u64,
        full: bool,
    ) -> Result<Self, ClientError> {
        let meta = PartMeta {
            document_id: document.document_id,
            content_hash: document.record.content_hash,
            size: document.record.size,
            full,
        };
        let meta = serde_json::to_vec(&meta).map_err(|e| io_error(&state.meta, e))?;
        fs::write(&state.meta, meta).map_err(|e| io_error(&state.meta, e))?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .read(true)
            .truncate(resume_from == 0)
            .open(&state.part)
            .map_err(|e| io_error(&state.part, e))?;
        file.set_len(resume_from)
            .map_err(|e| io_error(&state.part, e))?;
        let (tx, mut rx) = mpsc::channel::<(u64, Vec<u8>)>(WRITE_QUEUE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some((offset, bytes)) = rx.blocking_recv() {
                file.write_all_at(&bytes, offset)?;
            }
            Ok(file)
        });
        Ok(FileSink {
            tx,
            writer,
            part: state.part.clone(),
        })
    }

    /// Queues verified bytes for `offset`.
    pub async fn write(&self, offset: u64, bytes: Vec<u8>) -> Result<(), ClientError> {
        if self.tx.send((offset, bytes)).await.is_err() {
            return Err(ClientError::local(
                ErrorCode::LocalIo,
                format!("cannot write {}", self.part.display()),
            ));
        }
        Ok(())
    }

    /// Flushes and syncs the file; with `check`, re-hashes the whole file
    /// (used after a resumed download, whose prefix came from disk).
    pub async fn finish(self, check: Option<ContentHash>) -> Result<(), ClientError> {
        drop(self.tx);
        let part = self.part.clone();
        let file = self
            .writer
            .await
            .map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?
            .map_err(|e| io_error(&part, e))?;
        tokio::task::spawn_blocking(move || -> Result<(), ClientError> {
            file.sync_all().map_err(|e| io_error(&part, e))?;
            if let Some(expected) = check {
                let (actual, _) = hash_file(&part)?;
                if actual != expected {
                    return Err(ClientError::local(
                        ErrorCode::Integrity,
                        "the resumed download does not hash to the document's content hash",
                    ));
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
}

/// BLAKE3 of a file and its length, reading it once.
pub fn hash_file(path: &Path) -> Result<(ContentHash, u64), ClientError> {
    let local_io = |message: String| ClientError::local(ErrorCode::LocalIo, message);
    let mut file =
        File::open(path).map_err(|e| local_io(format!("cannot open {}: {e}", path.display())))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; FILE_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)
            .map_err(|e| local_io(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((ContentHash(*hasher.finalize().as_bytes()), size))
}

/// Reads until `buf` is full or the file ends; returns bytes read.
pub(crate) fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
