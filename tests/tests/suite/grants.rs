//! Consent and grants over real QUIC with real certificates: departments
//! request, residents approve, deny and revoke, and every refusal the issue
//! names gets its stable code and changes no state.

use std::sync::Arc;
use std::time::Duration;

use tests::grant_story::{cli_issue_marriage, json_text};
use tests::{
    connect, kind, pseudo_random_bytes, purpose, resident, start_node, vault_cli, GrantStory,
    NodeProcess, Parties, TestPki,
};
use vault_client::wire::RequestView;
use vault_client::{DocumentId, GetOptions, VaultClient};
use vault_node::node::RunningNode;

/// A node with the story's parties connected and resident-1's two
/// documents issued by civil-affairs.
struct Office {
    pki: TestPki,
    node: RunningNode,
    civil: VaultClient,
    housing: VaultClient,
    r1: VaultClient,
    /// A marriage certificate: 50 000 bytes, `pseudo_random_bytes` seed 1.
    marriage: DocumentId,
    /// A birth certificate: 20 000 bytes, seed 2.
    birth: DocumentId,
}

async fn office() -> Office {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();
    let Parties {
        civil,
        housing,
        resident: r1,
    } = Parties::connect(&pki, node.addr).await.unwrap();
    let (marriage, birth) = seed(&civil).await;
    Office {
        pki,
        node,
        civil,
        housing,
        r1,
        marriage,
        birth,
    }
}

/// civil-affairs puts a marriage certificate and a birth certificate for resident-1.
async fn seed(civil: &VaultClient) -> (DocumentId, DocumentId) {
    let marriage = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(50_000, 1)),
            &resident("resident-1"),
            &kind("marriage-certificate"),
        )
        .await
        .unwrap();
    let birth = civil
        .put_bytes(
            Arc::new(pseudo_random_bytes(20_000, 2)),
            &resident("resident-1"),
            &kind("birth-certificate"),
        )
        .await
        .unwrap();
    (marriage.document_id, birth.document_id)
}

/// housing-bureau asks for resident-1's marriage certificate (the default
/// story); answers the request as resident-1 sees it.
async fn request_marriage(housing: &VaultClient, r1: &VaultClient) -> RequestView {
    let story = GrantStory::new();
    let id = story.request(housing).await.unwrap();
    story.pending(r1, id).await.unwrap()
}

/// A grant of resident-1's marriage certificate to `housing` for
/// `max_uses` fetches.
async fn marriage_grant(housing: &VaultClient, r1: &VaultClient, max_uses: u32) -> pki::GrantId {
    let story = GrantStory::new().max_uses(max_uses);
    story.grant(housing, r1).await.unwrap().id()
}

async fn fetch(
    client: &VaultClient,
    doc: DocumentId,
    grant: pki::GrantId,
) -> Result<Vec<u8>, String> {
    client
        .get_bytes(doc, None, Some(grant))
        .await
        .map(|(_, bytes)| bytes)
        .map_err(|e| e.code().to_string())
}

