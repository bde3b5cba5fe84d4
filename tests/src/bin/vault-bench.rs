//! `vault-bench`: puts and verified gets over loopback QUIC, each beside its
//! ceiling measured in the same run: a raw quinn stream transfer of the same
//! bytes with the same TLS and transport settings, and raw BLAKE3 hashing.
//!
//! `cargo run --release -p tests --bin vault-bench [-- --json] [--sizes 4k,1m,256m]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use pki::{DocumentKind, ResidentId};
use serde_json::json;
use tests::{connect, pseudo_random_bytes, start_node, TestPki};
use vault_client::transport;

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
    /// Which suites to run: transfer, grants, log, growth, rss, cluster, or all.
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

/// One measured workload.
struct Row {
    workload: String,
    size: u64,
    ops: u64,
    elapsed: Duration,
    /// Latency percentiles (p50, p99) when measured.
    latency: Option<(Duration, Duration)>,
    /// The workload this one is compared with, and how many of its
    /// operations one of ours is worth (e.g. signatures per grant).
    ceiling: Option<(&'static str, f64)>,
}

impl Row {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn mib_per_s(&self) -> f64 {
        (self.ops * self.size) as f64 / self.elapsed.as_secs_f64() / (1024.0 * 1024.0)
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
        return runtime.block_on(child(&args.child));
    }
    runtime.block_on(run(args))
}

/// The rss suite's child processes: `node IDENTITY DATA CRL`, `put IDENTITY
/// NODE FILE`, `get IDENTITY NODE DOCUMENT_ID OUT`.
async fn child(argv: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize| {
        argv.get(i)
            .map(String::as_str)
            .context("missing child argument")
    };
    match arg(0)? {
        "node" => {
            let node = vault_node::node::start(vault_node::node::NodeConfig {
                listen: "127.0.0.1:0".parse()?,
                identity_dir: arg(1)?.into(),
                data_dir: arg(2)?.into(),
                crl_path: Some(arg(3)?.into()),
                purposes_path: None,
                cluster: None,
            })
            .await?;
            println!("{}", node.addr);
            // Serve until the parent kills this process.
            std::future::pending::<()>().await;
            drop(node);
            Ok(())
        }
        "put" => {
            let client = vault_client::VaultClient::connect(
                pki::Identity::load(std::path::Path::new(arg(1)?))?,
                arg(2)?,
            )
            .await?;
            let out = client
                .put_file(
                    std::path::Path::new(arg(3)?),
                    &ResidentId::parse("resident-1")?,
                    &DocumentKind::parse("archive")?,
                    false,
                )
                .await?;
            println!("{}", out.document_id);
            Ok(())
        }
        "get" => {
            let client = vault_client::VaultClient::connect(
                pki::Identity::load(std::path::Path::new(arg(1)?))?,
                arg(2)?,
            )
            .await?;
            let id = vault_client::DocumentId::parse(arg(3)?)?;
            client
                .get_to_file(id, std::path::Path::new(arg(4)?), Default::default())
                .await?;
            Ok(())
        }
        other => anyhow::bail!("unknown child {other}"),
    }
}

async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.suites.iter().any(|s| s == "all") {
        args.suites = ["transfer", "grants", "log", "growth", "rss", "cluster"]
            .map(String::from)
            .to_vec();
    }
    let pki = TestPki::new()?;
    let node = start_node(&pki).await?;
    let raw = start_raw_server(&pki).await?;
    let dept = connect(&pki, "civil-affairs", node.addr).await?;
    let raw_client = raw_connection(&pki, raw).await?;
    let min = Duration::from_millis(args.min_ms);
    let mut rows = Vec::new();
    if args.suites.iter().any(|s| s == "grants") {
        rows.extend(grant_suite(&pki, &node, raw, &args).await?);
    }
    if args.suites.iter().any(|s| s == "log") {
        rows.extend(log_suite(&pki, &node, &args).await?);
    }
    if args.suites.iter().any(|s| s == "growth") {
        rows.extend(growth_suite(&pki, &node, &args).await?);
    }
    if args.suites.iter().any(|s| s == "rss") {
        rows.extend(rss_suite(&pki, &args)?);
    }
    if args.suites.iter().any(|s| s == "cluster") {
        rows.extend(cluster_suite(&pki, &node, &raw_client, &args).await?);
    }
    if !args.suites.iter().any(|s| s == "transfer") {
        report(&args, &rows);
        return Ok(());
    }
    for size_text in &args.sizes {
        let size = parse_size(size_text)?;
        let data = pseudo_random_bytes(size as usize, 1);
        rows.push(
            measure("raw blake3", size, min, || async {
                std::hint::black_box(blake3::hash(&data));
                Ok(())
            })
            .await?,
        );
        let payload = Arc::new(data.clone());
        rows.push(
            measure("raw quinn upload", size, min, || {
                raw_upload(&raw_client, payload.clone())
            })
            .await?,
        );
        rows.push(
            measure("raw quinn download", size, min, || {
                raw_download(&raw_client, size)
            })
            .await?,
        );
        let seed = std::cell::Cell::new(1000u64);
        let last = std::cell::Cell::new(None);
        let resident = ResidentId::parse("resident-1")?;
        let kind = DocumentKind::parse("bench")?;
        rows.push(
            measure("vault put", size, min, || {
                seed.set(seed.get() + 1);
                // Distinct bytes each time so nothing deduplicates.
                let mut bytes = (*payload).clone();
                let n = bytes.len().min(8);
                bytes[..n].copy_from_slice(&seed.get().to_le_bytes()[..n]);
                let (dept, resident, kind, last) = (&dept, &resident, &kind, &last);
                async move {
                    let out = dept.put_bytes(Arc::new(bytes), resident, kind).await?;
                    last.set(Some(out.document_id));
                    Ok(())
                }
            })
            .await?,
        );
        let id = last.get().context("no document")?;
        rows.push(
            measure("vault verified get", size, min, || async {
                let (_, bytes) = dept.get_bytes(id, None, None).await?;
                anyhow::ensure!(bytes.len() as u64 == size);
                Ok(())
            })
            .await?,
        );
    }
    report(&args, &rows);
    node.close();
    Ok(())
}

