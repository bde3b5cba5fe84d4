//! The `vault` command line's text output (without `--json`), as people
//! at a terminal read it.

use std::process::Command;

use tests::{bin, vault_cli, vault_put, NodeProcess, TestPki};

/// Text output is for people: local times to the minute, sizes and
/// durations in words, tables with headers, accesses as sentences.
#[test]
fn text_output_reads_as_people_write() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("marriage.pdf");
    std::fs::write(&file, "a marriage certificate\n").unwrap();
    assert!(
        vault_put(
            &pki,
            "civil-affairs",
            node.addr,
            &file,
            "resident-1",
            "marriage-certificate"
        )
        .unwrap()
        .success
    );
    let text = |who: &str, args: &[&str]| {
        let output = Command::new(bin("vault").unwrap())
            .env("TZ", "UTC")
            .arg("--identity")
            .arg(pki.identity_dir(who))
            .arg("--node")
            .arg(node.addr.to_string())
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listed = text("resident-1", &["list", "--resident", "resident-1"]);
    let mut lines = listed.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["DOCUMENT", "KIND", "SIZE", "ISSUER", "ISSUED"],
        "{listed}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("marriage-certificate") && row.contains("23 B"),
        "{row}"
    );
    let stamp = row.split("civil-affairs").nth(1).unwrap().trim();
    assert_eq!(stamp.len(), "2026-12-04 11:51".len(), "{row}");
    assert_eq!(&stamp[4..5], "-", "{row}");
    let requested = vault_cli(
        &pki.identity_dir("housing-bureau"),
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
    let request_id = requested.json["request_id"].as_str().unwrap().to_string();
    let pending = text("resident-1", &["requests"]);
    assert!(
        pending.contains("access for 30 days") && !pending.contains("2592000"),
        "{pending}"
    );
    text("resident-1", &["approve", &request_id, "--max-uses", "2"]);
    let grants = vault_cli(&pki.identity_dir("housing-bureau"), node.addr, &["grants"]).unwrap();
    let grant = &grants.json["grants"][0];
    let grant_id = grant["grant_id"].as_str().unwrap().to_string();
    let doc = grant["documents"][0]["document_id"]
        .as_str()
        .unwrap()
        .to_string();
    let copy = work.path().join("copy.pdf");
    let fetched = text(
        "housing-bureau",
        &[
            "get",
            &doc,
            "--grant",
            &grant_id,
            "-o",
            copy.to_str().unwrap(),
        ],
    );
    assert!(
        fetched.contains(&format!("spent use 1 of grant {grant_id}")),
        "{fetched}"
    );
    // A saved grant checks offline with the CA alone: no identity, no node.
    let sealed = work.path().join("grant.json");
    text(
        "housing-bureau",
        &["grant", "show", &grant_id, "-o", sealed.to_str().unwrap()],
    );
    let offline = Command::new(bin("vault").unwrap())
        .env_remove("VAULT_IDENTITY")
        .args(["--json", "grant", "verify"])
        .arg(&sealed)
        .arg("--ca")
        .arg(pki.identity_dir("auditor").join("ca.pem"))
        .output()
        .unwrap();
    assert!(offline.status.success(), "{offline:?}");
    let verdict: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(verdict["valid_signatures"], true, "{verdict}");
    let shown = text("resident-1", &["grants"]);
    assert!(
        shown.starts_with("GRANT") && shown.contains("1 of 2") && shown.contains("active"),
        "{shown}"
    );
    let accesses = text("resident-1", &["accesses"]);
    assert!(
        accesses.contains("housing-bureau fetched marriage-certificate")
            && accesses.contains("for housing-subsidy")
            && accesses.contains("use 1)"),
        "{accesses}"
    );
}
