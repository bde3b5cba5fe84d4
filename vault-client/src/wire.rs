//! The `vault/1` wire protocol: frame codec and message types, with every
//! peer-controlled length bounded by a named maximum beside the type.
//!
//! This module does no I/O: it turns messages into bytes and bytes into
//! messages ([`encode_frame`], and [`decode_frame`], an incremental decoder
//! over whatever bytes have arrived), and holds the one byte-range rule both
//! sides apply ([`ByteRange::resolve`]). The async layer (`framing`, under
//! the `net` feature, and the node's server) drives it.
//!
//! One request per bidirectional QUIC stream. Messages are *frames*: a
//! 4-byte big-endian length, then that many bytes of UTF-8 JSON holding a
//! [`Request`] or a [`Response`]. A put exchanges two node frames
//! (`SendBody`, then `Stored`) around the upload body; a get's `Document`
//! frame is followed by the pieces of a verified transfer (see
//! [`crate::tree`]). `docs/PROTOCOL.md` draws it.

pub use pki::DocumentId;
use pki::{
    AccessRequest, ContentHash, DocumentKind, Grant, GrantBody, GrantId, GrantedDocument,
    IssueRecord, Name, Order, Purpose, RequestId, ResidentId, SealExtension, Signature,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// Largest request frame a node accepts, in bytes.
pub const FRAME_LEN_MAX: usize = 64 * 1024;
/// Largest response frame a client accepts, in bytes (listings are bigger
/// than requests).
pub const RESPONSE_FRAME_LEN_MAX: usize = 1024 * 1024;
/// Largest Raft RPC frame between nodes, in bytes: accepted by a node only
/// from a caller with a `node` certificate, and only for [`Request::Raft`]
/// (append batches and snapshot chunks exceed [`FRAME_LEN_MAX`]).
pub const RAFT_FRAME_LEN_MAX: usize = 16 * 1024 * 1024;
/// Length of the frame length prefix, in bytes.
pub const FRAME_PREFIX_LEN: usize = 4;
/// Largest document the vault accepts, in bytes (4 GiB).
pub const DOCUMENT_SIZE_MAX: u64 = 4 << 30;
/// Most documents one `list` response carries when the request names no
/// `limit` (older clients).
pub const LIST_LEN_MAX: usize = 200;
/// Largest encoded size of the items of one page of a listing, in bytes.
/// The node stops filling a page before the next item would pass it (a
/// page always holds at least one item), so a page's response fits in
/// [`RESPONSE_FRAME_LEN_MAX`] with room to spare for the rest of it (the
/// checkpoint note, the salt, the cursor, the JSON around the items), each
/// far smaller than the half left over. See [`PageFill`].
pub const PAGE_BYTES_MAX: usize = RESPONSE_FRAME_LEN_MAX / 2;
/// Most items one page of a listing carries, whatever `limit` asks.
pub const PAGE_LEN_MAX: usize = 1_000;
/// Longest cursor a request may carry, in characters (lowercase hex of the
/// next item's key).
pub const CURSOR_LEN_MAX: usize = 256;
/// Stream reset code: the node found stored bytes corrupt mid-transfer and
/// stopped before sending them.
pub const RESET_INTEGRITY: u32 = 1;
/// Stream reset code: the node failed internally mid-transfer.
pub const RESET_INTERNAL: u32 = 2;
/// Largest DER certificate carried in a response, in bytes.
pub const CERT_LEN_MAX: usize = 8 * 1024;
/// Largest encoded size of each list of a [`Response::Registry`] (its
/// purposes, and its departments), in bytes: a quarter of
/// [`RESPONSE_FRAME_LEN_MAX`], so both lists together take at most half
/// the frame. The node sends each registry in order (purposes by code,
/// departments by name) until the next entry would pass this, and then
/// says `truncated`. See [`fill_registry`].
pub const REGISTRY_BYTES_MAX: usize = RESPONSE_FRAME_LEN_MAX / 4;

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
        /// The grant to fetch under (needed by anyone but the issuer and the resident).
        #[serde(default)]
        grant: Option<GrantId>,
    },
    /// A department asks for a resident's documents (signed).
    CreateRequest {
        /// The request.
        request: AccessRequest,
        /// The department's signature over `request.canonical_bytes()`.
        signature: Signature,
        /// A request by kind resolves only among documents this department
        /// issued (and the district's issuer registry lets it issue). Not
        /// signed: it only narrows what the node resolves, which the
        /// resident sees before consenting.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<Name>,
    },
    /// A resident lists the pending requests addressed to them, one page
    /// (answered with [`Response::Requests`]).
    PendingRequests {
        /// Where the page starts: a previous page's `next_cursor`; the first
        /// page when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Most items wanted (capped at [`PAGE_LEN_MAX`]; the page may hold
        /// fewer to stay within [`PAGE_BYTES_MAX`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// A resident shows one pending request addressed to them (answered
    /// with [`Response::RequestDetail`]), e.g. to approve it.
    ShowRequest {
        /// Which request.
        request_id: RequestId,
    },
    /// A resident approves a request with their consent signature.
    Approve {
        /// The request.
        request_id: RequestId,
        /// What the resident consents to (may narrow the request).
        body: GrantBody,
        /// The resident's signature over `body.canonical_bytes()`.
        consent: Signature,
    },
    /// A resident denies a request.
    Deny {
        /// The request.
        request_id: RequestId,
    },
    /// List grants the caller gave (resident) or holds (department), one
    /// page (answered with [`Response::GrantList`]).
    Grants {
        /// Where the page starts (a previous page's `next_cursor`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Most items wanted (capped at [`PAGE_LEN_MAX`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Show one grant the caller is party to.
    ShowGrant {
        /// Which grant.
        grant_id: GrantId,
    },
    /// Revoke a grant (its resident) or give it up (its holder).
    RevokeGrant {
        /// Which grant.
        grant_id: GrantId,
    },
    /// A department files a statutory order (answered with
    /// [`Response::OrderFiled`]).
    FileOrder {
        /// What the department signed.
        order: Order,
        /// The department's signature over `order.canonical_bytes()`.
        signature: Signature,
        /// Resolve kinds only to documents from this issuer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<Name>,
    },
    /// List the orders the caller may see, one page: a department its own,
    /// authorities and auditors every one ([`Response::Orders`]).
    Orders {
        /// Where the page starts (a previous page's `next_cursor`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Most items wanted (capped at [`PAGE_LEN_MAX`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Show one order (to the same parties as `Orders`).
    ShowOrder {
        /// Which order.
        order_id: RequestId,
    },
    /// An authority (or, where the purpose needs none, the ordering
    /// department) approves an order by signing the grant body.
    ApproveOrder {
        /// The order.
        order_id: RequestId,
        /// The grant's body (its `request_id` is the order's id).
        body: GrantBody,
        /// The approver's signature over `body.canonical_bytes()`.
        approval: Signature,
    },
    /// An authority denies an order.
    DenyOrder {
        /// The order.
        order_id: RequestId,
    },
    /// An authority extends an order's seal.
    ExtendSeal {
        /// What the authority signed.
        extension: SealExtension,
        /// Its signature over `extension.canonical_bytes()`.
        signature: Signature,
    },
    /// The resident reads a disclosed order and its sealed entries, each
    /// with its inclusion proof ([`Response::Disclosure`]).
    Disclosure {
        /// The order (the disclosure entry's `request_id`).
        order_id: RequestId,
        /// The tree size to prove against (the current checkpoint's when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tree_size: Option<u64>,
    },
    /// The current signed checkpoint of the log.
    Checkpoint,
    /// Log entries `[start, start + count)` (auditors). The answer may
    /// hold fewer (at most [`PAGE_LEN_MAX`], within [`PAGE_BYTES_MAX`]):
    /// ask again from `start` plus the number received.
    LogEntries {
        /// First index.
        start: u64,
        /// How many (at most 1000 per page).
        count: u64,
    },
    /// A receipt for one log entry: the entry, its inclusion proof and the
    /// signed checkpoint it leads to. Auditors and nodes may ask for any
    /// entry, a department for entries it is the actor of, a resident for
    /// entries carrying their tag.
    Receipt {
        /// The entry's index.
        index: u64,
    },
    /// An inclusion proof for one entry.
    InclusionProof {
        /// The entry's index.
        index: u64,
        /// The tree size to prove against (the current size when absent).
        #[serde(default)]
        tree_size: Option<u64>,
    },
    /// A consistency proof between two tree sizes.
    ConsistencyProof {
        /// The older size.
        from: u64,
        /// The newer size.
        to: u64,
    },
    /// A resident's own log entries, with details and inclusion proofs,
    /// one page, oldest first.
    Accesses {
        /// Every entry about the resident, not only fetches.
        #[serde(default)]
        all: bool,
        /// Where the page starts (a previous page's `next_cursor`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Most items wanted (capped at [`PAGE_LEN_MAX`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// The tree size to prove against and list up to (the current
        /// checkpoint's when absent): a client walking the pages passes the
        /// first page's, so every page is checked against one checkpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tree_size: Option<u64>,
    },
    /// List the documents of a resident that the caller may see, one page,
    /// newest first.
    List {
        /// Whose documents.
        resident: ResidentId,
        /// Where the page starts (a previous page's `next_cursor`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Most items wanted (capped at [`PAGE_LEN_MAX`]; [`LIST_LEN_MAX`]
        /// when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// A Raft RPC from another node (callers with a `node` certificate only).
    Raft {
        /// The RPC.
        rpc: RaftRpc,
    },
    /// Cluster mode, node to node: a copy of a blob follows (exactly `size`
    /// plaintext bytes); the receiver verifies it against `content_hash`
    /// and stores it under its own key. Answered with
    /// [`Response::BlobStored`].
    PushBlob {
        /// The blob's BLAKE3 content hash.
        content_hash: ContentHash,
        /// Its size in bytes.
        size: u64,
    },
    /// Cluster mode, node to node: send a copy of a blob. Answered with
    /// [`Response::BlobFollows`] and the plaintext bytes.
    FetchBlob {
        /// The blob's BLAKE3 content hash.
        content_hash: ContentHash,
    },
    /// The node's status (nodes and auditors only). Answered with
    /// [`Response::Status`].
    Status,
    /// Change the cluster's membership (callers with a `node` certificate
    /// only; a follower forwards it to the leader). Answered with
    /// [`Response::Membership`].
    ChangeMembership {
        /// What to change.
        change: MembershipChange,
    },
    /// The district's registries as this node holds them: every purpose
    /// (code, descriptions, legal basis) and every department (display
    /// names, kinds it may issue). Public information: any authenticated
    /// caller may ask. Answered with [`Response::Registry`].
    Registry,
}

/// A change to a cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MembershipChange {
    /// Add node `id` at `addr`: first as a learner that catches up with the
    /// log (or a snapshot), then as a voter.
    Add {
        /// The new node's Raft id.
        id: u64,
        /// Its `HOST:PORT` (a name in its certificate).
        addr: String,
    },
    /// Remove node `id` from the voters and the membership.
    Remove {
        /// The Raft id to remove.
        id: u64,
    },
}

/// A Raft RPC between nodes. The body is the JSON of the replication
/// library's request type, opaque to this crate (the node decodes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum RaftRpc {
    /// Append entries (and heartbeats).
    AppendEntries(serde_json::Value),
    /// Request a vote.
    Vote(serde_json::Value),
    /// One chunk of a snapshot.
    InstallSnapshot(serde_json::Value),
    /// A client write forwarded by a follower to the leader: the JSON of
    /// the node's proposal; the reply is the JSON of the outcome.
    Propose(serde_json::Value),
    /// A follower asks the leader for the log index a linearizable read
    /// must wait for; the reply is that index (JSON number).
    ReadIndex,
    /// A membership change forwarded by a follower to the leader; the
    /// reply is the JSON of the resulting [`Response::Membership`] fields.
    ChangeMembership(MembershipChange),
}

/// A half-open byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// The whole of a document of `size` bytes.
    pub fn whole(size: u64) -> ByteRange {
        ByteRange {
            start: 0,
            end: size,
        }
    }

    /// The range a node serves for a get of a document of `size` bytes
    /// that asked for `requested`: the whole document when absent, else the
    /// request with its end clamped to `size` (so `start..u64::MAX` means
    /// "from `start` to the end"). A start past the clamped end is refused
    /// with [`ErrorCode::InvalidArgument`]. The node applies this rule to
    /// answer; the client applies it to check what it was sent.
    pub fn resolve(requested: Option<ByteRange>, size: u64) -> Result<ByteRange, RangeError> {
        let range = match requested {
            None => ByteRange::whole(size),
            Some(r) => ByteRange {
                start: r.start,
                end: r.end.min(size),
            },
        };
        if range.start > range.end {
            return Err(RangeError {
                start: range.start,
                end: range.end,
                size,
            });
        }
        Ok(range)
    }
}

