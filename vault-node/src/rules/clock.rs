//! The one clock the node reads. Rules and the state machine never read it
//! themselves: they take `now` (or a command's seed time) as an argument;
//! the layers that start a decision read the clock once and pass it down.

/// Seconds since the Unix epoch, as every rule and record counts time.
pub trait Clock: Send + Sync {
    /// The current time in Unix seconds.
    fn now_unix(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock fixed at one instant, for tests and replays.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_unix(&self) -> i64 {
        self.0
    }
}