#[tokio::test]
async fn request_approve_fetch_exhaust_and_refuse_others() {
    let Office {
        pki,
        node,
        civil,
        housing,
        r1,
        marriage,
        birth,
    } = office().await;
    let r2 = connect(&pki, "resident-2", node.addr).await.unwrap();

    // Without a grant the housing bureau is refused.
    let err = housing.get_bytes(marriage, None, None).await.unwrap_err();
    assert_eq!(err.code(), "auth.forbidden");

    let view = request_marriage(&housing, &r1).await;
    let request_id = view.request_id;
    assert_eq!(view.documents.len(), 1);
    assert_eq!(view.department.as_str(), "housing-bureau");
    assert_eq!(view.legal_basis, "Housing Subsidy Regulation, art. 12");
    assert!(
        r2.pending_requests().await.unwrap().is_empty(),
        "resident-2 sees resident-1's request"
    );

    // Someone other than resident-1 cannot decide it.
    let body = r1.approval_body(&view, 2, None).unwrap();
    let err = r2.approve(body.clone()).await.unwrap_err();
    assert_eq!(err.code(), "request.not_addressee");
    let err = housing.approve(body.clone()).await.unwrap_err();
    assert_eq!(err.code(), "request.not_addressee");
    let err = r2.deny(request_id).await.unwrap_err();
    assert_eq!(err.code(), "request.not_addressee");

    let grant = r1.approve(body.clone()).await.unwrap();
    let grant_id = grant.id();
    // Approving twice.
    assert_eq!(
        r1.approve(body).await.unwrap_err().code(),
        "request.already_decided"
    );

    // Two fetches, then exhausted; the refusal spends nothing.
    assert_eq!(
        fetch(&housing, marriage, grant_id).await.unwrap().len(),
        50_000
    );
    assert_eq!(
        fetch(&housing, marriage, grant_id).await.unwrap().len(),
        50_000
    );
    assert_eq!(
        fetch(&housing, marriage, grant_id).await.unwrap_err(),
        "grant.exhausted"
    );
    let (state, _) = r1.show_grant(grant_id).await.unwrap();
    assert_eq!(state.uses, 2);

    // Another department presenting the grant: holder mismatch.
    assert_eq!(
        fetch(&civil, marriage, grant_id).await.unwrap_err(),
        "grant.holder_mismatch"
    );
    // A document outside the grant.
    assert_eq!(
        fetch(&housing, birth, grant_id).await.unwrap_err(),
        "grant.out_of_scope"
    );
    // An unknown grant.
    let unknown = pki::GrantId::from_bytes([9; 16]);
    assert_eq!(
        fetch(&housing, marriage, unknown).await.unwrap_err(),
        "grant.not_found"
    );
    // Parties see the grant; others do not.
    assert_eq!(housing.grants().await.unwrap().len(), 1);
    assert_eq!(r1.grants().await.unwrap().len(), 1);
    assert!(r2.grants().await.unwrap().is_empty());
    assert_eq!(
        r2.show_grant(grant_id).await.unwrap_err().code(),
        "grant.not_found"
    );
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_fetch_and_can_be_given_up() {
    let Office {
        pki,
        node,
        housing,
        r1,
        marriage,
        ..
    } = office().await;

    let mut grants = Vec::new();
    for _ in 0..2 {
        grants.push(marriage_grant(&housing, &r1, 5).await);
    }
    fetch(&housing, marriage, grants[0]).await.unwrap();
    r1.revoke_grant(grants[0]).await.unwrap();
    assert_eq!(
        fetch(&housing, marriage, grants[0]).await.unwrap_err(),
        "grant.revoked"
    );
    // The department gives up the other one.
    housing.revoke_grant(grants[1]).await.unwrap();
    assert_eq!(
        fetch(&housing, marriage, grants[1]).await.unwrap_err(),
        "grant.revoked"
    );
    // Revoking is idempotent; a stranger cannot revoke.
    r1.revoke_grant(grants[0]).await.unwrap();
    let r2 = connect(&pki, "resident-2", node.addr).await.unwrap();
    assert_eq!(
        r2.revoke_grant(grants[0]).await.unwrap_err().code(),
        "grant.not_found"
    );
}

#[tokio::test]
async fn approvals_may_narrow_but_never_widen() {
    let Office {
        pki,
        node: _node,
        civil,
        housing,
        r1,
        birth,
        ..
    } = office().await;
    let view = request_marriage(&housing, &r1).await;
    let good = r1.approval_body(&view, 1, None).unwrap();

    let mut extra_doc = good.clone();
    let birth_hash = civil
        .list(&resident("resident-1"))
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.document_id == birth)
        .unwrap()
        .record
        .content_hash;
    extra_doc.documents.push(pki::GrantedDocument {
        document_id: birth,
        content_hash: birth_hash,
    });
    extra_doc.documents.sort();
    let mut longer = good.clone();
    longer.not_after = longer.not_before + 7200;
    let mut other_holder = good.clone();
    other_holder.grantee_key_id = pki.identity("civil-affairs").unwrap().cert.key_id;
    let mut other_purpose = good.clone();
    other_purpose.purpose = purpose("tax-assessment");
    for (body, what) in [
        (extra_doc, "extra document"),
        (longer, "longer ttl"),
        (other_holder, "other key"),
        (other_purpose, "other purpose"),
    ] {
        let err = r1.approve(body).await.unwrap_err();
        assert_eq!(err.code(), "request.widened", "{what}");
    }
    let mut zero = good.clone();
    zero.max_uses = 0;
    assert_eq!(
        r1.approve(zero).await.unwrap_err().code(),
        "grant.malformed"
    );
    // Narrowing is fine: shorter ttl.
    let mut shorter = good;
    shorter.not_after = shorter.not_before + 60;
    let grant = r1.approve(shorter).await.unwrap();
    assert_eq!(grant.body.not_after - grant.body.not_before, 60);
}