/// A requested byte range that lies outside its document
/// (from [`ByteRange::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range {start}..{end} is outside the document's {size} bytes")]
pub struct RangeError {
    /// The requested start.
    pub start: u64,
    /// The requested end, clamped to the document's size.
    pub end: u64,
    /// The document's size in bytes.
    pub size: u64,
}

impl RangeError {
    /// The stable error code: [`ErrorCode::InvalidArgument`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
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
        /// The index of this fetch's log entry, durable before this frame
        /// (absent from nodes older than receipts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_index: Option<u64>,
    },
    /// Answer to a `Receipt`.
    Receipt {
        /// The entry's canonical bytes, lowercase hex.
        entry: String,
        /// Its inclusion proof against the note's tree size (hex hashes).
        inclusion_proof: Vec<String>,
        /// The signed checkpoint note.
        note: String,
    },
    /// Answer to a `List`: one page.
    Documents {
        /// The documents, newest first.
        documents: Vec<DocumentView>,
        /// Where the next page starts; absent at the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    /// Answer to `CreateRequest`.
    RequestCreated {
        /// The request's id. Which documents it resolved to is shown to the
        /// resident, and to the department only in the grant.
        request_id: RequestId,
    },
    /// Answer to `PendingRequests`: one page.
    Requests {
        /// Pending requests.
        requests: Vec<RequestView>,
        /// Where the next page starts; absent at the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    /// Answer to `ShowRequest`.
    RequestDetail {
        /// The pending request.
        request: RequestView,
    },
    /// Answer to `Approve`: the sealed grant.
    GrantIssued {
        /// The grant.
        grant: Grant,
    },
    /// Answer to `Deny`.
    Denied {
        /// The request.
        request_id: RequestId,
    },
    /// Answer to `Grants`: one page.
    GrantList {
        /// The grants.
        grants: Vec<GrantView>,
        /// Where the next page starts; absent at the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    /// Answer to `ShowGrant`.
    GrantDetail {
        /// The grant and its state.
        grant: GrantView,
        /// The sealed grant itself (for offline verification).
        sealed: Grant,
    },
    /// Answer to `RevokeGrant`.
    GrantRevoked {
        /// The grant.
        grant_id: GrantId,
    },
    /// Answer to `FileOrder`.
    OrderFiled {
        /// The order's id.
        order_id: RequestId,
    },
    /// Answer to `Orders`: one page.
    Orders {
        /// The orders.
        orders: Vec<OrderView>,
        /// Where the next page starts; absent at the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    /// Answer to `ShowOrder`.
    OrderDetail {
        /// The order.
        order: OrderView,
    },
    /// Answer to `DenyOrder`.
    OrderDenied {
        /// The order.
        order_id: RequestId,
    },
    /// Answer to `ExtendSeal`.
    SealExtended {
        /// The order.
        order_id: RequestId,
        /// The seal's new end.
        seal_until: i64,
    },
    /// Answer to `Disclosure`.
    Disclosure {
        /// The checkpoint every proof is against.
        note: String,
        /// The order.
        order: OrderView,
        /// The order's sealed entries, in log order, with details and proofs.
        entries: Vec<AccessRecord>,
    },
    /// Answer to `Checkpoint`: a C2SP signed note.
    Checkpoint {
        /// The signed note.
        note: String,
    },
    /// Answer to `LogEntries`.
    LogEntries {
        /// Index of the first entry.
        start: u64,
        /// Canonical entries, lowercase hex.
        entries: Vec<String>,
    },
    /// Answer to `InclusionProof` (hashes lowercase hex).
    InclusionProof {
        /// The entry.
        leaf_index: u64,
        /// The tree size proven against.
        tree_size: u64,
        /// The entry's leaf hash.
        leaf_hash: String,
        /// The root at `tree_size`.
        root_hash: String,
        /// The audit path.
        inclusion_proof: Vec<String>,
    },
    /// Answer to `ConsistencyProof` (hashes lowercase hex).
    ConsistencyProof {
        /// The older size.
        old_size: u64,
        /// The newer size.
        new_size: u64,
        /// Root at the older size.
        old_root: String,
        /// Root at the newer size.
        new_root: String,
        /// The proof.
        consistency_proof: Vec<String>,
    },
    /// Answer to `Accesses`.
    Accesses {
        /// The checkpoint every proof is against.
        note: String,
        /// The resident's salt (hex), to check the tags.
        salt: String,
        /// The resident's entries on this page, oldest first, proven
        /// against the request's `tree_size`, else against `note`.
        entries: Vec<AccessRecord>,
        /// More entries follow on later pages (`next_cursor` is set).
        #[serde(default)]
        truncated: bool,
        /// Where the next page starts; absent at the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
        /// The resident index proof for the caller's tag against the
        /// note's `resident-index` root, with the tag's head and count at
        /// the note's size; absent when the page is against another size or
        /// the resident has no salt (older nodes send none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<IndexProof>,
        /// σ (hex): the district salt key's RSA PKCS#1 v1.5 SHA-256
        /// signature over `"vault/resident-salt/v1\n" || resident`, from
        /// which the resident derives their salt and checks `salt`
        /// ([`pki::SaltVerifier::salt`]); absent from a node without the key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        salt_proof: Option<String>,
    },
    /// Answer to a [`Request::Raft`]: the JSON of the replication library's
    /// result (its reply or its error), opaque to this crate.
    Raft {
        /// The result.
        reply: serde_json::Value,
    },
    /// Answer to a [`Request::PushBlob`]: the blob is stored and verified.
    BlobStored {
        /// The blob's content hash.
        content_hash: ContentHash,
    },
    /// Answer to a [`Request::FetchBlob`]: exactly `size` plaintext bytes
    /// follow (the receiver verifies them against the hash).
    BlobFollows {
        /// The blob's size in bytes.
        size: u64,
    },
    /// Answer to a [`Request::Status`].
    Status {
        /// What the node reports.
        status: NodeStatus,
    },
    /// Answer to a [`Request::ChangeMembership`]: the membership once the
    /// change is committed.
    Membership {
        /// Every member after the change.
        members: Vec<StatusMember>,
        /// The Raft log index that committed the change.
        log_index: u64,
    },
    /// Answer to a [`Request::Registry`]: the node's purpose registry and
    /// issuer registry (each list at most [`REGISTRY_BYTES_MAX`] bytes of
    /// encoded entries). `departments` is empty when the node runs without
    /// an issuer registry, `purposes` when it runs without a purpose
    /// registry.
    Registry {
        /// The registered purposes, in code order.
        purposes: Vec<RegistryPurpose>,
        /// The listed departments, in name order.
        departments: Vec<RegistryDepartment>,
        /// Entries were left out (from the end of either list) to keep the
        /// answer within [`REGISTRY_BYTES_MAX`] per list.
        #[serde(default)]
        truncated: bool,
    },
    /// The request was refused or failed.
    Error(ErrorBody),
}

/// A node's status, as `vault-node status --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's certificate name.
    pub node: String,
    /// Whether it runs in cluster mode.
    pub cluster: bool,
    /// Its Raft id (cluster mode).
    pub node_id: Option<u64>,
    /// The leader it knows of (cluster mode).
    pub leader: Option<u64>,
    /// The members it knows, this node included (cluster mode).
    pub members: Vec<StatusMember>,
    /// The index of the last entry in its Raft log (cluster mode).
    pub last_log_index: Option<u64>,
    /// The index of the last command its state machine applied.
    pub applied_index: u64,
    /// How many entries the transparency log holds.
    pub log_size: u64,
    /// How many blob files it holds under `blobs/`.
    pub blobs_local: u64,
    /// How many documents its state machine knows.
    pub documents: u64,
    /// How many blobs placement assigns to this node (cluster mode); a
    /// reconciled node holds at least these.
    #[serde(default)]
    pub blobs_placed: Option<u64>,
    /// The last log index covered by its latest snapshot (cluster mode).
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    /// The last log index purged from its Raft log (cluster mode).
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// R and W of its policy (cluster mode).
    #[serde(default)]
    pub replicas: Option<usize>,
    /// W of its policy (cluster mode).
    #[serde(default)]
    pub write_quorum: Option<usize>,
    /// What repair has done since the node started (cluster mode).
    #[serde(default)]
    pub repair: Option<RepairStatus>,
}

/// Repair totals since a node started, in a [`NodeStatus`]: the scheduled
/// scrubs, and reads that found their local copy missing or corrupt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    /// Scrubs completed.
    pub scrubs: u64,
    /// When the last scrub finished (Unix seconds).
    pub last_scrub_at: Option<i64>,
    /// Copies the scrubs read back in full.
    pub checked: u64,
    /// Missing or corrupt copies the scrubs replaced with a verified one.
    pub repaired: u64,
    /// Missing or corrupt copies no member could supply.
    pub failed: u64,
    /// Unreferenced blobs collected after the grace.
    pub orphans_collected: u64,
    /// Reads whose local copy was missing or corrupt, served from a
    /// verified copy fetched from a member instead.
    pub read_repaired: u64,
}

/// A cluster member in a [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMember {
    /// Its Raft id.
    pub id: u64,
    /// Its `HOST:PORT`.
    pub addr: String,
    /// Whether it votes (a learner still catching up does not, and holds
    /// no blobs by placement).
    #[serde(default)]
    pub voter: bool,
}

