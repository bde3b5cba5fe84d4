//! The single-node driver of the state machine, with group commit.
//!
//! Callers submit commands from many threads. One of them becomes the
//! *flusher*: it takes every queued command, applies them in order against an
//! [`Overlay`] (so each sees the ones before it), writes all their writes in
//! one synced batch, and hands each caller its own result. While it syncs,
//! new commands queue up for the next batch; under load, one fsync carries
//! many commands.
//!
//! **Invariant:** a command is acknowledged only after the batch holding it
//! is durable. A refused command takes no log index and writes nothing; a
//! failed batch fails every command in it and leaves the state unchanged.

use std::sync::{Arc, Condvar, Mutex};

use crate::consensus::seed::fresh_seed;
use crate::engine::apply::apply;
use crate::engine::meta::MetaStore;
use crate::engine::state::{applied_index, Applied, Command, Proposal, StateError};
use crate::rules::clock::{Clock, SystemClock};
use crate::storage::overlay::Overlay;

/// Most commands applied in one synced batch.
pub const BATCH_COMMANDS_MAX: usize = 1024;

type Slot = Arc<(Mutex<Option<Result<Applied, StateError>>>, Condvar)>;

struct Queue {
    pending: Vec<(Proposal, Slot)>,
    flushing: bool,
    next_index: u64,
}

/// Appends commands to the log and applies them, in synced group commits.
pub struct Ledger<S> {
    store: S,
    clock: Arc<dyn Clock>,
    queue: Mutex<Queue>,
    flushed: Condvar,
}

