//! The state machine's vocabulary: every metadata change is a [`Command`],
//! proposed with its [`Seed`] (the time and randomness its log entries
//! need) as a [`Proposal`]; the records commands write ([`DocumentEntry`],
//! [`RequestEntry`], [`GrantEntry`], [`StoredGrant`], [`GrantCounter`],
//! [`BlobEntry`]), their key layouts, and the read helpers over a
//! [`MetaStore`]. Applying a command is [`crate::engine::apply::apply`];
//! making it durable (the single-node ledger or the Raft cluster) is
//! `consensus`'s.
//!
//! **Invariant:** the state a node holds is a pure function of its command
//! log: nothing here reads a clock or draws randomness.

use pki::{
    AccessRequest, ContentHash, Grant, GrantId, GrantedDocument, IssueRecord, Name, Order,
    RequestId, ResidentId, Role, Signature,
};
use serde::{Deserialize, Serialize};
use vault_client::wire::PageFill;
use vault_client::{DocumentId, ErrorCode};

use crate::engine::meta::{Cf, MetaStore, StoreError, Write};
use crate::Refusal;

/// Key of the last applied command index in [`Cf::Meta`].
pub(crate) const APPLIED_INDEX_KEY: &[u8] = b"applied_index";
/// Most documents returned by one listing.
pub const LIST_LEN_MAX: usize = vault_client::wire::LIST_LEN_MAX;
/// Most open (pending, unexpired) requests one department may have for one
/// resident; the next is refused with `limit.requests`.
pub const REQUESTS_OPEN_PER_DEPARTMENT_MAX: usize = 100;
/// Most pending-index entries of one resident a new request's quota check
/// scans; a resident with this many pending requests takes no more
/// (`limit.requests`) until some are decided or expire.
pub const REQUESTS_PENDING_SCAN_MAX: usize = 10_000;
/// Longest a request stays open for the resident to decide, in seconds
/// (30 days); a request asking for less access than that is open for as
/// long as the access it asks for.
pub const REQUEST_OPEN_S_MAX: u64 = 30 * 24 * 3600;

/// A metadata change. Serialized (JSON) into the command log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Register a document whose blob is already durable on this node.
    RegisterDocument(DocumentEntry),
    /// Record a department's signed access request (pending).
    RecordRequest(RequestEntry),
    /// Approve a pending request with a sealed grant.
    IssueGrant(GrantEntry),
    /// Deny a pending request.
    DenyRequest {
        /// Which request.
        request_id: RequestId,
        /// When (unix seconds, chosen by the proposer).
        at: i64,
    },
    /// Count one use of a grant (refused when exhausted or revoked).
    UseGrant {
        /// Which grant.
        grant_id: GrantId,
        /// The document fetched.
        document_id: DocumentId,
        /// When (unix seconds, chosen by the proposer).
        at: i64,
    },
    /// Record a fetch without a grant (by the issuer or the resident).
    RecordAccess {
        /// The document.
        document_id: DocumentId,
        /// Who fetched: role.
        role: Role,
        /// Who fetched: name.
        by: Name,
    },
    /// Record a refused request (the only trace a refusal leaves).
    RecordRefusal {
        /// Who was refused: role.
        role: Role,
        /// Who was refused: name.
        by: Name,
        /// The stable code.
        code: String,
        /// The document concerned, if known.
        document_id: Option<DocumentId>,
        /// The grant concerned, if known.
        grant_id: Option<GrantId>,
        /// The request concerned, if known.
        request_id: Option<RequestId>,
    },
    /// Record certificates the district CA revoked (new serials only).
    RecordCertificateRevocations {
        /// Lowercase hex serials.
        serials: Vec<String>,
    },
    /// Record a department's signed statutory order (pending, sealed).
    RecordOrder(OrderEntry),
    /// Approve a pending order with a sealed grant (by an authority, or by
    /// the ordering department where the purpose needs no authority).
    ApproveOrder {
        /// Which order.
        order_id: RequestId,
        /// The grant, sealed by the node.
        grant: GrantEntry,
        /// Who approved.
        by: Name,
        /// In which role.
        role: Role,
    },
    /// Deny a pending order (by an authority).
    DenyOrder {
        /// Which order.
        order_id: RequestId,
        /// Who denied.
        by: Name,
        /// When (unix seconds, chosen by the proposer).
        at: i64,
    },
    /// Extend an order's seal, with an authority's signature.
    ExtendSeal {
        /// What the authority signed.
        extension: pki::SealExtension,
        /// Its signature.
        signature: Signature,
        /// The authority.
        by: Name,
    },
    /// Disclose an order whose seal ended (idempotent; proposed by the
    /// node's discloser, the leader's in a cluster).
    DiscloseOrder {
        /// Which order.
        order_id: RequestId,
        /// When (unix seconds, chosen by the proposer).
        at: i64,
    },
    /// Revoke a grant (by its resident) or give it up (by its grantee).
    RevokeGrant {
        /// Which grant.
        grant_id: GrantId,
        /// Who.
        by: Name,
        /// In which role.
        role: Role,
        /// When (unix seconds, chosen by the proposer).
        at: i64,
    },
}

