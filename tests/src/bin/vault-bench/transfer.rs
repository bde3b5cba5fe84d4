//! The transfer suite: for each of `--sizes`, raw BLAKE3 hashing, raw
//! quinn uploads and downloads, and the vault's puts and verified gets of
//! documents of that size through one department's connection.

use std::sync::Arc;

use anyhow::Context;
use pki::{DocumentKind, ResidentId};
use tests::pseudo_random_bytes;
use vault_client::VaultClient;

use crate::report::{measure, Row};
use crate::{parse_size, raw, Args};

/// The transfer rows, size by size; `dept` puts and gets.
pub(crate) async fn suite(
    dept: &VaultClient,
    raw_client: &quinn::Connection,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = args.min();
    let mut rows = Vec::new();
    for size_text in &args.sizes {
        let size = parse_size(size_text)?;
        let data = pseudo_random_bytes(size as usize, 1);
        rows.push(
            measure("raw blake3", size, min, || async {
                std::hint::black_box(blake3::hash(&data));
                Ok(())
            })
            .await?,
        );
        let payload = Arc::new(data.clone());
        rows.push(
            measure("raw quinn upload", size, min, || {
                raw::upload(raw_client, payload.clone())
            })
            .await?,
        );
        rows.push(
            measure("raw quinn download", size, min, || {
                raw::download(raw_client, size)
            })
            .await?,
        );
        let seed = std::cell::Cell::new(1000u64);
        let last = std::cell::Cell::new(None);
        let resident = ResidentId::parse("resident-1")?;
        let kind = DocumentKind::parse("bench")?;
        rows.push(
            measure("vault put", size, min, || {
                seed.set(seed.get() + 1);
                // Distinct bytes each time so nothing deduplicates.
                let mut bytes = (*payload).clone();
                let n = bytes.len().min(8);
                bytes[..n].copy_from_slice(&seed.get().to_le_bytes()[..n]);
                let (dept, resident, kind, last) = (&dept, &resident, &kind, &last);
                async move {
                    let out = dept.put_bytes(Arc::new(bytes), resident, kind).await?;
                    last.set(Some(out.document_id));
                    Ok(())
                }
            })
            .await?,
        );
        let id = last.get().context("no document")?;
        rows.push(
            measure("vault verified get", size, min, || async {
                let (_, bytes) = dept.get_bytes(id, None, None).await?;
                anyhow::ensure!(bytes.len() as u64 == size);
                Ok(())
            })
            .await?,
        );
    }
    Ok(rows)
}
