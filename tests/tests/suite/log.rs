//! The tamper-evident access log with real node processes and the `vault`
//! command line: auditors verify, residents see their accesses, proofs are
//! checked independently, and tampering, forks and crashes are caught.

use std::path::Path;

use pki::Checkpoint;
use tests::grant_story::{cli_issue_marriage, json_text};
use tests::{vault_cli, GrantStory, NodeProcess, TestPki};
use vault_client::merkle;
use vault_node::engine::meta::{Cf, MetaStore, Write};
use vault_node::storage::store::RocksStore;

struct Story {
    doc: String,
    grant: String,
}

/// civil-affairs issues, housing-bureau requests, resident-1 approves with
/// max 2 uses, housing-bureau fetches twice and is refused the third time.
fn story(pki: &TestPki, node: &NodeProcess, work: &Path) -> Story {
    let ids = |n: &str| pki.identity_dir(n);
    let content = b"marriage certificate of resident-1";
    let put = cli_issue_marriage(pki, node.addr, work, content).unwrap();
    let doc = json_text(&put, "document_id").unwrap();
    let grant = GrantStory::new()
        .ttl_s(86_400)
        .max_uses(2)
        .cli_grant(pki, node.addr)
        .unwrap();
    let out = work.join("copy.pdf");
    for _ in 0..2 {
        let got = vault_cli(
            &ids("housing-bureau"),
            node.addr,
            &["get", &doc, "--grant", &grant, "-o", out.to_str().unwrap()],
        )
        .unwrap();
        assert!(got.success, "{got:?}");
    }
    let third = vault_cli(
        &ids("housing-bureau"),
        node.addr,
        &["get", &doc, "--grant", &grant, "-o", out.to_str().unwrap()],
    )
    .unwrap();
    assert_eq!(third.json["error"]["code"], "grant.exhausted");
    Story { doc, grant }
}

fn audit(pki: &TestPki, node: &NodeProcess, state: &Path) -> tests::CliOutput {
    vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "verify", "--state", state.to_str().unwrap()],
    )
    .unwrap()
}

