//! How a command becomes durable: the single-node [`ledger`] (group commit
//! on one RocksDB) or the openraft [`raft`] cluster, behind one interface,
//! [`Consensus`]: submit a command, wait for a linearizable read point, and
//! read the state it produced. A single node's commits run on their own
//! committer threads ([`Committer`]), never on the runtime's shared
//! blocking pool, so no number of slow callers can delay them.
//!
//! **Invariant:** a command is acknowledged only once it is durable (one
//! synced batch on a single node; committed by a quorum in a cluster), and
//! every node applies the same commands in the same order through
//! [`crate::engine::apply::apply`].

pub mod ledger;
pub mod raft;
pub mod seed;

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use vault_client::ErrorCode;

use crate::engine::meta::MetaStore;
use crate::engine::state::{Applied, Command, Proposal, StateError};
use crate::rules::clock::Clock;
use crate::Refusal;

pub use ledger::Ledger;
pub use raft::Cluster;
pub use seed::fresh_seed;

/// How this node makes commands durable (alone, or as a member of a
/// cluster), and the district salt key it proposes with.
pub struct Consensus {
    how: How,
    /// Signs the salt proof of a resident a command names for the first
    /// time ([`crate::engine::state::Seed::salt_proofs`]); `None`: salts
    /// are drawn at random (and residents cannot check them).
    salt_key: Option<Arc<pki::SaltSigner>>,
}

/// How a node makes commands durable.
pub enum How {
    /// The single-node ledger: group commits on the node's own RocksDB,
    /// made by its committer threads.
    Single(Arc<Committer>),
    /// An openraft cluster: writes are committed by a quorum, forwarded to
    /// the leader by a follower.
    Cluster(Arc<Cluster>),
}

/// Committer threads of the single-node ledger: enough for group commit
/// to batch the commands that arrive while one batch syncs.
pub const COMMITTER_THREADS: usize = 8;

type Job = (
    Proposal,
    tokio::sync::oneshot::Sender<Result<Applied, StateError>>,
);

/// The single-node ledger with its own committer threads: a submitted
/// command is queued to them and its result awaited, holding no thread of
/// the caller's.
pub struct Committer {
    ledger: Arc<Ledger<Arc<dyn MetaStore>>>,
    jobs: Mutex<std_mpsc::Sender<Job>>,
}

impl Committer {
    /// Starts [`COMMITTER_THREADS`] threads committing to `ledger`; they
    /// end when the committer is dropped.
    pub fn start(ledger: Arc<Ledger<Arc<dyn MetaStore>>>) -> Result<Self, Refusal> {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..COMMITTER_THREADS {
            let (ledger, rx) = (ledger.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("committer-{n}"))
                .spawn(move || commit_loop(&ledger, &rx))
                .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
        }
        Ok(Committer {
            ledger,
            jobs: Mutex::new(tx),
        })
    }

    async fn submit(&self, proposal: Proposal) -> Result<Applied, Refusal> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((proposal, tx));
        let stopped = || Refusal::new(ErrorCode::Internal, "the committer threads stopped");
        queued.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?.map_err(Refusal::from)
    }
}

fn commit_loop(ledger: &Ledger<Arc<dyn MetaStore>>, jobs: &Mutex<std_mpsc::Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((proposal, reply)) = job else {
            return;
        };
        let _ = reply.send(ledger.propose(proposal));
    }
}

impl Consensus {
    /// The single-node ledger, with its committer threads started.
    pub fn single(ledger: Arc<Ledger<Arc<dyn MetaStore>>>) -> Result<Self, Refusal> {
        Ok(Consensus {
            how: How::Single(Arc::new(Committer::start(ledger)?)),
            salt_key: None,
        })
    }

    /// A member of `cluster`.
    pub fn member(cluster: Arc<Cluster>) -> Self {
        Consensus {
            how: How::Cluster(cluster),
            salt_key: None,
        }
    }

    /// Proposes with the district salt key (see [`Consensus::submit`]).
    pub fn with_salt_key(mut self, salt_key: Option<Arc<pki::SaltSigner>>) -> Self {
        self.salt_key = salt_key;
        self
    }

    /// Applies `command`, timed by `clock`: through the single-node ledger
    /// (on its committer threads: a synced write), or through Raft. With a
    /// salt key, a resident the command names who has no salt yet gets the
    /// key's σ in the seed, which fixes their salt.
    pub async fn submit(&self, command: Command, clock: &dyn Clock) -> Result<Applied, Refusal> {
        let mut seed = fresh_seed(clock.now_unix());
        if let (Some(key), Some(resident)) = (&self.salt_key, command.named_resident()) {
            let known = crate::engine::log::salt(&*self.view(), resident)
                .map_err(|e| Refusal::new(ErrorCode::Storage, e.to_string()))?
                .is_some();
            if !known {
                let sigma = key.sign(resident)?;
                seed.salt_proofs.push(crate::engine::state::SaltProof {
                    resident: resident.clone(),
                    sigma,
                });
            }
        }
        let proposal = Proposal { command, seed };
        let cluster = match &self.how {
            How::Single(committer) => return committer.submit(proposal).await,
            How::Cluster(cluster) => cluster,
        };
        match cluster.propose(proposal).await?.into_result() {
            Ok(Some(applied)) => Ok(applied),
            Ok(None) => Err(Refusal::new(
                ErrorCode::Internal,
                "the write was applied as an internal entry",
            )),
            Err(e) => Err(Refusal::from(e)),
        }
    }

    /// In a cluster, waits for a linearizable read point (see
    /// [`Cluster::linearize`]); a single node's reads are always current.
    pub async fn linearize(&self) -> Result<(), Refusal> {
        match &self.how {
            How::Cluster(cluster) => cluster.linearize().await,
            How::Single(_) => Ok(()),
        }
    }

    /// The store holding the state the applied commands produced.
    pub fn view(&self) -> Arc<dyn MetaStore> {
        match &self.how {
            How::Single(committer) => committer.ledger.store().clone(),
            How::Cluster(cluster) => cluster.store().clone(),
        }
    }

    /// The single-node ledger, when this node runs alone (its blocking
    /// [`Ledger::submit`] suits callers already on a blocking thread).
    pub fn ledger(&self) -> Option<&Arc<Ledger<Arc<dyn MetaStore>>>> {
        match &self.how {
            How::Single(committer) => Some(&committer.ledger),
            How::Cluster(_) => None,
        }
    }

    /// The cluster, when this node is a member of one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        match &self.how {
            How::Cluster(cluster) => Some(cluster),
            How::Single(_) => None,
        }
    }
}
