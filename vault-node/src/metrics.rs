//! The node's counters and histograms, process-wide, and their Prometheus
//! text exposition (format 0.0.4). Atomics and short critical sections
//! only: recording a request costs a mutex taken for a few map
//! operations, never I/O.
//!
//! What is counted here is what happens (requests by kind and code, their
//! latency, bytes in and out, commit batches, fsyncs, limit refusals);
//! what a scrape reads from the node's state (Raft term and indexes, the
//! log and blob store sizes, checkpoint age, repair totals) is passed in
//! as [`Gauge`]s by the `/metrics` handler (`node::observe`).
//!
//! **Invariant:** no label value comes from a peer: request kinds and
//! codes are the node's own `&'static str`s, so the number of series is
//! bounded by the code, and no resident, document or grant is ever named.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Request latency buckets, in seconds (1 ms to 60 s).
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// fsync latency buckets, in seconds (100 µs to 5 s).
pub const FSYNC_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Commit batch size buckets, in commands.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// A histogram with fixed upper bounds.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative; summed when rendered).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// The counters and histograms.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    limit_refusals: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    commit_batches: Mutex<Histogram>,
    fsync: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Document and blob bytes received (uploads, blob copies from peers).
    pub bytes_in: AtomicU64,
    /// Document and blob bytes sent (downloads, blob copies to peers).
    pub bytes_out: AtomicU64,
    /// Unix seconds when the node last signed a checkpoint (0: never).
    pub checkpoint_signed_at: AtomicU64,
    /// Blob pushes to replicas that were stored.
    pub pushes_ok: AtomicU64,
    /// Blob pushes to replicas that failed.
    pub pushes_failed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            limit_refusals: Mutex::default(),
            commit_batches: Mutex::new(Histogram::new(BATCH_BUCKETS)),
            fsync: Mutex::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            checkpoint_signed_at: AtomicU64::new(0),
            pushes_ok: AtomicU64::new(0),
            pushes_failed: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Records one request of `kind` answered with `code` (`ok` when it
    /// succeeded) after `elapsed`.
    pub fn request(&self, kind: &'static str, code: &'static str, elapsed: Duration) {
        *lock(&self.requests).entry((kind, code)).or_insert(0) += 1;
        lock(&self.latency)
            .entry(kind)
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS_S))
            .observe(elapsed.as_secs_f64());
        if code.starts_with("limit.") {
            *lock(&self.limit_refusals).entry((kind, code)).or_insert(0) += 1;
        }
    }

    /// Records a commit of `commands` commands in one batch (one fsync).
    pub fn commit_batch(&self, commands: usize) {
        lock(&self.commit_batches).observe(commands as f64);
    }

    /// Records an fsync of `store` (`meta` for RocksDB, `blob` for a blob
    /// file) that took `elapsed`.
    pub fn fsync(&self, store: &'static str, elapsed: Duration) {
        lock(&self.fsync)
            .entry(store)
            .or_insert_with(|| Histogram::new(FSYNC_BUCKETS_S))
            .observe(elapsed.as_secs_f64());
    }

    /// Adds `n` bytes received.
    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` bytes sent.
    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one push of a blob to a replica.
    pub fn blob_push(&self, stored: bool) {
        let counter = if stored {
            &self.pushes_ok
        } else {
            &self.pushes_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that a checkpoint was signed at `now` (Unix seconds).
    pub fn checkpoint_signed(&self, now: i64) {
        self.checkpoint_signed_at
            .store(u64::try_from(now).unwrap_or(0), Ordering::Relaxed);
    }

    /// Requests recorded so far with `kind` and `code`.
    pub fn requests_of(&self, kind: &str, code: &str) -> u64 {
        lock(&self.requests)
            .iter()
            .filter(|((k, c), _)| *k == kind && *c == code)
            .map(|(_, n)| *n)
            .sum()
    }

    /// The text exposition of every metric, then `gauges`.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::with_capacity(8 * 1024);
        header(
            &mut out,
            "vault_requests_total",
            "counter",
            "Requests answered, by request kind and code (ok when it succeeded).",
        );
        for ((kind, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "vault_requests_total{{kind=\"{kind}\",code=\"{code}\"}} {n}"
            );
        }
        header(
            &mut out,
            "vault_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer (for get and put, the whole transfer).",
        );
        for (kind, h) in lock(&self.latency).iter() {
            h.render(
                &mut out,
                "vault_request_duration_seconds",
                &format!("kind=\"{kind}\""),
            );
        }
        header(&mut out, "vault_limit_refusals_total", "counter", "Requests refused by the node's limits (limit.busy, limit.deadline), by request kind and code.");
        for ((kind, code), n) in lock(&self.limit_refusals).iter() {
            let _ = writeln!(
                out,
                "vault_limit_refusals_total{{kind=\"{kind}\",code=\"{code}\"}} {n}"
            );
        }
        header(
            &mut out,
            "vault_bytes_received_total",
            "counter",
            "Document and blob bytes received (uploads, copies from peers).",
        );
        let _ = writeln!(
            out,
            "vault_bytes_received_total {}",
            self.bytes_in.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "vault_bytes_sent_total",
            "counter",
            "Document and blob bytes sent (downloads, copies to peers).",
        );
        let _ = writeln!(
            out,
            "vault_bytes_sent_total {}",
            self.bytes_out.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "vault_commit_batch_commands",
            "histogram",
            "Commands made durable per commit (one fsync each).",
        );
        lock(&self.commit_batches).render(&mut out, "vault_commit_batch_commands", "");
        header(
            &mut out,
            "vault_fsync_seconds",
            "histogram",
            "fsync latency, by store (meta: RocksDB, blob: a blob file).",
        );
        for (store, h) in lock(&self.fsync).iter() {
            h.render(
                &mut out,
                "vault_fsync_seconds",
                &format!("store=\"{store}\""),
            );
        }
        header(
            &mut out,
            "vault_blob_pushes_total",
            "counter",
            "Blob copies pushed to replicas, by outcome.",
        );
        let _ = writeln!(
            out,
            "vault_blob_pushes_total{{outcome=\"stored\"}} {}",
            self.pushes_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "vault_blob_pushes_total{{outcome=\"failed\"}} {}",
            self.pushes_failed.load(Ordering::Relaxed)
        );
        for gauge in gauges {
            header(&mut out, gauge.name, gauge.kind, gauge.help);
            let _ = writeln!(out, "{} {}", gauge.name, gauge.value);
        }
        out
    }
}

/// A value read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Gauge {
    /// Metric name.
    pub name: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// Help text.
    pub help: &'static str,
    /// The value.
    pub value: f64,
}

impl Gauge {
    /// A gauge.
    pub fn level(name: &'static str, help: &'static str, value: f64) -> Self {
        Gauge {
            name,
            kind: "gauge",
            help,
            value,
        }
    }

    /// A counter read from elsewhere (e.g. repair totals).
    pub fn counter(name: &'static str, help: &'static str, value: f64) -> Self {
        Gauge {
            name,
            kind: "counter",
            help,
            value,
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.5, 9.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "k=\"a\"");
        assert!(out.contains("x_bucket{k=\"a\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{k=\"a\",le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{k=\"a\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_sum{k=\"a\"} 12.5\n"), "{out}");
        assert!(out.contains("x_count{k=\"a\"} 4\n"), "{out}");
    }

    #[test]
    fn requests_are_counted_by_kind_and_code_and_limits_apart() {
        let m = Metrics::default();
        m.request("get", "ok", Duration::from_millis(3));
        m.request("get", "ok", Duration::from_millis(30));
        m.request("put", "limit.busy", Duration::from_millis(1));
        let text = m.render(&[Gauge::level("vault_raft_term", "Term.", 7.0)]);
        assert!(
            text.contains("vault_requests_total{kind=\"get\",code=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("vault_limit_refusals_total{kind=\"put\",code=\"limit.busy\"} 1\n"));
        assert!(text.contains("vault_request_duration_seconds_count{kind=\"get\"} 2\n"));
        assert!(text.contains("# TYPE vault_raft_term gauge\nvault_raft_term 7\n"));
        assert_eq!(m.requests_of("get", "ok"), 2);
    }
}
