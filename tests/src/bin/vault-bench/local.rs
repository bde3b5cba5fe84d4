//! Direct access to an in-process single node's storage and ledger, for the
//! suites that fill it quickly (log appends, growth) without the network.

use std::sync::Arc;

use vault_node::consensus::Ledger;
use vault_node::engine::meta::MetaStore;
use vault_node::engine::state::{Applied, Command};
use vault_node::node::RunningNode;
use vault_node::storage::vault::Vault;

/// A single node's storage (for reads) and ledger (for blocking submits, as
/// the node itself makes them on a blocking thread).
pub struct LocalNode {
    vault: Arc<Vault>,
    ledger: Arc<Ledger<Arc<dyn MetaStore>>>,
}

impl LocalNode {
    /// The storage and ledger of `node`, which must run alone.
    pub fn of(node: &RunningNode) -> anyhow::Result<Arc<Self>> {
        let ledger =
            node.consensus().ledger().cloned().ok_or_else(|| {
                anyhow::anyhow!("the benchmark's node runs a cluster, not a ledger")
            })?;
        Ok(Arc::new(LocalNode {
            vault: node.vault().clone(),
            ledger,
        }))
    }

    /// Appends and applies `command`, returning once it is durable (blocks).
    pub fn submit(&self, command: &Command) -> anyhow::Result<Applied> {
        self.ledger
            .submit(command)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The node's metadata (reads).
    pub fn store(&self) -> &dyn MetaStore {
        self.vault.store()
    }
}
