//! Reading and writing `vault/1` frames on quinn streams: the thin async
//! layer over [`crate::wire`], shared by the client and the node.

use serde::{Deserialize, Serialize};

use crate::wire::{self, WireError, FRAME_PREFIX_LEN};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The stream ended or failed before a whole frame arrived.
    #[error("the stream ended before a whole frame arrived: {0}")]
    Stream(String),
    /// The peer reset the stream with this application code.
    #[error("the peer reset the stream with code {0}")]
    Reset(u64),
}

fn read_error(e: quinn::ReadExactError) -> FrameError {
    match e {
        quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code)) => {
            FrameError::Reset(code.into_inner())
        }
        other => FrameError::Stream(other.to_string()),
    }
}

/// Reads one frame of at most `max` bytes and decodes its message.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    recv.read_exact(&mut prefix).await.map_err(read_error)?;
    let len = wire::decode_frame_len(prefix, max)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(read_error)?;
    Ok(wire::decode_frame_body(&body)?)
}

/// Reads one frame's length prefix and checks it against `max`; the body
/// (that many bytes) follows on the stream, see [`read_frame_body`].
pub async fn read_frame_len(recv: &mut quinn::RecvStream, max: usize) -> Result<usize, FrameError> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    recv.read_exact(&mut prefix).await.map_err(read_error)?;
    Ok(wire::decode_frame_len(prefix, max)?)
}

/// Reads a frame body of `len` bytes (from [`read_frame_len`]) and decodes
/// its message.
pub async fn read_frame_body<T: for<'de> Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
    len: usize,
) -> Result<T, FrameError> {
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(read_error)?;
    Ok(wire::decode_frame_body(&body)?)
}

/// Encodes and writes one frame.
pub async fn write_frame<T: Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), FrameError> {
    let frame = wire::encode_frame(message)?;
    send.write_all(&frame)
        .await
        .map_err(|e| FrameError::Stream(e.to_string()))
}
