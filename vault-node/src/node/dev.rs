//! The embedded default: a development PKI for a single local node or a
//! local cluster (`vault-node dev --nodes N`), created once under a data
//! directory and reused on every later start.
//!
//! Layout: `DATA/ca/` (a CA directory usable with `vault-pki --dir`),
//! `DATA/identities/NAME/` (cert.pem, key.pem, ca.pem, log.pub; usable as
//! `vault --identity`), `DATA/node-1/` (the node's storage), the
//! development registries `DATA/purposes.json` and `DATA/issuers.json`,
//! and the district log key `DATA/ca/log.key.pem` (origin
//! [`DEV_LOG_ORIGIN`]) that every development node signs with.

use std::path::{Path, PathBuf};

use pki::{CertificateAuthority, IssueParams, Name, Role};
use vault_client::ErrorCode;

use crate::Refusal;

/// The development identities: name and role.
pub const DEV_IDENTITIES: &[(&str, Role)] = &[
    ("civil-affairs", Role::Department),
    ("housing-bureau", Role::Department),
    ("tax-office", Role::Department),
    ("police", Role::Department),
    ("court", Role::Authority),
    ("auditor", Role::Auditor),
    ("resident-1", Role::Resident),
    ("resident-2", Role::Resident),
];

/// Name of the development node's identity.
pub const DEV_NODE: &str = "node-1";
/// The cluster every development node certificate names.
pub const DEV_CLUSTER: &str = "dev";
/// The development log's origin (and its key's name).
pub const DEV_LOG_ORIGIN: &str = "dev.district.example/vault";
/// Names a development node certificate is valid for.
pub const DEV_NODE_SANS: &[&str] = &["localhost", "127.0.0.1"];

/// Paths of a development setup.
#[derive(Debug, Clone)]
pub struct DevLayout {
    /// The CA directory.
    pub ca_dir: PathBuf,
    /// Where identities live.
    pub identities_dir: PathBuf,
    /// The node's identity.
    pub node_identity: PathBuf,
    /// The node's data directory.
    pub node_data: PathBuf,
}

impl DevLayout {
    /// The layout under `data`.
    pub fn new(data: &Path) -> Self {
        DevLayout {
            ca_dir: data.join("ca"),
            identities_dir: data.join("identities"),
            node_identity: data.join("identities").join(DEV_NODE),
            node_data: data.join(DEV_NODE),
        }
    }

    /// Identity directory of development node `id` (`node-ID`).
    pub fn node_identity(&self, id: u64) -> PathBuf {
        self.identities_dir.join(format!("node-{id}"))
    }

    /// Data directory of development node `id` (`DATA/node-ID/`).
    pub fn node_data(&self, id: u64) -> PathBuf {
        self.node_data
            .parent()
            .map(|data| data.join(format!("node-{id}")))
            .unwrap_or_else(|| PathBuf::from(format!("node-{id}")))
    }

    /// The district log key every development node signs checkpoints with
    /// (`DATA/ca/log.key.pem`).
    pub fn log_key_path(&self) -> PathBuf {
        self.ca_dir.join(pki::LOG_KEY_FILE)
    }

    /// The CRL nodes enforce.
    pub fn crl_path(&self) -> PathBuf {
        self.ca_dir.join("crl.pem")
    }

    /// The purpose registry.
    pub fn purposes_path(&self) -> PathBuf {
        self.identities_dir
            .parent()
            .map(|data| data.join("purposes.json"))
            .unwrap_or_else(|| PathBuf::from("purposes.json"))
    }

    /// The issuer registry.
    pub fn issuers_path(&self) -> PathBuf {
        self.identities_dir
            .parent()
            .map(|data| data.join("issuers.json"))
            .unwrap_or_else(|| PathBuf::from("issuers.json"))
    }
}

/// The development witness's name.
pub const DEV_WITNESS_NAME: &str = "witness.dev.district.example/w1";

impl DevLayout {
    /// The development witness's directory (`DATA/witness/`: its key and state).
    pub fn witness_dir(&self) -> PathBuf {
        self.identities_dir
            .parent()
            .map(|data| data.join("witness"))
            .unwrap_or_else(|| PathBuf::from("witness"))
    }
}

