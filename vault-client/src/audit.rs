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
                if grants.contains_key(&grant) {
                    violation(
                        index,
                        "grant.duplicate",
                        format!("grant {grant} was already issued"),
                    );
                    continue;
                }
                // Each approval backs exactly one grant.
                if e.request_id.is_none_or(|r| approved.remove(&r).is_none()) {
                    violation(
                        index,
                        "grant.without_approval",
                        format!("grant {grant} has no unused prior approval"),
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
    if e.time.saturating_add(AUDIT_SKEW_S) < g.not_before || e.time > g.not_after {
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
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| io(&tmp, e))?;
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

        // A second grant_issued for the same grant cannot reset its uses.
        let mut reissued = story();
        let again = reissued[2].clone();
        reissued.push(again);
        let mut third = entry(LogEvent::Fetch, 33);
        third.use_number = 3;
        reissued.push(third);
        let rules: Vec<_> = replay(0, &reissued).into_iter().map(|v| v.rule).collect();
        assert!(rules.contains(&"grant.duplicate".to_string()), "{rules:?}");
        assert!(
            rules.contains(&"fetch.exceeds_uses".to_string()),
            "{rules:?}"
        );

        let mut stranger = story();
        let mut direct = entry(LogEvent::Fetch, 40);
        direct.grant_id = None;
        stranger.push(direct);
        let v = replay(0, &stranger);
        assert_eq!(v[0].rule, "fetch.without_grant");
        assert_eq!(v[0].index, 5);
    }
}

/// What `vault audit verify` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// Entries in the verified checkpoint (0 when the node signed none).
    pub tree_size: u64,
    /// Entries fetched and replayed.
    pub entries_checked: u64,
    /// The log is consistent with the last trusted checkpoint and its
    /// entries hash to the signed root.
    pub consistent: bool,
    /// The checkpoint's signature verified.
    pub checkpoint_verified: bool,
    /// The size of the previously trusted checkpoint (0 if none).
    pub previous_size: u64,
    /// Every problem found.
    pub violations: Vec<Violation>,
}

impl AuditReport {
    /// Whether the audit passed.
    pub fn passed(&self) -> bool {
        self.consistent && self.checkpoint_verified && self.violations.is_empty()
    }
}

/// Entries fetched per request while auditing.
pub const AUDIT_PAGE: u64 = 1000;

/// Fetches the checkpoint and every entry, checks consistency with the last
/// trusted checkpoint, recomputes the tree, replays the rules; on success
/// with a consistent log, trusts the new checkpoint.
pub async fn verify(
    client: &crate::VaultClient,
    state: &AuditState,
) -> Result<AuditReport, ClientError> {
    let trusted = state.trusted()?;
    let known = state.leaves()?;
    let mut report = AuditReport {
        tree_size: 0,
        entries_checked: 0,
        consistent: true,
        checkpoint_verified: false,
        previous_size: trusted.as_ref().map_or(0, |t| t.size),
        violations: Vec::new(),
    };
    let checkpoint = match client.checkpoint().await {
        Ok((checkpoint, note)) => {
            report.checkpoint_verified = true;
            report.tree_size = checkpoint.size;
            Some((checkpoint, note))
        }
        Err(e) if e.code() == ErrorCode::LogCorrupt.as_str() => {
            report.consistent = false;
            report.violations.push(Violation {
                index: first_number(&e.to_string()).unwrap_or(0),
                rule: "log.corrupt".into(),
                detail: e.to_string(),
            });
            None
        }
        Err(e) => return Err(e),
    };
    if let (Some(t), Some((cp, _))) = (&trusted, &checkpoint) {
        check_consistency(client, t, cp, &mut report).await?;
    }
    let (leaves, entries) = fetch_all(client, checkpoint.as_ref().map(|c| c.0.size)).await?;
    report.entries_checked = entries.len() as u64;
    for (index, (old, new)) in known.iter().zip(&leaves).enumerate() {
        if old != new {
            report.consistent = false;
            report.violations.push(Violation {
                index: index as u64,
                rule: "entry.changed".into(),
                detail: format!("entry {index} differs from the one verified before"),
            });
        }
    }
    let parsed = parse_entries(&entries, &mut report);
    if let Some((cp, note)) = &checkpoint {
        let mut builder = crate::merkle::RootBuilder::new();
        leaves
            .iter()
            .take(cp.size as usize)
            .for_each(|l| builder.push(*l));
        if builder.size() != cp.size || builder.root() != cp.root {
            report.consistent = false;
            report.violations.push(Violation {
                index: builder.size(),
                rule: "log.root_mismatch".into(),
                detail: "the entries do not hash to the signed root".into(),
            });
        }
        report.violations.extend(replay(0, &parsed));
        if report.consistent {
            let trusted = TrustedCheckpoint {
                size: cp.size,
                root: hex::encode(cp.root),
                note: note.clone(),
            };
            state.save(&trusted, &leaves[..cp.size as usize])?;
        }
    }
    Ok(report)
}

async fn check_consistency(
    client: &crate::VaultClient,
    trusted: &TrustedCheckpoint,
    cp: &pki::Checkpoint,
    report: &mut AuditReport,
) -> Result<(), ClientError> {
    let old_root = hex::encode(cp.root) == trusted.root;
    let mut fail = |rule: &str, detail: String| {
        report.consistent = false;
        report.violations.push(Violation {
            index: trusted.size,
            rule: rule.into(),
            detail,
        });
    };
    if trusted.size > cp.size {
        fail(
            "log.shrunk",
            format!(
                "the log shrank from {} to {} entries",
                trusted.size, cp.size
            ),
        );
    } else if trusted.size == cp.size && !old_root {
        fail(
            "log.fork",
            format!("two checkpoints of size {} with different roots", cp.size),
        );
    } else if trusted.size < cp.size && trusted.size > 0 {
        match client.consistency_proof(trusted.size, cp.size).await {
            Ok(crate::wire::Response::ConsistencyProof {
                old_root, new_root, ..
            }) if old_root == trusted.root && new_root == hex::encode(cp.root) => {}
            Ok(_) => fail(
                "log.fork",
                "the new checkpoint is not consistent with the trusted one".into(),
            ),
            Err(e) => fail("log.inconsistent", e.to_string()),
        }
    }
    Ok(())
}

/// Every entry (up to `size`, or until the node has no more) and its leaf hash.
async fn fetch_all(
    client: &crate::VaultClient,
    size: Option<u64>,
) -> Result<(Vec<Hash>, Vec<Vec<u8>>), ClientError> {
    let mut leaves = Vec::new();
    let mut entries = Vec::new();
    loop {
        let start = entries.len() as u64;
        let want = match size {
            Some(size) if start >= size => break,
            Some(size) => (size - start).min(AUDIT_PAGE),
            None => AUDIT_PAGE,
        };
        let page = client.log_entries(start, want).await?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            leaves.push(crate::merkle::leaf_hash(&entry));
            entries.push(entry);
        }
    }
    Ok((leaves, entries))
}

fn parse_entries(entries: &[Vec<u8>], report: &mut AuditReport) -> Vec<LogEntry> {
    let mut parsed = Vec::with_capacity(entries.len());
    for (index, bytes) in entries.iter().enumerate() {
        match LogEntry::parse(bytes) {
            Ok(entry) => parsed.push(entry),
            Err(e) => {
                report.violations.push(Violation {
                    index: index as u64,
                    rule: "entry.malformed".into(),
                    detail: e.to_string(),
                });
                break;
            }
        }
    }
    parsed
}

/// The first number in a message (the index in a node's `log.corrupt`).
fn first_number(text: &str) -> Option<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
}
