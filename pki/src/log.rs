//! The transparency log's statement formats: log entries (canonical,
//! versioned bytes; leaves carry commitments, not personal data), the
//! detail records beside them, resident tags, and checkpoints as C2SP
//! signed notes (Ed25519).
//!
//! The Merkle tree math (RFC 6962, SHA-256) lives in `vault-client::merkle`;
//! storage and sequencing in the node's state machine.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::cert::Role;
use crate::error::PkiError;
use crate::identity::{verify_signature, Signature};
use crate::ids::{DocumentId, GrantId, RequestId, ResidentId};
use crate::log_key::{LogSigner, LogVerifier};

/// Domain tag that starts a log entry's canonical bytes, version 1 (an
/// entry that lists no documents).
pub const LOG_ENTRY_TAG_V1: &[u8] = b"vault/log-entry/v1\n";
/// Domain tag of version 2: version 1's fields, then the grant's document
/// ids (a `grant_issued` entry's scope).
pub const LOG_ENTRY_TAG_V2: &[u8] = b"vault/log-entry/v2\n";
/// Domain tag of version 3: version 2's fields with the document count
/// possibly 0, then `prev` (u64 BE): the link to the previous entry with
/// the same resident tag (its index + 1, or 0 for the tag's first).
pub const LOG_ENTRY_TAG_V3: &[u8] = b"vault/log-entry/v3\n";
/// Longest canonical log entry accepted, in bytes: a version 2 entry of a
/// grant of [`LOG_ENTRY_DOCUMENTS_MAX`] documents is at most
/// 124 + 64 (actor) + 64 (code) + 1 + 64 × 16 = 1 277 bytes, a version 3
/// one 8 bytes more.
pub const LOG_ENTRY_LEN_MAX: usize = 2048;
/// Most document ids one entry lists (a grant's most documents).
pub const LOG_ENTRY_DOCUMENTS_MAX: usize = crate::grants::GRANT_DOCUMENTS_MAX;
/// Longest signed note accepted, in bytes.
pub const NOTE_LEN_MAX: usize = 4096;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogEvent {
    /// A department put a document.
    DocumentIssued = 1,
    /// A department asked for a resident's documents.
    RequestMade = 2,
    /// The resident approved a request.
    Approval = 3,
    /// The resident denied a request.
    Denial = 4,
    /// The node sealed a grant.
    GrantIssued = 5,
    /// Someone fetched a document (with the grant and use number if any).
    Fetch = 6,
    /// A request was refused (with its code).
    Refusal = 7,
    /// A grant was revoked or given up.
    Revoke = 8,
    /// A certificate was revoked by the district CA.
    CertificateRevoked = 9,
    /// A department filed a statutory order (sealed: no resident tag).
    OrderFiled = 10,
    /// An authority (or, where the purpose needs none, the ordering
    /// department) approved a statutory order (sealed).
    OrderApproved = 11,
    /// An authority denied a statutory order (sealed).
    OrderDenied = 12,
    /// An authority extended an order's seal (sealed).
    SealExtended = 13,
    /// The node disclosed a statutory order to its resident once its seal
    /// ended: carries the resident's tag and the count of sealed entries.
    OrderDisclosed = 14,
}

impl LogEvent {
    fn from_u8(value: u8) -> Option<Self> {
        use LogEvent::*;
        [
            DocumentIssued,
            RequestMade,
            Approval,
            Denial,
            GrantIssued,
            Fetch,
            Refusal,
            Revoke,
            CertificateRevoked,
            OrderFiled,
            OrderApproved,
            OrderDenied,
            SealExtended,
            OrderDisclosed,
        ]
        .into_iter()
        .find(|e| *e as u8 == value)
    }
}

