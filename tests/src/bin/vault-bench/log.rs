//! The log suite: durable log appends beside raw synced RocksDB batches,
//! inclusion proof generation, and `audit verify` throughput over the
//! whole log (filled to `--log-entries` first). The checkpoint suite:
//! the latency of a checkpoint that is not reused, on a fresh node whose
//! log is filled to each of `--checkpoint-entries`, beside the note's
//! signature alone (its floor) and the full check of every entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::{connect, start_node, TestPki};
use vault_node::engine::meta::{Cf, MetaStore, Write};
use vault_node::node::RunningNode;
use vault_node::storage::store::RocksStore;

use crate::local::LocalNode;
use crate::report::{measure_concurrent, measure_sync, Row};
use crate::Args;

/// The log suite's rows.
pub(crate) async fn suite(
    pki: &TestPki,
    node: &RunningNode,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = args.min();
    // The raw store stays open (and its directory) until the suite ends.
    let dir = tempfile::tempdir()?;
    let raw = RocksStore::open(dir.path())?;
    let mut rows = rocksdb_rows(&raw, min)?;
    let vault = LocalNode::of(node)?;
    rows.push(append_row(&vault, min).await?);
    // Fill the log, then proofs and a full audit.
    let size = fill_log(&vault, args.log_entries).await?;
    rows.push(proof_row(&vault, size, min)?);
    rows.push(audit_row(pki, node).await?);
    Ok(rows)
}

/// The ceilings: synced RocksDB write batches of 64 small puts, and
/// single synced puts, one writer.
fn rocksdb_rows(raw: &RocksStore, min: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut n = 0u64;
    let mut row = measure_sync("raw rocksdb synced batch (64 puts)", min, || {
        let writes: Vec<Write> = (0..64)
            .map(|i| {
                n += 1;
                Write::Put {
                    cf: Cf::LogEntries,
                    key: (n * 64 + i).to_be_bytes().to_vec(),
                    value: vec![7u8; 200],
                }
            })
            .collect();
        raw.write(&writes).map_err(anyhow::Error::from)
    })?;
    row.size = 64 * 200;
    rows.push(row);
    rows.push(measure_sync(
        "raw rocksdb synced write (1 put)",
        min,
        || {
            n += 1;
            raw.write(&[Write::Put {
                cf: Cf::LogEntries,
                key: n.to_be_bytes().to_vec(),
                value: vec![7u8; 200],
            }])
            .map_err(anyhow::Error::from)
        },
    )?);
    Ok(rows)
}

/// Durable appends: 64 concurrent submitters, one log entry per command.
async fn append_row(vault: &Arc<LocalNode>, min: Duration) -> anyhow::Result<Row> {
    let submitters: Vec<_> = (0..64).map(|_| (vault.clone(), ())).collect();
    let mut appends = measure_concurrent(
        "durable log appends (64 writers)",
        0,
        min,
        submitters,
        |vault, ()| async move {
            tokio::task::spawn_blocking(move || {
                vault.submit(&vault_node::engine::state::Command::RecordRefusal {
                    role: pki::Role::Department,
                    by: pki::Name::parse("bench")?,
                    code: "bench.append".into(),
                    document_id: None,
                    grant_id: None,
                    request_id: None,
                })?;
                anyhow::Ok(())
            })
            .await?
        },
    )
    .await?;
    appends.ceiling = Some(("raw rocksdb synced batch (64 puts)", 1.0 / 64.0));
    Ok(appends)
}

/// Inclusion proofs of scattered entries of a log of `size` entries.
fn proof_row(vault: &LocalNode, size: u64, min: Duration) -> anyhow::Result<Row> {
    let store = vault.store();
    let mut i = 0u64;
    measure_sync("inclusion proof generation", min, || {
        i = (i * 7919 + 13) % size;
        vault_client::merkle::inclusion_proof(i, size, &mut |s, l| {
            vault_node::engine::log::subtree(store, s, l)
        })
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
    })
}

/// One `audit verify` of the whole log by the auditor, from a fresh state.
async fn audit_row(pki: &TestPki, node: &RunningNode) -> anyhow::Result<Row> {
    let auditor = connect(pki, "auditor", node.addr).await?;
    let state_dir = tempfile::tempdir()?;
    let state = vault_client::audit::AuditState::open(state_dir.path())?;
    let start = Instant::now();
    let report = vault_client::audit::verify(&auditor, &state).await?;
    anyhow::ensure!(
        report.consistent,
        "audit failed: {:?}",
        report.violations.first()
    );
    let entries = report.entries_checked;
    Ok(Row::new(
        "audit verify (entries)",
        0,
        entries,
        start.elapsed(),
    ))
}

