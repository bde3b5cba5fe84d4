//! Blob bytes between a QUIC stream and the blob store: an upload or a
//! pushed copy into the store ([`receive_blob`], [`receive_blob_within`]), a
//! copy's plaintext out to a member ([`send_plain`]).
//!
//! **No thread waits on a peer:** the network side is async, with an idle
//! and a total deadline on every read; the file work runs in short
//! blocking calls, one per batch of about [`UPLOAD_BATCH_BYTES`], the
//! writer or reader moved into the call and back. One batch is written (or
//! read) while the next is received (or sent).
//!
//! **Memory:** at most two batches per stream, whatever the blob's size.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vault_client::tree::{self, GROUP_SIZE};
use vault_client::ErrorCode;

use crate::rules::limits::{self, Limits};
use crate::storage::blobs::{BlobError, BlobReader, BlobWriter, TAG_LEN};
use crate::storage::vault::Vault;
use crate::Refusal;

/// Largest chunk read from an upload stream at once, in bytes.
pub const UPLOAD_READ_BYTES: usize = 256 * 1024;
/// Bytes received before they are handed to the blob writer in one
/// blocking call.
pub const UPLOAD_BATCH_BYTES: usize = 256 * 1024;
/// Plaintext bytes per network write when sending a blob to a node.
pub const SEND_BATCH_BYTES: usize = 256 * 1024;

/// When a stream's next byte is due: within the idle deadline, and never
/// after the total deadline. `idle` says which one it is.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Longest silence.
    pub idle: Duration,
    /// When the whole transfer must be over.
    pub end: Instant,
}

impl Deadlines {
    /// The deadlines for moving `size` bytes under `limits`, from now.
    pub fn for_size(limits: &Limits, size: u64) -> Self {
        Deadlines {
            idle: limits.idle(),
            end: Instant::now() + limits.deadline(size),
        }
    }

    /// When the next step must be done, and whether that is the idle
    /// deadline (rather than the total one).
    pub fn next(&self) -> (Instant, bool) {
        let idle = Instant::now() + self.idle;
        if idle < self.end {
            (idle, true)
        } else {
            (self.end, false)
        }
    }

