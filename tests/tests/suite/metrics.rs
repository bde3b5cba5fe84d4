//! A `vault-node run --metrics` process scraped under load: `/metrics`
//! parses as Prometheus text (checked by `promtool check metrics` when
//! Debian's `prometheus` package is installed) and counts what the load
//! did; `/healthz` and `/readyz` answer.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tests::http::HttpRequest;
use tests::{connect, kind, path_str, pseudo_random_bytes, resident, NodeProcess, TestPki};

/// Uploads (and fetches) per client, and clients, in the load.
const PUTS_PER_CLIENT: usize = 15;
const CLIENTS: usize = 4;
const DOC_BYTES: usize = 64 * 1024;

fn node_with_metrics(pki: &TestPki) -> (NodeProcess, SocketAddr) {
    let identity = pki.identity_dir("node-1");
    let data = pki.data_dir("node-1");
    let crl = pki.crl_path();
    let purposes = pki.purposes_path().unwrap();
    let issuers = pki.issuers_path().unwrap();
    let args = [
        "run",
        "--identity",
        path_str(&identity).unwrap(),
        "--data",
        path_str(&data).unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--crl",
        path_str(&crl).unwrap(),
        "--purposes",
        path_str(&purposes).unwrap(),
        "--issuers",
        path_str(&issuers).unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ];
    let node = NodeProcess::spawn_with(&args, "warn", Stdio::inherit()).unwrap();
    let metrics = node.started["metrics"]
        .as_str()
        .expect("the start line names the metrics address")
        .parse()
        .unwrap();
    (node, metrics)
}

fn scrape(addr: SocketAddr) -> String {
    let answer = HttpRequest::get(addr, "/metrics").send(addr).unwrap();
    assert_eq!(answer.status, 200);
    let content_type = answer
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    String::from_utf8(answer.body).unwrap()
}

/// `promtool check metrics` on `text`: `None` when promtool is not
/// installed, else its verdict and output.
fn promtool(text: &str) -> Option<(bool, String)> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

/// The value of the sample `series` (name and labels exactly as printed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Every line is a comment or `name{labels} value` with a number.
fn well_formed(text: &str) {
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("vault_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_under_load_and_health_answers() {
    let pki = TestPki::new().unwrap();
    let (node, metrics) = node_with_metrics(&pki);
    let health = HttpRequest::get(metrics, "/healthz").send(metrics).unwrap();
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    let ready = HttpRequest::get(metrics, "/readyz").send(metrics).unwrap();
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );

    // The load, scraped while it runs.
    let done = Arc::new(AtomicBool::new(false));
    let scraper = {
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let mut scrapes = Vec::new();
            while !done.load(Ordering::SeqCst) {
                scrapes.push(scrape(metrics));
                std::thread::sleep(Duration::from_millis(100));
            }
            scrapes
        })
    };
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let dept = connect(&pki, "civil-affairs", node.addr).await.unwrap();
        clients.spawn(async move {
            for i in 0..PUTS_PER_CLIENT {
                let bytes = Arc::new(pseudo_random_bytes(DOC_BYTES, (c * 1000 + i) as u64));
                let out = dept
                    .put_bytes(bytes.clone(), &resident("resident-1"), &kind("scan"))
                    .await
                    .unwrap();
                let (_, got) = dept.get_bytes(out.document_id, None, None).await.unwrap();
                assert_eq!(got, *bytes);
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.unwrap();
    }
    // One refusal, counted by its code.
    let dept = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let missing = vault_client::DocumentId::from_bytes([0; 16]);
    let refused = dept.get_bytes(missing, None, None).await.unwrap_err();
    assert_eq!(refused.code(), "document.not_found");
    done.store(true, Ordering::SeqCst);
    let mut scrapes = scraper.await.unwrap();
    scrapes.push(scrape(metrics));
    assert!(scrapes.len() >= 2, "{} scrapes", scrapes.len());

    let mut checked_by_promtool = false;
    for text in &scrapes {
        well_formed(text);
        if let Some((ok, said)) = promtool(text) {
            assert!(ok, "promtool check metrics: {said}\n{text}");
            checked_by_promtool = true;
        }
    }
    if !checked_by_promtool {
        eprintln!("promtool is not installed: scrapes checked by this test's own parser only");
    }

    let last = scrapes.last().unwrap();
    let n = (CLIENTS * PUTS_PER_CLIENT) as f64;
    assert_eq!(
        sample(last, "vault_requests_total{kind=\"put\",code=\"ok\"}"),
        n
    );
    assert!(sample(last, "vault_requests_total{kind=\"get\",code=\"ok\"}") >= n);
    assert_eq!(
        sample(
            last,
            "vault_requests_total{kind=\"get\",code=\"document.not_found\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(last, "vault_request_duration_seconds_count{kind=\"put\"}"),
        n
    );
    assert!(sample(last, "vault_bytes_received_total") >= n * DOC_BYTES as f64);
    assert!(sample(last, "vault_bytes_sent_total") >= n * DOC_BYTES as f64);
    assert!(sample(last, "vault_commit_batch_commands_count") >= 1.0);
    assert!(sample(last, "vault_fsync_seconds_count{store=\"meta\"}") >= 1.0);
    assert!(sample(last, "vault_fsync_seconds_count{store=\"blob\"}") >= n);
    assert!(sample(last, "vault_log_entries") >= n);
    assert_eq!(sample(last, "vault_ready"), 1.0);
    assert!(sample(last, "vault_disk_free_bytes") > 0.0);
    // The counters only grew between scrapes.
    let puts = |t: &String| {
        t.lines()
            .find_map(|l| l.strip_prefix("vault_requests_total{kind=\"put\",code=\"ok\"} "))
            .map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    for pair in scrapes.windows(2) {
        assert!(puts(&pair[0]) <= puts(&pair[1]));
    }
    drop(node);
}
