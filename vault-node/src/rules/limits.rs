//! Bounded work per caller: the node's limits (how many uploads, downloads
//! and other requests one caller and all callers together may have in
//! progress, how long a stream may stay silent, how long a transfer may
//! take, how much outboard memory downloads may hold) and the admission
//! decision, as pure code. The counting lives in `net::admission`.
//!
//! A caller over a cap is answered at once with `limit.busy`; a stream
//! silent for [`Limits::idle_s`] or running past [`Limits::deadline`] is cut
//! with `limit.deadline`.

use std::time::Duration;

use serde::Deserialize;
use vault_client::ErrorCode;

use crate::Refusal;

/// Default uploads one caller may have in progress.
pub const DEFAULT_UPLOADS_PER_CALLER: usize = 16;
/// Default uploads in progress on the whole node.
pub const DEFAULT_UPLOADS_TOTAL: usize = 64;
/// Default downloads one caller may have in progress.
pub const DEFAULT_DOWNLOADS_PER_CALLER: usize = 16;
/// Default downloads in progress on the whole node.
pub const DEFAULT_DOWNLOADS_TOTAL: usize = 64;
/// Default other requests (list, consent, transparency...) one caller may
/// have in progress.
pub const DEFAULT_REQUESTS_PER_CALLER: usize = 64;
/// Default other requests in progress on the whole node.
pub const DEFAULT_REQUESTS_TOTAL: usize = 1024;
/// Default longest silence on a stream (no byte read or accepted by the
/// peer), in seconds.
pub const DEFAULT_IDLE_S: u64 = 10;
/// Default fixed part of a transfer's total deadline, in seconds.
pub const DEFAULT_TRANSFER_BASE_S: u64 = 30;
/// Default slowest transfer rate not given up on, in bytes per second (a
/// 4 GiB document gets 30 s + 68 min).
pub const DEFAULT_TRANSFER_RATE_MIN_BYTES_S: u64 = 1024 * 1024;
/// Default decrypted outboard bytes all downloads together may hold (a
/// 4 GiB document's outboard is 16 MiB, a 40 MiB one's 160 KiB).
pub const DEFAULT_OUTBOARD_BUDGET_BYTES: u64 = 64 * 1024 * 1024;
/// Default free space a new blob must leave on the data directory's file
/// system, in bytes: uploads are refused (`storage.disk_full`) before the
/// disk is full, so the small writes a fetch needs (its log entry) and
/// RocksDB's own recovery still find room.
pub const DEFAULT_DISK_RESERVE_BYTES: u64 = 32 * 1024 * 1024;

/// The node's limits (`[limits]` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Uploads one caller may have in progress.
    pub uploads_per_caller: usize,
    /// Uploads in progress on the node.
    pub uploads_total: usize,
    /// Downloads one caller may have in progress.
    pub downloads_per_caller: usize,
    /// Downloads in progress on the node.
    pub downloads_total: usize,
    /// Other requests one caller may have in progress.
    pub requests_per_caller: usize,
    /// Other requests in progress on the node.
    pub requests_total: usize,
    /// Longest silence on a stream, in seconds.
    pub idle_s: u64,
    /// Fixed part of a transfer's total deadline, in seconds.
    pub transfer_base_s: u64,
    /// Slowest transfer rate not given up on, in bytes per second.
    pub transfer_rate_min_bytes_s: u64,
    /// Decrypted outboard bytes all downloads together may hold.
    pub outboard_budget_bytes: u64,
    /// Free space a new blob must leave on the data disk (0: none).
    pub disk_reserve_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            uploads_per_caller: DEFAULT_UPLOADS_PER_CALLER,
            uploads_total: DEFAULT_UPLOADS_TOTAL,
            downloads_per_caller: DEFAULT_DOWNLOADS_PER_CALLER,
            downloads_total: DEFAULT_DOWNLOADS_TOTAL,
            requests_per_caller: DEFAULT_REQUESTS_PER_CALLER,
            requests_total: DEFAULT_REQUESTS_TOTAL,
            idle_s: DEFAULT_IDLE_S,
            transfer_base_s: DEFAULT_TRANSFER_BASE_S,
            transfer_rate_min_bytes_s: DEFAULT_TRANSFER_RATE_MIN_BYTES_S,
            outboard_budget_bytes: DEFAULT_OUTBOARD_BUDGET_BYTES,
            disk_reserve_bytes: DEFAULT_DISK_RESERVE_BYTES,
        }
    }
}

/// What a stream is doing, for its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    /// A put's body being received.
    Upload,
    /// A get's pieces being sent.
    Download,
    /// Any other request.
    Request,
}

impl Work {
    /// A name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Work::Upload => "uploads",
            Work::Download => "downloads",
            Work::Request => "requests",
        }
    }
}

impl Limits {
    /// Checks the values: every cap and rate at least 1, a caller's cap
    /// no larger than the node's.
    pub fn validate(&self) -> Result<(), String> {
        for work in [Work::Upload, Work::Download, Work::Request] {
            let (per_caller, total) = self.caps(work);
            if per_caller == 0 || total == 0 {
                return Err(format!("limits: {} caps must be at least 1", work.as_str()));
            }
            if per_caller > total {
                return Err(format!(
                    "limits: {}_per_caller ({per_caller}) exceeds {}_total ({total})",
                    work.as_str(),
                    work.as_str()
                ));
            }
        }
        if self.idle_s == 0 || self.transfer_rate_min_bytes_s == 0 {
            return Err("limits: idle_s and transfer_rate_min_bytes_s must be at least 1".into());
        }
        if self.idle_s > IDLE_S_MAX || self.transfer_base_s > TRANSFER_BASE_S_MAX {
            return Err(format!(
                "limits: idle_s is at most {IDLE_S_MAX} and transfer_base_s at most {TRANSFER_BASE_S_MAX}"
            ));
        }
        Ok(())
    }

