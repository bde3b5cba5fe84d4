//! The README walkthrough, command for command, against `vault-node dev
//! --nodes 3`: the `vault` CLI is given an identity and no `--node` (the
//! dev identities' `nodes` file lists all three nodes), exactly as the
//! README runs it. Then the node on the first port, the one every command
//! tries first, is killed with SIGKILL and the whole walkthrough runs
//! again, unchanged, on the two that are left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use tests::cluster::{alive, eventually};
use tests::dev::DevCluster;

/// One `vault` run: exit success and the JSON it printed.
struct Run {
    ok: bool,
    json: Value,
}

/// Runs `vault --identity IDS/WHO --json ARGS` in `cwd`, with no `--node`
/// and no `VAULT_NODE`, as the README does.
fn vault(cwd: &Path, ids: &Path, who: &str, args: &[&str]) -> Run {
    let output = std::process::Command::new(tests::bin("vault").unwrap())
        .current_dir(cwd)
        .env_remove("VAULT_NODE")
        .env_remove("VAULT_IDENTITY")
        .arg("--identity")
        .arg(ids.join(who))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "vault {args:?} as {who} printed non-JSON ({e}): {stdout:?}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run {
        ok: output.status.success(),
        json,
    }
}

/// Runs a step that must succeed; answers its JSON.
fn ok(cwd: &Path, ids: &Path, who: &str, args: &[&str]) -> Value {
    let run = vault(cwd, ids, who, args);
    assert!(run.ok, "vault {args:?} as {who} failed: {}", run.json);
    run.json
}

/// Runs a step that must be refused with `code`, leaving no `output` file.
fn refused(cwd: &Path, ids: &Path, who: &str, args: &[&str], code: &str, output: &str) {
    let run = vault(cwd, ids, who, args);
    assert!(!run.ok, "vault {args:?} as {who} succeeded: {}", run.json);
    assert_eq!(run.json["error"]["code"], code, "{}", run.json);
    assert!(!cwd.join(output).exists(), "{output} was left behind");
    assert!(!cwd.join(format!("{output}.part")).exists());
}

/// `get DOCUMENT --grant GRANT` as `who` must be refused with `code`,
/// leaving no output file.
fn refused_get(cwd: &Path, ids: &Path, who: &str, (doc, grant): (&str, &str), code: &str) {
    let out = format!("refused-{code}.pdf");
    let args = ["get", doc, "--grant", grant, "-o", &out];
    refused(cwd, ids, who, &args, code, &out);
}

