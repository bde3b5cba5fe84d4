//! What a client remembers of the log between runs: the last checkpoint it
//! trusted, kept in the identity directory (`<identity>/checkpoints/`), and
//! every new signed checkpoint checked against it before it is used.
//!
//! Part of the `net` feature (it reads and writes files). A new checkpoint
//! is *consistent* with the remembered one when it is the same tree (same
//! size and root), or an RFC 6962 consistency proof from the smaller to the
//! larger leads from one signed root to the other. Anything else is a
//! **fork** (`log.fork`): the node (or whoever signed) showed this client
//! two histories that cannot both be true. Both signed checkpoints are then
//! kept as evidence in `checkpoints/fork-…/`, named in the error, and the
//! remembered checkpoint is left as it was.
//!
//! **Invariant:** the remembered checkpoint only moves forward: it is
//! replaced only by a larger checkpoint proven consistent with it.

use std::future::Future;
use std::path::{Path, PathBuf};

use crate::client_error::ClientError;
use crate::error::ErrorCode;
use crate::merkle::{self, Hash};
use crate::replay::TrustedCheckpoint;
use crate::wire::Response;

/// The folder of an identity directory holding what its client remembers.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The remembered checkpoint, in [`CHECKPOINTS_DIR`]: pretty JSON
/// `{"size":N,"root":"<64 hex>","note":"<signed note>"}`.
pub const TRUSTED_FILE: &str = "trusted.json";
/// How often a node that is behind the remembered checkpoint is asked
/// again for a consistency proof up to it (it may be catching up).
const BEHIND_RETRIES: u32 = 10;
/// The wait between those asks, in milliseconds.
const BEHIND_RETRY_MS: u64 = 200;
/// Most hashes accepted in a consistency proof (as the client allows).
const PROOF_HASHES_MAX: usize = 128;

/// The last trusted checkpoint of one client, in a directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

/// What the store concluded about a new checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was remembered: the new checkpoint is now.
    First,
    /// The same tree as the remembered one.
    Same,
    /// Larger and proven consistent: now remembered.
    Advanced,
    /// Smaller and proven a prefix of the remembered one (a node that
    /// lags): kept remembered as it was.
    Behind,
}

impl CheckpointStore {
    /// The store of the identity directory `identity_dir`
    /// (`identity_dir/checkpoints/`, created when first written).
    pub fn in_identity(identity_dir: &Path) -> Self {
        Self::open(&identity_dir.join(CHECKPOINTS_DIR))
    }

