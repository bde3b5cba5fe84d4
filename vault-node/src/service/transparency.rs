//! Serving the transparency log: signed checkpoints (only over a log whose
//! entries still match its tree), entries for auditors, inclusion and
//! consistency proofs for anyone, and a resident's own entries with their
//! details and proofs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::{Checkpoint, LogSigner, PeerCert, ResidentId, Role};
use vault_client::merkle::{self, Hash, ProofError};
use vault_client::smt;
use vault_client::wire::{AccessRecord, IndexLeaf, IndexProof, PageFill, Response, PAGE_LEN_MAX};
use vault_client::witness_client::Answer;
use vault_client::ErrorCode;

use crate::engine::log;
use crate::engine::meta::{Cf, MetaStore, StoreError};
use crate::engine::state::{self, Step};
use crate::rules::access::require_role;
use crate::storage::vault::Vault;
use crate::Refusal;

/// How long a verified checkpoint is reused before the log is verified
/// again (from the size verified last: only the entries added since).
pub const CHECKPOINT_REUSE_MS: u64 = 1_000;
/// How often every entry is re-read and re-hashed (a full check, in the
/// background), besides the first checkpoint after start.
pub const FULL_LOG_CHECK_S: u64 = 3_600;
/// Most entries on one page of a resident's accesses when the request
/// names no `limit`.
pub const ACCESSES_MAX: usize = 1_000;

/// How long one witness may take to cosign a checkpoint (both requests, when
/// the first learns its size from a 409), in milliseconds.
pub const WITNESS_TIMEOUT_MS: u64 = 2_000;
/// How long a witness that failed is left alone before it is asked again,
/// in milliseconds (checkpoints meanwhile go without its cosignature).
pub const WITNESS_RETRY_MS: u64 = 10_000;

/// A witness this node asks to cosign its checkpoints.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    /// Its URL prefix, `http://HOST:PORT[/PREFIX]`.
    pub url: String,
    /// Its verifier key: an answer counts only when its cosignature verifies.
    pub verifier: pki::WitnessVerifier,
}

/// The witnesses and what the node knows of each.
#[derive(Default)]
pub struct Witnesses {
    list: Vec<WitnessEndpoint>,
    state: tokio::sync::Mutex<Vec<WitnessState>>,
}

#[derive(Default, Clone)]
struct WitnessState {
    /// The size it cosigned last, as far as this node knows.
    known_size: Option<u64>,
    /// Its cosignature line of the latest checkpoint it cosigned.
    cosigned: Option<(u64, Hash, String)>,
    /// When it last failed.
    failed_at: Option<Instant>,
}

impl Witnesses {
    /// The node's witnesses.
    pub fn new(list: Vec<WitnessEndpoint>) -> Self {
        let state = tokio::sync::Mutex::new(vec![WitnessState::default(); list.len()]);
        Witnesses { list, state }
    }

    /// Their endpoints.
    pub fn list(&self) -> &[WitnessEndpoint] {
        &self.list
    }
}

/// What the log handlers use: the node's storage (the log lives in its
/// metadata), the district's log key (it signs checkpoints), the witnesses
/// that cosign them and the last verified checkpoint.
pub struct Transparency {
    /// This node's storage.
    pub vault: Arc<Vault>,
    /// The district's log key, the same on every node: its name is the
    /// origin, so every node signs the same checkpoint at a given size.
    pub log_key: Arc<LogSigner>,
    /// The district salt key: `accesses` gives a resident its σ, from which
    /// they derive and check their salt. `None`: no σ (the resident's client
    /// then cannot call its list complete).
    pub salt_key: Option<Arc<pki::SaltSigner>>,
    /// The witnesses asked to cosign each new checkpoint.
    pub witnesses: Witnesses,
    /// The last verified checkpoint.
    pub checkpoints: CheckpointCache,
}

/// A signed checkpoint as cached: when it was made, its size, root, note and
/// the resident index at its size.
type Cached = (Instant, u64, Hash, String, smt::Tree);