/// One leaf of the log. Public: holds ids, times and commitments; the
/// resident appears only as a salted tag, details only as a commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// What happened.
    pub event: LogEvent,
    /// When, unix seconds.
    pub time: i64,
    /// Who acted: role.
    pub actor_role: Role,
    /// Who acted: name (a department, node, auditor, or "resident").
    pub actor: String,
    /// The resident's tag ([`resident_tag`]), all zeros when none.
    #[serde(with = "crate::serde_hex::array")]
    pub resident_tag: [u8; 32],
    /// The document concerned, if any.
    pub document_id: Option<DocumentId>,
    /// The request concerned, if any.
    pub request_id: Option<RequestId>,
    /// The grant concerned, if any.
    pub grant_id: Option<GrantId>,
    /// For a fetch under a grant: which use (from 1); else 0.
    pub use_number: u32,
    /// For a refusal: the stable code; else empty.
    pub code: String,
    /// For a grant: valid from; else 0.
    pub not_before: i64,
    /// For a grant: valid until; else 0.
    pub not_after: i64,
    /// For a grant: uses allowed; else 0.
    pub max_uses: u32,
    /// Commitment to the detail record: SHA-256 of its bytes and nonce.
    #[serde(with = "crate::serde_hex::array")]
    pub commitment: [u8; 32],
    /// For a `grant_issued` entry: the grant's documents (its scope),
    /// sorted by id without duplicates; else empty. Non-empty makes the
    /// entry version 2; an empty list is written as version 1, so every
    /// entry written before version 2 existed keeps its bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<DocumentId>,
    /// The chain link of an entry with a resident tag: (index of the
    /// previous entry with the same tag) + 1, or 0 for the tag's first.
    /// `Some` makes the entry version 3 (every tagged entry a node writes
    /// since version 3); `None` keeps version 1 or 2 and their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
}

impl LogEntry {
    /// An entry of `event` at `time` by `actor`, with every other field
    /// empty (no resident tag, ids, counts or code; a zero commitment):
    /// the base the other fields are set on.
    pub fn new(event: LogEvent, time: i64, actor_role: Role, actor: &str) -> Self {
        LogEntry {
            event,
            time,
            actor_role,
            actor: actor.to_string(),
            resident_tag: [0; 32],
            document_id: None,
            request_id: None,
            grant_id: None,
            use_number: 0,
            code: String::new(),
            not_before: 0,
            not_after: 0,
            max_uses: 0,
            commitment: [0; 32],
            documents: Vec::new(),
            prev: None,
        }
    }

    /// The entry's version: 3 with a chain link, else 2 with documents,
    /// else 1.
    pub fn version(&self) -> u8 {
        if self.prev.is_some() {
            3
        } else if self.documents.is_empty() {
            1
        } else {
            2
        }
    }