    /// A store in `dir` (created when first written).
    pub fn open(dir: &Path) -> Self {
        CheckpointStore {
            dir: dir.to_path_buf(),
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The remembered checkpoint, if any.
    pub fn remembered(&self) -> Result<Option<TrustedCheckpoint>, ClientError> {
        let path = self.dir.join(TRUSTED_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ClientError::local(
                    ErrorCode::LocalIo,
                    format!("{}: {e} (move it away to start over)", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Checks a checkpoint whose signature was already verified (`note`
    /// its signed note) against the remembered one, asking `prove(from, to)`
    /// for a consistency proof when the sizes differ (the node's
    /// `consistency_proof` answer, unverified: the store checks it against
    /// the two *signed* roots). Remembers the new checkpoint when it is
    /// larger and consistent; answers `log.fork`, with both signed
    /// checkpoints saved as evidence, when it is not. A node that refuses
    /// the proof (other than for lagging behind) fails the call with its
    /// own error and nothing is remembered.
    pub async fn check<F, Fut>(
        &self,
        checkpoint: &pki::Checkpoint,
        note: &str,
        mut prove: F,
    ) -> Result<Outcome, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<Response, ClientError>>,
    {
        let Some(old) = self.remembered()?.filter(|t| t.size > 0) else {
            self.remember(checkpoint, note)?;
            return Ok(Outcome::First);
        };
        let old_root = hex_hash(&old.root).ok_or_else(|| {
            ClientError::local(
                ErrorCode::LocalIo,
                format!(
                    "{}: the root is not 64 hex characters",
                    self.dir.join(TRUSTED_FILE).display()
                ),
            )
        })?;
        let new = (checkpoint.size, checkpoint.root);
        if new.0 == old.size {
            if new.1 == old_root {
                return Ok(Outcome::Same);
            }
            let why = format!(
                "two signed checkpoints of size {} with different roots",
                new.0
            );
            return Err(self.fork(&old, note, &why, None));
        }
        if new.0 == 0 {
            // The empty tree is a prefix of every tree.
            return Ok(Outcome::Behind);
        }
        let (from, to) = if new.0 < old.size {
            ((new.0, new.1), (old.size, old_root))
        } else {
            ((old.size, old_root), new)
        };
        let answer = ask_proof(&mut prove, from.0, to.0, new.0 < old.size).await?;
        if let Err(why) = proof_links(&answer, from, to) {
            let why = format!(
                "no consistency between the remembered checkpoint (size {}) and the new one (size {}): {why}",
                old.size, new.0
            );
            return Err(self.fork(&old, note, &why, Some(&answer)));
        }
        if new.0 < old.size {
            return Ok(Outcome::Behind);
        }
        self.remember(checkpoint, note)?;
        Ok(Outcome::Advanced)
    }

    /// Writes `checkpoint` as the remembered one, unless a larger one was
    /// remembered meanwhile (by another process with the same identity).
    fn remember(&self, checkpoint: &pki::Checkpoint, note: &str) -> Result<(), ClientError> {
        if let Some(current) = self.remembered()? {
            if current.size > checkpoint.size {
                return Ok(());
            }
        }
        let trusted = TrustedCheckpoint {
            size: checkpoint.size,
            root: hex::encode(checkpoint.root),
            note: note.to_string(),
        };
        let json = serde_json::to_vec_pretty(&trusted)
            .map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        write_atomic(&self.dir.join(TRUSTED_FILE), &json)
    }

    /// Saves the evidence of a fork and returns the `log.fork` error naming
    /// where it is. The folder is named by both sizes and the new note's
    /// hash, so the same fork seen twice is saved once.
    fn fork(
        &self,
        old: &TrustedCheckpoint,
        note: &str,
        why: &str,
        proof: Option<&Response>,
    ) -> ClientError {
        let new_size = note.lines().nth(1).unwrap_or("?");
        let tag = hex::encode(&merkle::leaf_hash(note.as_bytes())[..4]);
        let dir = self
            .dir
            .join(format!("fork-{}-vs-{new_size}-{tag}", old.size));
        let saved = save_evidence(&dir, old, note, why, proof);
        let place = match saved {
            Ok(()) => format!("both signed checkpoints are saved in {}", dir.display()),
            Err(e) => format!("the evidence could not be saved in {}: {e}", dir.display()),
        };
        ClientError::local(
            ErrorCode::LogFork,
            format!(
                "the log forked: {why}; this identity remembers the one in {}, and {place}. \
                 Keep them and tell the district's auditors",
                self.dir.join(TRUSTED_FILE).display()
            ),
        )
    }
}

/// Asks for a consistency proof; when the node is behind the remembered
/// size (`behind`), a `log.range` refusal is asked again a few times.
async fn ask_proof<F, Fut>(
    prove: &mut F,
    from: u64,
    to: u64,
    behind: bool,
) -> Result<Response, ClientError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Response, ClientError>>,
{
    let mut tries = 0;
    loop {
        match prove(from, to).await {
            Err(e)
                if behind && e.code() == ErrorCode::LogRange.as_str() && tries < BEHIND_RETRIES =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(BEHIND_RETRY_MS)).await;
            }
            other => return other,
        }
    }
}

/// Whether `answer` proves that the tree `from` (size, signed root) is a
/// prefix of the tree `to`: the answer must be for those sizes and the
/// proof must verify between the two signed roots.
fn proof_links(answer: &Response, from: (u64, Hash), to: (u64, Hash)) -> Result<(), String> {
    let Response::ConsistencyProof {
        old_size,
        new_size,
        consistency_proof,
        ..
    } = answer
    else {
        return Err("the node answered no consistency proof".into());
    };
    if (*old_size, *new_size) != (from.0, to.0) {
        return Err(format!(
            "the proof is for sizes {old_size} to {new_size}, not {} to {}",
            from.0, to.0
        ));
    }
    if consistency_proof.len() > PROOF_HASHES_MAX {
        return Err("the proof is too long".into());
    }
    let proof: Vec<Hash> = consistency_proof
        .iter()
        .map(|h| hex_hash(h).ok_or_else(|| "the proof is not hex".to_string()))
        .collect::<Result<_, _>>()?;
    merkle::verify_consistency(from.0, to.0, &from.1, &to.1, &proof).map_err(|e| e.to_string())
}

fn save_evidence(
    dir: &Path,
    old: &TrustedCheckpoint,
    note: &str,
    why: &str,
    proof: Option<&Response>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("remembered-checkpoint.note"), &old.note)?;
    std::fs::write(dir.join("new-checkpoint.note"), note)?;
    if let Some(proof) = proof {
        let json = serde_json::to_vec_pretty(proof).unwrap_or_default();
        std::fs::write(dir.join("consistency-proof.json"), json)?;
    }
    let readme = format!(
        "The vault's log forked, as seen by this client at unix time {}.\n\
         {why}.\n\n\
         remembered-checkpoint.note  the checkpoint this client had trusted (size {})\n\
         new-checkpoint.note         the checkpoint a node signed and served now\n\
         consistency-proof.json      the node's proof between them, if it gave one\n\n\
         Both notes are signed by the district's log key: check them with its verifier key\n\
         (log.pub in the identity directory). Give this folder to the district's auditors.\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        old.size
    );
    std::fs::write(dir.join("README.txt"), readme)
}

fn hex_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Writes through a temporary file of this process and a rename, so two
/// processes sharing an identity never interleave their bytes.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
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

    /// A log of `n` leaves `leaf-0`, `leaf-1`, … (or `fork-…` from `split`).
    fn leaves(n: u64, split: Option<u64>) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let prefix = if split.is_some_and(|s| i >= s) {
                    "fork"
                } else {
                    "leaf"
                };
                merkle::leaf_hash(format!("{prefix}-{i}").as_bytes())
            })
            .collect()
    }