/// Appends refusals until the log holds at least `target` entries.
async fn fill_log(vault: &Arc<LocalNode>, target: u64) -> anyhow::Result<u64> {
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let vault = vault.clone();
        tasks.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<()> {
                while vault_node::engine::log::size(vault.store())? < target {
                    vault.submit(&vault_node::engine::state::Command::RecordRefusal {
                        role: pki::Role::Auditor,
                        by: pki::Name::parse("bench")?,
                        code: "bench.fill".into(),
                        document_id: None,
                        grant_id: None,
                        request_id: None,
                    })?;
                }
                Ok(())
            },
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(vault_node::engine::log::size(vault.store())?)
}

/// Checkpoint latency at each of `args.checkpoint_entries` entries, on a
/// node (and PKI) of its own: the log filled, one checkpoint to verify it whole (the
/// first after start; its time is the full-check row), then checkpoints
/// each after 64 new entries, every one verified and signed afresh
/// (`transparency::fresh_checkpoint`, never a reused note).
pub(crate) async fn checkpoint_suite(args: &Args) -> anyhow::Result<Vec<Row>> {
    // A PKI and data directory of its own: the bench's main node keeps its log.
    let pki = TestPki::new()?;
    let node = start_node(&pki).await?;
    let vault = LocalNode::of(&node)?;
    let mut rows = vec![sign_row(&pki, args.min())?];
    let mut first: Option<&'static str> = None;
    for &target in &args.checkpoint_entries {
        let size = fill_log(&vault, target).await?;
        let full = Instant::now();
        vault_node::service::transparency::fresh_checkpoint(node.transparency())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut full_row = Row::new(
            format!("full log check (first checkpoint), {size} entries"),
            0,
            size,
            full.elapsed(),
        );
        full_row.latency = Some((full.elapsed(), full.elapsed()));
        rows.push(full_row);
        let name: &'static str =
            Box::leak(format!("checkpoint latency, {size} entries").into_boxed_str());
        let mut row = checkpoint_row(&node, &vault, name, args.min()).await?;
        row.ceiling = Some(match first {
            None => ("raw checkpoint note signature", 1.0),
            Some(smallest) => (smallest, 1.0),
        });
        first.get_or_insert(name);
        rows.push(row);
    }
    node.close();
    Ok(rows)
}

/// The floor of any checkpoint: signing its note (Ed25519), nothing read.
fn sign_row(pki: &TestPki, min: Duration) -> anyhow::Result<Row> {
    let dir = pki.identity_dir("node-1");
    let verifiers = pki::load_verifiers(&dir.join(pki::LOG_PUB_FILE))?;
    let log_key = pki::LogSigner::load(&dir.join(pki::LOG_KEY_FILE), &verifiers)?;
    let mut size = 0u64;
    measure_sync("raw checkpoint note signature", min, || {
        size += 1;
        let note = pki::Checkpoint {
            origin: log_key.origin().to_string(),
            size,
            root: [7; 32],
            resident_index: None,
        }
        .sign(&log_key);
        anyhow::ensure!(!note.is_empty());
        Ok(())
    })
}

/// Most checkpoints measured at one log size.
const CHECKPOINT_SAMPLES_MAX: usize = 50;

/// Fresh checkpoints, each after 64 appended entries (not timed), for at
/// least `min` of checkpoint time or [`CHECKPOINT_SAMPLES_MAX`] of them.
async fn checkpoint_row(
    node: &RunningNode,
    vault: &Arc<LocalNode>,
    name: &str,
    min: Duration,
) -> anyhow::Result<Row> {
    let mut latencies = Vec::new();
    let mut total = Duration::ZERO;
    // Bounded in samples too, so the log stays near its size (at most
    // CHECKPOINT_SAMPLES_MAX × 64 entries are added while measuring).
    while (total < min || latencies.len() < 10) && latencies.len() < CHECKPOINT_SAMPLES_MAX {
        let size = vault_node::engine::log::size(vault.store())?;
        fill_log(vault, size + 64).await?;
        let t = Instant::now();
        vault_node::service::transparency::fresh_checkpoint(node.transparency())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let elapsed = t.elapsed();
        total += elapsed;
        latencies.push(elapsed);
    }
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let mut row = Row::new(name, 0, latencies.len() as u64, total);
    row.latency = Some((pick(0.5), pick(0.99)));
    Ok(row)
}
