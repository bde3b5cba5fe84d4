//! openraft's storage-v2 traits on a [`MetaStore`] (RocksDB in production).
//!
//! Every method does its store I/O inline: the calls are short and
//! openraft serialises them per store; moving them to blocking threads is
//! a later optimisation. Log appends are synced before they return, or,
//! with [`LogStore::with_background_flush`], reported flushed by a
//! background thread once synced; votes, truncations and purges are synced
//! before they return; a state-machine apply is written unsynced (the
//! entry is already durable in the Raft log).

// openraft's traits fix the error type (`StorageError`, ~224 bytes); the
// helpers here return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{Outcome, TypeConfig};
use crate::engine::apply::apply;
use crate::engine::meta::{Cf, MetaStore, Write};
use crate::engine::state::StateError;
use crate::storage::overlay::Overlay;

type Error = StorageError<u64>;
/// A snapshot's metadata (its last log id, membership and id).
pub type Meta = SnapshotMeta<u64, openraft::BasicNode>;
/// The last applied log id and the membership it carries.
type AppliedState = (
    Option<LogId<u64>>,
    StoredMembership<u64, openraft::BasicNode>,
);

/// Keys in [`Cf::RaftMeta`].
const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";
const LAST_APPLIED_KEY: &[u8] = b"last_applied";
const MEMBERSHIP_KEY: &[u8] = b"membership";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// How many log entries a proposal's outcome is kept for, so that a
/// repeated copy of the same proposal (same seed) committed within that
/// many entries is answered with it instead of being applied again.
/// Counted in log entries, not seconds, so no node's clock can shorten it;
/// a resend follows its original within [`CLUSTER_DEADLINE_MS`](crate::rules::placement::CLUSTER_DEADLINE_MS),
/// far fewer entries than this even at peak load.
pub const PROPOSAL_OUTCOME_WINDOW: u64 = 30_000;
/// How far below the window's edge pruning looks for outcomes left
/// behind (blank and membership entries advance the edge without pruning),
/// in log entries. Starting there, not at the oldest key, keeps pruning
/// from walking over the tombstones of everything pruned before.
const PROPOSAL_PRUNE_LOOKBACK: u64 = 4_096;
/// Expired outcomes deleted per applied proposal, at most: more than one,
/// so the table shrinks back after a burst of blank or membership entries.
const PROPOSAL_PRUNE_MAX: usize = 4;
/// Key prefix of an outcome in [`Cf::Proposals`], by seed.
const OUTCOME_PREFIX: u8 = b'p';
/// Key prefix of the age index in [`Cf::Proposals`], by log index.
const AGE_PREFIX: u8 = b'i';
/// Bytes of an outcome value before the outcome's JSON: the log index it
/// was applied at (u64 BE) and the proposal's BLAKE3 digest.
const OUTCOME_HEADER_LEN: usize = 8 + 32;

/// The key of a proposal's outcome in [`Cf::Proposals`]: `p`, the seed's
/// time (u64 BE) and the first 16 bytes of its random nonce.
pub fn proposal_key(seed: &crate::engine::state::Seed) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(OUTCOME_PREFIX);
    key.extend_from_slice(&u64::try_from(seed.at).unwrap_or(0).to_be_bytes());
    key.extend_from_slice(&seed.nonce[..16]);
    key
}

/// What [`Cf::Proposals`] knows of a proposal's seed.
enum Earlier {
    /// Nothing: the proposal is new.
    None,
    /// A copy of this very proposal was applied, with this outcome.
    Resent(Outcome),
    /// A *different* proposal with the same seed was (only a failing RNG
    /// could do that): apply this one as new, and leave the record alone.
    Collision,
}

/// Looks up the outcome recorded for an earlier copy of the proposal with
/// `key` and `digest`, applied within the window.
fn earlier_outcome(state: &dyn MetaStore, key: &[u8], digest: &[u8; 32]) -> Result<Earlier, Error> {
    let Some(value) = state.get(Cf::Proposals, key).map_err(read_error)? else {
        return Ok(Earlier::None);
    };
    let (header, outcome) = value
        .split_at_checked(OUTCOME_HEADER_LEN)
        .ok_or_else(|| read_error(std::io::Error::other("a stored outcome is truncated")))?;
    if header[8..] != digest[..] {
        tracing::warn!("two different proposals carry one seed; applying the second as new");
        return Ok(Earlier::Collision);
    }
    serde_json::from_slice(outcome)
        .map(Earlier::Resent)
        .map_err(read_error)
}

