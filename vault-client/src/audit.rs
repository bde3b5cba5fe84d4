//! The auditor's and the resident's side of the transparency log.
//!
//! [`replay`] is pure: it walks parsed entries in order and reports every
//! fetch the rules do not allow (no grant, outside its window, beyond its
//! uses, after its revocation, without an approval; or a grant-less fetch
//! by someone other than the issuer or the resident). [`AuditState`] is
//! what an auditor trusts between runs: the last checkpoint and the leaf
//! hashes it verified, so a changed entry is named by index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pki::{GrantId, LogEntry, LogEvent, RequestId, Role};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, ErrorCode};
use crate::merkle::Hash;

/// How far a fetch may precede a grant's `not_before` (the node's allowance).
pub const AUDIT_SKEW_S: i64 = 30;

/// A broken rule, at a log index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The entry's index (or the first index that differs).
    pub index: u64,
    /// Stable rule name, e.g. `fetch.exceeds_uses`.
    pub rule: String,
    /// Explanation.
    pub detail: String,
}

struct GrantFacts {
    not_before: i64,
    not_after: i64,
    max_uses: u32,
    uses_seen: u32,
    revoked_at: Option<u64>,
    request_id: Option<RequestId>,
}

/// Replays the log's rules over entries `first..` (in order).
pub fn replay(first: u64, entries: &[LogEntry]) -> Vec<Violation> {
    let mut grants: HashMap<GrantId, GrantFacts> = HashMap::new();
    let mut approved: HashMap<RequestId, u64> = HashMap::new();
    let mut issuers: HashMap<pki::DocumentId, (String, [u8; 32])> = HashMap::new();
    let mut out = Vec::new();
    let mut violation = |index: u64, rule: &str, detail: String| {
        out.push(Violation {
            index,
            rule: rule.to_string(),
            detail,
        });
    };
    for (offset, e) in entries.iter().enumerate() {
        let index = first + offset as u64;
        match e.event {
            LogEvent::DocumentIssued => {
                if let Some(doc) = e.document_id {
                    issuers.insert(doc, (e.actor.clone(), e.resident_tag));
                }
            }
            LogEvent::Approval => {
                if let Some(request) = e.request_id {
                    approved.insert(request, index);
                }
            }
            LogEvent::GrantIssued => {
                let Some(grant) = e.grant_id else { continue };
                if !e.request_id.is_some_and(|r| approved.contains_key(&r)) {
                    violation(
                        index,
                        "grant.without_approval",
                        format!("grant {grant} has no prior approval"),
                    );
                }
                grants.insert(
                    grant,
                    GrantFacts {
                        not_before: e.not_before,
                        not_after: e.not_after,
                        max_uses: e.max_uses,
                        uses_seen: 0,
                        revoked_at: None,
                        request_id: e.request_id,
                    },
                );
            }
            LogEvent::Revoke => {
                if let Some(facts) = e.grant_id.and_then(|g| grants.get_mut(&g)) {
                    facts.revoked_at.get_or_insert(index);
                }
            }
            LogEvent::Fetch => match e.grant_id {
                Some(grant) => check_grant_fetch(index, e, grants.get_mut(&grant), &mut violation),
                None => check_direct_fetch(index, e, &issuers, &mut violation),
            },
            _ => {}
        }
    }
    out
}

fn check_grant_fetch(
    index: u64,
    e: &LogEntry,
    facts: Option<&mut GrantFacts>,
    violation: &mut impl FnMut(u64, &str, String),
) {
    let Some(g) = facts else {
        violation(
            index,
            "fetch.unknown_grant",
            "the grant was never issued in this log".into(),
        );
        return;
    };
    if g.request_id.is_none() {
        violation(
            index,
            "fetch.without_approval",
            "the grant names no approved request".into(),
        );
    }
    if e.time + AUDIT_SKEW_S < g.not_before || e.time > g.not_after {
        violation(
            index,
            "fetch.outside_window",
            format!(
                "fetched at {} outside {}..{}",
                e.time, g.not_before, g.not_after
            ),
        );
    }
    if let Some(revoked) = g.revoked_at {
        violation(
            index,
            "fetch.after_revocation",
            format!("the grant was revoked at entry {revoked}"),
        );
    }
    g.uses_seen += 1;
    if e.use_number != g.uses_seen {
        violation(
            index,
            "fetch.use_number",
            format!(
                "use {} recorded where {} was due",
                e.use_number, g.uses_seen
            ),
        );
    }
    if g.uses_seen > g.max_uses {
        violation(
            index,
            "fetch.exceeds_uses",
            format!("use {} of a grant allowing {}", g.uses_seen, g.max_uses),
        );
    }
}

