//! A deterministic simulation of the cluster logic: real openraft instances
//! with the vault's real storage ([`LogStore`], [`StateMachine`], on a
//! [`MemStore`]) and the real state machine, connected by a simulated network
//! in one current-thread Tokio runtime with paused (virtual) time.
//!
//! A seed drives everything the test chooses: the fault schedule (crashes,
//! restarts, partitions, single cut links), each message's fate (delivered,
//! delayed a few ms, dropped, or its reply lost), the client's writes and the
//! pauses between steps, and each node's election timeout (openraft draws it
//! from an unseeded RNG in `[min, max)`; the simulation gives every node a
//! window one millisecond wide, so the draw has a single outcome).
//!
//! Each run prints its seed; reproduce one with
//! `VAULT_SIM_SEED=<seed> cargo test -p vault-node --test integration sim::` (or soak a
//! range with `VAULT_SIM_SEED=1000..1400`); `VAULT_SIM_TRACE=1` with
//! `-- --nocapture` prints every step. Each run gets a fresh current-thread
//! runtime with paused time (rather than one `#[tokio::test]` runtime for
//! all seeds), so no task or timer of one run leaks into the next.
//!
//! Checked, with the seed in every message: every acknowledged write is in
//! every node's final state; all nodes converge to the same last applied log
//! id, transparency log root and digest of the replicated column families;
//! no two nodes applied different entries at one index; a grant is never used
//! more than its `max_uses`; once a revocation is acknowledged no later use
//! succeeds, even after the old leader was cut off; and a cut-off leader
//! cannot confirm a linearizable read.

// openraft's network trait fixes the error type (`RPCError`, ~256 bytes);
// the helpers here return it unchanged, as `vault_node::consensus::raft::network` does.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, LogId, ServerState, SnapshotPolicy};
use pki::{
    AccessRequest, ContentHash, DocumentId, Grant, GrantBody, GrantId, GrantedDocument, Name,
    Purpose, RequestId, RequestScope, ResidentId, Role, Signature,
};
use vault_client::ErrorCode;
use vault_node::consensus::raft::{LogStore, Outcome, RaftHandle, StateMachine, TypeConfig};
use vault_node::engine::meta::{Cf, Entries, KeyValue, MetaStore, StoreError, Write};
use vault_node::engine::state::{
    Applied, Command, GrantEntry, Proposal, RequestEntry, RequestStatus, Seed,
};
use vault_node::storage::store::MemStore;

/// Seeds run when `VAULT_SIM_SEED` is not set.
const SEEDS: [u64; 16] = [
    1,
    2,
    3,
    7,
    11,
    42,
    99,
    1234,
    4321,
    9001,
    31337,
    65537,
    271828,
    314159,
    0xdead_beef,
    0x5eed_cafe_f00d,
];
/// The seed whose run is repeated to check the simulation is reproducible.
const REPEATED_SEED: u64 = 42;
/// Fault-schedule steps per run.
const STEPS: usize = 60;
/// Base of the unix times in proposals and grants.
const T0: i64 = 1_700_000_000;

// ---------------------------------------------------------------------------
// Seeded randomness.

/// splitmix64: tiny, good enough, and the same on every platform.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the bias is negligible here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// ---------------------------------------------------------------------------
// A store that records what its state machine applies.

/// Keys the vault's Raft storage keeps in [`Cf::RaftMeta`] (private to
/// `vault_node::consensus::raft::store`; repeated here to observe applies).
const LAST_APPLIED_KEY: &[u8] = b"last_applied";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// A [`MemStore`] that records, for every batch that advances the last
/// applied log id, which log entries were applied (index and BLAKE3 of the
/// entry as stored): the node's applied sequence, to compare across nodes.
#[derive(Default)]
struct Observed {
    inner: MemStore,
    record: Mutex<Record>,
}

#[derive(Default)]
struct Record {
    /// (index, hash of the entry) in apply order.
    applied: Vec<(u64, [u8; 32])>,
    /// Last log ids of installed snapshots.
    installed: Vec<u64>,
    /// Anything that should not happen.
    problems: Vec<String>,
}

impl Observed {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_applied(&self) -> Option<LogId<u64>> {
        let bytes = self.inner.get(Cf::RaftMeta, LAST_APPLIED_KEY).ok()??;
        serde_json::from_slice::<Option<LogId<u64>>>(&bytes)
            .ok()
            .flatten()
    }