/// A cached, verified checkpoint with the resident index at its size, and
/// what the last verification established (so the next one checks only the
/// entries added since).
#[derive(Default)]
pub struct CheckpointCache {
    last: std::sync::Mutex<Option<Cached>>,
    /// One verification at a time; waiters reuse its result.
    verifying: tokio::sync::Mutex<()>,
    /// The verified prefix, the last full check, damage a background full
    /// check found; shared with that check's task.
    check: Arc<std::sync::Mutex<LogCheck>>,
    /// The resident index, advanced to each new checkpoint's size (on a
    /// blocking thread, hence shared).
    index: Arc<std::sync::Mutex<ResidentIndex>>,
}

/// The state of the node's checks of its own log.
#[derive(Default)]
struct LogCheck {
    /// What the last successful verification established; `None` before the
    /// first one (the first checkpoint after start checks every entry) and
    /// after any failure.
    verified: Option<log::Verified>,
    /// When the last full check (every entry) passed.
    full_at: Option<Instant>,
    /// A full check in the background is running.
    background: bool,
    /// What a background full check found: until a full check passes
    /// again, every checkpoint checks every entry (and is refused).
    damage: Option<Refusal>,
}

impl CheckpointCache {
    fn check(&self) -> std::sync::MutexGuard<'_, LogCheck> {
        self.check.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The resident index ([`smt`]) over the first `size` log entries: each
/// resident tag's newest entry and count. Kept in memory and advanced
/// entry by entry (one leaf update, about log2(residents) hashes and new
/// nodes, per tagged entry); rebuilt at start by reading the whole log
/// once, at the first checkpoint (O(entries) reads and O(entries ·
/// log2(residents)) hashes; not persisted). The tree is persistent, so the
/// snapshot a checkpoint keeps shares every node with it (copying one
/// pointer, not the index). Derived only from the entries, so every node
/// of a cluster computes the same root at the same size.
#[derive(Default)]
pub struct ResidentIndex {
    size: u64,
    tree: smt::Tree,
}

impl ResidentIndex {
    /// Advances over entries `self.size..size` (read from `store`).
    fn advance(&mut self, store: &dyn MetaStore, size: u64) -> Result<(), Refusal> {
        let storage = |e: StoreError| Refusal::new(ErrorCode::Storage, e.to_string());
        while self.size < size {
            let page = log::entries(store, self.size, size - self.size).map_err(storage)?;
            if page.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::LogCorrupt,
                    format!("log entry {} is missing", self.size),
                ));
            }
            for bytes in page {
                let index = self.size;
                let entry = pki::LogEntry::parse(&bytes).map_err(|_| {
                    Refusal::new(
                        ErrorCode::LogCorrupt,
                        format!("log entry {index} does not parse"),
                    )
                })?;
                let tag = entry.resident_tag;
                if tag != [0; 32] {
                    let count = self.tree.head_of(&tag).map_or(0, |(_, c)| c) + 1;
                    self.tree.insert_head(tag, index, count);
                }
                self.size += 1;
            }
        }
        Ok(())
    }
}

impl From<ProofError> for Refusal {
    fn from(e: ProofError) -> Self {
        Refusal::new(ErrorCode::LogRange, e.to_string())
    }
}

/// The log's origin line: the log key's name (e.g. `district.example/vault`).
pub fn origin(ctx: &Transparency) -> String {
    ctx.log_key.origin().to_string()
}

/// A signed checkpoint over the current log, after checking the entries
/// added since the last verification against the stored tree (every entry
/// at the first checkpoint after start, and after a background full check
/// found damage); reused for [`CHECKPOINT_REUSE_MS`].
pub async fn checkpoint(ctx: &Transparency) -> Result<(u64, Hash, String), Refusal> {
    let (size, root, note, _) = checkpoint_indexed(ctx).await?;
    Ok((size, root, note))
}