/// Writes recording `outcome` as the outcome of the proposal with `key`
/// and `digest`, applied at `index`, and deleting the oldest outcomes that
/// fell out of the window (at most [`PROPOSAL_PRUNE_MAX`]). Deterministic:
/// it reads only the replicated state and the entry.
fn record_outcome(
    state: &dyn MetaStore,
    index: u64,
    key: Vec<u8>,
    digest: &[u8; 32],
    outcome: &Outcome,
) -> Result<Vec<Write>, Error> {
    let age_key = |at: u64| [&[AGE_PREFIX][..], &at.to_be_bytes()].concat();
    let mut writes = Vec::new();
    let cutoff = index.saturating_sub(PROPOSAL_OUTCOME_WINDOW);
    let from = age_key(cutoff.saturating_sub(PROPOSAL_PRUNE_LOOKBACK));
    let oldest = state
        .scan_from(Cf::Proposals, &from, PROPOSAL_PRUNE_MAX)
        .map_err(read_error)?;
    for (age, seed_key) in oldest {
        // Past the age index (into the `p` keys), or inside the window: done.
        let applied_at = (age.first() == Some(&AGE_PREFIX) && age.len() == 9)
            .then(|| age.get(1..9).and_then(|at| <[u8; 8]>::try_from(at).ok()))
            .flatten()
            .map(u64::from_be_bytes);
        if applied_at.is_none_or(|at| at >= cutoff) {
            break;
        }
        writes.push(Write::Delete {
            cf: Cf::Proposals,
            key: seed_key,
        });
        writes.push(Write::Delete {
            cf: Cf::Proposals,
            key: age,
        });
    }
    let mut value = Vec::with_capacity(OUTCOME_HEADER_LEN + 64);
    value.extend_from_slice(&index.to_be_bytes());
    value.extend_from_slice(digest);
    value.extend_from_slice(&json(outcome)?);
    writes.push(put(Cf::Proposals, &age_key(index), key.clone()));
    writes.push(put(Cf::Proposals, &key, value));
    Ok(writes)
}

/// The column families of the replicated state: all but the Raft ones.
fn replicated() -> impl Iterator<Item = Cf> {
    Cf::ALL
        .into_iter()
        .filter(|cf| !matches!(cf, Cf::RaftLog | Cf::RaftMeta))
}

fn read_error(e: impl std::error::Error + 'static) -> Error {
    StorageIOError::read(AnyError::new(&e)).into()
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
}

fn put(cf: Cf, key: &[u8], value: Vec<u8>) -> Write {
    Write::Put {
        cf,
        key: key.to_vec(),
        value,
    }
}

fn read_json<S: MetaStore + ?Sized, T: DeserializeOwned>(
    store: &S,
    key: &[u8],
) -> Result<Option<T>, Error> {
    match store.get(Cf::RaftMeta, key).map_err(read_error)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(read_error),
    }
}

fn log_index(key: &[u8]) -> Result<u64, Error> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageIOError::read_logs(AnyError::error("raft log key is not 8 bytes")))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The Raft log and vote, in [`Cf::RaftLog`] and [`Cf::RaftMeta`]. Cheap to
/// clone: clones share the store (and the flusher) and serve as log readers.
pub struct LogStore<S: ?Sized> {
    store: Arc<S>,
    /// Where appends wait for their flush, with a background flusher;
    /// `None`: each append is synced before it returns.
    flusher: Option<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>>,
}

impl<S: ?Sized> Clone for LogStore<S> {
    fn clone(&self) -> Self {
        LogStore {
            store: self.store.clone(),
            flusher: self.flusher.clone(),
        }
    }
}

/// Appends whose flush one background sync completes, at most: the rest
/// wait for the next.
const FLUSH_BATCH_MAX: usize = 1024;