#[tokio::test]
async fn forged_consent_and_bad_requests_are_refused() {
    let Office {
        pki,
        node: _node,
        housing,
        r1,
        ..
    } = office().await;

    // Consent signed with resident-2's key, sent by resident-1.
    let view = request_marriage(&housing, &r1).await;
    let request_id = view.request_id;
    let body = r1.approval_body(&view, 1, None).unwrap();
    let forged = body.consent(&pki.identity("resident-2").unwrap());
    let response = r1
        .call(&vault_client::wire::Request::Approve {
            request_id,
            body,
            consent: forged,
        })
        .await
        .unwrap_err();
    assert_eq!(response.code(), "grant.bad_signature");

    let story = GrantStory::new().ttl_s(60);
    let err = story.clone().purpose("curiosity").request(&housing).await;
    assert_eq!(err.unwrap_err().code(), "request.unknown_purpose");
    let err = story
        .clone()
        .purpose("vehicle-registration")
        .ttl_s(365 * 86_400)
        .request(&housing)
        .await;
    assert_eq!(err.unwrap_err().code(), "request.ttl_too_long");
    // A kind the resident does not hold: the department learns nothing (the
    // request is recorded and resolves to no document; the resident sees it).
    let divorce = story.clone().kinds(&["divorce-decree"]);
    let probe = divorce.request(&housing).await.unwrap();
    assert!(divorce
        .pending(&r1, probe)
        .await
        .unwrap()
        .documents
        .is_empty());
    r1.deny(probe).await.unwrap();
    let err = story.request(&r1).await.unwrap_err();
    assert_eq!(err.code(), "auth.forbidden");

    // Deny, then approving is refused.
    r1.deny(request_id).await.unwrap();
    assert!(r1.pending_requests().await.unwrap().is_empty());
    let body = r1.approval_body(&view, 1, None).unwrap();
    assert_eq!(
        r1.approve(body).await.unwrap_err().code(),
        "request.already_decided"
    );
}

#[tokio::test]
async fn time_windows_fail_closed() {
    let Office {
        pki: _pki,
        node: _node,
        housing,
        r1,
        marriage,
        ..
    } = office().await;

    // Not yet valid: starts in 10 minutes (beyond the 30 s allowance).
    let later = GrantStory::new()
        .grant_edited(&housing, &r1, |later| {
            later.not_before += 600;
            later.not_after = later.not_before + 60;
        })
        .await
        .unwrap()
        .id();
    assert_eq!(
        fetch(&housing, marriage, later).await.unwrap_err(),
        "grant.not_yet_valid"
    );

    // Expired: a two-second grant, two and a half seconds later.
    let brief = GrantStory::new()
        .grant_edited(&housing, &r1, |brief| {
            brief.not_after = brief.not_before + 2
        })
        .await
        .unwrap()
        .id();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        fetch(&housing, marriage, brief).await.unwrap_err(),
        "grant.expired"
    );
    let (state, _) = housing.show_grant(brief).await.unwrap();
    assert_eq!(state.uses, 0, "a refused fetch spent a use");
}

