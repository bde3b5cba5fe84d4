//! Access by law: statutory orders filed by departments, approved (or
//! denied) by authorities, their seals extended by authorities, disclosed
//! to residents by the node itself once the seal ends
//! ([`disclose_due`], run by [`disclose_loop`]), and the resident's
//! reading of a disclosed order with its sealed log entries and their
//! proofs. The rules are the purpose registry's `statutory` entries; every
//! change is a [`Command`] through the state machine, so a refusal changes
//! no state.

use std::sync::Arc;
use std::time::Duration;

use pki::{GrantBody, Order, PeerCert, RequestId, ResidentId, Role, SealExtension, Signature};
use vault_client::merkle;
use vault_client::wire::{AccessRecord, OrderView, PageFill, Request, Response, PAGE_LEN_MAX};
use vault_client::ErrorCode;

use crate::engine::log;
use crate::engine::meta::Cf;
use crate::engine::orders::{self, OrderEntry, OrderStatus};
use crate::engine::state::{self, Applied, Command, GrantEntry, RequestEntry, RequestStatus, Step};
use crate::rules::access::require_role;
use crate::rules::grants::{self, GRANT_SKEW_S};
use crate::service::consent::{resolve_scope, Consent};
use crate::service::transparency::{self, Transparency};
use crate::Refusal;

/// How often the node looks for orders whose seal ended, in milliseconds.
pub const DISCLOSE_INTERVAL_MS: u64 = 1_000;

/// What the order handlers use: the consent context (storage, consensus,
/// clock, registries, the node's identity) and the transparency log's
/// (checkpoints and proofs for disclosures).
pub type OrdersCtx<'a> = (&'a Consent, &'a Transparency);

/// Handles every order request.
pub async fn handle(
    (ctx, log_ctx): OrdersCtx<'_>,
    caller: &PeerCert,
    caller_der: &[u8],
    request: Request,
) -> Result<Response, Refusal> {
    match request {
        Request::FileOrder {
            order,
            signature,
            issuer,
        } => file(ctx, caller, order, signature, issuer).await,
        Request::Orders { cursor, limit } => list(ctx, caller, cursor.as_deref(), limit),
        Request::ShowOrder { order_id } => Ok(Response::OrderDetail {
            order: view(&visible(ctx, caller, order_id)?),
        }),
        Request::ApproveOrder {
            order_id,
            body,
            approval,
        } => approve(ctx, caller, caller_der, order_id, body, approval).await,
        Request::DenyOrder { order_id } => deny(ctx, caller, order_id).await,
        Request::ExtendSeal {
            extension,
            signature,
        } => extend(ctx, caller, extension, signature).await,
        Request::Disclosure {
            order_id,
            tree_size,
        } => disclosure(ctx, log_ctx, caller, order_id, tree_size).await,
        other => Err(Refusal::new(
            ErrorCode::Internal,
            format!("unrouted request {other:?}"),
        )),
    }
}

fn statement_refusal(e: pki::PkiError) -> Refusal {
    let code = if e.code() == "pki.malformed_statement" {
        ErrorCode::InvalidArgument
    } else {
        ErrorCode::BadSignature
    };
    Refusal::new(code, e.to_string())
}

/// The registry's statutory rules for `purpose`, refused when the purpose
/// is unknown or not statutory.
fn statutory<'a>(
    ctx: &'a Consent,
    purpose: &pki::Purpose,
) -> Result<(&'a grants::PurposeInfo, &'a vault_client::wire::Statutory), Refusal> {
    let info = ctx.purposes.get(purpose)?;
    let rules = info.statutory.as_ref().ok_or_else(|| {
        Refusal::new(
            ErrorCode::OrderNotStatutory,
            format!(
                "purpose {purpose} is not statutory: access to it needs the resident's consent (vault request)"
            ),
        )
    })?;
    Ok((info, rules))
}