impl<S: MetaStore + ?Sized + 'static> LogStore<S> {
    /// The log kept in `store`, each append synced before it returns
    /// (simple and deterministic: the simulation uses it).
    pub fn new(store: Arc<S>) -> Self {
        LogStore {
            store,
            flusher: None,
        }
    }

    /// The log kept in `store`, as openraft prefers it: an append writes
    /// its entries (readable at once, not yet synced) and returns; a
    /// background thread syncs the write-ahead log and reports every
    /// append written before the sync as flushed, in order. One sync then
    /// covers every append queued while the previous one ran, and the Raft
    /// core goes on (replicating the same entries to the followers) while
    /// the disk works. Every other log write (vote, truncate, purge,
    /// committed) stays synced before it returns, and since the store has
    /// one write-ahead log, it makes every earlier append durable too: the
    /// write order is the order openraft issued them in.
    pub fn with_background_flush(store: Arc<S>) -> Result<Self, std::io::Error> {
        let (tx, rx) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
        // Weak: the flusher must not keep the database open once the log
        // is gone (a node reopening its data directory in-process).
        let synced = Arc::downgrade(&store);
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(&synced, &rx))?;
        Ok(LogStore {
            store,
            flusher: Some(tx),
        })
    }

    /// Entries with index `>= start`, at most `limit`, with their indexes.
    fn entries_from(&self, start: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        self.store
            .scan_from(Cf::RaftLog, &start.to_be_bytes(), limit)
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?
            .into_iter()
            .map(|(key, value)| Ok((log_index(&key)?, value)))
            .collect()
    }

    fn write(&self, writes: &[Write]) -> Result<(), Error> {
        self.store
            .write(writes)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}