    /// The caps for `work`: (per caller, node total).
    pub fn caps(&self, work: Work) -> (usize, usize) {
        match work {
            Work::Upload => (self.uploads_per_caller, self.uploads_total),
            Work::Download => (self.downloads_per_caller, self.downloads_total),
            Work::Request => (self.requests_per_caller, self.requests_total),
        }
    }

    /// The longest silence on a stream.
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_s)
    }

    /// How long moving `size` bytes over one stream may take in all: the
    /// base plus the size at the slowest rate not given up on (saturating,
    /// so no announced size overflows).
    pub fn deadline(&self, size: u64) -> Duration {
        let rate = self.transfer_rate_min_bytes_s.max(1);
        Duration::from_secs(self.transfer_base_s.saturating_add(size / rate))
    }

    /// Whether one more `work` may start, given what the caller and the
    /// node already have in progress; `limit.busy` with what to do if not.
    pub fn admit(
        &self,
        work: Work,
        caller_in_use: usize,
        total_in_use: usize,
    ) -> Result<(), Refusal> {
        let (per_caller, total) = self.caps(work);
        if caller_in_use >= per_caller {
            return Err(busy(format!(
                "you already have {caller_in_use} {} in progress, the most this node allows one caller; \
                 finish or cancel some, then retry",
                work.as_str()
            )));
        }
        if total_in_use >= total {
            return Err(busy(format!(
                "the node already has {total_in_use} {} in progress, the most it allows; retry in a few seconds",
                work.as_str()
            )));
        }
        Ok(())
    }

    /// Whether a download whose outboard is `bytes` long fits beside the
    /// `in_use` outboard bytes other downloads hold.
    pub fn admit_outboard(
        &self,
        bytes: u64,
        caller_in_use: u64,
        in_use: u64,
    ) -> Result<(), Refusal> {
        // One caller holds at most its share, so it cannot keep everyone
        // else's large downloads out; a caller holding none is always
        // admitted (one download is never refused for its size alone).
        let share = self.outboard_budget_bytes / OUTBOARD_SHARES;
        if caller_in_use.saturating_add(bytes) > share && caller_in_use > 0 {
            return Err(busy(
                "you are downloading as many large documents at once as this node allows one caller; finish some first"
                    .to_string(),
            ));
        }
        if in_use.saturating_add(bytes) > self.outboard_budget_bytes && in_use > 0 {
            return Err(busy(
                "the node is serving as many large downloads as its memory allows; retry in a few seconds"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// Callers the outboard budget is shared among: one caller may hold at most
/// this fraction of it.
pub const OUTBOARD_SHARES: u64 = 4;
/// Longest idle deadline a configuration may set, in seconds.
pub const IDLE_S_MAX: u64 = 3_600;
/// Longest base of the total transfer deadline a configuration may set, in
/// seconds.
pub const TRANSFER_BASE_S_MAX: u64 = 86_400;

fn busy(message: String) -> Refusal {
    Refusal::new(ErrorCode::LimitBusy, message)
}

/// The refusal for a stream cut at a deadline.
pub fn deadline_passed(what: &str, idle: bool) -> Refusal {
    let why = if idle {
        "nothing moved on it for the idle deadline"
    } else {
        "it outlasted its total deadline"
    };
    Refusal::new(
        ErrorCode::LimitDeadline,
        format!("the {what} was cut: {why}; nothing was stored; retry over a faster link"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_per_caller_then_total() {
        let limits = Limits::default();
        assert!(limits.admit(Work::Upload, 15, 60).is_ok());
        let refusal = limits.admit(Work::Upload, 16, 16).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::LimitBusy);
        assert!(refusal.message.contains("one caller"));
        let refusal = limits.admit(Work::Download, 0, 64).unwrap_err();
        assert!(refusal.message.contains("the node"));
    }

    #[test]
    fn deadlines_scale_with_size_and_never_overflow() {
        let limits = Limits::default();
        assert_eq!(limits.deadline(0), Duration::from_secs(30));
        assert_eq!(limits.deadline(4 << 30), Duration::from_secs(30 + 4096));
        assert!(limits.deadline(u64::MAX) > Duration::from_secs(1 << 40));
    }

    #[test]
    fn the_outboard_budget_always_admits_one() {
        let limits = Limits {
            outboard_budget_bytes: 100,
            ..Limits::default()
        };
        assert!(limits.admit_outboard(1000, 0, 0).is_ok());
        assert!(limits.admit_outboard(60, 0, 50).is_err());
        assert!(limits.admit_outboard(50, 0, 50).is_ok());
        // One caller: at most a quarter of the budget once it holds some.
        assert!(limits.admit_outboard(20, 10, 10).is_err());
        assert!(limits.admit_outboard(15, 10, 10).is_ok());
        assert!(limits.admit_outboard(60, 0, 10).is_ok());
    }

    #[test]
    fn nonsense_is_refused() {
        let mut limits = Limits::default();
        assert!(limits.validate().is_ok());
        limits.uploads_per_caller = 500;
        assert!(limits
            .validate()
            .unwrap_err()
            .contains("uploads_per_caller"));
        limits = Limits {
            idle_s: 0,
            ..Limits::default()
        };
        assert!(limits.validate().is_err());
    }
}
