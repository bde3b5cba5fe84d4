//! How a command becomes durable: the single-node [`ledger`] (group commit
//! on one RocksDB) or the openraft [`raft`] cluster, behind one interface,
//! [`Consensus`]: submit a command, wait for a linearizable read point, and
//! read the state it produced.
//!
//! **Invariant:** a command is acknowledged only once it is durable (one
//! synced batch on a single node; committed by a quorum in a cluster), and
//! every node applies the same commands in the same order through
//! [`crate::engine::apply::apply`].

pub mod ledger;
pub mod raft;
pub mod seed;

use std::sync::Arc;

use vault_client::ErrorCode;

use crate::engine::meta::MetaStore;
use crate::engine::state::{Applied, Command, Proposal};
use crate::rules::clock::Clock;
use crate::Refusal;

pub use ledger::Ledger;
pub use raft::Cluster;
pub use seed::fresh_seed;

/// How this node makes commands durable: alone, or as a member of a cluster.
pub enum Consensus {
    /// The single-node ledger: group commits on the node's own RocksDB.
    Single(Arc<Ledger<Arc<dyn MetaStore>>>),
    /// An openraft cluster: writes are committed by a quorum, forwarded to
    /// the leader by a follower.
    Cluster(Arc<Cluster>),
}

impl Consensus {
    /// Applies `command`, timed by `clock`: through the single-node ledger
    /// (on a blocking thread: a synced write), or through Raft.
    pub async fn submit(&self, command: Command, clock: &dyn Clock) -> Result<Applied, Refusal> {
        let cluster = match self {
            Consensus::Single(ledger) => {
                let ledger = ledger.clone();
                return tokio::task::spawn_blocking(move || ledger.submit(&command))
                    .await
                    .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?
                    .map_err(Refusal::from);
            }
            Consensus::Cluster(cluster) => cluster,
        };
        let proposal = Proposal {
            command,
            seed: fresh_seed(clock.now_unix()),
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

    /// In a cluster, waits for a linearizable read point (see
    /// [`Cluster::linearize`]); a single node's reads are always current.
    pub async fn linearize(&self) -> Result<(), Refusal> {
        match self {
            Consensus::Cluster(cluster) => cluster.linearize().await,
            Consensus::Single(_) => Ok(()),
        }
    }

    /// The store holding the state the applied commands produced.
    pub fn view(&self) -> Arc<dyn MetaStore> {
        match self {
            Consensus::Single(ledger) => ledger.store().clone(),
            Consensus::Cluster(cluster) => cluster.store().clone(),
        }
    }

    /// The single-node ledger, when this node runs alone (its blocking
    /// [`Ledger::submit`] suits callers already on a blocking thread).
    pub fn ledger(&self) -> Option<&Arc<Ledger<Arc<dyn MetaStore>>>> {
        match self {
            Consensus::Single(ledger) => Some(ledger),
            Consensus::Cluster(_) => None,
        }
    }

    /// The cluster, when this node is a member of one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        match self {
            Consensus::Cluster(cluster) => Some(cluster),
            Consensus::Single(_) => None,
        }
    }
}
