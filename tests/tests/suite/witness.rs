//! Witnesses, with real processes: a `vault witness serve` process cosigns the checkpoints of a
//! `vault-node run --witness` process; clients whose identity holds a `witness-policy`
//! requiring it accept those and refuse (`log.witness_missing`) checkpoints of a node without
//! the witness, or while the witness is down; and the witness refuses to cosign a fork signed
//! with the district's own log key.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pki::Checkpoint;
use tests::{bin, path_str, vault_cli, vault_put, NodeProcess, TestPki};
use vault_client::witness::AddCheckpoint;
use vault_client::witness_client::{self, Answer};

const WITNESS_NAME: &str = "witness.test.district.example/w1";

/// A `vault witness serve` process, killed when dropped.
struct WitnessProcess {
    child: Child,
    addr: SocketAddr,
}

impl WitnessProcess {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vault witness init` in `dir`: the witness's vkey.
fn init_witness(dir: &Path) -> String {
    let out = Command::new(bin("vault").unwrap())
        .args(["--json", "witness", "init", "--dir", path_str(dir).unwrap()])
        .args(["--name", WITNESS_NAME])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["vkey"].as_str().unwrap().to_string()
}

fn serve_witness(dir: &Path, log_pub: &Path) -> WitnessProcess {
    let mut child = Command::new(bin("vault").unwrap())
        .args(["witness", "serve", "--dir", path_str(dir).unwrap()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-pub",
            path_str(log_pub).unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = json["addr"].as_str().unwrap().parse().unwrap();
    WitnessProcess { child, addr }
}

/// `vault-node run` for `node-1` with its data in `data_name`, and `--witness` flags.
fn node(pki: &TestPki, data_name: &str, witnesses: &[String]) -> NodeProcess {
    let identity = pki.identity_dir("node-1");
    let data = pki.data_dir(data_name);
    let purposes = pki.purposes_path().unwrap();
    let issuers = pki.issuers_path().unwrap();
    let mut args: Vec<&str> = vec![
        "run",
        "--identity",
        path_str(&identity).unwrap(),
        "--data",
        path_str(&data).unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--purposes",
        path_str(&purposes).unwrap(),
        "--issuers",
        path_str(&issuers).unwrap(),
    ];
    for w in witnesses {
        args.push("--witness");
        args.push(w);
    }
    NodeProcess::spawn(&args).unwrap()
}

fn put(pki: &TestPki, node: &NodeProcess, n: usize) {
    let file = pki.data_dir(&format!("doc-{n}.txt"));
    std::fs::write(&file, format!("document {n}")).unwrap();
    let out = vault_put(
        pki,
        "civil-affairs",
        node.addr,
        &file,
        "resident-1",
        "marriage-certificate",
    )
    .unwrap();
    assert!(out.success, "{:?}", out.json);
}

fn checkpoint(pki: &TestPki, who: &str, node: &NodeProcess) -> tests::CliOutput {
    vault_cli(&pki.identity_dir(who), node.addr, &["audit", "checkpoint"]).unwrap()
}

#[test]
fn witnessed_checkpoints_are_required_by_the_policy_and_forks_are_refused() {
    let pki = TestPki::new().unwrap();
    let witness_dir = pki.data_dir("witness");
    let vkey = init_witness(&witness_dir);
    let verifier = pki::WitnessVerifier::parse(&vkey).unwrap();
    let log_pub = pki.identity_dir("auditor").join(pki::LOG_PUB_FILE);
    let witness = serve_witness(&witness_dir, &log_pub);
    // resident-1 and resident-2 need the witness; the auditor has no policy.
    let policy = pki::WitnessPolicy::requiring_all(std::slice::from_ref(&verifier));
    for who in ["resident-1", "resident-2"] {
        std::fs::write(
            pki.identity_dir(who).join(pki::WITNESS_POLICY_FILE),
            &policy,
        )
        .unwrap();
    }

    // A node with the witness: its checkpoints carry the cosignature, and the policy
    // client takes them as the log grows.
    let witnessed = node(&pki, "node-1", &[format!("{}={vkey}", witness.url())]);
    put(&pki, &witnessed, 1);
    let out = checkpoint(&pki, "resident-1", &witnessed);
    assert!(out.success, "{:?}", out.json);
    let note = out.json["note"].as_str().unwrap().to_string();
    assert!(
        note.contains(&format!("\n\u{2014} {WITNESS_NAME} ")),
        "{note}"
    );
    put(&pki, &witnessed, 2);
    std::thread::sleep(Duration::from_millis(1_100));
    let out = checkpoint(&pki, "resident-1", &witnessed);
    assert!(out.success, "{:?}", out.json);
    let size = out.json["tree_size"].as_u64().unwrap();
    assert!(size >= 2);
    // The accesses view checks the same policy, and a receipt carries the cosignature:
    // `receipt verify` with the policy names the witness.
    let r1 = pki.identity_dir("resident-1");
    let out = vault_cli(&r1, witnessed.addr, &["accesses"]).unwrap();
    assert!(out.success, "{:?}", out.json);
    let receipt = pki.data_dir("entry-0.tlog-proof");
    let export = [
        "receipt",
        "export",
        "--index",
        "0",
        "-o",
        path_str(&receipt).unwrap(),
    ];
    let out = vault_cli(&r1, witnessed.addr, &export).unwrap();
    assert!(out.success, "{:?}", out.json);
    let verify = ["receipt", "verify", path_str(&receipt).unwrap()];
    let out = vault_cli(&r1, witnessed.addr, &verify).unwrap();
    assert!(out.success, "{:?}", out.json);
    assert_eq!(out.json["witnessed_by"], serde_json::json!([WITNESS_NAME]));

    // The witness refuses a fork: the same size with another root, signed with the
    // district's real log key (409, its size), and a larger tree with a proof that does
    // not lead from what it cosigned (422).
    let log_key = pki.log_key().unwrap();
    let forged = |size: u64| {
        Checkpoint {
            origin: log_key.origin().into(),
            size,
            root: [0x5a; 32],
            resident_index: None,
        }
        .sign(&log_key)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let timeout = Duration::from_secs(5);
    let fork = AddCheckpoint {
        old: size,
        proof: vec![],
        note: forged(size),
    };
    assert_eq!(
        rt.block_on(witness_client::add_checkpoint(
            &witness.url(),
            &fork,
            timeout
        ))
        .unwrap(),
        Answer::Conflict(size)
    );
    let longer = AddCheckpoint {
        old: size,
        proof: vec![[7; 32]; 3],
        note: forged(size + 5),
    };
    assert!(matches!(
        rt.block_on(witness_client::add_checkpoint(
            &witness.url(),
            &longer,
            timeout
        ))
        .unwrap(),
        Answer::Refused { status: 422, .. }
    ));
    // A stale `old`: 409 with the size; a note not signed by the log key: 403.
    let stale = AddCheckpoint {
        old: 1,
        ..fork.clone()
    };
    assert_eq!(
        rt.block_on(witness_client::add_checkpoint(
            &witness.url(),
            &stale,
            timeout
        ))
        .unwrap(),
        Answer::Conflict(size)
    );
    let (other_key, _) = pki::generate_log_key(log_key.origin()).unwrap();
    let unsigned = AddCheckpoint {
        note: Checkpoint {
            origin: log_key.origin().into(),
            size,
            root: [1; 32],
            resident_index: None,
        }
        .sign(&other_key),
        ..fork.clone()
    };
    assert!(matches!(
        rt.block_on(witness_client::add_checkpoint(
            &witness.url(),
            &unsigned,
            timeout
        ))
        .unwrap(),
        Answer::Refused { status: 403, .. }
    ));
    let state = std::fs::read_to_string(witness_dir.join("state.json")).unwrap();
    assert!(state.contains(&format!("\"size\": {size}")), "{state}");

    // A node of the same district without the witness: the policy client refuses its
    // checkpoint; a client without a policy takes it.
    let unwitnessed = node(&pki, "node-1-alone", &[]);
    let out = checkpoint(&pki, "resident-2", &unwitnessed);
    assert!(!out.success);
    assert_eq!(
        out.json["error"]["code"], "log.witness_missing",
        "{:?}",
        out.json
    );
    let out = checkpoint(&pki, "auditor", &unwitnessed);
    assert!(out.success, "{:?}", out.json);
    drop(unwitnessed);

    // The witness goes down: the node still answers at once, without the cosignature,
    // and the policy client refuses it.
    drop(witness);
    put(&pki, &witnessed, 3);
    std::thread::sleep(Duration::from_millis(1_100));
    let started = Instant::now();
    let out = checkpoint(&pki, "auditor", &witnessed);
    assert!(out.success, "{:?}", out.json);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.json["note"].as_str().unwrap().contains(WITNESS_NAME));
    let out = checkpoint(&pki, "resident-1", &witnessed);
    assert_eq!(
        out.json["error"]["code"], "log.witness_missing",
        "{:?}",
        out.json
    );
}
