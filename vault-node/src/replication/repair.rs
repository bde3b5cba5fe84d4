//! Repair in cluster mode. One scrub does three things:
//!
//! - **reconcile:** for every blob the state machine knows, compares what
//!   this node should hold (its [placement](crate::rules::placement) over the
//!   Raft-held voters) with what it has;
//! - **re-hash:** reads back every copy it should hold or holds,
//!   authenticating the outboard and every group (AES-GCM, which covers
//!   the BLAKE3 tree); a copy that is missing or fails is replaced by a
//!   verified one fetched from a replica ([`crate::replication::replica`]'s fetch path,
//!   written in place atomically by a [`BlobWriter`](crate::storage::blobs::BlobWriter));
//! - **collect orphans:** deletes blob files no document refers to once
//!   they are older than [`ClusterPolicy::orphan_grace_s`](crate::rules::placement::ClusterPolicy)
//!   (an upload whose registration failed; an upload in flight is far
//!   younger than the grace).
//!
//! A scrub runs [`SCRUB_FIRST_DELAY_S`] after start and then every
//! `scrub_interval_s` of the policy; tests trigger one with
//! [`RunningNode::scrub_once`](crate::node::RunningNode::scrub_once).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use pki::ContentHash;
use vault_client::tree::{self, GROUP_SIZE};
use vault_client::wire::RepairStatus;
use vault_client::ErrorCode;

use crate::engine::meta::{Cf, MetaStore};
use crate::engine::state::BlobEntry;
use crate::replication::Replication;
use crate::storage::blobs::{BlobError, BlobStore, TAG_LEN};
use crate::storage::store::RocksStore;
use crate::Refusal;

impl Replication {
    /// Makes sure the local copy of `hash` is authentic in `groups` (all
    /// when `None`), fetching a verified copy from a member otherwise;
    /// returns whether it fetched one.
    pub async fn ensure_authentic(
        &self,
        hash: pki::ContentHash,
        size: u64,
        groups: Option<std::ops::Range<u64>>,
    ) -> Result<bool, Refusal> {
        ensure_authentic(self, hash, size, groups).await
    }

    /// Runs one scrub now (see [`scrub_once`]).
    pub async fn scrub_once(&self) -> ScrubCounts {
        scrub_once(self).await
    }

    /// Updates the repair totals.
    pub fn note(&self, update: impl FnOnce(&mut RepairStatus)) {
        note(self, update)
    }
}

/// Seconds after start before the first scrub.
pub const SCRUB_FIRST_DELAY_S: u64 = 5;
/// Blob entries read from the state machine per scan.
const SCAN_BATCH: usize = 1_000;

/// What one scrub did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubCounts {
    /// Blobs whose local copy was read back.
    pub checked: u64,
    /// Blobs missing or corrupt here, replaced by a verified copy.
    pub repaired: u64,
    /// Blobs missing or corrupt here that no member could supply.
    pub failed: u64,
    /// Blobs neither placed on this node nor held here (left alone).
    pub elsewhere: u64,
    /// Unreferenced blob files older than the grace, deleted.
    pub orphans_collected: u64,
    /// Bytes fetched to repair copies.
    pub repaired_bytes: u64,
}