async fn file(
    ctx: &Consent,
    caller: &PeerCert,
    order: Order,
    signature: Signature,
    issuer: Option<pki::Name>,
) -> Result<Response, Refusal> {
    require_role(caller, Role::Department, "file orders")?;
    order
        .verify(&signature, caller)
        .map_err(statement_refusal)?;
    let (info, rules) = statutory(ctx, &order.purpose)?;
    if !rules.departments.contains(&caller.name) {
        return Err(Refusal::new(
            ErrorCode::OrderDepartmentNotAllowed,
            format!(
                "the registry does not let {} invoke purpose {}",
                caller.name, order.purpose
            ),
        ));
    }
    if order.ttl_s > info.ttl_s_max {
        return Err(Refusal::new(
            ErrorCode::TtlTooLong,
            format!(
                "purpose {} allows at most {} s of access; ask for less",
                info.code, info.ttl_s_max
            ),
        ));
    }
    if order.seal_s == 0 || order.seal_s > rules.seal_s_max {
        return Err(Refusal::new(
            ErrorCode::OrderSealTooLong,
            format!(
                "purpose {} allows a seal of 1 to {} s, not {}",
                info.code, rules.seal_s_max, order.seal_s
            ),
        ));
    }
    ctx.consensus.linearize().await?;
    let documents = resolve_scope(ctx, &order.resident, &order.scope, issuer.as_ref())?;
    let now = ctx.clock.now_unix();
    let order_id = order.id(&signature);
    let seal_s = i64::try_from(order.seal_s).unwrap_or(i64::MAX);
    let entry = OrderEntry {
        order_id,
        department_key_id: caller.key_id,
        department_serial: caller.serial_hex.clone(),
        documents,
        recorded_at: now,
        seal_until: now.saturating_add(seal_s),
        legal_basis: info.legal_basis.clone(),
        authority_required: rules.authority_required,
        status: OrderStatus::Pending,
        disclosed_at: None,
        order,
        signature,
    };
    ctx.consensus
        .submit(Command::RecordOrder(entry), &*ctx.clock)
        .await?;
    tracing::info!(department = %caller.name, "statutory order recorded");
    Ok(Response::OrderFiled { order_id })
}

/// An order the caller may see: its department, any authority, auditors.
fn visible(ctx: &Consent, caller: &PeerCert, id: RequestId) -> Result<OrderEntry, Refusal> {
    let entry = orders::order(ctx.vault.store(), id)
        .map_err(Refusal::from)?
        .ok_or_else(|| Refusal::new(ErrorCode::OrderNotFound, format!("no order {id}")))?;
    let allowed = match caller.role {
        Role::Authority | Role::Auditor => true,
        Role::Department => caller.name == entry.order.department,
        _ => false,
    };
    if !allowed {
        // Same answer as a missing order: do not confirm it exists.
        return Err(Refusal::new(
            ErrorCode::OrderNotFound,
            format!("no order {id}"),
        ));
    }
    Ok(entry)
}

/// The order as its parties see it.
pub fn view(entry: &OrderEntry) -> OrderView {
    let (status, grant_id, by, role, at) = match &entry.status {
        OrderStatus::Pending => ("pending", None, None, None, None),
        OrderStatus::Approved {
            grant_id,
            by,
            role,
            at,
        } => (
            "approved",
            Some(*grant_id),
            Some(by.clone()),
            Some(role.as_str().to_string()),
            Some(*at),
        ),
        OrderStatus::Denied { by, at } => (
            "denied",
            None,
            Some(by.clone()),
            Some(Role::Authority.as_str().to_string()),
            Some(*at),
        ),
    };
    OrderView {
        order_id: entry.order_id,
        resident: entry.order.resident.clone(),
        department: entry.order.department.clone(),
        department_key_id: hex::encode(entry.department_key_id),
        purpose: entry.order.purpose.clone(),
        legal_basis: entry.legal_basis.clone(),
        case_ref: entry.order.case_ref.clone(),
        documents: entry.documents.clone(),
        ttl_s: entry.order.ttl_s,
        recorded_at: entry.recorded_at,
        seal_until: entry.seal_until,
        authority_required: entry.authority_required,
        status: status.to_string(),
        grant_id,
        decided_by: by,
        decided_role: role,
        decided_at: at,
        disclosed_at: entry.disclosed_at,
    }
}

