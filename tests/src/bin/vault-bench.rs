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
}

/// One measured workload.
struct Row {
    workload: String,
    size: u64,
    ops: u64,
    elapsed: Duration,
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
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let node = start_node(&pki).await?;
    let raw = start_raw_server(&pki).await?;
    let dept = connect(&pki, "civil-affairs", node.addr).await?;
    let raw_client = raw_connection(&pki, raw).await?;
    let min = Duration::from_millis(args.min_ms);
    let mut rows = Vec::new();
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
    })
}

fn report(args: &Args, rows: &[Row]) {
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| json!({"workload": r.workload, "size": r.size, "ops": r.ops,
                "seconds": r.elapsed.as_secs_f64(), "ops_per_s": r.ops_per_s(), "mib_per_s": r.mib_per_s()}))
            .collect();
        println!("{}", json!({"results": items}));
        return;
    }
    println!(
        "{:<22} {:>10} {:>8} {:>12} {:>12} {:>10}",
        "workload", "size", "ops", "ops/s", "MiB/s", "vs raw"
    );
    for r in rows {
        let ceiling = match r.workload.as_str() {
            "vault put" => rows
                .iter()
                .find(|c| c.size == r.size && c.workload == "raw quinn upload"),
            "vault verified get" => rows
                .iter()
                .find(|c| c.size == r.size && c.workload == "raw quinn download"),
            _ => None,
        };
        let ratio = ceiling
            .map(|c| format!("{:.2}x", r.mib_per_s() / c.mib_per_s()))
            .unwrap_or_default();
        println!(
            "{:<22} {:>10} {:>8} {:>12.1} {:>12.1} {:>10}",
            r.workload,
            r.size,
            r.ops,
            r.ops_per_s(),
            r.mib_per_s(),
            ratio
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
