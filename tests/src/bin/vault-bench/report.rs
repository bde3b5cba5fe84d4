//! What a suite measures and how it is shown: a [`Row`] per workload, the
//! measuring loops (one operation at a time, synchronous batches, many
//! concurrent clients), and the table or JSON document printed at the end.
//!
//! Nothing here knows a suite: a row names its ceiling and [`report`]
//! finds it among the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Args;

/// One measured workload.
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) size: u64,
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// Latency percentiles (p50, p99) when measured.
    pub(crate) latency: Option<(Duration, Duration)>,
    /// The workload this one is compared with, and how many of its
    /// operations one of ours is worth (e.g. signatures per grant).
    pub(crate) ceiling: Option<(&'static str, f64)>,
}

impl Row {
    /// A row of `ops` operations on `size`-byte items in `elapsed`, with no
    /// latency and no ceiling.
    pub(crate) fn new(workload: impl Into<String>, size: u64, ops: u64, elapsed: Duration) -> Self {
        Row {
            workload: workload.into(),
            size,
            ops,
            elapsed,
            latency: None,
            ceiling: None,
        }
    }

    /// Operations per second.
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Bytes per second, in MiB.
    fn mib_per_s(&self) -> f64 {
        (self.ops * self.size) as f64 / self.elapsed.as_secs_f64() / (1024.0 * 1024.0)
    }
}

/// Runs `op` once to warm up, then for at least `min` and three times.
pub(crate) async fn measure<F, Fut>(
    workload: &str,
    size: u64,
    min: Duration,
    mut op: F,
) -> anyhow::Result<Row>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    op().await?; // warm-up
    let start = Instant::now();
    let mut ops = 0;
    while start.elapsed() < min || ops < 3 {
        op().await?;
        ops += 1;
    }
    Ok(Row::new(workload, size, ops, start.elapsed()))
}

/// Runs `op` in batches of 64 for at least `min`.
pub(crate) fn measure_sync(
    workload: &str,
    min: Duration,
    mut op: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    op()?;
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < min {
        for _ in 0..64 {
            op()?;
        }
        ops += 64;
    }
    Ok(Row::new(workload, 0, ops, start.elapsed()))
}

/// Runs `op` in a loop on every client concurrently for `min`; records
/// every operation's latency.
pub(crate) async fn measure_concurrent<C, G, F, Fut>(
    workload: &str,
    size: u64,
    min: Duration,
    clients: Vec<(Arc<C>, G)>,
    op: F,
) -> anyhow::Result<Row>
where
    C: Send + Sync + 'static,
    G: Clone + Send + 'static,
    F: Fn(Arc<C>, G) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (client, extra) in clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while start.elapsed() < min {
                let t = Instant::now();
                op(client.clone(), extra.clone()).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Row {
        workload: workload.to_string(),
        size,
        ops: latencies.len() as u64,
        elapsed,
        latency: Some((pick(0.5), pick(0.99))),
        ceiling: None,
    })
}

/// This row's throughput over its ceiling's (bytes/s for transfers, ops/s
/// scaled by the ceiling's weight otherwise).
fn ratio(r: &Row, rows: &[Row]) -> Option<f64> {
    let implied = match r.workload.as_str() {
        "vault put" => Some(("raw quinn upload", 0.0)),
        "vault verified get" => Some(("raw quinn download", 0.0)),
        _ => None,
    };
    let (name, weight) = r.ceiling.or(implied)?;
    let ceiling = rows.iter().find(|c| {
        (c.workload == name || c.workload.starts_with(&format!("{name} [")))
            && (weight != 0.0 || c.size == r.size)
    })?;
    if weight == 0.0 {
        Some(r.mib_per_s() / ceiling.mib_per_s())
    } else {
        Some(r.ops_per_s() * weight / ceiling.ops_per_s())
    }
}

/// Prints `rows`: one JSON document (`--json`) or a table.
pub(crate) fn report(args: &Args, rows: &[Row]) {
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| json!({"workload": r.workload, "size": r.size, "ops": r.ops,
                "seconds": r.elapsed.as_secs_f64(), "ops_per_s": r.ops_per_s(), "mib_per_s": r.mib_per_s(),
                "p50_ms": r.latency.map(|l| l.0.as_secs_f64() * 1e3),
                "p99_ms": r.latency.map(|l| l.1.as_secs_f64() * 1e3),
                "ratio_to_ceiling": ratio(r, rows)}))
            .collect();
        println!("{}", json!({"results": items}));
        return;
    }
    println!(
        "{:<34} {:>10} {:>8} {:>11} {:>9} {:>8} {:>8} {:>8}",
        "workload", "size", "ops", "ops/s", "MiB/s", "p50 ms", "p99 ms", "vs ceil"
    );
    for r in rows {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let (p50, p99) = r.latency.map(|(a, b)| (ms(a), ms(b))).unwrap_or_default();
        let vs = ratio(r, rows)
            .map(|x| format!("{x:.2}x"))
            .unwrap_or_default();
        println!(
            "{:<34} {:>10} {:>8} {:>11.1} {:>9.1} {:>8} {:>8} {:>8}",
            r.workload,
            r.size,
            r.ops,
            r.ops_per_s(),
            r.mib_per_s(),
            p50,
            p99,
            vs
        );
    }
}
