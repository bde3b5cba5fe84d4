//! Receipts: a resident's (or an auditor's) log entry exported as a C2SP
//! tlog-proof, checked offline with only the district's log keys; a
//! changed entry, proof or checkpoint is refused with a stable code.

use std::process::Command;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use tests::{bin, vault_cli, vault_put, NodeProcess, TestPki};

/// `vault --json receipt verify FILE --log-pub LOG_PUB`, with no identity.
fn verify_offline(file: &std::path::Path, log_pub: &std::path::Path) -> (bool, Value) {
    let output = Command::new(bin("vault").unwrap())
        .env_remove("VAULT_IDENTITY")
        .env_remove("VAULT_NODE")
        .args(["--json", "receipt", "verify"])
        .arg(file)
        .arg("--log-pub")
        .arg(log_pub)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.success(), json)
}

#[test]
fn a_resident_exports_a_receipt_that_verifies_offline_and_a_changed_one_does_not() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("id-card.pdf");
    std::fs::write(&file, "an identity card\n").unwrap();
    let put = vault_put(
        &pki,
        "civil-affairs",
        node.addr,
        &file,
        "resident-1",
        "id-card",
    )
    .unwrap();
    assert!(put.success, "{put:?}");
    let doc = put.json["document_id"].as_str().unwrap().to_string();
    let me = pki.identity_dir("resident-1");
    let copy = work.path().join("copy.pdf");
    let got = vault_cli(&me, node.addr, &["get", &doc, "-o", copy.to_str().unwrap()]).unwrap();
    assert!(got.success, "{got:?}");
    let accesses = vault_cli(&me, node.addr, &["accesses"]).unwrap();
    let index = accesses.json["accesses"][0]["log_index"].as_u64().unwrap();

    let receipt = work.path().join("fetch.tlog-proof");
    let index_text = index.to_string();
    let args = [
        "receipt",
        "export",
        "--index",
        &index_text,
        "-o",
        receipt.to_str().unwrap(),
    ];
    let exported = vault_cli(&me, node.addr, &args).unwrap();
    assert!(exported.success, "{exported:?}");
    // Never overwritten.
    let again = vault_cli(&me, node.addr, &args).unwrap();
    assert!(
        !again.success && again.json["error"]["code"] == "local.io",
        "{again:?}"
    );

    let log_pub = me.join("log.pub");
    let (ok, report) = verify_offline(&receipt, &log_pub);
    assert!(ok, "{report}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["index"], index);
    assert_eq!(report["entry"]["event"], "fetch");
    assert_eq!(report["entry"]["document_id"], doc.as_str());
    assert!(!report["origin"].as_str().unwrap().contains(' '));

    // A changed entry (another use number), a changed proof, a changed
    // checkpoint: each refused.
    let text = std::fs::read_to_string(&receipt).unwrap();
    let extra = text.lines().nth(1).unwrap().strip_prefix("extra ").unwrap();
    let mut entry = BASE64.decode(extra).unwrap();
    let last = entry.len() - 40;
    entry[last] ^= 1;
    let changed_entry = text.replacen(extra, &BASE64.encode(&entry), 1);
    let proof_line = text.lines().nth(3).unwrap().to_string();
    let mut proof = BASE64.decode(&proof_line).unwrap();
    proof[0] ^= 1;
    let changed_proof = text.replacen(&proof_line, &BASE64.encode(&proof), 1);
    let (head, note) = text.split_once("\n\n").unwrap();
    let mut lines: Vec<String> = note.lines().map(str::to_string).collect();
    lines[1] = (lines[1].parse::<u64>().unwrap() + 1).to_string();
    let changed_note = format!("{head}\n\n{}\n", lines.join("\n"));
    for (what, body, code) in [
        ("entry", changed_entry, "receipt.invalid"),
        ("proof", changed_proof, "receipt.invalid"),
        ("checkpoint", changed_note, ""),
    ] {
        let path = work.path().join(format!("changed-{what}.tlog-proof"));
        std::fs::write(&path, body).unwrap();
        let (ok, report) = verify_offline(&path, &log_pub);
        assert!(!ok, "a changed {what} verified: {report}");
        let got = report["error"]["code"].as_str().unwrap_or_default();
        if code.is_empty() {
            assert!(got.starts_with("pki."), "a changed checkpoint: {report}");
        } else {
            assert_eq!(got, code, "a changed {what}: {report}");
        }
    }
    std::fs::write(work.path().join("junk.tlog-proof"), "not a receipt\n").unwrap();
    let (ok, report) = verify_offline(&work.path().join("junk.tlog-proof"), &log_pub);
    assert!(
        !ok && report["error"]["code"] == "receipt.malformed",
        "{report}"
    );

    // An auditor exports any entry; a department none; a resident only
    // their own.
    let auditor = pki.identity_dir("auditor");
    let zero = work.path().join("zero.tlog-proof");
    let out = vault_cli(
        &auditor,
        node.addr,
        &[
            "receipt",
            "export",
            "--index",
            "0",
            "-o",
            zero.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(out.success, "{out:?}");
    assert!(verify_offline(&zero, &log_pub).0);
    let department = pki.identity_dir("housing-bureau");
    let out = vault_cli(
        &department,
        node.addr,
        &[
            "receipt",
            "export",
            "--index",
            "0",
            "-o",
            work.path().join("d.tlog-proof").to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(out.json["error"]["code"], "auth.forbidden", "{out:?}");
    let other = pki.identity_dir("resident-2");
    let out = vault_cli(
        &other,
        node.addr,
        &[
            "receipt",
            "export",
            "--index",
            &index_text,
            "-o",
            work.path().join("o.tlog-proof").to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(out.json["error"]["code"], "auth.forbidden", "{out:?}");
}

/// A department's fetch under a grant: the get names its log entry, the
/// department's client proves it is in the signed log (remembering that
/// checkpoint), and `--receipt` keeps the proof, which verifies offline.
#[test]
fn a_department_keeps_the_receipt_of_its_fetch_and_remembers_the_checkpoint() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("marriage.pdf");
    std::fs::write(&file, "a marriage certificate\n").unwrap();
    let put = vault_put(
        &pki,
        "civil-affairs",
        node.addr,
        &file,
        "resident-1",
        "marriage-certificate",
    )
    .unwrap();
    assert!(put.success, "{put:?}");
    let housing = pki.identity_dir("housing-bureau");
    let asked = vault_cli(
        &housing,
        node.addr,
        &[
            "request",
            "--resident",
            "resident-1",
            "--kinds",
            "marriage-certificate",
            "--purpose",
            "housing-subsidy",
            "--ttl",
            "30d",
        ],
    )
    .unwrap();
    let request_id = asked.json["request_id"].as_str().unwrap().to_string();
    let approved = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["approve", &request_id, "--max-uses", "2"],
    )
    .unwrap();
    assert!(approved.success, "{approved:?}");
    let grant_id = approved.json["grant_id"].as_str().unwrap().to_string();
    let doc = approved.json["documents"][0]["document_id"]
        .as_str()
        .unwrap()
        .to_string();
    let trusted = housing.join("checkpoints").join("trusted.json");
    assert!(!trusted.exists(), "nothing remembered before the fetch");

    let copy = work.path().join("copy.pdf");
    let receipt = work.path().join("fetch.tlog-proof");
    let got = vault_cli(
        &housing,
        node.addr,
        &[
            "get",
            &doc,
            "--grant",
            &grant_id,
            "-o",
            copy.to_str().unwrap(),
            "--receipt",
            receipt.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(got.success, "{got:?}");
    assert_eq!(got.json["logged"], true, "{got:?}");
    let index = got.json["log_index"].as_u64().unwrap();
    assert!(
        trusted.exists(),
        "the department remembers the checkpoint it checked"
    );
    let (ok, report) = verify_offline(&receipt, &housing.join("log.pub"));
    assert!(ok, "{report}");
    assert_eq!(report["index"], index);
    assert_eq!(report["entry"]["event"], "fetch");
    assert_eq!(report["entry"]["grant_id"], grant_id.as_str());
    assert_eq!(report["entry"]["use_number"], 1);
    assert_eq!(report["entry"]["actor"], "housing-bureau");
    // Its own fetch, yes; civil-affairs' issue entry, no.
    let out = vault_cli(
        &housing,
        node.addr,
        &[
            "receipt",
            "export",
            "--index",
            "0",
            "-o",
            work.path().join("x.tlog-proof").to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(out.json["error"]["code"], "auth.forbidden", "{out:?}");
    // An existing receipt file is never overwritten, and refused before
    // the grant's use is spent.
    let again = vault_cli(
        &housing,
        node.addr,
        &[
            "get",
            &doc,
            "--grant",
            &grant_id,
            "-o",
            work.path().join("copy2.pdf").to_str().unwrap(),
            "--receipt",
            receipt.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(again.json["error"]["code"], "local.io", "{again:?}");
    let grants = vault_cli(&housing, node.addr, &["grants"]).unwrap();
    assert_eq!(
        grants.json["grants"][0]["uses"], 1,
        "no use spent by the refused get"
    );
}
