//! Who may issue what, and no unbounded growth from one caller, against
//! `vault-node` processes: the issuer registry refuses a put of a kind its
//! department may not issue and keeps requests by kind to authorised
//! issuers' documents; requests expire and each department's open
//! requests per resident are capped; and the node's log lines name no
//! resident, document, grant or request.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pki::{Name, RequestId, RequestScope, Role};
use tests::{
    connect, kind, pseudo_random_bytes, purpose, resident, vault_cli, NodeProcess, TestPki,
};
use vault_client::wire::RequestView;
use vault_client::{DocumentId, VaultClient};
use vault_node::engine::state::REQUESTS_OPEN_PER_DEPARTMENT_MAX;
use vault_node::rules::refusals::REFUSALS_PER_WINDOW_MAX;

/// A node process with the development issuer registry.
fn dev_node(pki: &TestPki) -> NodeProcess {
    NodeProcess::run_with_issuers(pki, &pki.dev_issuers_path().unwrap()).unwrap()
}

/// `client` puts 1 000 bytes (seed `seed`) as resident-1's `kind_name`.
async fn put(client: &VaultClient, seed: u64, kind_name: &str) -> Result<DocumentId, String> {
    client
        .put_bytes(
            Arc::new(pseudo_random_bytes(1_000, seed)),
            &resident("resident-1"),
            &kind(kind_name),
        )
        .await
        .map(|stored| stored.document_id)
        .map_err(|e| e.code().to_string())
}

/// `department` asks for resident-1's `kind_name` for a housing subsidy,
/// for `ttl_s`, from `issuer` if given.
async fn ask(
    department: &VaultClient,
    kind_name: &str,
    ttl_s: u64,
    issuer: Option<&str>,
) -> Result<RequestId, String> {
    department
        .request_access_from(
            &resident("resident-1"),
            RequestScope::Kinds(vec![kind(kind_name)]),
            &purpose("housing-subsidy"),
            ttl_s,
            issuer.map(|name| Name::parse(name).unwrap()),
        )
        .await
        .map_err(|e| e.code().to_string())
}

/// Request `id` as resident-1 sees it.
async fn pending(r1: &VaultClient, id: RequestId) -> RequestView {
    r1.pending_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.request_id == id)
        .unwrap()
}