async fn measure<F, Fut>(workload: &str, size: u64, min: Duration, mut op: F) -> anyhow::Result<Row>
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
    Ok(Row {
        workload: workload.to_string(),
        size,
        ops,
        elapsed: start.elapsed(),
        latency: None,
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

fn report(args: &Args, rows: &[Row]) {
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

/// A quinn server with the node's TLS and transport settings that swallows
/// uploads and serves zero-copy downloads: the ceiling for the vault.
async fn start_raw_server(pki: &TestPki) -> anyhow::Result<SocketAddr> {
    let identity = pki.identity("node-1")?;
    let tls = pki::server_tls_config(&identity, &[])?;
    let config = transport::server_config(tls).map_err(anyhow::Error::msg)?;
    let socket = transport::bind_udp("127.0.0.1:0".parse()?)?;
    let endpoint = transport::endpoint(socket, Some(config))?;
    let addr = endpoint.local_addr()?;
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else {
                    return;
                };
                while let Ok((send, recv)) = connection.accept_bi().await {
                    tokio::spawn(raw_serve(send, recv));
                }
            });
        }
    });
    Ok(addr)
}

/// Request: 8-byte BE length to download (0 = upload follows).
async fn raw_serve(mut send: quinn::SendStream, mut recv: quinn::RecvStream) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    recv.read_exact(&mut header).await?;
    let want = u64::from_be_bytes(header);
    if want == 0 {
        while recv.read_chunk(usize::MAX, true).await?.is_some() {}
        send.write_all(b"k").await?;
    } else {
        let chunk = bytes::Bytes::from(vec![7u8; 256 * 1024]);
        let mut left = want;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            send.write_chunk(chunk.slice(..n)).await?;
            left -= n as u64;
        }
    }
    send.finish()?;
    let _ = send.stopped().await;
    Ok(())
}

async fn raw_connection(pki: &TestPki, addr: SocketAddr) -> anyhow::Result<quinn::Connection> {
    let identity = pki.identity("civil-affairs")?;
    let config =
        transport::client_config(pki::client_tls_config(&identity)?).map_err(anyhow::Error::msg)?;
    let mut endpoint = transport::endpoint(transport::bind_udp("127.0.0.1:0".parse()?)?, None)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint.connect(addr, "localhost")?.await?)
}

async fn raw_upload(connection: &quinn::Connection, payload: Arc<Vec<u8>>) -> anyhow::Result<()> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&0u64.to_be_bytes()).await?;
    send.write_all(&payload).await?;
    send.finish()?;
    let mut ack = [0u8; 1];
    recv.read_exact(&mut ack).await?;
    Ok(())
}