/// A purpose of the district's purpose registry, as the node describes it
/// in a [`Response::Registry`]. The Chinese (zh-CN) texts are absent when
/// the registry file does not give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryPurpose {
    /// The code departments use, e.g. `housing-subsidy`.
    pub code: Purpose,
    /// What it is for (English).
    pub description: String,
    /// What it is for (Chinese).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_zh: Option<String>,
    /// The law or regulation that allows it (English).
    pub legal_basis: String,
    /// The law or regulation that allows it (Chinese).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis_zh: Option<String>,
    /// Longest validity a request for it may ask, in seconds.
    pub ttl_s_max: u64,
    /// Present when the purpose is statutory: access by law, without the
    /// resident's consent, through orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statutory: Option<Statutory>,
}

/// What makes a purpose statutory: who may invoke it, how long its orders
/// may stay sealed, and whether an authority must approve each one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statutory {
    /// The departments that may file orders under it (certificate CNs).
    pub departments: Vec<Name>,
    /// Longest seal an order (or an extension, from its signing) may set,
    /// in seconds.
    pub seal_s_max: u64,
    /// Whether an authority (a certificate of role `authority`) must
    /// approve each order; otherwise the ordering department approves its
    /// own.
    pub authority_required: bool,
}

/// A department of the district's issuer registry, as the node describes
/// it in a [`Response::Registry`]. The display names are absent when the
/// registry file does not give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryDepartment {
    /// The department's name (its certificate CN), e.g. `civil-affairs`.
    pub department: Name,
    /// Its display name (English), e.g. "Civil Affairs Bureau".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its display name (Chinese), e.g. "民政局".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<String>,
    /// The kinds it may issue, sorted (empty: it issues none).
    pub kinds: Vec<DocumentKind>,
}

