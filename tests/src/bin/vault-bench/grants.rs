//! The grant suite: grant verification beside raw Ed25519 verification,
//! cached checks, and grant-checked fetches by many concurrent clients
//! beside raw quinn downloads by as many connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pki::DocumentId;
use tests::{connect, pseudo_random_bytes, resident, GrantStory, TestPki};
use vault_client::VaultClient;
use vault_node::node::RunningNode;

use crate::report::{measure_concurrent, measure_sync, Row};
use crate::{parse_size, raw, Args};

/// One document of the suite: its kind, size and id.
type Seeded = (&'static str, u64, DocumentId);

/// The grant suite's rows.
pub(crate) async fn suite(
    pki: &TestPki,
    node: &RunningNode,
    raw: SocketAddr,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = args.min();
    let civil = connect(pki, "civil-affairs", node.addr).await?;
    let resident_client = connect(pki, "resident-1", node.addr).await?;
    let docs = seed(&civil, args).await?;
    let clients = holders(pki, node, &resident_client, &docs, args.clients).await?;
    let mut rows = Vec::new();
    if !args.no_signatures {
        rows.extend(signature_rows(pki, &clients[0].1, min)?);
    }
    for (_, size, doc) in &docs {
        rows.extend(fetch_rows(pki, raw, &clients, *size, *doc, args).await?);
    }
    Ok(rows)
}

/// civil-affairs puts one document of each of `--grant-sizes` for
/// resident-1, each of its own kind.
async fn seed(civil: &VaultClient, args: &Args) -> anyhow::Result<Vec<Seeded>> {
    let resident = resident("resident-1");
    let mut docs = Vec::new();
    for (i, size_text) in args.grant_sizes.iter().enumerate() {
        let size = parse_size(size_text)? as usize;
        let kind = ["form", "scan", "archive", "other"][i.min(3)];
        let put = civil
            .put_bytes(
                Arc::new(pseudo_random_bytes(size, size as u64)),
                &resident,
                &pki::DocumentKind::parse(kind)?,
            )
            .await?;
        docs.push((kind, size as u64, put.document_id));
    }
    Ok(docs)
}

/// `count` housing-bureau clients, each holding its own grant of all
/// `docs` with the most uses a grant allows.
async fn holders(
    pki: &TestPki,
    node: &RunningNode,
    resident_client: &VaultClient,
    docs: &[Seeded],
    count: usize,
) -> anyhow::Result<Vec<(Arc<VaultClient>, pki::Grant)>> {
    let kinds: Vec<&str> = docs.iter().map(|(k, _, _)| *k).collect();
    let story = GrantStory::new()
        .kinds(&kinds)
        .max_uses(pki::GRANT_USES_MAX);
    let mut clients = Vec::new();
    for _ in 0..count {
        let client = connect(pki, "housing-bureau", node.addr).await?;
        let grant = story.grant(&client, resident_client).await?;
        clients.push((Arc::new(client), grant));
    }
    Ok(clients)
}

/// Grant-checked fetches of `doc` by every holder at once, beside raw
/// quinn downloads of `size` bytes by as many connections.
async fn fetch_rows(
    pki: &TestPki,
    raw: SocketAddr,
    holders: &[(Arc<VaultClient>, pki::Grant)],
    size: u64,
    doc: DocumentId,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let min = args.min();
    let fetch_clients: Vec<_> = holders.iter().map(|(c, g)| (c.clone(), g.id())).collect();
    let mut fetch = measure_concurrent(
        "grant-checked fetch",
        size,
        min,
        fetch_clients,
        move |client, grant| async move {
            let (_, bytes) = client.get_bytes(doc, None, Some(grant)).await?;
            anyhow::ensure!(!bytes.is_empty());
            Ok(())
        },
    )
    .await?;
    let mut raw_clients = Vec::new();
    for _ in 0..args.clients {
        raw_clients.push((Arc::new(raw::connection(pki, raw).await?), ()));
    }
    let mut ceiling = measure_concurrent(
        "raw quinn download (concurrent)",
        size,
        min,
        raw_clients,
        move |c, ()| async move { raw::download(&c, size).await },
    )
    .await?;
    ceiling.latency = None;
    fetch.ceiling = Some(("raw quinn download (concurrent)", 0.0));
    Ok(vec![fetch, ceiling])
}

/// Raw Ed25519 verification, uncached and cached grant verification.
fn signature_rows(pki: &TestPki, grant: &pki::Grant, min: Duration) -> anyhow::Result<Vec<Row>> {
    let ca = pki.ca.ca_der();
    let node_cert = pki::verify_certificate(&grant.node_cert, &ca, &[], grant.body.not_before)?;
    let message = grant.body.canonical_bytes();
    let resident = pki.identity("resident-1")?;
    let signature = resident.sign(&message);
    let public_key = resident.cert.public_key.clone();
    let mut rows = vec![
        measure_sync("raw ring ed25519 verify", min, || {
            pki::verify_signature(&public_key, &message, &signature).map_err(anyhow::Error::from)
        })?,
        measure_sync("grant verify (chains + signatures)", min, || {
            grant
                .verify(&ca, &[])
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })?,
    ];
    // Full verification is 4 signature checks: 2 certificate chains, consent, seal.
    rows[1].ceiling = Some(("raw ring ed25519 verify", 4.0));
    let resident_cert = pki::parse_certificate(&grant.resident_cert)?;
    let mut sigs = measure_sync("grant signatures (certs known)", min, || {
        grant.body.verify_consent(&grant.consent, &resident_cert)?;
        grant.verify_seal(&node_cert).map_err(anyhow::Error::from)
    })?;
    sigs.ceiling = Some(("raw ring ed25519 verify", 2.0));
    rows.push(sigs);
    let cache = vault_node::rules::grants::GrantCache::default();
    cache
        .verify(grant, &ca, Vec::new)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    rows.push(measure_sync("grant check (cached)", min, || {
        cache
            .verify(grant, &ca, Vec::new)
            .map_err(|e| anyhow::anyhow!("{e}"))
    })?);
    Ok(rows)
}
