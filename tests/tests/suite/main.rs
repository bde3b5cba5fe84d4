//! The workspace's end-to-end tests, one test binary (one link of RocksDB
//! and the node) with a module per story:
//!
//! - [`authority`]: who may issue which kinds, expiring and bounded
//!   requests, and node logs without names or ids, on `vault-node`
//!   processes;
//! - [`bad_input`]: wrong certificates, malformed frames, broken uploads
//!   and corrupt blobs against an in-process node;
//! - [`completeness`]: a resident's list proven complete, and a node that
//!   omits an entry, gives a wrong salt or breaks a link caught by the
//!   resident's client and the auditor;
//! - [`disk`]: a full disk on a small tmpfs: clean refusals, fetches
//!   served from the reserve, recovery without a restart (needs root);
//! - [`e2e`]: a `vault-node` process and the `vault` command line, up to
//!   1 GiB documents under a memory ceiling;
//! - [`fuzz_corpus`]: the fuzz targets' committed corpora replayed
//!   through their checks (and regenerated);
//! - [`grants`]: consent and grants, request to revocation;
//! - [`log`]: the tamper-evident access log and its audit;
//! - [`metrics`]: `/metrics` scraped under load and parsed as Prometheus
//!   text (by `promtool` when installed), `/healthz`, `/readyz`;
//! - [`orders`]: access by law — police orders, the court approves, sealed,
//!   then disclosed by the node, verified by the resident, audited;
//! - [`paging`]: listings that outgrow a frame, read page by page;
//! - [`registry`]: the district's purposes and departments by name, in
//!   English and Chinese, from a `vault-node dev` process;
//! - [`cluster`]: three nodes replicating through Raft, blob copies,
//!   scrubs and status;
//! - [`faults`]: `kill -9`, SIGSTOP, purged logs and membership changes
//!   with real node processes;
//! - [`portal`]: the resident's web agent in headless Chromium (approve,
//!   revoke, deny; verified accesses; screenshots in English and Chinese),
//!   and its defences over raw HTTP;
//! - [`walkthrough`]: the README, command for command, on `vault-node dev
//!   --nodes 3`;
//! - [`witness`]: a `vault witness serve` process cosigning a node's
//!   checkpoints, clients with a witness policy, and forks the witness refuses.
//!
//! Tests run in parallel threads of this one process. None changes the
//! process's environment or working directory; each makes its own PKI and
//! data in its own temporary directory, binds ephemeral loopback ports, and
//! signals or kills only the processes it started. Memory ceilings are
//! measured on child processes (`/proc/PID/status`), so the other tests'
//! allocations do not count against them.
//!
//! The shared fixtures live in the `tests` library crate.

#![allow(clippy::unwrap_used, missing_docs)]

mod authority;
mod bad_input;
mod cluster;
mod completeness;
mod disk;
mod e2e;
mod faults;
mod fuzz_corpus;
mod grants;
mod limits;
mod log;
mod metrics;
mod orders;
mod paging;
mod portal;
mod receipts;
mod registry;
mod text;
mod walkthrough;
mod witness;
