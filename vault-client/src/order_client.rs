//! The client's side of access by law: a department files orders, an
//! authority approves, denies or extends their seals, a resident reads
//! disclosed orders with their sealed log entries, each checked
//! ([`crate::orders::verify_disclosure`]) against the signed checkpoint.
//! Part of the `net` feature.

use pki::{GrantBody, Order, Purpose, RequestId, RequestScope, ResidentId, SealExtension};

use crate::client::{hashes, now_unix, proof_error, unexpected, walk, VaultClient, VerifiedAccess};
use crate::client_error::ClientError;
use crate::error::ErrorCode;
use crate::orders::{verify_disclosure, SealedEntry};
use crate::wire::{OrderView, Page, Request, Response};

/// What a department orders.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    /// Whose documents.
    pub resident: ResidentId,
    /// Exact documents or kinds.
    pub scope: RequestScope,
    /// A statutory purpose.
    pub purpose: Purpose,
    /// The case reference.
    pub case_ref: String,
    /// How long the access stays sealed, in seconds.
    pub seal_s: u64,
    /// How long the grant is valid, in seconds.
    pub ttl_s: u64,
    /// With kinds: only documents from this issuer.
    pub issuer: Option<pki::Name>,
}

/// A disclosed order as the resident checked it.
#[derive(Debug, Clone)]
pub struct Disclosed {
    /// The index of the disclosure entry (in the resident's own chain).
    pub index: u64,
    /// The order as the node describes it (its case reference and purpose
    /// checked against the committed filing).
    pub order: OrderView,
    /// Its sealed entries, each checked.
    pub entries: Vec<SealedEntry>,
}

impl VaultClient {
    /// A department files a statutory order; answers its id.
    pub async fn file_order(&self, request: OrderRequest) -> Result<RequestId, ClientError> {
        let order = Order {
            resident: request.resident,
            department: self.identity().cert.name.clone(),
            scope: request.scope,
            purpose: request.purpose,
            case_ref: request.case_ref,
            seal_s: request.seal_s,
            ttl_s: request.ttl_s,
            created_at: now_unix(),
            nonce: pki::AccessRequest::new_nonce()?,
        };
        let signature = order.sign(self.identity());
        let call = Request::FileOrder {
            order,
            signature,
            issuer: request.issuer,
        };
        match self.call(&call).await? {
            Response::OrderFiled { order_id } => Ok(order_id),
            other => Err(unexpected(&other)),
        }
    }

    /// The orders the caller may see: every page.
    pub async fn orders(&self) -> Result<Vec<OrderView>, ClientError> {
        walk(|cursor| self.orders_page(cursor, None)).await
    }

    /// One page of the orders the caller may see.
    pub async fn orders_page(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<Page<OrderView>, ClientError> {
        match self.call(&Request::Orders { cursor, limit }).await? {
            Response::Orders {
                orders,
                next_cursor,
            } => Ok(Page {
                items: orders,
                next_cursor,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// One order.
    pub async fn show_order(&self, order_id: RequestId) -> Result<OrderView, ClientError> {
        match self.call(&Request::ShowOrder { order_id }).await? {
            Response::OrderDetail { order } => Ok(order),
            other => Err(unexpected(&other)),
        }
    }

    /// The grant body approving `order` as filed: its documents, for its
    /// ttl from now, `max_uses` fetches, held by the ordering department's key.
    pub fn order_body(&self, order: &OrderView, max_uses: u32) -> Result<GrantBody, ClientError> {
        let mut key_id = [0u8; 32];
        hex::decode_to_slice(&order.department_key_id, &mut key_id).map_err(|_| {
            ClientError::local(ErrorCode::Protocol, "the node sent a bad department key id")
        })?;
        let mut documents = order.documents.clone();
        documents.sort();
        let now = now_unix();
        let ttl = order.ttl_s.min(pki::GRANT_TTL_S_MAX) as i64;
        Ok(GrantBody {
            request_id: order.order_id,
            resident: order.resident.clone(),
            grantee: order.department.clone(),
            grantee_key_id: key_id,
            documents,
            purpose: order.purpose.clone(),
            not_before: now,
            not_after: now + ttl,
            max_uses,
        })
    }

    /// An authority (or, where none is needed, the ordering department)
    /// approves an order; answers the sealed grant.
    pub async fn approve_order(
        &self,
        order_id: RequestId,
        max_uses: u32,
    ) -> Result<pki::Grant, ClientError> {
        let order = self.show_order(order_id).await?;
        let body = self.order_body(&order, max_uses)?;
        let approval = self.identity().sign(&body.canonical_bytes());
        let call = Request::ApproveOrder {
            order_id,
            body,
            approval,
        };
        match self.call(&call).await? {
            Response::GrantIssued { grant } => Ok(grant),
            other => Err(unexpected(&other)),
        }
    }

    /// An authority denies an order.
    pub async fn deny_order(&self, order_id: RequestId) -> Result<(), ClientError> {
        match self.call(&Request::DenyOrder { order_id }).await? {
            Response::OrderDenied { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// An authority extends an order's seal to `seal_until`.
    pub async fn extend_seal(
        &self,
        order_id: RequestId,
        seal_until: i64,
    ) -> Result<i64, ClientError> {
        let extension = SealExtension {
            order_id,
            seal_until,
            signed_at: now_unix(),
        };
        let signature = extension.sign(self.identity());
        let call = Request::ExtendSeal {
            extension,
            signature,
        };
        match self.call(&call).await? {
            Response::SealExtended { seal_until, .. } => Ok(seal_until),
            other => Err(unexpected(&other)),
        }
    }

    /// For every disclosure among a resident's verified entries, the
    /// disclosed order and its sealed entries, each checked against
    /// `checkpoint` (the one the entries were checked against).
    pub async fn disclosures(
        &self,
        checkpoint: &pki::Checkpoint,
        accesses: &[VerifiedAccess],
    ) -> Result<Vec<Disclosed>, ClientError> {
        let me = ResidentId::parse(self.identity().cert.name.as_str())?;
        let mut out = Vec::new();
        for access in accesses {
            if access.entry.event != pki::LogEvent::OrderDisclosed {
                continue;
            }
            let Some(order_id) = access.entry.request_id else {
                continue;
            };
            let call = Request::Disclosure {
                order_id,
                tree_size: Some(checkpoint.size),
            };
            let (order, records) = match self.call(&call).await? {
                Response::Disclosure { order, entries, .. } => (order, entries),
                other => return Err(unexpected(&other)),
            };
            let mut include = |index: u64, bytes: &[u8], proof: &[String]| {
                let proof = hashes(proof).map_err(|e| e.to_string())?;
                let leaf = crate::merkle::leaf_hash(bytes);
                crate::merkle::verify_inclusion(
                    index,
                    checkpoint.size,
                    &leaf,
                    &proof,
                    &checkpoint.root,
                )
                .map_err(|e| proof_error(e).to_string())
            };
            let entries = verify_disclosure(
                &me,
                access.index,
                &access.entry,
                &order,
                &records,
                &mut include,
            )
            .map_err(|e| ClientError::local(ErrorCode::Integrity, e.to_string()))?;
            out.push(Disclosed {
                index: access.index,
                order,
                entries,
            });
        }
        Ok(out)
    }
}