    /// Canonical bytes: tag; event u8; time i64 BE; actor role u8 (1 node, 2 department,
    /// 3 auditor, 4 resident, 5 authority); actor (u16 BE len + UTF-8); resident tag [32]; three optional
    /// ids (u8 0/1 then 16 bytes); use_number u32 BE; code (u16 len + UTF-8); not_before,
    /// not_after i64 BE; max_uses u32 BE; commitment [32]. Version 2 (tag
    /// [`LOG_ENTRY_TAG_V2`], only when `documents` is not empty) then adds
    /// a count u8 (1..=64) and that many 16-byte document ids, ascending.
    /// Version 3 (tag [`LOG_ENTRY_TAG_V3`], only when `prev` is set) writes
    /// the count and ids whatever the count (0..=64), then `prev` u64 BE.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 16 * self.documents.len());
        let version = self.version();
        let tag = match version {
            1 => LOG_ENTRY_TAG_V1,
            2 => LOG_ENTRY_TAG_V2,
            _ => LOG_ENTRY_TAG_V3,
        };
        out.extend_from_slice(tag);
        out.push(self.event as u8);
        out.extend_from_slice(&self.time.to_be_bytes());
        out.push(role_byte(self.actor_role));
        put_str(&mut out, &self.actor);
        out.extend_from_slice(&self.resident_tag);
        for id in [
            self.document_id.map(|i| *i.as_bytes()),
            self.request_id.map(|i| *i.as_bytes()),
            self.grant_id.map(|i| *i.as_bytes()),
        ] {
            match id {
                Some(bytes) => {
                    out.push(1);
                    out.extend_from_slice(&bytes);
                }
                None => out.push(0),
            }
        }
        out.extend_from_slice(&self.use_number.to_be_bytes());
        put_str(&mut out, &self.code);
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.extend_from_slice(&self.max_uses.to_be_bytes());
        out.extend_from_slice(&self.commitment);
        if version >= 2 {
            let count = self.documents.len().min(LOG_ENTRY_DOCUMENTS_MAX);
            out.push(count as u8);
            for id in &self.documents[..count] {
                out.extend_from_slice(id.as_bytes());
            }
        }
        if let Some(prev) = self.prev {
            out.extend_from_slice(&prev.to_be_bytes());
        }
        out
    }

    /// Parses canonical bytes (the inverse of [`LogEntry::canonical_bytes`]); refuses
    /// anything else, including trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<LogEntry, PkiError> {
        if bytes.len() > LOG_ENTRY_LEN_MAX {
            return Err(bad("entry longer than its limit"));
        }
        let mut r = Reader { bytes, pos: 0 };
        let version = match r.take(LOG_ENTRY_TAG_V1.len())? {
            t if t == LOG_ENTRY_TAG_V1 => 1,
            t if t == LOG_ENTRY_TAG_V2 => 2,
            t if t == LOG_ENTRY_TAG_V3 => 3,
            _ => return Err(bad("not a version 1, 2 or 3 log entry")),
        };
        let event = LogEvent::from_u8(r.u8()?).ok_or_else(|| bad("unknown event"))?;
        let time = r.i64()?;
        let actor_role = role_from_byte(r.u8()?)?;
        let actor = r.string()?;
        let resident_tag = r.array32()?;
        let document_id = r.optional_id()?.map(DocumentId::from_bytes);
        let request_id = r.optional_id()?.map(RequestId::from_bytes);
        let grant_id = r.optional_id()?.map(GrantId::from_bytes);
        let use_number = r.u32()?;
        let code = r.string()?;
        let not_before = r.i64()?;
        let not_after = r.i64()?;
        let max_uses = r.u32()?;
        let commitment = r.array32()?;
        let documents = match version {
            1 => Vec::new(),
            2 => r.documents(1)?,
            _ => r.documents(0)?,
        };
        let prev = if version == 3 { Some(r.u64()?) } else { None };
        if r.pos != bytes.len() {
            return Err(bad("trailing bytes after the entry"));
        }
        Ok(LogEntry {
            event,
            time,
            actor_role,
            actor,
            resident_tag,
            document_id,
            request_id,
            grant_id,
            use_number,
            code,
            not_before,
            not_after,
            max_uses,
            commitment,
            documents,
            prev,
        })
    }
}

/// The detail behind a log entry's commitment, disclosed only to those
/// entitled (the resident it concerns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDetail {
    /// The resident, if any.
    pub resident: Option<ResidentId>,
    /// The document's kind, if any.
    pub kind: Option<String>,
    /// The purpose, if any.
    pub purpose: Option<String>,
    /// Random bytes that hide the detail inside the commitment.
    #[serde(with = "crate::serde_hex::array")]
    pub nonce: [u8; 32],
    /// For a statutory order's entries: its case reference; else absent
    /// (and then not part of the commitment, so older details keep theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
}

