//! The operator's HTTP listener (`--metrics ADDR`, config key `metrics`):
//! Prometheus text exposition at `/metrics`, liveness at `/healthz`,
//! readiness at `/readyz`. Plain HTTP without authentication: bind it to
//! loopback or the monitoring network. Nothing it serves names a resident,
//! a document, a grant or a caller.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use vault_client::ErrorCode;

use crate::metrics::{Gauge, METRICS};
use crate::net::server::Services;
use crate::Refusal;

/// How long a count of the blob store's files and bytes is reused, in
/// seconds (counting walks `blobs/`).
pub const BLOB_COUNT_REUSE_S: u64 = 15;
/// Longest a readiness check may take before the node counts as not
/// ready, in milliseconds.
pub const READY_CHECK_TIMEOUT_MS: u64 = 2_000;
/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers share.
#[derive(Clone)]
struct Observed {
    services: Arc<Services>,
    blobs: Arc<Mutex<Option<(Instant, BlobCount)>>>,
}

#[derive(Clone, Copy, Default)]
struct BlobCount {
    files: u64,
    bytes: u64,
}

/// Binds the listener (before the node reports it started).
pub fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Refusal> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| {
            Refusal::new(
                ErrorCode::Connection,
                format!("cannot listen for metrics on {addr}: {e}"),
            )
        })?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| {
        Refusal::new(
            ErrorCode::Connection,
            format!("cannot listen for metrics on {addr}: {e}"),
        )
    })
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, services: Arc<Services>) {
    let state = Observed {
        services,
        blobs: Arc::default(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

async fn metrics(State(state): State<Observed>) -> impl IntoResponse {
    let gauges = gauges(&state).await;
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        METRICS.render(&gauges),
    )
}

async fn readyz(State(state): State<Observed>) -> impl IntoResponse {
    let check = tokio::time::timeout(
        Duration::from_millis(READY_CHECK_TIMEOUT_MS),
        ready(&state.services),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "the readiness check took over {READY_CHECK_TIMEOUT_MS} ms"
        ))
    });
    match check {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Whether the node can serve: its store answers, and in a cluster it
/// knows a leader (it can order writes).
pub async fn ready(services: &Services) -> Result<(), String> {
    let vault = services.vault.clone();
    tokio::task::spawn_blocking(move || crate::engine::state::applied_index(vault.store()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the store does not answer: {e}"))?;
    if let Some(cluster) = services.consensus.cluster() {
        if cluster.raft().metrics().borrow().current_leader.is_none() {
            return Err("this cluster node knows no leader".into());
        }
    }
    Ok(())
}

/// Everything read from the node's state at scrape time.
async fn gauges(state: &Observed) -> Vec<Gauge> {
    let services = &state.services;
    let mut gauges = Vec::new();
    let vault = services.vault.clone();
    let cached = *state.blobs.lock().unwrap_or_else(|p| p.into_inner());
    let reuse = cached.filter(|(at, _)| at.elapsed() < Duration::from_secs(BLOB_COUNT_REUSE_S));
    let local = tokio::task::spawn_blocking(move || {
        let store = vault.store();
        let applied = crate::engine::state::applied_index(store).ok();
        let log = crate::engine::log::size(store).ok();
        let free = vault.blobs().free_bytes().ok();
        let blobs = match reuse {
            Some((_, count)) => (false, count),
            None => (true, count_blobs(&vault.data_dir().join("blobs"))),
        };
        (applied, log, free, blobs)
    })
    .await;
    if let Ok((applied, log, free, (fresh, blobs))) = local {
        if fresh {
            *state.blobs.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), blobs));
        }
        if let Some(applied) = applied {
            gauges.push(Gauge::level(
                "vault_applied_index",
                "Index of the last command applied to the state machine.",
                applied as f64,
            ));
        }
        if let Some(log) = log {
            gauges.push(Gauge::level(
                "vault_log_entries",
                "Entries in the access log (its tree size).",
                log as f64,
            ));
        }
        if let Some(free) = free {
            gauges.push(Gauge::level(
                "vault_disk_free_bytes",
                "Free bytes on the data directory's file system.",
                free as f64,
            ));
        }
        gauges.push(Gauge::level(
            "vault_disk_reserve_bytes",
            "Free bytes an upload must leave (limits.disk_reserve_bytes).",
            services.admission.limits().disk_reserve_bytes as f64,
        ));
        gauges.push(Gauge::level(
            "vault_blob_files",
            "Blob files stored on this node.",
            blobs.files as f64,
        ));
        gauges.push(Gauge::level(
            "vault_blob_bytes",
            "Bytes of the blob files stored on this node.",
            blobs.bytes as f64,
        ));
    }
    let signed_at = METRICS
        .checkpoint_signed_at
        .load(std::sync::atomic::Ordering::Relaxed);
    if signed_at > 0 {
        let now = services.clock.now_unix();
        let age = (now - signed_at as i64).max(0);
        gauges.push(Gauge::level(
            "vault_checkpoint_age_seconds",
            "Seconds since this node last signed a checkpoint.",
            age as f64,
        ));
    }
    gauges.push(Gauge::level(
        "vault_ready",
        "1 when the node is ready (see /readyz).",
        f64::from(u8::from(ready(services).await.is_ok())),
    ));
    if let Some(cluster) = services.consensus.cluster() {
        raft_gauges(cluster, &mut gauges);
    }
    if let Some(replication) = &services.replication {
        let t = replication.totals();
        gauges.push(Gauge::counter(
            "vault_scrubs_total",
            "Scrubs completed since start.",
            t.scrubs as f64,
        ));
        gauges.push(Gauge::counter(
            "vault_scrub_checked_total",
            "Copies the scrubs read back in full.",
            t.checked as f64,
        ));
        gauges.push(Gauge::counter(
            "vault_repaired_total",
            "Missing or corrupt copies replaced by a verified one.",
            t.repaired as f64,
        ));
        gauges.push(Gauge::counter(
            "vault_repair_failed_total",
            "Missing or corrupt copies no member could supply.",
            t.failed as f64,
        ));
        gauges.push(Gauge::counter(
            "vault_orphans_collected_total",
            "Unreferenced blobs collected.",
            t.orphans_collected as f64,
        ));
        gauges.push(Gauge::counter(
            "vault_read_repaired_total",
            "Reads served from a copy fetched from a member.",
            t.read_repaired as f64,
        ));
    }
    gauges
}