fn check_direct_fetch(
    index: u64,
    e: &LogEntry,
    issuers: &HashMap<pki::DocumentId, (String, [u8; 32])>,
    violation: &mut impl FnMut(u64, &str, String),
) {
    let Some((issuer, tag)) = e.document_id.and_then(|d| issuers.get(&d)) else {
        violation(
            index,
            "fetch.unknown_document",
            "a fetch of a document never issued in this log".into(),
        );
        return;
    };
    let allowed = match e.actor_role {
        Role::Department => &e.actor == issuer,
        Role::Resident => &e.resident_tag == tag,
        _ => false,
    };
    if !allowed {
        violation(
            index,
            "fetch.without_grant",
            format!("{} {} fetched without a grant", e.actor_role, e.actor),
        );
    }
}

/// What an auditor trusts between runs, kept in a directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustedCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash, lowercase hex.
    pub root: String,
    /// The signed note.
    pub note: String,
}

/// The auditor's state directory: `checkpoint.json` and `leaves.bin`.
pub struct AuditState {
    dir: PathBuf,
}

impl AuditState {
    /// Opens (creating) the state directory.
    pub fn open(dir: &Path) -> Result<Self, ClientError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        Ok(AuditState {
            dir: dir.to_path_buf(),
        })
    }

    /// The last trusted checkpoint, if any.
    pub fn trusted(&self) -> Result<Option<TrustedCheckpoint>, ClientError> {
        let path = self.dir.join("checkpoint.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Leaf hashes verified before.
    pub fn leaves(&self) -> Result<Vec<Hash>, ClientError> {
        let path = self.dir.join("leaves.bin");
        match std::fs::read(&path) {
            Ok(bytes) => Ok(bytes
                .chunks_exact(32)
                .filter_map(|c| c.try_into().ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Saves a newly trusted checkpoint and its leaves (atomically).
    pub fn save(&self, trusted: &TrustedCheckpoint, leaves: &[Hash]) -> Result<(), ClientError> {
        let leaves_bytes: Vec<u8> = leaves.iter().flatten().copied().collect();
        write_atomic(&self.dir.join("leaves.bin"), &leaves_bytes)?;
        let json = serde_json::to_vec_pretty(trusted)
            .map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?;
        write_atomic(&self.dir.join("checkpoint.json"), &json)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn io(path: &Path, e: std::io::Error) -> ClientError {
    ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(event: LogEvent, time: i64) -> LogEntry {
        LogEntry {
            event,
            time,
            actor_role: Role::Department,
            actor: "housing-bureau".into(),
            resident_tag: [1; 32],
            document_id: Some(pki::DocumentId::from_bytes([3; 16])),
            request_id: Some(RequestId::from_bytes([4; 16])),
            grant_id: Some(GrantId::from_bytes([5; 16])),
            use_number: 0,
            code: String::new(),
            not_before: 0,
            not_after: 0,
            max_uses: 0,
            commitment: [0; 32],
        }
    }

    fn story() -> Vec<LogEntry> {
        let mut issued = entry(LogEvent::DocumentIssued, 10);
        issued.actor = "civil-affairs".into();
        issued.grant_id = None;
        let approval = entry(LogEvent::Approval, 20);
        let mut grant = entry(LogEvent::GrantIssued, 21);
        grant.not_before = 20;
        grant.not_after = 100;
        grant.max_uses = 2;
        let mut fetch1 = entry(LogEvent::Fetch, 30);
        fetch1.use_number = 1;
        let mut fetch2 = entry(LogEvent::Fetch, 31);
        fetch2.use_number = 2;
        vec![issued, approval, grant, fetch1, fetch2]
    }

    #[test]
    fn a_lawful_story_has_no_violations() {
        assert_eq!(replay(0, &story()), vec![]);
    }

    #[test]
    fn each_broken_rule_is_named() {
        let mut extra = story();
        let mut third = entry(LogEvent::Fetch, 32);
        third.use_number = 3;
        extra.push(third);
        assert_eq!(replay(0, &extra)[0].rule, "fetch.exceeds_uses");

        let mut late = story();
        late[4].time = 500;
        assert_eq!(replay(0, &late)[0].rule, "fetch.outside_window");

        let mut revoked = story();
        revoked.insert(4, entry(LogEvent::Revoke, 30));
        assert_eq!(replay(0, &revoked)[0].rule, "fetch.after_revocation");

        let mut unapproved = story();
        unapproved.remove(1);
        assert_eq!(replay(0, &unapproved)[0].rule, "grant.without_approval");

        let mut stranger = story();
        let mut direct = entry(LogEvent::Fetch, 40);
        direct.grant_id = None;
        stranger.push(direct);
        let v = replay(0, &stranger);
        assert_eq!(v[0].rule, "fetch.without_grant");
        assert_eq!(v[0].index, 5);
    }
}
