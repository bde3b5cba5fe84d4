//! Consent handlers: departments request access, residents approve, deny
//! and revoke, departments fetch under grants. Each decision is made by the
//! pure rules in [`crate::rules::access`] and [`crate::rules::grants`]; each change goes
//! through the state machine as a [`Command`], so a refusal changes no state.

use std::sync::Arc;

use pki::{
    AccessRequest, GrantBody, GrantId, GrantedDocument, Identity, PeerCert, RequestId,
    RequestScope, Role, Signature,
};
use vault_client::wire::{
    GrantView, PageFill, Request, RequestView, RequestedDocument, Response, PAGE_LEN_MAX,
};
use vault_client::ErrorCode;

use crate::consensus::Consensus;
use crate::engine::meta::Cf;
use crate::engine::state::{
    self, Applied, Command, DocumentEntry, GrantEntry, GrantSide, RequestEntry, RequestStatus, Step,
};
use crate::rules::access::require_role;
use crate::rules::clock::Clock;
use crate::rules::grants::{self, GrantCache, PurposeRegistry};
use crate::rules::issuers::IssuerRegistry;
use crate::rules::refusals::RefusalBudget;
use crate::storage::vault::Vault;
use crate::Refusal;

/// What the consent handlers use: the node's storage, how commands become
/// durable, the clock, the purpose registry, the cache of verified grant
/// signatures and the node's identity (it seals grants).
pub struct Consent {
    /// This node's storage (reads, revoked serials, CRLs).
    pub vault: Arc<Vault>,
    /// How commands become durable.
    pub consensus: Arc<Consensus>,
    /// The clock decisions are made against.
    pub clock: Arc<dyn Clock>,
    /// The registered purposes.
    pub purposes: PurposeRegistry,
    /// Which department may issue which kinds.
    pub issuers: IssuerRegistry,
    /// Grants whose signatures verified.
    pub grant_cache: GrantCache,
    /// How many refusal entries each caller may still add to the log.
    pub refusals: RefusalBudget,
    /// The node's identity: its key seals grants.
    pub identity: Arc<Identity>,
}

/// Handles every consent-related request.
pub async fn handle(
    ctx: &Consent,
    caller: &PeerCert,
    caller_der: &[u8],
    request: Request,
) -> Result<Response, Refusal> {
    match request {
        Request::CreateRequest {
            request,
            signature,
            issuer,
        } => create_request(ctx, caller, request, signature, issuer).await,
        Request::PendingRequests { cursor, limit } => {
            pending(ctx, caller, cursor.as_deref(), limit)
        }
        Request::ShowRequest { request_id } => show_request(ctx, caller, request_id),
        Request::Approve {
            request_id,
            body,
            consent,
        } => approve(ctx, caller, caller_der, request_id, body, consent).await,
        Request::Deny { request_id } => deny(ctx, caller, request_id).await,
        Request::Grants { cursor, limit } => list_grants(ctx, caller, cursor.as_deref(), limit),
        Request::ShowGrant { grant_id } => show_grant(ctx, caller, grant_id),
        Request::RevokeGrant { grant_id } => revoke(ctx, caller, grant_id).await,
        other => Err(Refusal::new(
            ErrorCode::Internal,
            format!("unrouted request {other:?}"),
        )),
    }
}

/// Applies a command (see [`Consensus::submit`]).
async fn submit(ctx: &Consent, command: Command) -> Result<Applied, Refusal> {
    ctx.consensus.submit(command, &*ctx.clock).await
}

async fn create_request(
    ctx: &Consent,
    caller: &PeerCert,
    request: AccessRequest,
    signature: Signature,
    issuer: Option<pki::Name>,
) -> Result<Response, Refusal> {
    require_role(caller, Role::Department, "make access requests")?;
    request.verify(&signature, caller).map_err(|e| {
        let code = if e.code() == "pki.malformed_statement" {
            ErrorCode::InvalidArgument
        } else {
            ErrorCode::BadSignature
        };
        Refusal::new(code, e.to_string())
    })?;
    let purpose = ctx.purposes.get(&request.purpose)?;
    if request.ttl_s > purpose.ttl_s_max {
        return Err(Refusal::new(
            ErrorCode::TtlTooLong,
            format!(
                "purpose {} allows at most {} s of access; ask for less",
                purpose.code, purpose.ttl_s_max
            ),
        ));
    }
    // A follower may not have applied a document just registered through
    // another node: catch up before resolving, or the request would
    // resolve to nothing (a no-op on a single node).
    ctx.consensus.linearize().await?;
    let documents = resolve(ctx, &request, issuer.as_ref())?;
    let request_id = request.id(&signature);
    let expires_at = state::request_expiry(ctx.clock.now_unix(), request.ttl_s);
    let entry = RequestEntry {
        request_id,
        department_key_id: caller.key_id,
        department_serial: caller.serial_hex.clone(),
        documents,
        status: RequestStatus::Pending,
        expires_at: Some(expires_at),
        request,
        signature,
    };
    let scope = scope_kind(&entry.request.scope);
    submit(ctx, Command::RecordRequest(entry)).await?;
    tracing::info!(department = %caller.name, scope, "access request recorded");
    Ok(Response::RequestCreated { request_id })
}