impl LogDetail {
    /// The commitment an entry carries: SHA-256 over a domain tag, the
    /// detail's JSON without the nonce (`[resident, kind, purpose]`, or with
    /// the case reference as a fourth item when there is one), and the nonce.
    pub fn commitment(&self) -> [u8; 32] {
        let json = match &self.case_ref {
            None => serde_json::to_vec(&(&self.resident, &self.kind, &self.purpose)),
            Some(case_ref) => {
                serde_json::to_vec(&(&self.resident, &self.kind, &self.purpose, case_ref))
            }
        }
        .unwrap_or_default();
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"vault/log-detail/v1\n");
        ctx.update(&(json.len() as u64).to_be_bytes());
        ctx.update(&json);
        ctx.update(&self.nonce);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// A resident's tag in the log: SHA-256 keyed by the resident's salt, so
/// the resident (given the salt) finds their entries and nobody else can
/// tell whose they are.
pub fn resident_tag(salt: &[u8; 32], resident: &ResidentId) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt);
    let tag = ring::hmac::sign(&key, resident.as_str().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// A checkpoint: the log's origin, size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, e.g. "district.example/vault" (the log key's name).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root hash.
    pub root: [u8; 32],
    /// The root of the resident index (the sparse Merkle tree of every
    /// resident tag's newest entry and count at `size`), written as the
    /// extension line `resident-index <base64>` after the root hash; `None`
    /// for notes without that line (older nodes).
    pub resident_index: Option<[u8; 32]>,
}

/// The keyword of the checkpoint's extension line carrying the resident
/// index root.
pub const RESIDENT_INDEX_LINE: &str = "resident-index";

impl Checkpoint {
    /// The note body: origin, size and base64 root, each on its own line,
    /// then the `resident-index <base64>` extension line if there is an
    /// index root.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        if let Some(index) = self.resident_index {
            body.push_str(&format!("{RESIDENT_INDEX_LINE} {}\n", BASE64.encode(index)));
        }
        body
    }

    /// Signs the checkpoint as a C2SP signed note with the district's log key; the
    /// signature line carries the key's name, which is its origin (set `origin` to
    /// [`LogSigner::origin`]: a note whose origin is not its key's name does not verify).
    /// Ed25519 is deterministic: every node signing the same size and root with the same
    /// key writes the same bytes.
    pub fn sign(&self, log_key: &LogSigner) -> String {
        let signature = log_key.sign(self.body().as_bytes());
        let mut blob = log_key.verifier().key_hash().to_vec();
        blob.extend_from_slice(signature.as_bytes());
        format!(
            "{}\n\u{2014} {} {}\n",
            self.body(),
            log_key.origin(),
            BASE64.encode(blob)
        )
    }

    /// Parses a signed note and checks it against the log keys an identity trusts
    /// (`log.pub`): its origin must be the name of one of them, and a signature line by
    /// that name with that key's hash must verify. Other signature lines are ignored.
    pub fn verify_note(note: &str, log_keys: &[LogVerifier]) -> Result<Checkpoint, PkiError> {
        if note.len() > NOTE_LEN_MAX {
            return Err(bad("note longer than its limit"));
        }
        let (body, signatures) = note
            .split_once("\n\n")
            .ok_or_else(|| bad("a signed note has a blank line before its signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size: u64 = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad("bad tree size line"))?;
        let root_b64 = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: [u8; 32] = BASE64
            .decode(root_b64)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("bad root hash"))?;
        if log_keys.is_empty() {
            return Err(PkiError::UnknownLogKey {
                reason: "this identity trusts no log key (no log.pub next to ca.pem); \
                         copy the district's log.pub into the identity directory"
                    .into(),
            });
        }
        let keys: Vec<&LogVerifier> = log_keys.iter().filter(|k| k.name() == origin).collect();
        if keys.is_empty() {
            let trusted: Vec<&str> = log_keys.iter().map(LogVerifier::name).collect();
            return Err(PkiError::UnknownLogKey {
                reason: format!(
                    "the checkpoint's origin {:?} is not a log this identity trusts ({})",
                    crate::error::truncate_for_display(origin),
                    trusted.join(", ")
                ),
            });
        }
        // Extension lines (C2SP tlog-checkpoint): the resident index root
        // at most once; others are signed but not interpreted.
        let mut resident_index = None;
        for line in lines {
            let Some(value) = line
                .strip_prefix(RESIDENT_INDEX_LINE)
                .and_then(|rest| rest.strip_prefix(' '))
            else {
                continue;
            };
            let index: [u8; 32] = BASE64
                .decode(value)
                .ok()
                .and_then(|r| r.try_into().ok())
                .ok_or_else(|| bad("bad resident index root"))?;
            if resident_index.replace(index).is_some() {
                return Err(bad("two resident index lines"));
            }
        }
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                continue;
            };
            let Some((signer, blob)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(blob) = BASE64.decode(blob) else {
                continue;
            };
            if signer != origin || blob.len() != 4 + 64 {
                continue;
            }
            let Some(key) = keys.iter().find(|k| blob[..4] == k.key_hash()) else {
                continue;
            };
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&blob[4..]);
            verify_signature(key.public_key(), body.as_bytes(), &Signature(sig))?;
            return Ok(Checkpoint {
                origin: origin.to_string(),
                size,
                root,
                resident_index,
            });
        }
        Err(PkiError::UnknownLogKey {
            reason: format!(
                "the checkpoint has no signature by the log key of {origin} this identity trusts"
            ),
        })
    }
}

