//! The rss suite: the peak resident memory of a node process and of put
//! and get client processes while one large document (`--rss-size`) moves.
//! The processes are this program again, run with the hidden `--child`
//! argument ([`child`]), so each measures one role alone.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use pki::{DocumentKind, ResidentId};
use tests::fixtures::{wait_sampling_peak_rss, write_large_file};
use tests::{peak_rss_kib, TestPki};

use crate::report::Row;
use crate::{parse_size, Args};

/// The rss suite's child processes: `node IDENTITY DATA CRL`, `put IDENTITY
/// NODE FILE`, `get IDENTITY NODE DOCUMENT_ID OUT`.
pub(crate) async fn child(argv: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize| {
        argv.get(i)
            .map(String::as_str)
            .context("missing child argument")
    };
    match arg(0)? {
        "node" => {
            let node = vault_node::node::start(vault_node::node::NodeConfig {
                witnesses: Vec::new(),
                log_key_path: None,
                listen: "127.0.0.1:0".parse()?,
                identity_dir: arg(1)?.into(),
                data_dir: arg(2)?.into(),
                crl_path: Some(arg(3)?.into()),
                purposes_path: None,
                issuers_path: None,
                cluster: None,
                limits: Default::default(),
                metrics: None,
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

/// Peak resident memory (VmHWM) of a node process and of put and get client
/// processes while one large document moves; reported as rows whose size is
/// the document and whose ops column is the peak in KiB.
pub(crate) fn suite(pki: &TestPki, args: &Args) -> anyhow::Result<Vec<Row>> {
    let size = parse_size(&args.rss_size)?;
    let work = tempfile::tempdir()?;
    let source = work.path().join("large.bin");
    write_large_file(&source, size)?;
    let me = std::env::current_exe()?;
    let (mut node, addr) = spawn_node(&me, pki, work.path())?;
    let (put_peak, doc, put_time) = run_child(
        &me,
        vec![
            "put".into(),
            path(pki.identity_dir("civil-affairs")),
            addr.clone(),
            path(source.clone()),
        ],
    )?;
    let (get_peak, _, get_time) = run_child(
        &me,
        vec![
            "get".into(),
            path(pki.identity_dir("resident-1")),
            addr,
            doc,
            path(work.path().join("copy.bin")),
        ],
    )?;
    let node_peak = peak_rss_kib(node.id()).unwrap_or(0);
    let _ = node.kill();
    let _ = node.wait();
    // One operation each: MiB/s is the transfer's rate, the peak is in the name.
    let row = |who: &str, kib: u64, elapsed: Duration| {
        let workload = format!("peak RSS {who}: {} MiB (limit 128)", kib / 1024);
        Row::new(workload, size, 1, elapsed)
    };
    Ok(vec![
        row("node (put+get)", node_peak, put_time + get_time),
        row("put client", put_peak, put_time),
        row("get client", get_peak, get_time),
    ])
}

/// A path as the child's command line takes it.
fn path(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// Starts `me --child node` with node-1's identity and a data directory in
/// `work`; answers the process and the address it printed.
fn spawn_node(me: &Path, pki: &TestPki, work: &Path) -> anyhow::Result<(Child, String)> {
    let mut node = Command::new(me)
        .args([
            "--child",
            "node",
            &path(pki.identity_dir("node-1")),
            &path(work.join("data")),
            &path(pki.crl_path()),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(node.stdout.take().context("no stdout")?).read_line(&mut line)?;
    Ok((node, line.trim().to_string()))
}

/// Runs `me --child ARGV` to its end, sampling its peak resident set;
/// answers the peak in KiB, what it printed, and how long it ran.
fn run_child(me: &Path, argv: Vec<String>) -> anyhow::Result<(u64, String, Duration)> {
    let start = Instant::now();
    let mut child = Command::new(me)
        .arg("--child")
        .args(&argv)
        .stdout(Stdio::piped())
        .spawn()?;
    let (status, peak) = wait_sampling_peak_rss(&mut child, Duration::from_millis(10))?;
    anyhow::ensure!(status.success(), "child {argv:?} failed");
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    Ok((peak, out.trim().to_string(), start.elapsed()))
}