/// The language a [`Registry`] text is wanted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// English (the registries' required texts).
    English,
    /// Simplified Chinese (zh-CN; the registries' optional `_zh` texts).
    Chinese,
}

impl RegistryPurpose {
    /// The description in `language` (English when no Chinese is given).
    pub fn description_in(&self, language: Language) -> &str {
        match (language, &self.description_zh) {
            (Language::Chinese, Some(zh)) => zh,
            _ => &self.description,
        }
    }

    /// The legal basis in `language` (English when no Chinese is given).
    pub fn legal_basis_in(&self, language: Language) -> &str {
        match (language, &self.legal_basis_zh) {
            (Language::Chinese, Some(zh)) => zh,
            _ => &self.legal_basis,
        }
    }
}

impl RegistryDepartment {
    /// The display name in `language`, else the other language's, else
    /// the department's code name.
    pub fn name_in(&self, language: Language) -> &str {
        let (first, second) = match language {
            Language::English => (&self.name, &self.name_zh),
            Language::Chinese => (&self.name_zh, &self.name),
        };
        first
            .as_deref()
            .or(second.as_deref())
            .unwrap_or(self.department.as_str())
    }
}

/// The district's registries as one node answered them
/// ([`Response::Registry`]), sorted for lookups by code and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Registry {
    purposes: Vec<RegistryPurpose>,
    departments: Vec<RegistryDepartment>,
    truncated: bool,
}

impl Registry {
    /// The registries from a [`Response::Registry`]'s fields, in any order
    /// (a code or name listed twice: the first is found).
    pub fn new(
        mut purposes: Vec<RegistryPurpose>,
        mut departments: Vec<RegistryDepartment>,
        truncated: bool,
    ) -> Registry {
        purposes.sort_by(|a, b| a.code.cmp(&b.code));
        departments.sort_by(|a, b| a.department.cmp(&b.department));
        Registry {
            purposes,
            departments,
            truncated,
        }
    }

