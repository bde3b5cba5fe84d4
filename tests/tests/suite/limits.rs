//! Bounded work per caller, against real `vault-node` processes: one caller
//! holding hundreds of stalled uploads and downloads cannot freeze the node
//! for everyone else (issue "Part 2 of 7", finding 1); a caller over its cap
//! is answered `limit.busy` at once; a silent upload or download is cut at
//! the idle deadline (`limit.deadline`) and leaves no temporary file.
//!
//! The stalled streams are opened raw (quinn streams, a signed `Put` and one
//! byte of body, or a `Get` never read), 100 per connection.
//! `VAULT_NODE_BIN` may name another `vault-node` binary (e.g. one built
//! before the limits) to measure it with the same scenario.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pki::{ContentHash, IssueRecord};
use tests::{connect, kind, peak_rss_kib, pseudo_random_bytes, resident, TestPki};
use vault_client::framing::{read_frame, write_frame};
use vault_client::wire::{Request, Response, RESPONSE_FRAME_LEN_MAX};
use vault_client::{transport, DocumentId};

/// Stalled uploads the attacker opens.
const STALLED_UPLOADS: usize = 600;
/// Stalled downloads the attacker opens.
const STALLED_DOWNLOADS: usize = 1000;
/// Streams per attacker connection.
const STREAMS_PER_CONNECTION: usize = 100;
/// Size of the document downloaded without reading, in bytes.
const BIG_DOCUMENT_BYTES: usize = 40 * 1024 * 1024;
/// Longest any other caller's put, get or checkpoint may take, in ms.
const OTHERS_LATENCY_MAX_MS: u128 = 2_000;
/// The node's peak RSS while the attack is held, in KiB (measured 79 MiB;
/// the node before the limits reached 230 MiB with every other caller
/// frozen; docs/OPERATIONS.md gives the bound at the default limits).
const NODE_PEAK_RSS_MAX_KIB: u64 = 160 * 1024;

/// A `vault-node` process, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_bin() -> anyhow::Result<PathBuf> {
    match std::env::var_os("VAULT_NODE_BIN") {
        Some(path) => Ok(PathBuf::from(path)),
        None => tests::bin("vault-node"),
    }
}

/// Starts `vault-node run` for `pki`'s node-1, with `[limits]` `limits`
/// in a configuration file when given (flags otherwise).
fn spawn_node(pki: &TestPki, limits: Option<&str>) -> anyhow::Result<Node> {
    let mut command = Command::new(node_bin()?);
    let (identity, data) = (pki.identity_dir("node-1"), pki.data_dir("node-1"));
    let (crl, purposes) = (pki.crl_path(), pki.purposes_path()?);
    match limits {
        Some(limits) => {
            let path = pki.dir.path().join("node.toml");
            let text = format!(
                "identity = {:?}\ndata = {:?}\nlisten = \"127.0.0.1:0\"\ncrl = {:?}\npurposes = {:?}\n[limits]\n{limits}\n",
                identity, data, crl, purposes
            );
            std::fs::write(&path, text)?;
            command.arg("run").arg("--config").arg(path);
        }
        None => {
            command
                .arg("run")
                .arg("--identity")
                .arg(identity)
                .arg("--data")
                .arg(data);
            command
                .args(["--listen", "127.0.0.1:0"])
                .arg("--crl")
                .arg(crl);
            command.arg("--purposes").arg(purposes);
        }
    }
    let mut child = command
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let started: serde_json::Value = serde_json::from_str(&line).context("no start line")?;
    let addr = started["addr"].as_str().context("no addr")?.parse()?;
    Ok(Node { child, addr })
}

async fn raw_connection(pki: &TestPki, name: &str, addr: SocketAddr) -> quinn::Connection {
    let tls = pki::client_tls_config(&pki.identity(name).unwrap()).unwrap();
    let socket = transport::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut endpoint = transport::endpoint(socket, None).unwrap();
    endpoint.set_default_client_config(transport::client_config(tls).unwrap());
    endpoint.connect(addr, "localhost").unwrap().await.unwrap()
}

/// A stream left open, and the node's first answer on it (`None`: none
/// within the wait).
struct Stalled {
    _streams: (quinn::SendStream, quinn::RecvStream),
    answer: Option<Response>,
    answered_in: Duration,
}

/// A signed put of `announced` bytes, one byte of body, then silence.
async fn stalled_put(connection: quinn::Connection, record: Request) -> Stalled {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let started = Instant::now();
    write_frame(&mut send, &record).await.unwrap();
    let _ = send.write_all(&[0u8]).await;
    let answer = first_answer(&mut recv).await;
    Stalled {
        answered_in: started.elapsed(),
        _streams: (send, recv),
        answer,
    }
}

/// A get whose body is never read.
async fn stalled_get(connection: quinn::Connection, document_id: DocumentId) -> Stalled {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let started = Instant::now();
    let request = Request::Get {
        document_id,
        range: None,
        grant: None,
    };
    write_frame(&mut send, &request).await.unwrap();
    let _ = send.finish();
    let answer = first_answer(&mut recv).await;
    Stalled {
        answered_in: started.elapsed(),
        _streams: (send, recv),
        answer,
    }
}