fn hex32(v: &serde_json::Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn auditor_verifies_and_resident_sees_two_fetches_with_proofs() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let s = story(&pki, &node, work.path());
    // The refusal is logged in the background; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));

    let state = work.path().join("audit-state");
    let verified = audit(&pki, &node, &state);
    assert!(verified.success, "{verified:?}");
    assert_eq!(verified.json["consistent"], true);
    assert_eq!(verified.json["violations"].as_array().unwrap().len(), 0);
    let size = verified.json["tree_size"].as_u64().unwrap();
    assert!(size >= 7, "{verified:?}");
    assert_eq!(verified.json["entries_checked"].as_u64().unwrap(), size);

    let accesses = vault_cli(&pki.identity_dir("resident-1"), node.addr, &["accesses"]).unwrap();
    assert!(accesses.success, "{accesses:?}");
    let list = accesses.json["accesses"].as_array().unwrap();
    let fetches: Vec<_> = list
        .iter()
        .filter(|a| a["department"] == "housing-bureau")
        .collect();
    assert_eq!(fetches.len(), 2, "{accesses:?}");
    for (i, f) in fetches.iter().enumerate() {
        assert_eq!(f["purpose"], "housing-subsidy");
        assert_eq!(f["grant_id"], s.grant.as_str());
        assert_eq!(f["document_id"], s.doc.as_str());
        assert_eq!(f["use_number"], i as u64 + 1);
        assert_eq!(f["verified"], true);
    }
    // The list is proven complete: the resident index proof for the tag
    // leads to the checkpoint's signed `resident-index` root, and the chain
    // walked from the head through every entry (not only fetches) ends at
    // prev = 0 after the index's count.
    assert_eq!(accesses.json["complete"], true, "{accesses:?}");
    assert!(accesses.json.get("incomplete").is_none());
    let note = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "checkpoint"],
    )
    .unwrap();
    assert!(
        note.json["note"]
            .as_str()
            .unwrap()
            .contains("\nresident-index "),
        "{note:?}"
    );
    assert_eq!(note.json["resident_index"].as_str().unwrap().len(), 64);
    // resident-2 sees nothing of resident-1.
    let other = vault_cli(
        &pki.identity_dir("resident-2"),
        node.addr,
        &["accesses", "--all"],
    )
    .unwrap();
    assert!(other.json["accesses"].as_array().unwrap().is_empty());
    // A resident never in the log: the salt key's σ fixes the tag they
    // will have, and the index proves it has no entries.
    assert_eq!(other.json["complete"], true, "{other:?}");
    // The refused third fetch is in the log too.
    let all = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["accesses", "--all"],
    )
    .unwrap();
    assert!(
        all.json["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == "grant.exhausted"),
        "{all:?}"
    );
    assert_eq!(all.json["complete"], true, "{all:?}");

    // Proofs, checked here with the RFC 6962 verifier.
    let index = fetches[1]["log_index"].as_u64().unwrap();
    let proof = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["audit", "proof", "--index", &index.to_string()],
    )
    .unwrap();
    assert!(proof.success, "{proof:?}");
    let path: Vec<[u8; 32]> = proof.json["inclusion_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hex32)
        .collect();
    merkle::verify_inclusion(
        index,
        proof.json["tree_size"].as_u64().unwrap(),
        &hex32(&proof.json["leaf_hash"]),
        &path,
        &hex32(&proof.json["root_hash"]),
    )
    .unwrap();
    let consistency = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &[
            "audit",
            "consistency",
            "--from",
            "3",
            "--to",
            &size.to_string(),
        ],
    )
    .unwrap();
    assert!(consistency.success, "{consistency:?}");
    let cpath: Vec<[u8; 32]> = consistency.json["consistency_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hex32)
        .collect();
    merkle::verify_consistency(
        3,
        size,
        &hex32(&consistency.json["old_root"]),
        &hex32(&consistency.json["new_root"]),
        &cpath,
    )
    .unwrap();
    let checkpoint = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "checkpoint"],
    )
    .unwrap();
    // Signed by the district's log key, whose name is the origin.
    assert_eq!(checkpoint.json["origin"], tests::TEST_LOG_ORIGIN);
    assert!(checkpoint.json["note"]
        .as_str()
        .unwrap()
        .contains(&format!("\n\u{2014} {} ", tests::TEST_LOG_ORIGIN)));

    // No resident name anywhere in the public entries.
    drop(node);
    let store = RocksStore::open(&pki.data_dir("node-1").join("db")).unwrap();
    let entries = store.scan_from(Cf::LogEntries, &[], 10_000).unwrap();
    assert_eq!(entries.len() as u64, size);
    for (_, entry) in entries {
        assert!(
            !entry.windows(10).any(|w| w == b"resident-1"),
            "a resident's name is in a log entry"
        );
    }
}

