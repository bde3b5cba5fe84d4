//! A full disk, on a small tmpfs volume holding a `vault-node` process's
//! data directory and its stderr (needs root to mount; skipped, saying so,
//! without it):
//!
//! - uploads are refused with `storage.disk_full` while the node still has
//!   its reserve, and a fetch (which writes its log entry first) is served;
//! - once something else fills the disk to the last byte, requests are
//!   refused with `storage.disk_full` (not a lost connection, though the
//!   node's log cannot be written either);
//! - once the operator frees space, uploads and fetches work again without
//!   a restart (ignored: known broken, RocksDB stays in its error state).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::{connect, kind, path_str, pseudo_random_bytes, resident, NodeProcess, TestPki};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a `size_mib` MiB tmpfs, or `None` when not root.
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        if !running_as_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount failed: {status}");
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Writes zeros into `path` until the disk is full; answers the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = file.sync_all();
    written
}

/// A refusal for the full disk: the node answered (its log on the same
/// disk notwithstanding), it did not drop the connection.
fn assert_storage_refusal(e: &vault_client::ClientError) {
    assert!(
        matches!(e.code(), "storage.disk_full" | "storage.failed"),
        "{}: {e}",
        e.code()
    );
}

/// Starts node-1 of `pki` with its data directory and stderr on `volume`.
fn node_on(pki: &TestPki, volume: &Path) -> (NodeProcess, PathBuf) {
    let data = volume.join("data");
    let log = volume.join("node.log");
    let stderr = File::create(&log).unwrap();
    let identity = pki.identity_dir("node-1");
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
    ];
    let node = NodeProcess::spawn_with(&args, "info", Stdio::from(stderr)).unwrap();
    (node, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_cleanly_and_keeps_serving_fetches() {
    full_disk(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known broken: once RocksDB itself hit ENOSPC it stays in its background error after \
            space is freed (the 4 MiB write buffer was not enough); see docs/OPERATIONS.md"]
async fn a_full_disk_recovers_without_a_restart_once_space_is_freed() {
    full_disk(true).await;
}

/// The story; with `recover`, the filler is removed and put and get must
/// work again without a restart.
async fn full_disk(recover: bool) {
    let Some(volume) = Tmpfs::mount(64) else {
        return;
    };
    let pki = TestPki::new().unwrap();
    let (node, _log) = node_on(&pki, volume.path());
    let dept = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let r1 = resident("resident-1");
    let k = kind("scan");

    // Uploads until the node refuses: storage.disk_full, before the disk is.
    let mut stored = Vec::new();
    let refusal = loop {
        let bytes = Arc::new(pseudo_random_bytes(3 << 20, stored.len() as u64));
        match dept.put_bytes(bytes, &r1, &k).await {
            Ok(out) => stored.push(out.document_id),
            Err(e) => break e,
        }
        assert!(
            stored.len() < 40,
            "a 64 MiB volume took {} documents",
            stored.len()
        );
    };
    assert_eq!(refusal.code(), "storage.disk_full", "{refusal}");
    assert!(!stored.is_empty());
    // The reserve: a fetch (its log entry is written first) is still served.
    let (_, got) = dept.get_bytes(stored[0], None, None).await.unwrap();
    assert_eq!(got, pseudo_random_bytes(3 << 20, 0));

    // Something else takes the last byte (the node's log included).
    let filler = volume.path().join("filler");
    fill(&filler);
    for _ in 0..3 {
        let small = Arc::new(pseudo_random_bytes(1000, 99));
        let refused = dept.put_bytes(small, &r1, &k).await.unwrap_err();
        assert_eq!(refused.code(), "storage.disk_full", "{refused}");
        if let Err(e) = dept.get_bytes(stored[0], None, None).await {
            assert_storage_refusal(&e);
        }
    }

    if recover {
        recovery(&dept, &filler, &stored, &r1, &k).await;
    }
    drop(dept);
    drop(node);
}

async fn recovery(
    dept: &vault_client::VaultClient,
    filler: &Path,
    stored: &[vault_client::DocumentId],
    r1: &pki::ResidentId,
    k: &pki::DocumentKind,
) {
    // The operator frees space: both work again, no restart.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let small = Arc::new(pseudo_random_bytes(1000, 100));
        let put = dept.put_bytes(small, r1, k).await;
        let get = dept.get_bytes(stored[0], None, None).await;
        match (put, get) {
            (Ok(_), Ok(_)) => break,
            (put, get) => {
                assert!(
                    Instant::now() < deadline,
                    "30 s after space was freed: put {:?}, get {:?}",
                    put.err().map(|e| e.to_string()),
                    get.err().map(|e| e.to_string())
                );
                for e in [put.err(), get.err()].into_iter().flatten() {
                    assert_storage_refusal(&e);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