    /// Every purpose, in code order.
    pub fn purposes(&self) -> &[RegistryPurpose] {
        &self.purposes
    }

    /// Every department, in name order.
    pub fn departments(&self) -> &[RegistryDepartment] {
        &self.departments
    }

    /// Whether the node left entries out (see [`REGISTRY_BYTES_MAX`]): a
    /// code or name not found may then still be registered.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The purpose with this code.
    pub fn purpose(&self, code: &Purpose) -> Option<&RegistryPurpose> {
        let at = self.purposes.partition_point(|p| p.code < *code);
        self.purposes.get(at).filter(|p| p.code == *code)
    }

    /// The department with this name.
    pub fn department(&self, department: &Name) -> Option<&RegistryDepartment> {
        let at = self
            .departments
            .partition_point(|d| d.department < *department);
        self.departments
            .get(at)
            .filter(|d| d.department == *department)
    }

    /// How to show `department` in `language`: its display name (see
    /// [`RegistryDepartment::name_in`]), or its code name when the
    /// registry does not list it.
    pub fn department_name<'a>(&'a self, department: &'a Name, language: Language) -> &'a str {
        self.department(department)
            .map_or(department.as_str(), |d| d.name_in(language))
    }
}

/// Takes `items` in order while their encoded size (each with its
/// separating comma) stays within [`REGISTRY_BYTES_MAX`]; answers what was
/// taken and whether any item was left out. The node fills each list of a
/// [`Response::Registry`] with it, so the answer fits the frame whatever
/// the registry files hold.
pub fn fill_registry<T: Serialize>(items: impl IntoIterator<Item = T>) -> (Vec<T>, bool) {
    let mut taken = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        bytes = bytes.saturating_add(encoded_len(&item)).saturating_add(1);
        if bytes > REGISTRY_BYTES_MAX {
            return (taken, true);
        }
        taken.push(item);
    }
    (taken, false)
}

/// One of a resident's log entries, with what proves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Its index in the log.
    pub index: u64,
    /// The canonical entry, lowercase hex.
    pub entry: String,
    /// The detail behind its commitment.
    pub detail: pki::LogDetail,
    /// Inclusion proof against the checkpoint (hex hashes).
    pub inclusion_proof: Vec<String>,
}

/// A resident index proof ([`crate::smt`]) for one resident tag: its
/// newest entry and number of entries, and the path to the index root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexProof {
    /// Index of the tag's newest entry (0 when `count` is 0).
    pub head: u64,
    /// How many entries carry the tag (0: the proof is of its absence).
    pub count: u64,
    /// Sibling hashes from the root down (hex, at most 256).
    pub siblings: Vec<String>,
    /// For an absence proof ending in another tag's leaf: that leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_leaf: Option<IndexLeaf>,
}

/// A leaf of the resident index (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLeaf {
    /// Its key (a resident tag).
    pub key: String,
    /// Its value ([`crate::smt::head_value`]).
    pub value: String,
}

/// A pending access request, as shown to the resident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestView {
    /// Its id.
    pub request_id: RequestId,
    /// The requesting department.
    pub department: Name,
    /// SHA-256 of the department's certificate key (the grant's holder).
    pub department_key_id: String,
    /// The purpose code.
    pub purpose: Purpose,
    /// What the purpose is for.
    pub purpose_description: String,
    /// The law that allows it.
    pub legal_basis: String,
    /// The documents asked for.
    pub documents: Vec<RequestedDocument>,
    /// How long the department asks to hold access, in seconds.
    pub ttl_s: u64,
    /// When the request was made.
    pub created_at: i64,
    /// After this (unix seconds) the request can no longer be approved;
    /// absent for requests recorded before requests expired.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// One document in a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedDocument {
    /// The document.
    pub document_id: DocumentId,
    /// Its content hash.
    pub content_hash: ContentHash,
    /// Its kind.
    pub kind: DocumentKind,
    /// Who issued it.
    pub issuer: Name,
}

/// A grant and its current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantView {
    /// Its id.
    pub grant_id: GrantId,
    /// The request it answers.
    pub request_id: RequestId,
    /// The consenting resident.
    pub resident: ResidentId,
    /// The department holding it.
    pub grantee: Name,
    /// Why.
    pub purpose: Purpose,
    /// The documents it covers.
    pub documents: Vec<GrantedDocument>,
    /// Valid from.
    pub not_before: i64,
    /// Valid until.
    pub not_after: i64,
    /// Uses allowed.
    pub max_uses: u32,
    /// Uses spent.
    pub uses: u32,
    /// Revoked or given up.
    pub revoked: bool,
}

/// A statutory order, as its parties see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Its id.
    pub order_id: RequestId,
    /// Whose documents.
    pub resident: ResidentId,
    /// The ordering department.
    pub department: Name,
    /// SHA-256 of its certificate key (hex): the grant's holder.
    pub department_key_id: String,
    /// The statutory purpose.
    pub purpose: Purpose,
    /// The law that allows it (from the registry when filed).
    pub legal_basis: String,
    /// The case reference.
    pub case_ref: String,
    /// The documents it resolved to.
    pub documents: Vec<GrantedDocument>,
    /// Validity the grant may have, in seconds.
    pub ttl_s: u64,
    /// When the node recorded it.
    pub recorded_at: i64,
    /// When the seal ends.
    pub seal_until: i64,
    /// Whether an authority must approve.
    pub authority_required: bool,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    /// The grant, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<GrantId>,
    /// Who approved or denied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Name>,
    /// In which role (`authority`, or `department` where none is needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_role: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    /// When the node disclosed it to the resident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosed_at: Option<i64>,
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

/// Fills one page of a listing within its bounds: at most `len_max` items
/// (the request's `limit`, capped at [`PAGE_LEN_MAX`]) and at most
/// [`PAGE_BYTES_MAX`] bytes of encoded items, but always at least one item,
/// so a walk over the pages always advances. Pure bookkeeping: the node
/// measures each item ([`encoded_len`]) and asks before adding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFill {
    bytes: usize,
    len: usize,
    len_max: usize,
}

impl PageFill {
    /// A page for a request asking for `limit` items (`default` when absent).
    pub fn new(limit: Option<u32>, default: usize) -> PageFill {
        let wanted = limit.map_or(default, |l| usize::try_from(l).unwrap_or(usize::MAX));
        PageFill {
            bytes: 0,
            len: 0,
            len_max: wanted.clamp(1, PAGE_LEN_MAX),
        }
    }

