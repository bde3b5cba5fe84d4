//! The district's registries by name: a `vault-node dev` process answers
//! any caller's registry request with every development purpose and
//! department in English and Chinese, through the client library and the
//! `vault registry` command; a node run with an older issuer registry file
//! (no names) or none answers what it has.

use pki::{Identity, Name, Purpose};
use serde_json::Value;
use tests::{path_str, vault_cli, NodeProcess, TestPki};
use vault_client::wire::{Language, Registry};
use vault_client::VaultClient;

/// `vault-node dev` (one node) with its PKI and registries under `data`.
fn dev_node(data: &std::path::Path) -> NodeProcess {
    NodeProcess::spawn(&[
        "dev",
        "--data",
        path_str(data).unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .unwrap()
}

/// The registry as development identity `who` gets it.
async fn registry_as(data: &std::path::Path, who: &str, node: &NodeProcess) -> Registry {
    let identity = Identity::load(&data.join("identities").join(who)).unwrap();
    let client = VaultClient::connect(identity, &node.addr.to_string())
        .await
        .unwrap();
    client.registry().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_gets_the_dev_registries_with_chinese_names() {
    let data = tempfile::tempdir().unwrap();
    let node = dev_node(data.path());
    let registry = registry_as(data.path(), "resident-1", &node).await;
    assert!(!registry.truncated());

    let housing = registry
        .purpose(&Purpose::parse("housing-subsidy").unwrap())
        .expect("housing-subsidy is registered");
    assert_eq!(
        housing.description,
        "Assess an application for a housing subsidy"
    );
    assert_eq!(
        housing.description_in(Language::Chinese),
        "审核住房补贴申请"
    );
    assert_eq!(
        housing.legal_basis_in(Language::Chinese),
        "《住房补贴条例》第十二条"
    );
    assert_eq!(housing.ttl_s_max, 90 * 24 * 3600);
    assert_eq!(registry.purposes().len(), 6);
    assert!(registry
        .purposes()
        .iter()
        .all(|p| p.description_zh.is_some() && p.legal_basis_zh.is_some()));

    let names: Vec<(&str, &str, &str)> = registry
        .departments()
        .iter()
        .map(|d| {
            (
                d.department.as_str(),
                d.name_in(Language::English),
                d.name_in(Language::Chinese),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("civil-affairs", "Civil Affairs Bureau", "民政局"),
            ("housing-bureau", "Housing Bureau", "住房保障局"),
            ("police", "Public Security Bureau", "公安局"),
            ("tax-office", "Tax Office", "税务局"),
        ]
    );
    let tax = Name::parse("tax-office").unwrap();
    let tax_kinds = &registry.department(&tax).unwrap().kinds;
    assert!(tax_kinds.iter().any(|k| k.as_str() == "tax-return"));

    // Every other role may ask too: it is public information.
    for who in ["tax-office", "auditor", "node-1"] {
        let other = registry_as(data.path(), who, &node).await;
        assert_eq!(other, registry, "as {who}");
    }

    // `vault registry --json` prints the same lists.
    let printed = vault_cli(
        &data.path().join("identities").join("resident-1"),
        node.addr,
        &["registry"],
    )
    .unwrap();
    assert!(printed.success, "{printed:?}");
    assert_eq!(printed.json["truncated"], false);
    let civil = &printed.json["departments"][0];
    assert_eq!(civil["department"], "civil-affairs");
    assert_eq!(civil["name_zh"], "民政局");
    let purpose = printed.json["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "housing-subsidy")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(purpose["legal_basis_zh"], "《住房补贴条例》第十二条");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_older_issuer_file_or_none_answers_what_it_has() {
    let pki = TestPki::new().unwrap();
    // The test issuer registry is an older file: departments and kinds,
    // no names.
    let node = NodeProcess::run(&pki).unwrap();
    let client = tests::connect(&pki, "resident-1", node.addr).await.unwrap();
    let registry = client.registry().await.unwrap();
    assert_eq!(registry.departments().len(), 3);
    let civil = Name::parse("civil-affairs").unwrap();
    assert_eq!(registry.department(&civil).unwrap().name, None);
    assert_eq!(
        registry.department_name(&civil, Language::Chinese),
        "civil-affairs"
    );
    drop((client, node));

    // Without `--issuers`: purposes, and no departments.
    let identity = pki.identity_dir("node-1");
    let data = pki.data_dir("node-1");
    let purposes = pki.purposes_path().unwrap();
    let node = NodeProcess::spawn(&[
        "run",
        "--identity",
        path_str(&identity).unwrap(),
        "--data",
        path_str(&data).unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--purposes",
        path_str(&purposes).unwrap(),
    ])
    .unwrap();
    let client = tests::connect(&pki, "housing-bureau", node.addr)
        .await
        .unwrap();
    let registry = client.registry().await.unwrap();
    assert!(registry.departments().is_empty());
    assert_eq!(registry.purposes().len(), 6);
}
