//! The QUIC server: accepts mutually authenticated connections (rustls
//! verifies the client chain and the CRL during the handshake), reads one
//! request per stream and drives the vault.
//!
//! **Invariant:** nothing a peer sends can panic the node or change state
//! when refused; every refusal is logged with its code and answered with
//! a stable code and a sentence.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pki::{Identity, PeerCert};
use tokio::sync::mpsc;
use vault_client::framing::{read_frame_body, read_frame_len, write_frame, FrameError};
use vault_client::transport;
use vault_client::tree::{self, GROUP_SIZE};
use vault_client::wire::{
    ByteRange, DocumentView, Request, Response, WireError, FRAME_LEN_MAX, RAFT_FRAME_LEN_MAX,
    RESET_INTEGRITY, RESET_INTERNAL,
};
use vault_client::{DocumentId, ErrorCode};

use crate::access;
use crate::blobs::{BlobReader, TAG_LEN};
use crate::consent;
use crate::grants::{GrantCache, PurposeRegistry};
use crate::raft::{Cluster, Network, RaftHandle};
use crate::state::{Applied, Command, DocumentEntry, Proposal, Seed};
use crate::store::MetaStore;
use crate::transparency::{self, CheckpointCache};
use crate::vault::Vault;
use crate::Refusal;

/// How often the CRL file is checked for changes, in milliseconds.
pub const CRL_POLL_MS: u64 = 1_000;
/// Upload chunks queued between the network and the blob writer.
const UPLOAD_QUEUE_DEPTH: usize = 16;
/// Largest chunk read from an upload stream at once, in bytes.
const UPLOAD_READ_BYTES: usize = 256 * 1024;
/// Bytes of pieces batched per network write on downloads.
const DOWNLOAD_BATCH_BYTES: usize = 256 * 1024;
/// Transfers up to this many bytes are read inline, without a thread hop.
const INLINE_TRANSFER_BYTES_MAX: u64 = 256 * 1024;
/// Download batches queued between the blob reader and the network.
const DOWNLOAD_QUEUE_DEPTH: usize = 4;

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// The node's identity directory (cert.pem, key.pem, ca.pem).
    pub identity_dir: PathBuf,
    /// The district CRL (PEM), re-read when it changes.
    pub crl_path: Option<PathBuf>,
    /// The purpose registry (JSON); none means no access requests are accepted.
    pub purposes_path: Option<PathBuf>,
    /// Cluster mode: replicate metadata with Raft among these members.
    /// `None` runs the single-node vault.
    pub cluster: Option<ClusterConfig>,
}

/// A node's place in a Raft cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's Raft id (a key of `members`).
    pub node_id: u64,
    /// Every member, this node included: Raft id to `HOST:PORT` (the host
    /// must be a name in that node's certificate).
    pub members: BTreeMap<u64, String>,
    /// Whether this node makes the initial membership (on one node only;
    /// ignored once the cluster is initialized).
    pub bootstrap: bool,
    /// Placement, replication, repair and snapshot settings.
    pub policy: crate::placement::ClusterPolicy,
}

/// What every request handler shares.
pub(crate) struct Ctx {
    pub(crate) vault: Arc<Vault>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) purposes: PurposeRegistry,
    pub(crate) grant_cache: GrantCache,
    pub(crate) crls: std::sync::RwLock<Vec<Vec<u8>>>,
    pub(crate) checkpoints: CheckpointCache,
    /// The node's Raft instance, once [`RunningNode::attach_raft`] set it;
    /// until then Raft RPCs are refused.
    pub(crate) raft: std::sync::OnceLock<RaftHandle>,
    /// Cluster mode: writes go through this cluster.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Repair totals since start, reported by `status`.
    pub(crate) repair: std::sync::Mutex<vault_client::wire::RepairStatus>,
}

