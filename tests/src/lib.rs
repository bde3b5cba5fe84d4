//! Test and benchmark harness: a district PKI made by the same code
//! operators use, nodes started in-process or as real `vault-node`
//! processes on loopback, and a runner for the `vault` command line.
//!
//! Nothing here is a mock: every node is a real QUIC endpoint with real
//! certificates and a real RocksDB on disk.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context};
use pki::{CertificateAuthority, Identity, IssueParams, Name, Role};
use vault_node::node::{self, NodeConfig, RunningNode};

pub mod browser;
pub mod cluster;
pub mod dev;
pub mod fixtures;
pub mod grant_story;
pub mod http;
pub mod portal;

pub use fixtures::{files_under, kind, now, peak_rss_kib, pseudo_random_bytes, purpose, resident};
pub use grant_story::{GrantStory, Parties};

/// A district PKI in a temporary directory.
pub struct TestPki {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub ca: CertificateAuthority,
}

/// The origin of the test district's log (its log key's name).
pub const TEST_LOG_ORIGIN: &str = "test.district.example/vault";

/// The cluster every test node certificate names.
pub const TEST_CLUSTER: &str = "test-cluster";

/// The departments of [`TestPki::new`].
pub const TEST_DEPARTMENTS: &[&str] = &["civil-affairs", "housing-bureau", "tax-office"];

/// Every kind the tests and benches put: the test issuer registry
/// ([`TestPki::issuers_path`]) lets each of [`TEST_DEPARTMENTS`] issue
/// each of them, so tests that are not about issuer authority are not
/// constrained by it (those that are use [`TestPki::dev_issuers_path`]).
pub const TEST_KINDS: &[&str] = &[
    "archive",
    "bench",
    "birth-certificate",
    "deed",
    "divorce-decree",
    "form",
    "household-register",
    "household-registration",
    "id-card",
    "land-survey",
    "marriage-certificate",
    "note",
    "other",
    "repair-bench",
    "scan",
    "tax-paper",
    "tax-return",
    "vehicle-record",
    "x",
];

impl TestPki {
    /// A new CA with a node identity `node-1` (valid for localhost and
    /// 127.0.0.1) and the usual departments and residents.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = CertificateAuthority::init(&dir.path().join("ca"), "Test District", now())?;
        // Before any identity: `issue` copies log.pub into each, and the
        // secret log key into node identities.
        ca.create_log_key(TEST_LOG_ORIGIN, false, now())?;
        let pki = TestPki { dir, ca };
        pki.issue_node("node-1")?;
        for (name, role) in [
            ("civil-affairs", Role::Department),
            ("housing-bureau", Role::Department),
            ("tax-office", Role::Department),
            ("auditor", Role::Auditor),
            ("resident-1", Role::Resident),
            ("resident-2", Role::Resident),
        ] {
            pki.issue(name, role)?;
        }
        Ok(pki)
    }

    /// Issues an identity with default validity.
    pub fn issue(&self, name: &str, role: Role) -> anyhow::Result<PathBuf> {
        let params = IssueParams::new(role, Name::parse(name)?, now());
        self.issue_with(name, params)
    }

    /// Issues a node identity valid for localhost and 127.0.0.1, in the
    /// cluster [`TEST_CLUSTER`] (so every cluster test runs with the
    /// cluster check on).
    pub fn issue_node(&self, name: &str) -> anyhow::Result<PathBuf> {
        let mut params = IssueParams::new(Role::Node, Name::parse(name)?, now());
        params.sans = vec!["localhost".into(), "127.0.0.1".into()];
        params.cluster = Some(Name::parse(TEST_CLUSTER)?);
        self.issue_with(name, params)
    }

    /// Issues an identity with explicit parameters.
    pub fn issue_with(&self, dir_name: &str, params: IssueParams) -> anyhow::Result<PathBuf> {
        let dir = self.identity_dir(dir_name);
        self.ca.issue(&params, &dir)?;
        Ok(dir)
    }

    /// Where identity `name` lives.
    pub fn identity_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("identities").join(name)
    }

    /// Loads identity `name`.
    pub fn identity(&self, name: &str) -> anyhow::Result<Identity> {
        Ok(Identity::load(&self.identity_dir(name))?)
    }

    /// The district's log key (what every test node signs checkpoints
    /// with; tests sign forged checkpoints with it).
    pub fn log_key(&self) -> anyhow::Result<pki::LogSigner> {
        Ok(pki::LogSigner::load(
            &self.ca.log_key_path(),
            &self.ca.log_verifiers()?,
        )?)
    }

    /// The CRL path nodes enforce.
    pub fn crl_path(&self) -> PathBuf {
        self.ca.crl_path()
    }

    /// The purpose registry (the development one), written on first use.
    pub fn purposes_path(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("purposes.json");
        vault_node::node::dev::ensure_purposes(&path)?;
        Ok(path)
    }

    /// The test issuer registry (every test department may issue every
    /// one of [`TEST_KINDS`]), written on first use.
    pub fn issuers_path(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("issuers.json");
        if !path.exists() {
            let list: Vec<serde_json::Value> = TEST_DEPARTMENTS
                .iter()
                .map(
                    |department| serde_json::json!({"department": department, "kinds": TEST_KINDS}),
                )
                .collect();
            std::fs::write(&path, serde_json::to_vec_pretty(&list)?)?;
        }
        Ok(path)
    }

    /// The development issuer registry (`vault-node dev`'s: civil-affairs
    /// issues marriage certificates, tax-office tax returns, ...), written
    /// on first use.
    pub fn dev_issuers_path(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("dev-issuers.json");
        vault_node::node::dev::ensure_issuers(&path)?;
        Ok(path)
    }

    /// A fresh data directory for a node.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("data").join(name)
    }
}

