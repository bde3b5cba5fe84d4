//! Reading and writing `vault/1` frames on quinn streams: the thin async
//! layer over [`crate::wire`], shared by the client and the node, and the
//! one request-with-deadline exchange ([`exchange`], [`exchange_on`]) that
//! the client, replication and the Raft network all use.
//!
//! Part of the `net` feature. The frame format and its limits are
//! [`crate::wire`]'s; nothing here decides what a frame means.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::wire::{self, WireError, FRAME_PREFIX_LEN, RAFT_FRAME_LEN_MAX, RESPONSE_FRAME_LEN_MAX};

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

/// The frame limits of one exchange, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest request frame this side encodes.
    pub request_len_max: usize,
    /// Largest response frame this side accepts.
    pub response_len_max: usize,
}

impl FrameLimits {
    /// A client's request and a node's answer: both at most
    /// [`RESPONSE_FRAME_LEN_MAX`] (the node checks requests against its own,
    /// smaller, `FRAME_LEN_MAX`).
    pub const CLIENT: FrameLimits = FrameLimits {
        request_len_max: RESPONSE_FRAME_LEN_MAX,
        response_len_max: RESPONSE_FRAME_LEN_MAX,
    };
    /// A Raft RPC between nodes: requests up to [`RAFT_FRAME_LEN_MAX`],
    /// answers up to [`RESPONSE_FRAME_LEN_MAX`].
    pub const RAFT: FrameLimits = FrameLimits {
        request_len_max: RAFT_FRAME_LEN_MAX,
        response_len_max: RESPONSE_FRAME_LEN_MAX,
    };
}

/// Why a request-with-deadline exchange failed. The first two mean nothing
/// was sent; from then on the peer may have acted on the request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The request does not fit its frame limit (or does not serialise);
    /// nothing was sent.
    #[error(transparent)]
    Encode(WireError),
    /// No stream could be opened on the connection; nothing was sent.
    #[error(transparent)]
    Open(quinn::ConnectionError),
    /// No whole answer arrived within the deadline.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The stream failed or ended before a whole answer arrived.
    #[error("the stream ended before a whole frame arrived: {0}")]
    Stream(String),
    /// The peer reset the stream with this application code (e.g.
    /// [`wire::RESET_INTEGRITY`]).
    #[error("the peer reset the stream with code {0}")]
    Reset(u64),
    /// The answer was not a valid frame (too large, or not a message).
    #[error(transparent)]
    Frame(WireError),
}

impl ExchangeError {
    /// Whether the request certainly never left this side.
    pub fn not_sent(&self) -> bool {
        matches!(self, ExchangeError::Encode(_) | ExchangeError::Open(_))
    }
}

impl From<FrameError> for ExchangeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Wire(e) => ExchangeError::Frame(e),
            FrameError::Stream(e) => ExchangeError::Stream(e),
            FrameError::Reset(code) => ExchangeError::Reset(code),
        }
    }
}

/// One request-with-deadline exchange on a new bidirectional stream of
/// `connection`: opens it, writes `request` as one frame, finishes the
/// sending side, and reads one response frame. The whole exchange
/// (opening included) is bounded by `deadline`; `None` waits as long as
/// the connection lives (its idle timeout ends a dead peer's).
pub async fn exchange<Req, Resp>(
    connection: &quinn::Connection,
    request: &Req,
    limits: FrameLimits,
    deadline: Option<Duration>,
) -> Result<Resp, ExchangeError>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let frame =
        wire::encode_frame_max(request, limits.request_len_max).map_err(ExchangeError::Encode)?;
    let run = async {
        let (mut send, mut recv) = connection.open_bi().await.map_err(ExchangeError::Open)?;
        send_and_read(&mut send, &mut recv, &frame, limits.response_len_max).await
    };
    within(deadline, run).await
}

/// [`exchange`] on a stream pair the caller already opened (and keeps:
/// more bytes may follow the response on `recv`, as a blob after a
/// `BlobFollows`, or a transfer after a `Document`).
pub async fn exchange_on<Req, Resp>(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    request: &Req,
    limits: FrameLimits,
    deadline: Option<Duration>,
) -> Result<Resp, ExchangeError>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let frame =
        wire::encode_frame_max(request, limits.request_len_max).map_err(ExchangeError::Encode)?;
    within(
        deadline,
        send_and_read(send, recv, &frame, limits.response_len_max),
    )
    .await
}

async fn send_and_read<Resp: DeserializeOwned>(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    frame: &[u8],
    response_len_max: usize,
) -> Result<Resp, ExchangeError> {
    send.write_all(frame)
        .await
        .map_err(|e| ExchangeError::Stream(e.to_string()))?;
    send.finish()
        .map_err(|e| ExchangeError::Stream(e.to_string()))?;
    Ok(read_frame(recv, response_len_max).await?)
}

async fn within<T>(
    deadline: Option<Duration>,
    run: impl std::future::Future<Output = Result<T, ExchangeError>>,
) -> Result<T, ExchangeError> {
    match deadline {
        None => run.await,
        Some(deadline) => tokio::time::timeout(deadline, run)
            .await
            .map_err(|_| ExchangeError::Timeout(deadline))?,
    }
}
