//! `vault-node run --config FILE`: a node's whole configuration in one
//! TOML file, for real deployments. Relative paths are resolved against
//! the file's directory; unknown keys are refused (a typo must not
//! silently fall back to a default).
//!
//! ```toml
//! identity = "identity"          # cert.pem, key.pem, ca.pem, log.pub
//! log_key = "log.key.pem"         # optional: default IDENTITY/log.key.pem
//! data = "/var/lib/vault"
//! listen = "0.0.0.0:7443"
//! crl = "/etc/vault/crl.pem"      # optional
//! purposes = "purposes.json"      # optional
//! issuers = "issuers.json"        # optional: who may issue which kinds
//! metrics = "127.0.0.1:9464"      # optional: /metrics, /healthz, /readyz over HTTP
//!
//! [[witnesses]]                   # optional, repeated: witnesses asked to cosign checkpoints
//! url = "http://10.0.0.9:7380"
//! vkey = "witness.district.example/w1+<key id>+<base64 key>"
//!
//! [limits]                        # optional: bounded work per caller
//! uploads_per_caller = 16         # (the defaults; see docs/OPERATIONS.md)
//! uploads_total = 64
//! downloads_per_caller = 16
//! downloads_total = 64
//! requests_per_caller = 64
//! requests_total = 1024
//! idle_s = 10
//! transfer_base_s = 30
//! transfer_rate_min_bytes_s = 1048576
//! outboard_budget_bytes = 67108864
//! disk_reserve_bytes = 33554432   # free space uploads leave for log entries
//!
//! [cluster]                       # optional: without it, a single node
//! node_id = 1
//! bootstrap = false               # true on one node, for the first start
//! replicas = 3                    # R (default 3)
//! write_quorum = 2                # W (default 2)
//! scrub_interval_s = 60
//! orphan_grace_s = 10800
//! snapshot_logs = 5000
//! members = [
//!   { id = 1, addr = "vault-a.district.example:7443" },
//!   { id = 2, addr = "vault-b.district.example:7443" },
//!   { id = 3, addr = "vault-c.district.example:7443" },
//! ]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rules::limits::Limits;
use crate::rules::placement::{self, ClusterPolicy};
pub use crate::service::transparency::WitnessEndpoint;

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// The node's identity directory (cert.pem, key.pem, ca.pem, log.pub).
    pub identity_dir: PathBuf,
    /// The district's log key (`log.key.pem`), shared by every node; `None`
    /// means `IDENTITY/log.key.pem`, where `vault-pki issue` puts it.
    pub log_key_path: Option<PathBuf>,
    /// The district CRL (PEM), re-read when it changes.
    pub crl_path: Option<PathBuf>,
    /// The purpose registry (JSON); none means no access requests are accepted.
    pub purposes_path: Option<PathBuf>,
    /// The issuer registry (JSON); none means every department may issue
    /// every kind (see [`crate::rules::issuers`]).
    pub issuers_path: Option<PathBuf>,
    /// Cluster mode: replicate metadata with Raft among these members.
    /// `None` runs the single-node vault.
    pub cluster: Option<ClusterConfig>,
    /// Caps and deadlines bounding each caller's work.
    pub limits: Limits,
    /// The witnesses asked to cosign each new checkpoint.
    pub witnesses: Vec<WitnessEndpoint>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` over HTTP
    /// (none: not served).
    pub metrics: Option<SocketAddr>,
}

/// A node's place in a Raft cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's Raft id (a key of `members`).
    pub node_id: u64,
    /// Every member, this node included: Raft id to `HOST:PORT` (the host
    /// must be a name in that node's certificate).
    pub members: BTreeMap<u64, String>,
    /// Whether this node makes the initial membership (on one node only;
    /// ignored once the cluster is initialized).
    pub bootstrap: bool,
    /// Placement, replication, repair and snapshot settings.
    pub policy: ClusterPolicy,
}

/// The file's top level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The node's identity directory.
    pub identity: PathBuf,
    /// The node's data directory.
    pub data: PathBuf,
    /// The district's log key (default: `log.key.pem` in the identity directory).
    #[serde(default)]
    pub log_key: Option<PathBuf>,
    /// Address to listen on (default `0.0.0.0:7443`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The district CRL (PEM).
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// The purpose registry (JSON).
    #[serde(default)]
    pub purposes: Option<PathBuf>,
    /// The issuer registry (JSON).
    #[serde(default)]
    pub issuers: Option<PathBuf>,
    /// Cluster mode.
    #[serde(default)]
    pub cluster: Option<FileCluster>,
    /// Caps and deadlines (every key optional).
    #[serde(default)]
    pub limits: Limits,
    /// Witnesses (`[[witnesses]]`, each `url` and `vkey`).
    #[serde(default)]
    pub witnesses: Vec<FileWitness>,
    /// Where to serve metrics and health over HTTP (`HOST:PORT`).
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
}

/// One `[[witnesses]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWitness {
    /// `http://HOST:PORT[/PREFIX]`.
    pub url: String,
    /// Its verifier key (C2SP vkey, type 0x04).
    pub vkey: String,
}

/// Parses a witness given as `URL=VKEY` (`vault-node run --witness`), or as
/// its two parts.
pub fn witness(url: &str, vkey: &str) -> Result<WitnessEndpoint, String> {
    vault_client::witness_client::parse_url(url)?;
    let verifier = pki::WitnessVerifier::parse(vkey).map_err(|e| e.to_string())?;
    Ok(WitnessEndpoint {
        url: url.trim_end_matches('/').to_string(),
        verifier,
    })
}

/// Parses `URL=VKEY`.
pub fn parse_witness_flag(text: &str) -> Result<WitnessEndpoint, String> {
    let (url, vkey) = text
        .split_once('=')
        .ok_or_else(|| format!("expected URL=VKEY, got {text:?}"))?;
    witness(url, vkey)
}

/// The `[cluster]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// This node's Raft id.
    pub node_id: u64,
    /// Make the initial membership (one node, first start only).
    #[serde(default)]
    pub bootstrap: bool,
    /// R.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// W.
    #[serde(default = "default_write_quorum")]
    pub write_quorum: usize,
    /// Seconds between scrubs.
    #[serde(default = "default_scrub_interval_s")]
    pub scrub_interval_s: u64,
    /// Seconds before an unreferenced blob is collected.
    #[serde(default = "default_orphan_grace_s")]
    pub orphan_grace_s: u64,
    /// Applied entries between snapshots.
    #[serde(default = "default_snapshot_logs")]
    pub snapshot_logs: u64,
    /// The members, this node included (for the bootstrap; a node added
    /// later lists itself only).
    pub members: Vec<FileMember>,
}

