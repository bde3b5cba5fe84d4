//! The auditor's pure half: the rules a log must keep, checked over bytes
//! and parsed entries, with no network and no files.
//!
//! [`replay`] walks parsed entries in order and reports every fetch the
//! rules do not allow (no grant, outside its window, beyond its uses, after
//! its revocation, without an approval, of a document outside the grant's
//! scope; or a grant-less fetch by someone other than the issuer or the
//! resident) and every chain link that does not name the previous entry
//! with the same resident tag ([`chains`], `index.broken_link`).
//! [`compare_checkpoints`],
//! [`changed_entries`], [`parse_entries`], [`root_violation`] and
//! [`index_root_violation`] (`index.root_mismatch`) are the
//! other checks of `vault audit verify`; [`TrustedCheckpoint`] and
//! [`AuditReport`] are what it keeps and prints. Fetching the log and
//! keeping the auditor's state directory is `audit` (feature `net`).

use std::collections::{BTreeMap, HashMap, HashSet};

use pki::{DocumentId, GrantId, LogEntry, LogEvent, RequestId, Role};
use serde::{Deserialize, Serialize};

use crate::merkle::{self, Hash};

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
    /// The grant's documents, from a version 2 `grant_issued` entry; `None`
    /// for a version 1 entry (written before entries listed the scope),
    /// whose fetches cannot be checked against it.
    scope: Option<HashSet<DocumentId>>,
}

/// What the replay remembers about grants while it walks the log.
#[derive(Default)]
struct Grants {
    facts: HashMap<GrantId, GrantFacts>,
    /// The first `grant_issued` entry that listed its scope: from there on
    /// every one must (a node that lists scopes does so for every grant).
    first_scoped: Option<u64>,
}

/// Replays the log's rules over entries `first..` (in order).
pub fn replay(first: u64, entries: &[LogEntry]) -> Vec<Violation> {
    let mut grants = Grants::default();
    let mut approved: HashMap<RequestId, u64> = HashMap::new();
    let mut issuers: HashMap<pki::DocumentId, (String, [u8; 32])> = HashMap::new();
    let (_, mut out) = chains(first, entries);
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
            // An order's approval backs its grant as a consent does.
            LogEvent::Approval | LogEvent::OrderApproved => {
                if let Some(request) = e.request_id {
                    approved.insert(request, index);
                }
            }
            LogEvent::GrantIssued => {
                if let Some(grant) = e.grant_id {
                    check_grant_issued(index, grant, e, &mut grants, &mut approved, &mut violation);
                }
            }
            LogEvent::Revoke => {
                if let Some(facts) = e.grant_id.and_then(|g| grants.facts.get_mut(&g)) {
                    facts.revoked_at.get_or_insert(index);
                }
            }
            LogEvent::Fetch => match e.grant_id {
                Some(grant) => {
                    check_grant_fetch(index, e, grants.facts.get_mut(&grant), &mut violation)
                }
                None => check_direct_fetch(index, e, &issuers, &mut violation),
            },
            _ => {}
        }
    }
    out.sort_by_key(|v| v.index);
    out
}

/// Each resident tag's newest entry and number of entries, by tag.
pub type TagHeads = BTreeMap<[u8; 32], (u64, u64)>;

