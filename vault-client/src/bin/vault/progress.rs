//! The progress bar `vault` draws on standard error for large transfers:
//! the command line's implementation of the library's
//! [`vault_client::Progress`].

use std::sync::Mutex;

use vault_client::client::PROGRESS_MIN_BYTES;
use vault_client::Progress;

/// A bar for transfers of at least [`PROGRESS_MIN_BYTES`] still to go;
/// smaller ones show nothing.
#[derive(Default)]
pub struct ProgressBar {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl ProgressBar {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<indicatif::ProgressBar>> {
        self.bar.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for ProgressBar {
    fn start(&self, total: u64, done: u64) {
        let mut slot = self.bar();
        if total.saturating_sub(done) < PROGRESS_MIN_BYTES {
            *slot = None;
            return;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(done);
        // The rate counts this run's bytes only: a resumed download's
        // earlier bytes are not a burst of speed.
        bar.reset_eta();
        *slot = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_drawn_only_for_enough_bytes_still_to_go() {
        let progress = ProgressBar::default();
        progress.start(PROGRESS_MIN_BYTES - 1, 0);
        assert!(progress.bar().is_none());
        // A resumed download with little left shows none either.
        progress.start(10 * PROGRESS_MIN_BYTES, 9 * PROGRESS_MIN_BYTES + 1);
        assert!(progress.bar().is_none());
        progress.start(10 * PROGRESS_MIN_BYTES, PROGRESS_MIN_BYTES);
        assert_eq!(
            progress.bar().as_ref().map(|b| (b.length(), b.position())),
            Some((Some(10 * PROGRESS_MIN_BYTES), PROGRESS_MIN_BYTES))
        );
        progress.advance(5);
        assert_eq!(
            progress.bar().as_ref().map(|b| b.position()),
            Some(PROGRESS_MIN_BYTES + 5)
        );
        progress.finish();
        assert!(progress.bar().is_none());
    }
}