fn role_byte(role: Role) -> u8 {
    match role {
        Role::Node => 1,
        Role::Department => 2,
        Role::Auditor => 3,
        Role::Resident => 4,
        Role::Authority => 5,
    }
}

fn role_from_byte(byte: u8) -> Result<Role, PkiError> {
    match byte {
        1 => Ok(Role::Node),
        2 => Ok(Role::Department),
        3 => Ok(Role::Auditor),
        4 => Ok(Role::Resident),
        5 => Ok(Role::Authority),
        _ => Err(bad("unknown role")),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn bad(reason: &str) -> PkiError {
    PkiError::MalformedStatement {
        reason: reason.to_string(),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PkiError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| bad("entry ends early"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PkiError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PkiError> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| bad("short"))?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, PkiError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| bad("short"))?;
        Ok(u64::from_be_bytes(b))
    }

    fn i64(&mut self) -> Result<i64, PkiError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| bad("short"))?;
        Ok(i64::from_be_bytes(b))
    }

    fn array32(&mut self) -> Result<[u8; 32], PkiError> {
        self.take(32)?.try_into().map_err(|_| bad("short"))
    }

    fn string(&mut self) -> Result<String, PkiError> {
        let len: [u8; 2] = self.take(2)?.try_into().map_err(|_| bad("short"))?;
        let bytes = self.take(usize::from(u16::from_be_bytes(len)))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| bad("string is not UTF-8"))
    }

    /// A version 2 or 3 entry's document list: `least` (1 in version 2,
    /// 0 in version 3) to 64 ids, strictly ascending (so one list has one
    /// encoding, and no entry is both version 1 and 2).
    fn documents(&mut self, least: usize) -> Result<Vec<DocumentId>, PkiError> {
        let count = usize::from(self.u8()?);
        if count < least || count > LOG_ENTRY_DOCUMENTS_MAX {
            return Err(bad(
                "a version 2 entry lists 1 to 64 documents, version 3 0 to 64",
            ));
        }
        let mut out: Vec<DocumentId> = Vec::with_capacity(count);
        for _ in 0..count {
            let id: [u8; 16] = self.take(16)?.try_into().map_err(|_| bad("short"))?;
            let id = DocumentId::from_bytes(id);
            if out.last().is_some_and(|last| *last >= id) {
                return Err(bad("an entry's documents are sorted, without duplicates"));
            }
            out.push(id);
        }
        Ok(out)
    }

    fn optional_id(&mut self) -> Result<Option<[u8; 16]>, PkiError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.take(16)?.try_into().map_err(|_| bad("short"))?)),
            _ => Err(bad("bad optional marker")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> LogEntry {
        LogEntry {
            resident_tag: [7; 32],
            document_id: Some(DocumentId::from_bytes([1; 16])),
            grant_id: Some(GrantId::from_bytes([2; 16])),
            use_number: 2,
            commitment: [9; 32],
            ..LogEntry::new(
                LogEvent::Fetch,
                1_700_000_000,
                Role::Department,
                "housing-bureau",
            )
        }
    }

    #[test]
    fn entries_round_trip_and_refuse_trailing_bytes() {
        let e = entry();
        let bytes = e.canonical_bytes();
        assert_eq!(LogEntry::parse(&bytes).unwrap(), e);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(LogEntry::parse(&longer).is_err());
        assert!(LogEntry::parse(&bytes[..bytes.len() - 1]).is_err());
    }

    fn grant_entry(n: u8) -> LogEntry {
        LogEntry {
            request_id: Some(RequestId::from_bytes([3; 16])),
            grant_id: Some(GrantId::from_bytes([2; 16])),
            not_before: 1,
            not_after: 2,
            max_uses: 3,
            documents: (0..n).map(|i| DocumentId::from_bytes([i; 16])).collect(),
            ..LogEntry::new(
                LogEvent::GrantIssued,
                1_700_000_000,
                Role::Department,
                "housing-bureau",
            )
        }
    }

    #[test]
    fn entries_without_documents_keep_their_version_1_bytes() {
        // The bytes every entry had before version 2 (tag, fields, nothing after the commitment).
        let bytes = entry().canonical_bytes();
        assert!(bytes.starts_with(LOG_ENTRY_TAG_V1));
        assert!(bytes.ends_with(&[9; 32]));
        assert_eq!(bytes.len(), 124 + "housing-bureau".len() + 32);
        assert_eq!(
            hex::encode(&bytes[..19 + 1 + 8 + 1]),
            format!("{}06000000006553f10002", hex::encode(LOG_ENTRY_TAG_V1))
        );
        assert_eq!(
            LogEntry::parse(&grant_entry(0).canonical_bytes())
                .unwrap()
                .documents,
            vec![]
        );
    }

    #[test]
    fn grant_entries_list_their_documents_in_version_2() {
        for n in [1u8, 2, 64] {
            let e = grant_entry(n);
            let bytes = e.canonical_bytes();
            assert!(bytes.starts_with(LOG_ENTRY_TAG_V2));
            assert!(bytes.len() <= LOG_ENTRY_LEN_MAX);
            let v1_len = grant_entry(0).canonical_bytes().len();
            assert_eq!(bytes.len(), v1_len + 1 + 16 * usize::from(n));
            assert_eq!(LogEntry::parse(&bytes).unwrap(), e);
        }
        // The largest entry a node can write fits the limit.
        let mut largest = grant_entry(64);
        largest.actor = "a".repeat(64);
        largest.code = "c".repeat(64);
        assert!(largest.canonical_bytes().len() <= LOG_ENTRY_LEN_MAX);
    }

    #[test]
    fn version_2_refuses_empty_unsorted_duplicate_and_oversized_lists() {
        let v1_len = grant_entry(0).canonical_bytes().len();
        let good = grant_entry(3).canonical_bytes();
        let mut empty = good[..v1_len].to_vec();
        empty[..19].copy_from_slice(LOG_ENTRY_TAG_V2);
        empty.push(0);
        assert!(LogEntry::parse(&empty).is_err());
        let mut unsorted = good.clone();
        unsorted[v1_len + 1..v1_len + 17].copy_from_slice(&[2; 16]);
        assert!(LogEntry::parse(&unsorted).is_err());
        let mut duplicate = good.clone();
        duplicate[v1_len + 1..v1_len + 17].copy_from_slice(&[1; 16]);
        assert!(LogEntry::parse(&duplicate).is_err());
        let mut too_many = good[..v1_len].to_vec();
        too_many[..19].copy_from_slice(LOG_ENTRY_TAG_V2);
        too_many.push(65);
        for i in 0..65u8 {
            too_many.extend_from_slice(&[i; 16]);
        }
        assert!(LogEntry::parse(&too_many).is_err());
        // A version 1 entry with a list after it has trailing bytes.
        let mut v1_with_list = good.clone();
        v1_with_list[..19].copy_from_slice(LOG_ENTRY_TAG_V1);
        assert!(LogEntry::parse(&v1_with_list).is_err());
    }

    #[test]
    fn chained_entries_are_version_3_with_or_without_documents() {
        for (n, prev) in [(0u8, 0u64), (0, 17), (3, 1), (64, u64::MAX)] {
            let mut e = grant_entry(n);
            e.prev = Some(prev);
            let bytes = e.canonical_bytes();
            assert!(bytes.starts_with(LOG_ENTRY_TAG_V3));
            assert_eq!(e.version(), 3);
            let v1_len = grant_entry(0).canonical_bytes().len();
            assert_eq!(bytes.len(), v1_len + 1 + 16 * usize::from(n) + 8);
            assert!(bytes.ends_with(&prev.to_be_bytes()));
            assert!(bytes.len() <= LOG_ENTRY_LEN_MAX);
            assert_eq!(LogEntry::parse(&bytes).unwrap(), e);
        }
        // Versions 1 and 2 keep their bytes and parse without a link.
        assert_eq!(
            LogEntry::parse(&entry().canonical_bytes()).unwrap().prev,
            None
        );
        assert_eq!(grant_entry(2).version(), 2);
        // A version 3 entry without its link, or with a longer one, is refused.
        let mut e = entry();
        e.prev = Some(5);
        let bytes = e.canonical_bytes();
        assert!(LogEntry::parse(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(LogEntry::parse(&longer).is_err());
        // Version 2 still refuses an empty list.
        let mut as_v2 = bytes[..bytes.len() - 8].to_vec();
        as_v2[..19].copy_from_slice(LOG_ENTRY_TAG_V2);
        assert!(LogEntry::parse(&as_v2).is_err());
    }

    #[test]
    fn commitments_hide_and_bind() {
        let d = LogDetail {
            resident: Some(ResidentId::parse("resident-1").unwrap()),
            kind: Some("marriage-certificate".into()),
            purpose: None,
            nonce: [1; 32],
            case_ref: None,
        };
        let mut other = d.clone();
        other.nonce = [2; 32];
        assert_ne!(d.commitment(), other.commitment());
        let mut changed = d.clone();
        changed.kind = Some("birth-certificate".into());
        assert_ne!(d.commitment(), changed.commitment());
        // A case reference is committed when present; absent, the
        // commitment is the one details had before case references.
        let mut with_case = d.clone();
        with_case.case_ref = Some("CASE-1".into());
        assert_ne!(d.commitment(), with_case.commitment());
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("case_ref"));
    }

    #[test]
    fn tags_differ_by_salt_and_resident() {
        let r1 = ResidentId::parse("resident-1").unwrap();
        let r2 = ResidentId::parse("resident-2").unwrap();
        assert_ne!(resident_tag(&[1; 32], &r1), resident_tag(&[2; 32], &r1));
        assert_ne!(resident_tag(&[1; 32], &r1), resident_tag(&[1; 32], &r2));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = LogEntry::parse(&bytes);
        }

        #[test]
        fn mutated_entries_never_panic(pos in 0usize..400, byte in any::<u8>(), version in 1u8..=3) {
            let mut e = if version == 1 { entry() } else { grant_entry(8) };
            if version == 3 {
                e.prev = Some(3);
            }
            let mut bytes = e.canonical_bytes();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = LogEntry::parse(&bytes);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod note_tests {
    use super::*;

    #[test]
    fn signed_notes_verify_and_every_alteration_is_refused() {
        let (key, _) = crate::log_key::generate("test.district.example/vault").unwrap();
        let keys = [key.verifier().clone()];
        let checkpoint = Checkpoint {
            origin: key.origin().into(),
            size: 42,
            root: [5; 32],
            resident_index: None,
        };
        let note = checkpoint.sign(&key);
        assert!(note.starts_with("test.district.example/vault\n42\n"));
        assert!(note.contains("\n\n\u{2014} test.district.example/vault "));
        assert_eq!(note, checkpoint.sign(&key), "deterministic");
        assert_eq!(Checkpoint::verify_note(&note, &keys).unwrap(), checkpoint);
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            Checkpoint::verify_note(&altered, &keys).unwrap_err().code(),
            "pki.bad_signature"
        );
        let unsigned = format!("{}\n", checkpoint.body());
        assert!(Checkpoint::verify_note(&unsigned, &keys).is_err());
        for malformed in [
            "",
            "origin only",
            "o\nnot-a-number\nAAAA\n\n— node-1 AAAA\n",
            "o\n1\n!!!\n\n— x y\n",
        ] {
            let err = Checkpoint::verify_note(malformed, &keys).unwrap_err();
            assert!(
                matches!(err.code(), "pki.malformed_statement" | "pki.bad_signature"),
                "{malformed:?}"
            );
        }
        // With the resident index extension line: signed, parsed, bound.
        let indexed = Checkpoint {
            resident_index: Some([6; 32]),
            ..checkpoint.clone()
        };
        let note = indexed.sign(&key);
        assert!(note.contains(&format!("\nresident-index {}\n", BASE64.encode([6; 32]))));
        assert_eq!(Checkpoint::verify_note(&note, &keys).unwrap(), indexed);
        let altered = note.replacen(&BASE64.encode([6; 32]), &BASE64.encode([7; 32]), 1);
        assert!(Checkpoint::verify_note(&altered, &keys).is_err());
        let dropped = note.replacen(
            &format!("resident-index {}\n", BASE64.encode([6; 32])),
            "",
            1,
        );
        assert!(Checkpoint::verify_note(&dropped, &keys).is_err());
        let huge = "x".repeat(NOTE_LEN_MAX + 1);
        assert_eq!(
            Checkpoint::verify_note(&huge, &keys).unwrap_err().code(),
            "pki.malformed_statement"
        );
    }

    #[test]
    fn another_key_or_origin_is_refused_and_rotation_keeps_both() {
        let (key, _) = crate::log_key::generate("district.example/vault").unwrap();
        let (other, _) = crate::log_key::generate("district.example/vault").unwrap();
        let (next, _) = crate::log_key::generate("district.example/vault/2").unwrap();
        let checkpoint = |origin: &str| Checkpoint {
            origin: origin.into(),
            size: 7,
            root: [1; 32],
            resident_index: None,
        };
        let trusted = [key.verifier().clone()];
        // Same name, another key: not the district's.
        let forged = checkpoint(other.origin()).sign(&other);
        assert_eq!(
            Checkpoint::verify_note(&forged, &trusted)
                .unwrap_err()
                .code(),
            "pki.unknown_log_key"
        );
        // An origin the identity does not know.
        let foreign = checkpoint(next.origin()).sign(&next);
        assert_eq!(
            Checkpoint::verify_note(&foreign, &trusted)
                .unwrap_err()
                .code(),
            "pki.unknown_log_key"
        );
        assert_eq!(
            Checkpoint::verify_note(&foreign, &[]).unwrap_err().code(),
            "pki.unknown_log_key"
        );
        // During a rotation the identity lists both keys and takes both.
        let both = [next.verifier().clone(), key.verifier().clone()];
        let old = checkpoint(key.origin()).sign(&key);
        assert!(Checkpoint::verify_note(&old, &both).is_ok());
        assert!(Checkpoint::verify_note(&foreign, &both).is_ok());
        // A key's signature under another origin line does not count.
        let renamed = old.replacen("district.example/vault\n", "district.example/vault/2\n", 1);
        assert!(Checkpoint::verify_note(&renamed, &both).is_err());
    }
}
