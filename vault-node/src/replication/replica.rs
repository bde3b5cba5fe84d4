//! Blob replication in cluster mode, node to node over QUIC.
//!
//! After a node has received and verified an upload, it pushes the
//! plaintext to the blob's replicas: R of the voters, chosen by
//! [rendezvous hashing](crate::rules::placement) ([`Request::PushBlob`], then the
//! body); each receiver verifies it against the content hash with the same
//! [`BlobWriter`](crate::storage::blobs::BlobWriter) as an upload and stores it
//! under its own master key. The document is registered only once W
//! replicas hold it (the uploader counting when it is one); pushes to the
//! remaining replicas finish in the background, and the reconciler in
//! [`crate::replication::repair`] fetches any that failed.
//!
//! A node asked for a document it holds no authentic copy of (missing, or
//! failing authentication) fetches the blob from a member
//! ([`Request::FetchBlob`]), verified the same way, before serving it; see
//! [`crate::replication::repair`] for the scheduled scrub.
//!
//! **Memory:** blobs are streamed in batches of about
//! [`SEND_BATCH_BYTES`](crate::replication::stream::SEND_BATCH_BYTES) with a bounded queue, never buffered whole.

use std::sync::Arc;
use std::time::Duration;

use pki::{ContentHash, PeerCert, Role};
use tokio::sync::mpsc;
use vault_client::framing::{exchange_on, read_frame, write_frame, FrameLimits};
use vault_client::wire::{Request, Response, RESPONSE_FRAME_LEN_MAX};
use vault_client::ErrorCode;

use crate::replication::Replication;
use crate::rules::access::require_role;
use crate::Refusal;

pub use crate::rules::placement::{transfer_deadline, TRANSFER_BASE_S, TRANSFER_RATE_MIN_BYTES_S};

/// How long a member may take to start answering a fetch, in milliseconds.
pub const FETCH_ANSWER_TIMEOUT_MS: u64 = 5_000;

impl Replication {
    /// Pushes the blob `hash` (held and verified here) to its replicas;
    /// returns once W of them hold it (see [`replica`]).
    pub async fn replicate(self: &Arc<Self>, hash: pki::ContentHash) -> Result<(), Refusal> {
        replicate(self, hash).await
    }
}