/// One `members` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMember {
    /// Raft id.
    pub id: u64,
    /// `HOST:PORT`, a name in that node's certificate.
    pub addr: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7443))
}
fn default_replicas() -> usize {
    placement::DEFAULT_REPLICAS
}
fn default_write_quorum() -> usize {
    placement::DEFAULT_WRITE_QUORUM
}
fn default_scrub_interval_s() -> u64 {
    placement::DEFAULT_SCRUB_INTERVAL_S
}
fn default_orphan_grace_s() -> u64 {
    placement::DEFAULT_ORPHAN_GRACE_S
}
fn default_snapshot_logs() -> u64 {
    placement::DEFAULT_SNAPSHOT_LOGS
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<NodeConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a configuration, resolving relative paths against `base`.
pub fn parse(text: &str, base: &Path) -> Result<NodeConfig, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let cluster = match file.cluster {
        Some(c) => {
            let mut members = BTreeMap::new();
            for member in c.members {
                if !member.addr.contains(':') {
                    return Err(format!("member {}: expected HOST:PORT", member.id));
                }
                if members.insert(member.id, member.addr).is_some() {
                    return Err(format!("member {} is listed twice", member.id));
                }
            }
            if !members.contains_key(&c.node_id) {
                return Err(format!("node_id {} is not among the members", c.node_id));
            }
            let policy = ClusterPolicy {
                replicas: c.replicas,
                write_quorum: c.write_quorum,
                scrub_interval_s: c.scrub_interval_s,
                orphan_grace_s: c.orphan_grace_s,
                snapshot_logs: c.snapshot_logs,
            };
            policy.validate()?;
            Some(ClusterConfig {
                node_id: c.node_id,
                members,
                bootstrap: c.bootstrap,
                policy,
            })
        }
        None => None,
    };
    file.limits.validate()?;
    let witnesses = file
        .witnesses
        .iter()
        .map(|w| witness(&w.url, &w.vkey))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeConfig {
        witnesses,
        listen: file.listen,
        data_dir: resolve(file.data),
        identity_dir: resolve(file.identity),
        log_key_path: file.log_key.map(resolve),
        crl_path: file.crl.map(resolve),
        purposes_path: file.purposes.map(resolve),
        issuers_path: file.issuers.map(resolve),
        cluster,
        limits: file.limits,
        metrics: file.metrics,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FULL: &str = r#"
identity = "id"
data = "/var/lib/vault"
listen = "127.0.0.1:7500"
crl = "crl.pem"

[cluster]
node_id = 2
replicas = 2
write_quorum = 1
snapshot_logs = 20
members = [
  { id = 1, addr = "a:7443" },
  { id = 2, addr = "b:7443" },
]
"#;

    #[test]
    fn a_full_file_parses_with_paths_resolved() {
        let config = parse(FULL, Path::new("/etc/vault")).unwrap();
        assert_eq!(config.identity_dir, Path::new("/etc/vault/id"));
        assert_eq!(config.data_dir, Path::new("/var/lib/vault"));
        assert_eq!(
            config.crl_path.as_deref(),
            Some(Path::new("/etc/vault/crl.pem"))
        );
        assert_eq!(config.purposes_path, None);
        assert_eq!(config.issuers_path, None);
        assert_eq!(config.log_key_path, None);
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.node_id, 2);
        assert!(!cluster.bootstrap);
        assert_eq!(cluster.members.len(), 2);
        assert_eq!(cluster.policy.replicas, 2);
        assert_eq!(cluster.policy.write_quorum, 1);
        assert_eq!(cluster.policy.snapshot_logs, 20);
        assert_eq!(
            cluster.policy.scrub_interval_s,
            placement::DEFAULT_SCRUB_INTERVAL_S
        );
    }

    #[test]
    fn mistakes_are_refused_by_name() {
        let base = Path::new("/");
        let typo = "identity = \"i\"\ndata = \"d\"\nlisten_addr = \"0.0.0.0:1\"\n";
        assert!(parse(typo, base).unwrap_err().contains("listen_addr"));
        let not_member = FULL.replace("node_id = 2", "node_id = 9");
        assert!(parse(&not_member, base).unwrap_err().contains("node_id 9"));
        let quorum = FULL.replace("write_quorum = 1", "write_quorum = 3");
        assert!(parse(&quorum, base).unwrap_err().contains("write_quorum"));
        let twice = FULL.replace("id = 2, addr", "id = 1, addr");
        assert!(parse(&twice, base).unwrap_err().contains("twice"));
        // A grace shorter than the slowest registration could collect a
        // copy that is still being registered.
        let hasty = FULL.replace("[cluster]\n", "[cluster]\norphan_grace_s = 600\n");
        assert!(parse(&hasty, base).unwrap_err().contains("orphan_grace_s"));
        assert!(parse("identity = \"i\"\n", base)
            .unwrap_err()
            .contains("data"));
    }

    #[test]
    fn the_issuer_registry_and_log_key_paths_are_resolved() {
        let text = "identity = \"i\"\ndata = \"d\"\nissuers = \"issuers.json\"\nlog_key = \"log.key.pem\"\n";
        let config = parse(text, Path::new("/etc/vault")).unwrap();
        assert_eq!(
            config.issuers_path.as_deref(),
            Some(Path::new("/etc/vault/issuers.json"))
        );
        assert_eq!(
            config.log_key_path.as_deref(),
            Some(Path::new("/etc/vault/log.key.pem"))
        );
    }

    #[test]
    fn a_single_node_needs_no_cluster_table() {
        let config = parse("identity = \"i\"\ndata = \"d\"\n", Path::new("/x")).unwrap();
        assert!(config.cluster.is_none());
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.data_dir, Path::new("/x/d"));
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn limits_are_read_checked_and_default_per_key() {
        let base = Path::new("/x");
        let text = "identity = \"i\"\ndata = \"d\"\n[limits]\nidle_s = 2\nuploads_per_caller = 3\n";
        let config = parse(text, base).unwrap();
        assert_eq!(config.limits.idle_s, 2);
        assert_eq!(config.limits.uploads_per_caller, 3);
        assert_eq!(config.limits.uploads_total, Limits::default().uploads_total);
        let typo = text.replace("idle_s", "idle_secs");
        assert!(parse(&typo, base).unwrap_err().contains("idle_secs"));
        let over = text.replace("uploads_per_caller = 3", "uploads_per_caller = 100000");
        assert!(parse(&over, base)
            .unwrap_err()
            .contains("uploads_per_caller"));
    }
}
