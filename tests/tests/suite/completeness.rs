//! Completeness for the resident (`docs/COMPLETENESS.md`) with real node
//! processes and the `vault` command line: a resident's list is proven
//! complete on a normal story; a node that omits one of their entries, gives
//! a wrong salt or writes a broken link is caught by the resident's client
//! (`log.chain_broken`, `log.wrong_salt`, `log.count_mismatch`), and the
//! auditor names a broken link and a checkpoint whose resident index root
//! the log does not give (`index.broken_link`, `index.root_mismatch`).
//! Each fault is made the way it would happen: the node's own RocksDB
//! changed with the store API while it is stopped, or its salt key swapped.

use std::path::Path;

use pki::ResidentId;
use tests::grant_story::{cli_issue_marriage, json_text};
use tests::{vault_cli, CliOutput, GrantStory, NodeProcess, TestPki};
use vault_node::engine::meta::{Cf, MetaStore, Write};
use vault_node::storage::store::RocksStore;

/// civil-affairs issues to resident-1, housing-bureau is granted and
/// fetches twice; answers the document id.
fn story(pki: &TestPki, node: &NodeProcess, work: &Path) -> String {
    let put = cli_issue_marriage(pki, node.addr, work, b"marriage certificate").unwrap();
    let doc = json_text(&put, "document_id").unwrap();
    let grant = GrantStory::new()
        .ttl_s(86_400)
        .max_uses(2)
        .cli_grant(pki, node.addr)
        .unwrap();
    let out = work.join("copy.pdf");
    for _ in 0..2 {
        let got = vault_cli(
            &pki.identity_dir("housing-bureau"),
            node.addr,
            &["get", &doc, "--grant", &grant, "-o", out.to_str().unwrap()],
        )
        .unwrap();
        assert!(got.success, "{got:?}");
    }
    doc
}

fn accesses(pki: &TestPki, node: &NodeProcess, resident: &str, all: bool) -> CliOutput {
    let args: &[&str] = if all {
        &["accesses", "--all"]
    } else {
        &["accesses"]
    };
    let out = vault_cli(&pki.identity_dir(resident), node.addr, args).unwrap();
    assert!(out.success, "{out:?}");
    out
}

fn incomplete_code(out: &CliOutput) -> &str {
    assert_eq!(out.json["complete"], false, "{out:?}");
    out.json["incomplete"]["code"].as_str().unwrap()
}

fn audit(pki: &TestPki, node: &NodeProcess, state: &Path, notes: &[&Path]) -> CliOutput {
    let mut args = vec!["audit", "verify", "--state", state.to_str().unwrap()];
    for note in notes {
        args.extend(["--note", note.to_str().unwrap()]);
    }
    vault_cli(&pki.identity_dir("auditor"), node.addr, &args).unwrap()
}

