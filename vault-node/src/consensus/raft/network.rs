//! Raft RPCs over the nodes' QUIC endpoints.
//!
//! Each RPC is one bidirectional stream on a mutually authenticated
//! connection: a [`Request::Raft`] frame (at most [`RAFT_FRAME_LEN_MAX`](vault_client::wire::RAFT_FRAME_LEN_MAX))
//! and a [`Response::Raft`] frame carrying openraft's result as JSON.
//! [`Network`] keeps one connection per peer, shared by every openraft
//! client of that peer, and reconnects when it has closed.
//!
//! Failures map to openraft's errors so that it retries: no connection is
//! [`Unreachable`] (openraft backs off), a failed or timed-out exchange on
//! a connection is a [`NetworkError`] (a failed connection is dropped and
//! reopened on the next call), an error the peer's Raft returned is a
//! [`RemoteError`].
//!
//! openraft gives an append-entries call only the heartbeat interval and
//! drops it when that runs out, so connections are opened on a task of
//! their own: a handshake slower than one call still completes, is cached,
//! and serves the next call. At most one connect per peer is in flight;
//! calls meanwhile fail as unreachable.

// openraft's trait fixes the error type (`RPCError`, ~256 bytes); the
// helpers here return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use pki::{Identity, PeerCert, Role};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vault_client::framing::{exchange, exchange_on, ExchangeError, FrameLimits};
use vault_client::wire::{MembershipChange, RaftRpc, Request, Response};
use vault_client::ErrorCode;

use super::membership::{self, MembershipError};
use super::types::{Forwarded, RaftHandle, TypeConfig};
use crate::engine::state::Proposal;
use crate::Refusal;

/// How long connecting to a peer (QUIC and TLS handshake) may take, in
/// milliseconds, before the peer counts as unreachable.
pub const RAFT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Largest snapshot a node receives, in bytes: a chunk that would end
/// past it is refused before openraft grows its buffer to the offset.
/// Snapshots are built in memory (JSON of the replicated state), so this
/// also bounds the memory a snapshot install takes.
pub const SNAPSHOT_LEN_MAX: u64 = 4 << 30;

type Rpc<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// Connections to the other nodes, shared by every openraft client.
#[derive(Clone)]
pub struct Network {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    /// This node's certificate: a peer dialled must belong to its cluster.
    own: Arc<PeerCert>,
    peers: Arc<Mutex<HashMap<u64, Arc<Slot>>>>,
}

/// The connection to one peer, and the lock a connect holds.
#[derive(Default)]
struct Slot {
    connection: Mutex<Option<quinn::Connection>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn ready(&self) -> Option<quinn::Connection> {
        let connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        connection
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }
}