#[tokio::test]
async fn two_concurrent_fetches_on_the_last_use_exactly_one_succeeds() {
    let Office {
        pki,
        node,
        r1,
        marriage,
        ..
    } = office().await;
    for _round in 0..5 {
        let housing_a = Arc::new(connect(&pki, "housing-bureau", node.addr).await.unwrap());
        let housing_b = Arc::new(connect(&pki, "housing-bureau", node.addr).await.unwrap());
        let grant = marriage_grant(&housing_a, &r1, 1).await;
        let a = tokio::spawn({
            let c = housing_a.clone();
            async move { fetch(&c, marriage, grant).await }
        });
        let b = tokio::spawn({
            let c = housing_b.clone();
            async move { fetch(&c, marriage, grant).await }
        });
        let results = [a.await.unwrap(), b.await.unwrap()];
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{results:?}");
        assert!(results
            .iter()
            .any(|r| r.as_ref().err().map(String::as_str) == Some("grant.exhausted")));
    }
}

#[tokio::test]
async fn a_new_certificate_for_the_department_does_not_inherit_grants() {
    let Office {
        pki,
        node,
        housing,
        r1,
        marriage,
        ..
    } = office().await;
    let grant = marriage_grant(&housing, &r1, 3).await;
    fetch(&housing, marriage, grant).await.unwrap();

    // The bureau's certificate is revoked and reissued with a new key.
    let old_serial = pki.identity("housing-bureau").unwrap().cert.serial_hex;
    pki.ca.revoke(&old_serial, tests::now()).unwrap();
    let params = pki::IssueParams::new(
        pki::Role::Department,
        pki::Name::parse("housing-bureau").unwrap(),
        tests::now(),
    );
    pki.issue_with("housing-bureau-2", params).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let renewed = connect(&pki, "housing-bureau-2", node.addr).await.unwrap();
    assert_eq!(
        fetch(&renewed, marriage, grant).await.unwrap_err(),
        "grant.holder_mismatch"
    );
    // The old key cannot even connect.
    assert!(
        connect(&pki, "housing-bureau", node.addr).await.is_err()
            || fetch(&housing, marriage, grant).await.is_err()
    );
}

/// `vault grant verify FILE` as `identity`, with no node to ask.
fn verify_offline(identity: &std::path::Path, file: &std::path::Path) -> tests::CliOutput {
    let nowhere: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let args = ["grant", "verify", file.to_str().unwrap()];
    vault_cli(identity, nowhere, &args).unwrap()
}

#[test]
fn offline_grant_verification_catches_forgery_and_unknown_signers() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ids = |n: &str| pki.identity_dir(n);
    let content = pseudo_random_bytes(10_000, 4);
    let put = cli_issue_marriage(&pki, node.addr, work.path(), &content).unwrap();
    assert!(put.success, "{put:?}");
    let story = GrantStory::new().max_uses(2);
    let req = story.cli_request(&pki, node.addr).unwrap();
    assert!(req.success, "{req:?}");
    let request_id = json_text(&req, "request_id").unwrap();
    let listed = vault_cli(&ids("resident-1"), node.addr, &["requests"]).unwrap();
    assert_eq!(
        listed.json["requests"][0]["request_id"],
        request_id.as_str()
    );
    let approved = story.cli_approve(&pki, node.addr, &request_id).unwrap();
    assert!(approved.success, "{approved:?}");
    let grant_id = json_text(&approved, "grant_id").unwrap();
    let saved = work.path().join("grant.json");
    let shown = vault_cli(
        &ids("housing-bureau"),
        node.addr,
        &["grant", "show", &grant_id, "-o", saved.to_str().unwrap()],
    )
    .unwrap();
    assert!(shown.success, "{shown:?}");

    // Offline: the node is stopped first.
    drop(node);
    let ok = verify_offline(&ids("auditor"), &saved);
    assert!(ok.success, "{ok:?}");
    assert_eq!(ok.json["grant_id"], grant_id.as_str());
    assert_eq!(ok.json["window"], "valid");

    let original = std::fs::read_to_string(&saved).unwrap();
    let altered = original.replacen("\"max_uses\": 2", "\"max_uses\": 200", 1);
    assert_ne!(altered, original);
    let forged_path = work.path().join("forged.json");
    std::fs::write(&forged_path, altered).unwrap();
    let forged = verify_offline(&ids("auditor"), &forged_path);
    assert_eq!(
        forged.json["error"]["code"], "grant.bad_signature",
        "{forged:?}"
    );

    let other = TestPki::new().unwrap();
    let foreign = verify_offline(&other.identity_dir("auditor"), &saved);
    assert_eq!(
        foreign.json["error"]["code"], "grant.untrusted_signer",
        "{foreign:?}"
    );

    for (name, bytes) in [
        ("garbage.json", b"{not json".to_vec()),
        ("huge.json", vec![b' '; 100_000]),
    ] {
        let path = work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let bad = verify_offline(&ids("auditor"), &path);
        assert_eq!(
            bad.json["error"]["code"], "grant.malformed",
            "{name}: {bad:?}"
        );
    }
}