    /// Runs `step` by the next deadline; `limit.deadline` for `what` if it
    /// is not done by then.
    pub async fn run<T>(
        &self,
        what: &str,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, Refusal> {
        let (at, idle) = self.next();
        tokio::time::timeout_at(at, step)
            .await
            .map_err(|_| limits::deadline_passed(what, idle))
    }
}

/// Streams exactly `size` bytes from `recv` into the blob store, within
/// the default limits' deadlines (blob copies between nodes); returns
/// whether the blob is new on this node.
pub async fn receive_blob(
    vault: &Arc<Vault>,
    hash: pki::ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
) -> Result<bool, Refusal> {
    let deadlines = Deadlines::for_size(&Limits::default(), size);
    receive_blob_within(vault, hash, size, recv, deadlines).await
}

/// Streams exactly `size` bytes from `recv` into the blob store, cut with
/// `limit.deadline` when the peer is silent for the idle deadline or the
/// total deadline passes (the temporary file is then removed); returns
/// whether the blob is new on this node.
pub async fn receive_blob_within(
    vault: &Arc<Vault>,
    hash: pki::ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
    deadlines: Deadlines,
) -> Result<bool, Refusal> {
    let mut writer = Some(vault.blobs().writer(hash, size)?);
    let mut pending: Option<tokio::task::JoinHandle<WriteDone>> = None;
    let mut received = 0u64;
    loop {
        let (batch, ended) = match read_batch(recv, size, &mut received, &deadlines).await {
            Ok(read) => read,
            Err(refusal) => {
                // Let the write in flight end and drop its writer (which
                // removes the temporary file) before the refusal is
                // answered: a refused upload leaves nothing behind.
                if let Some(handle) = pending.take() {
                    let _ = handle.await;
                }
                return Err(refusal);
            }
        };
        if let Some(handle) = pending.take() {
            writer = Some(joined(handle).await?);
        }
        let Some(w) = writer.take() else {
            return Err(Refusal::new(
                ErrorCode::Internal,
                "the blob writer was lost",
            ));
        };
        if ended {
            let mut w = w;
            return tokio::task::spawn_blocking(move || {
                w.write(&batch)?;
                w.finish()
            })
            .await
            .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
            .map_err(Refusal::from);
        }
        pending = Some(tokio::task::spawn_blocking(move || {
            let mut w = w;
            let result = w.write(&batch);
            (w, result)
        }));
    }
}

type WriteDone = (BlobWriter, Result<(), BlobError>);

async fn joined(handle: tokio::task::JoinHandle<WriteDone>) -> Result<BlobWriter, Refusal> {
    let (writer, result) = handle
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    result?;
    Ok(writer)
}

/// Reads up to [`UPLOAD_BATCH_BYTES`] (fewer at the end of the body);
/// answers the bytes and whether the body ended.
async fn read_batch(
    recv: &mut quinn::RecvStream,
    size: u64,
    received: &mut u64,
    deadlines: &Deadlines,
) -> Result<(Vec<u8>, bool), Refusal> {
    let mut batch = Vec::new();
    while batch.len() < UPLOAD_BATCH_BYTES {
        let chunk = deadlines
            .run("upload", recv.read_chunk(UPLOAD_READ_BYTES, true))
            .await?;
        match chunk {
            Ok(Some(chunk)) => {
                crate::metrics::METRICS.add_bytes_in(chunk.bytes.len() as u64);
                *received = received.saturating_add(chunk.bytes.len() as u64);
                if *received > size {
                    return Err(Refusal::new(
                        ErrorCode::Oversized,
                        format!("the upload carried more than the announced {size} bytes; nothing was stored"),
                    ));
                }
                batch.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return Ok((batch, true)),
            Err(e) => {
                return Err(Refusal::new(
                    ErrorCode::Truncated,
                    format!(
                    "the upload stopped after {received} of {size} bytes ({e}); nothing was stored"
                ),
                ))
            }
        }
    }
    Ok((batch, false))
}

/// Streams the blob's authenticated plaintext to `send`, each batch read
/// in a short blocking call while the previous one is sent.
pub async fn send_plain(reader: BlobReader, send: &mut quinn::SendStream) -> Result<(), String> {
    let mut source = PlainBatches {
        reader,
        next_group: 0,
    };
    let deadlines = Deadlines::for_size(&Limits::default(), source.reader.size());
    let mut pending = Some(tokio::task::spawn_blocking(move || {
        let batch = source.next_batch();
        (source, batch)
    }));
    while let Some(handle) = pending.take() {
        let (mut source, batch) = handle.await.map_err(|e| e.to_string())?;
        let Some(batch) = batch? else {
            return Ok(());
        };
        pending = Some(tokio::task::spawn_blocking(move || {
            let batch = source.next_batch();
            (source, batch)
        }));
        deadlines
            .run("blob copy", send.write_all(&batch))
            .await
            .map_err(|e| e.message)?
            .map_err(|e| e.to_string())?;
        crate::metrics::METRICS.add_bytes_out(batch.len() as u64);
    }
    Ok(())
}

/// A blob's plaintext, batch by batch.
struct PlainBatches {
    reader: BlobReader,
    next_group: u64,
}

impl PlainBatches {
    /// The next batch of about [`SEND_BATCH_BYTES`], `None` at the end.
    fn next_batch(&mut self) -> Result<Option<Vec<u8>>, String> {
        let size = self.reader.size();
        let groups = tree::group_count(size);
        if self.next_group >= groups {
            return Ok(None);
        }
        let mut buf = vec![0u8; size.min(GROUP_SIZE) as usize + TAG_LEN];
        let mut batch = Vec::with_capacity(SEND_BATCH_BYTES + GROUP_SIZE as usize);
        while self.next_group < groups && batch.len() < SEND_BATCH_BYTES {
            let plain = self
                .reader
                .read_group(self.next_group, &mut buf)
                .map_err(|e| e.to_string())?;
            batch.extend_from_slice(plain);
            self.next_group += 1;
        }
        Ok(Some(batch))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_idle_deadline_cuts_a_silent_step_and_the_total_one_caps_it() {
        let deadlines = Deadlines {
            idle: Duration::from_millis(50),
            end: Instant::now() + Duration::from_secs(60),
        };
        assert!(deadlines.next().1, "the idle deadline comes first");
        let silent = deadlines.run("upload", std::future::pending::<()>()).await;
        let refusal = silent.unwrap_err();
        assert_eq!(refusal.code, ErrorCode::LimitDeadline);
        assert!(refusal.message.contains("nothing moved"));
        let ending = Deadlines {
            idle: Duration::from_secs(60),
            end: Instant::now() + Duration::from_millis(50),
        };
        assert!(!ending.next().1, "the total deadline comes first");
        let refusal = ending
            .run("upload", std::future::pending::<()>())
            .await
            .unwrap_err();
        assert!(refusal.message.contains("total deadline"));
        assert_eq!(ending.run("upload", async { 7 }).await.unwrap(), 7);
    }
}