async fn raw_download(connection: &quinn::Connection, size: u64) -> anyhow::Result<()> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&size.to_be_bytes()).await?;
    send.finish()?;
    let mut got = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    // Read into a buffer like the client does (not zero-copy), to be fair.
    while let Some(n) = recv.read(&mut buf).await? {
        got += n as u64;
    }
    anyhow::ensure!(got == size, "short raw download");
    Ok(())
}

/// Grant verification beside raw ring, cached checks, and grant-checked
/// fetches by many concurrent clients beside raw quinn downloads.
async fn grant_suite(
    pki: &TestPki,
    node: &vault_node::node::RunningNode,
    raw: SocketAddr,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = Duration::from_millis(args.min_ms);
    let civil = connect(pki, "civil-affairs", node.addr).await?;
    let resident_client = connect(pki, "resident-1", node.addr).await?;
    let resident = ResidentId::parse("resident-1")?;
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for (i, size_text) in args.grant_sizes.iter().enumerate() {
        let size = parse_size(size_text)? as usize;
        let kind = ["form", "scan", "archive", "other"][i.min(3)];
        let put = civil
            .put_bytes(
                Arc::new(pseudo_random_bytes(size, size as u64)),
                &resident,
                &DocumentKind::parse(kind)?,
            )
            .await?;
        docs.push((kind, size as u64, put.document_id));
    }
    // One grant per client, all documents, the most uses a grant allows.
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let client = connect(pki, "housing-bureau", node.addr).await?;
        let kinds = docs
            .iter()
            .map(|(k, _, _)| DocumentKind::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        let request_id = client
            .request_access(
                &resident,
                pki::RequestScope::Kinds(kinds),
                &pki::Purpose::parse("housing-subsidy")?,
                3600,
            )
            .await?;
        let view = resident_client
            .pending_requests()
            .await?
            .into_iter()
            .find(|r| r.request_id == request_id)
            .context("request not pending")?;
        let grant = resident_client
            .approve(resident_client.approval_body(&view, pki::GRANT_USES_MAX, None)?)
            .await?;
        clients.push((Arc::new(client), grant));
    }
    if !args.no_signatures {
        rows.extend(signature_rows(pki, &clients[0].1, min)?);
    }
    for (_, size, doc) in &docs {
        let fetch_clients: Vec<_> = clients.iter().map(|(c, g)| (c.clone(), g.id())).collect();
        let doc = *doc;
        let row = measure_concurrent(
            "grant-checked fetch",
            *size,
            min,
            fetch_clients,
            move |client, grant| async move {
                let (_, bytes) = client.get_bytes(doc, None, Some(grant)).await?;
                anyhow::ensure!(!bytes.is_empty());
                Ok(())
            },
        )
        .await?;
        rows.push(row);
        let raw_clients = {
            let mut v = Vec::new();
            for _ in 0..args.clients {
                v.push((Arc::new(raw_connection(pki, raw).await?), ()));
            }
            v
        };
        let size = *size;
        let mut row = measure_concurrent(
            "raw quinn download (concurrent)",
            size,
            min,
            raw_clients,
            move |c, ()| async move { raw_download(&c, size).await },
        )
        .await?;
        row.latency = None;
        rows.push(row);
        let last = rows.len() - 2;
        rows[last].ceiling = Some(("raw quinn download (concurrent)", 0.0));
    }
    Ok(rows)
}

/// Raw Ed25519 verification, uncached and cached grant verification.
fn signature_rows(pki: &TestPki, grant: &pki::Grant, min: Duration) -> anyhow::Result<Vec<Row>> {
    let ca = pki.ca.ca_der();
    let node_cert = pki::verify_certificate(&grant.node_cert, &ca, &[], grant.body.not_before)?;
    let message = grant.body.canonical_bytes();
    let resident = pki.identity("resident-1")?;
    let signature = resident.sign(&message);
    let public_key = resident.cert.public_key.clone();
    let mut rows = vec![
        measure_sync("raw ring ed25519 verify", min, || {
            pki::verify_signature(&public_key, &message, &signature).map_err(anyhow::Error::from)
        })?,
        measure_sync("grant verify (chains + signatures)", min, || {
            grant
                .verify(&ca, &[])
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })?,
    ];
    // Full verification is 4 signature checks: 2 certificate chains, consent, seal.
    rows[1].ceiling = Some(("raw ring ed25519 verify", 4.0));
    let resident_cert = pki::parse_certificate(&grant.resident_cert)?;
    let mut sigs = measure_sync("grant signatures (certs known)", min, || {
        grant.body.verify_consent(&grant.consent, &resident_cert)?;
        grant.verify_seal(&node_cert).map_err(anyhow::Error::from)
    })?;
    sigs.ceiling = Some(("raw ring ed25519 verify", 2.0));
    rows.push(sigs);
    let cache = vault_node::rules::grants::GrantCache::default();
    cache
        .verify(grant, &ca, Vec::new)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    rows.push(measure_sync("grant check (cached)", min, || {
        cache
            .verify(grant, &ca, Vec::new)
            .map_err(|e| anyhow::anyhow!("{e}"))
    })?);
    Ok(rows)
}