impl Ctx {
    /// Applies a command: through the single-node ledger (on a blocking
    /// thread, a synced write), or in cluster mode through Raft (forwarded
    /// to the leader by a follower).
    pub(crate) async fn submit(&self, command: Command) -> Result<Applied, Refusal> {
        let Some(cluster) = &self.cluster else {
            let vault = self.vault.clone();
            return tokio::task::spawn_blocking(move || vault.submit(&command))
                .await
                .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
        };
        let proposal = Proposal {
            command,
            seed: Seed::fresh(vault_client::client::now_unix()),
        };
        match cluster.propose(proposal).await?.into_result() {
            Ok(Some(applied)) => Ok(applied),
            Ok(None) => Err(Refusal::new(
                ErrorCode::Internal,
                "the write was applied as an internal entry",
            )),
            Err(e) => Err(Refusal::from(e)),
        }
    }

    /// In cluster mode, waits for a linearizable read point (see
    /// [`Cluster::linearize`]); a single node's reads are always current.
    pub(crate) async fn linearize(&self) -> Result<(), Refusal> {
        match &self.cluster {
            Some(cluster) => cluster.linearize().await,
            None => Ok(()),
        }
    }

    pub(crate) fn crls(&self) -> Vec<Vec<u8>> {
        self.crls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A running node.
pub struct RunningNode {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The node's certificate.
    pub cert: PeerCert,
    endpoint: quinn::Endpoint,
    vault: Arc<Vault>,
    ctx: Arc<Ctx>,
}

impl RunningNode {
    /// The node's storage.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The node's QUIC endpoint (it can also open connections, e.g. to
    /// other nodes for Raft).
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// The node's identity (certificate and key).
    pub fn identity(&self) -> &Arc<Identity> {
        &self.ctx.identity
    }

    /// The node's cluster membership, when it runs in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.ctx.cluster.as_ref()
    }

    /// Lets this node answer Raft RPCs from other nodes with `raft`. Only
    /// the first call takes effect; returns whether this one did.
    pub fn attach_raft(&self, raft: RaftHandle) -> bool {
        self.ctx.raft.set(raft).is_ok()
    }

    /// Runs one scrub now (cluster mode): re-reads every blob the state
    /// machine knows and repairs missing or corrupt copies from members.
    pub async fn scrub_once(&self) -> crate::repair::ScrubCounts {
        crate::repair::scrub_once(&self.ctx).await
    }

    /// Waits until the endpoint is closed.
    pub async fn wait(&self) {
        self.endpoint.wait_idle().await;
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"node shutting down");
    }
}

/// Opens storage, binds the endpoint and starts serving in the background.
pub async fn start(config: NodeConfig) -> Result<RunningNode, Refusal> {
    let identity = Identity::load(&config.identity_dir)?;
    if identity.cert.role != pki::Role::Node {
        return Err(Refusal::new(
            ErrorCode::BadCertificate,
            format!(
                "{} does not hold a node certificate",
                config.identity_dir.display()
            ),
        ));
    }
    let vault = Arc::new(Vault::open(&config.data_dir)?);
    let purposes = match &config.purposes_path {
        Some(path) => PurposeRegistry::load(path)?,
        None => PurposeRegistry::default(),
    };
    let crls = load_crl_state(config.crl_path.as_deref(), &vault)?;
    let server = server_config(&identity, &crls)?;
    let socket = transport::bind_udp(config.listen).map_err(|e| {
        Refusal::new(
            ErrorCode::Connection,
            format!("cannot bind {}: {e}", config.listen),
        )
    })?;
    let (recv_buf, send_buf) = transport::socket_buffer_sizes(&socket);
    let endpoint = transport::endpoint(socket, Some(server))
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
    let addr = endpoint
        .local_addr()
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
    tracing::info!(%addr, recv_buf, send_buf, node = %identity.cert.name, "node listening");
    let cluster = match &config.cluster {
        Some(cluster_config) => {
            let network = Network::new(endpoint.clone(), &identity)?;
            let cluster = Cluster::open_with(
                cluster_config.node_id,
                &config.data_dir.join("raft"),
                network,
                cluster_config.policy,
            )
            .await?;
            let reads: Arc<dyn MetaStore> = cluster.store().clone();
            vault.read_from(reads);
            Some(Arc::new(cluster))
        }
        None => None,
    };
    let raft = std::sync::OnceLock::new();
    if let Some(cluster) = &cluster {
        let _ = raft.set(cluster.raft().clone());
    }
    let cert = identity.cert.clone();
    let ctx = Arc::new(Ctx {
        vault: vault.clone(),
        identity: Arc::new(identity),
        purposes,
        grant_cache: GrantCache::default(),
        crls: std::sync::RwLock::new(crls),
        checkpoints: CheckpointCache::default(),
        raft,
        cluster,
        repair: std::sync::Mutex::default(),
    });
    record_revocations(&ctx);
    tokio::spawn(accept_loop(endpoint.clone(), ctx.clone()));
    if let (Some(cluster), Some(cluster_config)) = (&ctx.cluster, &config.cluster) {
        if cluster_config.bootstrap {
            bootstrap(cluster, cluster_config.members.clone()).await?;
        }
    }
    if let Some(path) = config.crl_path.clone() {
        tokio::spawn(watch_crl(endpoint.clone(), ctx.clone(), path));
    }
    if ctx.cluster.is_some() {
        tokio::spawn(crate::repair::scrub_loop(ctx.clone()));
    }
    Ok(RunningNode {
        addr,
        cert,
        endpoint,
        vault,
        ctx,
    })
}

