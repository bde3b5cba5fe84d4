//! `vault-bench`: puts and verified gets over loopback QUIC, each beside its
//! ceiling measured in the same run: a raw quinn stream transfer of the same
//! bytes with the same TLS and transport settings, and raw BLAKE3 hashing.
//!
//! `cargo run --release -p tests --bin vault-bench [-- --json] [--sizes 4k,1m,256m]`
//!
//! One module per suite ([`transfer`], [`grants`], [`log`] (with the
//! checkpoint suite), [`growth`],
//! [`rss`], [`cluster`]); the ceilings they compare with in [`raw`]; the
//! measuring loops and the table in [`report`].

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tests::{connect, start_node, TestPki};

use crate::report::{report, Row};

mod cluster;
mod grants;
mod growth;
mod local;
mod log;
mod raw;
mod report;
mod rss;
mod transfer;

/// Benchmark the vault against raw quinn and raw BLAKE3.
#[derive(Parser)]
struct Args {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Document sizes: 4k, 1m, 256m...
    #[arg(long, default_value = "4k,1m,256m", value_delimiter = ',')]
    sizes: Vec<String>,
    /// Minimum measuring time per workload, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    min_ms: u64,
    /// Which suites to run: transfer, grants, log, checkpoint, growth, rss,
    /// cluster, or all.
    #[arg(long, default_value = "transfer,grants,log", value_delimiter = ',')]
    suites: Vec<String>,
    /// Size of the document the rss suite moves (e.g. 1g).
    #[arg(long, default_value = "1g")]
    rss_size: String,
    /// Internal: run as a child process of the rss suite (node, put, get).
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
    child: Vec<String>,
    /// Stored-document counts for the growth suite (fetch latency at each).
    #[arg(long, default_value = "10000,1000000", value_delimiter = ',')]
    growth: Vec<u64>,
    /// Log entries to build before measuring proofs and `audit verify`.
    #[arg(long, default_value_t = 100_000)]
    log_entries: u64,
    /// Log sizes for the checkpoint suite (checkpoint latency at each).
    #[arg(long, default_value = "10000,1000000", value_delimiter = ',')]
    checkpoint_entries: Vec<u64>,
    /// Document sizes for the grant-checked fetch workloads.
    #[arg(long, default_value = "4k,1m", value_delimiter = ',')]
    grant_sizes: Vec<String>,
    /// Document sizes for the cluster suite's 3-node vs 1-node throughput
    /// rows.
    #[arg(long, default_value = "4k,1m", value_delimiter = ',')]
    cluster_sizes: Vec<String>,
    /// Skip the cluster suite's repair and failover rows (throughput only,
    /// e.g. under a profiler).
    #[arg(long)]
    cluster_throughput_only: bool,
    /// Connect every cluster client to the leader instead of spreading
    /// them over the nodes (shows what forwarding to the leader costs).
    #[arg(long)]
    cluster_leader_only: bool,
    /// Skip the signature micro-benchmarks of the grant suite.
    #[arg(long)]
    no_signatures: bool,
    /// Concurrent clients for the grant-checked fetch workloads.
    #[arg(long, default_value_t = 64)]
    clients: usize,
}

/// The suites `all` stands for, in the order they run.
const ALL_SUITES: [&str; 7] = [
    "transfer",
    "grants",
    "log",
    "checkpoint",
    "growth",
    "rss",
    "cluster",
];

impl Args {
    /// Whether `suite` was asked for.
    fn runs(&self, suite: &str) -> bool {
        self.suites.iter().any(|s| s == suite)
    }

    /// The minimum measuring time per workload.
    fn min(&self) -> Duration {
        Duration::from_millis(self.min_ms)
    }
}

fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().context("size")?;
    Ok(n * match unit {
        "" => 1,
        "k" => 1024,
        "m" => 1024 * 1024,
        "g" => 1024 * 1024 * 1024,
        other => anyhow::bail!("unknown unit {other}"),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if !args.child.is_empty() {
        return runtime.block_on(rss::child(&args.child));
    }
    runtime.block_on(run(args))
}

/// Runs the suites asked for against one in-process node and one raw quinn
/// server, then prints the rows (the transfer rows last).
async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.runs("all") {
        args.suites = ALL_SUITES.map(String::from).to_vec();
    }
    let pki = TestPki::new()?;
    let node = start_node(&pki).await?;
    let raw = raw::start_server(&pki).await?;
    let dept = connect(&pki, "civil-affairs", node.addr).await?;
    let raw_client = raw::connection(&pki, raw).await?;
    let mut rows: Vec<Row> = Vec::new();
    if args.runs("grants") {
        rows.extend(grants::suite(&pki, &node, raw, &args).await?);
    }
    if args.runs("log") {
        rows.extend(log::suite(&pki, &node, &args).await?);
    }
    if args.runs("checkpoint") {
        rows.extend(log::checkpoint_suite(&args).await?);
    }
    if args.runs("growth") {
        rows.extend(growth::suite(&pki, &node, &args).await?);
    }
    if args.runs("rss") {
        rows.extend(rss::suite(&pki, &args)?);
    }
    if args.runs("cluster") {
        rows.extend(cluster::suite(&pki, &node, &raw_client, &args).await?);
    }
    if !args.runs("transfer") {
        report(&args, &rows);
        return Ok(());
    }
    rows.extend(transfer::suite(&dept, &raw_client, &args).await?);
    report(&args, &rows);
    node.close();
    Ok(())
}
