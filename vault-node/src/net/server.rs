//! The node's request loop: accepts mutually authenticated connections
//! (rustls verifies the client chain and the CRL during the handshake),
//! reads one request per stream, refuses what the caller may not send, and
//! dispatches the rest to its service, handing each only what it uses; an
//! upload's body is received through [`crate::replication::stream`], a
//! download is sent by [`crate::net::transfer`].
//!
//! **Invariant:** nothing a peer sends can panic the node or change state
//! when refused; every refusal is logged with its code and answered with
//! a stable code and a sentence.

use std::sync::{Arc, OnceLock};

use pki::{ContentHash, GrantId, Identity, PeerCert, Role};
use vault_client::framing::{read_frame_body, read_frame_len, write_frame, FrameError};
use vault_client::transport;
use vault_client::wire::{
    ByteRange, MembershipChange, RaftRpc, Request, Response, WireError, FRAME_LEN_MAX,
    RAFT_FRAME_LEN_MAX,
};
use vault_client::{DocumentId, ErrorCode};

use crate::consensus::raft::RaftHandle;
use crate::consensus::Consensus;
use crate::engine::state::{Applied, Command};
use crate::net::admission::{Admission, Permit};
use crate::net::transfer;
use crate::replication::stream::{self, Deadlines};
use crate::replication::Replication;
use crate::rules::access::require_role;
use crate::rules::clock::Clock;
use crate::rules::limits::{self, Work};
use crate::service::consent::{self, Consent};
use crate::service::documents::Documents;
use crate::service::registry::Registry;
use crate::service::transparency::{self, Transparency};
use crate::service::{membership, orders, status, Caller};
use crate::storage::vault::Vault;
use crate::Refusal;

/// The node's services, as the request loop dispatches to them. Each
/// handler is given the part it uses.
pub struct Services {
    /// The node's identity.
    pub identity: Arc<Identity>,
    /// This node's storage.
    pub vault: Arc<Vault>,
    /// How commands become durable.
    pub consensus: Arc<Consensus>,
    /// The one clock.
    pub clock: Arc<dyn Clock>,
    /// Put, get, list.
    pub documents: Documents,
    /// Requests, approvals, grants.
    pub consent: Arc<Consent>,
    /// Checkpoints, proofs, log entries, accesses.
    pub transparency: Transparency,
    /// The district's registries, answered to any caller.
    pub registry: Registry,
    /// Blob copies (cluster mode).
    pub replication: Option<Arc<Replication>>,
    /// The node's Raft instance, once attached; until then Raft RPCs are
    /// refused.
    pub raft: OnceLock<RaftHandle>,
    /// Work in progress per caller and in total, against the node's limits.
    pub admission: Arc<Admission>,
}

impl Services {
    /// Applies a command (see [`Consensus::submit`]).
    pub async fn submit(&self, command: Command) -> Result<Applied, Refusal> {
        self.consensus.submit(command, &*self.clock).await
    }
}

/// Accepts connections until the endpoint closes, serving each on its own task.
pub async fn accept_loop(endpoint: quinn::Endpoint, services: Arc<Services>) {
    while let Some(incoming) = endpoint.accept().await {
        let services = services.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => serve_connection(connection, services).await,
                Err(e) => {
                    tracing::warn!(%remote, code = "tls.handshake_refused", error = %e, "handshake refused")
                }
            }
        });
    }
}

async fn serve_connection(connection: quinn::Connection, services: Arc<Services>) {
    let remote = connection.remote_address();
    let caller = match peer_cert(&connection) {
        Ok(caller) => Arc::new(caller),
        Err(e) => {
            tracing::warn!(%remote, code = %e.code, "refused connection");
            connection.close(1u32.into(), b"bad certificate");
            return;
        }
    };
    tracing::debug!(%remote, role = caller.cert.role.as_str(), name = %caller.cert.name, "connected");
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                let services = services.clone();
                let caller = caller.clone();
                tokio::spawn(async move { serve_stream(services, caller, send, recv).await });
            }
            Err(_) => return,
        }
    }
}

