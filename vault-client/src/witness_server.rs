//! The witness (`vault witness serve`; the development node runs one in-process): C2SP
//! tlog-witness `POST /add-checkpoint` over HTTP/1.1, state in a directory.
//!
//! This module **is**: [`Witness`] (its key, the logs it accepts, the latest cosigned tree per
//! origin in `DIR/state.json`), [`Witness::add_checkpoint`] (decide, persist, cosign: one at a
//! time, the state on disk before the answer) and [`router`]/[`serve`] (axum, the body bounded
//! to `witness::ADD_CHECKPOINT_LEN_MAX`). It is **not**: the decision itself (that is the pure
//! `witness::decide`).
//!
//! **Invariant:** the check against the latest cosigned tree and the write of the new one are
//! one step under one lock, and the state is fsynced and renamed into place before any
//! cosignature leaves: after a crash the witness remembers at least every tree it cosigned.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::witness::{self, AddCheckpoint, Latest, Refusal};

/// The witness's state file in its directory.
pub const STATE_FILE: &str = "state.json";
/// The state file's format version.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// Latest cosigned tree per origin.
    logs: BTreeMap<String, Latest>,
}

/// Why an `add-checkpoint` got no cosignature.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The protocol's refusal (its status: 400, 403, 404, 409, 422).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state could not be written: nothing was cosigned (500).
    #[error("the witness's state could not be saved: {0}")]
    Storage(String),
}

/// A witness: its key, the logs it accepts and what it cosigned.
pub struct Witness {
    dir: PathBuf,
    signer: pki::WitnessSigner,
    log_keys: Vec<pki::LogVerifier>,
    state: tokio::sync::Mutex<BTreeMap<String, Latest>>,
}

impl Witness {
    /// Opens the witness of `dir` (made by `vault witness init`: `witness.key.pem`,
    /// `witness.pub`; `state.json` when it has cosigned), accepting the logs of `log_keys`.
    pub fn open(dir: &Path, log_keys: Vec<pki::LogVerifier>) -> Result<Self, String> {
        let signer = pki::WitnessSigner::load(dir).map_err(|e| e.to_string())?;
        if log_keys.is_empty() {
            return Err("the witness accepts no log: the log.pub given lists no key".into());
        }
        let path = dir.join(STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: StateFile = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if file.version != STATE_VERSION {
                    return Err(format!(
                        "{}: version {} is not {STATE_VERSION}",
                        path.display(),
                        file.version
                    ));
                }
                file.logs
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Witness {
            dir: dir.to_path_buf(),
            signer,
            log_keys,
            state: tokio::sync::Mutex::new(state),
        })
    }

    /// The witness's verifier key.
    pub fn verifier(&self) -> &pki::WitnessVerifier {
        self.signer.verifier()
    }

    /// The latest cosigned tree of `origin`.
    pub async fn latest(&self, origin: &str) -> Option<Latest> {
        self.state.lock().await.get(origin).copied()
    }

    /// Handles one `add-checkpoint` body at time `now` (unix seconds): decides, writes the
    /// new state to disk, and answers the cosignature line (with its newline).
    pub async fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, AddError> {
        let request = AddCheckpoint::parse(body)?;
        let mut state = self.state.lock().await;
        let checkpoint = witness::decide(&request, &self.log_keys, |o| state.get(o).copied())?;
        let latest = Latest {
            size: checkpoint.size,
            root: checkpoint.root,
        };
        if state.get(&checkpoint.origin) != Some(&latest) {
            let mut next = state.clone();
            next.insert(checkpoint.origin.clone(), latest);
            let dir = self.dir.clone();
            let file = StateFile {
                version: STATE_VERSION,
                logs: next.clone(),
            };
            tokio::task::spawn_blocking(move || write_state(&dir, &file))
                .await
                .map_err(|e| AddError::Storage(e.to_string()))?
                .map_err(AddError::Storage)?;
            *state = next;
        }
        Ok(self.signer.cosign(&checkpoint.body(), now))
    }
}

