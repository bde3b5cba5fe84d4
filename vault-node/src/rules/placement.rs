//! Where a blob lives in a cluster: rendezvous (highest-random-weight)
//! hashing over the voters of the Raft-held membership.
//!
//! Every node computes the same placement from the same membership, with
//! no table to keep: node `n` scores blob `h` with the first 8 bytes of
//! `BLAKE3("vault/placement/v1" || h || n)`, and the blob lives on the
//! [`ClusterPolicy::replicas`] highest scores. Adding or removing a node
//! moves only the blobs whose top `R` it enters or leaves (about `R/N` of
//! them), which the reconciler in [`crate::replication::repair`] then fetches.
//!
//! Also the cluster's policy ([`ClusterPolicy`]) and timing rules: how long
//! a blob transfer between nodes may take ([`transfer_deadline`]) and how
//! long a write or a read point looks for a leader ([`CLUSTER_DEADLINE_MS`]).

use std::time::Duration;

use pki::ContentHash;

/// How a cluster places, replicates and tends its blobs, and when it
/// snapshots its Raft log. Every member should run with the same policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPolicy {
    /// R: how many nodes hold each blob (every voter in a smaller cluster).
    pub replicas: usize,
    /// W: how many of them must hold it before its document is
    /// registered (at most R; every voter in a smaller cluster).
    pub write_quorum: usize,
    /// Seconds between two scrubs (re-hash every copy, fetch what is
    /// missing, collect orphans).
    pub scrub_interval_s: u64,
    /// Seconds an unreferenced blob file is kept before it is collected
    /// (an upload whose registration failed, or is still in flight).
    pub orphan_grace_s: u64,
    /// A snapshot is taken after this many applied log entries; the log is
    /// purged behind it (keeping as many entries again for slow followers).
    pub snapshot_logs: u64,
}

impl Default for ClusterPolicy {
    fn default() -> Self {
        ClusterPolicy {
            replicas: DEFAULT_REPLICAS,
            write_quorum: DEFAULT_WRITE_QUORUM,
            scrub_interval_s: DEFAULT_SCRUB_INTERVAL_S,
            orphan_grace_s: DEFAULT_ORPHAN_GRACE_S,
            snapshot_logs: DEFAULT_SNAPSHOT_LOGS,
        }
    }
}

impl ClusterPolicy {
    /// Checks the policy's numbers make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.replicas == 0 {
            return Err("replicas must be at least 1".into());
        }
        if self.write_quorum == 0 || self.write_quorum > self.replicas {
            return Err(format!(
                "write_quorum must be between 1 and replicas ({}), not {}",
                self.replicas, self.write_quorum
            ));
        }
        if self.scrub_interval_s == 0 {
            return Err("scrub_interval_s must be at least 1".into());
        }
        if self.orphan_grace_s < ORPHAN_GRACE_S_MIN {
            return Err(format!(
                "orphan_grace_s must be at least {ORPHAN_GRACE_S_MIN} (a pushed copy waits that \
                 long for its registration), not {}",
                self.orphan_grace_s
            ));
        }
        if self.snapshot_logs < 2 {
            return Err("snapshot_logs must be at least 2".into());
        }
        Ok(())
    }
}

/// Time any blob transfer between nodes may take, in seconds, on top of
/// [`TRANSFER_RATE_MIN_BYTES_S`].
pub const TRANSFER_BASE_S: u64 = 30;
/// The slowest transfer rate between nodes that is not given up on, in
/// bytes per second (a 4 GiB document gets 30 s + 68 min).
pub const TRANSFER_RATE_MIN_BYTES_S: u64 = 1024 * 1024;

/// How long pushing or fetching a blob of `size` bytes may take.
pub fn transfer_deadline(size: u64) -> Duration {
    Duration::from_secs(TRANSFER_BASE_S.saturating_add(size / TRANSFER_RATE_MIN_BYTES_S))
}