/// The documents request `id` resolved to.
async fn resolved(r1: &VaultClient, id: RequestId) -> Vec<DocumentId> {
    let view = pending(r1, id).await;
    view.documents.iter().map(|d| d.document_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_of_a_kind_its_department_may_not_issue_is_refused() {
    let pki = TestPki::new().unwrap();
    pki.issue("records-office", Role::Department).unwrap();
    let node = dev_node(&pki);
    let tax = connect(&pki, "tax-office", node.addr).await.unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let unlisted = connect(&pki, "records-office", node.addr).await.unwrap();

    let refused = put(&tax, 1, "marriage-certificate").await;
    assert_eq!(refused.unwrap_err(), "document.issuer_not_authorized");
    // A department the registry does not list issues nothing.
    let refused = put(&unlisted, 2, "tax-return").await;
    assert_eq!(refused.unwrap_err(), "document.issuer_not_authorized");
    let tax_return = put(&tax, 3, "tax-return").await.unwrap();
    let marriage = put(&civil, 4, "marriage-certificate").await.unwrap();

    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();
    let mut listed: Vec<DocumentId> = r1
        .list(&resident("resident-1"))
        .await
        .unwrap()
        .iter()
        .map(|d| d.document_id)
        .collect();
    listed.sort();
    let mut expected = vec![tax_return, marriage];
    expected.sort();
    assert_eq!(listed, expected, "only the authorised puts were stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_by_kind_resolves_only_to_an_authorised_issuers_document() {
    let pki = TestPki::new().unwrap();
    // First a registry that lets both departments issue marriage
    // certificates: tax-office's newer one is what a request by kind gets
    // (finding 3), unless the request names the issuer.
    let loose = pki.dir.path().join("loose-issuers.json");
    let both = r#"[
        {"department": "civil-affairs", "kinds": ["marriage-certificate"]},
        {"department": "tax-office", "kinds": ["marriage-certificate"]}
    ]"#;
    std::fs::write(&loose, both).unwrap();
    let node = NodeProcess::run_with_issuers(&pki, &loose).unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let tax = connect(&pki, "tax-office", node.addr).await.unwrap();
    let civil_doc = put(&civil, 1, "marriage-certificate").await.unwrap();
    // Registration times are whole seconds: make tax-office's the newer.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let tax_doc = put(&tax, 2, "marriage-certificate").await.unwrap();
    let housing = connect(&pki, "housing-bureau", node.addr).await.unwrap();
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();
    let newest = ask(&housing, "marriage-certificate", 3_600, None).await;
    assert_eq!(resolved(&r1, newest.unwrap()).await, vec![tax_doc]);
    let named = ask(
        &housing,
        "marriage-certificate",
        3_600,
        Some("civil-affairs"),
    )
    .await;
    assert_eq!(resolved(&r1, named.unwrap()).await, vec![civil_doc]);
    drop((civil, tax, housing, r1, node));

    // The district's registry: only civil-affairs issues marriage
    // certificates, so tax-office's newer one no longer resolves.
    let node = dev_node(&pki);
    let housing = connect(&pki, "housing-bureau", node.addr).await.unwrap();
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();
    let asked = ask(&housing, "marriage-certificate", 3_600, None).await;
    assert_eq!(resolved(&r1, asked.unwrap()).await, vec![civil_doc]);
    let named = ask(&housing, "marriage-certificate", 3_600, Some("tax-office")).await;
    assert_eq!(
        resolved(&r1, named.unwrap()).await,
        Vec::<DocumentId>::new()
    );
    // The command line names the issuer with --issuer.
    let args = [
        "request",
        "--resident",
        "resident-1",
        "--kinds",
        "marriage-certificate",
        "--issuer",
        "civil-affairs",
        "--purpose",
        "housing-subsidy",
        "--ttl",
        "1h",
    ];
    let out = vault_cli(&pki.identity_dir("housing-bureau"), node.addr, &args).unwrap();
    assert!(out.success, "{}", out.stderr);
    let id = RequestId::parse(out.json["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(resolved(&r1, id).await, vec![civil_doc]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_request_cannot_be_approved() {
    let pki = TestPki::new().unwrap();
    let node = dev_node(&pki);
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    put(&civil, 1, "marriage-certificate").await.unwrap();
    let housing = connect(&pki, "housing-bureau", node.addr).await.unwrap();
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();

    // A request for 2 s of access is open for 2 s; the resident sees until when.
    let before = vault_client::client::now_unix();
    let short = ask(&housing, "marriage-certificate", 2, None)
        .await
        .unwrap();
    let view = pending(&r1, short).await;
    let expires_at = view.expires_at.expect("the resident sees when it expires");
    assert!(
        (before + 2..=before + 3).contains(&expires_at),
        "{expires_at}"
    );
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let body = r1.approval_body(&view, 1, None).unwrap();
    let late = r1.approve(body).await.unwrap_err();
    assert_eq!(late.code(), "request.expired");

    // One asking for an hour is open for it (and 30 days at most).
    let long = ask(&housing, "marriage-certificate", 3_600, None)
        .await
        .unwrap();
    let view = pending(&r1, long).await;
    let expires_at = view.expires_at.unwrap();
    assert!(expires_at >= before + 3_600, "{expires_at}");
    let body = r1.approval_body(&view, 1, None).unwrap();
    r1.approve(body).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_has_a_quota_of_open_requests_per_resident() {
    let pki = TestPki::new().unwrap();
    let node = dev_node(&pki);
    let housing = connect(&pki, "housing-bureau", node.addr).await.unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();
    let mut first = None;
    for _ in 0..REQUESTS_OPEN_PER_DEPARTMENT_MAX {
        let id = ask(&housing, "marriage-certificate", 3_600, None).await;
        first.get_or_insert(id.unwrap());
    }
    let over = ask(&housing, "marriage-certificate", 3_600, None).await;
    assert_eq!(over.unwrap_err(), "limit.requests");
    // Another department's quota is its own.
    ask(&civil, "marriage-certificate", 3_600, None)
        .await
        .unwrap();
    // A decided request frees its place.
    r1.deny(first.unwrap()).await.unwrap();
    ask(&housing, "marriage-certificate", 3_600, None)
        .await
        .unwrap();
    let over = ask(&housing, "marriage-certificate", 3_600, None).await;
    assert_eq!(over.unwrap_err(), "limit.requests");
}

/// The size of the node's log as the auditor's checkpoint says, once the
/// last second's entries are in (checkpoints are reused for a second).
async fn log_size(auditor: &VaultClient) -> u64 {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    auditor.checkpoint().await.unwrap().0.size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_adds_a_bounded_number_of_refusal_entries_per_minute() {
    let pki = TestPki::new().unwrap();
    let node = dev_node(&pki);
    let tax = connect(&pki, "tax-office", node.addr).await.unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let auditor = connect(&pki, "auditor", node.addr).await.unwrap();
    let before = log_size(&auditor).await;
    let tries = u64::from(REFUSALS_PER_WINDOW_MAX) + 10;
    for seed in 0..tries {
        let refused = put(&tax, seed, "marriage-certificate").await;
        assert_eq!(refused.unwrap_err(), "document.issuer_not_authorized");
    }
    // Another caller's refusal is still recorded.
    let refused = put(&civil, 99, "tax-return").await;
    assert_eq!(refused.unwrap_err(), "document.issuer_not_authorized");
    let after = log_size(&auditor).await;
    assert_eq!(after - before, u64::from(REFUSALS_PER_WINDOW_MAX) + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_log_names_no_resident_document_grant_or_request() {
    let pki = TestPki::new().unwrap();
    let log_path = pki.dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let issuers = pki.dev_issuers_path().unwrap();
    let node = NodeProcess::run_logged(&pki, &issuers, "info", Stdio::from(log)).unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let tax = connect(&pki, "tax-office", node.addr).await.unwrap();
    let housing = connect(&pki, "housing-bureau", node.addr).await.unwrap();
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();
    let r2 = connect(&pki, "resident-2", node.addr).await.unwrap();

    // The walkthrough, with every kind of refusal along the way.
    let doc = put(&civil, 1, "marriage-certificate").await.unwrap();
    assert!(put(&tax, 2, "marriage-certificate").await.is_err());
    let asked = ask(&housing, "marriage-certificate", 3_600, None).await;
    let request = asked.unwrap();
    let view = pending(&r1, request).await;
    let refused = r2.deny(request).await.unwrap_err();
    assert_eq!(refused.code(), "request.not_addressee");
    let grant = r1
        .approve(r1.approval_body(&view, 2, None).unwrap())
        .await
        .unwrap()
        .id();
    housing.get_bytes(doc, None, Some(grant)).await.unwrap();
    let refused = housing.get_bytes(doc, None, None).await.unwrap_err();
    assert_eq!(refused.code(), "auth.forbidden");
    r1.revoke_grant(grant).await.unwrap();
    let refused = housing.get_bytes(doc, None, Some(grant)).await.unwrap_err();
    assert_eq!(refused.code(), "grant.revoked");
    let other = ask(&housing, "marriage-certificate", 3_600, None).await;
    let other = other.unwrap();
    r1.deny(other).await.unwrap();
    // Give the background refusal entries and log writes a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(node);

    let text = std::fs::read_to_string(&log_path).unwrap();
    for line in ["request refused", "grant issued", "access request recorded"] {
        assert!(text.contains(line), "the log has no {line:?} line:\n{text}");
    }
    let secrets = [
        "resident-1".to_string(),
        "resident-2".to_string(),
        doc.to_string(),
        grant.to_string(),
        request.to_string(),
        other.to_string(),
    ];
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the log names {secret}:\n{text}"
        );
    }
}