/// [`checkpoint`], with the resident index at its size (whose root its
/// note carries as the `resident-index` line).
pub async fn checkpoint_indexed(
    ctx: &Transparency,
) -> Result<(u64, Hash, String, smt::Tree), Refusal> {
    let _one = ctx.checkpoints.verifying.lock().await;
    {
        let cached = ctx
            .checkpoints
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, size, root, note, index)) = cached.as_ref() {
            if at.elapsed() < Duration::from_millis(CHECKPOINT_REUSE_MS) {
                return Ok((*size, *root, note.clone(), index.clone()));
            }
        }
    }
    let signed = fresh_checkpoint(ctx).await?;
    *ctx.checkpoints
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((
        Instant::now(),
        signed.0,
        signed.1,
        signed.2.clone(),
        signed.3.clone(),
    ));
    start_full_check_if_due(ctx);
    Ok(signed)
}

/// Verifies the log as [`checkpoint`] does, advances the resident index to
/// its size and signs a note over both, never reusing an earlier note (what
/// a checkpoint costs when it is not reused). The index returned is a
/// snapshot sharing structure with the live one (one pointer copied).
pub async fn fresh_checkpoint(
    ctx: &Transparency,
) -> Result<(u64, Hash, String, smt::Tree), Refusal> {
    let base = {
        let check = ctx.checkpoints.check();
        check.verified.clone().filter(|_| check.damage.is_none())
    };
    let vault = ctx.vault.clone();
    let index = ctx.checkpoints.index.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let store = vault.store();
        let size = log::size(store).map_err(|e| Refusal::new(ErrorCode::Storage, e.to_string()))?;
        let full = || log::verify_from(store, &log::Verified::default(), size);
        let verified = match &base {
            // Only the new entries; on any doubt, every entry (which names
            // the first bad one, or finds nothing wrong after all).
            Some(base) => log::verify_from(store, base, size)
                .or_else(|_| full())
                .map(|v| (v, false)),
            None => full().map(|v| (v, true)),
        }?;
        let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
        index.advance(store, verified.0.size())?;
        Ok::<_, Refusal>((verified.0, verified.1, index.tree.clone()))
    })
    .await
    .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    let (outcome, tree) = match outcome {
        Ok((verified, full, tree)) => (Ok((verified, full)), Some(tree)),
        Err(refusal) => (Err(refusal), None),
    };
    let verified = {
        let mut check = ctx.checkpoints.check();
        match outcome {
            Ok((verified, full)) => {
                if full {
                    check.full_at = Some(Instant::now());
                    check.damage = None;
                }
                check.verified = Some(verified.clone());
                verified
            }
            Err(refusal) => {
                check.verified = None;
                return Err(refusal);
            }
        }
    };
    let (size, root) = (verified.size(), verified.root());
    let tree = tree.unwrap_or_default();
    let checkpoint = Checkpoint {
        origin: origin(ctx),
        size,
        root,
        resident_index: Some(tree.root()),
    };
    let note = checkpoint.sign(&ctx.log_key);
    crate::metrics::METRICS.checkpoint_signed(unix_now());
    let note = cosign(ctx, &checkpoint, note).await;
    Ok((size, root, note, tree))
}

