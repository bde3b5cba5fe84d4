//! Consent: a department's `vault request`, a resident's `vault requests`,
//! `vault approve` and `vault deny`.

use pki::{DocumentKind, Purpose, RequestId, RequestScope, ResidentId};
use serde_json::json;
use vault_client::{DocumentId, VaultClient};

use crate::args::PageArgs;
use crate::human;
use crate::output::{with_cursor, CommandResult};

/// The scope `vault request` asks for: the documents if any, else the kinds.
pub fn scope(documents: Vec<DocumentId>, kinds: Vec<DocumentKind>) -> RequestScope {
    if documents.is_empty() {
        RequestScope::Kinds(kinds)
    } else {
        RequestScope::Documents(documents)
    }
}

/// `vault request --resident R (--documents ..|--kinds .. [--issuer D]) --purpose P --ttl T`.
pub async fn request(
    client: &VaultClient,
    resident: &ResidentId,
    scope: RequestScope,
    purpose: &Purpose,
    ttl: u64,
    issuer: Option<pki::Name>,
) -> CommandResult {
    let request_id = client
        .request_access_from(resident, scope, purpose, ttl, issuer)
        .await?;
    let text = format!("request {request_id} sent to {resident}");
    Ok((json!({"request_id": request_id}), text))
}

/// `vault requests [--limit N] [--cursor C]`: the pending requests
/// addressed to the resident (every page, or the one asked for).
pub async fn requests(client: &VaultClient, page: &PageArgs) -> CommandResult {
    let (requests, next_cursor) = if page.single() {
        let one = client
            .pending_requests_page(page.cursor.clone(), page.limit)
            .await?;
        (one.items, Some(one.next_cursor))
    } else {
        (client.pending_requests().await?, None)
    };
    let mut text = String::new();
    for r in &requests {
        text.push_str(&format!(
            "{}  {} asks for {} document(s) for {} ({}; {}), access for {}; asked {}{}\n",
            r.request_id,
            r.department,
            r.documents.len(),
            r.purpose,
            r.purpose_description,
            r.legal_basis,
            human::duration(r.ttl_s),
            human::time(r.created_at),
            r.expires_at
                .map(|at| format!(", open until {}", human::time(at)))
                .unwrap_or_default()
        ));
        for d in &r.documents {
            text.push_str(&format!(
                "    {} {} issued by {}\n",
                d.document_id, d.kind, d.issuer
            ));
        }
    }
    if requests.is_empty() {
        text.push_str("no pending requests");
    }
    let mut value = json!({"requests": requests});
    with_cursor(&mut value, next_cursor, &mut text);
    Ok((value, text.trim_end().to_string()))
}

/// `vault approve ID [--max-uses N] [--ttl T]`.
pub async fn approve(
    client: &VaultClient,
    request_id: RequestId,
    max_uses: u32,
    ttl: Option<u64>,
) -> CommandResult {
    // Looked up by id, whatever page of `vault requests` it is on.
    let request = client.pending_request(request_id).await?;
    let body = client.approval_body(&request, max_uses, ttl)?;
    let grant = client.approve(body).await?;
    let id = grant.id();
    let text = format!(
        "grant {id}: {} may fetch {} document(s) {} time(s) until {} ({} from now)",
        grant.body.grantee,
        grant.body.documents.len(),
        grant.body.max_uses,
        human::time(grant.body.not_after),
        human::duration((grant.body.not_after - vault_client::client::now_unix()).max(0) as u64)
    );
    Ok((
        json!({"grant_id": id, "request_id": request_id, "documents": grant.body.documents, "not_after": grant.body.not_after, "max_uses": grant.body.max_uses}),
        text,
    ))
}

/// `vault deny ID`.
pub async fn deny(client: &VaultClient, request_id: RequestId) -> CommandResult {
    client.deny(request_id).await?;
    Ok((
        json!({"request_id": request_id, "denied": true}),
        format!("request {request_id} denied"),
    ))
}