    fn observe(&self, writes: &[Write]) {
        let mut applied_to = None;
        let mut snapshot = false;
        for write in writes {
            if let Write::Put {
                cf: Cf::RaftMeta,
                key,
                value,
            } = write
            {
                if key == LAST_APPLIED_KEY {
                    applied_to = Some(value);
                } else if key == SNAPSHOT_KEY {
                    snapshot = true;
                }
            }
        }
        let Some(value) = applied_to else { return };
        let mut record = self.record();
        let new: Option<LogId<u64>> = match serde_json::from_slice(value) {
            Ok(new) => new,
            Err(e) => {
                record
                    .problems
                    .push(format!("unreadable last applied: {e}"));
                return;
            }
        };
        let Some(new) = new else { return };
        if snapshot {
            record.installed.push(new.index);
            return;
        }
        let start = self.last_applied().map(|id| id.index + 1).unwrap_or(0);
        if new.index < start {
            record.problems.push(format!(
                "last applied went back from {} to {}",
                start - 1,
                new.index
            ));
        }
        for index in start..=new.index {
            match self.inner.get(Cf::RaftLog, &index.to_be_bytes()) {
                Ok(Some(entry)) => record
                    .applied
                    .push((index, *blake3::hash(&entry).as_bytes())),
                _ => record
                    .problems
                    .push(format!("applied entry {index} is not in the log")),
            }
        }
    }
}

impl MetaStore for Observed {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.scan_prefix(cf, prefix, limit)
    }

    fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.observe(writes);
        self.inner.write(writes)
    }

    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.scan_from(cf, start, limit)
    }

    fn last(&self, cf: Cf) -> Result<Option<KeyValue>, StoreError> {
        self.inner.last(cf)
    }
}

// ---------------------------------------------------------------------------
// The simulated network.

/// Counts of message fates: `refused` ones hit a down node or a cut link.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
struct Stats {
    sent: u64,
    refused: u64,
    dropped: u64,
    replies_lost: u64,
    delayed: u64,
    snapshot_chunks: u64,
}

/// Who is up (with the generation of its current Raft instance), which
/// links are cut, and the seeded fate of each message.
struct Net {
    rng: Rng,
    up: BTreeMap<u64, (u64, RaftHandle)>,
    /// Cut links, as (lower id, higher id).
    cut: BTreeSet<(u64, u64)>,
    drop_per_mille: u64,
    delay_max_ms: u64,
    stats: Stats,
}

type Router = Arc<Mutex<Net>>;

fn lock(router: &Router) -> MutexGuard<'_, Net> {
    router.lock().unwrap_or_else(|p| p.into_inner())
}

fn link(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

type Rpc<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// One node's view of the network (openraft's factory): `generation` is
/// the Raft instance it belongs to, so a crashed instance cannot send.
#[derive(Clone)]
struct SimNetwork {
    router: Router,
    from: u64,
    generation: u64,
}

struct SimPeer {
    router: Router,
    from: u64,
    generation: u64,
    to: u64,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> SimPeer {
        SimPeer {
            router: self.router.clone(),
            from: self.from,
            generation: self.generation,
            to: target,
        }
    }
}

/// A down node or a cut link: as the QUIC network answers when it has no
/// connection (openraft backs off before retrying).
fn unreachable<E: std::error::Error>(message: String) -> Rpc<E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(message)))
}

/// A dropped message or a lost reply: as the QUIC network answers when an
/// exchange fails or times out (openraft retries at once).
fn lost<E: std::error::Error>(message: String) -> Rpc<E> {
    RPCError::Network(NetworkError::new(&AnyError::error(message)))
}

impl SimPeer {
    /// Whether the link is up now; the target's Raft and generation if so.
    fn route<E: std::error::Error>(&self, net: &Net) -> Result<(u64, RaftHandle), Rpc<E>> {
        let sender_up = net.up.get(&self.from).map(|(g, _)| *g) == Some(self.generation);
        match net.up.get(&self.to) {
            _ if !sender_up => Err(unreachable(format!("node {} is down", self.from))),
            None => Err(unreachable(format!("node {} is down", self.to))),
            Some(_) if net.cut.contains(&link(self.from, self.to)) => Err(unreachable(format!(
                "link {}-{} is cut",
                self.from, self.to
            ))),
            Some((generation, raft)) => Ok((*generation, raft.clone())),
        }
    }