/// How long `Cluster::propose` and `Cluster::linearize` look for a
/// leader before answering `cluster.unavailable`, in
/// milliseconds.
pub const CLUSTER_DEADLINE_MS: u64 = 10_000;
/// Smallest `orphan_grace_s` accepted, in seconds: longer than the slowest
/// upload can wait for its registration (pushing the largest document at
/// the slowest rate not given up on, then the cluster deadline), so a copy
/// stored for a document still being registered is never collected.
pub const ORPHAN_GRACE_S_MIN: u64 = TRANSFER_BASE_S
    + vault_client::wire::DOCUMENT_SIZE_MAX / TRANSFER_RATE_MIN_BYTES_S
    + CLUSTER_DEADLINE_MS / 1000;
/// Default R.
pub const DEFAULT_REPLICAS: usize = 3;
/// Default W.
pub const DEFAULT_WRITE_QUORUM: usize = 2;
/// Default seconds between scrubs.
pub const DEFAULT_SCRUB_INTERVAL_S: u64 = 60;
/// Default grace before an orphan blob is collected: three hours, longer
/// than [`ORPHAN_GRACE_S_MIN`] (the slowest upload's registration).
pub const DEFAULT_ORPHAN_GRACE_S: u64 = 3 * 3_600;
/// Default entries between snapshots.
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 5_000;

/// The rendezvous score of `node` for `hash`.
pub fn score(hash: &ContentHash, node: u64) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"vault/placement/v1");
    hasher.update(hash.as_bytes());
    hasher.update(&node.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// Every node of `nodes`, best first for `hash`; the first `R` are its
/// replicas. Ties (never seen in practice) break by node id.
pub fn ranked(hash: &ContentHash, nodes: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut scored: Vec<(u64, u64)> = nodes.into_iter().map(|n| (score(hash, n), n)).collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.dedup_by_key(|(_, n)| *n);
    scored.into_iter().map(|(_, n)| n).collect()
}

/// The `replicas` nodes of `nodes` that hold `hash`.
pub fn replicas(
    hash: &ContentHash,
    nodes: impl IntoIterator<Item = u64>,
    replicas: usize,
) -> Vec<u64> {
    let mut ranked = ranked(hash, nodes);
    ranked.truncate(replicas);
    ranked
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash(n: u64) -> ContentHash {
        ContentHash(*blake3::hash(&n.to_be_bytes()).as_bytes())
    }

    #[test]
    fn placement_is_spread_evenly() {
        let nodes = [1u64, 2, 3, 4, 5];
        let mut held = [0usize; 5];
        for n in 0..10_000 {
            for node in replicas(&hash(n), nodes, 3) {
                held[(node - 1) as usize] += 1;
            }
        }
        // 30 000 copies over 5 nodes: 6 000 each, within 5 %.
        for count in held {
            assert!((5_700..=6_300).contains(&count), "{held:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_only_what_it_takes() {
        let before = [1u64, 2, 3, 4];
        let after = [1u64, 2, 3, 4, 5];
        let mut moved = 0;
        for n in 0..10_000 {
            let old = replicas(&hash(n), before, 3);
            let new = replicas(&hash(n), after, 3);
            let lost: Vec<_> = old.iter().filter(|x| !new.contains(x)).collect();
            // At most one copy moves, and only to the new node.
            assert!(lost.len() <= 1);
            if lost.len() == 1 {
                assert!(new.contains(&5));
                moved += 1;
            }
        }
        // The new node takes its share, R/N = 3/5 of the blobs.
        assert!((5_700..=6_300).contains(&moved), "{moved}");
    }

    #[test]
    fn the_policy_is_checked() {
        assert!(ClusterPolicy::default().validate().is_ok());
        let bad = ClusterPolicy {
            write_quorum: 4,
            ..ClusterPolicy::default()
        };
        assert!(bad.validate().is_err());
        let bad = ClusterPolicy {
            replicas: 0,
            ..ClusterPolicy::default()
        };
        assert!(bad.validate().is_err());
    }

    proptest! {
        #[test]
        fn every_node_computes_the_same_placement(
            seed in any::<u64>(),
            mut nodes in proptest::collection::vec(1u64..100, 1..9),
        ) {
            let h = hash(seed);
            let a = replicas(&h, nodes.clone(), 3);
            nodes.reverse();
            let b = replicas(&h, nodes.clone(), 3);
            prop_assert_eq!(&a, &b);
            nodes.sort_unstable();
            nodes.dedup();
            prop_assert_eq!(a.len(), nodes.len().min(3));
        }
    }
}
