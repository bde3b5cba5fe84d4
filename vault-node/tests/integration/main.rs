//! vault-node's integration tests, one binary: the Raft cluster over real
//! QUIC ([`raft_cluster`]) and the seeded simulation of the cluster logic
//! ([`sim`]; `VAULT_SIM_SEED=<seed> cargo test -p vault-node --test
//! integration sim::` replays one seed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod raft_cluster;
mod sim;