/// Raft's view: term, leader, indexes, membership.
fn raft_gauges(cluster: &crate::consensus::Cluster, gauges: &mut Vec<Gauge>) {
    let m = cluster.raft().metrics().borrow().clone();
    let index = |id: Option<openraft::LogId<u64>>| id.map_or(0.0, |id| id.index as f64);
    let membership = m.membership_config.membership();
    gauges.push(Gauge::level(
        "vault_raft_term",
        "The current Raft term.",
        m.current_term as f64,
    ));
    gauges.push(Gauge::level(
        "vault_raft_leader",
        "The leader's node id (0: none known).",
        m.current_leader.unwrap_or(0) as f64,
    ));
    gauges.push(Gauge::level(
        "vault_raft_is_leader",
        "1 when this node leads.",
        f64::from(u8::from(m.current_leader == Some(cluster.id()))),
    ));
    gauges.push(Gauge::level(
        "vault_raft_last_log_index",
        "Index of the last entry in this node's Raft log.",
        m.last_log_index.unwrap_or(0) as f64,
    ));
    gauges.push(Gauge::level(
        "vault_raft_applied_index",
        "Index of the last Raft entry applied (committed and applied).",
        index(m.last_applied),
    ));
    gauges.push(Gauge::level(
        "vault_raft_snapshot_index",
        "Index the last snapshot covers.",
        index(m.snapshot),
    ));
    gauges.push(Gauge::level(
        "vault_raft_purged_index",
        "Index up to which the log was purged.",
        index(m.purged),
    ));
    gauges.push(Gauge::level(
        "vault_raft_voters",
        "Voters in the membership.",
        membership.voter_ids().count() as f64,
    ));
    gauges.push(Gauge::level(
        "vault_raft_members",
        "Members (voters and learners).",
        membership.nodes().count() as f64,
    ));
}

/// The files under `blobs/` and their bytes.
fn count_blobs(dir: &std::path::Path) -> BlobCount {
    let mut count = BlobCount::default();
    let Ok(fans) = std::fs::read_dir(dir) else {
        return count;
    };
    for fan in fans.flatten() {
        let Ok(files) = std::fs::read_dir(fan.path()) else {
            continue;
        };
        for file in files.flatten() {
            if let Ok(meta) = file.metadata() {
                if meta.is_file() {
                    count.files += 1;
                    count.bytes += meta.len();
                }
            }
        }
    }
    count
}
