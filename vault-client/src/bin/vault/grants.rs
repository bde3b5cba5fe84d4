//! Grants: `vault grants`, `vault grant show`, `vault grant release`,
//! `vault revoke`, and `vault grant verify` (offline: no network, only the
//! CA certificate).

use std::path::Path;

use pki::{GrantId, Identity};
use serde_json::json;
use vault_client::{ClientError, ErrorCode, VaultClient};

use crate::args::PageArgs;
use crate::human;
use crate::output::{with_cursor, CommandResult};

/// `vault grants [--limit N] [--cursor C]`: the grants the caller gave
/// (resident) or holds (department), every page or the one asked for.
pub async fn list(client: &VaultClient, page: &PageArgs) -> CommandResult {
    let (grants, next_cursor) = if page.single() {
        let one = client.grants_page(page.cursor.clone(), page.limit).await?;
        (one.items, Some(one.next_cursor))
    } else {
        (client.grants().await?, None)
    };
    let now = vault_client::client::now_unix();
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            let state = if g.revoked {
                "revoked"
            } else if g.uses >= g.max_uses {
                "all uses spent"
            } else if now > g.not_after {
                "expired"
            } else if now < g.not_before {
                "not yet valid"
            } else {
                "active"
            };
            vec![
                g.grant_id.to_string(),
                g.resident.to_string(),
                g.grantee.to_string(),
                g.purpose.to_string(),
                format!("{} of {}", g.uses, g.max_uses),
                human::time(g.not_after),
                state.to_string(),
            ]
        })
        .collect();
    let mut text = if rows.is_empty() {
        "no grants".to_string()
    } else {
        human::table(
            &[
                "GRANT",
                "RESIDENT",
                "DEPARTMENT",
                "PURPOSE",
                "USES",
                "UNTIL",
                "STATE",
            ],
            &rows,
        )
    };
    let mut value = json!({"grants": grants});
    with_cursor(&mut value, next_cursor, &mut text);
    Ok((value, text.trim_end().to_string()))
}

/// `vault grant show ID [-o FILE]`: with `-o`, the sealed grant is saved
/// for offline checks.
pub async fn show(client: &VaultClient, grant_id: GrantId, output: Option<&Path>) -> CommandResult {
    let (view, sealed) = client.show_grant(grant_id).await?;
    if let Some(path) = output {
        let text = sealed.to_json()?;
        std::fs::write(path, text).map_err(|e| {
            ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", path.display()))
        })?;
    }
    let text = serde_json::to_string_pretty(&view).unwrap_or_default();
    Ok((json!({"grant": view, "sealed": sealed}), text))
}

/// `vault revoke ID` (the resident) and `vault grant release ID` (the holder).
pub async fn revoke(client: &VaultClient, grant_id: GrantId) -> CommandResult {
    client.revoke_grant(grant_id).await?;
    Ok((
        json!({"grant_id": grant_id, "revoked": true}),
        format!("grant {grant_id} revoked"),
    ))
}

/// `vault grant verify FILE`: no network, only the CA certificate.
pub fn verify_offline(
    identity: Option<&Identity>,
    file: &Path,
    ca: Option<&Path>,
) -> CommandResult {
    let local = |e: std::io::Error, p: &Path| {
        ClientError::local(ErrorCode::LocalIo, format!("{}: {e}", p.display()))
    };
    let bytes = std::fs::read(file).map_err(|e| local(e, file))?;
    let grant = pki::Grant::from_json(&bytes).map_err(|e| ClientError::Refused {
        code: ErrorCode::GrantMalformed.as_str().to_string(),
        message: e.to_string(),
    })?;
    let ca_der = match (ca, identity) {
        (Some(path), _) => pki::read_certificate_pem(path)?,
        (None, Some(identity)) => identity.ca_der().to_vec(),
        (None, None) => return Err(ClientError::local(
            ErrorCode::InvalidArgument,
            "no CA to check the grant against: pass --ca CA.pem (or --identity DIR for its ca.pem)",
        )),
    };
    let verified = grant.verify(&ca_der, &[]).map_err(|e| {
        let code = match e.code() {
            "pki.bad_signature" | "pki.issuer_mismatch" => ErrorCode::GrantBadSignature,
            "pki.untrusted" | "pki.bad_certificate" => ErrorCode::GrantUntrusted,
            _ => ErrorCode::GrantMalformed,
        };
        ClientError::Refused {
            code: code.as_str().to_string(),
            message: e.to_string(),
        }
    })?;
    let now = vault_client::client::now_unix();
    let body = &grant.body;
    let window = if now < body.not_before {
        "not_yet_valid"
    } else if now > body.not_after {
        "expired"
    } else {
        "valid"
    };
    let value = json!({
        "grant_id": verified.id,
        "valid_signatures": true,
        "resident": verified.resident.name.as_str(),
        "sealed_by": verified.node.name.as_str(),
        "grantee": body.grantee.as_str(),
        "purpose": body.purpose.as_str(),
        "documents": body.documents,
        "not_before": body.not_before,
        "not_after": body.not_after,
        "max_uses": body.max_uses,
        "window": window,
    });
    let text = format!(
        "grant {}: signatures valid (consent by {}, sealed by {}); {} for {}, window {}",
        verified.id, verified.resident.name, verified.node.name, body.grantee, body.purpose, window
    );
    Ok((value, text))
}