fn rules(out: &CliOutput) -> Vec<(u64, String)> {
    out.json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["index"].as_u64().unwrap(),
                v["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// resident-1's tag, from the salt the node stored.
fn tag_of(store: &RocksStore, resident: &str) -> [u8; 32] {
    let salt: [u8; 32] = store
        .get(Cf::ResidentSalts, resident.as_bytes())
        .unwrap()
        .unwrap()
        .try_into()
        .unwrap();
    pki::resident_tag(&salt, &ResidentId::parse(resident).unwrap())
}

/// The indexes of the entries with `tag`, from the node's tag index.
fn indexes_of(store: &RocksStore, tag: &[u8; 32]) -> Vec<u64> {
    store
        .scan_from(Cf::LogByTag, tag, 1000)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.starts_with(tag))
        .map(|(k, _)| u64::from_be_bytes(k[32..40].try_into().unwrap()))
        .collect()
}

#[test]
fn a_residents_list_is_proven_complete_and_their_salt_is_the_unique_one() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    let fetches = accesses(&pki, &node, "resident-1", false);
    assert_eq!(fetches.json["accesses"].as_array().unwrap().len(), 2);
    assert_eq!(fetches.json["complete"], true, "{fetches:?}");
    assert!(fetches.json.get("incomplete").is_none());
    let all = accesses(&pki, &node, "resident-1", true);
    assert_eq!(all.json["complete"], true, "{all:?}");
    // A resident never in the log: the index proves their tag is absent.
    let none = accesses(&pki, &node, "resident-2", true);
    assert!(none.json["accesses"].as_array().unwrap().is_empty());
    assert_eq!(none.json["complete"], true, "{none:?}");
    // For people, too.
    let text = std::process::Command::new(tests::bin("vault").unwrap())
        .arg("--identity")
        .arg(pki.identity_dir("resident-1"))
        .arg("--node")
        .arg(node.addr.to_string())
        .arg("accesses")
        .output()
        .unwrap();
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("complete: this is every entry about you in the log"),
        "{text}"
    );
    drop(node);
    // The salt the node stored is the one the district salt key fixes.
    let store = RocksStore::open(&pki.data_dir("node-1").join("db")).unwrap();
    let salt = store
        .get(Cf::ResidentSalts, b"resident-1")
        .unwrap()
        .unwrap();
    let key = pki::SaltSigner::load(&pki.identity_dir("node-1").join(pki::SALT_KEY_FILE)).unwrap();
    let sigma = key.sign(&ResidentId::parse("resident-1").unwrap()).unwrap();
    assert_eq!(salt, pki::salt_from_proof(&sigma).to_vec());
}

#[test]
fn a_node_that_omits_one_of_a_residents_entries_is_caught_by_their_client() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    let before = accesses(&pki, &node, "resident-1", false);
    assert_eq!(before.json["complete"], true, "{before:?}");
    let first_fetch = before.json["accesses"][0]["log_index"].as_u64().unwrap();
    drop(node);

    // The node loses the first fetch from its tag index: it still has the
    // entry (and its tree and resident index count it), but `accesses`
    // finds the resident's entries through that index, so it omits it.
    {
        let store = RocksStore::open(&pki.data_dir("node-1").join("db")).unwrap();
        let tag = tag_of(&store, "resident-1");
        assert!(indexes_of(&store, &tag).contains(&first_fetch));
        let mut key = tag.to_vec();
        key.extend_from_slice(&first_fetch.to_be_bytes());
        store
            .write(&[Write::Delete {
                cf: Cf::LogByTag,
                key,
            }])
            .unwrap();
        assert!(!indexes_of(&store, &tag).contains(&first_fetch));
    }
    let node = NodeProcess::run(&pki).unwrap();
    let after = accesses(&pki, &node, "resident-1", false);
    let shown: Vec<u64> = after.json["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["log_index"].as_u64().unwrap())
        .collect();
    assert!(!shown.contains(&first_fetch), "{after:?}");
    assert_eq!(shown.len(), 1, "{after:?}");
    assert_eq!(incomplete_code(&after), "log.chain_broken");
    assert!(
        after.json["incomplete"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("entry {first_fetch}")),
        "{after:?}"
    );
    // The log itself is intact: the auditor finds nothing wrong.
    let audited = audit(&pki, &node, &work.path().join("audit"), &[]);
    assert!(audited.success, "{audited:?}");
}

#[test]
fn a_wrong_salt_is_caught_by_the_residents_client() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    assert_eq!(
        accesses(&pki, &node, "resident-1", false).json["complete"],
        true
    );
    drop(node);

    // The node signs salts with another key than the district's salt.pub.
    let key_path = pki.identity_dir("node-1").join(pki::SALT_KEY_FILE);
    let (_, pem) = pki::SaltSigner::generate().unwrap();
    std::fs::remove_file(&key_path).unwrap();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .unwrap();
        file.write_all(pem.as_bytes()).unwrap();
    }
    let node = NodeProcess::run(&pki).unwrap();
    for resident in ["resident-1", "resident-2"] {
        let out = accesses(&pki, &node, resident, false);
        assert_eq!(incomplete_code(&out), "log.wrong_salt", "{resident}");
    }
    drop(node);

    // A node without the salt key sends no σ: not provably complete either.
    std::fs::remove_file(&key_path).unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let out = accesses(&pki, &node, "resident-1", false);
    assert_eq!(incomplete_code(&out), "log.wrong_salt");
    assert!(
        out.json["incomplete"]["message"]
            .as_str()
            .unwrap()
            .contains("no salt proof"),
        "{out:?}"
    );
}