/// Reads back the outboard and the groups `groups` of the local copy of
/// `hash`, authenticating each. `Ok(false)` when the copy is missing or
/// fails authentication; other errors (I/O) are returned.
pub fn verify_local(
    blobs: &BlobStore,
    hash: &ContentHash,
    groups: Option<Range<u64>>,
) -> Result<bool, BlobError> {
    let reader = match blobs.reader(hash) {
        Ok(reader) => reader,
        Err(BlobError::Missing(_)) | Err(BlobError::Integrity { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    match reader.outboard() {
        Ok(_) => {}
        Err(BlobError::Integrity { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    let size = reader.size();
    let count = tree::group_count(size);
    let groups = groups.unwrap_or(0..count);
    let mut buf = vec![0u8; size.min(GROUP_SIZE) as usize + TAG_LEN];
    for index in groups.start..groups.end.min(count) {
        match reader.read_group(index, &mut buf) {
            Ok(_) => {}
            Err(BlobError::Integrity { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The groups holding bytes `start..end` of a blob of `size` bytes.
pub fn groups_for(size: u64, start: u64, end: u64) -> Range<u64> {
    let count = tree::group_count(size);
    let first = (start / GROUP_SIZE).min(count);
    let last = end.div_ceil(GROUP_SIZE).max(first + 1).min(count);
    first..last
}

/// Verifies the local copy of `hash` on a blocking thread.
async fn verify_blocking(
    rep: &Replication,
    hash: ContentHash,
    groups: Option<Range<u64>>,
) -> Result<bool, Refusal> {
    let vault = rep.vault.clone();
    tokio::task::spawn_blocking(move || verify_local(vault.blobs(), &hash, groups))
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
        .map_err(Refusal::from)
}

/// Makes sure the local copy of `hash` (`size` bytes) is present and the
/// groups `groups` (all when `None`) and the outboard authenticate,
/// fetching a verified copy from a member otherwise. Returns whether it
/// fetched one.
pub(crate) async fn ensure_authentic(
    rep: &Replication,
    hash: ContentHash,
    size: u64,
    groups: Option<Range<u64>>,
) -> Result<bool, Refusal> {
    if verify_blocking(rep, hash, groups).await? {
        return Ok(false);
    }
    tracing::warn!("the local copy is missing or corrupt; fetching one from a member");
    crate::replication::replica::fetch_any(rep, hash, size).await?;
    Ok(true)
}

/// Walks every blob the state machine knows, reads each local copy back
/// fully and replaces those missing or corrupt with a verified copy from
/// a member. Does nothing outside cluster mode.
pub(crate) async fn scrub_once(rep: &Replication) -> ScrubCounts {
    let mut counts = ScrubCounts::default();
    if !scrub_blobs(rep, &mut counts).await {
        return counts;
    }
    match collect_orphans_caught_up(rep).await {
        Ok(n) => counts.orphans_collected = n,
        Err(e) => tracing::error!(error = %e, "scrub: cannot collect orphan blobs"),
    }
    note_scrub(rep, &counts);
    counts
}

/// Scrubs every blob entry, [`SCAN_BATCH`] at a time; `false` when the
/// entries could not be read (the scrub stops there).
async fn scrub_blobs(rep: &Replication, counts: &mut ScrubCounts) -> bool {
    let store = rep.cluster.store().clone();
    let mut start: Vec<u8> = Vec::new();
    loop {
        let Some(entries) = scan_blobs(&store, start.clone()).await else {
            return false;
        };
        let done = entries.len() < SCAN_BATCH;
        for (key, value) in &entries {
            scrub_blob(rep, key, value, counts).await;
        }
        match entries.last() {
            Some((key, _)) if !done => {
                start = key.clone();
                start.push(0);
            }
            _ => return true,
        }
    }
}

/// Up to [`SCAN_BATCH`] blob entries from key `from` on, read on a
/// blocking thread; `None` (logged) when they cannot be read.
async fn scan_blobs(store: &Arc<RocksStore>, from: Vec<u8>) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let store = store.clone();
    let scanned =
        tokio::task::spawn_blocking(move || store.scan_from(Cf::Blobs, &from, SCAN_BATCH)).await;
    match scanned {
        Ok(Ok(entries)) => Some(entries),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "scrub: cannot read the blob entries");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "scrub: cannot read the blob entries");
            None
        }
    }
}

/// Scrubs one blob entry: left alone when placed elsewhere and not held
/// here, else read back and repaired if need be.
async fn scrub_blob(rep: &Replication, key: &[u8], value: &[u8], counts: &mut ScrubCounts) {
    let cluster = &rep.cluster;
    let (Ok(bytes), Ok(entry)) = (
        <[u8; 32]>::try_from(key),
        serde_json::from_slice::<BlobEntry>(value),
    ) else {
        tracing::error!("scrub: a blob entry does not decode");
        counts.failed += 1;
        return;
    };
    let hash = ContentHash(bytes);
    if !cluster.placement(&hash).contains(&cluster.id()) && !rep.vault.blobs().contains(&hash) {
        counts.elsewhere += 1;
        return;
    }
    counts.checked += 1;
    match ensure_authentic(rep, hash, entry.size, None).await {
        Ok(false) => {}
        Ok(true) => {
            counts.repaired += 1;
            counts.repaired_bytes += entry.size;
        }
        Err(e) => {
            tracing::error!(code = %e.code, error = %e.message, "scrub: cannot repair a blob");
            counts.failed += 1;
        }
    }
}

/// Collects orphans once caught up with the cluster: orphans are judged
/// against the cluster's latest state, not this node's, as a node that
/// was down for longer than the grace holds copies whose registration it
/// has not applied yet.
async fn collect_orphans_caught_up(rep: &Replication) -> Result<u64, String> {
    let cluster = &rep.cluster;
    match cluster.linearize().await {
        Ok(()) => {
            let grace = Duration::from_secs(cluster.policy().orphan_grace_s);
            let vault = rep.vault.clone();
            let store = cluster.store().clone();
            tokio::task::spawn_blocking(move || collect_orphans(&vault, &*store, grace))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        }
        Err(e) => Err(format!("not caught up with the cluster ({})", e.message)),
    }
}

/// Deletes every blob file here that no blob entry of `state` refers to
/// and that is older than `grace`; answers how many.
pub fn collect_orphans(
    vault: &crate::storage::vault::Vault,
    state: &dyn MetaStore,
    grace: Duration,
) -> Result<u64, Refusal> {
    let now = std::time::SystemTime::now();
    let mut collected = 0u64;
    vault
        .blobs()
        .for_each_stored(|hash, modified| {
            let age = now.duration_since(modified).unwrap_or_default();
            if age < grace {
                return Ok(());
            }
            let known = crate::engine::state::blob(state, &hash)
                .map_err(|e| BlobError::Io(e.to_string()))?
                .is_some();
            if !known && vault.blobs().remove_if_unchanged(&hash, modified)? {
                tracing::info!(age_s = age.as_secs(), "collected an orphan blob");
                collected += 1;
            }
            Ok(())
        })
        .map_err(Refusal::from)?;
    Ok(collected)
}

/// Updates the node's repair totals (reported by `status`).
pub(crate) fn note(rep: &Replication, update: impl FnOnce(&mut RepairStatus)) {
    update(&mut rep.totals.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Adds one scrub's counts to the node's repair totals.
fn note_scrub(rep: &Replication, counts: &ScrubCounts) {
    note(rep, |totals| {
        totals.scrubs += 1;
        totals.last_scrub_at = Some(rep.clock.now_unix());
        totals.checked += counts.checked;
        totals.repaired += counts.repaired;
        totals.failed += counts.failed;
        totals.orphans_collected += counts.orphans_collected;
    });
}

/// Runs [`scrub_once`] on a schedule, logging the counts.
pub(crate) async fn scrub_loop(rep: Arc<Replication>) {
    tokio::time::sleep(Duration::from_secs(SCRUB_FIRST_DELAY_S)).await;
    loop {
        let counts = scrub_once(&rep).await;
        tracing::info!(
            checked = counts.checked,
            repaired = counts.repaired,
            failed = counts.failed,
            elsewhere = counts.elsewhere,
            orphans_collected = counts.orphans_collected,
            "scrubbed the local blobs"
        );
        let interval = rep.cluster.policy().scrub_interval_s;
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}