impl Network {
    /// Connects from `endpoint` (typically the node's own server endpoint)
    /// with `identity`, which must be a node certificate: the peers answer
    /// Raft RPCs only to nodes.
    pub fn new(endpoint: quinn::Endpoint, identity: &Identity) -> Result<Self, Refusal> {
        let tls = pki::client_tls_config(identity)?;
        let client = vault_client::transport::client_config(tls)
            .map_err(|e| Refusal::new(ErrorCode::BadCertificate, e))?;
        Ok(Network {
            endpoint,
            client,
            own: Arc::new(identity.cert.clone()),
            peers: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn slot(&self, target: u64) -> Arc<Slot> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry(target).or_default().clone()
    }

    /// Drops `connection` to `target` if it is still the cached one.
    fn forget(&self, target: u64, connection: &quinn::Connection) {
        let slot = self.slot(target);
        let mut cached = slot.connection.lock().unwrap_or_else(|p| p.into_inner());
        if cached
            .as_ref()
            .is_some_and(|c| c.stable_id() == connection.stable_id())
        {
            *cached = None;
        }
    }

    /// The connection to `target` at `addr`, opened (on a task of its own)
    /// if needed.
    async fn connection(&self, target: u64, addr: &str) -> Result<quinn::Connection, String> {
        let slot = self.slot(target);
        if let Some(connection) = slot.ready() {
            return Ok(connection);
        }
        let Ok(guard) = slot.connecting.clone().try_lock_owned() else {
            return Err(format!("a connection to {addr} is being opened"));
        };
        let network = self.clone();
        let target_addr = addr.to_string();
        let task = tokio::spawn(async move {
            let _guard = guard;
            if let Some(connection) = slot.ready() {
                return Ok(connection);
            }
            let connection = network.open(target, &target_addr).await?;
            *slot.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
            Ok(connection)
        });
        task.await
            .map_err(|e| format!("connecting to {addr}: {e}"))?
    }

    /// Opens a connection to `addr` and checks that it is node `target`
    /// (a node certificate named [`member_name`]`(target)`).
    async fn open(&self, target: u64, addr: &str) -> Result<quinn::Connection, String> {
        let host = match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => return Err(format!("{addr}: expected HOST:PORT")),
        };
        let socket = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} resolves to no address"))?;
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), socket, host)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let connection =
            tokio::time::timeout(Duration::from_millis(RAFT_CONNECT_TIMEOUT_MS), connecting)
                .await
                .map_err(|_| format!("no answer from {addr} within {RAFT_CONNECT_TIMEOUT_MS} ms"))?
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        match peer_cert(&connection) {
            Ok(cert) if cert.role == Role::Node && cert.name.as_str() == member_name(target) => {
                if let Err(refusal) = same_cluster(&self.own, &cert) {
                    connection.close(0u32.into(), b"another cluster");
                    return Err(format!("{addr}: {}", refusal.message));
                }
            }
            Ok(cert) if cert.role == Role::Node => {
                connection.close(0u32.into(), b"not the expected node");
                return Err(format!(
                    "{addr} presented the certificate of {}, not of {}",
                    cert.name,
                    member_name(target)
                ));
            }
            Ok(cert) => {
                connection.close(0u32.into(), b"not a node");
                return Err(format!(
                    "{addr} presented a {} certificate, not a node certificate",
                    cert.role.as_str()
                ));
            }
            Err(e) => {
                connection.close(0u32.into(), b"bad certificate");
                return Err(format!("{addr}: {e}"));
            }
        }
        Ok(connection)
    }
}

/// Why a forwarded call ([`Network::forward`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Nothing was sent (no connection yet, or it could not be encoded).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The call was sent; the exchange failed or timed out.
    #[error("{0}")]
    Failed(String),
    /// The peer answered with a refusal (it did not take the call).
    #[error("refused: {}: {}", .0.code.as_str(), .0.message)]
    Refused(Refusal),
}

impl Network {
    /// Sends a node-to-node `rpc` (a forwarded proposal or a read-index
    /// query) to `target` at `addr` on the shared connection and answers
    /// the JSON reply.
    pub async fn forward(
        &self,
        target: u64,
        addr: &str,
        rpc: RaftRpc,
        ttl: Duration,
    ) -> Result<serde_json::Value, ForwardError> {
        let connection = self
            .connection(target, addr)
            .await
            .map_err(ForwardError::NotSent)?;
        let (mut send, mut recv) = match connection.open_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                self.forget(target, &connection);
                return Err(ForwardError::NotSent(e.to_string()));
            }
        };
        let request = Request::Raft { rpc };
        let answer = exchange_on(&mut send, &mut recv, &request, FrameLimits::RAFT, Some(ttl));
        let response = match answer.await {
            Ok(response) => response,
            Err(e) if e.not_sent() => return Err(ForwardError::NotSent(e.to_string())),
            Err(ExchangeError::Timeout(_)) => {
                // A peer that stays silent is probably gone: reconnect next time.
                self.forget(target, &connection);
                return Err(ForwardError::Failed(format!(
                    "no answer from node {target} within {} ms",
                    ttl.as_millis()
                )));
            }
            Err(e) => {
                self.forget(target, &connection);
                return Err(ForwardError::Failed(e.to_string()));
            }
        };
        match response {
            Response::Raft { reply } => Ok(reply),
            Response::Error(body) => {
                Err(ForwardError::Refused(match ErrorCode::parse(&body.code) {
                    Some(code) => Refusal::new(code, format!("node {target}: {}", body.message)),
                    None => Refusal::new(
                        ErrorCode::Internal,
                        format!("node {target} refused: {}: {}", body.code, body.message),
                    ),
                }))
            }
            other => Err(ForwardError::Failed(format!(
                "node {target} answered with an unexpected {other:?}"
            ))),
        }
    }
}