#[test]
fn a_broken_link_is_named_by_the_auditor_and_the_residents_client() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    let state = work.path().join("audit");
    assert!(audit(&pki, &node, &state, &[]).success);
    drop(node);

    // The node's record of resident-1's newest entry is set back to their
    // first entry: the next entry it writes for them links past the rest.
    let first = {
        let store = RocksStore::open(&pki.data_dir("node-1").join("db")).unwrap();
        let tag = tag_of(&store, "resident-1");
        let first = indexes_of(&store, &tag)[0];
        let mut key = b"tag_head/".to_vec();
        key.extend_from_slice(&tag);
        assert!(store.get(Cf::Meta, &key).unwrap().is_some());
        let mut value = first.to_be_bytes().to_vec();
        value.extend_from_slice(&1u64.to_be_bytes());
        store
            .write(&[Write::Put {
                cf: Cf::Meta,
                key,
                value,
            }])
            .unwrap();
        first
    };
    let node = NodeProcess::run(&pki).unwrap();
    let put = cli_issue_marriage(&pki, node.addr, work.path(), b"a second certificate").unwrap();
    assert!(put.success, "{put:?}");
    let all = accesses(&pki, &node, "resident-1", true);
    let newest = all.json["accesses"].as_array().unwrap().last().unwrap()["log_index"]
        .as_u64()
        .unwrap();
    assert!(newest > first + 1);
    // The walk from the newest entry reaches prev = 0 after two entries,
    // where the index counts them all.
    assert_eq!(incomplete_code(&all), "log.count_mismatch");
    let audited = audit(&pki, &node, &state, &[]);
    assert!(!audited.success, "{audited:?}");
    assert!(
        rules(&audited).contains(&(newest, "index.broken_link".to_string())),
        "{audited:?}"
    );
}

#[test]
fn the_auditor_names_a_checkpoint_whose_resident_index_root_the_log_does_not_give() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    story(&pki, &node, work.path());
    // The checkpoint resident-1 was shown (and remembered) checks out.
    assert_eq!(
        accesses(&pki, &node, "resident-1", false).json["complete"],
        true
    );
    let remembered = pki
        .identity_dir("resident-1")
        .join("checkpoints")
        .join("trusted.json");
    let state = work.path().join("audit");
    let fine = audit(&pki, &node, &state, &[&remembered]);
    assert!(fine.success, "{fine:?}");
    assert!(rules(&fine).is_empty(), "{fine:?}");

    // A checkpoint over the same entries, signed with the district's log
    // key, whose resident index hides something: what a node would show a
    // resident to make a shorter chain look complete.
    let trusted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&remembered).unwrap()).unwrap();
    let key = pki.log_key().unwrap();
    let real =
        pki::Checkpoint::verify_note(trusted["note"].as_str().unwrap(), &[key.verifier().clone()])
            .unwrap();
    assert!(real.resident_index.is_some());
    let forged = pki::Checkpoint {
        resident_index: Some([7; 32]),
        ..real.clone()
    }
    .sign(&key);
    let file = work.path().join("forged.note");
    std::fs::write(&file, &forged).unwrap();
    let caught = audit(&pki, &node, &state, &[&file]);
    assert!(!caught.success, "{caught:?}");
    assert_eq!(
        rules(&caught),
        vec![(real.size, "index.root_mismatch".to_string())],
        "{caught:?}"
    );
    // A note that does not verify is refused before anything is checked.
    std::fs::write(&file, forged.replacen("\n", "\n1", 1)).unwrap();
    let refused = audit(&pki, &node, &state, &[&file]);
    assert!(!refused.success);
    assert!(
        refused.json["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("pki."),
        "{refused:?}"
    );
}
