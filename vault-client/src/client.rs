//! The async client library over quinn: connect with an identity, put,
//! get (verified, resumable, ranged) and list documents, and the consent,
//! grant and log calls.
//!
//! Part of the `net` feature. What it checks is the pure protocol's: frames
//! ([`crate::wire`]), the byte-range rule ([`ByteRange::resolve`]), verified
//! streaming ([`crate::tree`]) and log proofs ([`crate::merkle`]). It draws
//! no progress bar: a caller that wants one hands the client a
//! [`Progress`] ([`VaultClient::with_progress`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pki::{
    AccessRequest, ContentHash, DocumentKind, Grant, GrantBody, GrantId, GrantedDocument, Identity,
    IssueRecord, PeerCert, RequestId, RequestScope, ResidentId, Role,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use crate::sink::hash_file;

use crate::checkpoints::CheckpointStore;
use crate::client_error::{integrity_reset, ClientError};
use crate::error::ErrorCode;
use crate::framing::{
    exchange, exchange_on, read_frame, write_frame, ExchangeError, FrameError, FrameLimits,
};
use crate::progress::Progress;
use crate::sink::{read_full, FileSink, PartState, FILE_CHUNK_BYTES};
use crate::transport::{self, PeerCertError};
use crate::tree::{RangeDecoder, GROUP_SIZE};
use crate::wire::{
    ByteRange, DocumentId, DocumentView, GrantView, Page, Registry, Request, RequestView, Response,
    DOCUMENT_SIZE_MAX, RESET_INTEGRITY, RESPONSE_FRAME_LEN_MAX,
};

/// How long to wait for a node to complete the handshake, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long [`VaultClient::connect_any`] gives one node before it also
/// tries the next, in milliseconds.
pub const CONNECT_STAGGER_MS: u64 = 250;
/// The node a client uses when it is given no address and its identity
/// directory has no [`NODES_FILE`].
pub const DEFAULT_NODE: &str = "127.0.0.1:7443";
/// A file in an identity directory listing the nodes that identity uses
/// when none is given on the command line: `HOST:PORT` addresses separated
/// by commas or newlines (`vault-node dev` writes it).
pub const NODES_FILE: &str = "nodes";
/// Largest [`NODES_FILE`] read, in bytes.
pub const NODES_FILE_LEN_MAX: u64 = 64 * 1024;
/// Upload chunks queued between the file reader thread and the network.
const UPLOAD_QUEUE_DEPTH: usize = 4;

/// A connection to one vault node, authenticated by the caller's identity.
pub struct VaultClient {
    identity: Arc<Identity>,
    connection: quinn::Connection,
    node_cert: PeerCert,
    _endpoint: quinn::Endpoint,
    /// Provenance already verified, keyed by a hash of exactly what was checked.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], PeerCert>>,
    /// Where transfers asked to show progress report it.
    progress: Option<Arc<dyn Progress>>,
    /// The last checkpoint this identity trusted; every new signed
    /// checkpoint is checked against it (`None`: remembers nothing).
    checkpoints: Option<CheckpointStore>,
}

/// Verified provenance entries remembered per client; cleared when full.
pub const PROVENANCE_CACHE_MAX: usize = 4096;

/// The result of a put.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutOutcome {
    /// The new (or, for a retried identical record, existing) document.
    pub document_id: DocumentId,
    /// Lowercase hex BLAKE3 of the file.
    pub content_hash: ContentHash,
    /// Size in bytes.
    pub size: u64,
    /// The node already held these bytes (stored once; the body is still
    /// uploaded as proof of possession).
    pub deduplicated: bool,
}

/// The result of a get.
#[derive(Debug, Clone)]
pub struct GetOutcome {
    /// The document's metadata, provenance verified.
    pub document: DocumentView,
    /// The verified issuer certificate.
    pub issuer: PeerCert,
    /// Bytes in the output.
    pub bytes: u64,
    /// Offset the download resumed from (0 for a fresh download).
    pub resumed_from: u64,
    /// The index of this fetch's log entry, durable before the first byte
    /// (`None` from nodes older than receipts): ask for its receipt with
    /// [`VaultClient::receipt`].
    pub log_index: Option<u64>,
}

/// Options for a get.
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Fetch only this byte range (the output holds exactly those bytes).
    pub range: Option<ByteRange>,
    /// Resume from a `.part` file left by an interrupted download.
    pub resume: bool,
    /// Report the transfer's progress to the client's [`Progress`] (see
    /// [`VaultClient::with_progress`]; nothing happens without one).
    pub progress: bool,
    /// Fetch under this grant (departments other than the issuer).
    pub grant: Option<GrantId>,
}

impl VaultClient {
    /// Connects to one of `nodes`, preferring them in order, so a
    /// department lists every node it may use and survives one being down.
    ///
    /// The first node gets [`CONNECT_STAGGER_MS`] to answer before the next
    /// is tried beside it (and so on), and the first handshake to complete
    /// wins: a dead node costs a quarter of a second, not the whole
    /// [`CONNECT_TIMEOUT_MS`]. A node that cannot be reached, or refuses the
    /// handshake (which reaches the client as a connection failure), is
    /// skipped; a bad address or a server without a node certificate stops
    /// at once.
    pub async fn connect_any(identity: Identity, nodes: &[String]) -> Result<Self, ClientError> {
        let mut last = ClientError::local(ErrorCode::InvalidArgument, "no node address given");
        let mut pending = tokio::task::JoinSet::new();
        let mut queued = nodes.iter();
        let stagger = std::time::Duration::from_millis(CONNECT_STAGGER_MS);
        loop {
            let more = match queued.next() {
                Some(node) => {
                    let (identity, node) = (identity.clone(), node.clone());
                    pending.spawn(async move {
                        let result = Self::connect(identity, &node).await;
                        (node, result)
                    });
                    queued.len() > 0
                }
                None => false,
            };
            let joined = if more {
                match tokio::time::timeout(stagger, pending.join_next()).await {
                    Ok(joined) => joined,
                    Err(_) => continue, // no answer yet: try the next node beside it
                }
            } else {
                pending.join_next().await
            };
            match joined {
                None if !more => return Err(last),
                None => {}
                Some(Ok((_, Ok(client)))) => return Ok(client),
                Some(Ok((node, Err(e)))) if e.is_transient() => {
                    tracing::debug!(node = %node, error = %e, "node unreachable, trying the next");
                    last = e;
                }
                Some(Ok((_, Err(e)))) => return Err(e),
                Some(Err(e)) => last = ClientError::connection(format!("connect task: {e}")),
            }
        }
    }