    fn root(leaves: &[Hash]) -> Hash {
        let mut builder = merkle::RootBuilder::new();
        leaves.iter().for_each(|l| builder.push(*l));
        builder.root()
    }

    fn signed(key: &pki::LogSigner, leaves: &[Hash]) -> (pki::Checkpoint, String) {
        let checkpoint = pki::Checkpoint {
            origin: key.origin().into(),
            size: leaves.len() as u64,
            root: root(leaves),
            resident_index: None,
        };
        let note = checkpoint.sign(key);
        (checkpoint, note)
    }

    /// The honest node's answer over `log`.
    fn proof_over(log: &[Hash], from: u64, to: u64) -> Response {
        let proof = merkle::consistency_proof(from, to, &mut |start, len| {
            Ok::<_, merkle::ProofError>(root(&log[start as usize..(start + len) as usize]))
        })
        .unwrap();
        Response::ConsistencyProof {
            old_size: from,
            new_size: to,
            old_root: hex::encode(root(&log[..from as usize])),
            new_root: hex::encode(root(&log[..to as usize])),
            consistency_proof: proof.iter().map(hex::encode).collect(),
        }
    }

    fn fork_dirs(store: &CheckpointStore) -> Vec<PathBuf> {
        std::fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("fork-")
            })
            .collect()
    }

    #[tokio::test]
    async fn a_consistent_log_moves_the_remembered_checkpoint_forward() {
        let (key, _) = pki::generate_log_key("test.district.example/vault").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_identity(dir.path());
        let log = leaves(9, None);
        let (small, small_note) = signed(&key, &log[..5]);
        let no_proof = |_, _| async { panic!("no proof is needed") };
        assert_eq!(
            store.check(&small, &small_note, no_proof).await.unwrap(),
            Outcome::First
        );
        assert_eq!(
            store.check(&small, &small_note, no_proof).await.unwrap(),
            Outcome::Same
        );
        let (large, large_note) = signed(&key, &log);
        let honest = |from, to| {
            let answer = proof_over(&log, from, to);
            async move { Ok(answer) }
        };
        assert_eq!(
            store.check(&large, &large_note, honest).await.unwrap(),
            Outcome::Advanced
        );
        assert_eq!(store.remembered().unwrap().unwrap().size, 9);
        // A lagging node's smaller checkpoint is proven a prefix and does
        // not move it back.
        assert_eq!(
            store.check(&small, &small_note, honest).await.unwrap(),
            Outcome::Behind
        );
        assert_eq!(store.remembered().unwrap().unwrap().note, large_note);
        assert!(fork_dirs(&store).is_empty());
    }

    #[tokio::test]
    async fn the_same_size_with_another_root_is_a_fork_with_evidence() {
        let (key, _) = pki::generate_log_key("test.district.example/vault").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_identity(dir.path());
        let (honest, honest_note) = signed(&key, &leaves(6, None));
        let (forked, forked_note) = signed(&key, &leaves(6, Some(4)));
        let no_proof = |_, _| async { panic!("no proof is needed") };
        store.check(&honest, &honest_note, no_proof).await.unwrap();
        let err = store
            .check(&forked, &forked_note, no_proof)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "log.fork");
        let forks = fork_dirs(&store);
        assert_eq!(forks.len(), 1);
        assert!(
            err.to_string().contains(&forks[0].display().to_string()),
            "{err}"
        );
        let saved = |name: &str| std::fs::read_to_string(forks[0].join(name)).unwrap();
        assert_eq!(saved("remembered-checkpoint.note"), honest_note);
        assert_eq!(saved("new-checkpoint.note"), forked_note);
        assert!(saved("README.txt").contains("forked"));
        // Nothing forgotten, and the same fork again is saved once.
        assert_eq!(store.remembered().unwrap().unwrap().note, honest_note);
        let again = store
            .check(&forked, &forked_note, no_proof)
            .await
            .unwrap_err();
        assert_eq!(again.code(), "log.fork");
        assert_eq!(fork_dirs(&store).len(), 1);
    }

    #[tokio::test]
    async fn a_larger_checkpoint_without_a_good_consistency_proof_is_a_fork() {
        let (key, _) = pki::generate_log_key("test.district.example/vault").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_identity(dir.path());
        let (small, small_note) = signed(&key, &leaves(5, None));
        store
            .check(&small, &small_note, |_, _| async { panic!("first") })
            .await
            .unwrap();
        // A larger log that rewrote entry 3: its honest proof cannot link
        // the remembered root.
        let rewritten = leaves(12, Some(3));
        let (large, large_note) = signed(&key, &rewritten);
        let over_rewritten = |from, to| {
            let answer = proof_over(&rewritten, from, to);
            async move { Ok(answer) }
        };
        let err = store
            .check(&large, &large_note, over_rewritten)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "log.fork", "{err}");
        // Garbage hashes, and an answer for other sizes, are forks too.
        let garbage = |from, to| async move {
            Ok(Response::ConsistencyProof {
                old_size: from,
                new_size: to,
                old_root: hex::encode([1; 32]),
                new_root: hex::encode([2; 32]),
                consistency_proof: vec![hex::encode([3; 32]); 4],
            })
        };
        assert_eq!(
            store
                .check(&large, &large_note, garbage)
                .await
                .unwrap_err()
                .code(),
            "log.fork"
        );
        let honest = leaves(12, None);
        let other_sizes = |_, _| {
            let answer = proof_over(&honest, 4, 12);
            async move { Ok(answer) }
        };
        let err = store
            .check(&large, &large_note, other_sizes)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "log.fork");
        assert_eq!(
            store.remembered().unwrap().unwrap().size,
            5,
            "not remembered"
        );
        let saved = std::fs::read_to_string(fork_dirs(&store)[0].join("new-checkpoint.note"));
        assert_eq!(saved.unwrap(), large_note);
        // A node that refuses is not a fork: its error, nothing remembered.
        let refusing =
            |_, _| async { Err(ClientError::local(ErrorCode::Storage, "the disk is gone")) };
        let err = store
            .check(&large, &large_note, refusing)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "storage.failed");
        assert_eq!(store.remembered().unwrap().unwrap().size, 5);
    }
}