/// Every resident tag's chain over entries `first..` (the whole log from
/// 0 for the resident index): each tag's newest entry and number of
/// entries, and every link that is wrong (`index.broken_link`): a version 3
/// entry whose `prev` is not (index of the previous entry with its tag) + 1
/// (0 for the tag's first), an untagged entry with a link, or a tagged entry
/// without one once the log links entries. Entries written before version
/// 3 count in their tag's chain (a node links to them) but carry no link.
pub fn chains(first: u64, entries: &[LogEntry]) -> (TagHeads, Vec<Violation>) {
    let mut heads = TagHeads::new();
    let mut first_linked: Option<u64> = None;
    let mut out = Vec::new();
    let mut broken = |index: u64, detail: String| {
        out.push(Violation {
            index,
            rule: "index.broken_link".to_string(),
            detail,
        });
    };
    for (offset, e) in entries.iter().enumerate() {
        let index = first + offset as u64;
        if e.resident_tag == [0; 32] {
            if e.prev.is_some() {
                broken(
                    index,
                    "an entry without a resident tag carries a link".into(),
                );
            }
            continue;
        }
        let head = heads.get(&e.resident_tag).copied();
        let due = head.map_or(0, |(h, _)| h + 1);
        match e.prev {
            Some(prev) => {
                first_linked.get_or_insert(index);
                if prev != due {
                    let names = |p: u64| match p {
                        0 => "none (the tag's first)".to_string(),
                        p => format!("entry {}", p - 1),
                    };
                    broken(
                        index,
                        format!(
                            "links to {} where the tag's previous entry is {}",
                            names(prev),
                            names(due)
                        ),
                    );
                }
            }
            None => {
                if let Some(linked) = first_linked {
                    broken(
                        index,
                        format!("a tagged entry without a link, though entries are linked since entry {linked}"),
                    );
                }
            }
        }
        let count = head.map_or(0, |(_, c)| c) + 1;
        heads.insert(e.resident_tag, (index, count));
    }
    (heads, out)
}