impl<S: MetaStore + ?Sized + 'static> RaftLogReader<TypeConfig> for LogStore<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Error> {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let count = match range.end_bound() {
            Bound::Included(&n) => n.saturating_sub(start).saturating_add(1),
            Bound::Excluded(&n) => n.saturating_sub(start),
            Bound::Unbounded => u64::MAX,
        };
        let limit = usize::try_from(count).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for (index, value) in self.entries_from(start, limit)? {
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> = serde_json::from_slice(&value)
                .map_err(|e| StorageIOError::read_log_at_index(index, AnyError::new(&e)))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl<S: MetaStore + ?Sized + 'static> RaftLogStorage<TypeConfig> for LogStore<S> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Error> {
        let last_purged_log_id: Option<LogId<u64>> = read_json(&*self.store, LAST_PURGED_KEY)?;
        let last_log_id = match self.store.last(Cf::RaftLog).map_err(read_error)? {
            None => last_purged_log_id,
            Some((key, value)) => {
                let entry: Entry<TypeConfig> = serde_json::from_slice(&value).map_err(|e| {
                    StorageIOError::read_log_at_index(
                        log_index(&key).unwrap_or_default(),
                        AnyError::new(&e),
                    )
                })?;
                Some(entry.log_id)
            }
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Error> {
        let value = json(vote)?;
        self.store
            .write(&[put(Cf::RaftMeta, VOTE_KEY, value)])
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Error> {
        read_json(&*self.store, VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), Error> {
        let write = match committed {
            Some(log_id) => put(Cf::RaftMeta, COMMITTED_KEY, json(&log_id)?),
            None => Write::Delete {
                cf: Cf::RaftMeta,
                key: COMMITTED_KEY.to_vec(),
            },
        };
        self.write(&[write])
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, Error> {
        read_json(&*self.store, COMMITTED_KEY)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut writes = Vec::new();
        for entry in entries {
            let key = entry.log_id.index.to_be_bytes();
            writes.push(put(Cf::RaftLog, &key, json(&entry)?));
        }
        crate::metrics::METRICS.commit_batch(writes.len());
        let Some(flusher) = &self.flusher else {
            // Synced: the entries are durable before the callback reports them.
            return match self.write(&writes) {
                Ok(()) => {
                    callback.log_io_completed(Ok(()));
                    Ok(())
                }
                Err(e) => {
                    callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                    Err(e)
                }
            };
        };
        // Readable now; durable, and reported so, once the flusher's next
        // sync of the write-ahead log completes.
        if let Err(e) = self.store.write_unsynced(&writes) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(StorageIOError::write_logs(AnyError::new(&e)).into());
        }
        if let Err(std::sync::mpsc::SendError(callback)) = flusher.send(callback) {
            let gone = std::io::Error::other("the Raft log flusher stopped");
            callback.log_io_completed(Err(gone));
            return Err(StorageIOError::write_logs(AnyError::error(
                "the Raft log flusher stopped",
            ))
            .into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        let writes: Vec<Write> = self
            .entries_from(log_id.index, usize::MAX)?
            .into_iter()
            .map(|(index, _)| Write::Delete {
                cf: Cf::RaftLog,
                key: index.to_be_bytes().to_vec(),
            })
            .collect();
        self.write(&writes)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        // Entries are consecutive: at most `index + 1` of them are <= index.
        let limit = usize::try_from(log_id.index.saturating_add(1)).unwrap_or(usize::MAX);
        let mut writes = vec![put(Cf::RaftMeta, LAST_PURGED_KEY, json(&log_id)?)];
        for (index, _) in self.entries_from(0, limit)? {
            if index > log_id.index {
                break;
            }
            writes.push(Write::Delete {
                cf: Cf::RaftLog,
                key: index.to_be_bytes().to_vec(),
            });
        }
        self.write(&writes)
    }
}

/// The background flusher of [`LogStore::with_background_flush`]: waits for
/// appends, syncs the write-ahead log once for all that are queued (at most
/// [`FLUSH_BATCH_MAX`]), and reports them flushed in the order they were
/// appended (or every one failed, if the sync failed). Ends when every
/// [`LogStore`] clone is dropped.
fn flush_loop<S: MetaStore + ?Sized>(
    store: &std::sync::Weak<S>,
    appends: &std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>,
) {
    while let Ok(first) = appends.recv() {
        let mut batch = vec![first];
        while batch.len() < FLUSH_BATCH_MAX {
            match appends.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let synced = match store.upgrade() {
            Some(store) => store.sync(),
            None => Err(crate::engine::meta::StoreError::Io(
                "the store was closed".into(),
            )),
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, "cannot sync the Raft log");
        }
        for callback in batch {
            let result = synced
                .clone()
                .map_err(|e| std::io::Error::other(e.to_string()));
            callback.log_io_completed(result);
        }
    }
}

/// The vault's state machine under Raft: [`crate::engine::apply::apply`] per entry,
/// plus the last applied log id, the membership and the current snapshot in
/// [`Cf::RaftMeta`]. Clones share the store and serve as snapshot builders.
pub struct StateMachine<S: ?Sized> {
    store: Arc<S>,
    /// Held while applying, snapshotting or installing, so a snapshot reads
    /// one consistent state (the store has no read snapshots).
    gate: Arc<Mutex<()>>,
}

impl<S: ?Sized> Clone for StateMachine<S> {
    fn clone(&self) -> Self {
        StateMachine {
            store: self.store.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<S: MetaStore + ?Sized + 'static> StateMachine<S> {
    /// The state machine kept in `store`.
    pub fn new(store: Arc<S>) -> Self {
        StateMachine {
            store,
            gate: Arc::new(Mutex::new(())),
        }
    }

    /// The underlying store (for reads).
    pub fn store(&self) -> &S {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes an apply's batch without a sync of its own: the entries are
    /// durable in the Raft log (same store, same write-ahead log) before
    /// they are applied, the next synced write (a log append, a vote, a
    /// snapshot, a purge) makes this batch durable too, and after a crash
    /// openraft re-applies from the last applied id that reached the disk.
    /// Applying is deterministic, so the redo gives the same state.
    fn write_state(&self, writes: &[Write]) -> Result<(), Error> {
        self.store
            .write_unsynced(writes)
            .map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)).into())
    }

    fn read_applied(&self) -> Result<AppliedState, Error> {
        // Stored as `Option<LogId>`: a snapshot may carry none.
        let last_applied: Option<Option<LogId<u64>>> = read_json(&*self.store, LAST_APPLIED_KEY)?;
        let last_applied = last_applied.flatten();
        let membership = read_json(&*self.store, MEMBERSHIP_KEY)?.unwrap_or_default();
        Ok((last_applied, membership))
    }
}

impl<S: MetaStore + ?Sized + 'static> RaftStateMachine<TypeConfig> for StateMachine<S> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<AppliedState, Error> {
        self.read_applied()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _gate = self.lock();
        let mut overlay = Overlay::new(&*self.store);
        let mut outcomes = Vec::new();
        let mut last = None;
        for entry in entries {
            let outcome = match &entry.payload {
                EntryPayload::Blank => Outcome::Internal,
                EntryPayload::Normal(proposal) => {
                    let key = proposal_key(&proposal.seed);
                    let digest = *blake3::hash(&json(proposal)?).as_bytes();
                    let earlier = earlier_outcome(&overlay, &key, &digest)?;
                    if let Earlier::Resent(outcome) = earlier {
                        // A resent proposal: the first copy's outcome,
                        // nothing applied twice.
                        outcome
                    } else {
                        let outcome = match apply(&overlay, entry.log_id.index, proposal) {
                            Ok((applied, writes)) => {
                                overlay.stage(writes);
                                Outcome::Applied(applied)
                            }
                            // Deterministic: every node refuses the same entry.
                            Err(StateError::Refused(refusal)) => Outcome::Refused(refusal.body()),
                            Err(StateError::Conflict(message)) => Outcome::Conflict(message),
                            // Local damage or I/O failure: stop this node.
                            Err(e) => {
                                return Err(
                                    StorageIOError::apply(entry.log_id, AnyError::new(&e)).into()
                                )
                            }
                        };
                        if matches!(earlier, Earlier::None) {
                            let index = entry.log_id.index;
                            let writes = record_outcome(&overlay, index, key, &digest, &outcome)?;
                            overlay.stage(writes);
                        }
                        outcome
                    }
                }
                EntryPayload::Membership(membership) => {
                    let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
                    overlay.stage(vec![put(Cf::RaftMeta, MEMBERSHIP_KEY, json(&stored)?)]);
                    Outcome::Internal
                }
            };
            last = Some(entry.log_id);
            outcomes.push(outcome);
        }
        if let Some(last) = last {
            overlay.stage(vec![put(
                Cf::RaftMeta,
                LAST_APPLIED_KEY,
                json(&Some(last))?,
            )]);
            let writes = overlay.into_writes();
            self.write_state(&writes)?;
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let bytes = snapshot.into_inner();
        let signature = Some(meta.signature());
        let bad = |message: String| -> Error {
            StorageIOError::read_snapshot(signature.clone(), AnyError::error(message)).into()
        };
        let (header, records) = decode_snapshot(&bytes).map_err(&bad)?;
        if header != *meta {
            return Err(bad(format!(
                "snapshot data is of {header}, its metadata of {meta}"
            )));
        }
        let _gate = self.lock();
        let mut writes = Vec::new();
        for cf in replicated() {
            for (key, _) in self
                .store
                .scan_from(cf, &[], usize::MAX)
                .map_err(read_error)?
            {
                writes.push(Write::Delete { cf, key });
            }
        }
        for (cf, key, value) in records {
            writes.push(Write::Put {
                cf,
                key: key.to_vec(),
                value: value.to_vec(),
            });
        }
        writes.push(put(
            Cf::RaftMeta,
            LAST_APPLIED_KEY,
            json(&meta.last_log_id)?,
        ));
        writes.push(put(
            Cf::RaftMeta,
            MEMBERSHIP_KEY,
            json(&meta.last_membership)?,
        ));
        writes.push(put(Cf::RaftMeta, SNAPSHOT_KEY, bytes.clone()));
        self.store
            .write(&writes)
            .map_err(|e| StorageIOError::write_snapshot(signature, AnyError::new(&e)).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Error> {
        let Some(bytes) = self
            .store
            .get(Cf::RaftMeta, SNAPSHOT_KEY)
            .map_err(read_error)?
        else {
            return Ok(None);
        };
        let (meta, _) = decode_snapshot(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e)))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

impl<S: MetaStore + ?Sized + 'static> RaftSnapshotBuilder<TypeConfig> for StateMachine<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Error> {
        let _gate = self.lock();
        let (last_log_id, last_membership) = self.read_applied()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{nanos:x}", id.leader_id, id.index),
            None => format!("empty-{nanos:x}"),
        };
        let meta = Meta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let bytes = encode_snapshot(&*self.store, &meta)?;
        self.store
            .write(&[put(Cf::RaftMeta, SNAPSHOT_KEY, bytes.clone())])
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

/// Snapshot format: `u32 BE len | SnapshotMeta JSON`, then per key of the
/// replicated state `u8 len | cf name | u32 BE len | key | u32 BE len | value`.
fn encode_snapshot<S: MetaStore + ?Sized>(store: &S, meta: &Meta) -> Result<Vec<u8>, Error> {
    let too_big = || -> Error {
        StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error("item over 4 GiB"))
            .into()
    };
    let mut out = Vec::new();
    let header = json(meta)?;
    out.extend_from_slice(
        &u32::try_from(header.len())
            .map_err(|_| too_big())?
            .to_be_bytes(),
    );
    out.extend_from_slice(&header);
    for cf in replicated() {
        for (key, value) in store.scan_from(cf, &[], usize::MAX).map_err(read_error)? {
            let name = cf.name().as_bytes();
            out.push(u8::try_from(name.len()).map_err(|_| too_big())?);
            out.extend_from_slice(name);
            for part in [&key, &value] {
                out.extend_from_slice(
                    &u32::try_from(part.len())
                        .map_err(|_| too_big())?
                        .to_be_bytes(),
                );
                out.extend_from_slice(part);
            }
        }
    }
    Ok(out)
}

/// A snapshot's records: column family, key, value.
pub type Records<'a> = Vec<(Cf, &'a [u8], &'a [u8])>;

/// Parses [`encode_snapshot`]'s format: the bytes a leader sends in
/// snapshot chunks, so a peer controls them (fuzzed: `fuzz/`).
pub fn decode_snapshot(bytes: &[u8]) -> Result<(Meta, Records<'_>), String> {
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("snapshot data is truncated".into());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let len32 = |b: &[u8]| -> usize {
        let mut word = [0u8; 4];
        word.copy_from_slice(b);
        u32::from_be_bytes(word) as usize
    };
    let header_len = len32(take(4)?);
    let meta: Meta =
        serde_json::from_slice(take(header_len)?).map_err(|e| format!("snapshot metadata: {e}"))?;
    let mut records = Vec::new();
    while let Ok(first) = take(1) {
        let name_len = usize::from(first[0]);
        let name = take(name_len)?;
        let cf = replicated()
            .find(|cf| cf.name().as_bytes() == name)
            .ok_or_else(|| format!("unknown column family {}", String::from_utf8_lossy(name)))?;
        let key_len = len32(take(4)?);
        let key = take(key_len)?;
        let value_len = len32(take(4)?);
        let value = take(value_len)?;
        records.push((cf, key, value));
    }
    Ok((meta, records))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::state::{Command, Proposal, Seed};
    use crate::storage::store::{MemStore, RocksStore};
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::CommittedLeaderId;
    use pki::{Name, Role};

    /// RocksDB stores; `background_flush`: appends flushed by the flusher
    /// thread, as nodes run them (else synced inline, as the simulation).
    struct RocksBuilder {
        background_flush: bool,
    }

    impl StoreBuilder<TypeConfig, LogStore<RocksStore>, StateMachine<RocksStore>, tempfile::TempDir>
        for RocksBuilder
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                LogStore<RocksStore>,
                StateMachine<RocksStore>,
            ),
            Error,
        > {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(RocksStore::open(dir.path()).unwrap());
            let log = if self.background_flush {
                LogStore::with_background_flush(store.clone()).unwrap()
            } else {
                LogStore::new(store.clone())
            };
            Ok((dir, log, StateMachine::new(store)))
        }
    }

    struct MemBuilder;

    impl StoreBuilder<TypeConfig, LogStore<MemStore>, StateMachine<MemStore>> for MemBuilder {
        async fn build(&self) -> Result<((), LogStore<MemStore>, StateMachine<MemStore>), Error> {
            let store = Arc::new(MemStore::new());
            Ok(((), LogStore::new(store.clone()), StateMachine::new(store)))
        }
    }

    #[test]
    fn raft_storage_suite_passes_on_rocksdb() {
        Suite::test_all(RocksBuilder {
            background_flush: false,
        })
        .unwrap();
    }

    #[test]
    fn raft_storage_suite_passes_on_rocksdb_with_background_flush() {
        Suite::test_all(RocksBuilder {
            background_flush: true,
        })
        .unwrap();
    }

    #[tokio::test]
    async fn flushed_appends_are_readable_and_survive_a_reopen() {
        use openraft::storage::RaftLogStorageExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RocksStore::open(dir.path()).unwrap());
        let mut log = LogStore::with_background_flush(store.clone()).unwrap();
        for i in 1..=50u64 {
            log.blocking_append([normal(i, refusal(i as u8))])
                .await
                .unwrap();
        }
        let entries = log.try_get_log_entries(1..=50).await.unwrap();
        assert_eq!(entries.len(), 50);
        drop(log);
        // Reopened: everything reported flushed is there.
        drop(store);
        let store = Arc::new(RocksStore::open(dir.path()).unwrap());
        let mut log = LogStore::new(store);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|id| id.index), Some(50));
    }

    #[test]
    fn raft_storage_suite_passes_on_mem_store() {
        Suite::test_all(MemBuilder).unwrap();
    }

    fn refusal(n: u8) -> Proposal {
        Proposal {
            command: Command::RecordRefusal {
                role: Role::Department,
                by: Name::parse("tax-office").unwrap(),
                code: "grant.exhausted".into(),
                document_id: None,
                grant_id: None,
                request_id: None,
            },
            seed: Seed {
                at: 1_700_000_000 + i64::from(n),
                nonce: [n; 32],
                salt: [n.wrapping_add(100); 32],
                salt_proofs: Vec::new(),
            },
        }
    }

    fn normal(index: u64, proposal: Proposal) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(proposal),
        }
    }

    fn log_root(store: &dyn MetaStore) -> (u64, vault_client::merkle::Hash) {
        let size = crate::engine::log::size(store).unwrap();
        (size, crate::engine::log::subtree(store, 0, size).unwrap())
    }

    #[tokio::test]
    async fn raft_state_machine_is_state_apply() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = Arc::new(RocksStore::open(dir.path()).unwrap());
        let mut sm = StateMachine::new(rocks.clone());
        let proposals: Vec<Proposal> = (1..=3).map(refusal).collect();
        // Index 1 is the leader's blank entry; the commands take 2..=4.
        let blank = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), 1),
            payload: EntryPayload::Blank,
        };
        let mut entries = vec![blank];
        entries.extend((2..).zip(&proposals).map(|(i, p)| normal(i, p.clone())));
        let outcomes = sm.apply(entries).await.unwrap();
        assert_eq!(outcomes[0], Outcome::Internal);
        for outcome in &outcomes[1..] {
            assert_eq!(
                *outcome,
                Outcome::Applied(crate::engine::state::Applied::Recorded)
            );
        }

        let direct = MemStore::new();
        for (index, proposal) in (2..).zip(&proposals) {
            let (_, writes) = apply(&direct, index, proposal).unwrap();
            direct.write(&writes).unwrap();
        }
        let (size, root) = log_root(&direct);
        assert_eq!(size, 3);
        assert_eq!(log_root(&*rocks), (size, root));
        assert_eq!(crate::engine::state::applied_index(&*rocks).unwrap(), 4);
        let (last, _) = sm.applied_state().await.unwrap();
        assert_eq!(last.map(|id| id.index), Some(4));

        // A refused command changes nothing but still advances last applied.
        let deny = Proposal {
            command: Command::DenyRequest {
                request_id: pki::RequestId::from_bytes([9; 16]),
                at: 1,
            },
            seed: Seed {
                at: 1,
                nonce: [0; 32],
                salt: [0; 32],
                salt_proofs: Vec::new(),
            },
        };
        let outcomes = sm.apply([normal(5, deny)]).await.unwrap();
        assert!(matches!(outcomes[0], Outcome::Refused(_)));
        assert!(matches!(
            outcomes[0].clone().into_result(),
            Err(StateError::Refused(_))
        ));
        assert_eq!(log_root(&*rocks), (size, root));
        let (last, _) = sm.applied_state().await.unwrap();
        assert_eq!(last.map(|id| id.index), Some(5));

        // A snapshot carries the same state to a fresh node.
        let snapshot = sm.build_snapshot().await.unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = Arc::new(RocksStore::open(other_dir.path()).unwrap());
        let mut follower = StateMachine::new(other.clone());
        // Whatever the follower held before is replaced, not merged.
        other
            .write(&[put(Cf::Documents, b"stale", b"x".to_vec())])
            .unwrap();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(log_root(&*other), (size, root));
        assert_eq!(crate::engine::state::applied_index(&*other).unwrap(), 4);
        assert_eq!(follower.applied_state().await.unwrap().0, last);
        assert!(other
            .get(Cf::Commands, &3u64.to_be_bytes())
            .unwrap()
            .is_some());
        assert_eq!(other.get(Cf::Documents, b"stale").unwrap(), None);
        // An empty snapshot installs too (no last applied log id).
        let mut empty = StateMachine::new(Arc::new(MemStore::new()));
        let snapshot = empty.build_snapshot().await.unwrap();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.applied_state().await.unwrap().0, None);
        assert_eq!(crate::engine::log::size(&*other).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_retried_proposal_is_answered_and_not_applied_twice() {
        let store = Arc::new(MemStore::new());
        let mut sm = StateMachine::new(store.clone());
        let first = refusal(1);
        // The same proposal twice in one batch, then again in a later one
        // (a forward whose answer was lost, sent again).
        let outcomes = sm
            .apply([normal(1, first.clone()), normal(2, first.clone())])
            .await
            .unwrap();
        let recorded = Outcome::Applied(crate::engine::state::Applied::Recorded);
        assert_eq!(outcomes, vec![recorded.clone(), recorded.clone()]);
        let outcomes = sm.apply([normal(3, first.clone())]).await.unwrap();
        assert_eq!(outcomes, vec![recorded.clone()]);
        assert_eq!(crate::engine::log::size(&*store).unwrap(), 1);
        assert_eq!(
            sm.applied_state().await.unwrap().0.map(|id| id.index),
            Some(3)
        );
        // A refused proposal sent again is refused again, with the same body.
        let deny = Proposal {
            command: Command::DenyRequest {
                request_id: pki::RequestId::from_bytes([9; 16]),
                at: first.seed.at,
            },
            seed: Seed {
                at: first.seed.at,
                nonce: [77; 32],
                salt: [0; 32],
                salt_proofs: Vec::new(),
            },
        };
        let once = sm.apply([normal(4, deny.clone())]).await.unwrap();
        let twice = sm.apply([normal(5, deny)]).await.unwrap();
        assert!(matches!(once[0], Outcome::Refused(_)), "{once:?}");
        assert_eq!(once, twice);
        // The same seed on a different command (only a failing RNG could do
        // that) is not mistaken for a resend: it is applied.
        let mut other = refusal(1);
        if let Command::RecordRefusal { code, .. } = &mut other.command {
            *code = "grant.revoked".into();
        }
        sm.apply([normal(6, other)]).await.unwrap();
        assert_eq!(crate::engine::log::size(&*store).unwrap(), 2);
        // Outcomes are kept for PROPOSAL_OUTCOME_WINDOW entries, whatever
        // the seeds' clocks say; past that they are pruned as later
        // proposals apply, and a copy arriving then would apply again.
        let mut skewed = refusal(2);
        skewed.seed.at = first.seed.at + 1_000_000;
        sm.apply([normal(7, skewed.clone())]).await.unwrap();
        sm.apply([normal(8, first.clone())]).await.unwrap();
        assert_eq!(
            crate::engine::log::size(&*store).unwrap(),
            3,
            "pruned by a clock"
        );
        // Entries 1 (first) and 4 (deny) fall out of the window, 7 stays.
        let far = 5 + PROPOSAL_OUTCOME_WINDOW;
        let mut later = refusal(3);
        later.seed.at = first.seed.at;
        sm.apply([normal(far, later.clone())]).await.unwrap();
        let outcomes: Vec<Vec<u8>> = store
            .scan_prefix(Cf::Proposals, &[OUTCOME_PREFIX], 10)
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            outcomes,
            vec![proposal_key(&later.seed), proposal_key(&skewed.seed)]
        );
        sm.apply([normal(far + 1, first)]).await.unwrap();
        assert_eq!(crate::engine::log::size(&*store).unwrap(), 5);
    }

    #[tokio::test]
    async fn log_vote_and_purge_survive_reopen() {
        use openraft::storage::RaftLogStorageExt;
        let dir = tempfile::tempdir().unwrap();
        let id = |index| LogId::new(CommittedLeaderId::new(2, 1), index);
        {
            let mut log = LogStore::new(Arc::new(RocksStore::open(dir.path()).unwrap()));
            log.save_vote(&Vote::new(3, 1)).await.unwrap();
            let entries: Vec<_> = (1..=5).map(|i| normal(i, refusal(i as u8))).collect();
            log.blocking_append(entries).await.unwrap();
            log.purge(id(2)).await.unwrap();
            log.truncate(id(5)).await.unwrap();
        }
        let mut log = LogStore::new(Arc::new(RocksStore::open(dir.path()).unwrap()));
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(id(2)));
        assert_eq!(state.last_log_id.map(|id| id.index), Some(4));
        let entries = log.try_get_log_entries(..).await.unwrap();
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![3, 4]);
        assert!(matches!(&entries[0].payload, EntryPayload::Normal(p) if *p == refusal(3)));
    }
}
