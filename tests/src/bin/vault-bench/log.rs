//! The log suite: durable log appends beside raw synced RocksDB batches,
//! inclusion proof generation, and `audit verify` throughput over the
//! whole log (filled to `--log-entries` first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::{connect, TestPki};
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
