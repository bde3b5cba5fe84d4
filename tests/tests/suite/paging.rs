//! Paging (issue "Part 2 of 7", finding 2): no department can blind a
//! resident by making a listing outgrow the response frame. Against a
//! `vault-node` process, a resident with 5 000 fetch entries and 1 000
//! pending requests of 64 documents each reads all of them page by page
//! (the library and the `vault` command line), every page within
//! [`RESPONSE_FRAME_LEN_MAX`], and approves the first and the last request
//! created (one through the library, one through `vault approve`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::{RequestId, RequestScope};
use tests::{
    connect, kind, pseudo_random_bytes, purpose, resident, vault_cli, NodeProcess, TestPki,
};
use vault_client::wire::{encode_frame, Request, Response, PAGE_BYTES_MAX, RESPONSE_FRAME_LEN_MAX};
use vault_client::{ClientError, DocumentId, VaultClient};

/// Fetch entries the issuer makes about resident-1.
const FETCHES: usize = 5_000;
/// Pending requests housing-bureau makes to resident-1.
const REQUESTS: usize = 1_000;
/// Documents each request names (each resolves, so each request's view is
/// about 64 documents long).
const DOCUMENTS_PER_REQUEST: usize = 64;
/// Concurrent callers making the fixture.
const WORKERS: usize = 16;
/// How long a refused-as-busy call waits before it is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resident_with_5000_fetches_and_1000_requests_lists_them_all_and_approves_any() {
    let started = Instant::now();
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let civil = Arc::new(connect(&pki, "civil-affairs", node.addr).await.unwrap());
    let housing = Arc::new(connect(&pki, "housing-bureau", node.addr).await.unwrap());
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();

    let documents = put_documents(&civil).await;
    fetch_many(&civil, documents[0]).await;
    let made = Instant::now();
    let first = request(&housing, &documents).await.unwrap();
    let middle = request_many(&pki, node.addr, &documents).await;
    let last = request(&housing, &documents).await.unwrap();
    println!(
        "fixture: {FETCHES} fetches and {REQUESTS} requests in {:?} (requests {:?})",
        started.elapsed(),
        made.elapsed()
    );

    // The library walks every page; each entry's proof is checked.
    let listed = Instant::now();
    let (checkpoint, accesses, truncated) = r1.accesses(false).await.unwrap();
    println!(
        "library: {} accesses listed and verified in {:?}",
        accesses.len(),
        listed.elapsed()
    );
    assert_eq!((accesses.len(), truncated), (FETCHES, false));
    assert!(accesses.windows(2).all(|w| w[0].index < w[1].index));
    assert!(accesses.iter().all(|a| a.index < checkpoint.size));
    let (_, all, _) = r1.accesses(true).await.unwrap();
    assert!(all.len() >= FETCHES + REQUESTS, "{} entries", all.len());
    let pending = r1.pending_requests().await.unwrap();
    let ids: HashSet<RequestId> = pending.iter().map(|r| r.request_id).collect();
    let mut want: HashSet<RequestId> = middle.into_iter().collect();
    want.extend([first, last]);
    assert_eq!(ids, want);
    assert!(pending
        .iter()
        .all(|r| r.documents.len() == DOCUMENTS_PER_REQUEST));

    // Every page, measured as the node sent it, fits the frame.
    let size = Some(checkpoint.size);
    let accesses = |cursor| Request::Accesses {
        all: false,
        cursor,
        limit: None,
        tree_size: size,
    };
    assert!(page_sizes(&r1, "accesses", &accesses).await > 1);
    let requests = |cursor| Request::PendingRequests {
        cursor,
        limit: None,
    };
    assert!(page_sizes(&r1, "requests", &requests).await > 1);

    cli_lists_everything(&pki, node.addr, REQUESTS);

    // An auditor's pages of log entries are bounded in bytes too, and
    // `vault audit verify` reads them all (short pages included).
    let auditor = connect(&pki, "auditor", node.addr).await.unwrap();
    let response = auditor
        .call(&Request::LogEntries {
            start: 0,
            count: 1_000,
        })
        .await
        .unwrap();
    let frame = encode_frame(&response).unwrap().len();
    let Response::LogEntries { entries, .. } = response else {
        panic!("{response:?}");
    };
    println!("log_entries: {} entries in {frame} bytes", entries.len());
    assert!(!entries.is_empty() && items_len(&entries).1 <= PAGE_BYTES_MAX);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let out = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "verify", "--state", state_dir],
    )
    .unwrap();
    assert!(out.success, "{:?}", out.json);
    assert!(out.json["entries_checked"].as_u64().unwrap() > (FETCHES + REQUESTS) as u64);

    // Documents page too: ten at a time, each once.
    let (mut cursor, mut listed) = (None, Vec::new());
    loop {
        let page = r1
            .list_page(&resident("resident-1"), cursor, Some(10))
            .await
            .unwrap();
        assert!(page.items.len() <= 10);
        listed.extend(page.items.into_iter().map(|d| d.document_id));
        match page.next_cursor {
            None => break,
            next => cursor = next,
        }
    }
    // Newest first by the node's clock (seconds), ties in id order: the
    // same documents, each once.
    let mut want = documents.clone();
    listed.sort();
    want.sort();
    assert_eq!(listed, want);

    // Approve the first request created through the library, the last
    // through `vault approve`: neither depends on a listing's first page.
    let view = r1.pending_request(first).await.unwrap();
    let body = r1.approval_body(&view, 1, None).unwrap();
    let grant = r1.approve(body).await.unwrap();
    assert_eq!(grant.body.documents.len(), DOCUMENTS_PER_REQUEST);
    let out = vault_cli(
        &pki.identity_dir("resident-1"),
        node.addr,
        &["approve", &last.to_string()],
    )
    .unwrap();
    assert!(out.success, "{:?}", out.json);
    assert_eq!(out.json["request_id"], last.to_string());
    let err = r1.pending_request(first).await.unwrap_err();
    assert_eq!(err.code(), "request.already_decided");
    assert_eq!(r1.pending_requests().await.unwrap().len(), REQUESTS - 2);
    assert_eq!(r1.grants().await.unwrap().len(), 2);
    println!("whole test: {:?}", started.elapsed());
}