/// Starts a node in this process on an ephemeral loopback port.
pub async fn start_node(pki: &TestPki) -> anyhow::Result<RunningNode> {
    let config = NodeConfig {
        witnesses: Vec::new(),
        log_key_path: None,
        listen: "127.0.0.1:0".parse()?,
        data_dir: pki.data_dir("node-1"),
        identity_dir: pki.identity_dir("node-1"),
        crl_path: Some(pki.crl_path()),
        purposes_path: Some(pki.purposes_path()?),
        issuers_path: Some(pki.issuers_path()?),
        cluster: None,
        limits: Default::default(),
        metrics: None,
    };
    Ok(node::start(config).await?)
}

/// Connects as identity `name`.
pub async fn connect(
    pki: &TestPki,
    name: &str,
    addr: SocketAddr,
) -> Result<vault_client::VaultClient, vault_client::ClientError> {
    let identity = pki.identity(name).map_err(|e| {
        vault_client::ClientError::local(vault_client::ErrorCode::LocalIo, e.to_string())
    })?;
    vault_client::VaultClient::connect(identity, &addr.to_string()).await
}

/// The directory holding the workspace's built binaries
/// (`cargo build --workspace --bins`, which `scripts/test` runs first).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/test-xxxx -> target/debug
    let mut dir = exe.parent().context("no parent")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of a workspace binary, failing clearly if it was not built.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// A `vault-node` process, killed when dropped.
pub struct NodeProcess {
    /// The child process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The JSON line it printed on start.
    pub started: serde_json::Value,
}

impl NodeProcess {
    /// Spawns `vault-node` with `args`, waiting for its start line.
    pub fn spawn(args: &[&str]) -> anyhow::Result<Self> {
        Self::spawn_with(args, "warn", Stdio::inherit())
    }

    /// [`NodeProcess::spawn`] with `RUST_LOG=rust_log` and the node's
    /// stderr (its log lines) sent to `stderr`.
    pub fn spawn_with(args: &[&str], rust_log: &str, stderr: Stdio) -> anyhow::Result<Self> {
        let mut child = Command::new(bin("vault-node")?)
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.is_empty() {
            let status = child.wait()?;
            bail!("vault-node exited before starting: {status}");
        }
        let started: serde_json::Value = serde_json::from_str(&line)?;
        let addr = started["addr"]
            .as_str()
            .ok_or_else(|| anyhow!("no addr in {line}"))?
            .parse()?;
        Ok(NodeProcess {
            child,
            addr,
            started,
        })
    }

    /// Spawns `vault-node run` for identity `node-1` of `pki`, with the
    /// test issuer registry ([`TestPki::issuers_path`]).
    pub fn run(pki: &TestPki) -> anyhow::Result<Self> {
        Self::run_with_issuers(pki, &pki.issuers_path()?)
    }

    /// [`NodeProcess::run`] with the issuer registry at `issuers`.
    pub fn run_with_issuers(pki: &TestPki, issuers: &Path) -> anyhow::Result<Self> {
        Self::run_logged(pki, issuers, "warn", Stdio::inherit())
    }

    /// [`NodeProcess::run_with_issuers`], logging at `rust_log` to `stderr`.
    pub fn run_logged(
        pki: &TestPki,
        issuers: &Path,
        rust_log: &str,
        stderr: Stdio,
    ) -> anyhow::Result<Self> {
        let identity = pki.identity_dir("node-1");
        let data = pki.data_dir("node-1");
        let crl = pki.crl_path();
        let purposes = pki.purposes_path()?;
        let args = [
            "run",
            "--identity",
            path_str(&identity)?,
            "--data",
            path_str(&data)?,
            "--listen",
            "127.0.0.1:0",
            "--crl",
            path_str(&crl)?,
            "--purposes",
            path_str(&purposes)?,
            "--issuers",
            path_str(issuers)?,
        ];
        Self::spawn_with(&args, rust_log, stderr)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `vault` invocation did.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status was success.
    pub success: bool,
    /// The JSON object printed on stdout (`--json` runs).
    pub json: serde_json::Value,
    /// Standard error.
    pub stderr: String,
}

/// Runs the `vault` CLI with `--json` as identity `identity` against `node`.
pub fn vault_cli(identity: &Path, node: SocketAddr, args: &[&str]) -> anyhow::Result<CliOutput> {
    let output = vault_command(identity, &node.to_string(), args)?.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(stdout.trim())
        .with_context(|| format!("vault printed non-JSON: {stdout:?}"))?;
    Ok(CliOutput {
        success: output.status.success(),
        json,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `vault --identity IDENTITY --node NODES --json ARGS`, not yet started
/// (`nodes` is one address or a comma-separated failover list).
pub fn vault_command(identity: &Path, nodes: &str, args: &[&str]) -> anyhow::Result<Command> {
    let mut command = Command::new(bin("vault")?);
    command
        .arg("--identity")
        .arg(identity)
        .arg("--node")
        .arg(nodes)
        .arg("--json")
        .args(args);
    Ok(command)
}

/// `vault put FILE --resident RESIDENT --kind KIND` as identity `who`
/// against `node`.
pub fn vault_put(
    pki: &TestPki,
    who: &str,
    node: SocketAddr,
    file: &Path,
    resident: &str,
    kind: &str,
) -> anyhow::Result<CliOutput> {
    let args = [
        "put",
        path_str(file)?,
        "--resident",
        resident,
        "--kind",
        kind,
    ];
    vault_cli(&pki.identity_dir(who), node, &args)
}

/// A path as UTF-8.
pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", path.display()))
}