    /// Decides the message's fate; after its delay, hands back the target's
    /// Raft and whether to lose the reply.
    async fn deliver<E: std::error::Error>(&self) -> Result<(RaftHandle, bool), Rpc<E>> {
        let (generation, delay, lose_reply) = {
            let mut net = lock(&self.router);
            net.stats.sent += 1;
            let routed = self.route(&net);
            let (generation, _) = match routed {
                Ok(route) => route,
                Err(e) => {
                    net.stats.refused += 1;
                    return Err(e);
                }
            };
            let per_mille = net.drop_per_mille;
            if net.rng.chance(per_mille) {
                net.stats.dropped += 1;
                return Err(lost(format!("message {}->{} dropped", self.from, self.to)));
            }
            let delay_max = net.delay_max_ms;
            let delay = if delay_max > 0 && net.rng.chance(300) {
                net.stats.delayed += 1;
                net.rng.below(delay_max) + 1
            } else {
                0
            };
            let lose_reply = net.rng.chance(per_mille / 2);
            if lose_reply {
                net.stats.replies_lost += 1;
            }
            (generation, delay, lose_reply)
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        // The world may have changed while the message was in flight.
        let net = lock(&self.router);
        match self.route(&net)? {
            (now, raft) if now == generation => Ok((raft, lose_reply)),
            _ => Err(unreachable(format!("node {} restarted", self.to))),
        }
    }

    fn answer<T, E: std::error::Error>(
        &self,
        lose_reply: bool,
        result: Result<T, RaftError<u64, E>>,
    ) -> Result<T, Rpc<E>> {
        if lose_reply {
            return Err(lost(format!("reply {}->{} lost", self.to, self.from)));
        }
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Rpc> {
        let (raft, lose) = self.deliver().await?;
        let result = raft.append_entries(rpc).await;
        self.answer(lose, result)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Rpc<InstallSnapshotError>> {
        let (raft, lose) = self.deliver().await?;
        lock(&self.router).stats.snapshot_chunks += 1;
        let result = raft.install_snapshot(rpc).await;
        self.answer(lose, result)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, Rpc> {
        let (raft, lose) = self.deliver().await?;
        let result = raft.vote(rpc).await;
        self.answer(lose, result)
    }
}

// ---------------------------------------------------------------------------
// Proposals.

fn seed_for(n: u64) -> Seed {
    let mut nonce = [0u8; 32];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    let mut salt = [7u8; 32];
    salt[..8].copy_from_slice(&n.to_be_bytes());
    Seed {
        at: T0 + n as i64,
        nonce,
        salt,
        salt_proofs: Vec::new(),
    }
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn resident() -> ResidentId {
    ResidentId::parse("resident-1").unwrap()
}

fn document_id() -> DocumentId {
    DocumentId::from_bytes([3; 16])
}

/// A department's request, as recorded (signatures are not checked by
/// `apply`: the node checks them before proposing).
fn request_entry() -> RequestEntry {
    let request = AccessRequest {
        resident: resident(),
        department: name("tax-office"),
        scope: RequestScope::Documents(vec![document_id()]),
        purpose: Purpose::parse("housing-subsidy").unwrap(),
        ttl_s: 86_400,
        created_at: T0,
        nonce: [5; 16],
    };
    let signature = Signature([1; 64]);
    RequestEntry {
        request_id: request.id(&signature),
        request,
        signature,
        department_key_id: [2; 32],
        department_serial: "0a".into(),
        documents: vec![GrantedDocument {
            document_id: document_id(),
            content_hash: ContentHash([4; 32]),
        }],
        status: RequestStatus::Pending,
        expires_at: None,
    }
}

fn grant_entry(request_id: RequestId, max_uses: u32) -> GrantEntry {
    let body = GrantBody {
        request_id,
        resident: resident(),
        grantee: name("tax-office"),
        grantee_key_id: [2; 32],
        documents: vec![GrantedDocument {
            document_id: document_id(),
            content_hash: ContentHash([4; 32]),
        }],
        purpose: Purpose::parse("housing-subsidy").unwrap(),
        not_before: T0,
        not_after: T0 + 86_400,
        max_uses,
    };
    GrantEntry {
        grant: Grant {
            version: pki::GRANT_VERSION,
            body,
            consent: Signature([8; 64]),
            resident_cert: vec![1],
            seal: Signature([9; 64]),
            node_cert: vec![2],
        },
        grantee_serial: "0a".into(),
        issued_at: T0,
        uses: 0,
        revoked: None,
    }
}

// ---------------------------------------------------------------------------
// The simulation.

/// What the client learned from one write.
#[derive(Debug, Clone, PartialEq)]
enum WriteResult {
    /// Committed and applied at this log id, with this outcome.
    Acked(LogId<u64>, Outcome),
    /// Sent, but the answer never came: it may or may not be committed.
    Unknown(String),
    /// No leader took it; it was never appended.
    NotSent,
}

struct SimNode {
    id: u64,
    store: Arc<Observed>,
    raft: Option<RaftHandle>,
}

struct Sim {
    seed: u64,
    rng: Rng,
    router: Router,
    nodes: Vec<SimNode>,
    generation: u64,
    proposals: u64,
    /// (step, what happened): compared between two runs of one seed.
    trace: Vec<String>,
    /// Every acknowledged write.
    acked: Vec<(Proposal, LogId<u64>, Outcome)>,
    step: usize,
    grant: Option<(GrantId, u32)>,
    /// Set once a revocation of the grant was acknowledged.
    revoked: bool,
    crashes: u64,
}

/// What a run ends with; equal for two runs of one seed.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    last_applied: Option<LogId<u64>>,
    log_size: u64,
    log_root: vault_client::merkle::Hash,
    digest: [u8; 32],
    trace: Vec<String>,
    stats: Stats,
    /// Node count, stops, snapshots installed, grant uses acknowledged,
    /// whether the revocation was acknowledged.
    nodes: usize,
    crashes: u64,
    installed: usize,
    uses: usize,
    revoked: bool,
}

/// The Raft configuration of node `id`: the vault's, with a one-millisecond
/// election timeout window derived from the seed and the node, and
/// snapshots small and frequent enough to be exercised.
fn node_config(seed: u64, id: u64) -> openraft::Config {
    let mut rng = Rng::new(seed ^ id.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut config = vault_node::consensus::raft::config().unwrap();
    config.cluster_name = "vault-sim".into();
    config.election_timeout_min = 1_000 + id * 137 + rng.below(200);
    config.election_timeout_max = config.election_timeout_min + 1;
    config.snapshot_policy = SnapshotPolicy::LogsSinceLast(8);
    config.max_in_snapshot_log_to_keep = 2;
    config.purge_batch_size = 1;
    config.snapshot_max_chunk_size = 2048;
    config.validate().unwrap()
}

fn log_root(store: &dyn MetaStore) -> (u64, vault_client::merkle::Hash) {
    let size = vault_node::engine::log::size(store).unwrap();
    (
        size,
        vault_node::engine::log::subtree(store, 0, size).unwrap(),
    )
}

/// BLAKE3 over every key and value of the replicated column families.
fn digest(store: &dyn MetaStore) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for cf in Cf::ALL {
        if matches!(cf, Cf::RaftLog | Cf::RaftMeta) {
            continue;
        }
        for (key, value) in store.scan_from(cf, &[], usize::MAX).unwrap() {
            hasher.update(cf.name().as_bytes());
            for part in [&key, &value] {
                hasher.update(&(part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
        }
    }
    *hasher.finalize().as_bytes()
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let size = if rng.chance(250) { 5 } else { 3 };
        let net = Net {
            rng: Rng::new(seed.rotate_left(17) ^ 0x6e65_7477_6f72_6b00),
            up: BTreeMap::new(),
            cut: BTreeSet::new(),
            drop_per_mille: rng.below(120),
            delay_max_ms: rng.below(25),
            stats: Stats::default(),
        };
        let nodes = (1..=size)
            .map(|id| SimNode {
                id,
                store: Arc::new(Observed::default()),
                raft: None,
            })
            .collect();
        Sim {
            seed,
            rng,
            router: Arc::new(Mutex::new(net)),
            nodes,
            generation: 0,
            proposals: 0,
            trace: Vec::new(),
            acked: Vec::new(),
            step: 0,
            grant: None,
            revoked: false,
            crashes: 0,
        }
    }

    fn note(&mut self, what: String) {
        let line = format!("{:>2} {what}", self.step);
        if std::env::var_os("VAULT_SIM_TRACE").is_some() {
            eprintln!("sim seed {}: {line}", self.seed);
        }
        self.trace.push(line);
    }

    fn fault_tolerance(&self) -> usize {
        (self.nodes.len() - 1) / 2
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft.is_some())
            .collect()
    }

    fn crashed(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft.is_none())
            .collect()
    }

    async fn start(&mut self, i: usize) {
        self.generation += 1;
        let node = &mut self.nodes[i];
        let network = SimNetwork {
            router: self.router.clone(),
            from: node.id,
            generation: self.generation,
        };
        let raft = openraft::Raft::new(
            node.id,
            Arc::new(node_config(self.seed, node.id)),
            network,
            LogStore::new(node.store.clone()),
            StateMachine::new(node.store.clone()),
        )
        .await
        .unwrap();
        lock(&self.router)
            .up
            .insert(node.id, (self.generation, raft.clone()));
        node.raft = Some(raft);
    }

    /// Stops node `i`'s Raft; its store (its disk) stays.
    async fn crash(&mut self, i: usize) {
        let id = self.nodes[i].id;
        lock(&self.router).up.remove(&id);
        if let Some(raft) = self.nodes[i].raft.take() {
            raft.shutdown().await.unwrap();
        }
        self.crashes += 1;
    }

    fn isolate(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let others: Vec<u64> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|o| *o != id)
            .collect();
        let mut net = lock(&self.router);
        for other in others {
            net.cut.insert(link(id, other));
        }
    }

    fn heal(&mut self) {
        lock(&self.router).cut.clear();
    }

    /// The running node that believes it leads in the highest term
    /// (`avoid` excluded).
    fn leader(&self, avoid: Option<usize>) -> Option<usize> {
        self.running()
            .into_iter()
            .filter(|&i| Some(i) != avoid)
            .filter_map(|i| {
                let metrics = self.nodes[i].raft.as_ref()?.metrics();
                let metrics = metrics.borrow();
                (metrics.state == ServerState::Leader).then_some((metrics.current_term, i))
            })
            .max_by_key(|(term, i)| (*term, std::cmp::Reverse(*i)))
            .map(|(_, i)| i)
    }

    async fn await_leader(&self, avoid: Option<usize>, within: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = self.leader(avoid) {
                return Some(i);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn proposal(&mut self, command: Command) -> Proposal {
        self.proposals += 1;
        Proposal {
            command,
            seed: seed_for(self.seed.wrapping_mul(1000).wrapping_add(self.proposals)),
        }
    }

    fn record_command(&mut self) -> Command {
        if self.rng.chance(500) {
            Command::RecordRefusal {
                role: Role::Department,
                by: name("tax-office"),
                code: "grant.exhausted".into(),
                document_id: None,
                grant_id: None,
                request_id: None,
            }
        } else {
            Command::RecordAccess {
                document_id: document_id(),
                role: Role::Resident,
                by: name("resident-1"),
            }
        }
    }

    /// Sends `proposal` to one node (`Some`) or to whichever leads, following
    /// `ForwardToLeader` (which means it was not appended).
    async fn write_to(
        &mut self,
        label: &str,
        proposal: Proposal,
        only: Option<usize>,
    ) -> WriteResult {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let result = loop {
            let target = match only {
                Some(i) => Some(i),
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.await_leader(None, left).await
                }
            };
            let Some(i) = target else {
                break WriteResult::NotSent;
            };
            let Some(raft) = self.nodes[i].raft.clone() else {
                break WriteResult::NotSent;
            };
            let answer =
                tokio::time::timeout(Duration::from_secs(3), raft.client_write(proposal.clone()))
                    .await;
            match answer {
                Ok(Ok(response)) => break WriteResult::Acked(response.log_id, response.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                    if only.is_some() || tokio::time::Instant::now() >= deadline {
                        break WriteResult::NotSent;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Err(e)) => break WriteResult::Unknown(e.to_string()),
                Err(_) => break WriteResult::Unknown("no answer within 3 s".into()),
            }
        };
        if let WriteResult::Acked(log_id, outcome) = &result {
            self.acked
                .push((proposal.clone(), *log_id, outcome.clone()));
            self.check_ack(&proposal, outcome);
        }
        let shown = match &result {
            WriteResult::Acked(id, outcome) => format!("acked at {id}: {outcome:?}"),
            other => format!("{other:?}"),
        };
        self.note(format!("{label}: {shown}"));
        result
    }

    async fn write(&mut self, label: &str, command: Command) -> WriteResult {
        let proposal = self.proposal(command);
        self.write_to(label, proposal, None).await
    }

    /// Checks an acknowledged outcome against what the client knows.
    fn check_ack(&mut self, proposal: &Proposal, outcome: &Outcome) {
        let seed = self.seed;
        match (&proposal.command, outcome) {
            (Command::UseGrant { .. }, Outcome::Applied(Applied::GrantUsed { use_number, .. })) => {
                let (_, max_uses) = self.grant.expect("a grant");
                assert!(
                    !self.revoked,
                    "seed {seed}: use {use_number} of a grant whose revocation was acknowledged"
                );
                assert!(
                    *use_number <= max_uses,
                    "seed {seed}: use {use_number} of a grant allowing {max_uses}"
                );
            }
            (Command::UseGrant { .. }, Outcome::Refused(body)) => {
                if self.revoked {
                    assert_eq!(
                        body.code,
                        ErrorCode::GrantRevoked.as_str(),
                        "seed {seed}: a use after the revocation was refused for another reason"
                    );
                }
            }
            (Command::RevokeGrant { .. }, Outcome::Applied(Applied::GrantRevoked)) => {
                self.revoked = true;
            }
            (Command::UseGrant { .. } | Command::RevokeGrant { .. }, other) => {
                panic!("seed {seed}: unexpected outcome {other:?} of {proposal:?}")
            }
            (_, Outcome::Applied(_)) => {}
            (_, other) => panic!("seed {seed}: unexpected outcome {other:?} of {proposal:?}"),
        }
    }

    fn use_grant(&self) -> Option<Command> {
        let (grant_id, _) = self.grant?;
        Some(Command::UseGrant {
            grant_id,
            document_id: document_id(),
            at: T0 + 60,
        })
    }

    async fn setup(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
        let members: BTreeMap<u64, BasicNode> = self
            .nodes
            .iter()
            .map(|n| {
                let addr = format!("sim-{}", n.id);
                (n.id, BasicNode { addr })
            })
            .collect();
        self.nodes[0]
            .raft
            .as_ref()
            .unwrap()
            .initialize(members)
            .await
            .unwrap();
        let seed = self.seed;
        let request = request_entry();
        let request_id = request.request_id;
        let result = self
            .write("record request", Command::RecordRequest(request))
            .await;
        assert!(
            matches!(result, WriteResult::Acked(..)),
            "seed {seed}: the new cluster did not record the request: {result:?}"
        );
        let max_uses = 2 + self.rng.below(4) as u32;
        let entry = grant_entry(request_id, max_uses);
        let grant_id = entry.grant.id();
        let result = self.write("issue grant", Command::IssueGrant(entry)).await;
        assert!(
            matches!(result, WriteResult::Acked(..)),
            "seed {seed}: the new cluster did not issue the grant: {result:?}"
        );
        self.grant = Some((grant_id, max_uses));
    }

    /// One seeded fault or write.
    async fn random_step(&mut self) {
        let roll = self.rng.below(100);
        let running = self.running();
        let crashed = self.crashed();
        match roll {
            0..=44 => {
                let command = self.record_command();
                self.write("record", command).await;
            }
            45..=59 => {
                if let Some(command) = self.use_grant() {
                    self.write("use grant", command).await;
                }
            }
            60..=69 if crashed.len() < self.fault_tolerance() => {
                // Crash the leader more often than not: it is the interesting case.
                let victim = match self.leader(None) {
                    Some(leader) if self.rng.chance(600) => leader,
                    _ => running[self.rng.below(running.len() as u64) as usize],
                };
                self.crash(victim).await;
                self.note(format!("crash node {}", self.nodes[victim].id));
            }
            70..=79 if !crashed.is_empty() => {
                let back = crashed[self.rng.below(crashed.len() as u64) as usize];
                self.start(back).await;
                self.note(format!("restart node {}", self.nodes[back].id));
            }
            80..=87 => {
                if let Some(leader) = self.leader(None) {
                    self.isolate(leader);
                    self.note(format!("isolate leader {}", self.nodes[leader].id));
                }
            }
            88..=94 => {
                self.heal();
                self.note("heal".into());
            }
            95..=99 => {
                let n = self.nodes.len() as u64;
                let a = self.rng.below(n) + 1;
                let b = (a + self.rng.below(n - 1)) % n + 1;
                lock(&self.router).cut.insert(link(a, b));
                self.note(format!("cut {a}-{b}"));
            }
            _ => {
                let command = self.record_command();
                self.write("record", command).await;
            }
        }
        let pause = self.rng.below(500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    /// Revokes the grant behind the back of a leader cut off from the rest:
    /// the old leader can neither confirm a read nor count a use, and the
    /// new leader refuses every use after the acknowledged revocation.
    async fn revoke_dance(&mut self) {
        let seed = self.seed;
        let Some((grant_id, _)) = self.grant else {
            return;
        };
        self.heal();
        for i in self.crashed() {
            self.start(i).await;
        }
        let Some(old) = self.await_leader(None, Duration::from_secs(20)).await else {
            panic!("seed {seed}: no leader before the revocation");
        };
        self.isolate(old);
        self.note(format!("dance: isolate leader {}", self.nodes[old].id));
        let raft = self.nodes[old].raft.clone().unwrap();
        let read = tokio::time::timeout(Duration::from_secs(2), raft.ensure_linearizable()).await;
        assert!(
            !matches!(read, Ok(Ok(_))),
            "seed {seed}: a leader cut off from the majority confirmed a linearizable read"
        );
        self.note("dance: the cut-off leader confirmed no read".into());
        // A use sent to the cut-off leader: appended there, never committed.
        // It stays pending across the revocation and the heal.
        let use_on_old = self.use_grant().unwrap();
        let proposal = self.proposal(use_on_old);
        let mut pending = tokio::spawn(async move {
            raft.client_write(proposal)
                .await
                .map(|response| (response.log_id, response.data))
                .map_err(|e| e.to_string())
        });
        let early = tokio::time::timeout(Duration::from_secs(3), &mut pending).await;
        assert!(
            early.is_err(),
            "seed {seed}: a leader cut off from the majority answered a write: {early:?}"
        );
        self.note("dance: use on the cut-off leader: no answer within 3 s".into());
        let Some(new) = self.await_leader(Some(old), Duration::from_secs(20)).await else {
            panic!("seed {seed}: the majority elected no new leader");
        };
        self.note(format!("dance: node {} leads", self.nodes[new].id));
        let revoke = Command::RevokeGrant {
            grant_id,
            by: name("resident-1"),
            role: Role::Resident,
            at: T0 + 100,
        };
        let proposal = self.proposal(revoke);
        // A revocation is idempotent: retrying one whose answer was lost is safe.
        let mut revoked = false;
        for _ in 0..5 {
            let result = self.write_to("dance: revoke", proposal.clone(), None).await;
            if matches!(result, WriteResult::Acked(..)) {
                revoked = true;
                break;
            }
        }
        assert!(
            revoked,
            "seed {seed}: the majority did not acknowledge the revocation"
        );
        let proposal = self.proposal(self.use_grant().unwrap());
        let result = self
            .write_to("dance: use after revoke", proposal, None)
            .await;
        match &result {
            // check_ack asserted the refusal is grant.revoked.
            WriteResult::Acked(_, Outcome::Refused(_)) => {}
            // Drops may delay the answer past the client's patience.
            WriteResult::NotSent | WriteResult::Unknown(_) => {}
            other => panic!("seed {seed}: a use after the revocation answered {other:?}"),
        }
        self.heal();
        self.note("dance: heal".into());
        // The old leader learns of the new term; its uncommitted use is
        // discarded, so its client must not hear it was applied.
        let late = tokio::time::timeout(Duration::from_secs(30), &mut pending).await;
        let shown = match late {
            Err(_) => "still no answer 30 s after the heal".to_string(),
            Ok(Err(join)) => panic!("seed {seed}: the pending write's task failed: {join}"),
            Ok(Ok(Ok((log_id, outcome)))) => {
                assert!(
                    !matches!(outcome, Outcome::Applied(_)),
                    "seed {seed}: the use sent to the cut-off leader was applied at {log_id} \
                     after the revocation: {outcome:?}"
                );
                format!("acked at {log_id}: {outcome:?}")
            }
            Ok(Ok(Err(e))) => format!("answered {e}"),
        };
        self.note(format!(
            "dance: the use sent to the cut-off leader: {shown}"
        ));
    }

    /// Heals everything, restarts every crashed node, writes a barrier and
    /// waits until every node has applied the same last log id.
    async fn converge(&mut self) -> LogId<u64> {
        let seed = self.seed;
        self.heal();
        lock(&self.router).drop_per_mille = 0;
        for i in self.crashed() {
            self.start(i).await;
        }
        let mut barrier = None;
        for _ in 0..5 {
            let command = self.record_command();
            if let WriteResult::Acked(id, _) = self.write("barrier", command).await {
                barrier = Some(id);
                break;
            }
        }
        let barrier =
            barrier.unwrap_or_else(|| panic!("seed {seed}: the healed cluster took no write"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let applied: Vec<Option<LogId<u64>>> = self
                .nodes
                .iter()
                .map(|n| n.raft.as_ref().unwrap().metrics().borrow().last_applied)
                .collect();
            let first = applied[0];
            if first >= Some(barrier) && applied.iter().all(|a| *a == first) {
                // The read the cut-off leader could not confirm works here.
                let leader = self.await_leader(None, Duration::from_secs(10)).await;
                let raft = leader.and_then(|i| self.nodes[i].raft.clone());
                let raft = raft.unwrap_or_else(|| panic!("seed {seed}: no leader at the end"));
                let read =
                    tokio::time::timeout(Duration::from_secs(5), raft.ensure_linearizable()).await;
                assert!(
                    matches!(read, Ok(Ok(_))),
                    "seed {seed}: the healed leader cannot confirm a read: {read:?}"
                );
                return first.unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: the nodes did not converge: last applied {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks every invariant on the converged cluster.
    fn check(&self, last: LogId<u64>) -> Summary {
        let seed = self.seed;
        let mut views = Vec::new();
        for node in &self.nodes {
            let store: &dyn MetaStore = &*node.store;
            let (size, root) = log_root(store);
            views.push((node.store.last_applied(), size, root, digest(store)));
            let record = node.store.record();
            assert!(
                record.problems.is_empty(),
                "seed {seed}: node {}: {:?}",
                node.id,
                record.problems
            );
        }
        for (node, view) in self.nodes.iter().zip(&views) {
            assert_eq!(
                view.0,
                Some(last),
                "seed {seed}: node {} last applied differs",
                node.id
            );
            assert_eq!(
                (view.1, view.2),
                (views[0].1, views[0].2),
                "seed {seed}: node {} log root differs from node 1's",
                node.id
            );
            assert_eq!(
                view.3, views[0].3,
                "seed {seed}: node {} replicated state differs from node 1's",
                node.id
            );
        }

        // No two different entries applied at one index.
        let mut at: BTreeMap<u64, ([u8; 32], u64)> = BTreeMap::new();
        for node in &self.nodes {
            let record = node.store.record();
            let mut previous = None;
            for &(index, hash) in &record.applied {
                assert!(
                    previous < Some(index),
                    "seed {seed}: node {} applied index {index} after {previous:?}",
                    node.id
                );
                previous = Some(index);
                let (first, by) = *at.entry(index).or_insert((hash, node.id));
                assert_eq!(
                    first, hash,
                    "seed {seed}: nodes {by} and {} applied different entries at index {index}",
                    node.id
                );
            }
        }

        // Every acknowledged write is in every node's state.
        for (proposal, log_id, outcome) in &self.acked {
            for node in &self.nodes {
                let stored = node
                    .store
                    .get(Cf::Commands, &log_id.index.to_be_bytes())
                    .unwrap()
                    .map(|bytes| serde_json::from_slice::<Proposal>(&bytes).unwrap());
                match outcome {
                    Outcome::Applied(_) => assert_eq!(
                        stored.as_ref(),
                        Some(proposal),
                        "seed {seed}: node {} lost the write acknowledged at {log_id}",
                        node.id
                    ),
                    _ => assert_eq!(
                        stored, None,
                        "seed {seed}: node {} holds a command refused at {log_id}",
                        node.id
                    ),
                }
            }
        }

        // A grant is never used more than it allows.
        if let Some((grant_id, max_uses)) = self.grant {
            let uses: Vec<u32> = self
                .acked
                .iter()
                .filter_map(|(_, _, outcome)| match outcome {
                    Outcome::Applied(Applied::GrantUsed { use_number, .. }) => Some(*use_number),
                    _ => None,
                })
                .collect();
            let distinct: BTreeSet<u32> = uses.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                uses.len(),
                "seed {seed}: a use number was handed out twice: {uses:?}"
            );
            for node in &self.nodes {
                let counter = vault_node::engine::state::grant_counter(&*node.store, grant_id)
                    .unwrap()
                    .unwrap_or_else(|| panic!("seed {seed}: node {} lost the grant", node.id));
                assert!(
                    counter.uses <= max_uses,
                    "seed {seed}: node {} counted {} uses of a grant allowing {max_uses}",
                    node.id,
                    counter.uses
                );
                assert!(
                    counter.uses as usize >= uses.len(),
                    "seed {seed}: node {} counted {} uses, {} were acknowledged",
                    node.id,
                    counter.uses,
                    uses.len()
                );
                assert_eq!(
                    counter.revoked.is_some(),
                    self.revoked,
                    "seed {seed}: node {} disagrees on the revocation",
                    node.id
                );
            }
        }

        Summary {
            last_applied: Some(last),
            log_size: views[0].1,
            log_root: views[0].2,
            digest: views[0].3,
            trace: self.trace.clone(),
            stats: lock(&self.router).stats.clone(),
            nodes: self.nodes.len(),
            crashes: self.crashes,
            installed: self
                .nodes
                .iter()
                .map(|n| n.store.record().installed.len())
                .sum(),
            uses: self
                .acked
                .iter()
                .filter(|(_, _, o)| matches!(o, Outcome::Applied(Applied::GrantUsed { .. })))
                .count(),
            revoked: self.revoked,
        }
    }

    async fn shutdown(&mut self) {
        for i in self.running() {
            self.crash(i).await;
        }
    }
}

/// One run of the simulation; panics (with the seed) when an invariant fails.
async fn simulate(seed: u64) -> Summary {
    let mut sim = Sim::new(seed);
    sim.setup().await;
    let dance_at = STEPS * 2 / 3;
    for step in 0..STEPS {
        sim.step = step + 1;
        if step == dance_at {
            sim.revoke_dance().await;
        } else {
            sim.random_step().await;
        }
    }
    sim.step = STEPS + 1;
    let last = sim.converge().await;
    let summary = sim.check(last);
    sim.shutdown().await;
    eprintln!(
        "sim seed {seed}: {} nodes, {} writes acknowledged ({} grant uses, revoked: {}), \
         last applied {last}, {} stops, {} snapshots installed, {:?}",
        summary.nodes,
        sim.acked.len(),
        summary.uses,
        summary.revoked,
        summary.crashes,
        summary.installed,
        summary.stats
    );
    summary
}

/// Runs `seed` in a fresh current-thread runtime with paused time, so runs
/// share nothing (no leftover tasks, no timers) and start alike.
fn run(seed: u64) -> Summary {
    eprintln!(
        "sim seed {seed}: reproduce with VAULT_SIM_SEED={seed} cargo test -p vault-node --test integration sim::"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(simulate(seed))
}

/// The seeds `VAULT_SIM_SEED` names: one seed, or a range `FIRST..END`
/// (end excluded) for a longer soak; `None` when it is not set.
fn seeds_from_env() -> Option<Vec<u64>> {
    let text = std::env::var("VAULT_SIM_SEED").ok()?;
    let number = |s: &str| -> u64 {
        s.trim()
            .parse()
            .expect("VAULT_SIM_SEED is a u64 or a range FIRST..END")
    };
    Some(match text.split_once("..") {
        Some((first, end)) => (number(first)..number(end)).collect(),
        None => vec![number(&text)],
    })
}

#[test]
fn cluster_simulation_keeps_the_invariants() {
    let (seeds, all) = match seeds_from_env() {
        Some(seeds) => (seeds, false),
        None => (SEEDS.to_vec(), true),
    };
    let summaries: Vec<Summary> = seeds.into_iter().map(run).collect();
    if all {
        // The fixed seeds must reach the cases the simulation is for.
        let count = |f: fn(&Summary) -> bool| summaries.iter().filter(|s| f(s)).count();
        assert!(count(|s| s.nodes == 5) > 0, "no seed ran five nodes");
        assert!(count(|s| s.crashes > 0) > 0, "no seed stopped a node");
        assert!(
            count(|s| s.installed > 0) > 0,
            "no seed installed a snapshot"
        );
        assert!(count(|s| s.uses > 0) > 0, "no seed used the grant");
        assert_eq!(
            count(|s| s.revoked),
            summaries.len(),
            "a seed did not revoke"
        );
        assert!(
            count(|s| s.stats.dropped > 0 && s.stats.replies_lost > 0) > 0,
            "no seed lost messages"
        );
    }
}

#[test]
fn a_seed_replays_identically() {
    let seed = seeds_from_env()
        .and_then(|seeds| seeds.first().copied())
        .unwrap_or(REPEATED_SEED);
    let first = run(seed);
    let second = run(seed);
    assert_eq!(
        first.trace, second.trace,
        "seed {seed}: two runs took different steps"
    );
    assert_eq!(
        first, second,
        "seed {seed}: two runs ended in different states"
    );
}