/// Makes the initial membership unless the cluster already has one.
async fn bootstrap(cluster: &Cluster, members: BTreeMap<u64, String>) -> Result<(), Refusal> {
    let initialized = cluster
        .raft()
        .is_initialized()
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("Raft: {e}")))?;
    if initialized {
        return Ok(());
    }
    cluster.initialize(members).await?;
    tracing::info!(node = cluster.id(), "initialized the cluster membership");
    Ok(())
}

fn server_config(identity: &Identity, crls: &[Vec<u8>]) -> Result<quinn::ServerConfig, Refusal> {
    let tls = pki::server_tls_config(identity, crls)?;
    transport::server_config(tls).map_err(|e| Refusal::new(ErrorCode::BadCertificate, e))
}

/// Loads the CRL (if any), updates the vault's revoked set, returns DER CRLs.
fn load_crl_state(path: Option<&Path>, vault: &Vault) -> Result<Vec<Vec<u8>>, Refusal> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    // A configured CRL that is missing or unreadable fails closed: the node
    // refuses to start, and a running node keeps its previous CRL.
    let crls = pki::load_crls(path)?;
    let mut serials = HashSet::new();
    for crl in &crls {
        serials.extend(pki::revoked_serials(crl)?);
    }
    vault.set_revoked(serials);
    Ok(crls)
}

async fn watch_crl(endpoint: quinn::Endpoint, ctx: Arc<Ctx>, path: PathBuf) {
    let stamp = |p: &Path| -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(Duration::from_millis(CRL_POLL_MS)).await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        let loaded = load_crl_state(Some(&path), &ctx.vault)
            .and_then(|crls| Ok((server_config(&ctx.identity, &crls)?, crls)));
        match loaded {
            Ok((config, crls)) => {
                endpoint.set_server_config(Some(config));
                *ctx.crls.write().unwrap_or_else(|p| p.into_inner()) = crls;
                ctx.grant_cache.clear();
                record_revocations(&ctx);
                tracing::info!(path = %path.display(), "reloaded the CRL");
            }
            Err(e) => {
                tracing::error!(code = %e.code, error = %e.message, "cannot reload the CRL; keeping the previous one")
            }
        }
    }
}

/// Logs the CRL's serials (the state machine keeps only new ones).
fn record_revocations(ctx: &Arc<Ctx>) {
    let mut serials: Vec<String> = ctx.vault.revoked_serials().into_iter().collect();
    if serials.is_empty() {
        return;
    }
    serials.sort();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let command = Command::RecordCertificateRevocations { serials };
        if let Err(e) = ctx.submit(command).await {
            tracing::error!(code = %e.code, error = %e.message, "cannot log certificate revocations");
        }
    });
}

async fn accept_loop(endpoint: quinn::Endpoint, ctx: Arc<Ctx>) {
    while let Some(incoming) = endpoint.accept().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => serve_connection(connection, ctx).await,
                Err(e) => {
                    tracing::warn!(%remote, code = "tls.handshake_refused", error = %e, "handshake refused")
                }
            }
        });
    }
}