fn measure_sync(
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
    Ok(Row {
        workload: workload.to_string(),
        size: 0,
        ops,
        elapsed: start.elapsed(),
        latency: None,
        ceiling: None,
    })
}

/// Runs `op` in a loop on every client concurrently for `min`; records
/// every operation's latency.
async fn measure_concurrent<C, G, F, Fut>(
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

/// Durable log appends beside raw synced RocksDB batches; proof generation;
/// `audit verify` throughput over the whole log.
async fn log_suite(
    pki: &TestPki,
    node: &vault_node::node::RunningNode,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    use vault_node::engine::meta::{Cf, MetaStore, Write};
    use vault_node::storage::store::RocksStore;
    let min = Duration::from_millis(args.min_ms);
    let mut rows = Vec::new();
    // Ceiling: synced RocksDB write batches of 64 small puts, one writer.
    let dir = tempfile::tempdir()?;
    let raw = RocksStore::open(dir.path())?;
    let mut n = 0u64;
    let mut row = measure_sync("raw rocksdb synced batch (64 puts)", min, || {
        let writes: Vec<Write> = (0..64)
            .map(|i| {
                n += 1;
                Write::Put {
                    cf: Cf::LogEntries,
                    key: (n * 64 + i).to_be_bytes().to_vec(),
                    value: vec![7u8; 200],
                }
            })
            .collect();
        raw.write(&writes).map_err(anyhow::Error::from)
    })?;
    row.size = 64 * 200;
    rows.push(row);
    rows.push(measure_sync(
        "raw rocksdb synced write (1 put)",
        min,
        || {
            n += 1;
            raw.write(&[Write::Put {
                cf: Cf::LogEntries,
                key: n.to_be_bytes().to_vec(),
                value: vec![7u8; 200],
            }])
            .map_err(anyhow::Error::from)
        },
    )?);
    // Durable appends: 64 concurrent submitters, one log entry per command.
    let ledger = single_ledger(node)?;
    let submitters: Vec<_> = (0..64).map(|_| (ledger.clone(), ())).collect();
    let mut appends = measure_concurrent(
        "durable log appends (64 writers)",
        0,
        min,
        submitters,
        |ledger, ()| async move {
            tokio::task::spawn_blocking(move || {
                ledger.submit(&vault_node::engine::state::Command::RecordRefusal {
                    role: pki::Role::Department,
                    by: pki::Name::parse("bench")?,
                    code: "bench.append".into(),
                    document_id: None,
                    grant_id: None,
                    request_id: None,
                })?;
                anyhow::Ok(())
            })
            .await?
        },
    )
    .await?;
    appends.ceiling = Some(("raw rocksdb synced batch (64 puts)", 1.0 / 64.0));
    rows.push(appends);
    // Fill the log, then proofs and a full audit.
    let size = fill_log(node, args.log_entries).await?;
    let vault = node.vault().clone();
    let store = vault.store();
    let mut i = 0u64;
    rows.push(measure_sync("inclusion proof generation", min, || {
        i = (i * 7919 + 13) % size;
        vault_client::merkle::inclusion_proof(i, size, &mut |s, l| {
            vault_node::engine::log::subtree(store, s, l)
        })
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
    })?);
    let auditor = connect(pki, "auditor", node.addr).await?;
    let state_dir = tempfile::tempdir()?;
    let state = vault_client::audit::AuditState::open(state_dir.path())?;
    let start = Instant::now();
    let report = vault_client::audit::verify(&auditor, &state).await?;
    anyhow::ensure!(
        report.consistent,
        "audit failed: {:?}",
        report.violations.first()
    );
    rows.push(Row {
        workload: "audit verify (entries)".into(),
        size: 0,
        ops: report.entries_checked,
        elapsed: start.elapsed(),
        latency: None,
        ceiling: None,
    });
    Ok(rows)
}

/// Appends refusals until the log holds at least `target` entries.
async fn fill_log(node: &vault_node::node::RunningNode, target: u64) -> anyhow::Result<u64> {
    let vault = node.vault();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (vault, ledger) = (vault.clone(), single_ledger(node)?);
        tasks.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<()> {
                while vault_node::engine::log::size(vault.store())? < target {
                    ledger.submit(&vault_node::engine::state::Command::RecordRefusal {
                        role: pki::Role::Auditor,
                        by: pki::Name::parse("bench")?,
                        code: "bench.fill".into(),
                        document_id: None,
                        grant_id: None,
                        request_id: None,
                    })?;
                }
                Ok(())
            },
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(vault_node::engine::log::size(vault.store())?)
}

/// Fetch latency of one 4 KiB document as the store grows to each of
/// `args.growth` documents (ballast registered through the state machine).
async fn growth_suite(
    pki: &TestPki,
    node: &vault_node::node::RunningNode,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = Duration::from_millis(args.min_ms);
    let civil = connect(pki, "civil-affairs", node.addr).await?;
    let resident = ResidentId::parse("resident-1")?;
    let put = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(4096, 77)),
            &resident,
            &DocumentKind::parse("form")?,
        )
        .await?;
    let model = node
        .vault()
        .document(put.document_id)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rows = Vec::new();
    let mut stored = 1u64;
    for &target in &args.growth {
        stored = fill_documents(node, &model, stored, target).await?;
        let client = Arc::new(connect(pki, "civil-affairs", node.addr).await?);
        let id = put.document_id;
        let mut row = measure_concurrent(
            &format!("fetch latency, {stored} documents"),
            4096,
            min,
            vec![(client, ())],
            move |c, ()| async move {
                c.get_bytes(id, None, None).await?;
                Ok(())
            },
        )
        .await?;
        if rows.is_empty() {
            row.ceiling = None;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Registers copies of `model` (distinct ids, residents and times) until
/// `target` documents are stored; returns the count.
async fn fill_documents(
    node: &vault_node::node::RunningNode,
    model: &vault_node::engine::state::DocumentEntry,
    from: u64,
    target: u64,
) -> anyhow::Result<u64> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(from));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (ledger, next, model) = (single_ledger(node)?, next.clone(), model.clone());
        tasks.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<()> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= target {
                        return Ok(());
                    }
                    let mut entry = model.clone();
                    entry.record.resident = ResidentId::parse(&format!("resident-{}", i % 1000))?;
                    entry.record.issued_at = i as i64;
                    entry.registered_at = i as i64;
                    entry.document_id = entry.record.document_id(&entry.signature);
                    ledger
                        .submit(&vault_node::engine::state::Command::RegisterDocument(entry))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            },
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(target.max(from))
}

