//! Download streaming: the header frame, then the pieces of the range (64-byte
//! pairs and 16 KiB groups, each group authenticated by AES-GCM as it is
//! read), batched into few network writes. Small transfers are read inline;
//! large ones batch by batch in short blocking calls (the reader moved into
//! the call and back), the next batch read while the previous one is sent.
//!
//! **No thread waits on a peer:** every network write is async and bounded
//! by the idle and total [`Deadlines`]; a client that stops reading is cut
//! (stream reset) at the first deadline it misses. **Memory:** at most two
//! batches of about [`DOWNLOAD_BATCH_BYTES`] per download, beside the
//! outboard (whose bytes the caller reserved from the node's budget).
//!
//! **Invariant:** a group that fails authentication is never sent: the
//! stream is reset with [`RESET_INTEGRITY`] instead.

use vault_client::tree::{self, GROUP_SIZE};
use vault_client::wire::{RESET_INTEGRITY, RESET_INTERNAL};
use vault_client::ErrorCode;

use crate::replication::stream::Deadlines;
use crate::service::documents::Download;
use crate::storage::blobs::{BlobReader, TAG_LEN};
use crate::Refusal;

/// Bytes of pieces batched per network write on downloads.
const DOWNLOAD_BATCH_BYTES: usize = 256 * 1024;
/// Transfers up to this many bytes are read inline, without a thread hop.
const INLINE_TRANSFER_BYTES_MAX: u64 = 256 * 1024;

/// Reads and authenticates pieces and writes them within `deadlines`; on a
/// corrupt group, resets the stream with [`RESET_INTEGRITY`] instead of
/// sending it.
pub async fn send_download(download: Download, send: &mut quinn::SendStream, deadlines: Deadlines) {
    let Download {
        header,
        reader,
        outboard,
        range,
        encoded_len,
        ..
    } = download;
    let plan = match tree::plan(reader.size(), range.start..range.end) {
        Ok(plan) => plan,
        Err(e) => return stop_transfer(&tree_refusal(e), send),
    };
    let mut pieces = Pieces::new(reader, outboard, plan);
    if encoded_len <= INLINE_TRANSFER_BYTES_MAX {
        return send_inline(header, &mut pieces, encoded_len, send, &deadlines).await;
    }
    if !write(send, &header, &deadlines).await {
        return;
    }
    let mut pending = Some(tokio::task::spawn_blocking(move || pieces.step()));
    while let Some(handle) = pending.take() {
        let (pieces, batch) = match handle.await {
            Ok(done) => done,
            Err(e) => {
                return stop_transfer(&Refusal::new(ErrorCode::Internal, e.to_string()), send)
            }
        };
        match batch {
            Ok(Some(bytes)) => {
                pending = Some(tokio::task::spawn_blocking(move || pieces.step()));
                if !write(send, &bytes, &deadlines).await {
                    return;
                }
            }
            Ok(None) => return,
            Err(refusal) => return stop_transfer(&refusal, send),
        }
    }
}

/// Header and pieces in one write: fewer packets for small documents.
async fn send_inline(
    header: Vec<u8>,
    pieces: &mut Pieces,
    encoded_len: u64,
    send: &mut quinn::SendStream,
    deadlines: &Deadlines,
) {
    let header_len = header.len();
    let mut out = header;
    out.reserve(encoded_len as usize);
    loop {
        match pieces.next_batch() {
            Ok(Some(batch)) => out.extend_from_slice(&batch),
            Ok(None) => {
                write(send, &out, deadlines).await;
                return;
            }
            Err(refusal) => {
                // The header first, so the client reads an integrity reset,
                // not a broken stream.
                if write(send, &out[..header_len], deadlines).await {
                    stop_transfer(&refusal, send);
                }
                return;
            }
        }
    }
}

/// Writes `bytes` by the next deadline; false (the stream reset at a
/// missed deadline) when the transfer must stop.
async fn write(send: &mut quinn::SendStream, bytes: &[u8], deadlines: &Deadlines) -> bool {
    match deadlines.run("download", send.write_all(bytes)).await {
        Ok(Ok(())) => {
            crate::metrics::METRICS.add_bytes_out(bytes.len() as u64);
            true
        }
        Ok(Err(_)) => false,
        Err(refusal) => {
            tracing::warn!(code = %refusal.code, "cut a download: the client stopped reading");
            let _ = send.reset(RESET_INTERNAL.into());
            false
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

/// The pieces for a range, produced batch by batch.
struct Pieces {
    reader: BlobReader,
    outboard: tree::Outboard,
    plan: tree::Plan,
    buf: Vec<u8>,
}

type Step = (Pieces, Result<Option<Vec<u8>>, Refusal>);

impl Pieces {
    fn new(reader: BlobReader, outboard: tree::Outboard, plan: tree::Plan) -> Self {
        let group_len = reader.size().min(GROUP_SIZE) as usize;
        Pieces {
            reader,
            outboard,
            plan,
            buf: vec![0u8; group_len + TAG_LEN],
        }
    }

    /// One batch, in a blocking call: the pieces come back with it.
    fn step(mut self) -> Step {
        let batch = self.next_batch();
        (self, batch)
    }

    /// The next batch of about [`DOWNLOAD_BATCH_BYTES`]; `None` at the end.
    fn next_batch(&mut self) -> Result<Option<Vec<u8>>, Refusal> {
        // Every group and the outboard are authenticated by AES-GCM under a
        // key only this node holds (the read-back check); the client
        // verifies the BLAKE3 tree against the issuer's signed hash.
        let mut batch = Vec::with_capacity(DOWNLOAD_BATCH_BYTES + GROUP_SIZE as usize);
        while batch.len() < DOWNLOAD_BATCH_BYTES {
            let Some(piece) = self.plan.next() else {
                break;
            };
            let bytes: &[u8] = match piece {
                tree::Piece::Pair { index } => self
                    .outboard
                    .pair(index)
                    .ok_or_else(|| Refusal::new(ErrorCode::Integrity, "outboard too short"))?,
                tree::Piece::Group { index, .. } => self.reader.read_group(index, &mut self.buf)?,
            };
            batch.extend_from_slice(bytes);
        }
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }
}

fn tree_refusal(e: tree::TreeError) -> Refusal {
    let code = if e.code().starts_with("integrity") {
        ErrorCode::Integrity
    } else {
        ErrorCode::InvalidArgument
    };
    Refusal::new(code, e.to_string())
}