/// `vault accesses`, `vault requests` and `vault list` read every page;
/// `--limit`/`--cursor` read one and say where the next starts.
fn cli_lists_everything(pki: &TestPki, node: std::net::SocketAddr, requests: usize) {
    let me = pki.identity_dir("resident-1");
    let timed = Instant::now();
    let out = vault_cli(&me, node, &["accesses"]).unwrap();
    println!(
        "cli: vault accesses listed {FETCHES} in {:?}",
        timed.elapsed()
    );
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.json["accesses"].as_array().unwrap().len(), FETCHES);
    assert_eq!(out.json["truncated"], false);
    assert!(out.json.get("next_cursor").is_none());
    let out = vault_cli(&me, node, &["requests"]).unwrap();
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.json["requests"].as_array().unwrap().len(), requests);
    let out = vault_cli(&me, node, &["list", "--resident", "resident-1"]).unwrap();
    assert_eq!(
        out.json["documents"].as_array().unwrap().len(),
        DOCUMENTS_PER_REQUEST
    );

    let out = vault_cli(
        &me,
        node,
        &["list", "--resident", "resident-1", "--limit", "10"],
    )
    .unwrap();
    assert_eq!(out.json["documents"].as_array().unwrap().len(), 10);
    assert!(out.json["next_cursor"].is_string());

    // A script walks `vault requests` five at a time.
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let mut args = vec!["requests", "--limit", "5"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let out = vault_cli(&me, node, &args).unwrap();
        assert!(out.success, "{:?}", out.json);
        let page = out.json["requests"].as_array().unwrap();
        assert_eq!(page.len(), 5);
        for r in page {
            assert!(seen.insert(r["request_id"].as_str().unwrap().to_string()));
        }
        cursor = Some(out.json["next_cursor"].as_str().unwrap().to_string());
    }
    let out = vault_cli(&me, node, &["accesses", "--limit", "7"]).unwrap();
    assert_eq!(out.json["accesses"].as_array().unwrap().len(), 7);
    assert!(out.json["next_cursor"].is_string());
    let out = vault_cli(&me, node, &["accesses", "--cursor", "zz"]).unwrap();
    assert!(!out.success);
    assert_eq!(out.json["error"]["code"], "request.invalid");
}