async fn first_answer(recv: &mut quinn::RecvStream) -> Option<Response> {
    let read = read_frame::<Response>(recv, RESPONSE_FRAME_LEN_MAX);
    match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok(response)) => Some(response),
        _ => None,
    }
}

fn signed_put(pki: &TestPki, who: &str, n: usize, size: u64) -> Request {
    let identity = pki.identity(who).unwrap();
    let record = IssueRecord {
        resident: resident("resident-1"),
        kind: kind("tax-return"),
        content_hash: ContentHash(*blake3::hash(&n.to_be_bytes()).as_bytes()),
        size,
        issued_at: tests::now(),
        issuer: identity.cert.name.clone(),
    };
    let signature = record.sign(&identity);
    Request::Put { record, signature }
}

fn code(answer: &Option<Response>) -> &str {
    match answer {
        Some(Response::Error(body)) => body.code.as_str(),
        Some(_) => "accepted",
        None => "no answer",
    }
}

/// Opens `count` streams with `open`, [`STREAMS_PER_CONNECTION`] per
/// connection, all at once; answers them with the counts of each answer.
async fn open_stalled<F, Fut>(
    pki: &TestPki,
    who: &str,
    addr: SocketAddr,
    count: usize,
    open: F,
) -> Vec<Stalled>
where
    F: Fn(quinn::Connection, usize) -> Fut,
    Fut: std::future::Future<Output = Stalled> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut connection = None;
    for n in 0..count {
        if n % STREAMS_PER_CONNECTION == 0 {
            connection = Some(raw_connection(pki, who, addr).await);
        }
        tasks.spawn(open(connection.clone().unwrap(), n));
    }
    let mut stalled = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        stalled.push(done.unwrap());
    }
    stalled
}

fn tally(stalled: &[Stalled]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for s in stalled {
        *counts.entry(code(&s.answer).to_string()).or_insert(0) += 1;
    }
    counts
}