/// One page of the orders the caller may see (a department its own,
/// authorities and auditors every one), in key order.
fn list(
    ctx: &Consent,
    caller: &PeerCert,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Response, Refusal> {
    let prefix = match caller.role {
        Role::Department => orders::by_prefix(&caller.name),
        Role::Authority | Role::Auditor => orders::ORDER_PREFIX.to_vec(),
        _ => {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "only departments, authorities and auditors list orders; residents see disclosed ones with `vault accesses`",
            ))
        }
    };
    let store = ctx.vault.store();
    let from = state::page_from(cursor)?;
    let fill = PageFill::new(limit, PAGE_LEN_MAX);
    let page = state::page(
        store,
        Cf::Meta,
        &prefix,
        from.as_deref(),
        fill,
        &mut |key| {
            let id = RequestId::from_bytes(state::tail_id(key)?);
            Ok(match orders::order(store, id)? {
                Some(entry) => Step::Item(view(&entry)),
                None => Step::Skip,
            })
        },
    )?;
    Ok(Response::Orders {
        orders: page.items,
        next_cursor: page.next_cursor,
    })
}

/// A pending order, for a decision.
/// Anyone but an authority or the ordering department is told only that
/// there is no such order, whatever its state (no existence oracle).
fn pending(ctx: &Consent, caller: &PeerCert, id: RequestId) -> Result<OrderEntry, Refusal> {
    let party = |entry: &OrderEntry| {
        caller.role == Role::Authority
            || (caller.role == Role::Department && caller.name == entry.order.department)
    };
    let entry = orders::order(ctx.vault.store(), id)
        .map_err(Refusal::from)?
        .filter(party)
        .ok_or_else(|| Refusal::new(ErrorCode::OrderNotFound, format!("no order {id}")))?;
    if entry.status != OrderStatus::Pending {
        return Err(Refusal::new(
            ErrorCode::OrderAlreadyDecided,
            format!("order {id} was already decided"),
        ));
    }
    // Decided after its disclosure, an order's approval and grant would
    // be sealed entries no disclosure ever names.
    if !entry.sealed() {
        return Err(Refusal::new(
            ErrorCode::OrderDisclosed,
            format!("order {id} was disclosed undecided; file a new order"),
        ));
    }
    Ok(entry)
}

