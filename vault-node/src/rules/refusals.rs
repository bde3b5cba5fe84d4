//! How many refusal entries one caller may add to the transparency log:
//! at most [`REFUSALS_PER_WINDOW_MAX`] per [`REFUSAL_WINDOW_S`] window and
//! caller; the rest are counted, not logged, and the count is reported
//! (at `warn`) when the caller's next window admits an entry again.
//!
//! A refusal entry is the only trace a refused request leaves, so the
//! first ones of every window are always kept; what is cut is one caller
//! growing the log without end.
//!
//! **Invariant:** the decision is a plain function of the caller, `now` and
//! the windows kept here; no I/O. The table holds at most
//! [`REFUSAL_CALLERS_MAX`] callers and is cleared when full (every caller
//! then starts a fresh window: more entries, never fewer).

use std::collections::HashMap;
use std::sync::Mutex;

use pki::{Name, Role};

/// Length of one rate window, in seconds.
pub const REFUSAL_WINDOW_S: i64 = 60;
/// Most refusal entries one caller may add per window.
pub const REFUSALS_PER_WINDOW_MAX: u32 = 20;
/// Most callers whose windows are remembered at once.
pub const REFUSAL_CALLERS_MAX: usize = 100_000;

/// One caller's current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// When it started, unix seconds.
    start: i64,
    /// Entries admitted in it.
    admitted: u32,
    /// Refusals not logged since the last admitted entry.
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Log it; `suppressed` refusals of this caller went unlogged before it.
    Log {
        /// Refusals not logged since the caller's previous entry.
        suppressed: u64,
    },
    /// Do not log it (counted).
    Suppress,
}

/// The per-caller windows.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    windows: Mutex<HashMap<(Role, Name), Window>>,
}

impl RefusalBudget {
    /// Decides one refusal of `caller` (`role`, `name`) at `now`.
    pub fn admit(&self, role: Role, name: &Name, now: i64) -> Admission {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= REFUSAL_CALLERS_MAX && !windows.contains_key(&(role, name.clone())) {
            windows.clear();
        }
        let window = windows.entry((role, name.clone())).or_insert(Window {
            start: now,
            admitted: 0,
            suppressed: 0,
        });
        decide(window, now)
    }
}

/// The decision for one window, updating it.
fn decide(window: &mut Window, now: i64) -> Admission {
    if now.saturating_sub(window.start) >= REFUSAL_WINDOW_S || now < window.start {
        window.start = now;
        window.admitted = 0;
    }
    if window.admitted >= REFUSALS_PER_WINDOW_MAX {
        window.suppressed = window.suppressed.saturating_add(1);
        return Admission::Suppress;
    }
    window.admitted += 1;
    let suppressed = std::mem::take(&mut window.suppressed);
    Admission::Log { suppressed }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn a_caller_gets_its_window_then_is_counted_and_told_next_window() {
        let budget = RefusalBudget::default();
        let tax = name("tax-office");
        for _ in 0..REFUSALS_PER_WINDOW_MAX {
            let admitted = budget.admit(Role::Department, &tax, 1_000);
            assert_eq!(admitted, Admission::Log { suppressed: 0 });
        }
        for _ in 0..5 {
            let cut = budget.admit(Role::Department, &tax, 1_000 + REFUSAL_WINDOW_S - 1);
            assert_eq!(cut, Admission::Suppress);
        }
        // Another caller is not affected.
        let other = budget.admit(Role::Department, &name("civil-affairs"), 1_001);
        assert_eq!(other, Admission::Log { suppressed: 0 });
        let next = budget.admit(Role::Department, &tax, 1_000 + REFUSAL_WINDOW_S);
        assert_eq!(next, Admission::Log { suppressed: 5 });
    }

    #[test]
    fn a_clock_step_back_starts_a_fresh_window() {
        let mut window = Window {
            start: 5_000,
            admitted: REFUSALS_PER_WINDOW_MAX,
            suppressed: 2,
        };
        assert_eq!(decide(&mut window, 10), Admission::Log { suppressed: 2 });
        assert_eq!(
            decide(&mut window, i64::MAX),
            Admission::Log { suppressed: 0 }
        );
    }
}
