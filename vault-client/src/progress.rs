//! How the client library reports a transfer's progress: the [`Progress`]
//! trait. The library draws nothing itself; the `vault` command line
//! implements it with a progress bar on standard error.
//!
//! Part of the pure layer: an interface, no I/O.

/// Observes the progress of transfers (uploads and downloads). One
/// transfer at a time calls [`Progress::start`], then [`Progress::advance`]
/// as bytes are sent or verified, then [`Progress::finish`] once it
/// succeeded; a failed transfer stops calling (no `finish`).
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes begins with `done` of them already in
    /// place (a resumed download's verified prefix; 0 otherwise).
    fn start(&self, total: u64, done: u64);
    /// `bytes` more were sent or verified.
    fn advance(&self, bytes: u64);
    /// The transfer completed.
    fn finish(&self);
}