/// Writes the state through `state.json.tmp`, fsynced, renamed, and the directory fsynced.
fn write_state(dir: &Path, file: &StateFile) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(file).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let path = dir.join(STATE_FILE);
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, e))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    match witness.add_checkpoint(&body, now_unix()).await {
        Ok(line) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line,
        )
            .into_response(),
        Err(AddError::Refused(Refusal::Conflict { latest, why })) => {
            tracing::info!(latest, %why, "add-checkpoint: conflict");
            (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, witness::SIZE_CONTENT_TYPE)],
                format!("{latest}\n"),
            )
                .into_response()
        }
        Err(AddError::Refused(refusal)) => {
            tracing::warn!(status = refusal.status(), %refusal, "add-checkpoint refused");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{refusal}\n"),
            )
                .into_response()
        }
        Err(e @ AddError::Storage(_)) => {
            tracing::error!(%e, "add-checkpoint: not cosigned");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

/// The witness's routes: `POST /add-checkpoint`, bodies bounded to
/// `witness::ADD_CHECKPOINT_LEN_MAX` (413 above).
pub fn router(witness: Arc<Witness>) -> axum::Router {
    axum::Router::new()
        .route(
            witness::ADD_CHECKPOINT_PATH,
            axum::routing::post(add_checkpoint),
        )
        .layer(DefaultBodyLimit::max(witness::ADD_CHECKPOINT_LEN_MAX))
        .with_state(witness)
}

/// Serves `witness` on `listener` until `shutdown` completes.
pub async fn serve(
    witness: Arc<Witness>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merkle;
    use crate::witness_client::{self, Answer};

    fn note(key: &pki::LogSigner, size: u64, root: [u8; 32]) -> String {
        pki::Checkpoint {
            origin: key.origin().into(),
            size,
            root,
            resident_index: None,
        }
        .sign(key)
    }

    #[tokio::test]
    async fn the_witness_answers_over_http_and_remembers_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        pki::WitnessSigner::create(dir.path(), "w.example").unwrap();
        let (log, _) = pki::generate_log_key("district.example/vault").unwrap();
        let keys = vec![log.verifier().clone()];
        let witness = Arc::new(Witness::open(dir.path(), keys.clone()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(witness.clone(), listener, async {
            let _ = stopped.await;
        }));
        let timeout = std::time::Duration::from_secs(5);
        let leaf = |i: u8| merkle::leaf_hash(&[i]);
        let root1 = leaf(0);
        let request = AddCheckpoint {
            old: 0,
            proof: vec![],
            note: note(&log, 1, root1),
        };
        let Answer::Cosigned(lines) = witness_client::add_checkpoint(&url, &request, timeout)
            .await
            .unwrap()
        else {
            panic!("not cosigned");
        };
        let body = pki::Checkpoint {
            origin: log.origin().into(),
            size: 1,
            root: root1,
            resident_index: None,
        }
        .body();
        assert!(witness
            .verifier()
            .verify_line(&body, &lines[0])
            .unwrap()
            .is_some());
        // A fork of size 1: 409, size 1.
        let fork = AddCheckpoint {
            old: 1,
            proof: vec![],
            note: note(&log, 1, leaf(9)),
        };
        assert_eq!(
            witness_client::add_checkpoint(&url, &fork, timeout)
                .await
                .unwrap(),
            Answer::Conflict(1)
        );
        // Stale old: 409 with the size; an oversized body: 413.
        assert_eq!(
            witness_client::add_checkpoint(&url, &request, timeout)
                .await
                .unwrap(),
            Answer::Conflict(1)
        );
        let huge = AddCheckpoint {
            note: "x".repeat(witness::ADD_CHECKPOINT_LEN_MAX),
            ..request.clone()
        };
        assert!(matches!(
            witness_client::add_checkpoint(&url, &huge, timeout)
                .await
                .unwrap(),
            Answer::Refused { status: 413, .. }
        ));
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        // Reopened, it still refuses the fork.
        let again = Witness::open(dir.path(), keys).unwrap();
        assert_eq!(again.latest(log.origin()).await.unwrap().size, 1);
        assert!(matches!(
            again.add_checkpoint(fork.encode().as_bytes(), 1).await,
            Err(AddError::Refused(Refusal::Conflict { latest: 1, .. }))
        ));
    }
}
