//! Copies of blobs across a cluster: pushing a new blob to its placement and
//! fetching one from a member ([`replica`]); scrubbing local copies, read
//! repair and orphan collection ([`repair`]).
//!
//! **Invariant:** a copy is kept only once verified against the content
//! hash, and a copy is never served unless it authenticates.

pub mod repair;
pub mod replica;
pub mod stream;

use std::sync::{Arc, Mutex};

use vault_client::wire::RepairStatus;

use crate::consensus::Cluster;
use crate::rules::clock::Clock;
use crate::storage::vault::Vault;
use crate::Refusal;

/// What replication works with: this node's storage, the cluster it copies
/// blobs within, the clock, and the repair totals `status` reports.
pub struct Replication {
    /// This node's storage (its blob store).
    pub vault: Arc<Vault>,
    /// The cluster: placement, members and the connections to them.
    pub cluster: Arc<Cluster>,
    /// The clock scrubs are timed by.
    pub clock: Arc<dyn Clock>,
    /// Repair totals since start.
    pub totals: Mutex<RepairStatus>,
}

impl Replication {
    /// Replication within `cluster` for the node storing into `vault`.
    pub fn new(vault: Arc<Vault>, cluster: Arc<Cluster>, clock: Arc<dyn Clock>) -> Self {
        Replication {
            vault,
            cluster,
            clock,
            totals: Mutex::default(),
        }
    }

    /// Pushes the blob `hash` (held and verified here) to its replicas;
    /// returns once W of them hold it (see [`replica`]).
    pub async fn replicate(self: &Arc<Self>, hash: pki::ContentHash) -> Result<(), Refusal> {
        replica::replicate(self, hash).await
    }

    /// Makes sure the local copy of `hash` is authentic in `groups` (all
    /// when `None`), fetching a verified copy from a member otherwise;
    /// returns whether it fetched one.
    pub async fn ensure_authentic(
        &self,
        hash: pki::ContentHash,
        size: u64,
        groups: Option<std::ops::Range<u64>>,
    ) -> Result<bool, Refusal> {
        repair::ensure_authentic(self, hash, size, groups).await
    }

    /// Runs one scrub now (see [`repair::scrub_once`]).
    pub async fn scrub_once(&self) -> repair::ScrubCounts {
        repair::scrub_once(self).await
    }

    /// Updates the repair totals.
    pub fn note(&self, update: impl FnOnce(&mut RepairStatus)) {
        repair::note(self, update)
    }

    /// A copy of the repair totals since start.
    pub fn totals(&self) -> RepairStatus {
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
