//! Counting work in progress per caller and in total, against the node's
//! [`Limits`]: a stream takes a [`Permit`] before it does any work and gives
//! it back when dropped, so a caller over a cap is answered `limit.busy` at
//! once and a finished, failed or cut stream always frees its place.
//!
//! A caller is its certificate's role and name (every certificate of one
//! department shares its caps). Node certificates of this cluster are not
//! counted: Raft and blob copies must not be starved by callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pki::PeerCert;

use crate::rules::limits::{Limits, Work};
use crate::Refusal;

/// Work in progress on the node, counted per caller and in total.
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    per_caller: HashMap<(Work, String), usize>,
    total: HashMap<Work, usize>,
    outboard_bytes: u64,
    outboard_per_caller: HashMap<String, u64>,
}

/// A place taken by one stream's work; dropped, it is given back.
pub struct Permit {
    admission: Arc<Admission>,
    key: Option<(Work, String)>,
    outboard_bytes: u64,
    outboard_caller: Option<String>,
}

impl Admission {
    /// Counts against `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The limits counted against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes a place for `work` by `caller`, or `limit.busy`.
    pub fn admit(self: &Arc<Self>, work: Work, caller: &PeerCert) -> Result<Permit, Refusal> {
        if caller.role == pki::Role::Node {
            return Ok(self.uncounted());
        }
        let key = (work, format!("{}:{}", caller.role.as_str(), caller.name));
        let mut counts = self.lock();
        let caller_in_use = counts.per_caller.get(&key).copied().unwrap_or(0);
        let total_in_use = counts.total.get(&work).copied().unwrap_or(0);
        self.limits.admit(work, caller_in_use, total_in_use)?;
        *counts.per_caller.entry(key.clone()).or_insert(0) += 1;
        *counts.total.entry(work).or_insert(0) += 1;
        Ok(Permit {
            admission: self.clone(),
            key: Some(key),
            outboard_bytes: 0,
            outboard_caller: None,
        })
    }

    /// Reserves `bytes` of the outboard budget for a download by `caller`
    /// (within the caller's share), or `limit.busy`.
    pub fn reserve_outboard(
        self: &Arc<Self>,
        bytes: u64,
        caller: &PeerCert,
    ) -> Result<Permit, Refusal> {
        let who = format!("{}:{}", caller.role.as_str(), caller.name);
        let mut counts = self.lock();
        let caller_in_use = counts.outboard_per_caller.get(&who).copied().unwrap_or(0);
        self.limits
            .admit_outboard(bytes, caller_in_use, counts.outboard_bytes)?;
        counts.outboard_bytes = counts.outboard_bytes.saturating_add(bytes);
        *counts.outboard_per_caller.entry(who.clone()).or_insert(0) += bytes;
        Ok(Permit {
            admission: self.clone(),
            key: None,
            outboard_bytes: bytes,
            outboard_caller: Some(who),
        })
    }

    fn uncounted(self: &Arc<Self>) -> Permit {
        Permit {
            admission: self.clone(),
            key: None,
            outboard_bytes: 0,
            outboard_caller: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.outboard_bytes = counts.outboard_bytes.saturating_sub(self.outboard_bytes);
        if let Some(who) = self.outboard_caller.take() {
            if let Some(held) = counts.outboard_per_caller.get_mut(&who) {
                *held = held.saturating_sub(self.outboard_bytes);
                if *held == 0 {
                    counts.outboard_per_caller.remove(&who);
                }
            }
        }
        let Some(key) = self.key.take() else {
            return;
        };
        if let Some(total) = counts.total.get_mut(&key.0) {
            *total = total.saturating_sub(1);
        }
        if let Some(n) = counts.per_caller.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_caller.remove(&key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vault_client::ErrorCode;

    fn cert(name: &str, role: pki::Role) -> PeerCert {
        PeerCert {
            role,
            name: pki::Name::parse(name).unwrap(),
            serial_hex: String::new(),
            not_before: 0,
            not_after: 0,
            public_key: Vec::new(),
            key_id: [0; 32],
            issuer_cn: String::new(),
            cluster: None,
        }
    }

    #[test]
    fn a_caller_over_its_cap_is_busy_and_dropping_frees_the_place() {
        let admission = Admission::new(Limits {
            uploads_per_caller: 2,
            uploads_total: 3,
            ..Limits::default()
        });
        let a = cert("tax-office", pki::Role::Department);
        let b = cert("civil-affairs", pki::Role::Department);
        let first = admission.admit(Work::Upload, &a).unwrap();
        let _second = admission.admit(Work::Upload, &a).unwrap();
        let refusal = admission.admit(Work::Upload, &a).err().unwrap();
        assert_eq!(refusal.code, ErrorCode::LimitBusy);
        // Other work and other callers are not affected by a's uploads...
        let _get = admission.admit(Work::Download, &a).unwrap();
        let _other = admission.admit(Work::Upload, &b).unwrap();
        // ...until the node's total is reached.
        assert!(admission.admit(Work::Upload, &b).is_err());
        drop(first);
        assert!(admission.admit(Work::Upload, &a).is_ok());
        let node = cert("node-1", pki::Role::Node);
        for _ in 0..10 {
            std::mem::forget(admission.admit(Work::Upload, &node).unwrap());
        }
    }
}
