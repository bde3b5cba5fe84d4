//! The growth suite: the fetch latency of one 4 KiB document as the store
//! grows to each of `--growth` documents, the ballast registered through
//! the state machine (no bytes uploaded).

use std::sync::Arc;

use pki::{DocumentKind, ResidentId};
use tests::{connect, pseudo_random_bytes, TestPki};
use vault_node::node::RunningNode;

use crate::local::LocalNode;
use crate::report::{measure_concurrent, Row};
use crate::Args;

/// Fetch latency of one 4 KiB document as the store grows to each of
/// `args.growth` documents (ballast registered through the state machine).
pub(crate) async fn suite(
    pki: &TestPki,
    node: &RunningNode,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = args.min();
    let civil = connect(pki, "civil-affairs", node.addr).await?;
    let resident = ResidentId::parse("resident-1")?;
    let put = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(4096, 77)),
            &resident,
            &DocumentKind::parse("form")?,
        )
        .await?;
    let model = node
        .vault()
        .document(put.document_id)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rows = Vec::new();
    let mut stored = 1u64;
    for &target in &args.growth {
        stored = fill_documents(&LocalNode::of(node)?, &model, stored, target).await?;
        let client = Arc::new(connect(pki, "civil-affairs", node.addr).await?);
        let id = put.document_id;
        let mut row = measure_concurrent(
            &format!("fetch latency, {stored} documents"),
            4096,
            min,
            vec![(client, ())],
            move |c, ()| async move {
                c.get_bytes(id, None, None).await?;
                Ok(())
            },
        )
        .await?;
        if rows.is_empty() {
            row.ceiling = None;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Registers copies of `model` (distinct ids, residents and times) until
/// `target` documents are stored; returns the count.
async fn fill_documents(
    vault: &Arc<LocalNode>,
    model: &vault_node::engine::state::DocumentEntry,
    from: u64,
    target: u64,
) -> anyhow::Result<u64> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(from));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (vault, next, model) = (vault.clone(), next.clone(), model.clone());
        tasks.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<()> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= target {
                        return Ok(());
                    }
                    let mut entry = model.clone();
                    entry.record.resident = ResidentId::parse(&format!("resident-{}", i % 1000))?;
                    entry.record.issued_at = i as i64;
                    entry.registered_at = i as i64;
                    entry.document_id = entry.record.document_id(&entry.signature);
                    vault
                        .submit(&vault_node::engine::state::Command::RegisterDocument(entry))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            },
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(target.max(from))
}