#[test]
fn the_nodes_grant_entries_list_the_grants_documents_and_the_story_verifies() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let s = story(&pki, &node, work.path());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let state = work.path().join("audit-state");
    let verified = audit(&pki, &node, &state);
    assert!(verified.success, "{verified:?}");
    assert_eq!(verified.json["violations"].as_array().unwrap().len(), 0);
    drop(node);

    // The grant_issued entry the node wrote lists the grant's document (a
    // tagged entry, so version 3: version 2's list and the chain link).
    let store = RocksStore::open(&pki.data_dir("node-1").join("db")).unwrap();
    let entries: Vec<(Vec<u8>, pki::LogEntry)> = store
        .scan_from(Cf::LogEntries, &0u64.to_be_bytes(), 1000)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| (bytes.clone(), pki::LogEntry::parse(&bytes).unwrap()))
        .collect();
    let grants: Vec<_> = entries
        .iter()
        .filter(|(_, e)| e.event == pki::LogEvent::GrantIssued)
        .collect();
    assert_eq!(grants.len(), 1);
    let (bytes, grant) = grants[0];
    assert!(bytes.starts_with(pki::LOG_ENTRY_TAG_V3));
    assert_eq!(grant.grant_id.unwrap().to_string(), s.grant);
    let scope: Vec<String> = grant.documents.iter().map(|d| d.to_string()).collect();
    assert_eq!(scope, std::slice::from_ref(&s.doc));
    // Every other entry lists no documents: version 3 with a tag, 1 without.
    assert!(entries
        .iter()
        .filter(|(_, e)| e.event != pki::LogEvent::GrantIssued)
        .all(|(b, e)| e.documents.is_empty()
            && b.starts_with(if e.resident_tag == [0; 32] {
                pki::LOG_ENTRY_TAG_V1
            } else {
                pki::LOG_ENTRY_TAG_V3
            })));
    // Each tagged entry links to the previous one with its tag.
    let mut heads = std::collections::HashMap::new();
    for (i, (_, e)) in entries.iter().enumerate() {
        if e.resident_tag != [0; 32] {
            let due = heads.get(&e.resident_tag).map_or(0, |h| h + 1);
            assert_eq!(e.prev, Some(due), "entry {i}");
            heads.insert(e.resident_tag, i as u64);
        }
    }
    // And the fetches under the grant name that document, so the replay passes them.
    assert!(entries
        .iter()
        .filter(|(_, e)| e.event == pki::LogEvent::Fetch && e.grant_id == grant.grant_id)
        .all(|(_, e)| e.document_id == grant.documents.first().copied()));
}

#[test]
fn a_flipped_byte_in_a_stored_entry_fails_the_audit_naming_it() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    let state = work.path().join("audit-state");
    assert!(audit(&pki, &node, &state).success);
    drop(node);

    // Flip one byte of entry 4 directly in RocksDB.
    {
        let store = RocksStore::open(&pki.data_dir("node-1").join("db")).unwrap();
        let key = 4u64.to_be_bytes();
        let mut value = store.get(Cf::LogEntries, &key).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        store
            .write(&[Write::Put {
                cf: Cf::LogEntries,
                key: key.to_vec(),
                value,
            }])
            .unwrap();
    }
    let node = NodeProcess::run(&pki).unwrap();
    let checkpoint = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "checkpoint"],
    )
    .unwrap();
    assert_eq!(
        checkpoint.json["error"]["code"], "log.corrupt",
        "{checkpoint:?}"
    );
    let failed = audit(&pki, &node, &state);
    assert!(!failed.success, "{failed:?}");
    assert_eq!(failed.json["consistent"], false);
    let violations = failed.json["violations"].as_array().unwrap();
    assert!(
        violations
            .iter()
            .any(|v| v["index"] == 4 && v["rule"] == "entry.changed"),
        "{failed:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v["index"] == 4 && v["rule"] == "log.corrupt"),
        "{failed:?}"
    );
}

#[test]
fn forks_and_inconsistent_checkpoints_are_reported() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log_key = pki.log_key().unwrap();
    let checkpoint = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "checkpoint"],
    )
    .unwrap();
    let size = checkpoint.json["tree_size"].as_u64().unwrap();
    let origin = checkpoint.json["origin"].as_str().unwrap().to_string();

    // A second checkpoint of the same size with another root, signed by the
    // district's log key: a fork.
    for (trusted_size, name) in [(size, "same-size"), (size - 2, "smaller")] {
        let forged = Checkpoint {
            origin: origin.clone(),
            size: trusted_size,
            root: [0x42; 32],
            resident_index: None,
        };
        let note = forged.sign(&log_key);
        let state = work.path().join(name);
        std::fs::create_dir_all(&state).unwrap();
        let trusted = serde_json::json!({"size": trusted_size, "root": hex::encode([0x42; 32]), "note": note});
        std::fs::write(state.join("checkpoint.json"), trusted.to_string()).unwrap();
        let result = audit(&pki, &node, &state);
        assert!(!result.success, "{name}: {result:?}");
        assert_eq!(result.json["consistent"], false, "{name}");
        let rules: Vec<_> = result.json["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["rule"].as_str().unwrap().to_string())
            .collect();
        assert!(rules.contains(&"log.fork".to_string()), "{name}: {rules:?}");
    }
}

