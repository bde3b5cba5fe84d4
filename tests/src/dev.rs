//! `vault-node dev --nodes 3` as the README starts it, for the tests that
//! run the walkthrough or the dev cluster's own lifecycle: started on three
//! consecutive free loopback ports, and stopped when dropped.
//!
//! It does not wait for a leader or check anything the nodes say: the
//! tests do.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::{alive, free_port_run};

/// How long the three nodes may take to print their start lines.
pub const DEV_START_WAIT: Duration = Duration::from_secs(60);
/// How long a dropped cluster's parent may take to stop after SIGTERM
/// before it is killed.
const DEV_STOP_WAIT: Duration = Duration::from_secs(10);

/// A running `vault-node dev --nodes 3`, stopped when dropped (also when a
/// check fails): SIGTERM to the parent, which stops its nodes, then
/// SIGKILL to whatever is left, so no node outlives the test holding its
/// output pipes open.
pub struct DevCluster {
    /// The `vault-node dev` parent process.
    pub dev: Child,
    /// The first node's port; node `k + 1` listens on `base + k`.
    pub base: u16,
    /// The nodes' start lines, in the order printed.
    pub started: Vec<serde_json::Value>,
}

impl DevCluster {
    /// Starts `vault-node dev --nodes 3 --data DATA` in `cwd` (the test's
    /// own working directory when `None`) and reads the three start lines
    /// (on a thread, so a node that never starts, its port taken
    /// meanwhile, fails the test instead of hanging it).
    pub fn start(cwd: Option<&Path>, data: &Path) -> anyhow::Result<Self> {
        let base = free_port_run();
        let mut command = Command::new(crate::bin("vault-node")?);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut dev = command
            .args(["dev", "--nodes", "3", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{base}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = dev.stdout.take().context("no stdout")?;
        let mut cluster = DevCluster {
            dev,
            base,
            started: Vec::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        for _ in 0..3 {
            let line = rx
                .recv_timeout(DEV_START_WAIT)
                .context("three start lines within 60 s")??;
            cluster.started.push(serde_json::from_str(&line)?);
        }
        Ok(cluster)
    }

    /// The address node `k + 1` listens on.
    pub fn addr(&self, k: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + k))
    }

    /// The start lines by node name (`node-1`, ...).
    pub fn started_by_name(&self) -> BTreeMap<String, serde_json::Value> {
        self.started
            .iter()
            .map(|line| {
                (
                    line["node"].as_str().unwrap_or("").to_string(),
                    line.clone(),
                )
            })
            .collect()
    }

    /// The node processes' ids.
    pub fn node_pids(&self) -> Vec<u64> {
        self.started
            .iter()
            .filter_map(|l| l["pid"].as_u64())
            .collect()
    }

    /// The id of the node process that printed `addr` as its address.
    pub fn pid_listening_on(&self, addr: &str) -> Option<u64> {
        self.started
            .iter()
            .find(|l| l["addr"] == addr)
            .and_then(|l| l["pid"].as_u64())
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if matches!(self.dev.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.dev.id().to_string()])
                .status();
        }
        let start = Instant::now();
        while start.elapsed() < DEV_STOP_WAIT {
            if matches!(self.dev.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.dev.kill();
        let _ = self.dev.wait();
        for pid in self.node_pids() {
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}