#[test]
fn cli_walkthrough_story() {
    let pki = TestPki::new().unwrap();
    let node = NodeProcess::run(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ids = |n: &str| pki.identity_dir(n);
    let content = b"marriage certificate of resident-1";
    let put = cli_issue_marriage(&pki, node.addr, work.path(), content).unwrap();
    let doc = json_text(&put, "document_id").unwrap();
    let story = GrantStory::new().ttl_s(30 * 86_400).max_uses(2);
    let mut grant_ids = Vec::new();
    for _ in 0..2 {
        grant_ids.push(story.cli_grant(&pki, node.addr).unwrap());
    }
    let out = work.path().join("copy.pdf");
    let get = |who: &str, grant: &str| {
        vault_cli(
            &ids(who),
            node.addr,
            &["get", &doc, "--grant", grant, "-o", out.to_str().unwrap()],
        )
        .unwrap()
    };
    for _ in 0..2 {
        let got = get("housing-bureau", &grant_ids[0]);
        assert!(got.success, "{got:?}");
        assert_eq!(got.json["issuer"], "civil-affairs");
    }
    std::fs::remove_file(&out).unwrap();
    let third = get("housing-bureau", &grant_ids[0]);
    assert_eq!(third.json["error"]["code"], "grant.exhausted");
    let stolen = get("civil-affairs", &grant_ids[0]);
    assert_eq!(stolen.json["error"]["code"], "grant.holder_mismatch");
    assert!(!out.exists(), "a refused fetch left a file");
    let revoked = vault_cli(&ids("resident-1"), node.addr, &["revoke", &grant_ids[1]]).unwrap();
    assert!(revoked.success, "{revoked:?}");
    let after = get("housing-bureau", &grant_ids[1]);
    assert_eq!(after.json["error"]["code"], "grant.revoked");
    let listed = vault_cli(&ids("resident-1"), node.addr, &["grants"]).unwrap();
    assert_eq!(listed.json["grants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn get_with_options_under_a_grant_writes_the_file() {
    let Office {
        pki: _pki,
        node: _node,
        housing,
        r1,
        marriage,
        ..
    } = office().await;
    let grant = marriage_grant(&housing, &r1, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.pdf");
    let options = GetOptions {
        grant: Some(grant),
        ..Default::default()
    };
    housing.get_to_file(marriage, &out, options).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), pseudo_random_bytes(50_000, 1));
}

/// `vault get DOC --grant G -o SOME_DIRECTORY` used to download, spend the
/// use, then fail to move the file into place and throw the bytes away:
/// with one use, the grant was gone (part 6, finding 1). The output path is
/// now checked before anything is asked for.
#[tokio::test]
async fn a_get_into_a_directory_is_refused_before_the_use_is_spent() {
    let Office {
        pki: _pki,
        node: _node,
        housing,
        r1,
        marriage,
        ..
    } = office().await;
    let grant = marriage_grant(&housing, &r1, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let options = || GetOptions {
        grant: Some(grant),
        ..Default::default()
    };
    let err = housing
        .get_to_file(marriage, dir.path(), options())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "local.io", "{err}");
    assert!(err.to_string().contains("is a directory"), "{err}");
    let unwritable = dir.path().join("no-such-dir").join("m.pdf");
    let err = housing
        .get_to_file(marriage, &unwritable, options())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "local.io", "{err}");
    // The one use is still there.
    let out = dir.path().join("m.pdf");
    housing
        .get_to_file(marriage, &out, options())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), pseudo_random_bytes(50_000, 1));
    assert_eq!(
        fetch(&housing, marriage, grant).await.unwrap_err(),
        "grant.exhausted"
    );
}
