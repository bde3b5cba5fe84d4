//! Blob replication in cluster mode, node to node over QUIC.
//!
//! After a node has received and verified an upload, it pushes the
//! plaintext to the blob's replicas: R of the voters, chosen by
//! [rendezvous hashing](crate::placement) ([`Request::PushBlob`], then the
//! body); each receiver verifies it against the content hash with the same
//! [`BlobWriter`](crate::blobs::BlobWriter) as an upload and stores it
//! under its own master key. The document is registered only once W
//! replicas hold it (the uploader counting when it is one); pushes to the
//! remaining replicas finish in the background, and the reconciler in
//! [`crate::repair`] fetches any that failed.
//!
//! A node asked for a document it holds no authentic copy of (missing, or
//! failing authentication) fetches the blob from a member
//! ([`Request::FetchBlob`]), verified the same way, before serving it; see
//! [`crate::repair`] for the scheduled scrub.
//!
//! **Memory:** blobs are streamed in batches of about
//! [`SEND_BATCH_BYTES`] with a bounded queue, never buffered whole.

use std::sync::Arc;
use std::time::Duration;

use pki::{ContentHash, PeerCert, Role};
use tokio::sync::mpsc;
use vault_client::framing::{read_frame, write_frame};
use vault_client::tree::{self, GROUP_SIZE};
use vault_client::wire::{Request, Response, RESPONSE_FRAME_LEN_MAX};
use vault_client::ErrorCode;

use crate::blobs::{BlobReader, TAG_LEN};
use crate::raft::Cluster;
use crate::server::Ctx;
use crate::Refusal;

/// Plaintext bytes per network write when sending a blob to a node.
pub const SEND_BATCH_BYTES: usize = 256 * 1024;
/// How long a member may take to start answering a fetch, in milliseconds.
pub const FETCH_ANSWER_TIMEOUT_MS: u64 = 5_000;
/// Time any blob transfer between nodes may take, in seconds, on top of
/// [`TRANSFER_RATE_MIN_BYTES_S`].
pub const TRANSFER_BASE_S: u64 = 30;
/// The slowest transfer rate between nodes that is not given up on, in
/// bytes per second (a 4 GiB document gets 30 s + 68 min).
pub const TRANSFER_RATE_MIN_BYTES_S: u64 = 1024 * 1024;

/// How long pushing or fetching a blob of `size` bytes may take.
pub fn transfer_deadline(size: u64) -> Duration {
    Duration::from_secs(TRANSFER_BASE_S + size / TRANSFER_RATE_MIN_BYTES_S)
}

/// Batches queued between the blob reader and the network.
const SEND_QUEUE_DEPTH: usize = 4;