/// A recorded statutory order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEntry {
    /// Its id (the grant's `request_id`).
    pub order_id: RequestId,
    /// What the department signed.
    pub order: Order,
    /// The department's signature.
    pub signature: Signature,
    /// SHA-256 of the department certificate's public key: the grant's holder.
    #[serde(with = "pki::serde_hex::array")]
    pub department_key_id: [u8; 32],
    /// The department certificate's serial.
    pub department_serial: String,
    /// The documents the order resolved to, sorted by id.
    pub documents: Vec<GrantedDocument>,
    /// When the node recorded it.
    pub recorded_at: i64,
    /// When the seal ends (unix seconds): recorded_at + seal_s, or an
    /// authority's extension.
    pub seal_until: i64,
    /// The legal basis, from the registry when the order was recorded.
    pub legal_basis: String,
    /// Whether an authority must approve (from the registry).
    pub authority_required: bool,
    /// Pending, approved or denied.
    pub status: OrderStatus,
    /// When the node disclosed it to the resident, if it has.
    pub disclosed_at: Option<i64>,
}

/// Where an order stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for approval.
    Pending,
    /// Approved: the grant was issued.
    Approved {
        /// The grant.
        grant_id: GrantId,
        /// Who approved.
        by: Name,
        /// In which role (authority, or the department where none is needed).
        role: Role,
        /// When.
        at: i64,
    },
    /// Denied by an authority.
    Denied {
        /// Who denied.
        by: Name,
        /// When.
        at: i64,
    },
}

impl OrderEntry {
    /// The grant issued under the order, if any.
    pub fn grant_id(&self) -> Option<GrantId> {
        match &self.status {
            OrderStatus::Approved { grant_id, .. } => Some(*grant_id),
            _ => None,
        }
    }

    /// Whether the order's entries are still sealed.
    pub fn sealed(&self) -> bool {
        self.disclosed_at.is_none()
    }
}

/// A recorded access request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEntry {
    /// Its id.
    pub request_id: RequestId,
    /// What the department signed.
    pub request: AccessRequest,
    /// The department's signature.
    pub signature: Signature,
    /// SHA-256 of the department certificate's public key: the future grant's holder.
    #[serde(with = "pki::serde_hex::array")]
    pub department_key_id: [u8; 32],
    /// The department certificate's serial (revoking it kills the grant).
    pub department_serial: String,
    /// The documents the request resolved to, sorted by id.
    pub documents: Vec<GrantedDocument>,
    /// Pending, approved or denied.
    pub status: RequestStatus,
    /// After this (unix seconds, chosen by the recording node) the request
    /// can no longer be approved (`request.expired`). `None` in requests
    /// recorded before requests expired: those stay open.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl RequestEntry {
    /// Whether the request is past its expiry at `at`.
    pub fn expired_at(&self, at: i64) -> bool {
        self.expires_at.is_some_and(|expires_at| at > expires_at)
    }
}

/// When a request recorded at `now` asking for `ttl_s` of access expires:
/// after `min(ttl_s, REQUEST_OPEN_S_MAX)` seconds (saturating).
pub fn request_expiry(now: i64, ttl_s: u64) -> i64 {
    let open_s = i64::try_from(ttl_s.min(REQUEST_OPEN_S_MAX)).unwrap_or(i64::MAX);
    now.saturating_add(open_s)
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for the resident.
    Pending,
    /// Approved with a grant.
    Approved {
        /// The grant.
        grant_id: GrantId,
        /// When.
        at: i64,
    },
    /// Denied by the resident.
    Denied {
        /// When.
        at: i64,
    },
}