/// Pushes the blob `hash` (held and verified here) to its replicas (R of
/// the voters, by [rendezvous placement](crate::rules::placement)); returns once
/// W of them hold it (this node counting when it is one), the others
/// continuing in the background.
async fn replicate(rep: &Arc<Replication>, hash: ContentHash) -> Result<(), Refusal> {
    let cluster = &rep.cluster;
    let targets = cluster.placement(&hash);
    let here = targets.contains(&cluster.id());
    // A cluster smaller than W needs every replica.
    let quorum = cluster.policy().write_quorum.min(targets.len()).max(1);
    let needed = quorum.saturating_sub(usize::from(here));
    let mut errors = Vec::new();
    let mut peers = Vec::new();
    for target in targets.into_iter().filter(|t| *t != cluster.id()) {
        match cluster.addr_of(target) {
            Some(addr) => peers.push((target, addr)),
            None => errors.push(format!("node {target}: no address in the membership")),
        }
    }
    let (tx, mut rx) = mpsc::channel(peers.len().max(1));
    for (target, addr) in peers {
        let rep = rep.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = push_to(&rep, target, &addr, hash).await;
            crate::metrics::METRICS.blob_push(result.is_ok());
            if let Err(e) = &result {
                tracing::warn!(node = target, error = %e, "cannot push a blob");
            }
            let _ = tx.send(result).await;
        });
    }
    drop(tx);
    let mut acks = 0;
    if needed == 0 {
        return Ok(());
    }
    while let Some(result) = rx.recv().await {
        match result {
            Ok(()) => {
                acks += 1;
                if acks >= needed {
                    return Ok(());
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Err(Refusal::new(
        ErrorCode::ClusterUnavailable,
        format!(
            "only {} of the {quorum} replicas needed hold the document ({}); it was not registered",
            acks + usize::from(here),
            errors.join("; ")
        ),
    ))
}

async fn push_to(
    rep: &Replication,
    target: u64,
    addr: &str,
    hash: ContentHash,
) -> Result<(), String> {
    let reader = rep.vault.blobs().reader(&hash).map_err(|e| e.to_string())?;
    let size = reader.size();
    let exchange = async {
        let (mut send, mut recv) = rep.cluster.network().open_stream(target, addr).await?;
        let request = Request::PushBlob {
            content_hash: hash,
            size,
        };
        write_frame(&mut send, &request)
            .await
            .map_err(|e| e.to_string())?;
        crate::replication::stream::send_plain(reader, &mut send).await?;
        let _ = send.finish();
        read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX)
            .await
            .map_err(|e| e.to_string())
    };
    // A replica that is alive but stalled (its connection kept open) must
    // not hold an upload, or a scrub, forever.
    let deadline = transfer_deadline(size);
    let answer = tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| format!("the push did not finish within {} s", deadline.as_secs()))??;
    match answer {
        Response::BlobStored { content_hash } if content_hash == hash => Ok(()),
        Response::Error(body) => Err(format!(
            "node {target} refused: {}: {}",
            body.code, body.message
        )),
        other => Err(format!("node {target} answered {other:?}")),
    }
}

/// Fetches the blob `hash` of `size` bytes (verified) from the first
/// member that supplies it, its replicas first, replacing any local copy
/// atomically.
pub(crate) async fn fetch_any(
    rep: &Replication,
    hash: ContentHash,
    size: u64,
) -> Result<(), Refusal> {
    let cluster = &rep.cluster;
    let mut errors = Vec::new();
    let members: Vec<u64> = cluster.peers().into_iter().map(|(id, _)| id).collect();
    let ranked = crate::rules::placement::ranked(&hash, members);
    for target in ranked {
        let Some(addr) = cluster.addr_of(target) else {
            continue;
        };
        match fetch_from(rep, target, &addr, hash, size).await {
            Ok(()) => {
                tracing::info!(node = target, "fetched a blob from a member");
                return Ok(());
            }
            Err(e) => errors.push(format!("node {target}: {e}")),
        }
    }
    Err(Refusal::new(
        ErrorCode::ClusterUnavailable,
        format!(
            "this node holds no authentic copy of the document and no member supplied one ({}); retry",
            errors.join("; ")
        ),
    ))
}

async fn fetch_from(
    rep: &Replication,
    target: u64,
    addr: &str,
    hash: ContentHash,
    size: u64,
) -> Result<(), String> {
    let (mut send, mut recv) = rep.cluster.network().open_stream(target, addr).await?;
    // A member that died keeps its cached connection until the idle
    // timeout: give up on its answer sooner and ask the next one.
    let header = exchange_on::<_, Response>(
        &mut send,
        &mut recv,
        &Request::FetchBlob { content_hash: hash },
        FrameLimits::CLIENT,
        Some(Duration::from_millis(FETCH_ANSWER_TIMEOUT_MS)),
    )
    .await;
    match header.map_err(|e| e.to_string())? {
        Response::BlobFollows { size: sent } if sent == size => {}
        Response::BlobFollows { size: sent } => {
            return Err(format!("announced {sent} bytes, expected {size}"))
        }
        Response::Error(body) => return Err(format!("{}: {}", body.code, body.message)),
        other => return Err(format!("answered {other:?}")),
    }
    let deadline = transfer_deadline(size);
    tokio::time::timeout(
        deadline,
        crate::replication::stream::receive_blob(&rep.vault, hash, size, &mut recv),
    )
    .await
    .map_err(|_| format!("the fetch did not finish within {} s", deadline.as_secs()))?
    .map(|_| ())
    .map_err(|e| format!("{}: {}", e.code, e.message))
}

/// Answers a [`Request::PushBlob`] from another node: stores the body,
/// verified against `hash`.
pub(crate) async fn serve_push(
    rep: &Replication,
    caller: &PeerCert,
    hash: ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
) -> Result<Response, Refusal> {
    node_only(rep, caller)?;
    if size > vault_client::wire::DOCUMENT_SIZE_MAX {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!(
                "a pushed blob of {size} bytes is larger than a document may be ({} bytes)",
                vault_client::wire::DOCUMENT_SIZE_MAX
            ),
        ));
    }
    crate::replication::stream::receive_blob(&rep.vault, hash, size, recv).await?;
    Ok(Response::BlobStored { content_hash: hash })
}

/// Answers a [`Request::FetchBlob`] from another node: the plaintext.
pub(crate) async fn serve_fetch(
    rep: &Replication,
    caller: &PeerCert,
    hash: ContentHash,
    send: &mut quinn::SendStream,
) -> Result<(), Refusal> {
    node_only(rep, caller)?;
    let reader = rep.vault.blobs().reader(&hash)?;
    let response = Response::BlobFollows {
        size: reader.size(),
    };
    write_frame(send, &response)
        .await
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
    if let Err(e) = crate::replication::stream::send_plain(reader, send).await {
        tracing::warn!(error = %e, "stopped sending a blob to a member");
        let _ = send.reset(vault_client::wire::RESET_INTERNAL.into());
    }
    Ok(())
}

fn node_only(rep: &Replication, caller: &PeerCert) -> Result<(), Refusal> {
    require_role(caller, Role::Node, "exchange blobs")?;
    // (Nodes of another cluster were refused before the request was read.)
    // Only members: any other node certificate (another cluster's, a
    // removed node's) could otherwise read any blob's plaintext without a
    // grant or fill the disk.
    if !crate::consensus::raft::network::is_member(rep.cluster.raft(), caller) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("{} is not a member of this cluster", caller.name),
        ));
    }
    Ok(())
}
