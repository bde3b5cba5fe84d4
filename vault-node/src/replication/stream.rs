//! Blob bytes between a QUIC stream and the blob store, with bounded
//! queues and the blocking file work on blocking threads: an upload or a
//! pushed copy into the store ([`receive_blob`]), a copy's plaintext out to a
//! member ([`send_plain`]).
//!
//! **Memory:** at most [`UPLOAD_QUEUE_DEPTH`] chunks of
//! [`UPLOAD_READ_BYTES`] in, [`SEND_QUEUE_DEPTH`] batches of
//! [`SEND_BATCH_BYTES`] out, whatever the blob's size.

use std::sync::Arc;

use tokio::sync::mpsc;
use vault_client::tree::{self, GROUP_SIZE};
use vault_client::ErrorCode;

use crate::storage::blobs::{BlobReader, TAG_LEN};
use crate::storage::vault::Vault;
use crate::Refusal;

/// Upload chunks queued between the network and the blob writer.
pub const UPLOAD_QUEUE_DEPTH: usize = 16;
/// Largest chunk read from an upload stream at once, in bytes.
pub const UPLOAD_READ_BYTES: usize = 256 * 1024;
/// Plaintext bytes per network write when sending a blob to a node.
pub const SEND_BATCH_BYTES: usize = 256 * 1024;
/// Batches queued between the blob reader and the network.
pub const SEND_QUEUE_DEPTH: usize = 4;

/// Streams exactly `size` bytes from `recv` into the blob store on a
/// blocking thread; returns whether the blob is new on this node.
pub async fn receive_blob(
    vault: &Arc<Vault>,
    hash: pki::ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
) -> Result<bool, Refusal> {
    let writer = vault.blobs().writer(hash, size)?;
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(UPLOAD_QUEUE_DEPTH);
    let worker = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write(&chunk)?;
        }
        writer.finish()
    });
    let mut received = 0u64;
    let outcome = loop {
        match recv.read_chunk(UPLOAD_READ_BYTES, true).await {
            Ok(Some(chunk)) => {
                received += chunk.bytes.len() as u64;
                if received > size {
                    break Err(Refusal::new(
                        ErrorCode::Oversized,
                        format!("the upload carried more than the announced {size} bytes; nothing was stored"),
                    ));
                }
                if tx.send(chunk.bytes).await.is_err() {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => {
                break Err(Refusal::new(
                    ErrorCode::Truncated,
                    format!(
                    "the upload stopped after {received} of {size} bytes ({e}); nothing was stored"
                ),
                ))
            }
        }
    };
    drop(tx);
    let finished = worker
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    // A network failure wins over what the writer says about a short body.
    outcome?;
    Ok(finished?)
}

/// Streams the blob's authenticated plaintext to `send`, read on a
/// blocking thread in batches.
pub async fn send_plain(reader: BlobReader, send: &mut quinn::SendStream) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, String>>(SEND_QUEUE_DEPTH);
    tokio::task::spawn_blocking(move || {
        let size = reader.size();
        let mut buf = vec![0u8; size.min(GROUP_SIZE) as usize + TAG_LEN];
        let mut batch = Vec::with_capacity(SEND_BATCH_BYTES + GROUP_SIZE as usize);
        for index in 0..tree::group_count(size) {
            match reader.read_group(index, &mut buf) {
                Ok(plain) => batch.extend_from_slice(plain),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            }
            if batch.len() >= SEND_BATCH_BYTES {
                let full = std::mem::take(&mut batch);
                if tx.blocking_send(Ok(full)).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Ok(batch));
        }
    });
    while let Some(batch) = rx.recv().await {
        send.write_all(&batch?).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