/// A grant with its use count and revocation. Stored split: the large,
/// immutable part in [`Cf::Grants`], the small [`GrantCounter`] that every
/// use rewrites in [`Cf::GrantCounters`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// The sealed grant.
    pub grant: Grant,
    /// Serial of the grantee's certificate.
    pub grantee_serial: String,
    /// When it was issued.
    pub issued_at: i64,
    /// Uses so far.
    pub uses: u32,
    /// Revocation, if any.
    pub revoked: Option<GrantRevocation>,
}

/// The immutable part of a stored grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGrant {
    /// The sealed grant.
    pub grant: Grant,
    /// Serial of the grantee's certificate.
    pub grantee_serial: String,
    /// When it was issued.
    pub issued_at: i64,
}

/// The mutable part of a grant, with the bounds its checks need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCounter {
    /// Uses so far.
    pub uses: u32,
    /// Uses allowed.
    pub max_uses: u32,
    /// Valid from.
    pub not_before: i64,
    /// Valid until.
    pub not_after: i64,
    /// Revocation, if any.
    pub revoked: Option<GrantRevocation>,
    /// The consenting resident (for log entries).
    pub resident: ResidentId,
    /// The holder (for log entries).
    pub grantee: Name,
    /// The purpose (for log details).
    pub purpose: pki::Purpose,
}

/// Who revoked a grant, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRevocation {
    /// Who.
    pub by: Name,
    /// In which role.
    pub role: Role,
    /// When.
    pub at: i64,
}

/// A stored document record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentEntry {
    /// The document id, derived from the signed record.
    pub document_id: DocumentId,
    /// What the issuer signed.
    pub record: IssueRecord,
    /// The issuer's signature.
    pub signature: Signature,
    /// The issuer's certificate (DER, hex in JSON).
    #[serde(with = "pki::serde_hex::bytes")]
    pub issuer_cert: Vec<u8>,
    /// When the node registered it (unix seconds, chosen by the proposer).
    pub registered_at: i64,
}

/// A blob the state machine knows about (its bytes live in the blob store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// Size in bytes.
    pub size: u64,
    /// When it was first registered (unix seconds).
    pub first_registered_at: i64,
}

/// What applying a command did. Serializable: it is the answer a Raft
/// state machine returns to the proposer ([`crate::consensus::raft::Outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "applied", rename_all = "snake_case")]
pub enum Applied {
    /// A document was registered (or already was: an idempotent retry).
    DocumentRegistered {
        /// Its id.
        document_id: DocumentId,
        /// The blob was already known before this command.
        blob_existed: bool,
        /// The same document was already registered; nothing changed.
        document_existed: bool,
    },
    /// A request was recorded (or already was).
    RequestRecorded {
        /// Its id.
        request_id: RequestId,
    },
    /// A grant was issued.
    GrantIssued {
        /// Its id.
        grant_id: GrantId,
    },
    /// A request was denied.
    RequestDenied,
    /// A grant use was counted.
    GrantUsed {
        /// This use's number, from 1.
        use_number: u32,
        /// The index of the fetch's log entry (absent from answers of
        /// nodes older than receipts).
        #[serde(default)]
        log_index: Option<u64>,
    },
    /// A fetch without a grant (issuer or resident) was recorded.
    AccessRecorded {
        /// The index of its log entry.
        log_index: u64,
    },
    /// A grant was revoked (or already was).
    GrantRevoked,
    /// An order was recorded (or already was).
    OrderRecorded {
        /// Its id.
        order_id: RequestId,
    },
    /// An order was denied.
    OrderDenied,
    /// An order's seal was extended.
    SealExtended,
    /// An order was disclosed (`false`: it already was, or is not due).
    OrderDisclosed {
        /// Whether this command disclosed it.
        disclosed: bool,
    },
    /// Only log entries were appended.
    Recorded,
}