/// Seconds since 1970 by the system clock (for the checkpoint-age metric only).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Appends the witnesses' cosignatures to a signed note: each witness is
/// asked (concurrently, each within [`WITNESS_TIMEOUT_MS`]) unless it
/// already cosigned this size and root, or failed within
/// [`WITNESS_RETRY_MS`]; a witness that fails is left out (`warn`), so a
/// witness that is down never stalls checkpoints.
async fn cosign(ctx: &Transparency, checkpoint: &Checkpoint, note: String) -> String {
    let list = ctx.witnesses.list();
    if list.is_empty() {
        return note;
    }
    let mut states = ctx.witnesses.state.lock().await;
    let (size, root) = (checkpoint.size, checkpoint.root);
    let body = checkpoint.body();
    let mut asks = tokio::task::JoinSet::new();
    for (i, (witness, state)) in list.iter().zip(states.iter()).enumerate() {
        if matches!(&state.cosigned, Some((s, r, _)) if *s == size && *r == root) {
            continue;
        }
        let retry = Duration::from_millis(WITNESS_RETRY_MS);
        if state.failed_at.is_some_and(|at| at.elapsed() < retry) {
            continue;
        }
        let ask = Ask {
            vault: ctx.vault.clone(),
            witness: witness.clone(),
            known: state.known_size,
            size,
            body: body.clone(),
            note: note.clone(),
        };
        asks.spawn(async move {
            let timeout = Duration::from_millis(WITNESS_TIMEOUT_MS);
            let mut known = ask.known;
            let outcome = match tokio::time::timeout(timeout, ask.run(&mut known)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no cosignature within {WITNESS_TIMEOUT_MS} ms")),
            };
            (i, known, outcome)
        });
    }
    while let Some(joined) = asks.join_next().await {
        let Ok((i, known, outcome)) = joined else {
            continue;
        };
        let state = &mut states[i];
        state.known_size = known;
        match outcome {
            Ok(line) => {
                state.known_size = Some(size);
                state.failed_at = None;
                state.cosigned = Some((size, root, line));
            }
            Err(why) => {
                state.failed_at = Some(Instant::now());
                tracing::warn!(
                    witness = %list[i].url,
                    name = list[i].verifier.name(),
                    size,
                    %why,
                    "checkpoint served without this witness's cosignature"
                );
            }
        }
    }
    let mut note = note;
    for state in states.iter() {
        if let Some((s, r, line)) = &state.cosigned {
            if *s == size && *r == root && note.len() + line.len() < pki::NOTE_LEN_MAX {
                note.push_str(line);
                note.push('\n');
            }
        }
    }
    note
}

/// One witness asked to cosign one checkpoint.
struct Ask {
    vault: Arc<Vault>,
    witness: WitnessEndpoint,
    known: Option<u64>,
    size: u64,
    body: String,
    note: String,
}

