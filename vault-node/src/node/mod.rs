//! Assembly: the node's configuration ([`config`]), the development set-up
//! behind `vault-node dev` ([`dev`]), and [`start`]: open the storage, bind
//! the endpoint, choose the consensus (single node or cluster), build each
//! service with what it uses, and serve.

pub mod config;
pub mod dev;
pub mod observe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use pki::{Identity, PeerCert};
use vault_client::transport;
use vault_client::ErrorCode;

pub use config::{ClusterConfig, NodeConfig};

use crate::consensus::raft::{Network, RaftHandle};
use crate::consensus::{Cluster, Consensus, Ledger};
use crate::net::admission::Admission;
use crate::net::crl;
use crate::net::server::{self, Services};
use crate::replication::Replication;
use crate::rules::clock::{Clock, SystemClock};
use crate::rules::grants::{GrantCache, PurposeRegistry};
use crate::rules::issuers::IssuerRegistry;
use crate::service::consent::Consent;
use crate::service::documents::Documents;
use crate::service::registry::Registry;
use crate::service::transparency::{CheckpointCache, Transparency, Witnesses};
use crate::storage::vault::Vault;
use crate::Refusal;

/// A running node.
pub struct RunningNode {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The node's certificate.
    pub cert: PeerCert,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`, if it does.
    pub metrics_addr: Option<SocketAddr>,
    endpoint: quinn::Endpoint,
    services: Arc<Services>,
}

impl RunningNode {
    /// The node's storage.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.services.vault
    }

    /// How the node makes commands durable (submit commands through it).
    pub fn consensus(&self) -> &Arc<Consensus> {
        &self.services.consensus
    }

    /// The node's transparency-log service (checkpoints, proofs).
    pub fn transparency(&self) -> &Transparency {
        &self.services.transparency
    }

    /// The node's QUIC endpoint (it can also open connections, e.g. to
    /// other nodes for Raft).
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// The node's identity (certificate and key).
    pub fn identity(&self) -> &Arc<Identity> {
        &self.services.identity
    }

    /// The node's cluster membership, when it runs in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.services.consensus.cluster()
    }

    /// Lets this node answer Raft RPCs from other nodes with `raft`. Only
    /// the first call takes effect; returns whether this one did.
    pub fn attach_raft(&self, raft: RaftHandle) -> bool {
        self.services.raft.set(raft).is_ok()
    }

    /// Runs one scrub now (cluster mode): re-reads every blob the state
    /// machine knows and repairs missing or corrupt copies from members.
    pub async fn scrub_once(&self) -> crate::replication::repair::ScrubCounts {
        match &self.services.replication {
            Some(replication) => replication.scrub_once().await,
            None => Default::default(),
        }
    }

    /// Waits until the endpoint is closed.
    pub async fn wait(&self) {
        self.endpoint.wait_idle().await;
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"node shutting down");
    }
}

/// Opens storage, binds the endpoint and starts serving in the background.
pub async fn start(config: NodeConfig) -> Result<RunningNode, Refusal> {
    // A start that fails leaves no data directory it created itself.
    let created = !config.data_dir.exists();
    let started = start_in(&config).await;
    if started.is_err() && created {
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
    started
}

async fn start_in(config: &NodeConfig) -> Result<RunningNode, Refusal> {
    let config = config.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let identity = Arc::new(node_identity(&config)?);
    let log_key = Arc::new(log_signer(&config, &identity)?);
    let salt_key = salt_signer(&config)?;
    let vault = Arc::new(Vault::open(&config.data_dir)?);
    vault
        .blobs()
        .set_reserve_bytes(config.limits.disk_reserve_bytes);
    let purposes = match &config.purposes_path {
        Some(path) => PurposeRegistry::load(path)?,
        None => PurposeRegistry::default(),
    };
    let issuers = match &config.issuers_path {
        Some(path) => IssuerRegistry::load(path)?,
        None => {
            tracing::warn!("no issuer registry: every department may issue every kind");
            IssuerRegistry::open()
        }
    };
    let crls = crl::load_crl_state(config.crl_path.as_deref(), &vault)?;
    let endpoint = bind(&config, &identity, &crls)?;
    let addr = endpoint
        .local_addr()
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
    let consensus = Arc::new(
        open_consensus(&config, &endpoint, &identity, &vault, &clock)
            .await?
            .with_salt_key(salt_key.clone()),
    );
    let registries = (purposes, issuers);
    let admission = Admission::new(config.limits);
    let witnesses = Witnesses::new(config.witnesses.clone());
    let services = Arc::new(services(
        (identity, log_key, salt_key, witnesses),
        vault,
        consensus,
        clock,
        registries,
        admission,
    ));
    crl::record_revocations(&services);
    let metrics_addr = match config.metrics {
        Some(addr) => {
            let listener = observe::bind(addr)?;
            let bound = listener
                .local_addr()
                .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
            tokio::spawn(observe::serve(listener, services.clone()));
            Some(bound)
        }
        None => None,
    };
    tokio::spawn(server::accept_loop(endpoint.clone(), services.clone()));
    if let (Some(cluster), Some(cluster_config)) = (services.consensus.cluster(), &config.cluster) {
        if cluster_config.bootstrap {
            bootstrap(cluster, cluster_config.members.clone()).await?;
        }
    }
    if let Some(path) = config.crl_path.clone() {
        tokio::spawn(crl::watch_crl(endpoint.clone(), services.clone(), path));
    }
    if let Some(replication) = &services.replication {
        tokio::spawn(crate::replication::repair::scrub_loop(replication.clone()));
    }
    // Statutory orders are disclosed when their seal ends, by no one's act.
    tokio::spawn(crate::service::orders::disclose_loop(
        services.consent.clone(),
    ));
    Ok(RunningNode {
        addr,
        metrics_addr,
        cert: services.identity.cert.clone(),
        endpoint,
        services,
    })
}

/// The node's identity, which must hold a node certificate.
fn node_identity(config: &NodeConfig) -> Result<Identity, Refusal> {
    let identity = Identity::load(&config.identity_dir)?;
    if identity.cert.role != pki::Role::Node {
        return Err(Refusal::new(
            ErrorCode::BadCertificate,
            format!(
                "{} does not hold a node certificate",
                config.identity_dir.display()
            ),
        ));
    }
    Ok(identity)
}

/// The district's log key (`--log-key`, else `IDENTITY/log.key.pem`), paired
/// with its verifier key in the identity's `log.pub`: every node of the
/// district signs the same checkpoint under the same origin.
fn log_signer(config: &NodeConfig, identity: &Identity) -> Result<pki::LogSigner, Refusal> {
    let path = config
        .log_key_path
        .clone()
        .unwrap_or_else(|| config.identity_dir.join(pki::LOG_KEY_FILE));
    if !path.exists() {
        return Err(Refusal::new(
            ErrorCode::LocalIo,
            format!(
                "no log key at {}: create the district's once with `vault-pki log-key --dir CA \
                 --origin district.example/vault`, copy CA/log.key.pem (0600) and CA/log.pub to \
                 every node, and give --log-key (config key log_key)",
                path.display()
            ),
        ));
    }
    Ok(pki::LogSigner::load(&path, identity.log_keys())?)
}

/// The district salt key, `salt.key.pem` beside the log key (by default in
/// the identity directory, where `vault-pki issue` puts it). Without it the
/// node still runs: new residents get random salts, and residents' clients
/// report their lists as not provably complete (`log.wrong_salt`).
fn salt_signer(config: &NodeConfig) -> Result<Option<Arc<pki::SaltSigner>>, Refusal> {
    let dir = match &config.log_key_path {
        Some(path) => path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        None => config.identity_dir.clone(),
    };
    let path = dir.join(pki::SALT_KEY_FILE);
    if !path.exists() {
        tracing::warn!(
            path = %path.display(),
            "no district salt key: residents cannot check their salts (copy CA/salt.key.pem, 0600, beside the log key)"
        );
        return Ok(None);
    }
    Ok(Some(Arc::new(pki::SaltSigner::load(&path)?)))
}

/// Binds the QUIC endpoint on the configured address.
fn bind(
    config: &NodeConfig,
    identity: &Identity,
    crls: &[Vec<u8>],
) -> Result<quinn::Endpoint, Refusal> {
    let server = crl::server_config(identity, crls)?;
    let socket = transport::bind_udp(config.listen).map_err(|e| {
        Refusal::new(
            ErrorCode::Connection,
            format!("cannot bind {}: {e}", config.listen),
        )
    })?;
    let (recv_buf, send_buf) = transport::socket_buffer_sizes(&socket);
    let endpoint = transport::endpoint(socket, Some(server))
        .map_err(|e| Refusal::new(ErrorCode::Connection, e.to_string()))?;
    if let Ok(addr) = endpoint.local_addr() {
        tracing::info!(%addr, recv_buf, send_buf, node = %identity.cert.name, "node listening");
    }
    Ok(endpoint)
}

/// The single-node ledger over the node's own store, or the Raft cluster
/// (whose state machine store then serves the vault's reads).
async fn open_consensus(
    config: &NodeConfig,
    endpoint: &quinn::Endpoint,
    identity: &Identity,
    vault: &Vault,
    clock: &Arc<dyn Clock>,
) -> Result<Consensus, Refusal> {
    let Some(cluster_config) = &config.cluster else {
        let ledger =
            Ledger::with_clock(vault.local_store(), clock.clone()).map_err(Refusal::from)?;
        return Consensus::single(Arc::new(ledger));
    };
    let network = Network::new(endpoint.clone(), identity)?;
    let cluster = Cluster::open_with(
        cluster_config.node_id,
        &config.data_dir.join("raft"),
        network,
        cluster_config.policy,
    )
    .await?;
    vault.read_from(cluster.store().clone());
    Ok(Consensus::member(Arc::new(cluster)))
}

/// Each service with what it uses.
fn services(
    (identity, log_key, salt_key, witnesses): (
        Arc<Identity>,
        Arc<pki::LogSigner>,
        Option<Arc<pki::SaltSigner>>,
        Witnesses,
    ),
    vault: Arc<Vault>,
    consensus: Arc<Consensus>,
    clock: Arc<dyn Clock>,
    (purposes, issuers): (PurposeRegistry, IssuerRegistry),
    admission: Arc<Admission>,
) -> Services {
    let raft = OnceLock::new();
    let replication = consensus.cluster().map(|cluster| {
        let _ = raft.set(cluster.raft().clone());
        Arc::new(Replication::new(
            vault.clone(),
            cluster.clone(),
            clock.clone(),
        ))
    });
    let registry = Registry::new(&purposes, &issuers);
    let consent = Arc::new(Consent {
        vault: vault.clone(),
        consensus: consensus.clone(),
        clock: clock.clone(),
        purposes,
        issuers,
        grant_cache: GrantCache::default(),
        refusals: Default::default(),
        identity: identity.clone(),
    });
    let documents = Documents {
        vault: vault.clone(),
        consensus: consensus.clone(),
        replication: replication.clone(),
        consent: consent.clone(),
        clock: clock.clone(),
    };
    let transparency = Transparency {
        vault: vault.clone(),
        log_key,
        salt_key,
        witnesses,
        checkpoints: CheckpointCache::default(),
    };
    Services {
        identity,
        vault,
        consensus,
        clock,
        documents,
        consent,
        transparency,
        registry,
        replication,
        raft,
        admission,
    }
}

/// Makes the initial membership unless the cluster already has one.
async fn bootstrap(cluster: &Cluster, members: BTreeMap<u64, String>) -> Result<(), Refusal> {
    let initialized = cluster
        .raft()
        .is_initialized()
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("Raft: {e}")))?;
    if initialized {
        return Ok(());
    }
    cluster.initialize(members).await?;
    tracing::info!(node = cluster.id(), "initialized the cluster membership");
    Ok(())
}