/// What the proposer adds to a command: the time and the randomness that
/// log entries need, chosen once so every node applies the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// When, unix seconds.
    pub at: i64,
    /// Hides log details inside their commitments.
    #[serde(with = "pki::serde_hex::array")]
    pub nonce: [u8; 32],
    /// Source of salts for residents seen for the first time, when the
    /// proposer has no district salt key (older vaults and tests).
    #[serde(with = "pki::serde_hex::array")]
    pub salt: [u8; 32],
    /// The district salt key's σ over the resident the command names
    /// ([`Command::named_resident`]), when the proposer has the key and the
    /// resident no salt yet: that resident's salt is then
    /// [`pki::salt_from_proof`]`(σ)` (`docs/COMPLETENESS.md` §4). Absent in
    /// proposals made before the salt key existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub salt_proofs: Vec<SaltProof>,
}

/// A resident and the salt key's σ over them (see [`Seed::salt_proofs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaltProof {
    /// The resident.
    pub resident: ResidentId,
    /// σ = the salt key's RSA PKCS#1 v1.5 signature over
    /// [`pki::salt_message`]`(resident)`.
    #[serde(with = "pki::serde_hex::bytes")]
    pub sigma: Vec<u8>,
}

impl Seed {
    /// The nonce for the `n`-th record of a command.
    pub(crate) fn nonce_for(&self, n: usize) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.nonce);
        let tag = ring::hmac::sign(&key, &(n as u64).to_be_bytes());
        tag.as_ref().try_into().unwrap_or(self.nonce)
    }

    /// The salt a resident seen for the first time gets: fixed by the salt
    /// key's σ when the seed carries one for them, else drawn from the
    /// seed's randomness.
    pub(crate) fn salt_for(&self, resident: &ResidentId) -> [u8; 32] {
        if let Some(proof) = self.salt_proofs.iter().find(|p| &p.resident == resident) {
            return pki::salt_from_proof(&proof.sigma);
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.salt);
        let tag = ring::hmac::sign(&key, resident.as_str().as_bytes());
        tag.as_ref().try_into().unwrap_or(self.salt)
    }
}

impl Command {
    /// The resident the command names itself (not found through the
    /// state): the one a command can be the first entry of, so the one a
    /// proposer gives a salt proof for ([`Seed::salt_proofs`]).
    pub fn named_resident(&self) -> Option<&ResidentId> {
        match self {
            Command::RegisterDocument(e) => Some(&e.record.resident),
            Command::RecordRequest(r) => Some(&r.request.resident),
            Command::IssueGrant(g) => Some(&g.grant.body.resident),
            _ => None,
        }
    }
}

/// A command as the log records it: the command and its seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The change.
    pub command: Command,
    /// Time and randomness for its log entries.
    pub seed: Seed,
}

/// A command that cannot be applied (the state is unchanged).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value could not be decoded: the database is damaged.
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
    /// The command contradicts the state.
    #[error("{0}")]
    Conflict(String),
    /// The command is refused by a rule (exhausted, revoked, already decided...).
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Reads a request.
pub fn request(state: &dyn MetaStore, id: RequestId) -> Result<Option<RequestEntry>, StateError> {
    read(state, Cf::Requests, id.as_bytes())
}

/// Reads a grant, both parts.
pub fn grant(state: &dyn MetaStore, id: GrantId) -> Result<Option<GrantEntry>, StateError> {
    let Some(stored) = stored_grant(state, id)? else {
        return Ok(None);
    };
    let counter = grant_counter(state, id)?
        .ok_or_else(|| StateError::Corrupt(format!("grant {id} has no counter")))?;
    Ok(Some(GrantEntry {
        grant: stored.grant,
        grantee_serial: stored.grantee_serial,
        issued_at: stored.issued_at,
        uses: counter.uses,
        revoked: counter.revoked,
    }))
}

/// Reads a grant's immutable part.
pub fn stored_grant(state: &dyn MetaStore, id: GrantId) -> Result<Option<StoredGrant>, StateError> {
    read(state, Cf::Grants, id.as_bytes())
}

/// Reads a grant's use counter.
pub fn grant_counter(
    state: &dyn MetaStore,
    id: GrantId,
) -> Result<Option<GrantCounter>, StateError> {
    read(state, Cf::GrantCounters, id.as_bytes())
}

/// Which side of a grant a name is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSide {
    /// The consenting resident.
    Resident = 1,
    /// The department granted access.
    Grantee = 2,
}