    /// Connects to `node` (`HOST:PORT`) with mutual TLS; refuses a server
    /// whose certificate is not a district `node` certificate.
    pub async fn connect(identity: Identity, node: &str) -> Result<Self, ClientError> {
        let (host, addr) = resolve(node).await?;
        let tls = pki::client_tls_config(&identity)?;
        let config = transport::client_config(tls)
            .map_err(|e| ClientError::local(ErrorCode::BadCertificate, e))?;
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().map_err(|_| local_io("bad bind address"))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| local_io("bad bind address"))?
        };
        let socket = transport::bind_udp(bind).map_err(|e| local_io(e.to_string()))?;
        let mut endpoint =
            transport::endpoint(socket, None).map_err(|e| local_io(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let connecting = endpoint
            .connect(addr, &host)
            .map_err(|e| ClientError::connection(e.to_string()))?;
        let connection = tokio::time::timeout(
            std::time::Duration::from_millis(CONNECT_TIMEOUT_MS),
            connecting,
        )
        .await
        .map_err(|_| {
            ClientError::connection(format!(
                "no answer from {node} within {CONNECT_TIMEOUT_MS} ms; is the node running?"
            ))
        })??;
        let node_cert = node_certificate(&connection)?;
        if node_cert.role != Role::Node {
            connection.close(0u32.into(), b"not a node");
            return Err(ClientError::local(
                ErrorCode::BadCertificate,
                format!(
                    "{node} presented a {} certificate, not a node certificate",
                    node_cert.role.as_str()
                ),
            ));
        }
        let checkpoints = Some(CheckpointStore::in_identity(identity.dir()));
        Ok(VaultClient {
            identity: Arc::new(identity),
            connection,
            node_cert,
            _endpoint: endpoint,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            progress: None,
            checkpoints,
        })
    }

    /// Reports the progress of the transfers that ask for it (`progress`
    /// in [`VaultClient::put_file`] and [`GetOptions`]) to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The progress observer of a transfer that asked (`show`) for one.
    fn progress(&self, show: bool) -> Option<&dyn Progress> {
        self.progress.as_deref().filter(|_| show)
    }

    /// The caller's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The node's certificate, as read after the handshake.
    pub fn node(&self) -> &PeerCert {
        &self.node_cert
    }

    /// Puts a local file for `resident` as a document of `kind`, signed by
    /// the caller (who must be a department); with `progress`, the upload
    /// reports to the client's [`Progress`].
    pub async fn put_file(
        &self,
        path: &Path,
        resident: &ResidentId,
        kind: &DocumentKind,
        progress: bool,
    ) -> Result<PutOutcome, ClientError> {
        let owned = path.to_path_buf();
        let (content_hash, size) = tokio::task::spawn_blocking(move || hash_file(&owned))
            .await
            .map_err(|e| local_io(e.to_string()))??;
        let record = self.record(resident, kind, content_hash, size)?;
        let body = Body::File(path.to_path_buf());
        self.put_record(record, body, self.progress(progress)).await
    }

    /// Puts bytes held in memory (for programs and tests).
    pub async fn put_bytes(
        &self,
        bytes: Arc<Vec<u8>>,
        resident: &ResidentId,
        kind: &DocumentKind,
    ) -> Result<PutOutcome, ClientError> {
        let content_hash = ContentHash(*blake3::hash(&bytes).as_bytes());
        let record = self.record(resident, kind, content_hash, bytes.len() as u64)?;
        self.put_record(record, Body::Memory(bytes), None).await
    }

    fn record(
        &self,
        resident: &ResidentId,
        kind: &DocumentKind,
        content_hash: ContentHash,
        size: u64,
    ) -> Result<IssueRecord, ClientError> {
        if size > DOCUMENT_SIZE_MAX {
            return Err(ClientError::local(
                ErrorCode::TooLarge,
                format!("the file has {size} bytes; the vault takes at most {DOCUMENT_SIZE_MAX}"),
            ));
        }
        Ok(IssueRecord {
            resident: resident.clone(),
            kind: kind.clone(),
            content_hash,
            size,
            issued_at: now_unix(),
            issuer: self.identity.cert.name.clone(),
        })
    }

    async fn put_record(
        &self,
        record: IssueRecord,
        body: Body,
        progress: Option<&dyn Progress>,
    ) -> Result<PutOutcome, ClientError> {
        let signature = record.sign(&self.identity);
        let (mut send, mut recv) = self.connection.open_bi().await?;
        let request = Request::Put {
            record: record.clone(),
            signature,
        };
        write_frame(&mut send, &request)
            .await
            .map_err(frame_error)?;
        let send_body = match read_response(&mut recv).await? {
            Response::SendBody { send } => send,
            other => return Err(unexpected(&other)),
        };
        if send_body {
            send_body_bytes(&mut send, body, record.size, progress).await?;
        }
        send.finish()
            .map_err(|e| ClientError::connection(e.to_string()))?;
        match read_response(&mut recv).await? {
            Response::Stored {
                document,
                deduplicated,
            } => Ok(PutOutcome {
                document_id: document.document_id,
                content_hash: record.content_hash,
                size: record.size,
                deduplicated,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request and reads one response (no body either way); a
    /// refusal is an error. No deadline: a dead node's connection ends at
    /// its idle timeout.
    pub async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let response = exchange(&self.connection, request, FrameLimits::CLIENT, None)
            .await
            .map_err(|e| self.why_lost(exchange_error(e)))?;
        refused(response)
    }

    /// A lost connection explained by how the node closed it, when it did
    /// (a TLS alert about this identity's certificate is a refusal, see
    /// [`ClientError::connection`]); any other error as it is.
    fn why_lost(&self, e: ClientError) -> ClientError {
        match (&e, self.connection.close_reason()) {
            (ClientError::Connection(_), Some(reason)) => ClientError::from(reason),
            _ => e,
        }
    }

    /// [`Self::call`] with the request moved in (for closures).
    async fn call_owned(&self, request: Request) -> Result<Response, ClientError> {
        self.call(&request).await
    }

    /// A department asks for a resident's documents for a purpose.
    pub async fn request_access(
        &self,
        resident: &ResidentId,
        scope: RequestScope,
        purpose: &pki::Purpose,
        ttl_s: u64,
    ) -> Result<RequestId, ClientError> {
        self.request_access_from(resident, scope, purpose, ttl_s, None)
            .await
    }

    /// [`VaultClient::request_access`], a request by kind resolving only
    /// among documents `issuer` issued (any authorised issuer when `None`).
    pub async fn request_access_from(
        &self,
        resident: &ResidentId,
        scope: RequestScope,
        purpose: &pki::Purpose,
        ttl_s: u64,
        issuer: Option<pki::Name>,
    ) -> Result<RequestId, ClientError> {
        let request = AccessRequest {
            resident: resident.clone(),
            department: self.identity.cert.name.clone(),
            scope,
            purpose: purpose.clone(),
            ttl_s,
            created_at: now_unix(),
            nonce: AccessRequest::new_nonce()?,
        };
        let signature = request.sign(&self.identity);
        match self
            .call(&Request::CreateRequest {
                request,
                signature,
                issuer,
            })
            .await?
        {
            Response::RequestCreated { request_id } => Ok(request_id),
            other => Err(unexpected(&other)),
        }
    }

    /// A resident's pending requests: every page.
    pub async fn pending_requests(&self) -> Result<Vec<RequestView>, ClientError> {
        walk(|cursor| self.pending_requests_page(cursor, None)).await
    }

    /// One page of a resident's pending requests, from `cursor` (a
    /// previous page's `next_cursor`; the first page when `None`).
    pub async fn pending_requests_page(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<Page<RequestView>, ClientError> {
        match self
            .call(&Request::PendingRequests { cursor, limit })
            .await?
        {
            Response::Requests {
                requests,
                next_cursor,
            } => Ok(Page {
                items: requests,
                next_cursor,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// One pending request addressed to the resident (whatever page it
    /// would be on).
    pub async fn pending_request(&self, request_id: RequestId) -> Result<RequestView, ClientError> {
        match self.call(&Request::ShowRequest { request_id }).await? {
            Response::RequestDetail { request } => Ok(request),
            other => Err(unexpected(&other)),
        }
    }

    /// The grant body approving `request` as asked, narrowed by `max_uses`
    /// and `ttl_s` (never widened: the ttl is capped at the request's).
    pub fn approval_body(
        &self,
        request: &RequestView,
        max_uses: u32,
        ttl_s: Option<u64>,
    ) -> Result<GrantBody, ClientError> {
        let mut key_id = [0u8; 32];
        hex::decode_to_slice(&request.department_key_id, &mut key_id).map_err(|_| {
            ClientError::local(ErrorCode::Protocol, "the node sent a bad department key id")
        })?;
        let mut documents: Vec<GrantedDocument> = request
            .documents
            .iter()
            .map(|d| GrantedDocument {
                document_id: d.document_id,
                content_hash: d.content_hash,
            })
            .collect();
        documents.sort();
        let ttl = ttl_s
            .unwrap_or(request.ttl_s)
            .min(request.ttl_s)
            .min(pki::GRANT_TTL_S_MAX);
        let now = now_unix();
        Ok(GrantBody {
            request_id: request.request_id,
            resident: ResidentId::parse(self.identity.cert.name.as_str())?,
            grantee: request.department.clone(),
            grantee_key_id: key_id,
            documents,
            purpose: request.purpose.clone(),
            not_before: now,
            not_after: now + ttl as i64,
            max_uses,
        })
    }

    /// A resident consents to `body` (signing it) and gets the sealed grant.
    pub async fn approve(&self, body: GrantBody) -> Result<Grant, ClientError> {
        let consent = body.consent(&self.identity);
        let request_id = body.request_id;
        match self
            .call(&Request::Approve {
                request_id,
                body,
                consent,
            })
            .await?
        {
            Response::GrantIssued { grant } => Ok(grant),
            other => Err(unexpected(&other)),
        }
    }

    /// A resident denies a request.
    pub async fn deny(&self, request_id: RequestId) -> Result<(), ClientError> {
        match self.call(&Request::Deny { request_id }).await? {
            Response::Denied { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Grants the caller gave (resident) or holds (department): every page.
    pub async fn grants(&self) -> Result<Vec<GrantView>, ClientError> {
        walk(|cursor| self.grants_page(cursor, None)).await
    }

    /// One page of the caller's grants, from `cursor`.
    pub async fn grants_page(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<Page<GrantView>, ClientError> {
        match self.call(&Request::Grants { cursor, limit }).await? {
            Response::GrantList {
                grants,
                next_cursor,
            } => Ok(Page {
                items: grants,
                next_cursor,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// One grant, with the sealed grant for offline verification.
    pub async fn show_grant(&self, grant_id: GrantId) -> Result<(GrantView, Grant), ClientError> {
        match self.call(&Request::ShowGrant { grant_id }).await? {
            Response::GrantDetail { grant, sealed } => Ok((grant, sealed)),
            other => Err(unexpected(&other)),
        }
    }

    /// Revokes a grant (resident) or gives it up (holder).
    pub async fn revoke_grant(&self, grant_id: GrantId) -> Result<(), ClientError> {
        match self.call(&Request::RevokeGrant { grant_id }).await? {
            Response::GrantRevoked { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The node's status (callers holding a node or auditor certificate).
    pub async fn status(&self) -> Result<crate::wire::NodeStatus, ClientError> {
        match self.call(&Request::Status).await? {
            Response::Status { status } => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// The district's registries as the node holds them: every purpose
    /// and every department with their English and Chinese texts, for
    /// showing codes by name ([`Registry::purpose`],
    /// [`Registry::department_name`]). Any caller may ask.
    pub async fn registry(&self) -> Result<Registry, ClientError> {
        match self.call(&Request::Registry).await? {
            Response::Registry {
                purposes,
                departments,
                truncated,
            } => Ok(Registry::new(purposes, departments, truncated)),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes the cluster's membership (callers holding a node
    /// certificate); answers the members once the change is committed.
    pub async fn change_membership(
        &self,
        change: crate::wire::MembershipChange,
    ) -> Result<(Vec<crate::wire::StatusMember>, u64), ClientError> {
        match self.call(&Request::ChangeMembership { change }).await? {
            Response::Membership { members, log_index } => Ok((members, log_index)),
            other => Err(unexpected(&other)),
        }
    }

    /// The log's current checkpoint, its signature checked against the
    /// district's log keys the identity trusts (`log.pub`), not against the
    /// serving node: every node signs the same checkpoint with the same key.
    /// It is then checked against the checkpoint this identity remembers
    /// ([`Self::trust_note`]): `log.fork` if they are not consistent.
    pub async fn checkpoint(&self) -> Result<(pki::Checkpoint, String), ClientError> {
        match self.call(&Request::Checkpoint).await? {
            Response::Checkpoint { note } => {
                let checkpoint = self.trust_note(&note).await?;
                Ok((checkpoint, note))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Verifies a signed checkpoint note against the identity's log keys
    /// and, when the client remembers checkpoints (by default, in
    /// `<identity>/checkpoints/`), checks it against the remembered one with
    /// a consistency proof from this node, remembering it when it is larger
    /// and consistent. A fork is `log.fork`, with both signed checkpoints
    /// saved as evidence (the error names the folder). When the identity
    /// has a witness policy (`witness-policy`), the note must also carry the
    /// cosignatures it requires, else `log.witness_missing` (checked before
    /// the checkpoint is remembered).
    pub async fn trust_note(&self, note: &str) -> Result<pki::Checkpoint, ClientError> {
        let checkpoint = pki::Checkpoint::verify_note(note, self.identity.log_keys())?;
        if let Some(policy) = self.identity.witness_policy() {
            check_witnesses(policy, note)?;
        }
        if let Some(store) = &self.checkpoints {
            let prove = |from, to| self.call_owned(Request::ConsistencyProof { from, to });
            store.check(&checkpoint, note, prove).await?;
        }
        Ok(checkpoint)
    }

    /// Remembers checkpoints in `store` instead of the identity
    /// directory's, or (`None`) not at all.
    pub fn with_checkpoint_store(mut self, store: Option<CheckpointStore>) -> Self {
        self.checkpoints = store;
        self
    }

    /// Where this client remembers checkpoints, if it does.
    pub fn checkpoint_store(&self) -> Option<&CheckpointStore> {
        self.checkpoints.as_ref()
    }

    /// Canonical log entries `[start, start + count)` (auditors only).
    pub async fn log_entries(&self, start: u64, count: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        match self.call(&Request::LogEntries { start, count }).await? {
            Response::LogEntries { entries, .. } => entries
                .iter()
                .map(|e| hex::decode(e).map_err(|_| bad_hex()))
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// An inclusion proof for entry `index`, checked before it is returned.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: Option<u64>,
    ) -> Result<Response, ClientError> {
        let response = self
            .call(&Request::InclusionProof { index, tree_size })
            .await?;
        let Response::InclusionProof {
            leaf_index,
            tree_size,
            leaf_hash,
            root_hash,
            inclusion_proof,
        } = &response
        else {
            return Err(unexpected(&response));
        };
        let proof = hashes(inclusion_proof)?;
        crate::merkle::verify_inclusion(
            *leaf_index,
            *tree_size,
            &hash(leaf_hash)?,
            &proof,
            &hash(root_hash)?,
        )
        .map_err(proof_error)?;
        Ok(response)
    }

    /// A consistency proof between two sizes, checked before it is returned.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Response, ClientError> {
        let response = self.call(&Request::ConsistencyProof { from, to }).await?;
        let Response::ConsistencyProof {
            old_size,
            new_size,
            old_root,
            new_root,
            consistency_proof,
        } = &response
        else {
            return Err(unexpected(&response));
        };
        let proof = hashes(consistency_proof)?;
        crate::merkle::verify_consistency(
            *old_size,
            *new_size,
            &hash(old_root)?,
            &hash(new_root)?,
            &proof,
        )
        .map_err(proof_error)?;
        Ok(response)
    }

    /// A resident's own log entries, every page, each checked: its tag
    /// against the salt, its detail against the commitment, its inclusion
    /// proof against one signed checkpoint (the first page's: later pages
    /// are asked for proofs against its size, see [`Self::accesses_page`]).
    /// With `all`, every entry about the resident; else fetches (and
    /// disclosures of orders by law) only. The
    /// first entry that fails a check fails the whole call. The flag
    /// returned is always `false` (nothing is left out); it is kept for
    /// callers of the single-page version.
    pub async fn accesses(
        &self,
        all: bool,
    ) -> Result<(pki::Checkpoint, Vec<VerifiedAccess>, bool), ClientError> {
        let checked = self.accesses_checked(all).await?;
        let mut out = Vec::with_capacity(checked.entries.len());
        for access in checked.entries {
            out.push(access.verified?);
        }
        Ok((checked.checkpoint, out, false))
    }

    /// Like [`Self::accesses`], but an entry that fails its checks is kept
    /// (with why) instead of failing the call, so a person can be shown
    /// which entries verified and which did not. A checkpoint whose
    /// signature does not verify, or a node that does not page properly,
    /// still fails the call.
    ///
    /// It also checks that the list is complete (`complete`): every page
    /// is asked for with `all` (the chain runs through every kind of
    /// entry; without `all` the fetches are kept after the check), and
    /// [`check_complete`] walks it against the first page's index proof.
    pub async fn accesses_checked(&self, all: bool) -> Result<CheckedAccesses, ClientError> {
        let (checkpoint, mut out, mut cursor, proven_tag, index) = {
            let first = self.access_records(true, None, None, None).await?;
            if !in_log_order(None, &first.records) {
                return Err(out_of_order());
            }
            let entries = first.check_each();
            (
                first.checkpoint,
                entries,
                first.next_cursor,
                first.proven_tag,
                first.index,
            )
        };
        let mut pages = 1;
        while let Some(at) = cursor {
            if pages >= WALK_PAGES_MAX {
                return Err(too_many_pages());
            }
            let page = self
                .access_records(true, Some(at.clone()), None, Some(&checkpoint))
                .await?;
            let after = out.last().map(|a: &CheckedAccess| a.index);
            if page.next_cursor.as_ref() == Some(&at) {
                return Err(no_progress());
            }
            if !in_log_order(after, &page.records) {
                return Err(out_of_order());
            }
            cursor = page.next_cursor.clone();
            out.extend(page.check_each());
            pages += 1;
        }
        let complete =
            proven_tag.and_then(|tag| check_complete(&checkpoint, Some(tag), index.as_ref(), &out));
        if !all {
            // What the node lists without `all`: fetches, and the
            // disclosures of orders by law (whose sealed fetches they name).
            out.retain(|a| {
                a.verified.as_ref().map_or(true, |v| {
                    matches!(
                        v.entry.event,
                        pki::LogEvent::Fetch | pki::LogEvent::OrderDisclosed
                    )
                })
            });
        }
        Ok(CheckedAccesses {
            checkpoint,
            entries: out,
            complete,
        })
    }

    /// One page of a resident's own log entries, oldest first, from
    /// `cursor`, each checked as in [`Self::accesses`]. With `pinned`, the
    /// node lists only entries below its size and proves them against it,
    /// and they are checked against its root (a walk pins the first page's
    /// checkpoint); else against the page's own signed checkpoint.
    pub async fn accesses_page(
        &self,
        all: bool,
        cursor: Option<String>,
        limit: Option<u32>,
        pinned: Option<&pki::Checkpoint>,
    ) -> Result<AccessesPage, ClientError> {
        let page = self.access_records(all, cursor, limit, pinned).await?;
        if !in_log_order(None, &page.records) {
            return Err(out_of_order());
        }
        let mut entries = Vec::with_capacity(page.records.len());
        for record in &page.records {
            entries.push(page.check(record)?);
        }
        Ok(AccessesPage {
            checkpoint: page.checkpoint,
            entries,
            next_cursor: page.next_cursor,
        })
    }

    /// One page of records as the node sent them, with the checkpoint
    /// they are to be checked against (its signature checked) and the
    /// resident's tag under the page's salt.
    async fn access_records(
        &self,
        all: bool,
        cursor: Option<String>,
        limit: Option<u32>,
        pinned: Option<&pki::Checkpoint>,
    ) -> Result<RecordPage, ClientError> {
        let request = Request::Accesses {
            all,
            cursor,
            limit,
            tree_size: pinned.map(|c| c.size),
        };
        let (note, salt, records, next_cursor, index, salt_proof) =
            match self.call(&request).await? {
                Response::Accesses {
                    note,
                    salt,
                    entries,
                    next_cursor,
                    index,
                    salt_proof,
                    ..
                } => (note, salt, entries, next_cursor, index, salt_proof),
                other => return Err(unexpected(&other)),
            };
        let checkpoint = match pinned {
            Some(c) => c.clone(),
            None => self.trust_note(&note).await?,
        };
        if records.len() > crate::wire::PAGE_LEN_MAX {
            return Err(ClientError::local(
                ErrorCode::Protocol,
                "the node sent a longer page than the protocol allows",
            ));
        }
        let me = ResidentId::parse(self.identity.cert.name.as_str())?;
        // An empty page may come without a salt.
        let tag = if records.is_empty() && salt.is_empty() {
            None
        } else {
            Some(pki::resident_tag(&hash(&salt)?, &me))
        };
        let proven_tag = check_salt(self.identity.salt_key(), &me, &salt, salt_proof.as_deref());
        Ok(RecordPage {
            checkpoint,
            tag,
            records,
            next_cursor,
            index,
            proven_tag,
        })
    }

    /// A receipt for log entry `index`: the node sends the entry, its
    /// inclusion proof and the signed checkpoint, if the caller may see the
    /// entry (auditors any; a department the entries it is the actor of,
    /// such as its own fetches, `GetOutcome::log_index`; a resident those
    /// with their tag). The checkpoint goes through [`Self::trust_note`]
    /// (so it is remembered and checked for a fork) and the receipt is
    /// checked as `vault receipt verify` will before it is returned.
    pub async fn receipt(&self, index: u64) -> Result<crate::receipt::Receipt, ClientError> {
        let (entry, proof, note) = match self.call(&Request::Receipt { index }).await? {
            Response::Receipt {
                entry,
                inclusion_proof,
                note,
            } => (entry, inclusion_proof, note),
            other => return Err(unexpected(&other)),
        };
        self.trust_note(&note).await?;
        let receipt = crate::receipt::Receipt {
            entry: hex::decode(&entry).map_err(|_| bad_hex())?,
            index,
            proof: hashes(&proof)?,
            note,
        };
        verify_receipt(&receipt, self.identity.log_keys())?;
        Ok(receipt)
    }

    /// Lists the documents of `resident` the caller may see: every page,
    /// newest first.
    pub async fn list(&self, resident: &ResidentId) -> Result<Vec<DocumentView>, ClientError> {
        walk(|cursor| self.list_page(resident, cursor, None)).await
    }

    /// One page of the documents of `resident` the caller may see, from
    /// `cursor`.
    pub async fn list_page(
        &self,
        resident: &ResidentId,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<Page<DocumentView>, ClientError> {
        let request = Request::List {
            resident: resident.clone(),
            cursor,
            limit,
        };
        match self.call(&request).await? {
            Response::Documents {
                documents,
                next_cursor,
            } => Ok(Page {
                items: documents,
                next_cursor,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Fetches a document (or a range) into memory, verified piece by piece.
    pub async fn get_bytes(
        &self,
        document_id: DocumentId,
        range: Option<ByteRange>,
        grant: Option<GrantId>,
    ) -> Result<(GetOutcome, Vec<u8>), ClientError> {
        let (mut recv, document, issuer, range, log_index) =
            self.open_get(document_id, range, grant).await?;
        let mut decoder = RangeDecoder::new(
            &blake3::Hash::from_bytes(document.record.content_hash.0),
            document.record.size,
            range.start..range.end,
        )?;
        let mut out = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        let mut buf = vec![0u8; document.record.size.clamp(1, GROUP_SIZE) as usize];
        while let Some(piece) = decoder.next_piece() {
            let len = piece_len(piece.wire_len())?;
            recv.read_exact(&mut buf[..len]).await?;
            if let Some(verified) = decoder.verify_next(&buf[..len])? {
                out.extend_from_slice(verified.bytes);
            }
        }
        let outcome = GetOutcome {
            document,
            issuer,
            bytes: out.len() as u64,
            resumed_from: 0,
            log_index,
        };
        Ok((outcome, out))
    }

    /// Fetches a document into `path`: bytes are verified as they arrive,
    /// written to `path.part`, and renamed into place only when complete.
    /// A refused or corrupt download leaves no file; an interrupted one
    /// leaves `path.part` to resume from.
    pub async fn get_to_file(
        &self,
        document_id: DocumentId,
        path: &Path,
        options: GetOptions,
    ) -> Result<GetOutcome, ClientError> {
        let part = PartState::new(path);
        // Before anything is asked for: a grant use must not be spent on a
        // download that cannot be written.
        part.check_writable()?;
        let resume_from = match (options.resume, options.range) {
            (true, None) => part.resumable_offset(document_id),
            _ => {
                part.discard();
                0
            }
        };
        let request_range = match options.range {
            Some(range) => Some(range),
            None if resume_from > 0 => Some(ByteRange {
                start: resume_from,
                end: u64::MAX,
            }),
            None => None,
        };
        let opened = self
            .open_get(document_id, request_range, options.grant)
            .await;
        let (recv, document, issuer, range, log_index) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                if !e.is_transient() {
                    part.discard();
                }
                return Err(e);
            }
        };
        let result = self
            .receive_into(recv, &document, range, &part, resume_from, options.progress)
            .await;
        match result {
            Ok(bytes) => Ok(GetOutcome {
                document,
                issuer,
                bytes,
                resumed_from: resume_from,
                log_index,
            }),
            Err(e) => {
                // Verified bytes are never thrown away for a local failure
                // (a full disk, an output that cannot be moved into place):
                // the `.part` file stays for a resume.
                if !e.is_transient() && e.code() != ErrorCode::LocalIo.as_str() {
                    part.discard();
                }
                Err(e)
            }
        }
    }

    async fn receive_into(
        &self,
        mut recv: quinn::RecvStream,
        document: &DocumentView,
        range: ByteRange,
        part: &PartState,
        resume_from: u64,
        progress: bool,
    ) -> Result<u64, ClientError> {
        let root = blake3::Hash::from_bytes(document.record.content_hash.0);
        let mut decoder = RangeDecoder::new(&root, document.record.size, range.start..range.end)?;
        // Offsets in the output file: a plain range starts at 0.
        let base = if resume_from > 0 { 0 } else { range.start };
        let full = resume_from > 0 || (range.start == 0 && range.end == document.record.size);
        let sink = FileSink::open(part, document, resume_from, full)?;
        let progress = self.progress(progress);
        if let Some(progress) = progress {
            progress.start(range.end - base, range.start - base);
        }
        let mut buf = vec![0u8; GROUP_SIZE as usize];
        while let Some(piece) = decoder.next_piece() {
            let len = piece_len(piece.wire_len())?;
            recv.read_exact(&mut buf[..len]).await?;
            if let Some(verified) = decoder.verify_next(&buf[..len])? {
                sink.write(verified.offset - base, verified.bytes.to_vec())
                    .await?;
                if let Some(progress) = progress {
                    progress.advance(verified.bytes.len() as u64);
                }
            }
        }
        // A resumed download's prefix came from local disk: re-hash it all.
        let check = if resume_from > 0 && range.end == document.record.size {
            Some(document.record.content_hash)
        } else {
            None
        };
        sink.finish(check).await?;
        part.commit()?;
        if let Some(progress) = progress {
            progress.finish();
        }
        Ok(range.end - base)
    }

    async fn open_get(
        &self,
        document_id: DocumentId,
        range: Option<ByteRange>,
        grant: Option<GrantId>,
    ) -> Result<
        (
            quinn::RecvStream,
            DocumentView,
            PeerCert,
            ByteRange,
            Option<u64>,
        ),
        ClientError,
    > {
        let (mut send, mut recv) = self.connection.open_bi().await?;
        let request = Request::Get {
            document_id,
            range,
            grant,
        };
        let response = exchange_on(&mut send, &mut recv, &request, FrameLimits::CLIENT, None)
            .await
            .map_err(|e| self.why_lost(exchange_error(e)))?;
        let (document, served, log_index) = match refused(response)? {
            Response::Document {
                document,
                range,
                log_index,
                ..
            } => (document, range, log_index),
            other => return Err(unexpected(&other)),
        };
        if document.document_id != document_id {
            return Err(ClientError::local(
                ErrorCode::Protocol,
                "the node answered with a different document",
            ));
        }
        // The node applies the same rule to answer; a range it refuses is
        // refused before any `Document` frame.
        let expected = ByteRange::resolve(range, document.record.size).map_err(|e| {
            ClientError::local(
                ErrorCode::Protocol,
                format!("the node served a range it should have refused: {e}"),
            )
        })?;
        if served != expected {
            return Err(ClientError::local(
                ErrorCode::Protocol,
                format!(
                    "asked for bytes {}..{} but the node sent {}..{}",
                    expected.start, expected.end, served.start, served.end
                ),
            ));
        }
        let range = served;
        let issuer = self.provenance(&document)?;
        Ok((recv, document, issuer, range, log_index))
    }

    /// [`verify_provenance`], remembering what already verified.
    fn provenance(&self, document: &DocumentView) -> Result<PeerCert, ClientError> {
        let mut hasher = blake3::Hasher::new_derive_key("vault/provenance-cache/v1");
        hasher.update(document.document_id.as_bytes());
        hasher.update(&document.record.canonical_bytes());
        hasher.update(document.signature.as_bytes());
        hasher.update(&document.issuer_cert);
        let key = *hasher.finalize().as_bytes();
        let lock = || self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(issuer) = lock().get(&key) {
            return Ok(issuer.clone());
        }
        let issuer = verify_provenance(&self.identity, document)?;
        let mut cache = lock();
        if cache.len() >= PROVENANCE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, issuer.clone());
        Ok(issuer)
    }
}

/// Most pages one walk over a listing reads before giving up (a node that
/// never ends its listing cannot keep a client reading forever).
pub const WALK_PAGES_MAX: usize = 100_000;

/// Reads every page of a listing: `page(cursor)` fetches one, from the
/// previous page's `next_cursor`. A page whose `next_cursor` is the cursor
/// it was asked for is refused (the walk would never end).
pub(crate) async fn walk<T, F, Fut>(mut page: F) -> Result<Vec<T>, ClientError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ClientError>>,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..WALK_PAGES_MAX {
        let asked = cursor.clone();
        let next = page(cursor.take()).await?;
        out.extend(next.items);
        match next.next_cursor {
            None => return Ok(out),
            Some(c) if Some(&c) == asked.as_ref() => return Err(no_progress()),
            Some(c) => cursor = Some(c),
        }
    }
    Err(too_many_pages())
}

/// Whether `records` are in strictly increasing log order, and after
/// `after`: each entry once. (Each repeated entry would verify on its own,
/// so a node could show one fetch as many.)
fn in_log_order(after: Option<u64>, records: &[crate::wire::AccessRecord]) -> bool {
    let mut last = after;
    records.iter().all(|r| {
        let later = last.is_none_or(|l| r.index > l);
        last = Some(r.index);
        later
    })
}

fn out_of_order() -> ClientError {
    ClientError::local(
        ErrorCode::Protocol,
        "the node sent log entries out of order or more than once",
    )
}

fn no_progress() -> ClientError {
    ClientError::local(
        ErrorCode::Protocol,
        "the node sent a page whose next cursor is the one asked for",
    )
}

fn too_many_pages() -> ClientError {
    ClientError::local(
        ErrorCode::Protocol,
        format!("the listing did not end within {WALK_PAGES_MAX} pages"),
    )
}

/// One page of a resident's log entries, verified (from
/// [`VaultClient::accesses_page`]).
#[derive(Debug, Clone)]
pub struct AccessesPage {
    /// The checkpoint every entry's proof was checked against.
    pub checkpoint: pki::Checkpoint,
    /// The entries, oldest first.
    pub entries: Vec<VerifiedAccess>,
    /// Where the next page starts; `None` at the end.
    pub next_cursor: Option<String>,
}

/// One of a resident's log entries, verified.
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    /// Its index.
    pub index: u64,
    /// The entry.
    pub entry: pki::LogEntry,
    /// Its detail (matches the entry's commitment).
    pub detail: pki::LogDetail,
    /// The entry's canonical bytes (its leaf in the log).
    pub bytes: Vec<u8>,
}

/// A resident's log entries, each with the outcome of its checks (from
/// [`VaultClient::accesses_checked`]).
#[derive(Debug)]
pub struct CheckedAccesses {
    /// The signed checkpoint every entry's proof was checked against.
    pub checkpoint: pki::Checkpoint,
    /// The entries, oldest first.
    pub entries: Vec<CheckedAccess>,
    /// `Ok` when the list is proven complete for the checkpoint (see
    /// [`check_complete`]); else why not (`log.index_mismatch`,
    /// `log.chain_broken`, `log.count_mismatch`).
    pub complete: Result<(), ClientError>,
}

/// One log entry about a resident and whether it verified.
#[derive(Debug)]
pub struct CheckedAccess {
    /// Its index in the log.
    pub index: u64,
    /// The verified entry, or why it did not verify (not the resident's,
    /// a detail that does not match its commitment, a proof that does not
    /// lead to the signed root, bytes that do not parse).
    pub verified: Result<VerifiedAccess, ClientError>,
}

/// One page of access records before their checks.
struct RecordPage {
    checkpoint: pki::Checkpoint,
    /// The caller's tag under the page's salt (`None`: no salt, no entries).
    tag: Option<[u8; 32]>,
    records: Vec<crate::wire::AccessRecord>,
    next_cursor: Option<String>,
    index: Option<crate::wire::IndexProof>,
    /// The caller's tag under the salt the node's σ fixes ([`check_salt`]).
    proven_tag: Result<[u8; 32], ClientError>,
}

impl RecordPage {
    /// Checks one record: its tag, its detail against the entry's
    /// commitment, its inclusion proof against the checkpoint.
    fn check(&self, record: &crate::wire::AccessRecord) -> Result<VerifiedAccess, ClientError> {
        let bytes = hex::decode(&record.entry).map_err(|_| bad_hex())?;
        let entry = pki::LogEntry::parse(&bytes)?;
        if Some(entry.resident_tag) != self.tag || record.detail.commitment() != entry.commitment {
            return Err(ClientError::local(
                ErrorCode::Integrity,
                format!(
                    "log entry {} is not yours or its detail does not match",
                    record.index
                ),
            ));
        }
        let proof = hashes(&record.inclusion_proof)?;
        let leaf = crate::merkle::leaf_hash(&bytes);
        crate::merkle::verify_inclusion(
            record.index,
            self.checkpoint.size,
            &leaf,
            &proof,
            &self.checkpoint.root,
        )
        .map_err(proof_error)?;
        Ok(VerifiedAccess {
            index: record.index,
            entry,
            detail: record.detail.clone(),
            bytes,
        })
    }

    /// Every record with the outcome of its checks.
    fn check_each(&self) -> Vec<CheckedAccess> {
        self.records
            .iter()
            .map(|record| CheckedAccess {
                index: record.index,
                verified: self.check(record),
            })
            .collect()
    }
}

/// The caller's tag under the salt the district salt key fixes for them:
/// σ (`salt_proof`, hex) must verify for `me` with the identity's
/// `salt.pub`, and the node's `salt` (when it sent one) must be the salt σ
/// fixes ([`pki::SaltVerifier::salt`]). Else `log.wrong_salt`: no
/// `salt.pub`, no σ, a σ that does not verify, or another salt than σ's.
pub fn check_salt(
    salt_key: Option<&pki::SaltVerifier>,
    me: &ResidentId,
    salt: &str,
    salt_proof: Option<&str>,
) -> Result<[u8; 32], ClientError> {
    let wrong = |m: &str| ClientError::local(ErrorCode::LogWrongSalt, m.to_string());
    let key = salt_key.ok_or_else(|| {
        wrong("this identity has no salt.pub (the district salt key) to check the node's salt with")
    })?;
    let sigma = salt_proof.ok_or_else(|| wrong("the node sent no salt proof"))?;
    if sigma.len() > 2 * pki::SALT_PROOF_LEN_MAX {
        return Err(wrong("the node's salt proof is too long"));
    }
    let sigma = hex::decode(sigma).map_err(|_| wrong("the node's salt proof is not hex"))?;
    let derived = key.salt(me, &sigma).map_err(|_| {
        wrong("the node's salt proof does not verify with the district salt key (salt.pub)")
    })?;
    if !salt.is_empty() && hash(salt).ok() != Some(derived) {
        return Err(wrong(
            "the salt the node gave is not the one the district salt key fixes for you",
        ));
    }
    Ok(pki::resident_tag(&derived, me))
}

/// Whether `entries` (every entry the node showed, all kinds, each with
/// its checks) is every entry with the caller's `tag` among the
/// checkpoint's: the `index` proof leads from the tag's leaf (head, count),
/// or from its absence, to the checkpoint's signed `resident-index` root;
/// and the walk from `head` through each entry's `prev` visits only shown,
/// verified entries, ends at `prev = 0` after exactly `count` entries, and
/// visits every entry shown. Else `log.index_mismatch` (no index root, no
/// proof, no salt, or a proof that does not lead to the root),
/// `log.chain_broken` or `log.count_mismatch`.
///
/// The tag is only as right as the salt the node gave: a node that gives a
/// wrong salt points the client at a tag without entries, whose absence it
/// can prove (`docs/COMPLETENESS.md`, the unique salt, is not built yet).
pub fn check_complete(
    checkpoint: &pki::Checkpoint,
    tag: Option<[u8; 32]>,
    index: Option<&crate::wire::IndexProof>,
    entries: &[CheckedAccess],
) -> Result<(), ClientError> {
    use crate::smt;
    let mismatch = |m: String| ClientError::local(ErrorCode::LogIndexMismatch, m);
    let broken = |m: String| ClientError::local(ErrorCode::LogChainBroken, m);
    let counted = |m: String| ClientError::local(ErrorCode::LogCountMismatch, m);
    let root = checkpoint
        .resident_index
        .ok_or_else(|| mismatch("the checkpoint commits to no resident index".into()))?;
    let tag = tag.ok_or_else(|| mismatch("the node gave no salt, so no tag to look up".into()))?;
    let index = index.ok_or_else(|| mismatch("the node sent no resident index proof".into()))?;
    if index.siblings.len() > smt::DEPTH {
        return Err(mismatch("the index proof is too long".into()));
    }
    let siblings = index
        .siblings
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<_>, _>>()?;
    let (terminal, value) = match (&index.other_leaf, index.count) {
        (Some(_), c) if c > 0 => {
            return Err(mismatch(
                "an index proof of a leaf names another leaf".into(),
            ))
        }
        (Some(leaf), _) => (
            smt::Terminal::Leaf {
                key: hash(&leaf.key)?,
                value: hash(&leaf.value)?,
            },
            None,
        ),
        (None, 0) => (smt::Terminal::Empty, None),
        (None, count) => {
            let value = smt::head_value(&tag, index.head, count);
            (smt::Terminal::Leaf { key: tag, value }, Some(value))
        }
    };
    smt::Proof { siblings, terminal }
        .verify(&root, &tag, value.as_ref())
        .map_err(|e| mismatch(e.to_string()))?;
    if let Some(failed) = entries.iter().find(|a| a.verified.is_err()) {
        return Err(broken(format!("entry {} did not verify", failed.index)));
    }
    let shown: std::collections::HashMap<u64, &VerifiedAccess> = entries
        .iter()
        .filter_map(|a| a.verified.as_ref().ok().map(|v| (v.index, v)))
        .collect();
    let mut walked = 0u64;
    if index.count > 0 {
        let mut at = index.head;
        loop {
            walked += 1;
            if walked > index.count {
                return Err(counted(format!(
                    "the chain is longer than the {} entries the index says",
                    index.count
                )));
            }
            let entry = shown
                .get(&at)
                .ok_or_else(|| broken(format!("entry {at} of the chain was not shown")))?;
            match entry.entry.prev {
                None => {
                    return Err(broken(format!(
                        "entry {at} was written before entries were chained"
                    )))
                }
                Some(0) => break,
                Some(prev) if prev > at => return Err(broken(format!("entry {at} links forward"))),
                Some(prev) => at = prev - 1,
            }
        }
    }
    if walked != index.count {
        return Err(counted(format!(
            "the chain has {walked} entries, the index says {}",
            index.count
        )));
    }
    if shown.len() as u64 != walked {
        return Err(broken(format!(
            "{} entries were shown, {walked} are in the chain",
            shown.len()
        )));
    }
    Ok(())
}

fn bad_hex() -> ClientError {
    ClientError::local(ErrorCode::Protocol, "the node sent malformed hex")
}

fn hash(text: &str) -> Result<crate::merkle::Hash, ClientError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| bad_hex())?;
    Ok(out)
}

pub(crate) fn hashes(texts: &[String]) -> Result<Vec<crate::merkle::Hash>, ClientError> {
    if texts.len() > crate::merkle::PROOF_LEN_MAX {
        return Err(ClientError::local(ErrorCode::Protocol, "proof too long"));
    }
    texts.iter().map(|t| hash(t)).collect()
}

/// Checks a signed note's witness cosignatures against a policy:
/// `log.witness_missing` when they do not reach its quorum.
pub fn check_witnesses(
    policy: &pki::WitnessPolicy,
    note: &str,
) -> Result<Vec<String>, ClientError> {
    policy.check(note).map_err(|e| match e {
        pki::PkiError::WitnessMissing { reason } => {
            ClientError::local(ErrorCode::LogWitnessMissing, reason)
        }
        other => other.into(),
    })
}

/// Checks a receipt offline against the district's log keys: the
/// checkpoint's signature, then the entry's inclusion in it. Answers the
/// entry and the checkpoint.
pub fn verify_receipt(
    receipt: &crate::receipt::Receipt,
    log_keys: &[pki::LogVerifier],
) -> Result<(pki::LogEntry, pki::Checkpoint), ClientError> {
    let mut checkpoint = None;
    let checked = receipt.verify(|note| {
        let c = pki::Checkpoint::verify_note(note, log_keys)?;
        let out = (c.size, c.root);
        checkpoint = Some(c);
        Ok::<_, pki::PkiError>(out)
    });
    match checked {
        Ok((entry, _)) => checkpoint
            .map(|c| (entry, c))
            .ok_or_else(|| ClientError::local(ErrorCode::ReceiptInvalid, "no checkpoint")),
        Err(crate::receipt::ReceiptVerifyError::Checkpoint(e)) => Err(e.into()),
        Err(e) => Err(ClientError::local(ErrorCode::ReceiptInvalid, e.to_string())),
    }
}

/// A proof that does not verify.
pub fn proof_error(e: crate::merkle::ProofError) -> ClientError {
    ClientError::local(
        ErrorCode::Integrity,
        format!("the log's proof does not verify: {e}"),
    )
}

/// Checks that the document's record was signed by the department named in
/// it, with a certificate from the district CA, and that the id matches.
pub fn verify_provenance(
    identity: &Identity,
    document: &DocumentView,
) -> Result<PeerCert, ClientError> {
    if document.record.document_id(&document.signature) != document.document_id {
        return Err(ClientError::local(
            ErrorCode::BadSignature,
            "the document id does not match its signed record",
        ));
    }
    let issuer = pki::verify_certificate(
        &document.issuer_cert,
        identity.ca_der(),
        &[],
        document.record.issued_at,
    )?;
    document.record.verify(&document.signature, &issuer)?;
    Ok(issuer)
}

/// Where upload bytes come from.
enum Body {
    File(PathBuf),
    Memory(Arc<Vec<u8>>),
}

async fn send_body_bytes(
    send: &mut quinn::SendStream,
    body: Body,
    size: u64,
    progress: Option<&dyn Progress>,
) -> Result<(), ClientError> {
    match body {
        Body::Memory(bytes) => {
            send.write_all(&bytes).await?;
        }
        Body::File(path) => {
            let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(UPLOAD_QUEUE_DEPTH);
            let reader = tokio::task::spawn_blocking(move || read_file_chunks(&path, tx));
            if let Some(progress) = progress {
                progress.start(size, 0);
            }
            let mut sent = 0u64;
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk.map_err(|e| local_io(e.to_string()))?;
                send.write_all(&chunk).await?;
                sent += chunk.len() as u64;
                if let Some(progress) = progress {
                    progress.advance(chunk.len() as u64);
                }
            }
            reader.await.map_err(|e| local_io(e.to_string()))?;
            if sent != size {
                return Err(ClientError::local(
                    ErrorCode::LocalIo,
                    "the file changed while it was being uploaded; nothing was stored",
                ));
            }
            if let Some(progress) = progress {
                progress.finish();
            }
        }
    }
    Ok(())
}

fn read_file_chunks(path: &Path, tx: mpsc::Sender<std::io::Result<Vec<u8>>>) {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    loop {
        let mut chunk = vec![0u8; FILE_CHUNK_BYTES];
        match read_full(&mut file, &mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

async fn read_response(recv: &mut quinn::RecvStream) -> Result<Response, ClientError> {
    let response = read_frame::<Response>(recv, RESPONSE_FRAME_LEN_MAX)
        .await
        .map_err(frame_error)?;
    refused(response)
}

/// A node's refusal as an error; any other response as it came.
fn refused(response: Response) -> Result<Response, ClientError> {
    match response {
        Response::Error(body) => Err(body.into()),
        response => Ok(response),
    }
}

fn frame_error(e: FrameError) -> ClientError {
    exchange_error(e.into())
}

fn exchange_error(e: ExchangeError) -> ClientError {
    match e {
        ExchangeError::Encode(e) | ExchangeError::Frame(e) => e.into(),
        ExchangeError::Reset(code) if code == u64::from(RESET_INTEGRITY) => integrity_reset(),
        other => ClientError::connection(other.to_string()),
    }
}

pub(crate) fn unexpected(response: &Response) -> ClientError {
    ClientError::local(
        ErrorCode::Protocol,
        format!("the node sent an unexpected response: {response:?}"),
    )
}

fn piece_len(len: u64) -> Result<usize, ClientError> {
    if len > GROUP_SIZE {
        return Err(ClientError::local(ErrorCode::Protocol, "piece too large"));
    }
    Ok(len as usize)
}

fn node_certificate(connection: &quinn::Connection) -> Result<PeerCert, ClientError> {
    match transport::peer_certificate(connection) {
        Ok(presented) => Ok(presented.cert),
        Err(PeerCertError::Missing) => Err(ClientError::local(
            ErrorCode::BadCertificate,
            "the node sent no certificate",
        )),
        Err(PeerCertError::Invalid(e)) => Err(e.into()),
    }
}

async fn resolve(node: &str) -> Result<(String, SocketAddr), ClientError> {
    let host = match node.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => {
            return Err(ClientError::local(
                ErrorCode::InvalidArgument,
                format!("--node {node}: expected HOST:PORT"),
            ))
        }
    };
    let addr = tokio::net::lookup_host(node)
        .await
        .map_err(|e| ClientError::connection(format!("cannot resolve {node}: {e}")))?
        .next()
        .ok_or_else(|| ClientError::connection(format!("{node} resolves to no address")))?;
    Ok((host.to_string(), addr))
}

/// Transfers smaller than this, in bytes, are not worth a progress
/// display (the `vault` command line shows none for them).
pub const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;

fn local_io(message: impl Into<String>) -> ClientError {
    ClientError::local(ErrorCode::LocalIo, message)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Splits a node list (`A,B,C`, or one address per line) into addresses;
/// blank entries and lines starting with `#` are skipped.
pub fn parse_nodes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(|node| node.trim().to_string())
        .filter(|node| !node.is_empty())
        .collect()
}

/// The nodes an identity uses when none is given: the addresses in its
/// [`NODES_FILE`] if it has one, else [`DEFAULT_NODE`]. A nodes file that
/// cannot be read, or lists nothing, is an error rather than a silent
/// fallback to the default.
pub fn default_nodes(identity_dir: &Path) -> Result<Vec<String>, ClientError> {
    use std::io::Read;
    let path = identity_dir.join(NODES_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![DEFAULT_NODE.to_string()])
        }
        Err(e) => return Err(local_io(format!("{}: {e}", path.display()))),
    };
    let mut text = String::new();
    file.take(NODES_FILE_LEN_MAX)
        .read_to_string(&mut text)
        .map_err(|e| local_io(format!("{}: {e}", path.display())))?;
    let nodes = parse_nodes(&text);
    if nodes.is_empty() {
        return Err(ClientError::local(
            ErrorCode::InvalidArgument,
            format!("{} lists no node address", path.display()),
        ));
    }
    Ok(nodes)
}

/// Writes `nodes` as `identity_dir`'s [`NODES_FILE`], one per line,
/// replacing it atomically.
pub fn write_nodes(identity_dir: &Path, nodes: &[String]) -> std::io::Result<()> {
    let path = identity_dir.join(NODES_FILE);
    let tmp = identity_dir.join(format!(".{NODES_FILE}.tmp"));
    let mut text = String::from("# Nodes this identity uses when no --node is given.\n");
    for node in nodes {
        text.push_str(node);
        text.push('\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn access_records_must_come_each_once_in_log_order() {
        let detail = pki::LogDetail {
            resident: None,
            kind: None,
            purpose: None,
            nonce: [0; 32],
            case_ref: None,
        };
        let records = |indexes: &[u64]| -> Vec<crate::wire::AccessRecord> {
            indexes
                .iter()
                .map(|&index| crate::wire::AccessRecord {
                    index,
                    entry: String::new(),
                    detail: detail.clone(),
                    inclusion_proof: Vec::new(),
                })
                .collect()
        };
        assert!(in_log_order(None, &records(&[1, 4, 9])));
        assert!(in_log_order(Some(0), &records(&[1])));
        assert!(in_log_order(Some(9), &[]));
        assert!(!in_log_order(None, &records(&[4, 4])), "one entry twice");
        assert!(!in_log_order(None, &records(&[4, 9, 4])));
        assert!(
            !in_log_order(Some(9), &records(&[10, 9])),
            "back into the last page"
        );
        assert!(!in_log_order(Some(9), &records(&[9])));
    }

    #[test]
    fn node_lists_parse_commas_lines_and_comments() {
        let text = "# the district's nodes\n a:1, b:2 \n\nc:3\n# d:4\n,\n";
        assert_eq!(parse_nodes(text), ["a:1", "b:2", "c:3"]);
        assert!(parse_nodes("# nothing\n , \n").is_empty());
    }

    #[test]
    fn an_identity_without_a_nodes_file_uses_the_default_and_one_with_it_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(default_nodes(dir.path()).unwrap(), [DEFAULT_NODE]);
        let nodes = vec!["127.0.0.1:7443".to_string(), "127.0.0.1:7444".to_string()];
        write_nodes(dir.path(), &nodes).unwrap();
        assert_eq!(default_nodes(dir.path()).unwrap(), nodes);
        std::fs::write(dir.path().join(NODES_FILE), "# none\n").unwrap();
        let err = default_nodes(dir.path()).unwrap_err();
        assert_eq!(err.code(), "request.invalid", "{err}");
    }

    #[tokio::test]
    async fn connect_any_skips_a_silent_node_within_the_stagger() {
        // Nothing answers on a bound but unserved UDP socket: the handshake
        // hangs. The second address is malformed, so the outcome is its
        // error, reached one stagger later, not after CONNECT_TIMEOUT_MS.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ca = tempfile::tempdir().unwrap();
        let identity = test_identity(ca.path());
        let nodes = vec![
            silent.local_addr().unwrap().to_string(),
            "no-port".to_string(),
        ];
        let start = std::time::Instant::now();
        let err = VaultClient::connect_any(identity, &nodes)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), "request.invalid", "{err}");
        assert!(
            start.elapsed() < std::time::Duration::from_millis(CONNECT_TIMEOUT_MS / 2),
            "{:?}",
            start.elapsed()
        );
    }

    fn test_identity(dir: &Path) -> Identity {
        let now = now_unix();
        let ca = pki::CertificateAuthority::init(&dir.join("ca"), "Test District", now).unwrap();
        let params = pki::IssueParams::new(
            Role::Department,
            pki::Name::parse("civil-affairs").unwrap(),
            now,
        );
        ca.issue(&params, &dir.join("civil-affairs")).unwrap();
        Identity::load(&dir.join("civil-affairs")).unwrap()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod completeness_tests {
    use super::*;
    use crate::smt;
    use crate::wire::{IndexLeaf, IndexProof};

    const MINE: [u8; 32] = [0x11; 32];
    const OTHER: [u8; 32] = [0xf1; 32];

    /// A log where entries 1, 3, 4 and 7 carry MINE (chained) and 2 and 5
    /// OTHER; the checkpoint commits to the index over both tags.
    struct Log {
        checkpoint: pki::Checkpoint,
        tree: smt::Tree,
        mine: Vec<CheckedAccess>,
    }

    fn entry(index: u64, prev: u64) -> CheckedAccess {
        let entry = pki::LogEntry {
            resident_tag: MINE,
            prev: Some(prev),
            ..pki::LogEntry::new(pki::LogEvent::Fetch, 1, pki::Role::Department, "tax-office")
        };
        let detail = pki::LogDetail {
            resident: None,
            kind: None,
            purpose: None,
            nonce: [0; 32],
            case_ref: None,
        };
        CheckedAccess {
            index,
            verified: Ok(VerifiedAccess {
                index,
                bytes: entry.canonical_bytes(),
                entry,
                detail,
            }),
        }
    }

    fn log() -> Log {
        let mut tree = smt::Tree::new();
        tree.insert(MINE, smt::head_value(&MINE, 7, 4));
        tree.insert(OTHER, smt::head_value(&OTHER, 5, 2));
        let checkpoint = pki::Checkpoint {
            origin: "Test/vault-log".into(),
            size: 8,
            root: [0; 32],
            resident_index: Some(tree.root()),
        };
        let mine = vec![entry(1, 0), entry(3, 2), entry(4, 4), entry(7, 5)];
        Log {
            checkpoint,
            tree,
            mine,
        }
    }

    /// The proof the node sends for `tag`, claiming `head` and `count`.
    fn proof(tree: &smt::Tree, tag: &[u8; 32], head: u64, count: u64) -> IndexProof {
        let p = tree.prove(tag);
        IndexProof {
            head,
            count,
            siblings: p.siblings.iter().map(hex::encode).collect(),
            other_leaf: match p.terminal {
                smt::Terminal::Leaf { key, value } if key != *tag => Some(IndexLeaf {
                    key: hex::encode(key),
                    value: hex::encode(value),
                }),
                _ => None,
            },
        }
    }

    fn code(result: Result<(), ClientError>) -> String {
        result.unwrap_err().code().to_string()
    }

    #[test]
    fn the_whole_chain_is_complete() {
        let l = log();
        let p = proof(&l.tree, &MINE, 7, 4);
        check_complete(&l.checkpoint, Some(MINE), Some(&p), &l.mine).unwrap();
    }

    #[test]
    fn an_omitted_entry_breaks_the_chain() {
        let l = log();
        let p = proof(&l.tree, &MINE, 7, 4);
        for omitted in 0..4 {
            let mut shown = l.mine.clone_entries();
            shown.remove(omitted);
            assert_eq!(
                code(check_complete(&l.checkpoint, Some(MINE), Some(&p), &shown)),
                "log.chain_broken",
                "{omitted}"
            );
        }
        // An entry shown that failed its checks.
        let mut failed = l.mine.clone_entries();
        failed[2].verified = Err(ClientError::local(ErrorCode::Integrity, "x"));
        assert_eq!(
            code(check_complete(&l.checkpoint, Some(MINE), Some(&p), &failed)),
            "log.chain_broken"
        );
    }

    #[test]
    fn a_lie_about_the_head_or_count_does_not_match_the_index() {
        let l = log();
        // The node hides the newest entry and claims the chain ends at 4.
        let truncated = proof(&l.tree, &MINE, 4, 3);
        let mut shown = l.mine.clone_entries();
        shown.truncate(3);
        assert_eq!(
            code(check_complete(
                &l.checkpoint,
                Some(MINE),
                Some(&truncated),
                &shown
            )),
            "log.index_mismatch"
        );
        // The node claims the tag has no leaf.
        let absent = proof(&l.tree, &MINE, 0, 0);
        assert_eq!(
            code(check_complete(
                &l.checkpoint,
                Some(MINE),
                Some(&absent),
                &[]
            )),
            "log.index_mismatch"
        );
        // No index root, or no proof.
        let mut unindexed = l.checkpoint.clone();
        unindexed.resident_index = None;
        let p = proof(&l.tree, &MINE, 7, 4);
        assert_eq!(
            code(check_complete(&unindexed, Some(MINE), Some(&p), &l.mine)),
            "log.index_mismatch"
        );
        assert_eq!(
            code(check_complete(&l.checkpoint, Some(MINE), None, &l.mine)),
            "log.index_mismatch"
        );
    }

    #[test]
    fn a_chain_shorter_or_longer_than_the_count_is_named() {
        // An index (signed) that says 5 entries where the chain has 4: the
        // walk ends at prev = 0 too early.
        let mut tree = smt::Tree::new();
        tree.insert(MINE, smt::head_value(&MINE, 7, 5));
        let checkpoint = pki::Checkpoint {
            resident_index: Some(tree.root()),
            ..log().checkpoint
        };
        let p = proof(&tree, &MINE, 7, 5);
        assert_eq!(
            code(check_complete(
                &checkpoint,
                Some(MINE),
                Some(&p),
                &log().mine
            )),
            "log.count_mismatch"
        );
        // One that says 3: the walk goes past it.
        let mut tree = smt::Tree::new();
        tree.insert(MINE, smt::head_value(&MINE, 7, 3));
        let checkpoint = pki::Checkpoint {
            resident_index: Some(tree.root()),
            ..log().checkpoint
        };
        let p = proof(&tree, &MINE, 7, 3);
        assert_eq!(
            code(check_complete(
                &checkpoint,
                Some(MINE),
                Some(&p),
                &log().mine
            )),
            "log.count_mismatch"
        );
    }

    #[test]
    fn a_tag_without_entries_is_complete_only_under_the_salt_sigma_fixes() {
        // check_complete alone would call a tag without a leaf complete: a
        // node giving a wrong salt points the client at such a tag. That is
        // why the tag walked is the one check_salt derives from σ.
        let l = log();
        let wrong = [0x12; 32];
        let p = proof(&l.tree, &wrong, 0, 0);
        check_complete(&l.checkpoint, Some(wrong), Some(&p), &[]).unwrap();
        // Without a salt there is no tag to look up.
        assert_eq!(
            code(check_complete(&l.checkpoint, None, Some(&p), &[])),
            "log.index_mismatch"
        );
    }

    #[test]
    fn the_salt_must_be_the_one_the_district_salt_key_fixes() {
        let (key, _) = pki::SaltSigner::generate().unwrap();
        let verifier = key.verifier();
        let me = ResidentId::parse("resident-1").unwrap();
        let sigma = key.sign(&me).unwrap();
        let salt = pki::salt_from_proof(&sigma);
        let tag = pki::resident_tag(&salt, &me);
        let sigma_hex = hex::encode(&sigma);
        let salt_hex = hex::encode(salt);
        let check = |k: Option<&pki::SaltVerifier>, s: &str, p: Option<&str>| {
            check_salt(k, &me, s, p).map_err(|e| e.code().to_string())
        };
        assert_eq!(check(Some(&verifier), &salt_hex, Some(&sigma_hex)), Ok(tag));
        // A resident never in the log: no stored salt, σ alone.
        assert_eq!(check(Some(&verifier), "", Some(&sigma_hex)), Ok(tag));
        let wrong = Err("log.wrong_salt".to_string());
        // Another salt than σ's (a random one, or another resident's).
        assert_eq!(
            check(Some(&verifier), &hex::encode([9u8; 32]), Some(&sigma_hex)),
            wrong
        );
        // No σ, σ of another resident or key, a σ that is not hex.
        assert_eq!(check(Some(&verifier), &salt_hex, None), wrong);
        let other = key.sign(&ResidentId::parse("resident-2").unwrap()).unwrap();
        assert_eq!(
            check(Some(&verifier), &salt_hex, Some(&hex::encode(other))),
            wrong
        );
        let (stranger, _) = pki::SaltSigner::generate().unwrap();
        let forged = stranger.sign(&me).unwrap();
        let forged_salt = hex::encode(pki::salt_from_proof(&forged));
        assert_eq!(
            check(Some(&verifier), &forged_salt, Some(&hex::encode(forged))),
            wrong
        );
        assert_eq!(check(Some(&verifier), &salt_hex, Some("zz")), wrong);
        // An identity without salt.pub cannot check anything.
        assert_eq!(check(None, &salt_hex, Some(&sigma_hex)), wrong);
    }

    trait CloneEntries {
        fn clone_entries(&self) -> Vec<CheckedAccess>;
    }

    impl CloneEntries for Vec<CheckedAccess> {
        fn clone_entries(&self) -> Vec<CheckedAccess> {
            self.iter()
                .map(|a| CheckedAccess {
                    index: a.index,
                    verified: a
                        .verified
                        .as_ref()
                        .map(Clone::clone)
                        .map_err(|e| ClientError::local(ErrorCode::Integrity, e.to_string())),
                })
                .collect()
        }
    }
}