/// The README's walkthrough, once, with `marriage.pdf` holding `content`.
/// Answers how many entries the auditor verified.
fn walkthrough(cwd: &Path, ids: &Path, content: &str) -> u64 {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap().to_string();
    std::fs::write(cwd.join("marriage.pdf"), content).unwrap();
    for file in [
        "copy.pdf",
        "head.bin",
        "copy1.pdf",
        "copy2.pdf",
        "grant.json",
    ] {
        let _ = std::fs::remove_file(cwd.join(file));
    }
    let put = [
        "put",
        "marriage.pdf",
        "--resident",
        "resident-1",
        "--kind",
        "marriage-certificate",
    ];
    let first = ok(cwd, ids, "civil-affairs", &put);
    assert_eq!(first["deduplicated"], false, "{first}");
    assert_eq!(first["size"], content.len() as u64);
    refused(
        cwd,
        ids,
        "tax-office",
        &put,
        "document.issuer_not_authorized",
        "marriage.pdf.none",
    );
    let again = ok(cwd, ids, "civil-affairs", &put);
    assert_eq!(again["deduplicated"], true, "{again}");
    assert_eq!(again["content_hash"], first["content_hash"]);
    let doc = text(&first, "document_id");

    let listed = ok(
        cwd,
        ids,
        "resident-1",
        &["list", "--resident", "resident-1"],
    );
    let docs = listed["documents"].as_array().unwrap();
    assert!(docs.iter().any(|d| d["document_id"] == doc.as_str()));
    let got = ok(cwd, ids, "resident-1", &["get", &doc, "-o", "copy.pdf"]);
    assert_eq!(got["issuer"], "civil-affairs");
    assert_eq!(
        std::fs::read_to_string(cwd.join("copy.pdf")).unwrap(),
        content
    );
    refused(
        cwd,
        ids,
        "housing-bureau",
        &["get", &doc, "-o", "stolen.pdf"],
        "auth.forbidden",
        "stolen.pdf",
    );
    ok(
        cwd,
        ids,
        "resident-1",
        &["get", &doc, "-o", "head.bin", "--range", "0..16"],
    );
    assert_eq!(
        std::fs::read(cwd.join("head.bin")).unwrap(),
        &content.as_bytes()[..16]
    );

    // Consent and grants: the kind resolves to this round's document (the
    // resident's newest marriage certificate).
    let request = [
        "request",
        "--resident",
        "resident-1",
        "--kinds",
        "marriage-certificate",
        "--purpose",
        "housing-subsidy",
        "--ttl",
        "30d",
    ];
    let asked = ok(cwd, ids, "housing-bureau", &request);
    let request_id = text(&asked, "request_id");
    let pending = ok(cwd, ids, "resident-1", &["requests"]);
    let pending = pending["requests"].as_array().unwrap();
    assert!(pending
        .iter()
        .any(|r| r["request_id"] == request_id.as_str()));
    let approved = ok(
        cwd,
        ids,
        "resident-1",
        &["approve", &request_id, "--max-uses", "2"],
    );
    let grant = text(&approved, "grant_id");
    // As the README says: from here on DOCUMENT_ID is the approved
    // document (the newest marriage certificate: civil-affairs' second
    // issue of the same bytes, a second document sharing the blob).
    let doc = text(&approved["documents"][0], "document_id");
    assert_eq!(
        approved["documents"][0]["content_hash"],
        first["content_hash"]
    );
    for copy in ["copy1.pdf", "copy2.pdf"] {
        ok(
            cwd,
            ids,
            "housing-bureau",
            &["get", &doc, "--grant", &grant, "-o", copy],
        );
        assert_eq!(std::fs::read_to_string(cwd.join(copy)).unwrap(), content);
    }
    refused_get(
        cwd,
        ids,
        "housing-bureau",
        (&doc, &grant),
        "grant.exhausted",
    );
    refused_get(
        cwd,
        ids,
        "civil-affairs",
        (&doc, &grant),
        "grant.holder_mismatch",
    );

    // Revocation.
    let asked = ok(cwd, ids, "housing-bureau", &request);
    let other_request = text(&asked, "request_id");
    let approved = ok(
        cwd,
        ids,
        "resident-1",
        &["approve", &other_request, "--max-uses", "2"],
    );
    let other_grant = text(&approved, "grant_id");
    let revoked = ok(cwd, ids, "resident-1", &["revoke", &other_grant]);
    assert_eq!(revoked["revoked"], true);
    refused_get(
        cwd,
        ids,
        "housing-bureau",
        (&doc, &other_grant),
        "grant.revoked",
    );
    for who in ["resident-1", "housing-bureau"] {
        let grants = ok(cwd, ids, who, &["grants"]);
        let grants = grants["grants"].as_array().unwrap();
        let mine = grants.iter().find(|g| g["grant_id"] == grant.as_str());
        assert_eq!(mine.unwrap()["uses"], 2, "{who}: {grants:?}");
    }

    // Offline grant verification.
    ok(
        cwd,
        ids,
        "housing-bureau",
        &["grant", "show", &grant, "-o", "grant.json"],
    );
    let verified = ok(cwd, ids, "auditor", &["grant", "verify", "grant.json"]);
    assert_eq!(verified["valid_signatures"], true, "{verified}");
    assert_eq!(verified["window"], "valid");

    // The log: the auditor verifies it (with the state kept between rounds,
    // so the second round also checks the log only grew, whichever node
    // signed), the resident sees the two fetches, and proofs check out.
    let audit = ok(
        cwd,
        ids,
        "auditor",
        &["audit", "verify", "--state", "audit-state"],
    );
    assert_eq!(audit["violations"], Value::Array(Vec::new()), "{audit}");
    assert_eq!(audit["checkpoint_verified"], true, "{audit}");
    assert_eq!(audit["consistent"], true, "{audit}");
    let accesses = ok(cwd, ids, "resident-1", &["accesses"]);
    let fetches: Vec<&Value> = accesses["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["grant_id"] == grant.as_str())
        .collect();
    assert_eq!(fetches.len(), 2, "{accesses}");
    assert!(fetches.iter().all(|a| a["verified"] == true));
    let index = fetches[1]["log_index"].as_u64().unwrap().to_string();
    let checkpoint = ok(cwd, ids, "auditor", &["audit", "checkpoint"]);
    assert!(checkpoint["tree_size"].as_u64().unwrap() > 0);
    let proof = ok(cwd, ids, "auditor", &["audit", "proof", "--index", &index]);
    assert_eq!(proof["leaf_index"].as_u64().unwrap().to_string(), index);
    let consistency = ok(
        cwd,
        ids,
        "auditor",
        &["audit", "consistency", "--from", "1", "--to", &index],
    );
    assert_eq!(consistency["old_size"], 1);
    audit["entries_checked"].as_u64().unwrap()
}

/// `vault-node status --json` as the auditor, with no `--node`.
fn status(cwd: &Path, ids: &Path) -> Option<Value> {
    let output = std::process::Command::new(tests::bin("vault-node").unwrap())
        .current_dir(cwd)
        .env_remove("VAULT_NODE")
        .args(["status", "--json", "--identity"])
        .arg(ids.join("auditor"))
        .output()
        .unwrap();
    // Exit 3 with the whole report: a member is down (after the kill).
    let down = output.status.code() == Some(3);
    if !output.status.success() && !down {
        return None;
    }
    let status: Value = serde_json::from_slice(&output.stdout).ok()?;
    (!down || status["healthy"] == false).then_some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_unchanged_on_dev_nodes_3_and_after_a_kill() {
    let cwd = tempfile::tempdir().unwrap();
    let data: PathBuf = cwd.path().join(".vault-dev");
    let cluster = DevCluster::start(Some(cwd.path()), &data).unwrap();
    let base = cluster.base;
    for line in &cluster.started {
        assert!(line["addr"].is_string() && line["pid"].is_u64(), "{line}");
    }
    let ids = data.join("identities");
    let cwd = cwd.path();
    eventually("a leader known to the first node", || async {
        status(cwd, &ids)?["leader"].as_u64()
    })
    .await;

    let start = Instant::now();
    let before = walkthrough(cwd, &ids, "marriage certificate of resident-1\n");
    // One status command shows every node: all three hold the blob.
    let all = eventually("every node holding the blob", || async {
        let status = status(cwd, &ids)?;
        let nodes = status["nodes"].as_array()?.clone();
        let held = nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["reachable"] == true && n["blobs_local"].as_u64() >= Some(1));
        held.then_some(nodes)
    })
    .await;
    assert_eq!(all.len(), 3);
    assert_eq!(status(cwd, &ids).unwrap()["policy_agrees"], true);
    eprintln!(
        "walkthrough on three nodes: {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // SIGKILL the node on the first port: every command tries it first.
    let first = cluster
        .pid_listening_on(&format!("127.0.0.1:{base}"))
        .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    eventually(
        "node 1 to die",
        || async move { (!alive(first)).then_some(()) },
    )
    .await;
    eventually("a leader among the two left", || async {
        status(cwd, &ids)?["leader"]
            .as_u64()
            .filter(|leader| *leader != 1)
    })
    .await;
    let start = Instant::now();
    let after = walkthrough(cwd, &ids, "second marriage certificate of resident-1\n");
    eprintln!(
        "walkthrough on two nodes: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(after > before, "the log did not grow: {before} -> {after}");
    // The status of the two left, and node 1 shown unreachable.
    let status = status(cwd, &ids).unwrap();
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{status}");
    assert_eq!(nodes[0]["node_id"], 1);
    assert_eq!(nodes[0]["reachable"], false, "{status}");
    assert!(
        nodes[1..].iter().all(|n| n["reachable"] == true),
        "{status}"
    );
    drop(cluster);
}