/// Walks a listing with raw requests, printing each page's frame size and
/// item count; asserts each fits. Answers how many pages it read.
async fn page_sizes(
    client: &VaultClient,
    what: &str,
    request: &dyn Fn(Option<String>) -> Request,
) -> usize {
    let (mut cursor, mut sizes) = (None, Vec::new());
    loop {
        let response = client.call(&request(cursor.take())).await.unwrap();
        let frame = encode_frame(&response).unwrap().len();
        let (items, next) = match response {
            Response::Accesses {
                entries,
                next_cursor,
                ..
            } => (items_len(&entries), next_cursor),
            Response::Requests {
                requests,
                next_cursor,
            } => (items_len(&requests), next_cursor),
            other => panic!("{other:?}"),
        };
        assert!(
            frame <= RESPONSE_FRAME_LEN_MAX,
            "{what} page of {frame} bytes"
        );
        assert!(
            items.1 <= PAGE_BYTES_MAX,
            "{what} items of {} bytes",
            items.1
        );
        sizes.push(format!("{}x{}B", items.0, frame));
        match next {
            None => break,
            Some(c) => cursor = Some(c),
        }
    }
    println!(
        "{what}: {} pages (items x frame bytes): {sizes:?}",
        sizes.len()
    );
    sizes.len()
}

fn items_len<T: serde::Serialize>(items: &[T]) -> (usize, usize) {
    (items.len(), serde_json::to_vec(items).unwrap().len())
}

/// civil-affairs issues [`DOCUMENTS_PER_REQUEST`] tiny marriage
/// certificates for resident-1.
async fn put_documents(civil: &VaultClient) -> Vec<DocumentId> {
    let mut out = Vec::new();
    for seed in 0..DOCUMENTS_PER_REQUEST as u64 {
        let bytes = Arc::new(pseudo_random_bytes(16, seed + 1));
        let stored = civil
            .put_bytes(
                bytes,
                &resident("resident-1"),
                &kind("marriage-certificate"),
            )
            .await
            .unwrap();
        out.push(stored.document_id);
    }
    out
}

/// The issuer fetches `document` [`FETCHES`] times, [`WORKERS`] at once.
async fn fetch_many(civil: &Arc<VaultClient>, document: DocumentId) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let civil = civil.clone();
        tasks.spawn(async move {
            for _ in (worker..FETCHES).step_by(WORKERS) {
                busy_retry(|| civil.get_bytes(document, None, None))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// A department asks resident-1 for all of `documents`.
async fn request(
    housing: &VaultClient,
    documents: &[DocumentId],
) -> Result<RequestId, ClientError> {
    let (who, why) = (resident("resident-1"), purpose("housing-subsidy"));
    busy_retry(|| {
        let scope = RequestScope::Documents(documents.to_vec());
        housing.request_access(&who, scope, &why, 3600)
    })
    .await
}

/// Departments the middle requests come from: a department may hold at
/// most 100 open requests for one resident (`limit.requests`).
const DEPARTMENTS: usize = 10;

/// [`REQUESTS`] - 2 requests from [`DEPARTMENTS`] departments, [`WORKERS`]
/// at once; answers their ids.
async fn request_many(
    pki: &TestPki,
    addr: std::net::SocketAddr,
    documents: &[DocumentId],
) -> Vec<RequestId> {
    let mut departments = Vec::new();
    for k in 0..DEPARTMENTS {
        let name = format!("paging-dept-{k}");
        pki.issue(&name, pki::Role::Department).unwrap();
        departments.push(Arc::new(connect(pki, &name, addr).await.unwrap()));
    }
    let departments = Arc::new(departments);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (departments, documents) = (departments.clone(), documents.to_vec());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in (worker..REQUESTS - 2).step_by(WORKERS) {
                let department = &departments[i % DEPARTMENTS];
                ids.push(request(department, &documents).await.unwrap());
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        ids.extend(done.unwrap());
    }
    ids
}

/// Runs `call`, again after a short wait while the node answers
/// `limit.busy` (a per-caller cap on concurrent work).
async fn busy_retry<T, F, Fut>(mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    loop {
        match call().await {
            Err(e) if e.code() == "limit.busy" => tokio::time::sleep(BUSY_RETRY).await,
            other => return other,
        }
    }
}