async fn serve_stream(
    services: Arc<Services>,
    caller: Arc<Caller>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let started = std::time::Instant::now();
    let mut ids = RefusalIds::default();
    // A node certificate of another cluster is refused whatever it asks
    // (Raft, blob copies, membership, status), before its request is read:
    // the one place that check is made.
    let other_cluster = match caller.cert.role {
        pki::Role::Node => {
            crate::consensus::raft::network::same_cluster(&services.identity.cert, &caller.cert)
                .err()
        }
        _ => None,
    };
    let result = match other_cluster {
        Some(refusal) => Err(refusal),
        None => match read_and_handle(&services, &caller, &mut send, &mut recv, &mut ids).await {
            Some(result) => result,
            None => return,
        },
    };
    let code = match &result {
        Ok(()) => "ok",
        Err(refusal) => refusal.code.as_str(),
    };
    let kind = if ids.kind.is_empty() {
        "unread"
    } else {
        ids.kind
    };
    crate::metrics::METRICS.request(kind, code, started.elapsed());
    if let Err(refusal) = result {
        record_refusal(&services, &caller.cert, &refusal, ids);
        // The message (names, ids) goes to the caller only; a resident
        // caller is not named.
        let who = match caller.cert.role {
            pki::Role::Resident => "-",
            _ => caller.cert.name.as_str(),
        };
        let idle = services.admission.limits().idle();
        if refusal.code == ErrorCode::LimitBusy {
            // A caller may send these as fast as it likes: not at warn, or
            // the node's own log would be the next thing it fills.
            tracing::debug!(role = caller.cert.role.as_str(), caller = who, request = ids.kind, code = %refusal.code, "request refused");
        } else {
            tracing::warn!(
                role = caller.cert.role.as_str(),
                caller = who,
                request = ids.kind,
                code = %refusal.code,
                "request refused"
            );
        }
        let answer = Response::Error(refusal.body());
        let _ = tokio::time::timeout(idle, write_frame(&mut send, &answer)).await;
        let _ = recv.stop(0u32.into());
    }
    let _ = send.finish();
    // Wait (as a task, holding no thread) for the peer to take the last
    // bytes, but not for ever: a peer that stops reading is let go.
    let linger = services
        .admission
        .limits()
        .deadline(u64::from(transport::STREAM_WINDOW_BYTES));
    let _ = tokio::time::timeout(linger, send.stopped()).await;
}

/// Reads one request (Raft frames may be larger, from nodes of this
/// cluster only, and only for Raft RPCs) and handles it; `None` when the stream ended before a request arrived.
async fn read_and_handle(
    services: &Arc<Services>,
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
    let limits = *services.admission.limits();
    let read = async {
        match read_frame_len(recv, max).await {
            Ok(len) => read_frame_body::<Request>(recv, len)
                .await
                .map(|request| (request, len)),
            Err(e) => Err(e),
        }
    };
    // A request is due within the idle deadline; a node's (Raft frames may
    // be large) within the total deadline for its largest frame.
    let due = if caller.cert.role == pki::Role::Node {
        limits.deadline(max as u64)
    } else {
        limits.idle()
    };
    let read = match tokio::time::timeout(due, read).await {
        Ok(read) => read,
        Err(_) => return Some(Err(limits::deadline_passed("request", true))),
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
            match admit(services, caller, &request) {
                Err(refusal) => Err(refusal),
                Ok(_permit) => handle(services, caller, request, send, recv).await,
            }
        }
    })
}

/// Checks the caller is not revoked and takes a place for the request's
/// work (upload, download or other), or `limit.busy` at once.
fn admit(services: &Services, caller: &Caller, request: &Request) -> Result<Permit, Refusal> {
    services.vault.check_not_revoked(&caller.cert)?;
    let work = match request {
        Request::Put { .. } => Work::Upload,
        Request::Get { .. } => Work::Download,
        _ => Work::Request,
    };
    services.admission.admit(work, &caller.cert)
}

