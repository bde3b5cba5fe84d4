//! Access by law against a real node (QUIC, RocksDB, the discloser) and
//! the `vault` command line: police orders, the court approves, police
//! fetches; while sealed resident-1 sees nothing; after the seal the
//! access appears, verified, with its legal basis, case and authority; an
//! order without the court's approval, or under a purpose that is not
//! statutory, is refused; the auditor's replay passes. The replay's rules
//! on crafted logs are unit tests of `vault_client::orders`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::{LogEvent, RequestScope, Role};
use tests::{
    connect, kind, pseudo_random_bytes, purpose, resident, start_node, vault_cli, TestPki,
};
use vault_client::order_client::OrderRequest;

fn order(case_ref: &str, seal_s: u64, purpose_code: &str) -> OrderRequest {
    OrderRequest {
        resident: resident("resident-1"),
        scope: RequestScope::Kinds(vec![kind("marriage-certificate")]),
        purpose: purpose(purpose_code),
        case_ref: case_ref.to_string(),
        seal_s,
        ttl_s: 3_600,
        issuer: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_orders_the_court_approves_sealed_then_disclosed_and_audited() {
    let pki = TestPki::new().unwrap();
    pki.issue("police", Role::Department).unwrap();
    pki.issue("court", Role::Authority).unwrap();
    let node = start_node(&pki).await.unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let police = connect(&pki, "police", node.addr).await.unwrap();
    let court = connect(&pki, "court", node.addr).await.unwrap();
    let r1 = connect(&pki, "resident-1", node.addr).await.unwrap();
    let marriage = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(10_000, 7)),
            &resident("resident-1"),
            &kind("marriage-certificate"),
        )
        .await
        .unwrap()
        .document_id;

    // Not statutory: refused, nothing recorded.
    let refused = police
        .file_order(order("CASE-0", 5, "housing-subsidy"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "order.not_statutory");
    // A seal longer than the registry allows.
    let refused = police
        .file_order(order("CASE-0", 181 * 24 * 3600, "criminal-investigation"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "order.seal_too_long");

    let seal_s = 6;
    let order_id = police
        .file_order(order("CASE-2026-17", seal_s, "criminal-investigation"))
        .await
        .unwrap();
    // Without the court: police cannot approve its own order, and has no grant.
    let own = police.approve_order(order_id, 1).await.unwrap_err();
    assert_eq!(own.code(), "order.needs_authority");
    // Anyone else is told no more than about an order that does not exist.
    assert_eq!(
        r1.approve_order(order_id, 1).await.unwrap_err().code(),
        "order.not_found"
    );
    assert!(police.grants().await.unwrap().is_empty());

    // The court may extend the seal, but never so far that the order
    // stays sealed longer than the registry allows from its filing, however
    // many extensions are chained (180 days for criminal-investigation).
    let filed_at = tests::now();
    let too_long = court
        .extend_seal(order_id, filed_at + 181 * 24 * 3600)
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), "order.seal_too_long");

    // An order left undecided until its seal ends is disclosed as such and
    // can no longer be approved (its approval would stay sealed for ever),
    // nor its ended seal extended.
    // (About resident-2, so resident-1's disclosures below stay one.)
    civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(2_000, 8)),
            &resident("resident-2"),
            &kind("marriage-certificate"),
        )
        .await
        .unwrap();
    let mut about_2 = order("CASE-2026-18", 1, "criminal-investigation");
    about_2.resident = resident("resident-2");
    let short = police.file_order(about_2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = police.show_order(short).await.unwrap();
        if view.disclosed_at.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short order was never disclosed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        court.approve_order(short, 1).await.unwrap_err().code(),
        "order.disclosed"
    );
    assert_eq!(
        court
            .extend_seal(short, tests::now() + 3600)
            .await
            .unwrap_err()
            .code(),
        "order.disclosed"
    );

    let grant = court.approve_order(order_id, 1).await.unwrap();
    let (_, bytes) = police
        .get_bytes(marriage, None, Some(grant.id()))
        .await
        .unwrap();
    assert_eq!(bytes, pseudo_random_bytes(10_000, 7));

    // Sealed: resident-1's accesses (every entry), grants and the grant
    // itself show nothing of it.
    let (_, all, _) = r1.accesses(true).await.unwrap();
    assert!(all
        .iter()
        .all(|a| a.entry.grant_id != Some(grant.id()) && a.entry.request_id != Some(order_id)));
    assert!(all.iter().all(|a| a.entry.actor != "police"));
    assert!(r1.grants().await.unwrap().is_empty());
    assert_eq!(
        r1.show_grant(grant.id()).await.unwrap_err().code(),
        "grant.not_found"
    );
    // ... and the list is still proven complete (part 4): the sealed
    // entries are in no resident's chain.
    let checked = r1.accesses_checked(true).await.unwrap();
    assert!(checked.complete.is_ok(), "{:?}", checked.complete.err());

    // The node discloses by itself once the seal ends.
    let deadline = Instant::now() + Duration::from_secs(seal_s + 30);
    let (checkpoint, fetches) = loop {
        let (checkpoint, fetches, _) = r1.accesses(false).await.unwrap();
        if fetches
            .iter()
            .any(|a| a.entry.event == LogEvent::OrderDisclosed)
        {
            break (checkpoint, fetches);
        }
        assert!(Instant::now() < deadline, "the order was never disclosed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The disclosure joins resident-1's chain: still complete.
    let checked = r1.accesses_checked(true).await.unwrap();
    assert!(checked.complete.is_ok(), "{:?}", checked.complete.err());
    assert!(checked.entries.iter().any(|a| a
        .verified
        .as_ref()
        .is_ok_and(|v| v.entry.event == LogEvent::OrderDisclosed)));
    let disclosed = r1.disclosures(&checkpoint, &fetches).await.unwrap();
    assert_eq!(disclosed.len(), 1);
    let d = &disclosed[0];
    assert_eq!(d.order.case_ref, "CASE-2026-17");
    assert_eq!(d.order.legal_basis, "Criminal Procedure Act, art. 132");
    // The refusal of police's own approval is sealed with the order too
    // (recorded in the background, so wherever it falls).
    let events: Vec<LogEvent> = d
        .entries
        .iter()
        .map(|s| s.entry.event)
        .filter(|e| *e != LogEvent::Refusal)
        .collect();
    assert_eq!(
        events,
        [
            LogEvent::OrderFiled,
            LogEvent::OrderApproved,
            LogEvent::GrantIssued,
            LogEvent::Fetch
        ]
    );
    let by_event = |event: LogEvent| d.entries.iter().find(|s| s.entry.event == event).unwrap();
    let approval = &by_event(LogEvent::OrderApproved).entry;
    assert_eq!(
        (approval.actor_role, approval.actor.as_str()),
        (Role::Authority, "court")
    );
    let fetch = by_event(LogEvent::Fetch);
    assert_eq!(fetch.entry.document_id, Some(marriage));
    assert_eq!(fetch.entry.actor, "police");
    assert_eq!(fetch.detail.kind.as_deref(), Some("marriage-certificate"));

    // The CLI shows it by law; the auditor's replay passes.
    let out = vault_cli(&pki.identity_dir("resident-1"), node.addr, &["accesses"]).unwrap();
    assert!(out.success, "{}", out.stderr);
    let rows = out.json["accesses"].as_array().unwrap();
    let by_law: Vec<_> = rows.iter().filter(|r| r["by_law"] == true).collect();
    assert_eq!(by_law.len(), 1, "{rows:?}");
    assert_eq!(by_law[0]["case_ref"], "CASE-2026-17");
    assert_eq!(by_law[0]["authorised_by"], "court");
    let state = pki.data_dir("audit");
    let audit = vault_cli(
        &pki.identity_dir("auditor"),
        node.addr,
        &["audit", "verify", "--state", state.to_str().unwrap()],
    )
    .unwrap();
    assert!(audit.success, "{:?}", audit.json);
    assert_eq!(audit.json["violations"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_files_and_approves_orders_and_lists_them_for_their_parties() {
    let pki = TestPki::new().unwrap();
    pki.issue("police", Role::Department).unwrap();
    pki.issue("court", Role::Authority).unwrap();
    let node = start_node(&pki).await.unwrap();
    let civil = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(1_000, 3)),
            &resident("resident-1"),
            &kind("marriage-certificate"),
        )
        .await
        .unwrap();
    let police = pki.identity_dir("police");
    let filed = vault_cli(
        &police,
        node.addr,
        &[
            "order",
            "--resident",
            "resident-1",
            "--kinds",
            "marriage-certificate",
            "--purpose",
            "criminal-investigation",
            "--case",
            "CASE-9",
            "--seal",
            "1h",
            "--ttl",
            "1h",
        ],
    )
    .unwrap();
    assert!(filed.success, "{:?}", filed.json);
    let order_id = filed.json["order_id"].as_str().unwrap().to_string();
    let court = pki.identity_dir("court");
    let listed = vault_cli(&court, node.addr, &["orders"]).unwrap();
    assert_eq!(listed.json["orders"][0]["status"], "pending");
    let approved = vault_cli(
        &court,
        node.addr,
        &["order", "approve", &order_id, "--max-uses", "2"],
    )
    .unwrap();
    assert!(approved.success, "{:?}", approved.json);
    assert!(approved.json["grant_id"].is_string());
    // A resident lists no orders; another department sees none of police's.
    let r1 = vault_cli(&pki.identity_dir("resident-1"), node.addr, &["orders"]).unwrap();
    assert_eq!(r1.json["error"]["code"], "auth.forbidden");
    let tax = vault_cli(&pki.identity_dir("tax-office"), node.addr, &["orders"]).unwrap();
    assert_eq!(tax.json["orders"], serde_json::json!([]));
    // A second approval is refused.
    let again = vault_cli(&court, node.addr, &["order", "approve", &order_id]).unwrap();
    assert_eq!(again.json["error"]["code"], "order.already_decided");
}
