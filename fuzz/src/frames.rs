//! Frames: requests as a node reads them, responses as a client reads
//! them, the incremental decoder over any split, and a node's status.

use serde::de::DeserializeOwned;
use serde::Serialize;
use vault_client::wire::{
    decode_frame, encode_frame_max, FrameStatus, NodeStatus, Request, Response, WireError,
    FRAME_LEN_MAX, FRAME_PREFIX_LEN, RAFT_FRAME_LEN_MAX, RESPONSE_FRAME_LEN_MAX,
};

/// A request frame (length prefix and JSON) as a node reads it, under
/// both limits a node applies ([`FRAME_LEN_MAX`], and
/// [`RAFT_FRAME_LEN_MAX`] for Raft RPCs): a decoded request encodes and
/// decodes to itself.
pub fn request_frame(data: &[u8]) {
    frame_round_trip::<Request>(data, FRAME_LEN_MAX);
    frame_round_trip::<Request>(data, RAFT_FRAME_LEN_MAX);
}

/// A response frame as a client reads it ([`RESPONSE_FRAME_LEN_MAX`]): a
/// decoded response encodes and decodes to itself.
pub fn response_frame(data: &[u8]) {
    frame_round_trip::<Response>(data, RESPONSE_FRAME_LEN_MAX);
}

/// A node's status (`vault-node status`, the `status` response's body):
/// the JSON parses or is refused, and a parsed one round-trips, alone and
/// inside its frame.
pub fn node_status(data: &[u8]) {
    let Ok(status) = serde_json::from_slice::<NodeStatus>(data) else {
        return;
    };
    crate::json_round_trip(&status);
    let frame = encode_frame_max(&Response::Status { status }, RAFT_FRAME_LEN_MAX).unwrap();
    frame_round_trip::<Response>(&frame, RAFT_FRAME_LEN_MAX);
}

/// The incremental decoder (`decode_frame`) fed a stream of frames in
/// chunks of the size the first byte gives, as a QUIC stream delivers
/// them: at every prefix its answer agrees with its answer on the whole
/// buffer (`NeedMore` with exactly the bytes still missing, the same frame
/// once it is complete, `frame.too_large` as soon as the prefix is), and
/// the frames it finds are the ones decoding frame by frame finds.
pub fn frame_decoder(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    // An odd first byte: a small limit, so refusals of the prefix happen.
    let max = if first & 0x80 == 0 { FRAME_LEN_MAX } else { 64 };
    let mut start = 0;
    while start < rest.len() {
        let stream = &rest[start..];
        let whole = decode_frame::<Request>(stream, max);
        let mut seen = 0;
        while seen < stream.len() {
            seen = (seen + chunk).min(stream.len());
            if check_prefix(&stream[..seen], stream.len(), max, &whole) {
                break;
            }
        }
        match whole {
            Ok(FrameStatus::Frame { consumed, .. }) => start += consumed,
            _ => break,
        }
    }
}

/// `decode_frame` on `prefix` (the first bytes of a buffer of `full`
/// bytes) must agree with `whole`, its answer on the whole buffer. True
/// once the decision is made (longer prefixes decide the same).
fn check_prefix(
    prefix: &[u8],
    full: usize,
    max: usize,
    whole: &Result<FrameStatus<Request>, WireError>,
) -> bool {
    let got = decode_frame::<Request>(prefix, max);
    if prefix.len() < FRAME_PREFIX_LEN {
        let needed = FRAME_PREFIX_LEN - prefix.len();
        assert_eq!(got, Ok(FrameStatus::NeedMore { needed }));
        return false;
    }
    let len = u32::from_be_bytes(prefix[..4].try_into().unwrap()) as usize;
    let end = FRAME_PREFIX_LEN + len;
    match whole {
        Err(WireError::FrameTooLarge { .. }) => assert_eq!(&got, whole),
        _ if prefix.len() < end => {
            let needed = end - prefix.len();
            assert_eq!(got, Ok(FrameStatus::NeedMore { needed }));
            assert!(len <= max, "a body is awaited only within the limit");
            if let Ok(FrameStatus::NeedMore { needed }) = whole {
                assert_eq!(full + needed, end, "the whole buffer lacks the rest");
            }
            return false;
        }
        _ => assert_eq!(&got, whole, "a complete frame decodes the same"),
    }
    true
}

/// Decodes `data` as one frame under `max`; a decoded message must encode
/// to a frame that decodes to it again, and the bytes after the frame are
/// left alone.
fn frame_round_trip<T>(data: &[u8], max: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (message, consumed) = match decode_frame::<T>(data, max) {
        Ok(FrameStatus::Frame { message, consumed }) => (message, consumed),
        Ok(FrameStatus::NeedMore { needed }) => {
            assert!(needed > 0, "NeedMore asks for at least one byte");
            return;
        }
        Err(e) => {
            let _ = e.code();
            return;
        }
    };
    assert!(consumed <= data.len());
    // Re-encoding may be longer (defaults written out): the largest limit.
    let frame = encode_frame_max(&message, RAFT_FRAME_LEN_MAX).expect("a decoded message encodes");
    match decode_frame::<T>(&frame, RAFT_FRAME_LEN_MAX) {
        Ok(FrameStatus::Frame {
            message: again,
            consumed,
        }) => {
            assert_eq!(consumed, frame.len());
            assert_eq!(again, message, "the frame round trip changed the message");
        }
        other => panic!("a frame we encoded does not decode: {other:?}"),
    }
}