/// The ids a refused request concerned, for its log entry.
#[derive(Default, Clone, Copy)]
struct RefusalIds {
    document_id: Option<DocumentId>,
    grant_id: Option<pki::GrantId>,
    request_id: Option<pki::RequestId>,
    /// The request's type, for the node's own log line.
    kind: &'static str,
}

impl RefusalIds {
    fn of(request: &Request) -> Self {
        let mut ids = Self::ids_of(request);
        ids.kind = kind_of(request);
        ids
    }

    fn ids_of(request: &Request) -> Self {
        match request {
            Request::Get {
                document_id, grant, ..
            } => RefusalIds {
                document_id: Some(*document_id),
                grant_id: *grant,
                ..Default::default()
            },
            Request::Approve { request_id, .. } | Request::Deny { request_id } => RefusalIds {
                request_id: Some(*request_id),
                ..Default::default()
            },
            Request::ShowOrder { order_id }
            | Request::ApproveOrder { order_id, .. }
            | Request::DenyOrder { order_id }
            | Request::Disclosure { order_id, .. } => RefusalIds {
                request_id: Some(*order_id),
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

/// A request's type as the wire tags it.
fn kind_of(request: &Request) -> &'static str {
    match request {
        Request::Put { .. } => "put",
        Request::Get { .. } => "get",
        Request::CreateRequest { .. } => "create_request",
        Request::PendingRequests { .. } => "pending_requests",
        Request::ShowRequest { .. } => "show_request",
        Request::Approve { .. } => "approve",
        Request::Deny { .. } => "deny",
        Request::Grants { .. } => "grants",
        Request::ShowGrant { .. } => "show_grant",
        Request::RevokeGrant { .. } => "revoke_grant",
        Request::FileOrder { .. } => "file_order",
        Request::Orders { .. } => "orders",
        Request::ShowOrder { .. } => "show_order",
        Request::ApproveOrder { .. } => "approve_order",
        Request::DenyOrder { .. } => "deny_order",
        Request::ExtendSeal { .. } => "extend_seal",
        Request::Disclosure { .. } => "disclosure",
        Request::Checkpoint => "checkpoint",
        Request::LogEntries { .. } => "log_entries",
        Request::InclusionProof { .. } => "inclusion_proof",
        Request::Receipt { .. } => "receipt",
        Request::ConsistencyProof { .. } => "consistency_proof",
        Request::Accesses { .. } => "accesses",
        Request::List { .. } => "list",
        Request::Raft { .. } => "raft",
        Request::PushBlob { .. } => "push_blob",
        Request::FetchBlob { .. } => "fetch_blob",
        Request::Status => "status",
        Request::ChangeMembership { .. } => "change_membership",
        Request::Registry => "registry",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// Records a refusal in the log, in the background (the refusal itself
/// changed no state; this entry is its only trace).
fn record_refusal(services: &Arc<Services>, caller: &PeerCert, refusal: &Refusal, ids: RefusalIds) {
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
            // A caller over its caps or cut at a deadline is told so; a
            // flood of them must not become a flood of commits.
            | ErrorCode::LimitBusy
            | ErrorCode::LimitDeadline
    ) {
        return;
    }
    // At most so many entries per caller and minute; the rest are counted.
    let now = services.clock.now_unix();
    match services
        .consent
        .refusals
        .admit(caller.role, &caller.name, now)
    {
        crate::rules::refusals::Admission::Suppress => return,
        crate::rules::refusals::Admission::Log { suppressed: 0 } => {}
        crate::rules::refusals::Admission::Log { suppressed } => {
            let who = match caller.role {
                pki::Role::Resident => "-",
                _ => caller.name.as_str(),
            };
            tracing::warn!(
                role = caller.role.as_str(),
                caller = who,
                suppressed,
                "refusal entries were not logged (rate limit)"
            );
        }
    }
    let document_id = ids
        .document_id
        .filter(|id| services.vault.document(*id).is_ok());
    let command = Command::RecordRefusal {
        role: caller.role,
        by: caller.name.clone(),
        code: refusal.code.as_str().to_string(),
        document_id,
        grant_id: ids.grant_id,
        request_id: ids.request_id,
    };
    let services = services.clone();
    tokio::spawn(async move {
        if let Err(e) = services.submit(command).await {
            tracing::error!(code = %e.code, "cannot record a refusal in the log");
        }
    });
}

/// Answers one request: streamed requests (put, get, blob fetch) write
/// their own replies; every other handler returns the one reply written
/// here.
async fn handle(
    services: &Arc<Services>,
    caller: &Caller,
    request: Request,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(), Refusal> {
    let response = match request {
        Request::Put { record, signature } => {
            return handle_put(services, caller, record, signature, send, recv).await
        }
        Request::Get {
            document_id,
            range,
            grant,
        } => return handle_get(services, caller, document_id, range, grant, send).await,
        Request::FetchBlob { content_hash } => {
            return serve_fetch_blob(services, caller, content_hash, send).await
        }
        Request::List {
            resident,
            cursor,
            limit,
        } => services
            .documents
            .list(&caller.cert, &resident, cursor.as_deref(), limit)?,
        Request::Checkpoint
        | Request::LogEntries { .. }
        | Request::InclusionProof { .. }
        | Request::Receipt { .. }
        | Request::ConsistencyProof { .. }
        | Request::Accesses { .. } => {
            transparency::handle(&services.transparency, &caller.cert, request).await?
        }
        Request::Raft { rpc } => serve_raft(services, caller, rpc).await?,
        Request::PushBlob { content_hash, size } => {
            serve_push_blob(services, caller, content_hash, size, recv).await?
        }
        Request::Status => node_status(services, caller).await?,
        Request::ChangeMembership { change } => change_membership(services, caller, change).await?,
        // Public: any authenticated caller of this cluster, any role.
        Request::Registry => services.registry.answer(),
        Request::FileOrder { .. }
        | Request::Orders { .. }
        | Request::ShowOrder { .. }
        | Request::ApproveOrder { .. }
        | Request::DenyOrder { .. }
        | Request::ExtendSeal { .. }
        | Request::Disclosure { .. } => {
            let ctx = (&*services.consent, &services.transparency);
            orders::handle(ctx, &caller.cert, &caller.der, request).await?
        }
        other => consent::handle(&services.consent, &caller.cert, &caller.der, other).await?,
    };
    write(send, &response, services.admission.limits().idle()).await
}

/// A get: authorized, then the bytes streamed.
async fn handle_get(
    services: &Services,
    caller: &Caller,
    document_id: DocumentId,
    range: Option<ByteRange>,
    grant: Option<GrantId>,
    send: &mut quinn::SendStream,
) -> Result<(), Refusal> {
    // The decrypted outboard is held for the whole transfer: its bytes are
    // reserved from the node's budget first (`limit.busy` when spent).
    let outboard_len = services
        .vault
        .document(document_id)
        .map(|entry| vault_client::tree::outboard_len(entry.record.size))
        .unwrap_or(0);
    let _reserved = services
        .admission
        .reserve_outboard(outboard_len, &caller.cert)?;
    let download = services
        .documents
        .prepare_get(&caller.cert, document_id, range, grant)
        .await?;
    let limits = services.admission.limits();
    let deadlines = Deadlines::for_size(limits, download.encoded_len);
    transfer::send_download(download, send, deadlines).await;
    Ok(())
}

/// A blob copy sent to another node of the cluster.
async fn serve_fetch_blob(
    services: &Services,
    caller: &Caller,
    content_hash: ContentHash,
    send: &mut quinn::SendStream,
) -> Result<(), Refusal> {
    let replication = replication_for(services, &caller.cert)?;
    crate::replication::replica::serve_fetch(replication, &caller.cert, content_hash, send).await
}

/// A blob copy received from another node of the cluster.
async fn serve_push_blob(
    services: &Services,
    caller: &Caller,
    content_hash: ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
) -> Result<Response, Refusal> {
    let replication = replication_for(services, &caller.cert)?;
    crate::replication::replica::serve_push(replication, &caller.cert, content_hash, size, recv)
        .await
}

/// A Raft RPC, for the local Raft instance (once attached).
async fn serve_raft(
    services: &Services,
    caller: &Caller,
    rpc: RaftRpc,
) -> Result<Response, Refusal> {
    crate::consensus::raft::serve_rpc(
        services.raft.get(),
        &services.identity.cert,
        &caller.cert,
        rpc,
    )
    .await
}

/// The node's status.
async fn node_status(services: &Services, caller: &Caller) -> Result<Response, Refusal> {
    status::handle(
        services.identity.cert.name.as_str(),
        &services.vault,
        services.replication.as_ref(),
        &caller.cert,
    )
    .await
}

/// A membership change, on a cluster node.
async fn change_membership(
    services: &Services,
    caller: &Caller,
    change: MembershipChange,
) -> Result<Response, Refusal> {
    membership::change(
        services.consensus.cluster().map(|c| &**c),
        &caller.cert,
        change,
    )
    .await
}

/// Blob copies are exchanged by nodes of a cluster only.
fn replication_for<'a>(
    services: &'a Services,
    caller: &PeerCert,
) -> Result<&'a Replication, Refusal> {
    require_role(caller, Role::Node, "exchange blobs")?;
    services
        .replication
        .as_deref()
        .ok_or_else(|| Refusal::new(ErrorCode::Forbidden, "this node runs no cluster"))
}

/// A put: checked, then its body streamed into the blob store, then
/// registered.
async fn handle_put(
    services: &Services,
    caller: &Caller,
    record: pki::IssueRecord,
    signature: pki::Signature,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(), Refusal> {
    let documents = &services.documents;
    let limits = services.admission.limits();
    let put = documents.begin_put(&caller.cert, record, signature)?;
    // A body the disk cannot take is refused before it is asked for (the
    // client reads the refusal, not a stopped stream).
    let blobs = documents.vault.blobs();
    if !blobs.contains(&put.record.content_hash) {
        blobs.check_space(put.record.size)?;
    }
    write(send, &Response::SendBody { send: true }, limits.idle()).await?;
    let (hash, size) = (put.record.content_hash, put.record.size);
    let deadlines = Deadlines::for_size(limits, size);
    let fresh_blob =
        stream::receive_blob_within(&documents.vault, hash, size, recv, deadlines).await?;
    let response = documents.finish_put(caller, put, fresh_blob).await?;
    write(send, &response, limits.idle()).await
}

/// Writes one response frame, within the idle deadline.
async fn write(
    send: &mut quinn::SendStream,
    response: &Response,
    idle: std::time::Duration,
) -> Result<(), Refusal> {
    match tokio::time::timeout(idle, write_frame(send, response)).await {
        Ok(written) => written.map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string())),
        Err(_) => Err(limits::deadline_passed("answer", true)),
    }
}

/// The one place the caller's certificate is read, from the TLS handshake
/// (through [`vault_client::transport::peer_certificate`]).
fn peer_cert(connection: &quinn::Connection) -> Result<Caller, Refusal> {
    match transport::peer_certificate(connection) {
        Ok(peer) => Ok(Caller {
            cert: peer.cert,
            der: peer.der,
        }),
        Err(transport::PeerCertError::Invalid(e)) => Err(e.into()),
        Err(_) => Err(Refusal::new(
            ErrorCode::BadCertificate,
            "no client certificate",
        )),
    }
}
