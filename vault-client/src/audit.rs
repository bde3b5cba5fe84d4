//! The auditor's and the resident's side of the transparency log, over the
//! network: [`verify`] fetches the signed checkpoint, a consistency proof
//! and every entry from a node and runs the pure checks of
//! [`crate::replay`] over them; [`AuditState`] keeps what an auditor trusts
//! between runs (the last checkpoint and the leaf hashes it verified, so a
//! changed entry is named by index) in a directory.
//!
//! Part of the `net` feature. The rules themselves ([`replay`], the
//! checkpoint comparison, the root recomputation) are pure and live in
//! `replay`; their public names are re-exported here, where they have
//! always been.

use std::path::{Path, PathBuf};

pub use crate::replay::{replay, AuditReport, TrustedCheckpoint, Violation, AUDIT_SKEW_S};

use crate::client::VaultClient;
use crate::client_error::ClientError;
use crate::error::ErrorCode;
use crate::merkle::{self, Hash};
use crate::replay::{self as rules, CheckpointComparison};
use crate::wire::Response;

/// Entries fetched per request while auditing.
pub const AUDIT_PAGE: u64 = 1000;

/// Fetches the checkpoint and every entry, checks consistency with the last
/// trusted checkpoint, recomputes the tree, replays the rules; on success
/// with a consistent log, trusts the new checkpoint.
pub async fn verify(client: &VaultClient, state: &AuditState) -> Result<AuditReport, ClientError> {
    verify_seen(client, state, &[]).await
}

/// [`verify`], also checking `seen`: signed checkpoints collected elsewhere
/// (a resident's remembered checkpoint, a receipt's), each within the
/// log's size against the entries: its root over that prefix
/// (`log.root_mismatch`) and its resident index root (`index.root_mismatch`).
pub async fn verify_seen(
    client: &VaultClient,
    state: &AuditState,
    seen: &[pki::Checkpoint],
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
    let checkpoint = signed_checkpoint(client, &mut report).await?;
    if let (Some(t), Some((cp, _))) = (&trusted, &checkpoint) {
        check_consistency(client, t, cp, &mut report).await?;
    }
    let (leaves, entries) = fetch_all(client, checkpoint.as_ref().map(|c| c.0.size)).await?;
    report.entries_checked = entries.len() as u64;
    let changed = rules::changed_entries(&known, &leaves);
    if !changed.is_empty() {
        report.consistent = false;
        report.violations.extend(changed);
    }
    let (parsed, malformed) = rules::parse_entries(&entries);
    let all_parsed = malformed.is_none();
    report.violations.extend(malformed);
    if let Some((cp, note)) = &checkpoint {
        if let Some(violation) = rules::root_violation(&leaves, cp) {
            report.consistent = false;
            report.violations.push(violation);
        }
        // The resident index root of every checkpoint seen: this one, and
        // the one trusted before (both signed; recomputed from the entries).
        let earlier = trusted
            .as_ref()
            .and_then(|t| pki::Checkpoint::verify_note(&t.note, client.identity().log_keys()).ok());
        for other in seen.iter().filter(|o| o.size <= cp.size) {
            if let Some(mut violation) = rules::root_violation(&leaves, other) {
                violation.detail = format!(
                    "a checkpoint of size {} given to check: {}",
                    other.size, violation.detail
                );
                report.consistent = false;
                report.violations.push(violation);
            }
        }
        let all_seen = earlier.iter().chain(seen).chain(std::iter::once(cp));
        for checked in all_seen.filter(|o| o.size <= cp.size) {
            if all_parsed {
                report
                    .violations
                    .extend(rules::index_root_violation(&parsed, checked));
            }
        }
        report.violations.extend(replay(0, &parsed));
        // Access by law, against the district's registry as the node
        // answers it (the same registry every client is shown).
        let registry = client.registry().await?;
        let statutory = crate::orders::statutory_rules(registry.purposes());
        report
            .violations
            .extend(crate::orders::replay_orders(0, &parsed, &statutory));
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

/// The node's signed checkpoint and note, or `None` (with a `log.corrupt`
/// violation in `report`) when the node refuses to sign a corrupt log.
async fn signed_checkpoint(
    client: &VaultClient,
    report: &mut AuditReport,
) -> Result<Option<(pki::Checkpoint, String)>, ClientError> {
    match client.checkpoint().await {
        Ok((checkpoint, note)) => {
            report.checkpoint_verified = true;
            report.tree_size = checkpoint.size;
            Ok(Some((checkpoint, note)))
        }
        // The checkpoint this identity remembers (`<identity>/checkpoints/`)
        // and the node's are not consistent: reported like the state
        // directory's forks, the evidence path in the detail.
        Err(e) if e.code() == ErrorCode::LogFork.as_str() => {
            report.consistent = false;
            report.violations.push(Violation {
                index: 0,
                rule: "log.fork".into(),
                detail: e.to_string(),
            });
            Ok(None)
        }
        Err(e) if e.code() == ErrorCode::LogCorrupt.as_str() => {
            report.consistent = false;
            report.violations.push(Violation {
                index: rules::first_number(&e.to_string()).unwrap_or(0),
                rule: "log.corrupt".into(),
                detail: e.to_string(),
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn check_consistency(
    client: &VaultClient,
    trusted: &TrustedCheckpoint,
    cp: &pki::Checkpoint,
    report: &mut AuditReport,
) -> Result<(), ClientError> {
    let mut fail = |rule: &str, detail: String| {
        report.consistent = false;
        report.violations.push(Violation {
            index: trusted.size,
            rule: rule.into(),
            detail,
        });
    };
    match rules::compare_checkpoints(trusted, cp) {
        CheckpointComparison::Consistent => {}
        CheckpointComparison::Broken(violation) => fail(&violation.rule, violation.detail),
        CheckpointComparison::NeedsProof => {
            match client.consistency_proof(trusted.size, cp.size).await {
                Ok(Response::ConsistencyProof {
                    old_root, new_root, ..
                }) if old_root == trusted.root && new_root == hex::encode(cp.root) => {}
                Ok(_) => fail(
                    "log.fork",
                    "the new checkpoint is not consistent with the trusted one".into(),
                ),
                Err(e) => fail("log.inconsistent", e.to_string()),
            }
        }
    }
    Ok(())
}

/// Every entry (up to `size`, or until the node has no more) and its leaf hash.
async fn fetch_all(
    client: &VaultClient,
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
            leaves.push(merkle::leaf_hash(&entry));
            entries.push(entry);
        }
    }
    Ok((leaves, entries))
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
