//! `vault registry`: the district's purposes and departments as the node
//! holds them, with their English and Chinese names.

use serde_json::json;
use vault_client::wire::Registry;
use vault_client::VaultClient;

use crate::output::CommandResult;

/// `vault registry`: every purpose and every department.
pub async fn registry(client: &VaultClient) -> CommandResult {
    let registry = client.registry().await?;
    let value = json!(registry);
    Ok((value, text(&registry)))
}

/// The registry as text: one line per purpose and per department.
fn text(registry: &Registry) -> String {
    let both = |en: &str, zh: Option<&str>| match zh {
        Some(zh) => format!("{en} / {zh}"),
        None => en.to_string(),
    };
    let mut text = String::from("purposes:\n");
    for p in registry.purposes() {
        text.push_str(&format!(
            "  {}  {} ({}), at most {} s\n",
            p.code,
            both(&p.description, p.description_zh.as_deref()),
            both(&p.legal_basis, p.legal_basis_zh.as_deref()),
            p.ttl_s_max
        ));
    }
    if registry.purposes().is_empty() {
        text.push_str("  none (the node has no purpose registry)\n");
    }
    text.push_str("departments:\n");
    for d in registry.departments() {
        let name = match (&d.name, &d.name_zh) {
            (Some(en), zh) => both(en, zh.as_deref()),
            (None, Some(zh)) => zh.clone(),
            (None, None) => "(no name)".to_string(),
        };
        let kinds: Vec<&str> = d.kinds.iter().map(|k| k.as_str()).collect();
        let kinds = if kinds.is_empty() {
            "issues nothing".to_string()
        } else {
            format!("issues {}", kinds.join(", "))
        };
        text.push_str(&format!("  {}  {name}; {kinds}\n", d.department));
    }
    if registry.departments().is_empty() {
        text.push_str("  none (the node has no issuer registry)\n");
    }
    if registry.truncated() {
        text.push_str("(the node left entries out: its registries are larger than one answer)\n");
    }
    text.trim_end().to_string()
}