/// A `grant_issued` entry: a grant issued once, backed by an unused prior
/// approval, listing its scope once grants do; its facts are remembered for
/// the fetches under it.
fn check_grant_issued(
    index: u64,
    grant: GrantId,
    e: &LogEntry,
    grants: &mut Grants,
    approved: &mut HashMap<RequestId, u64>,
    violation: &mut impl FnMut(u64, &str, String),
) {
    if grants.facts.contains_key(&grant) {
        violation(
            index,
            "grant.duplicate",
            format!("grant {grant} was already issued"),
        );
        return;
    }
    // Each approval backs exactly one grant.
    if e.request_id.is_none_or(|r| approved.remove(&r).is_none()) {
        violation(
            index,
            "grant.without_approval",
            format!("grant {grant} has no unused prior approval"),
        );
    }
    let scope = if e.documents.is_empty() {
        if let Some(first) = grants.first_scoped {
            violation(
                index,
                "grant.without_scope",
                format!("grant {grant} lists no documents, though grants do since entry {first}"),
            );
        }
        None
    } else {
        grants.first_scoped.get_or_insert(index);
        Some(e.documents.iter().copied().collect())
    };
    grants.facts.insert(
        grant,
        GrantFacts {
            not_before: e.not_before,
            not_after: e.not_after,
            max_uses: e.max_uses,
            uses_seen: 0,
            revoked_at: None,
            request_id: e.request_id,
            scope,
        },
    );
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
    if let Some(scope) = &g.scope {
        if e.document_id.is_none_or(|d| !scope.contains(&d)) {
            let document = e.document_id.map(|d| d.to_string()).unwrap_or_default();
            violation(
                index,
                "fetch.outside_grant_scope",
                format!(
                    "document {document} is not one of the grant's {}",
                    scope.len()
                ),
            );
        }
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

/// How a newly signed checkpoint relates to the trusted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointComparison {
    /// Nothing to prove: no earlier trust (size 0), or the same tree.
    Consistent,
    /// The new checkpoint is larger: a consistency proof from the trusted
    /// size to the new one must be fetched and match both roots.
    NeedsProof,
    /// The log shrank or forked: the violation to report.
    Broken(Violation),
}

/// Compares a signed checkpoint with the trusted one, before any proof.
pub fn compare_checkpoints(
    trusted: &TrustedCheckpoint,
    checkpoint: &pki::Checkpoint,
) -> CheckpointComparison {
    let broken = |rule: &str, detail: String| {
        CheckpointComparison::Broken(Violation {
            index: trusted.size,
            rule: rule.into(),
            detail,
        })
    };
    if trusted.size > checkpoint.size {
        broken(
            "log.shrunk",
            format!(
                "the log shrank from {} to {} entries",
                trusted.size, checkpoint.size
            ),
        )
    } else if trusted.size == checkpoint.size && hex::encode(checkpoint.root) != trusted.root {
        broken(
            "log.fork",
            format!(
                "two checkpoints of size {} with different roots",
                checkpoint.size
            ),
        )
    } else if trusted.size < checkpoint.size && trusted.size > 0 {
        CheckpointComparison::NeedsProof
    } else {
        CheckpointComparison::Consistent
    }
}

/// Leaves that differ from the ones verified before (`entry.changed`), by index.
pub fn changed_entries(known: &[Hash], leaves: &[Hash]) -> Vec<Violation> {
    known
        .iter()
        .zip(leaves)
        .enumerate()
        .filter(|(_, (old, new))| old != new)
        .map(|(index, _)| Violation {
            index: index as u64,
            rule: "entry.changed".into(),
            detail: format!("entry {index} differs from the one verified before"),
        })
        .collect()
}

/// Parses canonical entries in order, stopping at the first malformed one
/// (`entry.malformed`, returned beside the entries before it).
pub fn parse_entries(entries: &[Vec<u8>]) -> (Vec<LogEntry>, Option<Violation>) {
    let mut parsed = Vec::with_capacity(entries.len());
    for (index, bytes) in entries.iter().enumerate() {
        match LogEntry::parse(bytes) {
            Ok(entry) => parsed.push(entry),
            Err(e) => {
                let violation = Violation {
                    index: index as u64,
                    rule: "entry.malformed".into(),
                    detail: e.to_string(),
                };
                return (parsed, Some(violation));
            }
        }
    }
    (parsed, None)
}

/// The first `checkpoint.size` leaves must be that many and hash to its
/// root; otherwise `log.root_mismatch`.
pub fn root_violation(leaves: &[Hash], checkpoint: &pki::Checkpoint) -> Option<Violation> {
    let mut builder = merkle::RootBuilder::new();
    leaves
        .iter()
        .take(usize::try_from(checkpoint.size).unwrap_or(usize::MAX))
        .for_each(|l| builder.push(*l));
    if builder.size() == checkpoint.size && builder.root() == checkpoint.root {
        return None;
    }
    Some(Violation {
        index: builder.size(),
        rule: "log.root_mismatch".into(),
        detail: "the entries do not hash to the signed root".into(),
    })
}

/// The resident index root over the first `size` entries (the whole log
/// from 0): each tag's newest entry and count from [`chains`], as leaves
/// of [`crate::smt`], the root a checkpoint of that size must sign.
pub fn index_root(entries: &[LogEntry], size: u64) -> Hash {
    let n = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .min(entries.len());
    let (heads, _) = chains(0, &entries[..n]);
    // A BTreeMap iterates tags in byte order, which is the tree's key order.
    let leaves: Vec<(Hash, Hash)> = heads
        .iter()
        .map(|(tag, (head, count))| (*tag, crate::smt::head_value(tag, *head, *count)))
        .collect();
    crate::smt::root_of(&leaves)
}

/// A checkpoint's `resident-index` root must be the one recomputed from
/// the log's entries ([`index_root`]); otherwise `index.root_mismatch`
/// (at the checkpoint's size). A note without the line, or a checkpoint
/// beyond the entries given (`log.root_mismatch` says so), is not checked.
pub fn index_root_violation(
    entries: &[LogEntry],
    checkpoint: &pki::Checkpoint,
) -> Option<Violation> {
    let signed = checkpoint.resident_index?;
    if (entries.len() as u64) < checkpoint.size {
        return None;
    }
    let recomputed = index_root(entries, checkpoint.size);
    (recomputed != signed).then(|| Violation {
        index: checkpoint.size,
        rule: "index.root_mismatch".into(),
        detail: format!(
            "the checkpoint of size {} signs resident index root {}, the log's entries give {}",
            checkpoint.size,
            hex::encode(signed),
            hex::encode(recomputed)
        ),
    })
}

/// The first number in a message (the index in a node's `log.corrupt`).
pub fn first_number(text: &str) -> Option<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(event: LogEvent, time: i64) -> LogEntry {
        LogEntry {
            resident_tag: [1; 32],
            document_id: Some(pki::DocumentId::from_bytes([3; 16])),
            request_id: Some(RequestId::from_bytes([4; 16])),
            grant_id: Some(GrantId::from_bytes([5; 16])),
            ..LogEntry::new(event, time, Role::Department, "housing-bureau")
        }
    }

    fn story() -> Vec<LogEntry> {
        let mut issued = entry(LogEvent::DocumentIssued, 10);
        issued.actor = "civil-affairs".into();
        issued.grant_id = None;
        let approval = entry(LogEvent::Approval, 20);
        let mut grant = entry(LogEvent::GrantIssued, 21);
        grant.document_id = None;
        grant.not_before = 20;
        grant.not_after = 100;
        grant.max_uses = 2;
        grant.documents = vec![
            pki::DocumentId::from_bytes([2; 16]),
            pki::DocumentId::from_bytes([3; 16]),
        ];
        let mut fetch1 = entry(LogEvent::Fetch, 30);
        fetch1.use_number = 1;
        let mut fetch2 = entry(LogEvent::Fetch, 31);
        fetch2.use_number = 2;
        vec![issued, approval, grant, fetch1, fetch2]
    }

    #[test]
    fn a_lawful_story_has_no_violations() {
        assert_eq!(replay(0, &story()), vec![]);
        assert_eq!(replay(0, &linked(story())), vec![]);
    }

    /// `entries` as a node writes them since version 3: each tagged entry
    /// linked to the previous one with its tag.
    fn linked(mut entries: Vec<LogEntry>) -> Vec<LogEntry> {
        let mut heads: HashMap<[u8; 32], u64> = HashMap::new();
        for (i, e) in entries.iter_mut().enumerate() {
            if e.resident_tag != [0; 32] {
                e.prev = Some(heads.get(&e.resident_tag).map_or(0, |h| h + 1));
                heads.insert(e.resident_tag, i as u64);
            }
        }
        entries
    }

    #[test]
    fn chains_give_each_tags_head_and_count_and_name_broken_links() {
        let mut log = story();
        let mut other = entry(LogEvent::RequestMade, 40);
        other.resident_tag = [2; 32];
        log.insert(2, other);
        let untagged = LogEntry::new(LogEvent::CertificateRevoked, 41, Role::Node, "district-ca");
        log.push(untagged);
        let log = linked(log);
        let (heads, violations) = chains(0, &log);
        assert_eq!(violations, vec![]);
        assert_eq!(heads.get(&[1; 32]), Some(&(5, 5)));
        assert_eq!(heads.get(&[2; 32]), Some(&(2, 1)));
        assert_eq!(heads.len(), 2);
        // A link that skips an entry (the node hid entry 3 from the chain).
        let mut skipping = log.clone();
        skipping[4].prev = Some(2);
        let v = replay(0, &skipping);
        assert_eq!((v[0].index, v[0].rule.as_str()), (4, "index.broken_link"));
        // A second "first" entry, an unlinked entry once entries are linked,
        // and a link on an untagged entry.
        for (i, prev) in [(3, Some(0)), (5, None)] {
            let mut broken = log.clone();
            broken[i].prev = prev;
            let v = chains(0, &broken).1;
            assert_eq!(v.len(), 1, "{i}");
            assert_eq!(
                (v[0].index, v[0].rule.as_str()),
                (i as u64, "index.broken_link")
            );
        }
        let mut untagged_link = log.clone();
        untagged_link[6].prev = Some(0);
        assert_eq!(chains(0, &untagged_link).1[0].index, 6);
        // Entries before version 3 count in the chain without a link.
        let mut upgraded = story();
        let tail = linked(story()).split_off(3);
        upgraded.truncate(3);
        upgraded.extend(tail.into_iter().enumerate().map(|(k, mut e)| {
            e.prev = Some(3 + k as u64);
            e
        }));
        assert_eq!(chains(0, &upgraded).1, vec![]);
    }

    #[test]
    fn the_index_root_is_recomputed_and_a_wrong_one_named() {
        let mut log = story();
        let mut other = entry(LogEvent::RequestMade, 40);
        other.resident_tag = [2; 32];
        log.insert(2, other);
        let log = linked(log);
        // The node's way: one leaf update per tagged entry.
        let mut tree = crate::smt::Tree::new();
        let mut counts = HashMap::new();
        for (i, e) in log.iter().enumerate() {
            let count = counts.entry(e.resident_tag).or_insert(0u64);
            *count += 1;
            tree.insert_head(e.resident_tag, i as u64, *count);
        }
        assert_eq!(index_root(&log, log.len() as u64), tree.root());
        let checkpoint = |resident_index| pki::Checkpoint {
            origin: "test/vault".into(),
            size: log.len() as u64,
            root: [0; 32],
            resident_index,
        };
        assert_eq!(
            index_root_violation(&log, &checkpoint(Some(tree.root()))),
            None
        );
        assert_eq!(index_root_violation(&log, &checkpoint(None)), None);
        // A root over an index that hides an entry (count one short).
        let mut hiding = crate::smt::Tree::new();
        hiding.insert_head([1; 32], 5, 4);
        hiding.insert_head([2; 32], 2, 1);
        let v = index_root_violation(&log, &checkpoint(Some(hiding.root()))).unwrap();
        assert_eq!(
            (v.index, v.rule.as_str()),
            (log.len() as u64, "index.root_mismatch")
        );
        // At a smaller size, the root over that prefix.
        let prefix = pki::Checkpoint {
            size: 3,
            resident_index: Some(index_root(&log[..3], 3)),
            ..checkpoint(None)
        };
        assert_eq!(index_root_violation(&log, &prefix), None);
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

    #[test]
    fn a_fetch_outside_its_grants_scope_is_named() {
        // A crafted log: the grant lists documents 2 and 3; its second use fetches 8.
        let mut log = story();
        log[4].document_id = Some(pki::DocumentId::from_bytes([8; 16]));
        let v = replay(0, &log);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].index, v[0].rule.as_str()),
            (4, "fetch.outside_grant_scope")
        );
        assert!(v[0].detail.contains(&"08".repeat(16)), "{}", v[0].detail);

        // A fetch naming no document under a scoped grant is outside it too.
        let mut nameless = story();
        nameless[3].document_id = None;
        assert_eq!(replay(0, &nameless)[0].rule, "fetch.outside_grant_scope");

        // A version 1 grant entry (written before scopes were listed) is not judged...
        let mut old = story();
        old[2].documents.clear();
        old[4].document_id = Some(pki::DocumentId::from_bytes([8; 16]));
        assert_eq!(replay(0, &old), vec![]);
        // ...but once a grant listed its scope, a later grant that lists none is named.
        let mut downgraded = story();
        let mut approval = entry(LogEvent::Approval, 40);
        approval.request_id = Some(RequestId::from_bytes([6; 16]));
        let mut unscoped = downgraded[2].clone();
        unscoped.request_id = approval.request_id;
        unscoped.grant_id = Some(GrantId::from_bytes([7; 16]));
        unscoped.documents.clear();
        downgraded.extend([approval, unscoped]);
        let v = replay(0, &downgraded);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].index, v[0].rule.as_str()), (6, "grant.without_scope"));
    }

    #[test]
    fn grant_fetch_rules_name_unknown_grants_and_wrong_use_numbers() {
        let mut unknown = story();
        unknown.remove(2);
        let rules: Vec<_> = replay(0, &unknown).into_iter().map(|v| v.rule).collect();
        assert_eq!(rules, ["fetch.unknown_grant", "fetch.unknown_grant"]);

        let mut skipped = story();
        skipped[4].use_number = 3;
        let v = replay(0, &skipped);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].index, v[0].rule.as_str()), (4, "fetch.use_number"));

        // Within the skew allowance before not_before is lawful; beyond it is not.
        let mut early = story();
        early[3].time = 20 - AUDIT_SKEW_S;
        assert_eq!(replay(0, &early), vec![]);
        early[3].time = 19 - AUDIT_SKEW_S;
        assert_eq!(replay(0, &early)[0].rule, "fetch.outside_window");
    }

    #[test]
    fn direct_fetches_are_lawful_for_the_issuer_and_the_resident_only() {
        let mut log = story();
        let mut issuer = entry(LogEvent::Fetch, 40);
        issuer.grant_id = None;
        issuer.actor = "civil-affairs".into();
        let mut resident = issuer.clone();
        resident.actor_role = Role::Resident;
        resident.actor = "resident-1".into();
        let mut other_resident = resident.clone();
        other_resident.resident_tag = [9; 32];
        let mut unknown = issuer.clone();
        unknown.document_id = Some(pki::DocumentId::from_bytes([8; 16]));
        log.extend([issuer, resident, other_resident, unknown]);
        let v = replay(0, &log);
        let found: Vec<_> = v.iter().map(|v| (v.index, v.rule.as_str())).collect();
        assert_eq!(
            found,
            [(7, "fetch.without_grant"), (8, "fetch.unknown_document")]
        );
    }

    #[test]
    fn indices_count_from_the_first_entry_given() {
        let mut extra = story();
        let mut third = entry(LogEvent::Fetch, 32);
        third.use_number = 3;
        extra.push(third);
        assert_eq!(replay(100, &extra)[0].index, 105);
    }

    fn checkpoint(size: u64, root: Hash) -> pki::Checkpoint {
        pki::Checkpoint {
            origin: "Test District/vault-log".into(),
            size,
            root,
            resident_index: None,
        }
    }

    fn trusted(size: u64, root: Hash) -> TrustedCheckpoint {
        TrustedCheckpoint {
            size,
            root: hex::encode(root),
            note: String::new(),
        }
    }

    #[test]
    fn checkpoints_compare_as_consistent_needing_proof_shrunk_or_forked() {
        let (a, b) = ([1; 32], [2; 32]);
        let compare = |t, c| compare_checkpoints(&t, &c);
        assert_eq!(
            compare(trusted(0, a), checkpoint(5, b)),
            CheckpointComparison::Consistent
        );
        assert_eq!(
            compare(trusted(5, a), checkpoint(5, a)),
            CheckpointComparison::Consistent
        );
        assert_eq!(
            compare(trusted(3, a), checkpoint(5, b)),
            CheckpointComparison::NeedsProof
        );
        let CheckpointComparison::Broken(v) = compare(trusted(6, a), checkpoint(5, a)) else {
            panic!("a shrunk log must be broken");
        };
        assert_eq!((v.index, v.rule.as_str()), (6, "log.shrunk"));
        let CheckpointComparison::Broken(v) = compare(trusted(5, a), checkpoint(5, b)) else {
            panic!("a fork must be broken");
        };
        assert_eq!((v.index, v.rule.as_str()), (5, "log.fork"));
    }

    #[test]
    fn changed_leaves_and_root_mismatches_are_named_by_index() {
        let leaves: Vec<Hash> = (0u8..4).map(|i| merkle::leaf_hash(&[i])).collect();
        let mut known = leaves[..3].to_vec();
        assert_eq!(changed_entries(&known, &leaves), vec![]);
        known[1] = [0; 32];
        let v = changed_entries(&known, &leaves);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].index, v[0].rule.as_str()), (1, "entry.changed"));

        let mut builder = merkle::RootBuilder::new();
        leaves.iter().for_each(|l| builder.push(*l));
        assert_eq!(
            root_violation(&leaves, &checkpoint(4, builder.root())),
            None
        );
        let v = root_violation(&leaves, &checkpoint(4, [0; 32])).unwrap();
        assert_eq!((v.index, v.rule.as_str()), (4, "log.root_mismatch"));
        // Fewer leaves than the checkpoint claims: named at the first missing one.
        let v = root_violation(&leaves[..2], &checkpoint(4, builder.root())).unwrap();
        assert_eq!(v.index, 2);
    }

    #[test]
    fn parsing_stops_at_the_first_malformed_entry() {
        let good = story()[0].canonical_bytes();
        let (parsed, bad) = parse_entries(&[good.clone(), vec![0xff; 3], good]);
        assert_eq!(parsed.len(), 1);
        let bad = bad.unwrap();
        assert_eq!((bad.index, bad.rule.as_str()), (1, "entry.malformed"));
        assert_eq!(first_number("log entry 17 does not match"), Some(17));
        assert_eq!(first_number("no digits"), None);
    }
}