    /// Whether an item of `item_bytes` encoded bytes fits, and if so counts
    /// it (with its separating comma).
    pub fn admit(&mut self, item_bytes: usize) -> bool {
        let bytes = self.bytes.saturating_add(item_bytes).saturating_add(1);
        if self.len > 0 && (self.len >= self.len_max || bytes > PAGE_BYTES_MAX) {
            return false;
        }
        self.bytes = bytes;
        self.len += 1;
        true
    }

    /// Whether no further item can join (the item count is reached).
    pub fn is_full(&self) -> bool {
        self.len >= self.len_max
    }

    /// The encoded bytes of the items admitted so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One page of a listing: its items and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The cursor of the next page (an opaque hex string); `None` at the end.
    pub next_cursor: Option<String>,
}

/// How many bytes `item` takes in a JSON frame.
pub fn encoded_len<T: Serialize>(item: &T) -> usize {
    serde_json::to_vec(item).map_or(usize::MAX, |v| v.len())
}

/// Turns a key's tail into a cursor (lowercase hex).
pub fn encode_cursor(tail: &[u8]) -> String {
    hex::encode(tail)
}

/// Reads a cursor back into the key tail it names; `None` when absent.
/// A cursor longer than [`CURSOR_LEN_MAX`] or not hex is refused with
/// [`ErrorCode::InvalidArgument`].
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<Vec<u8>>, CursorError> {
    let Some(text) = cursor else {
        return Ok(None);
    };
    if text.len() > CURSOR_LEN_MAX {
        return Err(CursorError);
    }
    hex::decode(text).map(Some).map_err(|_| CursorError)
}

/// A cursor that no page handed out (from [`decode_cursor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one a page handed out (hex, at most {CURSOR_LEN_MAX} characters)")]
pub struct CursorError;

impl CursorError {
    /// The stable error code: [`ErrorCode::InvalidArgument`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
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
}

impl WireError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            WireError::Malformed(_) => ErrorCode::FrameMalformed,
        }
    }
}

/// Encodes a message as one frame: length prefix and JSON (at most
/// [`RESPONSE_FRAME_LEN_MAX`]; requests are checked against
/// [`FRAME_LEN_MAX`] by the node).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    encode_frame_max(message, RESPONSE_FRAME_LEN_MAX)
}