/// Peak resident memory (VmHWM) of a node process and of put and get client
/// processes while one large document moves; reported as rows whose size is
/// the document and whose ops column is the peak in KiB.
fn rss_suite(pki: &TestPki, args: &Args) -> anyhow::Result<Vec<Row>> {
    use std::io::{BufRead, BufReader, Write as _};
    use std::process::{Command, Stdio};
    let size = parse_size(&args.rss_size)?;
    let work = tempfile::tempdir()?;
    let source = work.path().join("large.bin");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source)?);
        let chunk = 16 * 1024 * 1024u64;
        for seed in 0..size.div_ceil(chunk) {
            let n = chunk.min(size - seed * chunk) as usize;
            file.write_all(&pseudo_random_bytes(n, seed + 1))?;
        }
    }
    let me = std::env::current_exe()?;
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let mut node = Command::new(&me)
        .args([
            "--child",
            "node",
            &path(pki.identity_dir("node-1")),
            &path(work.path().join("data")),
            &path(pki.crl_path()),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(node.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let addr = line.trim().to_string();
    let run = |argv: Vec<String>| -> anyhow::Result<(u64, String, Duration)> {
        let start = Instant::now();
        let mut child = Command::new(&me)
            .arg("--child")
            .args(&argv)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut peak = 0;
        loop {
            peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(status.success(), "child {argv:?} failed");
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    std::io::Read::read_to_string(&mut stdout, &mut out)?;
                }
                return Ok((peak, out.trim().to_string(), start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let (put_peak, doc, put_time) = run(vec![
        "put".into(),
        path(pki.identity_dir("civil-affairs")),
        addr.clone(),
        path(source.clone()),
    ])?;
    let (get_peak, _, get_time) = run(vec![
        "get".into(),
        path(pki.identity_dir("resident-1")),
        addr,
        doc,
        path(work.path().join("copy.bin")),
    ])?;
    let node_peak = peak_rss_kib(node.id()).unwrap_or(0);
    let _ = node.kill();
    let _ = node.wait();
    // One operation each: MiB/s is the transfer's rate, the peak is in the name.
    let row = |who: &str, kib: u64, elapsed: Duration| Row {
        workload: format!("peak RSS {who}: {} MiB (limit 128)", kib / 1024),
        size,
        ops: 1,
        elapsed,
        latency: None,
        ceiling: None,
    };
    Ok(vec![
        row("node (put+get)", node_peak, put_time + get_time),
        row("put client", put_peak, put_time),
        row("get client", get_peak, get_time),
    ])
}

/// The repair rate: a follower loses its copies of [`REPAIR_BLOBS`] blobs
/// of [`REPAIR_BLOB_BYTES`]; one scrub fetches them back, verified, from
/// its members. Beside it, raw quinn downloads of the same size.
async fn repair_rows(
    nodes: &[vault_node::node::RunningNode],
    follower: usize,
    client: &vault_client::VaultClient,
    raw_client: &quinn::Connection,
    min: Duration,
    started: Instant,
) -> anyhow::Result<Vec<Row>> {
    let resident = ResidentId::parse("resident-1")?;
    let kind = DocumentKind::parse("repair-bench")?;
    let mut hashes = Vec::new();
    for k in 0..REPAIR_BLOBS {
        // Distinct bytes for each blob (nothing deduplicates).
        let mut bytes = pseudo_random_bytes(REPAIR_BLOB_BYTES as usize, 7);
        bytes[..8].copy_from_slice(&k.to_le_bytes());
        let put = client.put_bytes(Arc::new(bytes), &resident, &kind).await?;
        hashes.push(put.content_hash);
    }
    let blobs = nodes[follower].vault().blobs();
    let start = Instant::now();
    while !hashes.iter().all(|h| blobs.contains(h)) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the follower never got its copies"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the background scrub that runs after start finish first, so the
    // one measured here is the only one repairing.
    let quiet = Duration::from_secs(vault_node::replication::repair::SCRUB_FIRST_DELAY_S + 3);
    tokio::time::sleep(quiet.saturating_sub(started.elapsed())).await;
    for hash in &hashes {
        blobs.remove(hash)?;
    }
    let start = Instant::now();
    let counts = nodes[follower].scrub_once().await;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        counts.repaired == REPAIR_BLOBS && counts.failed == 0,
        "the scrub repaired {counts:?}"
    );
    let ceiling = measure(
        "raw quinn download (repair ceiling)",
        REPAIR_BLOB_BYTES,
        min,
        || raw_download(raw_client, REPAIR_BLOB_BYTES),
    )
    .await?;
    let repair = Row {
        workload: format!(
            "repair: {REPAIR_BLOBS} lost copies re-fetched by one scrub ({} MiB)",
            counts.repaired_bytes >> 20
        ),
        size: REPAIR_BLOB_BYTES,
        ops: REPAIR_BLOBS,
        elapsed,
        latency: None,
        ceiling: Some(("raw quinn download (repair ceiling)", 0.0)),
    };
    Ok(vec![ceiling, repair])
}

/// Blobs lost and repaired in the repair measurement.
const REPAIR_BLOBS: u64 = 8;
/// Their size.
const REPAIR_BLOB_BYTES: u64 = 8 << 20;

/// Puts and verified gets of 4 KiB and 1 MiB documents through the leader
/// of a three-node in-process cluster (real QUIC, Raft and RocksDB) beside
/// the same through the single node of `run`; the repair rate; then the
/// time from stopping the leader to the next successful put through a
/// surviving node.
async fn cluster_suite(
    pki: &TestPki,
    single: &vault_node::node::RunningNode,
    raw_client: &quinn::Connection,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = Duration::from_millis(args.min_ms);
    let cluster_pki = TestPki::new()?;
    let started = Instant::now();
    let nodes = start_cluster(&cluster_pki).await?;
    let leader = wait_for_leader(&nodes, None).await?;
    let leader_index = node_index(&nodes, leader)?;
    let three = connect(&cluster_pki, "civil-affairs", nodes[leader_index].addr).await?;
    let mut rows = Vec::new();
    let follower = (0..nodes.len())
        .find(|&i| i != leader_index)
        .context("no follower")?;
    if !args.cluster_throughput_only {
        rows.extend(repair_rows(&nodes, follower, &three, raw_client, min, started).await?);
    }
    let single_addrs = [single.addr];
    let cluster_addrs: Vec<SocketAddr> = if args.cluster_leader_only {
        vec![nodes[leader_index].addr]
    } else {
        nodes.iter().map(|n| n.addr).collect()
    };
    for size_text in &args.cluster_sizes {
        let size = parse_size(size_text)?;
        let base = throughput_rows(pki, &single_addrs, "1-node", size, min).await?;
        let mut clustered =
            throughput_rows(&cluster_pki, &cluster_addrs, "3-node", size, min).await?;
        clustered[0].ceiling = Some(("1-node put (concurrent)", 0.0));
        clustered[1].ceiling = Some(("1-node grant-checked get (concurrent)", 0.0));
        rows.extend(base);
        rows.extend(clustered);
    }
    if args.cluster_throughput_only {
        for node in &nodes {
            node.close();
        }
        return Ok(rows);
    }
    // Failover: a client already connected to a surviving node; stop the
    // leader (close its endpoint, shut its Raft down), then put until one
    // succeeds.
    let survivor = (0..nodes.len())
        .find(|&i| i != leader_index)
        .context("no survivor")?;
    let client = connect(&cluster_pki, "civil-affairs", nodes[survivor].addr).await?;
    let resident = ResidentId::parse("resident-1")?;
    let kind = DocumentKind::parse("bench")?;
    let stopped = &nodes[leader_index];
    let start = Instant::now();
    stopped.close();
    stopped
        .cluster()
        .context("not in cluster mode")?
        .shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut attempt = 0u64;
    let elapsed = loop {
        attempt += 1;
        let bytes = Arc::new(pseudo_random_bytes(4096, 9_000_000 + attempt));
        match client.put_bytes(bytes, &resident, &kind).await {
            Ok(_) => break start.elapsed(),
            Err(e) => anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "no put through a survivor after the leader stopped: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let new_leader = wait_for_leader(&nodes, Some(leader_index)).await?;
    rows.push(Row {
        workload: format!(
            "failover time: {} ms (node-{leader} -> node-{new_leader})",
            elapsed.as_millis()
        ),
        size: 0,
        ops: 1,
        elapsed,
        latency: Some((elapsed, elapsed)),
        ceiling: None,
    });
    for node in &nodes {
        node.close();
    }
    Ok(rows)
}

/// Three in-process cluster members on loopback, node 1 bootstrapping, as
/// in tests/cluster.rs.
async fn start_cluster(pki: &TestPki) -> anyhow::Result<Vec<vault_node::node::RunningNode>> {
    use vault_node::node::{ClusterConfig, NodeConfig};
    let sockets = (0..3)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut members = std::collections::BTreeMap::new();
    for (i, socket) in sockets.iter().enumerate() {
        members.insert(i as u64 + 1, socket.local_addr()?.to_string());
    }
    drop(sockets);
    let mut nodes = Vec::new();
    for (&id, addr) in &members {
        let name = format!("node-{id}");
        if id != 1 {
            pki.issue_node(&name)?;
        }
        nodes.push(
            vault_node::node::start(NodeConfig {
                listen: addr.parse()?,
                data_dir: pki.data_dir(&name),
                identity_dir: pki.identity_dir(&name),
                crl_path: Some(pki.crl_path()),
                purposes_path: Some(pki.purposes_path()?),
                cluster: Some(ClusterConfig {
                    node_id: id,
                    members: members.clone(),
                    bootstrap: id == 1,
                    policy: vault_node::rules::placement::ClusterPolicy::default(),
                }),
            })
            .await?,
        );
    }
    Ok(nodes)
}

/// Waits (up to 30 s) until every node but `skip` names the same leader.
async fn wait_for_leader(
    nodes: &[vault_node::node::RunningNode],
    skip: Option<usize>,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    loop {
        let leaders = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, n)| n.cluster().and_then(|c| c.leader()))
            .collect::<Vec<_>>();
        if let Some(first) = leaders[0] {
            if leaders.iter().all(|l| *l == Some(first)) {
                return Ok(first);
            }
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no agreed leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn node_index(nodes: &[vault_node::node::RunningNode], id: u64) -> anyhow::Result<usize> {
    nodes
        .iter()
        .position(|n| n.cluster().map(|c| c.id()) == Some(id))
        .context("leader is not a member")
}

/// Clients for the cluster suite's throughput rows.
const CLUSTER_CLIENTS: usize = 16;

/// `{label} put (concurrent)` (distinct bytes each time) and `{label}
/// grant-checked get (concurrent)` of `size`-byte documents by
/// [`CLUSTER_CLIENTS`] clients spread over `addrs`, each holding its own
/// grant.
async fn throughput_rows(
    pki: &TestPki,
    addrs: &[SocketAddr],
    label: &str,
    size: u64,
    min: Duration,
) -> anyhow::Result<Vec<Row>> {
    let resident = ResidentId::parse("resident-1")?;
    let kind = DocumentKind::parse(if size > 4096 { "scan" } else { "form" })?;
    let issuer = connect(pki, "civil-affairs", addrs[0]).await?;
    let doc = issuer
        .put_bytes(
            Arc::new(pseudo_random_bytes(size as usize, size)),
            &resident,
            &kind,
        )
        .await?
        .document_id;
    let approver = connect(pki, "resident-1", addrs[0]).await?;
    let mut putters = Vec::new();
    let mut getters = Vec::new();
    for i in 0..CLUSTER_CLIENTS {
        let addr = addrs[i % addrs.len()];
        putters.push((
            Arc::new(connect(pki, "civil-affairs", addr).await?),
            i as u64,
        ));
        let holder = connect(pki, "housing-bureau", addr).await?;
        let request_id = holder
            .request_access(
                &resident,
                pki::RequestScope::Documents(vec![doc]),
                &pki::Purpose::parse("housing-subsidy")?,
                3600,
            )
            .await?;
        let start = Instant::now();
        let view = loop {
            let pending = approver.pending_requests().await?;
            if let Some(view) = pending.into_iter().find(|r| r.request_id == request_id) {
                break view;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(30),
                "request not pending"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let grant = approver
            .approve(approver.approval_body(&view, pki::GRANT_USES_MAX, None)?)
            .await?;
        getters.push((Arc::new(holder), grant.id()));
    }
    settle_disk();
    let ticks = cpu_ticks();
    let payload = Arc::new(pseudo_random_bytes(size as usize, 77));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(size << 20));
    let (put_resident, put_kind) = (resident.clone(), DocumentKind::parse("bench")?);
    let put = measure_concurrent(
        &format!("{label} put (concurrent)"),
        size,
        min,
        putters,
        move |client, _| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut bytes = (*payload).clone();
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            let (resident, kind) = (put_resident.clone(), put_kind.clone());
            async move {
                client.put_bytes(Arc::new(bytes), &resident, &kind).await?;
                Ok(())
            }
        },
    )
    .await?;
    let mut put = put;
    with_cpu(&mut put, ticks);
    settle_disk();
    let ticks = cpu_ticks();
    let get = measure_concurrent(
        &format!("{label} grant-checked get (concurrent)"),
        size,
        min,
        getters,
        move |client, grant| async move {
            let (_, bytes) = client.get_bytes(doc, None, Some(grant)).await?;
            anyhow::ensure!(bytes.len() as u64 == size);
            Ok(())
        },
    )
    .await?;
    let mut get = get;
    with_cpu(&mut get, ticks);
    Ok(vec![put, get])
}

/// Writes every dirty page back (`sync`) so a workload does not pay for
/// the writeback of the one before it (the 1-node and 3-node rows run one
/// after the other on the same disk).
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// CPU time this process (clients and in-process nodes alike) has used, in
/// clock ticks (1/100 s), from /proc/self/stat; 0 where unavailable.
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Appends the CPU used per operation since `since` to the row's name
/// (`name [cpu X ms/op]`); answers the ticks now.
fn with_cpu(row: &mut Row, since: u64) -> u64 {
    let now = cpu_ticks();
    if row.ops > 0 && now > since {
        let ms = (now - since) as f64 * 10.0 / row.ops as f64;
        row.workload = format!("{} [cpu {ms:.2} ms/op]", row.workload);
    }
    now
}

/// Peak resident set (VmHWM) of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The single node's ledger: benchmarks submit commands through it on
/// blocking threads, as the node itself does.
fn single_ledger(
    node: &vault_node::node::RunningNode,
) -> anyhow::Result<Arc<vault_node::consensus::Ledger<Arc<dyn vault_node::engine::meta::MetaStore>>>>
{
    node.consensus()
        .ledger()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the benchmark's node runs a cluster, not a single ledger"))
}
