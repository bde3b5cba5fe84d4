//! The `vault/1` wire protocol: frame codec and message types, with every
//! peer-controlled length bounded by a named maximum beside the type.
//!
//! This module does no I/O: it turns messages into bytes and bytes into
//! messages. The async layer (`client`, and the node's server) drives it.
//!
//! One request per bidirectional QUIC stream. Both directions start with one
//! *frame*: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
//! holding a [`Request`] or a [`Response`]. What follows a frame is raw data
//! whose length the frame announced (an upload body, or the pieces of a
//! verified transfer, see [`crate::tree`]). `docs/PROTOCOL.md` draws it.

use std::fmt;

use pki::{ContentHash, DocumentKind, IssueRecord, Name, ResidentId, Signature};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// Largest frame (JSON header) a peer may send, in bytes.
pub const FRAME_LEN_MAX: usize = 64 * 1024;
/// Length of the frame length prefix, in bytes.
pub const FRAME_PREFIX_LEN: usize = 4;
/// Largest document the vault accepts, in bytes (4 GiB).
pub const DOCUMENT_SIZE_MAX: u64 = 4 << 30;
/// Most documents one `list` response carries.
pub const LIST_LEN_MAX: usize = 200;
/// Stream reset code: the node found stored bytes corrupt mid-transfer and
/// stopped before sending them.
pub const RESET_INTEGRITY: u32 = 1;
/// Stream reset code: the node failed internally mid-transfer.
pub const RESET_INTERNAL: u32 = 2;
/// Largest DER certificate carried in a response, in bytes.
pub const CERT_LEN_MAX: usize = 8 * 1024;

/// A document's identifier: 16 bytes, shown as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// Length of the identifier in bytes.
    pub const LEN: usize = 16;

    /// Derives the id from the signed issue record, so a retried `put` of the
    /// same signed record names the same document (idempotent).
    pub fn derive(record: &IssueRecord, signature: &Signature) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("vault/document-id/v1");
        hasher.update(&record.canonical_bytes());
        hasher.update(&signature.0);
        let mut id = [0u8; Self::LEN];
        id.copy_from_slice(&hasher.finalize().as_bytes()[..Self::LEN]);
        DocumentId(id)
    }

    /// Parses 32 lowercase or uppercase hex characters.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let mut id = [0u8; Self::LEN];
        hex::decode_to_slice(text, &mut id).map_err(|_| WireError::BadDocumentId)?;
        Ok(DocumentId(id))
    }

    /// The raw bytes (used as a storage key).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Builds an id from raw storage bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        DocumentId(bytes)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl std::str::FromStr for DocumentId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DocumentId {
    type Error = WireError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DocumentId> for String {
    fn from(id: DocumentId) -> String {
        id.to_string()
    }
}

/// A request, the first frame a client writes on a new stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Put a document: the issuer's signed record. If the node answers
    /// [`Response::SendBody`] with `send: true`, exactly `record.size` bytes of
    /// body follow, then the client finishes its side of the stream.
    Put {
        /// What the issuing department signed.
        record: IssueRecord,
        /// The department's signature over `record.canonical_bytes()`.
        signature: Signature,
    },
    /// Fetch a document, or a byte range of it, as verified pieces.
    Get {
        /// Which document.
        document_id: DocumentId,
        /// Byte range `[start, end)`; the whole document when absent.
        range: Option<ByteRange>,
    },
    /// List the documents of a resident that the caller may see.
    List {
        /// Whose documents.
        resident: ResidentId,
    },
}

/// A half-open byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// A response, the first frame a node writes on a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Answer to a `Put`: whether the body must be sent (`false` when the
    /// node already holds a blob with this content hash).
    SendBody {
        /// Send the body?
        send: bool,
    },
    /// The document is stored and its record committed.
    Stored {
        /// The stored document.
        document: DocumentView,
        /// The blob was already stored before this put.
        deduplicated: bool,
    },
    /// Answer to a `Get`: the document's metadata, then `encoded_len` bytes
    /// of verified-streaming pieces for `range`.
    Document {
        /// The document's metadata.
        document: DocumentView,
        /// The range the pieces cover.
        range: ByteRange,
        /// Total bytes of pieces that follow this frame.
        encoded_len: u64,
    },
    /// Answer to a `List`.
    Documents {
        /// The documents, newest first, at most [`LIST_LEN_MAX`].
        documents: Vec<DocumentView>,
    },
    /// The request was refused or failed.
    Error(ErrorBody),
}

