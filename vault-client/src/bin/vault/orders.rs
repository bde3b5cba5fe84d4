//! Access by law: a department's `vault order`, an authority's
//! `vault order approve|deny|extend`, anyone's `vault order show` and
//! `vault orders` (the orders they may see), and the rows `vault accesses`
//! shows for a disclosed order.

use serde_json::{json, Value};
use vault_client::order_client::{Disclosed, OrderRequest};
use vault_client::wire::OrderView;
use vault_client::{ClientError, ErrorCode, VaultClient};

use crate::args::{OrderArgs, OrderCommand, PageArgs};
use crate::human;
use crate::output::{with_cursor, CommandResult};

/// `vault order …`: file one (the flags), or decide on one.
pub async fn order(client: &VaultClient, args: OrderArgs) -> CommandResult {
    match args.command {
        Some(OrderCommand::Approve { order_id, max_uses }) => {
            let grant = client.approve_order(order_id, max_uses).await?;
            let id = grant.id();
            let text = format!(
                "grant {id}: {} may fetch {} document(s) {} time(s) until {}, by law (order {order_id})",
                grant.body.grantee,
                grant.body.documents.len(),
                grant.body.max_uses,
                human::time(grant.body.not_after),
            );
            Ok((
                json!({"grant_id": id, "order_id": order_id, "documents": grant.body.documents, "not_after": grant.body.not_after, "max_uses": grant.body.max_uses}),
                text,
            ))
        }
        Some(OrderCommand::Deny { order_id }) => {
            client.deny_order(order_id).await?;
            Ok((
                json!({"order_id": order_id, "denied": true}),
                format!("order {order_id} denied"),
            ))
        }
        Some(OrderCommand::Extend { order_id, seal }) => {
            let until = vault_client::client::now_unix().saturating_add(seal as i64);
            let seal_until = client.extend_seal(order_id, until).await?;
            Ok((
                json!({"order_id": order_id, "seal_until": seal_until}),
                format!(
                    "order {order_id} stays sealed until {}",
                    human::time(seal_until)
                ),
            ))
        }
        Some(OrderCommand::Show { order_id }) => {
            let order = client.show_order(order_id).await?;
            let text = order_line(&order);
            Ok((json!({"order": order}), text))
        }
        None => file(client, args).await,
    }
}

async fn file(client: &VaultClient, args: OrderArgs) -> CommandResult {
    let missing = |what: &str| {
        ClientError::local(
            ErrorCode::InvalidArgument,
            format!("vault order needs {what}"),
        )
    };
    let scope = if !args.documents.is_empty() {
        pki::RequestScope::Documents(args.documents)
    } else if !args.kinds.is_empty() {
        pki::RequestScope::Kinds(args.kinds)
    } else {
        return Err(missing("--kinds or --documents"));
    };
    let resident = args.resident.ok_or_else(|| missing("--resident"))?;
    let request = OrderRequest {
        resident: resident.clone(),
        scope,
        purpose: args.purpose.ok_or_else(|| missing("--purpose"))?,
        case_ref: args.case_ref.ok_or_else(|| missing("--case"))?,
        seal_s: args.seal.ok_or_else(|| missing("--seal"))?,
        ttl_s: args.ttl.ok_or_else(|| missing("--ttl"))?,
        issuer: args.issuer,
    };
    let order_id = client.file_order(request).await?;
    Ok((
        json!({"order_id": order_id}),
        format!("order {order_id} filed for {resident}; sealed, waiting for approval"),
    ))
}

/// `vault orders [--limit N] [--cursor C]`.
pub async fn list(client: &VaultClient, page: &PageArgs) -> CommandResult {
    let (orders, next_cursor) = if page.single() {
        let one = client.orders_page(page.cursor.clone(), page.limit).await?;
        (one.items, Some(one.next_cursor))
    } else {
        (client.orders().await?, None)
    };
    let mut text = String::new();
    for o in &orders {
        text.push_str(&order_line(o));
        text.push('\n');
    }
    if orders.is_empty() {
        text.push_str("no orders");
    }
    let mut value = json!({"orders": orders});
    with_cursor(&mut value, next_cursor, &mut text);
    Ok((value, text.trim_end().to_string()))
}

/// One order for people.
fn order_line(o: &OrderView) -> String {
    let decided = match (&o.decided_by, o.decided_at) {
        (Some(by), Some(at)) => format!(" by {by} at {}", human::time(at)),
        _ => String::new(),
    };
    let disclosed = match o.disclosed_at {
        Some(at) => format!("; disclosed {}", human::time(at)),
        None => format!("; sealed until {}", human::time(o.seal_until)),
    };
    format!(
        "{}  {} orders {} document(s) of {} for {} ({}), case {}: {}{decided}{disclosed}",
        o.order_id,
        o.department,
        o.documents.len(),
        o.resident,
        o.purpose,
        o.legal_basis,
        o.case_ref,
        o.status,
    )
}

/// The rows `vault accesses` shows for one disclosed order: its sealed
/// entries (fetches only unless `all`), each by law, with the legal basis,
/// the case, who authorised the order and when, and when it was disclosed.
pub fn by_law_rows(d: &Disclosed, all: bool) -> Vec<(u64, Value, String)> {
    let authorised = d
        .entries
        .iter()
        .find(|s| s.entry.event == pki::LogEvent::OrderApproved)
        .map(|s| (s.entry.actor_role, s.entry.actor.clone(), s.entry.time));
    let mut rows = Vec::new();
    for s in &d.entries {
        let e = &s.entry;
        if !all && e.event != pki::LogEvent::Fetch {
            continue;
        }
        let item = json!({
            "log_index": s.index,
            "event": e.event,
            "time": e.time,
            "actor_role": e.actor_role,
            "department": if e.actor_role == pki::Role::Department { Some(&e.actor) } else { None },
            "document_id": e.document_id,
            "kind": s.detail.kind,
            "purpose": d.order.purpose,
            "grant_id": e.grant_id,
            "use_number": e.use_number,
            "code": e.code,
            "by_law": true,
            "order_id": d.order.order_id,
            "legal_basis": d.order.legal_basis,
            "case_ref": d.order.case_ref,
            "authorised_by": authorised.as_ref().map(|a| &a.1),
            "authorised_role": authorised.as_ref().map(|a| a.0),
            "authorised_at": authorised.as_ref().map(|a| a.2),
            "disclosed_log_index": d.index,
            "verified": true,
        });
        let by = match &authorised {
            Some((_, name, at)) => format!("authorised by {name} {}", human::time(*at)),
            None => "not authorised".to_string(),
        };
        let line = format!(
            "{}  BY LAW ({}; case {}; {by})",
            crate::audit::entry_line(s.index, e, &s.detail),
            d.order.legal_basis,
            d.order.case_ref,
        );
        rows.push((s.index, item, line));
    }
    rows
}
