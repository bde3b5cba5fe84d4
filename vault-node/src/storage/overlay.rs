//! Uncommitted writes staged over a store: a batch's commands are applied
//! one after another against an [`Overlay`], so each sees the writes of the
//! ones before it, and the batch is then written in one go.
//!
//! **Invariant:** an overlay never writes to its base; it only stages.

use std::collections::BTreeMap;

use crate::engine::meta::{Cf, Entries, MetaStore, StoreError, Write};

/// Reads through staged (uncommitted) writes to a base store.
pub struct Overlay<'a, S: ?Sized> {
    base: &'a S,
    staged: BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
    order: Vec<Write>,
}

impl<'a, S: MetaStore + ?Sized> Overlay<'a, S> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a S) -> Self {
        Overlay {
            base,
            staged: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    /// Stages writes (later reads see them).
    pub fn stage(&mut self, writes: Vec<Write>) {
        for write in writes {
            match &write {
                Write::Put { cf, key, value } => {
                    self.staged.insert((*cf, key.clone()), Some(value.clone()));
                }
                Write::Delete { cf, key } => {
                    self.staged.insert((*cf, key.clone()), None);
                }
            }
            self.order.push(write);
        }
    }

    /// Every staged write, in order.
    pub fn into_writes(self) -> Vec<Write> {
        self.order
    }
}

impl<S: MetaStore + ?Sized> MetaStore for Overlay<'_, S> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.staged.get(&(cf, key.to_vec())) {
            Some(staged) => Ok(staged.clone()),
            None => self.base.get(cf, key),
        }
    }

    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let staged: Vec<_> = self
            .staged
            .range((cf, prefix.to_vec())..)
            .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
            .collect();
        let extra = staged.len();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .base
            .scan_prefix(cf, prefix, limit.saturating_add(extra))?
            .into_iter()
            .collect();
        for ((_, key), value) in staged {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    fn write(&self, _writes: &[Write]) -> Result<(), StoreError> {
        Err(StoreError::Io(
            "an overlay is read-only; stage writes instead".into(),
        ))
    }

    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        // Every staged key from `start` (a batch's worth at most): deletes
        // among them may remove base entries, so none may be cut early.
        let staged: Vec<_> = self
            .staged
            .range((cf, start.to_vec())..)
            .take_while(|((c, _), _)| *c == cf)
            .collect();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .base
            .scan_from(cf, start, limit.saturating_add(staged.len()))?
            .into_iter()
            .collect();
        for ((_, key), value) in staged {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}
