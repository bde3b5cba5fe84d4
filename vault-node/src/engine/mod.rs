//! The deterministic core: commands and their records ([`state`]), [`apply`],
//! the log entries each command produces ([`entries`]), the transparency
//! log's tree arithmetic over the store ([`log`]), grant state
//! ([`grant_state`]) and the narrow storage interface they read and write
//! through ([`meta`]).
//!
//! **Invariant:** nothing here does I/O, reads a clock or draws randomness:
//! time and randomness arrive in a command's [`state::Seed`], state through
//! [`meta::MetaStore`] reads, and every change leaves as a list of
//! [`meta::Write`]s. No tokio, no quinn, no RocksDB.

pub mod apply;
pub mod entries;
pub mod grant_state;
pub mod log;
pub mod meta;
pub mod orders;
pub mod state;