/// Encodes a message as one frame of at most `max` bytes (e.g.
/// [`RAFT_FRAME_LEN_MAX`] for Raft RPCs).
pub fn encode_frame_max<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let body = serde_json::to_vec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > max {
        return Err(WireError::FrameTooLarge {
            len: body.len(),
            max,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge {
        len: body.len(),
        max,
    })?;
    let mut frame = Vec::with_capacity(FRAME_PREFIX_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads a frame's length prefix and checks it against `max`
/// ([`FRAME_LEN_MAX`] for requests, [`RESPONSE_FRAME_LEN_MAX`] for responses).
pub fn decode_frame_len(prefix: [u8; FRAME_PREFIX_LEN], max: usize) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(WireError::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a frame body (without its prefix) into a message.
pub fn decode_frame_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameStatus<T> {
    /// No whole frame yet: at least `needed` more bytes must arrive.
    NeedMore {
        /// Bytes missing before the next decision can be made (the rest of
        /// the prefix, or the rest of the body).
        needed: usize,
    },
    /// One whole frame.
    Frame {
        /// Its decoded message.
        message: T,
        /// The bytes it took, prefix included; the next frame (if any)
        /// starts there.
        consumed: usize,
    },
}

/// The incremental frame decoder: looks at the bytes received so far
/// (`buf`, starting at a frame boundary) and answers that more are needed,
/// or decodes the one frame they start with. A length prefix over `max` is
/// refused ([`WireError::FrameTooLarge`], code `frame.too_large`) as soon
/// as the prefix is complete, before its body arrives; a body that is not a
/// valid message is [`WireError::Malformed`]. Bytes after the first frame
/// are left alone: call again from `consumed`.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max: usize,
) -> Result<FrameStatus<T>, WireError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<FRAME_PREFIX_LEN>() else {
        return Ok(FrameStatus::NeedMore {
            needed: FRAME_PREFIX_LEN - buf.len(),
        });
    };
    let len = decode_frame_len(*prefix, max)?;
    match rest.get(..len) {
        None => Ok(FrameStatus::NeedMore {
            needed: len - rest.len(),
        }),
        Some(body) => Ok(FrameStatus::Frame {
            message: decode_frame_body(body)?,
            consumed: FRAME_PREFIX_LEN + len,
        }),
    }
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

    fn registry_purpose(code: &str, text: &str) -> RegistryPurpose {
        RegistryPurpose {
            code: Purpose::parse(code).unwrap(),
            description: text.to_string(),
            description_zh: Some(format!("{text}（中文）")),
            legal_basis: text.to_string(),
            legal_basis_zh: None,
            ttl_s_max: 3_600,
            statutory: None,
        }
    }

    fn registry_department(name: &str, zh: Option<&str>) -> RegistryDepartment {
        RegistryDepartment {
            department: Name::parse(name).unwrap(),
            name: None,
            name_zh: zh.map(str::to_string),
            kinds: vec![DocumentKind::parse("deed").unwrap()],
        }
    }

    #[test]
    fn the_registry_messages_have_their_documented_shape() {
        assert_eq!(
            serde_json::to_string(&Request::Registry).unwrap(),
            r#"{"type":"registry"}"#
        );
        let response = Response::Registry {
            purposes: vec![registry_purpose("housing-subsidy", "Assess")],
            departments: vec![registry_department("tax-office", Some("税务局"))],
            truncated: false,
        };
        let json = serde_json::to_string(&response).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"type":"registry","purposes":[{"code":"housing-subsidy","description":"Assess","#,
                r#""description_zh":"Assess（中文）","legal_basis":"Assess","ttl_s_max":3600}],"#,
                r#""departments":[{"department":"tax-office","name_zh":"税务局","kinds":["deed"]}],"#,
                r#""truncated":false}"#
            )
        );
        let frame = encode_frame(&response).unwrap();
        assert_eq!(
            decode_frame_body::<Response>(&frame[4..]).unwrap(),
            response
        );
        // `truncated` may be absent, and the optional texts too.
        let bare = r#"{"type":"registry","purposes":[{"code":"a","description":"d",
            "legal_basis":"l","ttl_s_max":1}],"departments":[{"department":"b","kinds":[]}]}"#;
        let Response::Registry {
            purposes,
            departments,
            truncated,
        } = serde_json::from_str(bare).unwrap()
        else {
            panic!("not a registry answer");
        };
        assert!(!truncated && purposes[0].description_zh.is_none());
        assert!(departments[0].name.is_none() && departments[0].kinds.is_empty());
    }

    #[test]
    fn the_largest_registries_fill_within_the_response_frame() {
        // 10 000 purposes and 10 000 departments (the registries' caps),
        // each entry far larger than any real one.
        let long = "x".repeat(2_000);
        let (purposes, purposes_cut) =
            fill_registry((0..10_000).map(|i| registry_purpose(&format!("purpose-{i:05}"), &long)));
        let (departments, departments_cut) = fill_registry((0..10_000).map(|i| {
            let mut d = registry_department(&format!("department-{i:05}"), Some(&long));
            d.name = Some(long.clone());
            d.kinds = (0..1_000)
                .map(|k| DocumentKind::parse(&format!("kind-{k:04}")).unwrap())
                .collect();
            d
        }));
        assert!(purposes_cut && departments_cut);
        assert!(!purposes.is_empty());
        assert_eq!(
            purposes[0].code.as_str(),
            "purpose-00000",
            "a prefix, in order"
        );
        let response = Response::Registry {
            purposes,
            departments,
            truncated: true,
        };
        let frame = encode_frame(&response).unwrap();
        assert!(
            frame.len() <= RESPONSE_FRAME_LEN_MAX / 2 + 1_000,
            "{}",
            frame.len()
        );
        // Small registries are sent whole.
        let (all, cut) = fill_registry((0..100).map(|i| registry_purpose(&format!("p{i}"), "d")));
        assert_eq!((all.len(), cut), (100, false));
    }

    #[test]
    fn registry_lookups_find_entries_in_any_order_and_fall_back_to_english_or_codes() {
        let registry = Registry::new(
            vec![
                registry_purpose("tax-assessment", "Tax"),
                registry_purpose("housing-subsidy", "Housing"),
            ],
            vec![
                registry_department("tax-office", Some("税务局")),
                registry_department("civil-affairs", None),
            ],
            false,
        );
        let housing = registry
            .purpose(&Purpose::parse("housing-subsidy").unwrap())
            .unwrap();
        assert_eq!(housing.description_in(Language::Chinese), "Housing（中文）");
        assert_eq!(housing.legal_basis_in(Language::Chinese), "Housing");
        assert_eq!(housing.description_in(Language::English), "Housing");
        assert!(registry
            .purpose(&Purpose::parse("unknown").unwrap())
            .is_none());
        let tax = Name::parse("tax-office").unwrap();
        assert_eq!(registry.department_name(&tax, Language::Chinese), "税务局");
        assert_eq!(registry.department_name(&tax, Language::English), "税务局");
        let civil = Name::parse("civil-affairs").unwrap();
        assert_eq!(
            registry.department_name(&civil, Language::Chinese),
            "civil-affairs"
        );
        let unlisted = Name::parse("records-office").unwrap();
        assert!(registry.department(&unlisted).is_none());
        assert_eq!(
            registry.department_name(&unlisted, Language::English),
            "records-office"
        );
        assert_eq!(registry.departments()[0].department, civil, "sorted");
        assert!(!registry.truncated());
    }

    #[test]
    fn frame_round_trip() {
        let request = Request::Get {
            document_id: DocumentId::from_bytes([7; 16]),
            range: Some(ByteRange { start: 1, end: 9 }),
            grant: None,
        };
        let frame = encode_frame(&request).unwrap();
        let len = decode_frame_len(frame[..4].try_into().unwrap(), FRAME_LEN_MAX).unwrap();
        assert_eq!(len, frame.len() - 4);
        let back: Request = decode_frame_body(&frame[4..]).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn raft_frames_round_trip_up_to_their_own_limit() {
        let body = serde_json::json!({"vote": {"term": 3}, "entries": [1, 2, u64::MAX]});
        let request = Request::Raft {
            rpc: RaftRpc::AppendEntries(body.clone()),
        };
        let frame = encode_frame_max(&request, RAFT_FRAME_LEN_MAX).unwrap();
        let back: Request = decode_frame_body(&frame[4..]).unwrap();
        assert_eq!(back, request);
        let reply = Response::Raft { reply: body };
        let frame = encode_frame(&reply).unwrap();
        assert_eq!(decode_frame_body::<Response>(&frame[4..]).unwrap(), reply);
        let big = Request::Raft {
            rpc: RaftRpc::Vote(serde_json::Value::String("x".repeat(FRAME_LEN_MAX))),
        };
        assert!(encode_frame_max(&big, RAFT_FRAME_LEN_MAX).is_ok());
        assert_eq!(
            encode_frame_max(&big, FRAME_LEN_MAX).unwrap_err().code(),
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn oversized_prefix_is_refused() {
        let prefix = ((FRAME_LEN_MAX + 1) as u32).to_be_bytes();
        assert_eq!(
            decode_frame_len(prefix, FRAME_LEN_MAX).unwrap_err().code(),
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

    fn get_request(seed: u8) -> Request {
        Request::Get {
            document_id: DocumentId::from_bytes([seed; 16]),
            range: Some(ByteRange {
                start: u64::from(seed),
                end: 1_000,
            }),
            grant: Some(GrantId::from_bytes([seed; 16])),
        }
    }

    #[test]
    fn the_decoder_needs_more_at_every_split_point_then_decodes_the_frame() {
        let request = get_request(9);
        let frame = encode_frame(&request).unwrap();
        for split in 0..frame.len() {
            match decode_frame::<Request>(&frame[..split], FRAME_LEN_MAX).unwrap() {
                FrameStatus::NeedMore { needed } => {
                    let due = if split < FRAME_PREFIX_LEN {
                        FRAME_PREFIX_LEN - split
                    } else {
                        frame.len() - split
                    };
                    assert_eq!(needed, due, "split at {split}");
                }
                other => panic!("split at {split}: {other:?}"),
            }
        }
        assert_eq!(
            decode_frame::<Request>(&frame, FRAME_LEN_MAX).unwrap(),
            FrameStatus::Frame {
                message: request,
                consumed: frame.len()
            }
        );
    }

    #[test]
    fn the_decoder_refuses_an_oversized_prefix_before_its_body() {
        let prefix = ((FRAME_LEN_MAX + 1) as u32).to_be_bytes();
        let err = decode_frame::<Request>(&prefix, FRAME_LEN_MAX).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        assert_eq!(
            err,
            WireError::FrameTooLarge {
                len: FRAME_LEN_MAX + 1,
                max: FRAME_LEN_MAX
            }
        );
        // A frame within the sender's limit can still exceed the reader's.
        let frame = encode_frame(&get_request(1)).unwrap();
        let err = decode_frame::<Request>(&frame[..FRAME_PREFIX_LEN], 8).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    }

    #[test]
    fn the_decoder_takes_one_frame_of_two_and_leaves_the_rest() {
        let (first, second) = (get_request(1), get_request(2));
        let mut buf = encode_frame(&first).unwrap();
        let first_len = buf.len();
        buf.extend(encode_frame(&second).unwrap());
        let FrameStatus::Frame { message, consumed } =
            decode_frame::<Request>(&buf, FRAME_LEN_MAX).unwrap()
        else {
            panic!("expected a frame");
        };
        assert_eq!((message, consumed), (first, first_len));
        let rest = &buf[consumed..];
        assert_eq!(
            decode_frame::<Request>(rest, FRAME_LEN_MAX).unwrap(),
            FrameStatus::Frame {
                message: second,
                consumed: rest.len()
            }
        );
    }

    #[test]
    fn the_decoder_refuses_a_malformed_body() {
        let mut frame = 2u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"{]");
        let err = decode_frame::<Request>(&frame, FRAME_LEN_MAX).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FrameMalformed);
    }

    #[test]
    fn the_range_rule_clamps_the_end_and_refuses_a_start_past_it() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(ByteRange::resolve(None, 100), Ok(r(0, 100)));
        assert_eq!(ByteRange::resolve(None, 0), Ok(r(0, 0)));
        assert_eq!(ByteRange::resolve(Some(r(10, 20)), 100), Ok(r(10, 20)));
        assert_eq!(ByteRange::resolve(Some(r(10, 500)), 100), Ok(r(10, 100)));
        assert_eq!(
            ByteRange::resolve(Some(r(40, u64::MAX)), 100),
            Ok(r(40, 100))
        );
        assert_eq!(ByteRange::resolve(Some(r(100, 200)), 100), Ok(r(100, 100)));
        assert_eq!(ByteRange::resolve(Some(r(7, 7)), 100), Ok(r(7, 7)));
        let err = ByteRange::resolve(Some(r(150, 200)), 100).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert_eq!(
            err.to_string(),
            "range 150..100 is outside the document's 100 bytes"
        );
        let err = ByteRange::resolve(Some(r(30, 20)), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "range 30..20 is outside the document's 100 bytes"
        );
    }

    #[test]
    fn a_page_holds_at_least_one_item_and_stops_before_its_byte_budget() {
        let mut fill = PageFill::new(None, PAGE_LEN_MAX);
        assert!(
            fill.admit(RESPONSE_FRAME_LEN_MAX),
            "the first item always fits"
        );
        assert!(!fill.admit(1), "nothing joins an over-budget page");
        let mut fill = PageFill::new(None, PAGE_LEN_MAX);
        let item = 100_000;
        let mut admitted = 0;
        while fill.admit(item) {
            admitted += 1;
        }
        assert_eq!(admitted, PAGE_BYTES_MAX / (item + 1));
        assert!(fill.bytes() <= PAGE_BYTES_MAX);
    }

    #[test]
    fn a_page_holds_at_most_its_limit_capped_at_the_maximum() {
        let count = |limit| {
            let mut fill = PageFill::new(limit, LIST_LEN_MAX);
            (0..PAGE_LEN_MAX * 2).take_while(|_| fill.admit(1)).count()
        };
        assert_eq!(count(None), LIST_LEN_MAX);
        assert_eq!(count(Some(7)), 7);
        assert_eq!(count(Some(0)), 1, "a page always advances");
        assert_eq!(count(Some(u32::MAX)), PAGE_LEN_MAX);
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let tail = [0u8, 1, 0xfe, 0xff];
        let cursor = encode_cursor(&tail);
        assert_eq!(decode_cursor(Some(&cursor)), Ok(Some(tail.to_vec())));
        assert_eq!(decode_cursor(None), Ok(None));
        assert_eq!(
            decode_cursor(Some("zz")).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        let long = "00".repeat(CURSOR_LEN_MAX);
        assert_eq!(decode_cursor(Some(&long)), Err(CursorError));
    }

    #[test]
    fn old_requests_without_paging_fields_still_decode() {
        let old: Request = decode_frame_body(br#"{"type":"pending_requests"}"#).unwrap();
        assert_eq!(
            old,
            Request::PendingRequests {
                cursor: None,
                limit: None
            }
        );
        let old: Request = decode_frame_body(br#"{"type":"accesses","all":true}"#).unwrap();
        assert!(matches!(
            old,
            Request::Accesses {
                all: true,
                cursor: None,
                limit: None,
                tree_size: None
            }
        ));
        let old: Response = decode_frame_body(br#"{"type":"grant_list","grants":[]}"#).unwrap();
        assert_eq!(
            old,
            Response::GrantList {
                grants: Vec::new(),
                next_cursor: None
            }
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame_body::<Request>(&bytes);
            let _ = decode_frame_body::<Response>(&bytes);
            let _ = decode_frame::<Request>(&bytes, FRAME_LEN_MAX);
        }

        #[test]
        fn a_page_of_arbitrary_items_stays_within_its_budget(
            items in proptest::collection::vec(0..RESPONSE_FRAME_LEN_MAX, 1..200),
            limit in proptest::option::of(any::<u32>()),
        ) {
            let mut fill = PageFill::new(limit, PAGE_LEN_MAX);
            let admitted: Vec<usize> = items.iter().copied().take_while(|&i| fill.admit(i)).collect();
            prop_assert!(!admitted.is_empty());
            prop_assert!(admitted.len() == 1 || fill.bytes() <= PAGE_BYTES_MAX);
            prop_assert!(admitted.len() <= PAGE_LEN_MAX);
        }

        #[test]
        fn a_resolved_range_lies_within_the_document(
            start in any::<u64>(), end in any::<u64>(), size in 0..DOCUMENT_SIZE_MAX
        ) {
            if let Ok(r) = ByteRange::resolve(Some(ByteRange { start, end }), size) {
                prop_assert!(r.start <= r.end && r.end <= size && r.start == start);
            }
        }

        #[test]
        fn document_id_round_trips(bytes in any::<[u8; 16]>()) {
            let id = DocumentId::from_bytes(bytes);
            prop_assert_eq!(DocumentId::parse(&id.to_string()).unwrap(), id);
        }
    }
}