#[test]
fn a_fetch_is_in_the_log_even_if_the_node_dies_right_after() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let s = story(&pki, &node, work.path());
    drop(node); // SIGKILL, no shutdown
    let node = NodeProcess::run(&pki).unwrap();
    let accesses = vault_cli(&pki.identity_dir("resident-1"), node.addr, &["accesses"]).unwrap();
    let fetches = accesses.json["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["grant_id"] == s.grant.as_str())
        .count();
    assert_eq!(fetches, 2, "{accesses:?}");
    let state = work.path().join("after-crash");
    assert!(audit(&pki, &node, &state).success);
}

/// Every client remembers: the resident's `vault accesses` keeps the last
/// checkpoint it trusted in the identity directory. Replaced by a forged
/// checkpoint validly signed with the district's log key (as a node that
/// showed the resident another history would have signed it), the next
/// `vault accesses` fails with `log.fork` and both signed checkpoints are
/// kept where the message says.
#[test]
fn a_forged_remembered_checkpoint_is_a_fork_with_both_checkpoints_kept() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    let resident = pki.identity_dir("resident-1");
    let first = vault_cli(&resident, node.addr, &["accesses"]).unwrap();
    assert!(first.success, "{first:?}");
    let trusted = resident.join("checkpoints").join("trusted.json");
    let remembered: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&trusted).unwrap()).unwrap();
    let size = remembered["size"].as_u64().unwrap();
    assert_eq!(Some(size), first.json["tree_size"].as_u64());
    // The auditor's identity remembers too, the same checkpoint format.
    let audited = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "checkpoint"],
    );
    assert!(audited.unwrap().success);
    assert!(pki
        .identity_dir("auditor")
        .join("checkpoints")
        .join("trusted.json")
        .exists());

    for (name, forged_size) in [("same size", size), ("smaller", size - 1)] {
        let forged = Checkpoint {
            origin: tests::TEST_LOG_ORIGIN.into(),
            size: forged_size,
            root: [0x42; 32],
            resident_index: None,
        }
        .sign(&pki.log_key().unwrap());
        let json = serde_json::json!({"size": forged_size, "root": hex::encode([0x42; 32]), "note": forged});
        std::fs::write(&trusted, json.to_string()).unwrap();
        let out = vault_cli(&resident, node.addr, &["accesses"]).unwrap();
        assert!(!out.success, "{name}: {out:?}");
        assert_eq!(out.json["error"]["code"], "log.fork", "{name}: {out:?}");
        let message = out.json["error"]["message"].as_str().unwrap();
        let evidence = std::fs::read_dir(resident.join("checkpoints"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let file = p.file_name().unwrap().to_string_lossy().to_string();
                file.starts_with(&format!("fork-{forged_size}-vs-"))
            })
            .unwrap_or_else(|| panic!("{name}: no evidence folder: {message}"));
        assert!(
            message.contains(&evidence.display().to_string()),
            "{message}"
        );
        let kept = |file: &str| std::fs::read_to_string(evidence.join(file)).unwrap();
        assert_eq!(kept("remembered-checkpoint.note"), forged, "{name}");
        let served = kept("new-checkpoint.note");
        let keys = pki.ca.log_verifiers().unwrap();
        let served = Checkpoint::verify_note(&served, &keys).unwrap();
        assert_ne!(served.root, [0x42; 32]);
        assert!(evidence.join("README.txt").exists());
        // The remembered checkpoint is left as it was.
        let still: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&trusted).unwrap()).unwrap();
        assert_eq!(still["note"], forged);
    }
}