/// `side u8 | len u8 | name | grant id`.
pub(crate) fn grant_index_key(side: GrantSide, name: &str, id: &[u8]) -> Vec<u8> {
    let mut key = vec![side as u8];
    key.extend_from_slice(&index_key(name, id));
    key
}

pub(crate) fn tail_id(key: &[u8]) -> Result<[u8; 16], StateError> {
    key[key.len().saturating_sub(16)..]
        .try_into()
        .map_err(|_| StateError::Corrupt("short index key".into()))
}

/// `len u8 | name | id`.
pub(crate) fn index_key(name: &str, id: &[u8]) -> Vec<u8> {
    let mut key = index_prefix(name);
    key.extend_from_slice(id);
    key
}

pub(crate) fn index_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len() + 16);
    key.push(name.len() as u8);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn put(cf: Cf, key: Vec<u8>, value: Vec<u8>) -> Write {
    Write::Put { cf, key, value }
}

/// Reads a document.
pub fn document(
    state: &dyn MetaStore,
    id: DocumentId,
) -> Result<Option<DocumentEntry>, StateError> {
    read(state, Cf::Documents, id.as_bytes())
}

/// Reads a blob entry.
pub fn blob(state: &dyn MetaStore, hash: &ContentHash) -> Result<Option<BlobEntry>, StateError> {
    read(state, Cf::Blobs, hash.as_bytes())
}

/// Most index keys one page of a listing scans (its items are filtered, so
/// a page may hold fewer; its `next_cursor` then names where the scan
/// stopped and the next page goes on from there).
pub const PAGE_SCAN_MAX: usize = 10_000;
/// Index keys read from the store at once while filling a page.
pub const PAGE_SCAN_CHUNK: usize = 256;

/// What a page's reader makes of one index key.
pub enum Step<T> {
    /// An item for the page.
    Item(T),
    /// Not for this caller (filtered out); the scan goes on.
    Skip,
    /// The listing ends before this key.
    End,
}

/// How a page reads one index key (given the whole key).
pub type ReadItem<'a, T> = dyn FnMut(&[u8]) -> Result<Step<T>, Refusal> + 'a;

/// One page of a listing; here its cursor is the hex of the next key's
/// tail after the listing's prefix.
pub use vault_client::wire::Page;

/// One page of the index keys under `prefix` in `cf`, from the key
/// `prefix | from` on (the start when `from` is `None`): each key is read by
/// `item`, and items fill `fill` (bounded in count and in encoded bytes,
/// see [`PageFill`]). At most [`PAGE_SCAN_MAX`] keys are scanned, read in
/// chunks of [`PAGE_SCAN_CHUNK`] (so little is read past the prefix).
pub fn page<T: Serialize>(
    state: &dyn MetaStore,
    cf: Cf,
    prefix: &[u8],
    from: Option<&[u8]>,
    mut fill: PageFill,
    item: &mut ReadItem<'_, T>,
) -> Result<Page<T>, Refusal> {
    let store = |e: StoreError| Refusal::from(StateError::from(e));
    let done = |items, key: Option<&[u8]>| Page {
        items,
        next_cursor: key.map(|k| vault_client::wire::encode_cursor(&k[prefix.len()..])),
    };
    let mut start = [prefix, from.unwrap_or_default()].concat();
    let (mut items, mut scanned) = (Vec::new(), 0);
    loop {
        let keys = state
            .scan_from(cf, &start, PAGE_SCAN_CHUNK)
            .map_err(store)?;
        for (key, _) in &keys {
            if !key.starts_with(prefix) {
                return Ok(done(items, None));
            }
            if scanned == PAGE_SCAN_MAX || fill.is_full() {
                return Ok(done(items, Some(key)));
            }
            scanned += 1;
            match item(key)? {
                Step::Skip => {}
                Step::End => return Ok(done(items, None)),
                Step::Item(value) => {
                    if !fill.admit(vault_client::wire::encoded_len(&value)) {
                        return Ok(done(items, Some(key)));
                    }
                    items.push(value);
                }
            }
        }
        match keys.last() {
            // The least key after the last one read.
            Some((last, _)) if keys.len() == PAGE_SCAN_CHUNK => start = [&last[..], &[0]].concat(),
            _ => return Ok(done(items, None)),
        }
    }
}

