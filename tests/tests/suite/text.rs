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

/// Ctrl-C in the middle of a download says where the verified bytes are
/// and how to go on (`local.interrupted`), keeps them in `FILE.part`, and
/// the same command run again resumes from them.
#[test]
fn ctrl_c_during_a_get_keeps_the_bytes_and_says_how_to_resume() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("vehicle-records.bin");
    tests::fixtures::write_large_file(&file, 256 * 1024 * 1024).unwrap();
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
    let doc = put.json["document_id"].as_str().unwrap().to_string();
    let out = work.path().join("copy.bin");
    let part = work.path().join("copy.bin.part");
    let args = ["get", doc.as_str(), "-o", out.to_str().unwrap()];
    let child = tests::vault_command(
        &pki.identity_dir("resident-1"),
        &node.addr.to_string(),
        &args,
    )
    .unwrap()
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Interrupt once some bytes are in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1024 * 1024 {
        assert!(std::time::Instant::now() < deadline, "no bytes arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "{output:?}");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(answer["error"]["code"], "local.interrupted", "{answer}");
    assert!(
        message.contains("copy.bin.part") && message.contains("run the same command again"),
        "{answer}"
    );
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && !out.exists());
    let resumed = tests::vault_cli(&pki.identity_dir("resident-1"), node.addr, &args).unwrap();
    assert!(resumed.success, "{resumed:?}");
    assert!(
        resumed.json["resumed_from"].as_u64().unwrap() > 0,
        "{resumed:?}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&file).unwrap(),
        "the resumed copy is the document"
    );
}
