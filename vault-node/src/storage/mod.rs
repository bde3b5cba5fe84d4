//! Where bytes live on one node: the metadata stores behind
//! [`crate::engine::meta::MetaStore`] ([`store`]: RocksDB, in memory,
//! fault-injecting; [`overlay`]: uncommitted writes over a store), the
//! encrypted content-addressed blob store ([`blobs`]) and the data directory
//! with its read view ([`vault`]).
//!
//! **Invariant:** storage decides nothing: it persists what the engine
//! returned and reads back what was persisted, checking it (AES-GCM on
//! blobs, the data format version on open).

pub mod blobs;
pub mod overlay;
pub mod store;
pub mod vault;
