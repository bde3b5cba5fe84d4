//! End-to-end stories with real processes: a `vault-node` process and the
//! `vault` command line, as department systems script it.

use std::path::Path;
use std::time::Duration;

use tests::fixtures::{wait_sampling_peak_rss, write_large_file};
use tests::{
    files_under, peak_rss_kib, pseudo_random_bytes, vault_cli, vault_command, vault_put,
    NodeProcess, TestPki,
};

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_256_mib_document_put_by_two_departments_is_stored_once_and_fetched_verified() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("scan.tiff");
    let data = pseudo_random_bytes(256 * 1024 * 1024, 42);
    write_file(&source, &data);
    let expected_hash = blake3::hash(&data).to_hex().to_string();
    drop(data);

    let civil = vault_put(
        &pki,
        "civil-affairs",
        node.addr,
        &source,
        "resident-1",
        "land-survey",
    )
    .unwrap();
    assert!(civil.success, "{civil:?}");
    assert_eq!(civil.json["content_hash"], expected_hash.as_str());
    assert_eq!(civil.json["size"], 256 * 1024 * 1024);
    assert_eq!(civil.json["deduplicated"], false);
    let doc_civil = civil.json["document_id"].as_str().unwrap().to_string();

    let housing = vault_put(
        &pki,
        "housing-bureau",
        node.addr,
        &source,
        "resident-1",
        "land-survey",
    )
    .unwrap();
    assert!(housing.success, "{housing:?}");
    assert_eq!(housing.json["deduplicated"], true);
    assert_ne!(housing.json["document_id"].as_str().unwrap(), doc_civil);

    // Stored once: one blob file, about the document's size.
    let blobs = files_under(&pki.data_dir("node-1").join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let stored = std::fs::metadata(&blobs[0]).unwrap().len();
    assert!(
        stored < 256 * 1024 * 1024 + 2 * 1024 * 1024,
        "stored {stored}"
    );

    // The resident fetches it; bytes and hash match independently.
    let out = work.path().join("copy.tiff");
    let got = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["get", &doc_civil, "-o", out.to_str().unwrap()],
    )
    .unwrap();
    assert!(got.success, "{got:?}");
    assert_eq!(got.json["document_id"], doc_civil.as_str());
    assert_eq!(got.json["content_hash"], expected_hash.as_str());
    assert_eq!(got.json["size"], 256 * 1024 * 1024);
    assert_eq!(got.json["issuer"], "civil-affairs");
    let copy = std::fs::read(&out).unwrap();
    assert_eq!(blake3::hash(&copy).to_hex().as_str(), expected_hash);
    assert!(std::fs::read(&source).unwrap() == copy);
}

#[test]
fn only_the_issuer_and_the_resident_may_get_and_refusals_leave_no_file() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("marriage.pdf");
    write_file(&source, &pseudo_random_bytes(70_000, 3));
    let put = vault_put(
        &pki,
        "civil-affairs",
        node.addr,
        &source,
        "resident-1",
        "marriage-certificate",
    )
    .unwrap();
    assert!(put.success, "{put:?}");
    let doc = put.json["document_id"].as_str().unwrap().to_string();

    let outdir = tempfile::tempdir().unwrap();
    for who in ["civil-affairs", "resident-1"] {
        let out = outdir.path().join(format!("{who}.pdf"));
        let got = vault_cli(
            &pki.identity_dir(who),
            node.addr,
            &["get", &doc, "-o", out.to_str().unwrap()],
        )
        .unwrap();
        assert!(got.success, "{who}: {got:?}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&source).unwrap()
        );
    }
    let refused_dir = tempfile::tempdir().unwrap();
    for who in ["housing-bureau", "resident-2", "auditor"] {
        let out = refused_dir.path().join("stolen.pdf");
        let got = vault_cli(
            &pki.identity_dir(who),
            node.addr,
            &["get", &doc, "-o", out.to_str().unwrap()],
        )
        .unwrap();
        assert!(!got.success, "{who} was served");
        assert_eq!(
            got.json["error"]["code"], "auth.forbidden",
            "{who}: {got:?}"
        );
        assert!(got.json["error"]["message"].as_str().unwrap().len() > 10);
        assert!(
            files_under(refused_dir.path()).is_empty(),
            "{who} left a file"
        );
    }
    let missing = vault_cli(
        &pki.identity_dir("civil-affairs"),
        node.addr,
        &[
            "get",
            "00000000000000000000000000000000",
            "-o",
            refused_dir.path().join("x").to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(missing.json["error"]["code"], "document.not_found");
    assert!(files_under(refused_dir.path()).is_empty());

    // Listing: the resident sees theirs; another department sees none it did not issue.
    let listed = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["list", "--resident", "resident-1"],
    )
    .unwrap();
    assert_eq!(listed.json["documents"].as_array().unwrap().len(), 1);
    assert_eq!(listed.json["documents"][0]["document_id"], doc.as_str());
    let other = vault_cli(
        &pki.identity_dir("tax-office"),
        node.addr,
        &["list", "--resident", "resident-1"],
    )
    .unwrap();
    assert!(other.success);
    assert_eq!(other.json["documents"].as_array().unwrap().len(), 0);
    let nosy = vault_cli(
        &pki.identity_dir("resident-2"),
        node.addr,
        &["list", "--resident", "resident-1"],
    )
    .unwrap();
    assert_eq!(nosy.json["error"]["code"], "auth.forbidden");
}