/// The cursor a request carries, decoded (refused as
/// [`ErrorCode::InvalidArgument`] when no page handed it out).
pub fn page_from(cursor: Option<&str>) -> Result<Option<Vec<u8>>, Refusal> {
    vault_client::wire::decode_cursor(cursor).map_err(|e| Refusal::new(e.code(), e.to_string()))
}

/// Most index entries one listing scans before filtering.
pub const LIST_SCAN_MAX: usize = 10_000;

/// The documents of `resident`, newest first, at most `limit`.
pub fn documents_of(
    state: &dyn MetaStore,
    resident: &ResidentId,
    limit: usize,
) -> Result<Vec<DocumentEntry>, StateError> {
    let prefix = resident_prefix(resident);
    let mut out = Vec::new();
    for (key, _) in state.scan_prefix(Cf::ByResident, &prefix, limit)? {
        let id_bytes: [u8; 16] = key[key.len().saturating_sub(16)..]
            .try_into()
            .map_err(|_| StateError::Corrupt("short resident index key".into()))?;
        let id = DocumentId::from_bytes(id_bytes);
        let entry = document(state, id)?
            .ok_or_else(|| StateError::Corrupt(format!("index names missing document {id}")))?;
        out.push(entry);
    }
    Ok(out)
}

/// The index of the last applied command (0 when none).
pub fn applied_index(state: &dyn MetaStore) -> Result<u64, StateError> {
    match state.get(Cf::Meta, APPLIED_INDEX_KEY)? {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StateError::Corrupt("applied index".into()))?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// `len(resident) u8 | resident | !registered_at u64 BE | document id`:
/// sorted by resident, then newest first.
pub(crate) fn resident_key(resident: &ResidentId, registered_at: i64, id: DocumentId) -> Vec<u8> {
    let mut key = resident_prefix(resident);
    key.extend_from_slice(&(u64::MAX - registered_at.max(0) as u64).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

pub(crate) fn resident_prefix(resident: &ResidentId) -> Vec<u8> {
    let name = resident.as_str().as_bytes();
    let mut key = Vec::with_capacity(1 + name.len() + 24);
    key.push(name.len() as u8);
    key.extend_from_slice(name);
    key
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|e| StateError::Corrupt(e.to_string()))
}

pub(crate) fn read<T: for<'de> Deserialize<'de>>(
    state: &dyn MetaStore,
    cf: Cf,
    key: &[u8],
) -> Result<Option<T>, StateError> {
    match state.get(cf, key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt(format!("{}: {e}", cf.name()))),
    }
}

impl From<StateError> for Refusal {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Store(StoreError::DiskFull) => Refusal::new(
                ErrorCode::DiskFull,
                "the node's disk is full; nothing was stored".to_string(),
            ),
            StateError::Conflict(message) => Refusal::new(ErrorCode::InvalidArgument, message),
            StateError::Refused(refusal) => refusal,
            other => Refusal::new(ErrorCode::Storage, format!("{other}; nothing was stored")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use pki::{DocumentKind, Name};

    use super::*;
    use crate::consensus::Ledger;
    use crate::engine::apply::apply;
    use crate::storage::store::{FaultyStore, MemStore};

    fn entry(resident: &str, seed: u8, at: i64) -> DocumentEntry {
        let record = IssueRecord {
            resident: ResidentId::parse(resident).unwrap(),
            kind: DocumentKind::parse("marriage-certificate").unwrap(),
            content_hash: ContentHash([seed; 32]),
            size: 10,
            issued_at: at,
            issuer: Name::parse("civil-affairs").unwrap(),
        };
        let signature = Signature([seed; 64]);
        DocumentEntry {
            document_id: record.document_id(&signature),
            record,
            signature,
            issuer_cert: vec![1, 2, 3],
            registered_at: at,
        }
    }

    #[test]
    fn register_emits_document_index_blob_and_log_writes() {
        let store = MemStore::new();
        let e = entry("resident-1", 1, 100);
        let proposal = Proposal {
            command: Command::RegisterDocument(e.clone()),
            seed: crate::consensus::fresh_seed(100),
        };
        let (applied, writes) = apply(&store, 1, &proposal).unwrap();
        assert_eq!(
            applied,
            Applied::DocumentRegistered {
                document_id: e.document_id,
                blob_existed: false,
                document_existed: false
            }
        );
        let cfs: Vec<Cf> = writes
            .iter()
            .map(|w| match w {
                Write::Put { cf, .. } | Write::Delete { cf, .. } => *cf,
            })
            .collect();
        assert_eq!(
            cfs,
            vec![
                Cf::Commands,
                Cf::Meta,
                Cf::Documents,
                Cf::ByResident,
                Cf::Blobs,
                // The log: the resident's first salt, the tag's head, the
                // entry, its detail, the tag index, the leaf, and the new size.
                Cf::ResidentSalts,
                Cf::Meta,
                Cf::LogEntries,
                Cf::LogDetails,
                Cf::LogByTag,
                Cf::LogNodes,
                Cf::Meta,
            ]
        );
        // apply itself changed nothing.
        assert_eq!(document(&store, e.document_id).unwrap(), None);
    }

    #[test]
    fn same_blob_twice_is_stored_once_and_retries_are_idempotent() {
        let ledger = Ledger::open(MemStore::new()).unwrap();
        let first = entry("resident-1", 7, 100);
        let mut second = entry("resident-2", 7, 101);
        second.record.issuer = Name::parse("tax-office").unwrap();
        second.document_id = second.record.document_id(&second.signature);
        ledger
            .submit(&Command::RegisterDocument(first.clone()))
            .unwrap();
        let applied = ledger.submit(&Command::RegisterDocument(second)).unwrap();
        assert!(matches!(
            applied,
            Applied::DocumentRegistered {
                blob_existed: true,
                document_existed: false,
                ..
            }
        ));
        let again = ledger.submit(&Command::RegisterDocument(first)).unwrap();
        assert!(matches!(
            again,
            Applied::DocumentRegistered {
                document_existed: true,
                ..
            }
        ));
        assert_eq!(applied_index(ledger.store()).unwrap(), 3);
    }

    #[test]
    fn listing_is_per_resident_and_newest_first() {
        let ledger = Ledger::open(MemStore::new()).unwrap();
        for (seed, at) in [(1u8, 100i64), (2, 300), (3, 200)] {
            ledger
                .submit(&Command::RegisterDocument(entry("resident-1", seed, at)))
                .unwrap();
        }
        ledger
            .submit(&Command::RegisterDocument(entry("resident-10", 9, 50)))
            .unwrap();
        let times: Vec<i64> = documents_of(
            ledger.store(),
            &ResidentId::parse("resident-1").unwrap(),
            LIST_LEN_MAX,
        )
        .unwrap()
        .iter()
        .map(|e| e.registered_at)
        .collect();
        assert_eq!(times, vec![300, 200, 100]);
    }

    #[test]
    fn size_conflict_is_refused_without_writes() {
        let ledger = Ledger::open(MemStore::new()).unwrap();
        ledger
            .submit(&Command::RegisterDocument(entry("resident-1", 4, 1)))
            .unwrap();
        let mut bad = entry("resident-2", 4, 2);
        bad.record.size = 11;
        bad.document_id = bad.record.document_id(&bad.signature);
        let err = ledger
            .submit(&Command::RegisterDocument(bad.clone()))
            .unwrap_err();
        assert!(matches!(err, StateError::Conflict(_)));
        assert_eq!(document(ledger.store(), bad.document_id).unwrap(), None);
        assert_eq!(applied_index(ledger.store()).unwrap(), 1);
    }

    #[test]
    fn failed_write_leaves_no_trace_and_the_index_is_reused() {
        let ledger =
            Ledger::open(FaultyStore::new(MemStore::new(), 1, StoreError::DiskFull)).unwrap();
        ledger
            .submit(&Command::RegisterDocument(entry("resident-1", 1, 1)))
            .unwrap();
        let e = entry("resident-1", 2, 2);
        let err = ledger
            .submit(&Command::RegisterDocument(e.clone()))
            .unwrap_err();
        assert_eq!(err, StateError::Store(StoreError::DiskFull));
        assert_eq!(document(ledger.store(), e.document_id).unwrap(), None);
        assert_eq!(applied_index(ledger.store()).unwrap(), 1);
    }

    /// `count` index keys `b"p" | i u32 BE` in [`Cf::ByResident`].
    fn index_of(count: u32) -> MemStore {
        let store = MemStore::new();
        let writes: Vec<Write> = (0..count)
            .map(|i| {
                put(
                    Cf::ByResident,
                    [&b"p"[..], &i.to_be_bytes()].concat(),
                    Vec::new(),
                )
            })
            // A key under the next prefix must never show up in a page of "p".
            .chain([put(Cf::ByResident, b"q\0\0\0\0".to_vec(), Vec::new())])
            .collect();
        store.write(&writes).unwrap();
        store
    }

    fn index_item(key: &[u8]) -> u32 {
        u32::from_be_bytes(key[1..5].try_into().unwrap())
    }

    /// Walks every page, checking each against the byte budget.
    fn walk<T: Serialize>(
        store: &MemStore,
        limit: Option<u32>,
        item: &mut ReadItem<'_, T>,
    ) -> Vec<Vec<T>> {
        let (mut pages, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let from = page_from(cursor.as_deref()).unwrap();
            let fill = PageFill::new(limit, LIST_LEN_MAX);
            let page = page(store, Cf::ByResident, b"p", from.as_deref(), fill, item).unwrap();
            let bytes = vault_client::wire::encoded_len(&page.items);
            assert!(
                page.items.len() == 1 || bytes <= vault_client::wire::PAGE_BYTES_MAX + 1,
                "{bytes}"
            );
            pages.push(page.items);
            match page.next_cursor {
                None => return pages,
                Some(next) => cursor = Some(next),
            }
        }
    }

    #[test]
    fn pages_of_large_items_stay_within_the_byte_budget_and_cover_every_item() {
        use vault_client::wire::{encode_frame, PAGE_BYTES_MAX as BUDGET};
        let store = index_of(40);
        // 100 KB items: five to a page (the sixth would pass the budget).
        let mut big = |key: &[u8]| Ok(Step::Item((index_item(key), "x".repeat(100_000))));
        let pages = walk(&store, Some(1_000), &mut big);
        assert_eq!(pages.len(), 8);
        assert!(pages.iter().all(|p| p.len() == BUDGET / 100_020));
        for p in &pages {
            let frame = encode_frame(&vault_client::wire::Response::GrantList {
                grants: Vec::new(),
                next_cursor: Some("00".repeat(8)),
            })
            .unwrap()
            .len()
                + vault_client::wire::encoded_len(p);
            assert!(frame <= vault_client::wire::RESPONSE_FRAME_LEN_MAX);
        }
        let seen: Vec<u32> = pages.concat().into_iter().map(|(i, _)| i).collect();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        // An item larger than the budget still makes progress, alone.
        let mut huge = |key: &[u8]| Ok(Step::Item((index_item(key), "x".repeat(BUDGET + 1))));
        let pages = walk(&store, None, &mut huge);
        assert_eq!(pages.len(), 40);
    }

    #[test]
    fn pages_honour_the_limit_skip_filtered_keys_and_stop_at_the_end() {
        let store = index_of(25);
        let mut odd = |key: &[u8]| {
            let i = index_item(key);
            Ok(match i {
                20.. => Step::End,
                i if i % 2 == 1 => Step::Item(i),
                _ => Step::Skip,
            })
        };
        let pages = walk(&store, Some(3), &mut odd);
        let lens: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(lens, [3, 3, 3, 1]);
        assert_eq!(pages.concat(), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    }

    #[test]
    fn a_page_scans_at_most_its_scan_budget_and_says_where_it_stopped() {
        let store = index_of(PAGE_SCAN_MAX as u32 + 5);
        let mut none = |_: &[u8]| Ok(Step::<u32>::Skip);
        let fill = PageFill::new(None, LIST_LEN_MAX);
        let first = page(&store, Cf::ByResident, b"p", None, fill, &mut none).unwrap();
        assert!(first.items.is_empty());
        let cursor = first.next_cursor.unwrap();
        assert_eq!(cursor, hex::encode((PAGE_SCAN_MAX as u32).to_be_bytes()));
        let from = page_from(Some(&cursor)).unwrap();
        let mut all = |key: &[u8]| Ok(Step::Item(index_item(key)));
        let rest = page(
            &store,
            Cf::ByResident,
            b"p",
            from.as_deref(),
            fill,
            &mut all,
        )
        .unwrap();
        assert_eq!(rest.items.len(), 5);
        assert_eq!(rest.next_cursor, None);
    }
}