/// Makes the development witness's key once (`DATA/witness/`), and writes a witness policy
/// requiring it (`witness-policy`) into every development identity that has none, so
/// their clients refuse checkpoints it did not cosign. Answers its verifier key.
pub fn ensure_dev_witness(layout: &DevLayout) -> Result<pki::WitnessVerifier, Refusal> {
    let dir = layout.witness_dir();
    let signer = if dir.join(pki::WITNESS_KEY_FILE).exists() {
        pki::WitnessSigner::load(&dir)?
    } else {
        tracing::info!(
            name = DEV_WITNESS_NAME,
            "creating the development witness key"
        );
        pki::WitnessSigner::create(&dir, DEV_WITNESS_NAME)?
    };
    let verifier = signer.verifier().clone();
    let policy = pki::WitnessPolicy::requiring_all(std::slice::from_ref(&verifier));
    for (name, _) in DEV_IDENTITIES {
        let path = layout
            .identities_dir
            .join(name)
            .join(pki::WITNESS_POLICY_FILE);
        if !path.exists() && path.parent().is_some_and(Path::exists) {
            std::fs::write(&path, &policy).map_err(|e| {
                Refusal::new(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
            })?;
        }
    }
    Ok(verifier)
}

/// Starts the development witness in this process on loopback (a free port), accepting the
/// development log (`DATA/ca/log.pub`); answers how a node reaches it. It serves until the
/// process ends.
pub async fn start_dev_witness(
    layout: &DevLayout,
) -> Result<crate::service::transparency::WitnessEndpoint, Refusal> {
    let verifier = ensure_dev_witness(layout)?;
    let log_keys = pki::load_verifiers(&layout.ca_dir.join(pki::LOG_PUB_FILE))?;
    let witness = vault_client::witness_server::Witness::open(&layout.witness_dir(), log_keys)
        .map_err(|e| Refusal::new(ErrorCode::LocalIo, e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Refusal::new(ErrorCode::LocalIo, format!("the dev witness: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Refusal::new(ErrorCode::LocalIo, e.to_string()))?;
    tokio::spawn(async move {
        let served = vault_client::witness_server::serve(
            std::sync::Arc::new(witness),
            listener,
            std::future::pending(),
        )
        .await;
        if let Err(e) = served {
            tracing::error!(%e, "the development witness stopped");
        }
    });
    tracing::info!(%addr, name = verifier.name(), "the development witness listens");
    Ok(crate::service::transparency::WitnessEndpoint {
        url: format!("http://{addr}"),
        verifier,
    })
}

/// Writes the development issuer registry to `path` unless it exists.
pub fn ensure_issuers(path: &Path) -> Result<(), Refusal> {
    if path.exists() {
        return Ok(());
    }
    let list = crate::rules::issuers::IssuerRegistry::development();
    let text = serde_json::to_string_pretty(&list)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| Refusal::new(ErrorCode::LocalIo, format!("{}: {e}", path.display())))
}

/// Writes the development purpose registry to `path` unless it exists.
pub fn ensure_purposes(path: &Path) -> Result<(), Refusal> {
    if path.exists() {
        return Ok(());
    }
    let list = crate::rules::grants::PurposeRegistry::development();
    let text = serde_json::to_string_pretty(&list)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| Refusal::new(ErrorCode::LocalIo, format!("{}: {e}", path.display())))
}

/// Creates whatever of the development PKI is missing; never replaces
/// anything that exists.
pub fn ensure_dev_pki(data: &Path, now: i64) -> Result<DevLayout, Refusal> {
    let layout = DevLayout::new(data);
    std::fs::create_dir_all(&layout.identities_dir)
        .map_err(|e| Refusal::new(ErrorCode::LocalIo, format!("{}: {e}", data.display())))?;
    let ca = if layout.ca_dir.join("ca.pem").exists() {
        CertificateAuthority::open(&layout.ca_dir)?
    } else {
        tracing::info!(dir = %layout.ca_dir.display(), "creating the development CA");
        CertificateAuthority::init(&layout.ca_dir, "Dev District", now)?
    };
    if !layout.log_key_path().exists() {
        tracing::info!(origin = DEV_LOG_ORIGIN, "creating the development log key");
        ca.create_log_key(DEV_LOG_ORIGIN, false, now)?;
    }
    if ca.create_salt_key()? {
        tracing::info!("creating the development salt key");
    }
    let node = std::iter::once((DEV_NODE, Role::Node));
    for (name, role) in node.chain(DEV_IDENTITIES.iter().copied()) {
        let dir = layout.identities_dir.join(name);
        if dir.join("cert.pem").exists() {
            install_log_pub(&ca, role, &dir)?;
            continue;
        }
        let mut params = IssueParams::new(role, Name::parse(name)?, now);
        if role == Role::Node {
            params.sans = DEV_NODE_SANS.iter().map(|s| s.to_string()).collect();
            params.cluster = Some(Name::parse(DEV_CLUSTER)?);
        }
        ca.issue(&params, &dir)?;
        tracing::info!(
            identity = name,
            role = role.as_str(),
            "issued a development identity"
        );
    }
    ensure_purposes(&layout.purposes_path())?;
    ensure_issuers(&layout.issuers_path())?;
    Ok(layout)
}

/// Like [`ensure_dev_pki`], with node identities `node-1` to `node-N`
/// (`nodes` of them, valid for [`DEV_NODE_SANS`]).
pub fn ensure_dev_cluster(data: &Path, nodes: u64, now: i64) -> Result<DevLayout, Refusal> {
    let layout = ensure_dev_pki(data, now)?;
    let ca = CertificateAuthority::open(&layout.ca_dir)?;
    // The cluster node-1's certificate names (none, if an older version
    // made it): every node of one development cluster must agree.
    let cluster = pki::Identity::load(&layout.node_identity(1))?
        .cert
        .cluster
        .map(|name| Name::parse(&name))
        .transpose()?;
    for id in 2..=nodes {
        let dir = layout.node_identity(id);
        if dir.join("cert.pem").exists() {
            install_log_pub(&ca, Role::Node, &dir)?;
            continue;
        }
        let name = format!("node-{id}");
        let mut params = IssueParams::new(Role::Node, Name::parse(&name)?, now);
        params.sans = DEV_NODE_SANS.iter().map(|s| s.to_string()).collect();
        params.cluster.clone_from(&cluster);
        ca.issue(&params, &dir)?;
        tracing::info!(identity = %name, "issued a development node identity");
    }
    Ok(layout)
}

/// Gives an identity made before the development log key (or salt key)
/// existed (an older `.vault-dev/`) its `log.pub` and `salt.pub`; one that
/// has both is left alone.
fn install_log_pub(ca: &CertificateAuthority, role: Role, dir: &Path) -> Result<(), Refusal> {
    if !dir.join(pki::LOG_PUB_FILE).exists() || !dir.join(pki::SALT_PUB_FILE).exists() {
        ca.install_log_files(role, dir)?;
    }
    Ok(())
}

/// Writes the [`vault_client::client::NODES_FILE`] of every development
/// identity: the addresses clients reach the development nodes at
/// (`listen` addresses, with an unspecified IP replaced by loopback), so
/// `vault --identity DIR …` finds one node or the whole cluster without
/// `--node`, and fails over when one is down.
pub fn write_dev_nodes(layout: &DevLayout, listen: &[std::net::SocketAddr]) -> Result<(), Refusal> {
    let nodes: Vec<String> = listen
        .iter()
        .map(|addr| {
            let mut addr = *addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            addr.to_string()
        })
        .collect();
    let dirs = std::fs::read_dir(&layout.identities_dir).map_err(|e| {
        Refusal::new(
            ErrorCode::LocalIo,
            format!("{}: {e}", layout.identities_dir.display()),
        )
    })?;
    for dir in dirs.flatten() {
        let path = dir.path();
        if !path.join("cert.pem").is_file() {
            continue;
        }
        vault_client::client::write_nodes(&path, &nodes)
            .map_err(|e| Refusal::new(ErrorCode::LocalIo, format!("{}: {e}", path.display())))?;
    }
    Ok(())
}