async fn serve_connection(connection: quinn::Connection, ctx: Arc<Ctx>) {
    let remote = connection.remote_address();
    let caller = match peer_cert(&connection) {
        Ok(caller) => Arc::new(caller),
        Err(e) => {
            tracing::warn!(%remote, code = %e.code, error = %e.message, "refused connection");
            connection.close(1u32.into(), b"bad certificate");
            return;
        }
    };
    tracing::debug!(%remote, role = caller.cert.role.as_str(), name = %caller.cert.name, "connected");
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                let ctx = ctx.clone();
                let caller = caller.clone();
                tokio::spawn(async move { serve_stream(ctx, caller, send, recv).await });
            }
            Err(_) => return,
        }
    }
}

async fn serve_stream(
    ctx: Arc<Ctx>,
    caller: Arc<Caller>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut ids = RefusalIds::default();
    // A node certificate of another cluster is refused whatever it asks
    // (Raft, blob copies, membership, status), before its request is read:
    // the one place that check is made.
    let other_cluster = match caller.cert.role {
        pki::Role::Node => {
            crate::raft::network::same_cluster(&ctx.identity.cert, &caller.cert).err()
        }
        _ => None,
    };
    let result = match other_cluster {
        Some(refusal) => Err(refusal),
        None => match read_and_handle(&ctx, &caller, &mut send, &mut recv, &mut ids).await {
            Some(result) => result,
            None => return,
        },
    };
    if let Err(refusal) = result {
        record_refusal(&ctx, &caller.cert, &refusal, ids);
        tracing::warn!(
            role = caller.cert.role.as_str(),
            name = %caller.cert.name,
            code = %refusal.code,
            error = %refusal.message,
            "request refused"
        );
        let _ = write_frame(&mut send, &Response::Error(refusal.body())).await;
        let _ = recv.stop(0u32.into());
    }
    let _ = send.finish();
    let _ = send.stopped().await;
}

/// Reads one request (Raft frames may be larger, from nodes of this
/// cluster only, and only for Raft RPCs) and handles it; `None` when the stream ended before a request arrived.
async fn read_and_handle(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    ids: &mut RefusalIds,
) -> Option<Result<(), Refusal>> {
    let max = if caller.cert.role == pki::Role::Node {
        RAFT_FRAME_LEN_MAX
    } else {
        FRAME_LEN_MAX
    };
    let read = match read_frame_len(recv, max).await {
        Ok(len) => read_frame_body::<Request>(recv, len)
            .await
            .map(|request| (request, len)),
        Err(e) => Err(e),
    };
    Some(match read {
        Err(FrameError::Wire(e)) => Err(Refusal::new(e.code(), format!("{e}"))),
        Err(_) => return None,
        Ok((request, len)) if len > FRAME_LEN_MAX && !matches!(request, Request::Raft { .. }) => {
            let e = WireError::FrameTooLarge {
                len,
                max: FRAME_LEN_MAX,
            };
            Err(Refusal::new(e.code(), format!("{e}")))
        }
        Ok((request, _)) => {
            *ids = RefusalIds::of(&request);
            match ctx.vault.check_not_revoked(&caller.cert) {
                Err(refusal) => Err(refusal),
                Ok(()) => handle(ctx, caller, request, send, recv).await,
            }
        }
    })
}

/// The ids a refused request concerned, for its log entry.
#[derive(Default, Clone, Copy)]
struct RefusalIds {
    document_id: Option<DocumentId>,
    grant_id: Option<pki::GrantId>,
    request_id: Option<pki::RequestId>,
}

impl RefusalIds {
    fn of(request: &Request) -> Self {
        match request {
            Request::Get {
                document_id, grant, ..
            } => RefusalIds {
                document_id: Some(*document_id),
                grant_id: *grant,
                request_id: None,
            },
            Request::Approve { request_id, .. } | Request::Deny { request_id } => RefusalIds {
                request_id: Some(*request_id),
                ..Default::default()
            },
            Request::ShowGrant { grant_id } | Request::RevokeGrant { grant_id } => RefusalIds {
                grant_id: Some(*grant_id),
                ..Default::default()
            },
            _ => RefusalIds::default(),
        }
    }
}