/// A refusal or failure with a stable code and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `auth.forbidden`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// A document as the node describes it to a caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentView {
    /// The document's id.
    pub document_id: DocumentId,
    /// The record the issuer signed (resident, kind, hash, size, time, issuer).
    pub record: IssueRecord,
    /// The issuer's signature over the record.
    pub signature: Signature,
    /// The issuer's certificate (DER, hex on the wire), so a caller can
    /// check provenance against the district CA.
    #[serde(with = "hex_bytes")]
    pub issuer_cert: Vec<u8>,
}

impl DocumentView {
    /// The content hash of the document.
    pub fn content_hash(&self) -> ContentHash {
        self.record.content_hash
    }

    /// The kind of document.
    pub fn kind(&self) -> &DocumentKind {
        &self.record.kind
    }

    /// The issuing department.
    pub fn issuer(&self) -> &Name {
        &self.record.issuer
    }
}

/// A wire decoding failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The frame's length prefix exceeds [`FRAME_LEN_MAX`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A document id that is not 32 hex characters.
    #[error("a document id is 32 hexadecimal characters")]
    BadDocumentId,
}

impl WireError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            WireError::Malformed(_) => ErrorCode::FrameMalformed,
            WireError::BadDocumentId => ErrorCode::BadDocumentId,
        }
    }
}

/// Encodes a message as one frame: length prefix and JSON.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let body = serde_json::to_vec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > FRAME_LEN_MAX {
        return Err(WireError::FrameTooLarge {
            len: body.len(),
            max: FRAME_LEN_MAX,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge {
        len: body.len(),
        max: FRAME_LEN_MAX,
    })?;
    let mut frame = Vec::with_capacity(FRAME_PREFIX_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads a frame's length prefix and checks it against [`FRAME_LEN_MAX`].
pub fn decode_frame_len(prefix: [u8; FRAME_PREFIX_LEN]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > FRAME_LEN_MAX {
        return Err(WireError::FrameTooLarge {
            len,
            max: FRAME_LEN_MAX,
        });
    }
    Ok(len)
}

/// Decodes a frame body (without its prefix) into a message.
pub fn decode_frame_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > 2 * super::CERT_LEN_MAX {
            return Err(serde::de::Error::custom("certificate too large"));
        }
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_round_trip() {
        let request = Request::Get {
            document_id: DocumentId::from_bytes([7; 16]),
            range: Some(ByteRange { start: 1, end: 9 }),
        };
        let frame = encode_frame(&request).unwrap();
        let len = decode_frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        let back: Request = decode_frame_body(&frame[4..]).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn oversized_prefix_is_refused() {
        let prefix = ((FRAME_LEN_MAX + 1) as u32).to_be_bytes();
        assert_eq!(
            decode_frame_len(prefix).unwrap_err().code(),
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        let err = decode_frame_body::<Request>(br#"{"type":"get","document_id":"00000000000000000000000000000000","range":null,"x":1}"#)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::FrameMalformed);
        assert!(decode_frame_body::<Request>(br#"{"type":"delete_everything"}"#).is_err());
        assert!(decode_frame_body::<Request>(
            br#"{"type":"get","document_id":"xyz","range":null}"#
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame_body::<Request>(&bytes);
            let _ = decode_frame_body::<Response>(&bytes);
        }

        #[test]
        fn document_id_round_trips(bytes in any::<[u8; 16]>()) {
            let id = DocumentId::from_bytes(bytes);
            prop_assert_eq!(DocumentId::parse(&id.to_string()).unwrap(), id);
        }
    }
}