/// Times `op`, giving up after 30 s.
async fn timed<T, E: std::fmt::Debug>(
    op: impl std::future::Future<Output = Result<T, E>>,
) -> (Duration, Option<T>) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), op).await;
    let value = match result {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => panic!("failed: {e:?}"),
        Err(_) => None,
    };
    (started.elapsed(), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_with_1600_stalled_streams_cannot_freeze_the_node() {
    let started = Instant::now();
    let pki = TestPki::new().unwrap();
    let node = spawn_node(&pki, None).unwrap();
    let pid = node.child.id();
    let attacker = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let big = Arc::new(pseudo_random_bytes(BIG_DOCUMENT_BYTES, 3));
    let big_id = attacker
        .put_bytes(big, &resident("resident-1"), &kind("tax-return"))
        .await
        .unwrap()
        .document_id;
    let dept = connect(&pki, "housing-bureau", node.addr).await.unwrap();
    let theirs = Arc::new(pseudo_random_bytes(100_000, 99));
    let their_id = dept
        .put_bytes(theirs, &resident("resident-2"), &kind("lease"))
        .await
        .unwrap()
        .document_id;

    let uploads = open_stalled(&pki, "civil-affairs", node.addr, STALLED_UPLOADS, {
        let puts: Arc<Vec<Request>> = Arc::new(
            (0..STALLED_UPLOADS)
                .map(|n| signed_put(&pki, "civil-affairs", n, 1 << 20))
                .collect(),
        );
        move |c, n| stalled_put(c, puts[n].clone())
    })
    .await;
    let downloads = open_stalled(
        &pki,
        "civil-affairs",
        node.addr,
        STALLED_DOWNLOADS,
        move |c, _| stalled_get(c, big_id),
    )
    .await;
    let slowest_answer = uploads
        .iter()
        .chain(&downloads)
        .map(|s| s.answered_in)
        .max();
    println!(
        "stalled uploads: {:?}; stalled downloads: {:?}; slowest first answer {:?}",
        tally(&uploads),
        tally(&downloads),
        slowest_answer
    );

    // Everyone else, while all of that is held.
    let res = connect(&pki, "resident-2", node.addr).await.unwrap();
    let auditor = connect(&pki, "auditor", node.addr).await.unwrap();
    let mut worst = Vec::new();
    for round in 0..3u64 {
        let data = Arc::new(pseudo_random_bytes(100_000, 100 + round));
        let (put_took, _) =
            timed(dept.put_bytes(data, &resident("resident-2"), &kind("lease"))).await;
        let (get_took, _) = timed(res.get_bytes(their_id, None, None)).await;
        let (checkpoint_took, _) = timed(auditor.checkpoint()).await;
        println!(
            "round {round}: put {put_took:?}, get {get_took:?}, checkpoint {checkpoint_took:?}"
        );
        worst.extend([put_took, get_took, checkpoint_took]);
    }
    let peak_kib = peak_rss_kib(pid).unwrap();
    println!(
        "node peak RSS {} MiB; test took {:?}",
        peak_kib / 1024,
        started.elapsed()
    );
    let worst = worst.into_iter().max().unwrap();
    assert!(
        worst.as_millis() < OTHERS_LATENCY_MAX_MS,
        "another caller waited {worst:?}"
    );
    assert!(
        peak_kib < NODE_PEAK_RSS_MAX_KIB,
        "node peak RSS {peak_kib} KiB"
    );
    // Over its caps, the attacker was told so at once, never left hanging.
    let limits = vault_node::rules::limits::Limits::default();
    let up = tally(&uploads);
    assert_eq!(
        up.get("accepted").copied().unwrap_or(0),
        limits.uploads_per_caller
    );
    assert_eq!(
        up.get("limit.busy").copied().unwrap_or(0),
        STALLED_UPLOADS - limits.uploads_per_caller
    );
    let down = tally(&downloads);
    assert_eq!(
        down.get("accepted").copied().unwrap_or(0),
        limits.downloads_per_caller
    );
    // A caller that never reads its accepted downloads fills its own
    // connections' flow-control windows with their pieces; a refusal queued
    // behind them on the same connection then waits with them (seen: 3 of
    // 984 under a loaded test run). That stalls only this caller's own
    // connection, never the node or anyone else (asserted above).
    let busy = down.get("limit.busy").copied().unwrap_or(0);
    let unanswered = down.get("no answer").copied().unwrap_or(0);
    assert_eq!(
        busy + unanswered,
        STALLED_DOWNLOADS - limits.downloads_per_caller,
        "{down:?}"
    );
    assert!(unanswered <= STALLED_DOWNLOADS / 100, "{down:?}");
}

#[tokio::test]
async fn a_caller_over_its_cap_is_told_limit_busy_at_once() {
    let pki = TestPki::new().unwrap();
    let node = spawn_node(
        &pki,
        Some("uploads_per_caller = 2\nrequests_per_caller = 3"),
    )
    .unwrap();
    let connection = raw_connection(&pki, "civil-affairs", node.addr).await;
    let mut held = Vec::new();
    for n in 0..2 {
        let stalled = stalled_put(
            connection.clone(),
            signed_put(&pki, "civil-affairs", n, 1000),
        )
        .await;
        assert!(matches!(
            stalled.answer,
            Some(Response::SendBody { send: true })
        ));
        held.push(stalled);
    }
    let third = stalled_put(
        connection.clone(),
        signed_put(&pki, "civil-affairs", 2, 1000),
    )
    .await;
    assert_eq!(code(&third.answer), "limit.busy");
    assert!(
        third.answered_in < Duration::from_secs(1),
        "{:?}",
        third.answered_in
    );
    match &third.answer {
        Some(Response::Error(body)) => assert!(body.message.contains("retry"), "{}", body.message),
        other => panic!("{other:?}"),
    }
    // Another department's upload is not affected.
    let other = raw_connection(&pki, "tax-office", node.addr).await;
    let theirs = stalled_put(other, signed_put(&pki, "tax-office", 3, 1000)).await;
    assert!(matches!(
        theirs.answer,
        Some(Response::SendBody { send: true })
    ));
    // A place given back is taken again.
    held.pop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = stalled_put(connection, signed_put(&pki, "civil-affairs", 4, 1000)).await;
    assert!(
        matches!(again.answer, Some(Response::SendBody { send: true })),
        "{:?}",
        code(&again.answer)
    );
}

#[tokio::test]
async fn a_silent_upload_or_download_is_cut_at_the_idle_deadline() {
    let pki = TestPki::new().unwrap();
    let node = spawn_node(&pki, Some("idle_s = 1")).unwrap();
    let client = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let data = Arc::new(pseudo_random_bytes(20 * 1024 * 1024, 5));
    let id = client
        .put_bytes(data, &resident("resident-1"), &kind("tax-return"))
        .await
        .unwrap()
        .document_id;

    let connection = raw_connection(&pki, "civil-affairs", node.addr).await;
    let mut upload = stalled_put(
        connection.clone(),
        signed_put(&pki, "civil-affairs", 9, 1 << 20),
    )
    .await;
    assert!(matches!(
        upload.answer,
        Some(Response::SendBody { send: true })
    ));
    let started = Instant::now();
    let cut = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame::<Response>(&mut upload._streams.1, RESPONSE_FRAME_LEN_MAX),
    )
    .await
    .expect("the silent upload was not cut within 5 s")
    .unwrap();
    match cut {
        Response::Error(body) => assert_eq!(body.code.as_str(), "limit.deadline"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_temporary_file(&pki.data_dir("node-1"));

    // A get never read is reset once the node has waited the idle
    // deadline for the client to take more.
    let mut download = stalled_get(connection.clone(), id).await;
    assert!(matches!(download.answer, Some(Response::Document { .. })));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rest = download._streams.1.read_to_end(64 * 1024 * 1024).await;
    assert!(rest.is_err(), "a stalled download was served to the end");
    // The node still serves.
    client.get_bytes(id, None, None).await.unwrap();
}

fn assert_no_temporary_file(data: &Path) {
    let left = tests::files_under(&data.join("tmp"));
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