impl Ask {
    /// `old` is the size the witness cosigned last as far as the node knows
    /// (0 at first); a 409 tells its size, and the request is made once more
    /// from there. Answers the verified cosignature line.
    async fn run(&self, known: &mut Option<u64>) -> Result<String, String> {
        let mut old = known.unwrap_or(0);
        for _ in 0..2 {
            if old > self.size {
                return Err(format!(
                    "the witness has cosigned size {old}, beyond this node's {}",
                    self.size
                ));
            }
            let proof = if old == 0 || old == self.size {
                Vec::new()
            } else {
                let (vault, size) = (self.vault.clone(), self.size);
                tokio::task::spawn_blocking(move || {
                    let store = vault.store();
                    merkle::consistency_proof(old, size, &mut |s, l| log::subtree(store, s, l))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("no consistency proof from {old}: {}", e.message))?
            };
            let request = vault_client::witness::AddCheckpoint {
                old,
                proof,
                note: self.note.clone(),
            };
            let timeout = Duration::from_millis(WITNESS_TIMEOUT_MS);
            match vault_client::witness_client::add_checkpoint(&self.witness.url, &request, timeout)
                .await?
            {
                Answer::Cosigned(lines) => {
                    return lines
                        .into_iter()
                        .find(|l| {
                            matches!(
                                self.witness.verifier.verify_line(&self.body, l),
                                Ok(Some(_))
                            )
                        })
                        .ok_or_else(|| {
                            "the answer holds no valid cosignature by its key".to_string()
                        });
                }
                Answer::Conflict(latest) => {
                    *known = Some(latest);
                    old = latest;
                }
                Answer::Refused { status, text } => {
                    return Err(format!("refused with HTTP {status}: {}", text.trim_end()));
                }
            }
        }
        Err(format!("the witness's size kept changing (last {old})"))
    }
}

/// Every [`FULL_LOG_CHECK_S`], re-reads and re-hashes every entry on a
/// blocking thread, without holding up checkpoints; damage it finds makes
/// the next checkpoint check every entry (and refuse, naming it).
fn start_full_check_if_due(ctx: &Transparency) {
    {
        let mut check = ctx.checkpoints.check();
        let due = check
            .full_at
            .is_some_and(|at| at.elapsed() >= Duration::from_secs(FULL_LOG_CHECK_S));
        if !due || check.background {
            return;
        }
        check.background = true;
    }
    let (vault, shared) = (ctx.vault.clone(), ctx.checkpoints.check.clone());
    tokio::task::spawn_blocking(move || {
        let store = vault.store();
        let result = log::size(store)
            .map_err(|e| Refusal::new(ErrorCode::Storage, e.to_string()))
            .and_then(|size| log::verify(store, size));
        let mut check = shared.lock().unwrap_or_else(|p| p.into_inner());
        check.background = false;
        check.full_at = Some(Instant::now());
        if let Err(refusal) = result {
            tracing::error!(code = %refusal.code, "the full check of the log found damage");
            check.damage = Some(refusal);
        }
    });
}

/// Handles the log requests.
pub async fn handle(
    ctx: &Transparency,
    caller: &PeerCert,
    request: vault_client::wire::Request,
) -> Result<Response, Refusal> {
    use vault_client::wire::Request;
    match request {
        Request::Checkpoint => Ok(Response::Checkpoint {
            note: checkpoint(ctx).await?.2,
        }),
        Request::LogEntries { start, count } => entries(ctx, caller, start, count),
        Request::Receipt { index } => receipt(ctx, caller, index).await,
        Request::InclusionProof { index, tree_size } => {
            let size = match tree_size {
                Some(size) => size,
                None => current_size(ctx)?,
            };
            inclusion(ctx, index, size)
        }
        Request::ConsistencyProof { from, to } => consistency(ctx, from, to),
        Request::Accesses {
            all,
            cursor,
            limit,
            tree_size,
        } => {
            let page = AccessPage {
                all,
                cursor,
                limit,
                tree_size,
            };
            accesses(ctx, caller, page).await
        }
        other => Err(Refusal::new(
            ErrorCode::Internal,
            format!("unrouted {other:?}"),
        )),
    }
}

fn current_size(ctx: &Transparency) -> Result<u64, Refusal> {
    log::size(ctx.vault.store()).map_err(|e| Refusal::new(ErrorCode::Storage, e.to_string()))
}

fn entries(
    ctx: &Transparency,
    caller: &PeerCert,
    start: u64,
    count: u64,
) -> Result<Response, Refusal> {
    require_role(
        caller,
        Role::Auditor,
        "read the log's entries (residents use `vault accesses`)",
    )?;
    let entries = log::entries(ctx.vault.store(), start, count)
        .map_err(|e| Refusal::new(ErrorCode::Storage, e.to_string()))?;
    // Bounded in bytes as well as in count: the auditor asks again from
    // `start` plus what it received.
    let mut fill = PageFill::new(Some(u32::MAX), PAGE_LEN_MAX);
    let entries = entries
        .iter()
        .map(hex::encode)
        .take_while(|e| fill.admit(e.len() + 2))
        .collect();
    Ok(Response::LogEntries { start, entries })
}

fn check_size(ctx: &Transparency, size: u64) -> Result<(), Refusal> {
    let current = current_size(ctx)?;
    if size > current {
        return Err(Refusal::new(
            ErrorCode::LogRange,
            format!("the log has {current} entries, not {size}"),
        ));
    }
    Ok(())
}

fn inclusion(ctx: &Transparency, index: u64, size: u64) -> Result<Response, Refusal> {
    check_size(ctx, size)?;
    let store = ctx.vault.store();
    let proof = merkle::inclusion_proof(index, size, &mut |s, l| log::subtree(store, s, l))?;
    let leaf = log::subtree(store, index, 1)?;
    let root = log::subtree(store, 0, size)?;
    Ok(Response::InclusionProof {
        leaf_index: index,
        tree_size: size,
        leaf_hash: hex::encode(leaf),
        root_hash: hex::encode(root),
        inclusion_proof: proof.iter().map(hex::encode).collect(),
    })
}

/// A receipt for entry `index` against the current signed checkpoint,
/// for a caller who may see that entry: auditors and nodes any, a
/// department the entries it is the actor of, a resident the entries with
/// their tag. Anyone else is refused without learning what the entry is.
async fn receipt(ctx: &Transparency, caller: &PeerCert, index: u64) -> Result<Response, Refusal> {
    // A note over the log as it is now (a fetch asks for its receipt right
    // after it, so the reused one would predate the entry), verified
    // incrementally under the one-at-a-time lock, and not put in the reuse
    // cache, so other callers' checkpoints are not made staler by it.
    let (size, _, note, _) = {
        let _one = ctx.checkpoints.verifying.lock().await;
        fresh_checkpoint(ctx).await?
    };
    if index >= size {
        return Err(Refusal::new(
            ErrorCode::LogRange,
            format!("entry {index} is not in the signed log (size {size})"),
        ));
    }
    let store = ctx.vault.store();
    let storage =
        |e: crate::engine::meta::StoreError| Refusal::new(ErrorCode::Storage, e.to_string());
    let bytes = log::entries(store, index, 1)
        .map_err(storage)?
        .into_iter()
        .next()
        .ok_or_else(|| Refusal::new(ErrorCode::LogRange, format!("no entry {index}")))?;
    let entry = pki::LogEntry::parse(&bytes)
        .map_err(|e| Refusal::new(ErrorCode::LogCorrupt, e.to_string()))?;
    let allowed = match caller.role {
        Role::Auditor | Role::Node => true,
        Role::Department | Role::Authority => {
            entry.actor_role == caller.role && entry.actor == caller.name.as_str()
        }
        Role::Resident => {
            let resident = pki::ResidentId::parse(caller.name.as_str())
                .map_err(|e| Refusal::new(ErrorCode::Forbidden, e.to_string()))?;
            log::salt(store, &resident)
                .map_err(storage)?
                .is_some_and(|salt| pki::resident_tag(&salt, &resident) == entry.resident_tag)
        }
    };
    if !allowed {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("entry {index} is not one you took part in; only auditors receive any entry's receipt"),
        ));
    }
    let proof = merkle::inclusion_proof(index, size, &mut |s, l| log::subtree(store, s, l))?;
    Ok(Response::Receipt {
        entry: hex::encode(&bytes),
        inclusion_proof: proof.iter().map(hex::encode).collect(),
        note,
    })
}