/// Who may approve `entry`: an authority always; the ordering department
/// itself only where the purpose needs no authority.
fn check_approver(caller: &PeerCert, entry: &OrderEntry) -> Result<(), Refusal> {
    match caller.role {
        Role::Authority => Ok(()),
        Role::Department if caller.name == entry.order.department => {
            if entry.authority_required {
                Err(Refusal::new(
                    ErrorCode::OrderNeedsAuthority,
                    format!(
                        "purpose {} requires an authority (e.g. a court) to approve each order; ask one to run `vault order approve {}`",
                        entry.order.purpose, entry.order_id
                    ),
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(Refusal::new(
            ErrorCode::Forbidden,
            "only authorities approve or deny orders",
        )),
    }
}

/// The order seen as the request it stands for, so the consent rules'
/// [`grants::check_approval`] bounds its grant.
fn as_request(entry: &OrderEntry) -> RequestEntry {
    RequestEntry {
        request_id: entry.order_id,
        request: pki::AccessRequest {
            resident: entry.order.resident.clone(),
            department: entry.order.department.clone(),
            scope: entry.order.scope.clone(),
            purpose: entry.order.purpose.clone(),
            ttl_s: entry.order.ttl_s,
            created_at: entry.order.created_at,
            nonce: entry.order.nonce,
        },
        signature: entry.signature,
        department_key_id: entry.department_key_id,
        department_serial: entry.department_serial.clone(),
        documents: entry.documents.clone(),
        status: RequestStatus::Pending,
        expires_at: None,
    }
}

async fn approve(
    ctx: &Consent,
    caller: &PeerCert,
    caller_der: &[u8],
    order_id: RequestId,
    body: GrantBody,
    approval: Signature,
) -> Result<Response, Refusal> {
    let entry = pending(ctx, caller, order_id)?;
    check_approver(caller, &entry)?;
    let now = ctx.clock.now_unix();
    grants::check_approval(&as_request(&entry), &body, now)?;
    pki::verify_signature(&caller.public_key, &body.canonical_bytes(), &approval)
        .map_err(grants::grant_refusal)?;
    let grant = pki::Grant::seal(body, approval, caller_der.to_vec(), &ctx.identity);
    let stored = GrantEntry {
        grant: grant.clone(),
        grantee_serial: entry.department_serial.clone(),
        issued_at: now,
        uses: 0,
        revoked: None,
    };
    let command = Command::ApproveOrder {
        order_id,
        grant: stored,
        by: caller.name.clone(),
        role: caller.role,
    };
    ctx.consensus.submit(command, &*ctx.clock).await?;
    tracing::info!(by = %caller.name, role = caller.role.as_str(), "statutory order approved");
    Ok(Response::GrantIssued { grant })
}

async fn deny(ctx: &Consent, caller: &PeerCert, order_id: RequestId) -> Result<Response, Refusal> {
    require_role(caller, Role::Authority, "deny orders")?;
    pending(ctx, caller, order_id)?;
    let command = Command::DenyOrder {
        order_id,
        by: caller.name.clone(),
        at: ctx.clock.now_unix(),
    };
    ctx.consensus.submit(command, &*ctx.clock).await?;
    tracing::info!(by = %caller.name, "statutory order denied");
    Ok(Response::OrderDenied { order_id })
}

async fn extend(
    ctx: &Consent,
    caller: &PeerCert,
    extension: SealExtension,
    signature: Signature,
) -> Result<Response, Refusal> {
    require_role(caller, Role::Authority, "extend seals")?;
    extension
        .verify(&signature, caller)
        .map_err(statement_refusal)?;
    let order_id = extension.order_id;
    let entry = orders::order(ctx.vault.store(), order_id)
        .map_err(Refusal::from)?
        .ok_or_else(|| Refusal::new(ErrorCode::OrderNotFound, format!("no order {order_id}")))?;
    let (info, rules) = statutory(ctx, &entry.order.purpose)?;
    let now = ctx.clock.now_unix();
    if extension.signed_at.saturating_sub(now).saturating_abs() > GRANT_SKEW_S {
        return Err(Refusal::new(
            ErrorCode::ClockSkew,
            format!(
                "the extension was signed at {}, the node's time is {now}",
                extension.signed_at
            ),
        ));
    }
    let seal_s_max = i64::try_from(rules.seal_s_max).unwrap_or(i64::MAX);
    // Bounded in all: never sealed longer than the registry allows from
    // the order's filing, however many extensions are chained.
    if extension.seal_until.saturating_sub(entry.recorded_at) > seal_s_max {
        return Err(Refusal::new(
            ErrorCode::OrderSealTooLong,
            format!(
                "purpose {} allows an order to stay sealed at most {} s from its filing",
                info.code, rules.seal_s_max
            ),
        ));
    }
    if extension.seal_until.saturating_sub(extension.signed_at) > seal_s_max {
        return Err(Refusal::new(
            ErrorCode::OrderSealTooLong,
            format!(
                "purpose {} allows a seal of at most {} s from each authority signature",
                info.code, rules.seal_s_max
            ),
        ));
    }
    let seal_until = extension.seal_until;
    let command = Command::ExtendSeal {
        extension,
        signature,
        by: caller.name.clone(),
    };
    ctx.consensus.submit(command, &*ctx.clock).await?;
    tracing::info!(by = %caller.name, "seal extended");
    Ok(Response::SealExtended {
        order_id,
        seal_until,
    })
}

/// A disclosed order and its sealed entries with proofs, for the resident
/// it concerns (refused as not found to anyone else, and as sealed to the
/// resident before the disclosure).
async fn disclosure(
    ctx: &Consent,
    log_ctx: &Transparency,
    caller: &PeerCert,
    order_id: RequestId,
    tree_size: Option<u64>,
) -> Result<Response, Refusal> {
    require_role(caller, Role::Resident, "read disclosures")?;
    let resident = ResidentId::parse(caller.name.as_str())?;
    let store = ctx.vault.store();
    let not_found = || Refusal::new(ErrorCode::OrderNotFound, format!("no order {order_id}"));
    let entry = orders::order(store, order_id)
        .map_err(Refusal::from)?
        .filter(|e| e.order.resident == resident)
        .ok_or_else(not_found)?;
    if entry.sealed() {
        // Only reachable by guessing an id: a sealed order is in no
        // answer the resident gets.
        return Err(not_found());
    }
    let (current, _, note) = transparency::checkpoint(log_ctx).await?;
    let size = tree_size.unwrap_or(current);
    if size > current {
        return Err(Refusal::new(
            ErrorCode::LogRange,
            format!("the log's checkpoint has {current} entries, not {size}"),
        ));
    }
    let storage =
        |e: crate::engine::meta::StoreError| Refusal::new(ErrorCode::Storage, e.to_string());
    let mut entries = Vec::new();
    for index in orders::sealed_indices(store, order_id).map_err(Refusal::from)? {
        if index >= size {
            break;
        }
        let Some((bytes, detail)) = log::entry_with_detail(store, index).map_err(storage)? else {
            continue;
        };
        let proof = merkle::inclusion_proof(index, size, &mut |s, l| log::subtree(store, s, l))?;
        entries.push(AccessRecord {
            index,
            entry: hex::encode(bytes),
            detail,
            inclusion_proof: proof.iter().map(hex::encode).collect(),
        });
    }
    Ok(Response::Disclosure {
        note,
        order: view(&entry),
        entries,
    })
}

/// Proposes the disclosure of every order whose seal ended by now;
/// answers how many it disclosed. In a cluster only the leader proposes
/// (a follower's proposal would be forwarded all the same; the command is
/// idempotent, so a race between two leaders adds nothing twice).
pub async fn disclose_due(ctx: &Consent) -> Result<usize, Refusal> {
    if let Some(cluster) = ctx.consensus.cluster() {
        if cluster.leader() != Some(cluster.id()) {
            return Ok(0);
        }
    }
    let now = ctx.clock.now_unix();
    let due = orders::due(&*ctx.consensus.view(), now).map_err(Refusal::from)?;
    let mut disclosed = 0;
    for order_id in due {
        let command = Command::DiscloseOrder { order_id, at: now };
        // One order that cannot be disclosed must not hold back the others.
        match ctx.consensus.submit(command, &*ctx.clock).await {
            Ok(Applied::OrderDisclosed { disclosed: true }) => disclosed += 1,
            Ok(_) => {}
            Err(refusal) => {
                tracing::warn!(%order_id, code = %refusal.code, "disclosing an order failed; trying again");
            }
        }
    }
    if disclosed > 0 {
        tracing::info!(orders = disclosed, "statutory orders disclosed");
    }
    Ok(disclosed)
}

/// Runs [`disclose_due`] every [`DISCLOSE_INTERVAL_MS`], for as long as
/// the node runs.
pub async fn disclose_loop(ctx: Arc<Consent>) {
    let mut tick = tokio::time::interval(Duration::from_millis(DISCLOSE_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(refusal) = disclose_due(&ctx).await {
            tracing::warn!(code = %refusal.code, "disclosing orders failed; trying again");
        }
    }
}