impl<S: MetaStore> Ledger<S> {
    /// Opens the ledger over `store`, continuing after its last command,
    /// with commands timed by the system clock.
    pub fn open(store: S) -> Result<Self, StateError> {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// Opens the ledger over `store`; `clock` times each submitted command.
    pub fn with_clock(store: S, clock: Arc<dyn Clock>) -> Result<Self, StateError> {
        let next_index = applied_index(&store)? + 1;
        Ok(Ledger {
            store,
            clock,
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                flushing: false,
                next_index,
            }),
            flushed: Condvar::new(),
        })
    }

    /// The underlying store (for reads).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends and applies `command`, returning once it is durable. On
    /// error the state is unchanged. Blocks: call from a blocking thread.
    pub fn submit(&self, command: &Command) -> Result<Applied, StateError> {
        let seed = fresh_seed(self.clock.now_unix());
        self.propose(Proposal {
            command: command.clone(),
            seed,
        })
    }

    /// Appends and applies a proposal (a command with its seed).
    pub fn propose(&self, proposal: Proposal) -> Result<Applied, StateError> {
        let slot: Slot = Arc::new((Mutex::new(None), Condvar::new()));
        let mut queue = self.lock();
        queue.pending.push((proposal, slot.clone()));
        loop {
            if let Some(result) = take(&slot) {
                return result;
            }
            if !queue.flushing {
                queue.flushing = true;
                let batch: Vec<_> = {
                    let n = queue.pending.len().min(BATCH_COMMANDS_MAX);
                    queue.pending.drain(..n).collect()
                };
                let first = queue.next_index;
                drop(queue);
                let used = self.flush(first, batch);
                queue = self.lock();
                queue.next_index += used;
                queue.flushing = false;
                self.flushed.notify_all();
                continue;
            }
            queue = self.flushed.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Applies and commits one batch; returns how many indexes it used.
    fn flush(&self, first: u64, batch: Vec<(Proposal, Slot)>) -> u64 {
        let mut overlay = Overlay::new(&self.store);
        let mut results = Vec::with_capacity(batch.len());
        let mut index = first;
        for (proposal, _) in &batch {
            match apply(&overlay, index, proposal) {
                Ok((applied, writes)) => {
                    overlay.stage(writes);
                    index += 1;
                    results.push(Ok(applied));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let used = index - first;
        let outcome = if used > 0 {
            crate::metrics::METRICS.commit_batch(used as usize);
            self.store.write(&overlay.into_writes())
        } else {
            Ok(())
        };
        for ((_, slot), result) in batch.into_iter().zip(results) {
            let result = match (&outcome, result) {
                (Err(e), Ok(_)) => Err(StateError::Store(e.clone())),
                (_, result) => result,
            };
            fill(&slot, result);
        }
        if outcome.is_err() {
            0
        } else {
            used
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn take(slot: &Slot) -> Option<Result<Applied, StateError>> {
    slot.0.lock().unwrap_or_else(|p| p.into_inner()).take()
}

fn fill(slot: &Slot, result: Result<Applied, StateError>) {
    *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    slot.1.notify_all();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::meta::{Cf, StoreError, Write};
    use crate::storage::store::{FaultyStore, MemStore};

    fn put(cf: Cf, key: &[u8], value: &[u8]) -> Write {
        Write::Put {
            cf,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn overlay_reads_through_and_merges_scans() {
        let base = MemStore::new();
        base.write(&[put(Cf::Meta, b"a1", b"base"), put(Cf::Meta, b"a3", b"base")])
            .unwrap();
        let mut overlay = Overlay::new(&base);
        overlay.stage(vec![
            put(Cf::Meta, b"a2", b"staged"),
            Write::Delete {
                cf: Cf::Meta,
                key: b"a3".to_vec(),
            },
        ]);
        assert_eq!(
            overlay.get(Cf::Meta, b"a1").unwrap(),
            Some(b"base".to_vec())
        );
        assert_eq!(
            overlay.get(Cf::Meta, b"a2").unwrap(),
            Some(b"staged".to_vec())
        );
        assert_eq!(overlay.get(Cf::Meta, b"a3").unwrap(), None);
        let keys: Vec<_> = overlay
            .scan_prefix(Cf::Meta, b"a", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a1".to_vec(), b"a2".to_vec()]);
        // Nothing reached the base.
        assert_eq!(base.get(Cf::Meta, b"a2").unwrap(), None);
    }

    #[test]
    fn a_failed_batch_fails_every_command_and_keeps_indexes() {
        let ledger =
            Ledger::open(FaultyStore::new(MemStore::new(), 0, StoreError::DiskFull)).unwrap();
        let command = Command::DenyRequest {
            request_id: pki::RequestId::from_bytes([1; 16]),
            at: 0,
        };
        // Refused by the rules (no such request) before any write.
        assert!(matches!(
            ledger.submit(&command),
            Err(StateError::Refused(_))
        ));
        assert_eq!(applied_index(ledger.store()).unwrap(), 0);
    }

    #[test]
    fn concurrent_submits_are_all_applied_once_in_order() {
        use pki::{ContentHash, DocumentKind, IssueRecord, Name, ResidentId, Signature};
        let ledger = Arc::new(Ledger::open(MemStore::new()).unwrap());
        let threads: Vec<_> = (0..32u8)
            .map(|i| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    let record = IssueRecord {
                        resident: ResidentId::parse("resident-1").unwrap(),
                        kind: DocumentKind::parse("id-card").unwrap(),
                        content_hash: ContentHash([i; 32]),
                        size: 1,
                        issued_at: i64::from(i),
                        issuer: Name::parse("civil-affairs").unwrap(),
                    };
                    let signature = Signature([i; 64]);
                    let entry = crate::engine::state::DocumentEntry {
                        document_id: record.document_id(&signature),
                        record,
                        signature,
                        issuer_cert: vec![],
                        registered_at: i64::from(i),
                    };
                    ledger.submit(&Command::RegisterDocument(entry)).unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(applied_index(ledger.store()).unwrap(), 32);
        let listed = crate::engine::state::documents_of(
            ledger.store(),
            &pki::ResidentId::parse("resident-1").unwrap(),
            100,
        )
        .unwrap();
        assert_eq!(listed.len(), 32);
        for index in 1..=32u64 {
            assert!(ledger
                .store()
                .get(Cf::Commands, &index.to_be_bytes())
                .unwrap()
                .is_some());
        }
    }
}