fn consistency(ctx: &Transparency, from: u64, to: u64) -> Result<Response, Refusal> {
    check_size(ctx, to)?;
    let store = ctx.vault.store();
    let proof = merkle::consistency_proof(from, to, &mut |s, l| log::subtree(store, s, l))?;
    Ok(Response::ConsistencyProof {
        old_size: from,
        new_size: to,
        old_root: hex::encode(log::subtree(store, 0, from)?),
        new_root: hex::encode(log::subtree(store, 0, to)?),
        consistency_proof: proof.iter().map(hex::encode).collect(),
    })
}

/// What one page of a resident's accesses asks for.
struct AccessPage {
    all: bool,
    cursor: Option<String>,
    limit: Option<u32>,
    tree_size: Option<u64>,
}

/// One page of the resident's entries (fetches only unless `all`), oldest
/// first, among the first `tree_size` entries of the log (the current
/// checkpoint's size when absent), each with its inclusion proof against
/// that size. The cursor is the next entry's index (hex, 8 bytes); the page
/// is bounded in count and bytes ([`state::page`]). Refusals by strangers
/// cannot push fetches out: the walk reaches every entry.
async fn accesses(
    ctx: &Transparency,
    caller: &PeerCert,
    request: AccessPage,
) -> Result<Response, Refusal> {
    require_role(caller, Role::Resident, "read their own accesses")?;
    let resident = ResidentId::parse(caller.name.as_str())?;
    let (current, _, note, index) = checkpoint_indexed(ctx).await?;
    let size = request.tree_size.unwrap_or(current);
    if size > current {
        return Err(Refusal::new(
            ErrorCode::LogRange,
            format!("the log's checkpoint has {current} entries, not {size}"),
        ));
    }
    let store = ctx.vault.store();
    let storage =
        |e: crate::engine::meta::StoreError| Refusal::new(ErrorCode::Storage, e.to_string());
    // σ fixes the salt of a resident who has none yet (the one their first
    // entry will get); a stored salt is sent as it is, σ beside it, and the
    // client checks the two agree.
    let sigma = match &ctx.salt_key {
        Some(key) => Some(key.sign(&resident)?),
        None => None,
    };
    let stored = log::salt(store, &resident).map_err(storage)?;
    let Some(salt) = stored.or_else(|| sigma.as_deref().map(pki::salt_from_proof)) else {
        return Ok(Response::Accesses {
            note,
            salt: String::new(),
            entries: Vec::new(),
            truncated: false,
            next_cursor: None,
            index: None,
            salt_proof: None,
        });
    };
    let tag = pki::resident_tag(&salt, &resident);
    let index = (size == current).then(|| index_proof(&index, &tag));
    let from = state::page_from(request.cursor.as_deref())?;
    let fill = PageFill::new(request.limit, ACCESSES_MAX);
    let page = state::page(
        store,
        Cf::LogByTag,
        &tag,
        from.as_deref(),
        fill,
        &mut |key| {
            let Some(index) = key.get(32..40).and_then(|b| b.try_into().ok()) else {
                return Ok(Step::Skip);
            };
            let index = u64::from_be_bytes(index);
            if index >= size {
                return Ok(Step::End);
            }
            access_record(store, index, size, request.all)
        },
    )?;
    Ok(Response::Accesses {
        note,
        salt: hex::encode(salt),
        entries: page.items,
        truncated: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        index,
        salt_proof: sigma.map(hex::encode),
    })
}