impl Network {
    /// Opens a stream to `target` at `addr` on the shared connection
    /// (connecting if needed; waits for a connect already in flight for up
    /// to twice [`RAFT_CONNECT_TIMEOUT_MS`]).
    pub async fn open_stream(
        &self,
        target: u64,
        addr: &str,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(2 * RAFT_CONNECT_TIMEOUT_MS);
        let connection = loop {
            match self.connection(target, addr).await {
                Ok(connection) => break connection,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        match connection.open_bi().await {
            Ok(streams) => Ok(streams),
            Err(e) => {
                self.forget(target, &connection);
                Err(format!("node {target}: {e}"))
            }
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            network: self.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// openraft's client of one peer.
pub struct Peer {
    network: Network,
    target: u64,
    node: BasicNode,
}

/// Why an exchange failed before the peer's Raft answered.
enum CallError {
    /// No connection.
    Unreachable(String),
    /// The connection failed or the exchange timed out.
    Network(String),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> Rpc<E> {
        match self {
            CallError::Unreachable(m) => {
                RPCError::Unreachable(Unreachable::new(&AnyError::error(m)))
            }
            CallError::Network(m) => RPCError::Network(NetworkError::new(&AnyError::error(m))),
        }
    }
}

impl Peer {
    /// Sends `rpc` and decodes the peer's `Result<T, RaftError<E>>`.
    async fn call<T, E>(&self, rpc: RaftRpc, ttl: Duration) -> Result<T, Rpc<E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let connection = self
            .network
            .connection(self.target, &self.node.addr)
            .await
            .map_err(|e| CallError::Unreachable(e).into_rpc())?;
        let request = Request::Raft { rpc };
        let answer = exchange(&connection, &request, FrameLimits::RAFT, Some(ttl));
        let response = match answer.await {
            Ok(response) => response,
            Err(e @ ExchangeError::Encode(_)) => {
                return Err(CallError::Network(e.to_string()).into_rpc())
            }
            // A slow answer is no reason to drop the connection (a dead
            // peer's is closed by a stateless reset or the idle timeout).
            Err(ExchangeError::Timeout(_)) => {
                return Err(CallError::Network(format!(
                    "no answer from node {} within {} ms",
                    self.target,
                    ttl.as_millis()
                ))
                .into_rpc());
            }
            Err(e) => {
                self.network.forget(self.target, &connection);
                return Err(CallError::Network(e.to_string()).into_rpc());
            }
        };
        let reply = match response {
            Response::Raft { reply } => reply,
            Response::Error(body) => {
                return Err(CallError::Network(format!(
                    "node {} refused: {}: {}",
                    self.target, body.code, body.message
                ))
                .into_rpc())
            }
            other => {
                return Err(CallError::Network(format!(
                    "node {} answered with an unexpected {other:?}",
                    self.target
                ))
                .into_rpc())
            }
        };
        let result: Result<T, RaftError<u64, E>> = serde_json::from_value(reply).map_err(|e| {
            CallError::Network(format!("node {} sent a malformed reply: {e}", self.target))
                .into_rpc()
        })?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

fn body<T: Serialize, E: std::error::Error>(value: &T) -> Result<serde_json::Value, Rpc<E>> {
    serde_json::to_value(value).map_err(|e| CallError::Network(e.to_string()).into_rpc())
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Rpc> {
        let rpc = RaftRpc::AppendEntries(body(&rpc)?);
        self.call(rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Rpc<InstallSnapshotError>> {
        let rpc = RaftRpc::InstallSnapshot(body(&rpc)?);
        self.call(rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, Rpc> {
        let rpc = RaftRpc::Vote(body(&rpc)?);
        self.call(rpc, option.hard_ttl()).await
    }
}

/// Answers a Raft RPC from `caller` with the local Raft instance (`None`
/// when this node runs none). Only callers with a node certificate may
/// send one.
pub(crate) async fn serve_rpc(
    raft: Option<&RaftHandle>,
    own: &PeerCert,
    caller: &PeerCert,
    rpc: RaftRpc,
) -> Result<Response, Refusal> {
    crate::rules::access::require_role(caller, Role::Node, "send Raft messages")?;
    let Some(raft) = raft else {
        // Not recorded in the log (internal): a peer may call before the
        // local Raft instance is attached.
        return Err(Refusal::new(
            ErrorCode::Internal,
            "this node runs no Raft instance yet",
        ));
    };
    admit(raft, own, caller, &rpc)?;
    let reply = match rpc {
        RaftRpc::AppendEntries(body) => serve_append_entries(raft, caller, body).await?,
        RaftRpc::Vote(body) => serve_vote(raft, caller, body).await?,
        RaftRpc::InstallSnapshot(body) => serve_install_snapshot(raft, caller, body).await?,
        RaftRpc::Propose(body) => serve_propose(raft, body).await?,
        RaftRpc::ChangeMembership(change) => serve_change_membership(raft, change).await?,
        RaftRpc::ReadIndex => serve_read_index(raft).await?,
    };
    Ok(Response::Raft { reply })
}

/// Refuses `caller` when `rpc` must come from a member and it is none.
///
/// Forwarded calls (writes, read index, membership changes) always come
/// from a member of this node's view (any node while it knows no
/// membership yet: a node waiting to be added). Raft's own messages
/// (votes, appends, snapshots) come from any node of this node's *named*
/// cluster speaking for its own id: this node's view may be older than
/// the cluster's (a node that was down while members changed, a learner
/// whose first batch holds the initial membership), and refusing the new
/// leader, or a candidate it needs, would lock it out. Without a named
/// cluster they are members-only too, as nothing else tells a node of
/// this cluster from any other district node certificate (which could
/// otherwise depose the leader or overwrite a follower's log).
fn admit(
    raft: &RaftHandle,
    own: &PeerCert,
    caller: &PeerCert,
    rpc: &RaftRpc,
) -> Result<(), Refusal> {
    let forwarded = matches!(
        rpc,
        RaftRpc::Propose(_) | RaftRpc::ReadIndex | RaftRpc::ChangeMembership(_)
    );
    let from_member_only = forwarded || own.cluster.is_none();
    if from_member_only && !is_member(raft, caller) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("{} is not a member of this cluster", caller.name),
        ));
    }
    Ok(())
}

/// Append entries (or a heartbeat) from the leader `caller` claims to be.
async fn serve_append_entries(
    raft: &RaftHandle,
    caller: &PeerCert,
    body: serde_json::Value,
) -> Result<serde_json::Value, Refusal> {
    let request: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(body)?;
    speaks_for(caller, request.vote.leader_id().voted_for())?;
    reply(&raft.append_entries(request).await)
}

/// A vote request from the candidate `caller` claims to be.
async fn serve_vote(
    raft: &RaftHandle,
    caller: &PeerCert,
    body: serde_json::Value,
) -> Result<serde_json::Value, Refusal> {
    let request: openraft::raft::VoteRequest<u64> = decode(body)?;
    speaks_for(caller, request.vote.leader_id().voted_for())?;
    reply(&raft.vote(request).await)
}

/// One snapshot chunk from the leader; a chunk ending past
/// [`SNAPSHOT_LEN_MAX`] is refused before openraft buffers it.
async fn serve_install_snapshot(
    raft: &RaftHandle,
    caller: &PeerCert,
    body: serde_json::Value,
) -> Result<serde_json::Value, Refusal> {
    let request: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(body)?;
    speaks_for(caller, request.vote.leader_id().voted_for())?;
    let end = request.offset.saturating_add(request.data.len() as u64);
    if end > SNAPSHOT_LEN_MAX {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("a snapshot chunk ends at byte {end}, past {SNAPSHOT_LEN_MAX}"),
        ));
    }
    reply(&raft.install_snapshot(request).await)
}

/// A write a follower forwarded: ordered here, within the cluster deadline.
async fn serve_propose(
    raft: &RaftHandle,
    body: serde_json::Value,
) -> Result<serde_json::Value, Refusal> {
    let proposal: Proposal = decode(body)?;
    let deadline = Duration::from_millis(crate::rules::placement::CLUSTER_DEADLINE_MS);
    let result = match tokio::time::timeout(deadline, raft.client_write(proposal)).await {
        Ok(Ok(response)) => Ok(Forwarded {
            outcome: response.data,
            log_index: response.log_id.index,
        }),
        Ok(Err(e)) => Err(Refusal::new(
            ErrorCode::ClusterUnavailable,
            format!("the forwarded write was not ordered: {e}"),
        )
        .body()),
        // A leader cut off from its majority: give up rather than
        // hold the task until the partition heals.
        Err(_) => Err(Refusal::new(
            ErrorCode::ClusterUnavailable,
            "the leader could not commit the forwarded write in time; it may or may not be committed",
        )
        .body()),
    };
    reply(&result)
}

/// A membership change a follower forwarded.
async fn serve_change_membership(
    raft: &RaftHandle,
    change: MembershipChange,
) -> Result<serde_json::Value, Refusal> {
    let result = match membership::change_membership(raft, change).await {
        Ok(reply) => Ok(reply),
        Err(MembershipError::NotLeader) => Err(Refusal::new(
            ErrorCode::ClusterUnavailable,
            "this node no longer leads; nothing was changed",
        )
        .body()),
        Err(MembershipError::Refused(refusal)) => Err(refusal.body()),
    };
    reply(&result)
}

/// The log index a follower's linearizable read must wait for.
async fn serve_read_index(raft: &RaftHandle) -> Result<serde_json::Value, Refusal> {
    let result = match raft.get_read_log_id().await {
        Ok((read, _)) => Ok(read.map(|id| id.index).unwrap_or(0)),
        Err(e) => Err(Refusal::new(
            ErrorCode::ClusterUnavailable,
            format!("cannot confirm a read point: {e}"),
        )
        .body()),
    };
    reply(&result)
}

/// The certificate name a cluster member must hold: `node-<id>`. This
/// binds Raft ids to certificates: a node certificate speaks for its own
/// id only, and a node dialling member `id` accepts no other.
pub fn member_name(id: u64) -> String {
    format!("node-{id}")
}

/// The Raft id a node certificate speaks for, if its name is `node-<id>`.
pub fn member_id(cert: &PeerCert) -> Option<u64> {
    cert.name.as_str().strip_prefix("node-")?.parse().ok()
}

/// Refuses a Raft message whose sender (`claimed`) is not the caller.
fn speaks_for(caller: &PeerCert, claimed: Option<u64>) -> Result<(), Refusal> {
    match claimed {
        Some(id) if member_id(caller) == Some(id) => Ok(()),
        Some(id) => Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("{} may not speak for Raft node {id}", caller.name),
        )),
        None => Err(Refusal::new(
            ErrorCode::FrameMalformed,
            "a Raft message with no sender",
        )),
    }
}

/// Refuses `caller` unless it belongs to this node's cluster: when this
/// node's certificate names a cluster (`vault-pki issue --cluster`), the
/// caller's must name the same one. Nodes whose certificates name none
/// accept any district node (the cluster is then only what the
/// membership says).
pub fn same_cluster(own: &PeerCert, caller: &PeerCert) -> Result<(), Refusal> {
    match &own.cluster {
        Some(cluster) if caller.cluster.as_ref() != Some(cluster) => Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "{} belongs to cluster {}, this node to cluster {cluster}",
                caller.name,
                caller.cluster.as_deref().unwrap_or("(none)")
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether `caller` holds the certificate of a current member (any node,
/// while the membership is still empty).
pub fn is_member(raft: &RaftHandle, caller: &PeerCert) -> bool {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    if membership.nodes().next().is_none() {
        return true;
    }
    member_id(caller).is_some_and(|id| membership.get_node(&id).is_some())
}

fn decode<T: DeserializeOwned>(body: serde_json::Value) -> Result<T, Refusal> {
    serde_json::from_value(body).map_err(|e| {
        Refusal::new(
            ErrorCode::FrameMalformed,
            format!("malformed Raft RPC: {e}"),
        )
    })
}

fn reply<T: Serialize>(result: &T) -> Result<serde_json::Value, Refusal> {
    serde_json::to_value(result).map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))
}

fn peer_cert(connection: &quinn::Connection) -> Result<PeerCert, Refusal> {
    match vault_client::transport::peer_certificate(connection) {
        Ok(peer) => Ok(peer.cert),
        Err(vault_client::transport::PeerCertError::Invalid(e)) => Err(e.into()),
        Err(_) => Err(Refusal::new(
            ErrorCode::BadCertificate,
            "no node certificate",
        )),
    }
}