/// Records a refusal in the log, in the background (the refusal itself
/// changed no state; this entry is its only trace).
fn record_refusal(ctx: &Arc<Ctx>, caller: &PeerCert, refusal: &Refusal, ids: RefusalIds) {
    // Node-to-node calls (Raft, blob copies, membership, status) are not
    // accesses to anyone's documents, and a misconfigured or removed node
    // retrying every heartbeat would grow the log without end: refusals of
    // node certificates go to the node's own log (tracing) only.
    if caller.role == pki::Role::Node {
        return;
    }
    if matches!(
        refusal.code,
        ErrorCode::Connection
            | ErrorCode::Internal
            | ErrorCode::Storage
            | ErrorCode::DiskFull
            | ErrorCode::LogCorrupt
            | ErrorCode::LogRange
    ) {
        return;
    }
    let document_id = ids.document_id.filter(|id| ctx.vault.document(*id).is_ok());
    let command = Command::RecordRefusal {
        role: caller.role,
        by: caller.name.clone(),
        code: refusal.code.as_str().to_string(),
        document_id,
        grant_id: ids.grant_id,
        request_id: ids.request_id,
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = ctx.submit(command).await {
            tracing::error!(code = %e.code, error = %e.message, "cannot record a refusal in the log");
        }
    });
}

async fn handle(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    request: Request,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(), Refusal> {
    let vault = &ctx.vault;
    let response = match request {
        Request::Put { record, signature } => {
            return handle_put(ctx, caller, record, signature, send, recv).await
        }
        Request::Get {
            document_id,
            range,
            grant,
        } => return handle_get(ctx, &caller.cert, document_id, range, grant, send).await,
        Request::List { resident } => {
            let scope = access::check_list(&caller.cert, &resident)?;
            let entries = vault.list(&resident, &scope)?;
            let documents = entries.iter().map(view).collect();
            Response::Documents { documents }
        }
        Request::Checkpoint
        | Request::LogEntries { .. }
        | Request::InclusionProof { .. }
        | Request::ConsistencyProof { .. }
        | Request::Accesses { .. } => transparency::handle(ctx, &caller.cert, request).await?,
        Request::Raft { rpc } => {
            crate::raft::serve_rpc(ctx.raft.get(), &ctx.identity.cert, &caller.cert, rpc).await?
        }
        Request::PushBlob { content_hash, size } => {
            crate::replica::serve_push(ctx, &caller.cert, content_hash, size, recv).await?
        }
        Request::FetchBlob { content_hash } => {
            return crate::replica::serve_fetch(ctx, &caller.cert, content_hash, send).await
        }
        Request::Status => crate::status::handle(ctx, &caller.cert).await?,
        Request::ChangeMembership { change } => {
            change_membership(ctx, &caller.cert, change).await?
        }
        other => consent::handle(ctx, &caller.cert, &caller.der, other).await?,
    };
    write(send, &response).await
}

/// Answers a membership change from a node identity (an operator's tool).
async fn change_membership(
    ctx: &Arc<Ctx>,
    caller: &pki::PeerCert,
    change: vault_client::wire::MembershipChange,
) -> Result<Response, Refusal> {
    if caller.role != pki::Role::Node {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "only node identities change the membership; {} holds a {} certificate",
                caller.name,
                caller.role.as_str()
            ),
        ));
    }
    let Some(cluster) = &ctx.cluster else {
        return Err(Refusal::new(
            ErrorCode::ClusterMembership,
            "this node runs no cluster",
        ));
    };
    // Only a member may change who the members are: a node certificate
    // the cluster does not list (another cluster's, a removed node's)
    // could otherwise add itself or remove the voters.
    if !crate::raft::network::is_member(cluster.raft(), caller) {
        tracing::warn!(by = %caller.name, ?change, "membership change refused: not a member");
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "{} is not a member of this cluster; run the change with a member's node identity",
                caller.name
            ),
        ));
    }
    tracing::info!(by = %caller.name, ?change, "membership change requested");
    let reply = cluster.change_membership(change).await?;
    Ok(Response::Membership {
        members: reply.members,
        log_index: reply.log_index,
    })
}

