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

    /// A copy of the repair totals since start.
    pub fn totals(&self) -> RepairStatus {
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