/// Pushes the blob `hash` (held and verified here) to its replicas (R of
/// the voters, by [rendezvous placement](crate::placement)); returns once
/// W of them hold it (this node counting when it is one), the others
/// continuing in the background.
pub(crate) async fn replicate(
    ctx: &Arc<Ctx>,
    cluster: &Arc<Cluster>,
    hash: ContentHash,
) -> Result<(), Refusal> {
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
        let ctx = ctx.clone();
        let cluster = cluster.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = push_to(&ctx, &cluster, target, &addr, hash).await;
            if let Err(e) = &result {
                tracing::warn!(node = target, blob = %hash, error = %e, "cannot push a blob");
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
    ctx: &Arc<Ctx>,
    cluster: &Cluster,
    target: u64,
    addr: &str,
    hash: ContentHash,
) -> Result<(), String> {
    let reader = ctx.vault.blobs().reader(&hash).map_err(|e| e.to_string())?;
    let size = reader.size();
    let exchange = async {
        let (mut send, mut recv) = cluster.network().open_stream(target, addr).await?;
        let request = Request::PushBlob {
            content_hash: hash,
            size,
        };
        write_frame(&mut send, &request)
            .await
            .map_err(|e| e.to_string())?;
        send_plain(reader, &mut send).await?;
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
    ctx: &Arc<Ctx>,
    cluster: &Cluster,
    hash: ContentHash,
    size: u64,
) -> Result<(), Refusal> {
    let mut errors = Vec::new();
    let members: Vec<u64> = cluster.peers().into_iter().map(|(id, _)| id).collect();
    let ranked = crate::placement::ranked(&hash, members);
    for target in ranked {
        let Some(addr) = cluster.addr_of(target) else {
            continue;
        };
        match fetch_from(ctx, cluster, target, &addr, hash, size).await {
            Ok(()) => {
                tracing::info!(node = target, blob = %hash, "fetched a blob from a member");
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
    ctx: &Arc<Ctx>,
    cluster: &Cluster,
    target: u64,
    addr: &str,
    hash: ContentHash,
    size: u64,
) -> Result<(), String> {
    let (mut send, mut recv) = cluster.network().open_stream(target, addr).await?;
    write_frame(&mut send, &Request::FetchBlob { content_hash: hash })
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    // A member that died keeps its cached connection until the idle
    // timeout: give up on its answer sooner and ask the next one.
    let header = tokio::time::timeout(
        Duration::from_millis(FETCH_ANSWER_TIMEOUT_MS),
        read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX),
    )
    .await
    .map_err(|_| format!("no answer within {FETCH_ANSWER_TIMEOUT_MS} ms"))?;
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
        crate::server::receive_blob(&ctx.vault, hash, size, &mut recv),
    )
    .await
    .map_err(|_| format!("the fetch did not finish within {} s", deadline.as_secs()))?
    .map(|_| ())
    .map_err(|e| format!("{}: {}", e.code, e.message))
}

/// Answers a [`Request::PushBlob`] from another node: stores the body,
/// verified against `hash`.
pub(crate) async fn serve_push(
    ctx: &Arc<Ctx>,
    caller: &PeerCert,
    hash: ContentHash,
    size: u64,
    recv: &mut quinn::RecvStream,
) -> Result<Response, Refusal> {
    node_only(ctx, caller)?;
    if size > vault_client::wire::DOCUMENT_SIZE_MAX {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!(
                "a pushed blob of {size} bytes is larger than a document may be ({} bytes)",
                vault_client::wire::DOCUMENT_SIZE_MAX
            ),
        ));
    }
    crate::server::receive_blob(&ctx.vault, hash, size, recv).await?;
    Ok(Response::BlobStored { content_hash: hash })
}

/// Answers a [`Request::FetchBlob`] from another node: the plaintext.
pub(crate) async fn serve_fetch(
    ctx: &Arc<Ctx>,
    caller: &PeerCert,
    hash: ContentHash,
    send: &mut quinn::SendStream,
) -> Result<(), Refusal> {
    node_only(ctx, caller)?;
    let reader = ctx.vault.blobs().reader(&hash)?;
    let response = Response::BlobFollows {
        size: reader.size(),
    };
    write_frame(send, &response)
        .await
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
    if let Err(e) = send_plain(reader, send).await {
        tracing::warn!(blob = %hash, error = %e, "stopped sending a blob to a member");
        let _ = send.reset(vault_client::wire::RESET_INTERNAL.into());
    }
    Ok(())
}

fn node_only(ctx: &Ctx, caller: &PeerCert) -> Result<(), Refusal> {
    if caller.role != Role::Node {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "only nodes exchange blobs; {} holds a {} certificate",
                caller.name,
                caller.role.as_str()
            ),
        ));
    }
    let Some(cluster) = &ctx.cluster else {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "this node runs no cluster",
        ));
    };
    // (Nodes of another cluster were refused before the request was read.)
    // Only members: any other node certificate (another cluster's, a
    // removed node's) could otherwise read any blob's plaintext without a
    // grant or fill the disk.
    if !crate::raft::network::is_member(cluster.raft(), caller) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("{} is not a member of this cluster", caller.name),
        ));
    }
    Ok(())
}

/// Streams the blob's authenticated plaintext to `send`, read on a
/// blocking thread in batches.
async fn send_plain(reader: BlobReader, send: &mut quinn::SendStream) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, String>>(SEND_QUEUE_DEPTH);
    tokio::task::spawn_blocking(move || {
        let size = reader.size();
        let mut buf = vec![0u8; size.min(GROUP_SIZE) as usize + TAG_LEN];
        let mut batch = Vec::with_capacity(SEND_BATCH_BYTES + GROUP_SIZE as usize);
        for index in 0..tree::group_count(size) {
            match reader.read_group(index, &mut buf) {
                Ok(plain) => batch.extend_from_slice(plain),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            }
            if batch.len() >= SEND_BATCH_BYTES {
                let full = std::mem::take(&mut batch);
                if tx.blocking_send(Ok(full)).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Ok(batch));
        }
    });
    while let Some(batch) = rx.recv().await {
        send.write_all(&batch?).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