/// The index proof for `tag` in `index` (the resident index at the
/// checkpoint's size), with the head and count its leaf commits to. Taken
/// from the index alone: if the node's tag index (`log_by_tag`) has lost an
/// entry, the page omits it and the resident's walk of the chain says so.
fn index_proof(index: &smt::Tree, tag: &[u8; 32]) -> IndexProof {
    let (head, count) = index.head_of(tag).unwrap_or((0, 0));
    let proof = index.prove(tag);
    let other_leaf = match proof.terminal {
        smt::Terminal::Leaf { key, value } if key != *tag => Some(IndexLeaf {
            key: hex::encode(key),
            value: hex::encode(value),
        }),
        _ => None,
    };
    IndexProof {
        head,
        count,
        siblings: proof.siblings.iter().map(hex::encode).collect(),
        other_leaf,
    }
}

/// Entry `index` with its detail and its proof against `size`, if it is
/// one the page shows.
fn access_record(
    store: &dyn MetaStore,
    index: u64,
    size: u64,
    all: bool,
) -> Result<Step<AccessRecord>, Refusal> {
    let storage = |e: StoreError| Refusal::new(ErrorCode::Storage, e.to_string());
    let Some((entry, detail)) = log::entry_with_detail(store, index).map_err(storage)? else {
        return Ok(Step::Skip);
    };
    // Without `all`: fetches, and disclosures of statutory orders (whose
    // sealed fetches the client reads with `Request::Disclosure`).
    let event = pki::LogEntry::parse(&entry).ok().map(|e| e.event);
    if !all
        && !matches!(
            event,
            Some(pki::LogEvent::Fetch | pki::LogEvent::OrderDisclosed)
        )
    {
        return Ok(Step::Skip);
    }
    let proof = merkle::inclusion_proof(index, size, &mut |s, l| log::subtree(store, s, l))?;
    Ok(Step::Item(AccessRecord {
        index,
        entry: hex::encode(entry),
        detail,
        inclusion_proof: proof.iter().map(hex::encode).collect(),
    }))
}