/// How a request names its documents, for log lines (never which ones).
fn scope_kind(scope: &RequestScope) -> &'static str {
    match scope {
        RequestScope::Documents(_) => "documents",
        RequestScope::Kinds(_) => "kinds",
    }
}

/// Turns a request's scope into exact documents of that resident. Ids and
/// kinds the resident does not hold are dropped silently: the department
/// learns nothing about a resident's documents before consent (the resident
/// sees what resolved; the department sees the documents only in the grant).
/// A kind resolves to the newest document of that kind whose issuer the
/// issuer registry lets issue it (and, when the request names one, from
/// that issuer): a department cannot shadow another's documents by
/// putting a newer one of a kind it does not issue.
fn resolve(
    ctx: &Consent,
    request: &AccessRequest,
    issuer: Option<&pki::Name>,
) -> Result<Vec<GrantedDocument>, Refusal> {
    resolve_scope(ctx, &request.resident, &request.scope, issuer)
}

/// [`resolve`] for any resident and scope (a request's, or an order's).
pub(crate) fn resolve_scope(
    ctx: &Consent,
    resident: &pki::ResidentId,
    scope: &RequestScope,
    issuer: Option<&pki::Name>,
) -> Result<Vec<GrantedDocument>, Refusal> {
    let mut out = Vec::new();
    match scope {
        RequestScope::Documents(ids) => {
            for id in ids {
                if let Ok(entry) = ctx.vault.document(*id) {
                    if &entry.record.resident == resident {
                        out.push(granted(&entry));
                    }
                }
            }
        }
        RequestScope::Kinds(kinds) => {
            let all = state::documents_of(ctx.vault.store(), resident, state::LIST_SCAN_MAX)
                .map_err(Refusal::from)?;
            let authorised = |e: &&DocumentEntry| {
                ctx.issuers.may_issue(&e.record.issuer, &e.record.kind)
                    && issuer.is_none_or(|named| &e.record.issuer == named)
            };
            for kind in kinds {
                // Newest first: the first match is the current document.
                let current = all.iter().find(|e| &e.record.kind == kind && authorised(e));
                if let Some(entry) = current {
                    out.push(granted(entry));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn granted(entry: &DocumentEntry) -> GrantedDocument {
    GrantedDocument {
        document_id: entry.document_id,
        content_hash: entry.record.content_hash,
    }
}

/// One page of the pending requests addressed to the caller, in request
/// id order (bounded in count and bytes: see [`state::page`]).
fn pending(
    ctx: &Consent,
    caller: &PeerCert,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Response, Refusal> {
    let resident = resident_of(caller)?;
    let store = ctx.vault.store();
    let prefix = state::index_prefix(resident.as_str());
    let from = state::page_from(cursor)?;
    let fill = PageFill::new(limit, PAGE_LEN_MAX);
    let page = state::page(
        store,
        Cf::PendingRequests,
        &prefix,
        from.as_deref(),
        fill,
        &mut |key| {
            let id = RequestId::from_bytes(state::tail_id(key)?);
            match state::request(store, id)? {
                Some(entry) => Ok(Step::Item(request_view(ctx, &entry)?)),
                None => Ok(Step::Skip),
            }
        },
    )?;
    Ok(Response::Requests {
        requests: page.items,
        next_cursor: page.next_cursor,
    })
}

/// One pending request addressed to the caller (refused like a decision:
/// not found, not addressed to them, or already decided).
fn show_request(
    ctx: &Consent,
    caller: &PeerCert,
    request_id: RequestId,
) -> Result<Response, Refusal> {
    let entry = addressed(ctx, caller, request_id)?;
    Ok(Response::RequestDetail {
        request: request_view(ctx, &entry)?,
    })
}

fn request_view(ctx: &Consent, entry: &RequestEntry) -> Result<RequestView, Refusal> {
    let (description, legal_basis) = match ctx.purposes.get(&entry.request.purpose) {
        Ok(p) => (p.description.clone(), p.legal_basis.clone()),
        Err(_) => ("(no longer in the registry)".into(), String::new()),
    };
    let mut documents = Vec::new();
    for doc in &entry.documents {
        let stored = ctx.vault.document(doc.document_id)?;
        documents.push(RequestedDocument {
            document_id: doc.document_id,
            content_hash: doc.content_hash,
            kind: stored.record.kind.clone(),
            issuer: stored.record.issuer.clone(),
        });
    }
    Ok(RequestView {
        request_id: entry.request_id,
        department: entry.request.department.clone(),
        department_key_id: hex::encode(entry.department_key_id),
        purpose: entry.request.purpose.clone(),
        purpose_description: description,
        legal_basis,
        documents,
        ttl_s: entry.request.ttl_s,
        created_at: entry.request.created_at,
        expires_at: entry.expires_at,
    })
}

fn resident_of(caller: &PeerCert) -> Result<pki::ResidentId, Refusal> {
    require_role(caller, Role::Resident, "do this")?;
    Ok(pki::ResidentId::parse(caller.name.as_str())?)
}

/// Loads a request and checks the caller is the resident it names.
fn addressed(ctx: &Consent, caller: &PeerCert, id: RequestId) -> Result<RequestEntry, Refusal> {
    let entry = state::request(ctx.vault.store(), id)
        .map_err(Refusal::from)?
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::RequestNotFound,
                format!("no access request {id}"),
            )
        })?;
    if caller.role != Role::Resident || caller.name.as_str() != entry.request.resident.as_str() {
        // Name no one: request ids are public in the log.
        return Err(Refusal::new(
            ErrorCode::RequestNotAddressee,
            format!("request {id} is not addressed to you; only its resident decides it"),
        ));
    }
    if entry.status != RequestStatus::Pending {
        return Err(Refusal::new(
            ErrorCode::RequestAlreadyDecided,
            format!("request {id} was already decided"),
        ));
    }
    Ok(entry)
}

async fn approve(
    ctx: &Consent,
    caller: &PeerCert,
    caller_der: &[u8],
    request_id: RequestId,
    body: GrantBody,
    consent: Signature,
) -> Result<Response, Refusal> {
    let entry = addressed(ctx, caller, request_id)?;
    let now = ctx.clock.now_unix();
    if entry.expired_at(now) {
        return Err(Refusal::new(
            ErrorCode::RequestExpired,
            format!("request {request_id} expired before it was approved; ask the department for a new one"),
        ));
    }
    grants::check_approval(&entry, &body, now)?;
    body.verify_consent(&consent, caller)
        .map_err(grants::grant_refusal)?;
    let grant = pki::Grant::seal(body, consent, caller_der.to_vec(), &ctx.identity);
    let stored = GrantEntry {
        grant: grant.clone(),
        grantee_serial: entry.department_serial.clone(),
        issued_at: now,
        uses: 0,
        revoked: None,
    };
    submit(ctx, Command::IssueGrant(stored)).await?;
    tracing::info!(role = caller.role.as_str(), "grant issued");
    Ok(Response::GrantIssued { grant })
}

async fn deny(
    ctx: &Consent,
    caller: &PeerCert,
    request_id: RequestId,
) -> Result<Response, Refusal> {
    addressed(ctx, caller, request_id)?;
    submit(
        ctx,
        Command::DenyRequest {
            request_id,
            at: ctx.clock.now_unix(),
        },
    )
    .await?;
    tracing::info!(role = caller.role.as_str(), "request denied");
    Ok(Response::Denied { request_id })
}

fn grant_view(entry: &GrantEntry) -> GrantView {
    let body = &entry.grant.body;
    GrantView {
        grant_id: entry.grant.id(),
        request_id: body.request_id,
        resident: body.resident.clone(),
        grantee: body.grantee.clone(),
        purpose: body.purpose.clone(),
        documents: body.documents.clone(),
        not_before: body.not_before,
        not_after: body.not_after,
        max_uses: body.max_uses,
        uses: entry.uses,
        revoked: entry.revoked.is_some(),
    }
}

fn side_of(caller: &PeerCert) -> Result<GrantSide, Refusal> {
    match caller.role {
        Role::Resident => Ok(GrantSide::Resident),
        Role::Department => Ok(GrantSide::Grantee),
        _ => Err(Refusal::new(
            ErrorCode::Forbidden,
            "only residents and departments are party to grants",
        )),
    }
}

/// One page of the grants the caller gave (resident) or holds
/// (department), in grant id order.
fn list_grants(
    ctx: &Consent,
    caller: &PeerCert,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Response, Refusal> {
    let side = side_of(caller)?;
    let store = ctx.vault.store();
    let prefix = state::grant_index_key(side, caller.name.as_str(), &[]);
    let from = state::page_from(cursor)?;
    let fill = PageFill::new(limit, PAGE_LEN_MAX);
    let page = state::page(
        store,
        Cf::GrantIndex,
        &prefix,
        from.as_deref(),
        fill,
        &mut |key| {
            let id = GrantId::from_bytes(state::tail_id(key)?);
            Ok(match state::grant(store, id)? {
                Some(entry) if is_party(caller, &entry) => Step::Item(grant_view(&entry)),
                _ => Step::Skip,
            })
        },
    )?;
    Ok(Response::GrantList {
        grants: page.items,
        next_cursor: page.next_cursor,
    })
}

/// Whether the caller is the grant's resident or its holder (by key).
fn is_party(caller: &PeerCert, entry: &GrantEntry) -> bool {
    let body = &entry.grant.body;
    match caller.role {
        Role::Resident => caller.name.as_str() == body.resident.as_str(),
        Role::Department => caller.name == body.grantee && caller.key_id == body.grantee_key_id,
        _ => false,
    }
}

fn party_grant(ctx: &Consent, caller: &PeerCert, grant_id: GrantId) -> Result<GrantEntry, Refusal> {
    let entry = state::grant(ctx.vault.store(), grant_id)
        .map_err(Refusal::from)?
        .ok_or_else(|| Refusal::new(ErrorCode::GrantNotFound, format!("no grant {grant_id}")))?;
    // A statutory grant (its request is an order) is the ordering
    // department's and its approving authority's, never the resident's:
    // the resident can neither see nor revoke it (they learn of it by the
    // disclosure).
    let order = crate::engine::orders::order(ctx.vault.store(), entry.grant.body.request_id)
        .map_err(Refusal::from)?;
    let party = match (&order, caller.role) {
        (Some(_), Role::Resident) => false,
        (Some(o), Role::Authority) => matches!(
            &o.status,
            crate::engine::orders::OrderStatus::Approved { by, role: Role::Authority, .. }
                if by == &caller.name
        ),
        _ => is_party(caller, &entry),
    };
    if !party {
        // Same answer as a missing grant: do not confirm it exists.
        return Err(Refusal::new(
            ErrorCode::GrantNotFound,
            format!("no grant {grant_id}"),
        ));
    }
    Ok(entry)
}

fn show_grant(ctx: &Consent, caller: &PeerCert, grant_id: GrantId) -> Result<Response, Refusal> {
    let entry = party_grant(ctx, caller, grant_id)?;
    Ok(Response::GrantDetail {
        grant: grant_view(&entry),
        sealed: entry.grant,
    })
}

async fn revoke(ctx: &Consent, caller: &PeerCert, grant_id: GrantId) -> Result<Response, Refusal> {
    // Whether the caller may revoke is decided on the cluster's latest state.
    ctx.consensus.linearize().await?;
    let entry = party_grant(ctx, caller, grant_id)?;
    let command = Command::RevokeGrant {
        grant_id,
        by: caller.name.clone(),
        role: caller.role,
        at: ctx.clock.now_unix(),
    };
    submit(ctx, command).await?;
    ctx.grant_cache.forget(&entry.grant);
    // A resident's name is theirs; a department's name says who gave up a grant.
    if caller.role == Role::Department {
        tracing::info!(by = %caller.name, role = caller.role.as_str(), "grant revoked");
    } else {
        tracing::info!(role = caller.role.as_str(), "grant revoked");
    }
    Ok(Response::GrantRevoked { grant_id })
}

/// Checks a fetch under a grant (holder, scope, window, uses, revocation,
/// signatures); the use itself is counted by the caller through the state
/// machine, which repeats the state checks atomically.
pub fn check_use(
    ctx: &Consent,
    caller: &PeerCert,
    document: &DocumentEntry,
    grant_id: GrantId,
) -> Result<(), Refusal> {
    let entry = ctx.vault.stored_grant(grant_id)?;
    let counter = state::grant_counter(ctx.vault.store(), grant_id)
        .map_err(Refusal::from)?
        .ok_or_else(|| Refusal::new(ErrorCode::GrantNotFound, format!("no grant {grant_id}")))?;
    ctx.grant_cache
        .verify(&entry.grant, ctx.identity.ca_der(), || ctx.vault.crls())?;
    grants::check_use(
        &entry,
        &counter,
        caller,
        &document.document_id,
        &document.record.content_hash,
        &|serial| ctx.vault.is_revoked(serial),
        ctx.clock.now_unix(),
    )
}