async fn handle_put(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    record: pki::IssueRecord,
    signature: pki::Signature,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(), Refusal> {
    let vault = &ctx.vault;
    let now = vault_client::client::now_unix();
    access::check_put(&caller.cert, &record, &signature, now)?;
    let hash = record.content_hash;
    let had_blob = vault.has_blob(&hash)?;
    // The body is always sent, even when the blob is stored already: knowing
    // a hash must not be enough to register (and then read) a document.
    write(send, &Response::SendBody { send: true }).await?;
    let fresh_blob = receive_blob(vault, hash, record.size, recv).await? && !had_blob;
    if let Some(cluster) = &ctx.cluster {
        // Registered only once enough nodes hold the bytes.
        crate::replica::replicate(ctx, cluster, hash).await?;
    }
    let entry = DocumentEntry {
        document_id: record.document_id(&signature),
        record,
        signature,
        issuer_cert: caller.der.clone(),
        registered_at: now,
    };
    let command = Command::RegisterDocument(entry.clone());
    let applied = ctx.submit(command).await?;
    let Applied::DocumentRegistered { blob_existed, .. } = applied else {
        return Err(Refusal::new(ErrorCode::Internal, "unexpected apply result"));
    };
    tracing::info!(
        document = %entry.document_id,
        issuer = %entry.record.issuer,
        size = entry.record.size,
        deduplicated = !fresh_blob || blob_existed,
        "document stored"
    );
    let response = Response::Stored {
        document: view(&entry),
        deduplicated: !fresh_blob || blob_existed,
    };
    write(send, &response).await
}

/// Streams exactly `size` bytes from `recv` into the blob store on a
/// blocking thread; returns whether the blob is new on this node.
pub(crate) async fn receive_blob(
    vault: &Arc<Vault>,
    hash: pki::ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
) -> Result<bool, Refusal> {
    let writer = vault.blobs().writer(hash, size)?;
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(UPLOAD_QUEUE_DEPTH);
    let worker = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write(&chunk)?;
        }
        writer.finish()
    });
    let mut received = 0u64;
    let outcome = loop {
        match recv.read_chunk(UPLOAD_READ_BYTES, true).await {
            Ok(Some(chunk)) => {
                received += chunk.bytes.len() as u64;
                if received > size {
                    break Err(Refusal::new(
                        ErrorCode::Oversized,
                        format!("the upload carried more than the announced {size} bytes; nothing was stored"),
                    ));
                }
                if tx.send(chunk.bytes).await.is_err() {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => {
                break Err(Refusal::new(
                    ErrorCode::Truncated,
                    format!(
                    "the upload stopped after {received} of {size} bytes ({e}); nothing was stored"
                ),
                ))
            }
        }
    };
    drop(tx);
    let finished = worker
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    // A network failure wins over what the writer says about a short body.
    outcome?;
    Ok(finished?)
}

async fn handle_get(
    ctx: &Arc<Ctx>,
    caller: &PeerCert,
    document_id: DocumentId,
    range: Option<ByteRange>,
    grant: Option<pki::GrantId>,
    send: &mut quinn::SendStream,
) -> Result<(), Refusal> {
    let vault = &ctx.vault;
    // No read-index round before a grant is used: the checks made here on
    // this node's state are of what never changes (signatures, holder,
    // scope, window) or only ever tightens (revocation, uses), and the use
    // itself is a Raft command whose apply refuses a revoked or exhausted
    // grant in log order. A stale node can therefore refuse early, never
    // honour late.
    let entry = match vault.document(document_id) {
        // A follower may not have applied a document just registered
        // elsewhere: catch up with the cluster before answering not found.
        Err(refusal) if refusal.code == ErrorCode::NotFound && ctx.cluster.is_some() => {
            ctx.linearize().await?;
            vault.document(document_id)?
        }
        other => other?,
    };
    match grant {
        Some(grant_id) => match consent::check_use(ctx, caller, &entry, grant_id) {
            // A grant issued elsewhere that this node has not applied yet.
            Err(refusal) if refusal.code == ErrorCode::GrantNotFound && ctx.cluster.is_some() => {
                ctx.linearize().await?;
                consent::check_use(ctx, caller, &entry, grant_id)?
            }
            other => other?,
        },
        None => access::check_read(caller, &entry)?,
    }
    let size = entry.record.size;
    let range = match range {
        None => ByteRange {
            start: 0,
            end: size,
        },
        Some(r) => ByteRange {
            start: r.start,
            end: r.end.min(size),
        },
    };
    if range.start > range.end {
        return Err(Refusal::new(
            ErrorCode::InvalidArgument,
            format!(
                "range {}..{} is outside the document's {size} bytes",
                range.start, range.end
            ),
        ));
    }
    let encoded_len = tree::Plan::encoded_len(size, range.start..range.end)
        .map_err(|e| Refusal::new(ErrorCode::InvalidArgument, e.to_string()))?;
    if ctx.cluster.is_some() {
        // Never serve a corrupt copy: a missing or corrupt one is replaced
        // by a verified copy from a member first.
        let groups = crate::repair::groups_for(size, range.start, range.end);
        let fetched =
            crate::repair::ensure_authentic(ctx, entry.record.content_hash, size, Some(groups))
                .await?;
        if fetched {
            crate::repair::note(ctx, |totals| totals.read_repaired += 1);
        }
    }
    let reader = vault.blobs().reader(&entry.record.content_hash)?;
    let outboard = reader.outboard()?;
    // Only now, with the request valid and the blob readable, is the access
    // counted; it is durable in the log before the first byte leaves.
    let command = match grant {
        Some(grant_id) => Command::UseGrant {
            grant_id,
            document_id,
            at: vault_client::client::now_unix(),
        },
        None => Command::RecordAccess {
            document_id,
            role: caller.role,
            by: caller.name.clone(),
        },
    };
    let applied = ctx.submit(command).await?;
    if let Applied::GrantUsed { use_number } = applied {
        tracing::info!(document = %document_id, use_number, holder = %caller.name, "fetch under grant");
    }
    let response = Response::Document {
        document: view(&entry),
        range,
        encoded_len,
    };
    let header = vault_client::wire::encode_frame(&response)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    stream_pieces(entry, reader, outboard, range, encoded_len, header, send).await;
    Ok(())
}

/// Reads and authenticates pieces and writes them; on a corrupt group,
/// resets the stream with [`RESET_INTEGRITY`] instead of sending it. Small
/// transfers are read inline; large ones on a blocking thread, in batches.
async fn stream_pieces(
    entry: Arc<DocumentEntry>,
    reader: BlobReader,
    outboard: tree::Outboard,
    range: ByteRange,
    encoded_len: u64,
    header: Vec<u8>,
    send: &mut quinn::SendStream,
) {
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
                stop_transfer(&entry, &refusal, send)
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
            Err(refusal) => return stop_transfer(&entry, &refusal, send),
        }
    }
}

fn stop_transfer(entry: &DocumentEntry, refusal: &Refusal, send: &mut quinn::SendStream) {
    tracing::error!(document = %entry.document_id, code = %refusal.code, error = %refusal.message, "stopped a transfer");
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

async fn write(send: &mut quinn::SendStream, response: &Response) -> Result<(), Refusal> {
    write_frame(send, response)
        .await
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))
}

pub(crate) fn view(entry: &DocumentEntry) -> DocumentView {
    DocumentView {
        document_id: entry.document_id,
        record: entry.record.clone(),
        signature: entry.signature,
        issuer_cert: entry.issuer_cert.clone(),
    }
}

/// The authenticated caller of a connection.
struct Caller {
    cert: PeerCert,
    der: Vec<u8>,
}

fn peer_cert(connection: &quinn::Connection) -> Result<Caller, Refusal> {
    let certs = connection
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or_else(|| Refusal::new(ErrorCode::BadCertificate, "no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Refusal::new(ErrorCode::BadCertificate, "no client certificate"))?;
    Ok(Caller {
        cert: pki::parse_certificate(leaf)?,
        der: leaf.to_vec(),
    })
}