#[test]
fn ranges_and_resumed_downloads_are_verified() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("records.bin");
    let data = pseudo_random_bytes(5 * 1024 * 1024 + 123, 8);
    write_file(&source, &data);
    let put = vault_put(
        &pki,
        "tax-office",
        node.addr,
        &source,
        "resident-2",
        "tax-return",
    )
    .unwrap();
    let doc = put.json["document_id"].as_str().unwrap().to_string();
    let identity = pki.identity_dir("resident-2");

    // A range.
    let part_out = work.path().join("range.bin");
    let got = vault_cli(
        &identity,
        node.addr,
        &[
            "get",
            &doc,
            "-o",
            part_out.to_str().unwrap(),
            "--range",
            "100000..300001",
        ],
    )
    .unwrap();
    assert!(got.success, "{got:?}");
    assert_eq!(std::fs::read(&part_out).unwrap(), &data[100_000..300_001]);

    // A download interrupted after 2 MiB + a bit resumes from 2 MiB.
    let out = work.path().join("resumed.bin");
    let part = work.path().join("resumed.bin.part");
    std::fs::write(&part, &data[..2 * 1024 * 1024 + 5000]).unwrap();
    let meta = serde_json::json!({"document_id": doc, "content_hash": put.json["content_hash"], "size": data.len(), "full": true});
    std::fs::write(work.path().join("resumed.bin.part.json"), meta.to_string()).unwrap();
    let got = vault_cli(
        &identity,
        node.addr,
        &["get", &doc, "-o", out.to_str().unwrap()],
    )
    .unwrap();
    assert!(got.success, "{got:?}");
    assert_eq!(got.json["resumed_from"], 2 * 1024 * 1024);
    assert!(std::fs::read(&out).unwrap() == data);
    assert!(!part.exists());

    // A damaged local prefix is caught by the final check and discarded.
    let mut bad = data[..1024 * 1024].to_vec();
    bad[10] ^= 1;
    std::fs::write(&part, &bad).unwrap();
    std::fs::write(work.path().join("resumed.bin.part.json"), meta.to_string()).unwrap();
    std::fs::remove_file(&out).unwrap();
    let got = vault_cli(
        &identity,
        node.addr,
        &["get", &doc, "-o", out.to_str().unwrap()],
    )
    .unwrap();
    assert!(!got.success);
    assert_eq!(got.json["error"]["code"], "integrity.corrupt");
    assert!(!out.exists() && !part.exists());
}

#[test]
fn cli_errors_are_json_with_stable_codes() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let missing = vault_put(
        &pki,
        "civil-affairs",
        node.addr,
        std::path::Path::new("/nonexistent/file"),
        "resident-1",
        "x",
    )
    .unwrap();
    assert!(!missing.success);
    assert_eq!(missing.json["error"]["code"], "local.io");
    // Nobody listening.
    let dead = vault_cli(
        &pki.identity_dir("civil-affairs"),
        "127.0.0.1:9".parse().unwrap(),
        &["list", "--resident", "resident-1"],
    )
    .unwrap();
    assert!(!dead.success);
    assert_eq!(dead.json["error"]["code"], "connection.failed");
    // Several nodes: the first that answers is used.
    let nodes = format!("127.0.0.1:9,{}", node.addr);
    let list = ["list", "--resident", "resident-1"];
    let output = vault_command(&pki.identity_dir("resident-1"), &nodes, &list)
        .unwrap()
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

/// Runs the `vault` CLI, sampling its peak RSS until it exits.
fn vault_cli_with_peak_rss(
    identity: &Path,
    node: std::net::SocketAddr,
    args: &[&str],
) -> (bool, u64) {
    let mut child = vault_command(identity, &node.to_string(), args)
        .unwrap()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak) = wait_sampling_peak_rss(&mut child, Duration::from_millis(20)).unwrap();
    (status.success(), peak)
}

#[test]
fn a_1_gib_document_moves_with_node_and_client_under_128_mib() {
    const LIMIT_KIB: u64 = 128 * 1024;
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("archive.bin");
    write_large_file(&source, 1 << 30).unwrap();
    let (ok, put_peak) = vault_cli_with_peak_rss(
        &pki.identity_dir("civil-affairs"),
        node.addr,
        &[
            "put",
            source.to_str().unwrap(),
            "--resident",
            "resident-1",
            "--kind",
            "archive",
        ],
    );
    assert!(ok, "put failed");
    let listed = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["list", "--resident", "resident-1"],
    )
    .unwrap();
    let doc = listed.json["documents"][0]["document_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = work.path().join("copy.bin");
    let (ok, get_peak) = vault_cli_with_peak_rss(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["get", &doc, "-o", out.to_str().unwrap()],
    );
    assert!(ok, "get failed");
    let node_peak = peak_rss_kib(node.child.id()).unwrap();
    eprintln!("peak RSS KiB: node {node_peak}, put client {put_peak}, get client {get_peak}");
    assert!(node_peak < LIMIT_KIB, "node peak RSS {node_peak} KiB");
    assert!(put_peak < LIMIT_KIB, "put client peak RSS {put_peak} KiB");
    assert!(get_peak < LIMIT_KIB, "get client peak RSS {get_peak} KiB");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 1 << 30);
    let (src_hash, _) = vault_client::client::hash_file(&source).unwrap();
    let (out_hash, _) = vault_client::client::hash_file(&out).unwrap();
    assert_eq!(src_hash, out_hash);
}
