//! Download streaming: the header frame, then the pieces of the range (64-byte
//! pairs and 16 KiB groups, each group authenticated by AES-GCM as it is
//! read), batched into few network writes. Small transfers are read inline;
//! large ones on a blocking thread with a bounded queue.
//!
//! **Invariant:** a group that fails authentication is never sent: the
//! stream is reset with [`RESET_INTEGRITY`] instead.

use tokio::sync::mpsc;
use vault_client::tree::{self, GROUP_SIZE};
use vault_client::wire::{ByteRange, RESET_INTEGRITY, RESET_INTERNAL};
use vault_client::ErrorCode;

use crate::service::documents::Download;
use crate::storage::blobs::{BlobReader, TAG_LEN};
use crate::Refusal;

/// Bytes of pieces batched per network write on downloads.
const DOWNLOAD_BATCH_BYTES: usize = 256 * 1024;
/// Transfers up to this many bytes are read inline, without a thread hop.
const INLINE_TRANSFER_BYTES_MAX: u64 = 256 * 1024;
/// Download batches queued between the blob reader and the network.
const DOWNLOAD_QUEUE_DEPTH: usize = 4;

/// Reads and authenticates pieces and writes them; on a corrupt group,
/// resets the stream with [`RESET_INTEGRITY`] instead of sending it. Small
/// transfers are read inline; large ones on a blocking thread, in batches.
pub async fn send_download(download: Download, send: &mut quinn::SendStream) {
    let header = match vault_client::wire::encode_frame(&download.header) {
        Ok(header) => header,
        Err(e) => {
            let refusal = Refusal::new(ErrorCode::Internal, e.to_string());
            return stop_transfer(&refusal, send);
        }
    };
    let Download {
        reader,
        outboard,
        range,
        encoded_len,
        ..
    } = download;
    if encoded_len <= INLINE_TRANSFER_BYTES_MAX {
        // Header and pieces in one write: fewer packets for small documents.
        let header_len = header.len();
        let mut out = header;
        out.reserve(encoded_len as usize);
        let produced = produce_pieces(&reader, &outboard, range, &mut |batch| {
            out.extend_from_slice(&batch);
            true
        });
        match produced {
            Ok(()) => {
                let _ = send.write_all(&out).await;
            }
            Err(refusal) => {
                // The header first, so the client reads an integrity reset,
                // not a broken stream.
                let _ = send.write_all(&out[..header_len]).await;
                stop_transfer(&refusal, send)
            }
        }
        return;
    }
    if send.write_all(&header).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, Refusal>>(DOWNLOAD_QUEUE_DEPTH);
    tokio::task::spawn_blocking(move || {
        let produced = produce_pieces(&reader, &outboard, range, &mut |batch| {
            tx.blocking_send(Ok(batch)).is_ok()
        });
        if let Err(e) = produced {
            let _ = tx.blocking_send(Err(e));
        }
    });
    while let Some(batch) = rx.recv().await {
        match batch {
            Ok(bytes) => {
                if send.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Err(refusal) => return stop_transfer(&refusal, send),
        }
    }
}

fn stop_transfer(refusal: &Refusal, send: &mut quinn::SendStream) {
    tracing::error!(code = %refusal.code, "stopped a transfer");
    let code = if refusal.code == ErrorCode::Integrity {
        RESET_INTEGRITY
    } else {
        RESET_INTERNAL
    };
    let _ = send.reset(code.into());
}

/// Produces the pieces for `range` in batches of about
/// [`DOWNLOAD_BATCH_BYTES`]; `emit` returns false to stop early.
fn produce_pieces(
    reader: &BlobReader,
    outboard: &tree::Outboard,
    range: ByteRange,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), Refusal> {
    // Every group and the outboard are authenticated by AES-GCM under a key
    // only this node holds (the read-back check); the client verifies the
    // BLAKE3 tree against the issuer's signed hash.
    let plan = tree::plan(reader.size(), range.start..range.end).map_err(tree_refusal)?;
    let group_len = reader.size().min(GROUP_SIZE) as usize;
    let mut buf = vec![0u8; group_len + TAG_LEN];
    let batch_len = DOWNLOAD_BATCH_BYTES + GROUP_SIZE as usize;
    let mut batch = Vec::new();
    for piece in plan {
        let bytes: &[u8] = match piece {
            tree::Piece::Pair { index } => outboard
                .pair(index)
                .ok_or_else(|| Refusal::new(ErrorCode::Integrity, "outboard too short"))?,
            tree::Piece::Group { index, .. } => reader.read_group(index, &mut buf)?,
        };
        batch.extend_from_slice(bytes);
        if batch.len() >= DOWNLOAD_BATCH_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_len));
            if !emit(full) {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        emit(batch);
    }
    Ok(())
}

fn tree_refusal(e: tree::TreeError) -> Refusal {
    let code = if e.code().starts_with("integrity") {
        ErrorCode::Integrity
    } else {
        ErrorCode::InvalidArgument
    };
    Refusal::new(code, e.to_string())
}
