//! Which log entries each command produces: plain functions from the
//! command, its seed, what applying it did and the state before it, to
//! [`LogRecord`]s. No I/O beyond reads through the state machine's view.
//!
//! **Invariant:** entries carry no names of residents and no document
//! content: a resident appears as a salted tag, details as commitments.

use pki::{
    DocumentId, GrantId, LogDetail, LogEntry, LogEvent, Name, RequestId, ResidentId, Role,
    SealExtension,
};

use crate::engine::log::{LogRecord, Salts};
use crate::engine::meta::{Cf, MetaStore, Write};
use crate::engine::orders::{self, OrderEntry};
use crate::engine::state::{
    self, Applied, Command, DocumentEntry, GrantEntry, Proposal, RequestEntry, StateError,
};

/// The actor name recorded for residents (their identity is in the tag).
pub const RESIDENT_ACTOR: &str = "resident";

/// The log records for `proposal`, given what applying it did.
pub fn records(
    state: &dyn MetaStore,
    proposal: &Proposal,
    applied: &Applied,
    writes: &mut Vec<Write>,
) -> Result<Vec<LogRecord>, StateError> {
    let mut b = Builder {
        state,
        proposal,
        salts: Salts::default(),
        writes,
        out: Vec::new(),
    };
    b.command(&proposal.command, applied)?;
    Ok(b.out)
}

/// The actor name an entry records: residents appear only by their tag.
fn actor(role: Role, by: &Name) -> &str {
    if role == Role::Resident {
        RESIDENT_ACTOR
    } else {
        by.as_str()
    }
}

/// The ids a refusal names, when known.
struct RefusalIds {
    document_id: Option<DocumentId>,
    grant_id: Option<GrantId>,
    request_id: Option<RequestId>,
}

/// Collects one command's records (and the salt writes their tags need).
struct Builder<'a> {
    state: &'a dyn MetaStore,
    proposal: &'a Proposal,
    salts: Salts,
    writes: &'a mut Vec<Write>,
    out: Vec<LogRecord>,
}

/// Dispatches to one method per kind of command that leaves entries.
impl Builder<'_> {
    /// The records of `command`, given what applying it did (none for a
    /// document already registered).
    fn command(&mut self, command: &Command, applied: &Applied) -> Result<(), StateError> {
        match (command, applied) {
            (
                Command::RegisterDocument(e),
                Applied::DocumentRegistered {
                    document_existed: false,
                    ..
                },
            ) => self.document_issued(e),
            (Command::RecordRequest(r), _) => self.request_made(r),
            (Command::IssueGrant(g), Applied::GrantIssued { grant_id }) => {
                self.grant_issued(g, *grant_id)
            }
            (Command::DenyRequest { request_id, .. }, _) => self.denial(*request_id),
            (
                Command::UseGrant {
                    grant_id,
                    document_id,
                    at,
                },
                Applied::GrantUsed { use_number, .. },
            ) => self.grant_fetch(*grant_id, *document_id, *at, *use_number),
            (
                Command::RecordAccess {
                    document_id,
                    role,
                    by,
                },
                _,
            ) => self.access(*document_id, *role, by),
            (
                Command::RecordRefusal {
                    role,
                    by,
                    code,
                    document_id,
                    grant_id,
                    request_id,
                },
                _,
            ) => {
                let ids = RefusalIds {
                    document_id: *document_id,
                    grant_id: *grant_id,
                    request_id: *request_id,
                };
                self.refusal(*role, by, code, ids)
            }
            (
                Command::RevokeGrant {
                    grant_id, role, by, ..
                },
                _,
            ) => self.revoke(*grant_id, *role, by),
            (Command::RecordCertificateRevocations { serials }, _) => {
                self.certificate_revocations(serials)
            }
            (Command::RecordOrder(o), _) => self.order_filed(o),
            (
                Command::ApproveOrder {
                    order_id,
                    grant,
                    by,
                    role,
                },
                Applied::GrantIssued { grant_id },
            ) => self.order_approved(*order_id, grant, (*role, by), *grant_id),
            (Command::DenyOrder { order_id, by, .. }, _) => self.order_denied(*order_id, by),
            (Command::ExtendSeal { extension, by, .. }, _) => self.seal_extended(extension, by),
            (
                Command::DiscloseOrder { order_id, .. },
                Applied::OrderDisclosed { disclosed: true },
            ) => self.order_disclosed(*order_id),
            _ => Ok(()),
        }
    }
}

/// One method per kind of command that leaves entries.
impl Builder<'_> {
    /// A new document: `issue` by its department.
    fn document_issued(&mut self, e: &DocumentEntry) -> Result<(), StateError> {
        let mut entry = self.entry(
            LogEvent::DocumentIssued,
            Role::Department,
            e.record.issuer.as_str(),
        );
        entry.document_id = Some(e.document_id);
        self.push(
            entry,
            Some(&e.record.resident),
            Some(e.record.kind.as_str()),
            None,
        )
    }

    /// A department's access request.
    fn request_made(&mut self, r: &RequestEntry) -> Result<(), StateError> {
        let mut entry = self.entry(
            LogEvent::RequestMade,
            Role::Department,
            r.request.department.as_str(),
        );
        entry.request_id = Some(r.request_id);
        self.push(
            entry,
            Some(&r.request.resident),
            None,
            Some(r.request.purpose.as_str()),
        )
    }

    /// The resident's approval, then the grant issued to the department.
    fn grant_issued(&mut self, g: &GrantEntry, grant_id: GrantId) -> Result<(), StateError> {
        let body = &g.grant.body;
        let mut approval = self.entry(LogEvent::Approval, Role::Resident, RESIDENT_ACTOR);
        approval.request_id = Some(body.request_id);
        self.push(
            approval,
            Some(&body.resident),
            None,
            Some(body.purpose.as_str()),
        )?;
        let mut issued = self.entry(
            LogEvent::GrantIssued,
            Role::Department,
            body.grantee.as_str(),
        );
        issued.request_id = Some(body.request_id);
        issued.grant_id = Some(grant_id);
        issued.not_before = body.not_before;
        issued.not_after = body.not_after;
        issued.max_uses = body.max_uses;
        // The grant's scope, in the clear (document ids only; the content
        // hashes stay behind the grant id): the auditor's replay checks
        // every fetch under the grant against it. Sorted, as the body is.
        issued.documents = body.documents.iter().map(|d| d.document_id).collect();
        self.push(
            issued,
            Some(&body.resident),
            None,
            Some(body.purpose.as_str()),
        )
    }

    /// The resident's denial of a request.
    fn denial(&mut self, request_id: RequestId) -> Result<(), StateError> {
        let resident = state::request(self.state, request_id)?.map(|r| r.request.resident);
        let mut entry = self.entry(LogEvent::Denial, Role::Resident, RESIDENT_ACTOR);
        entry.request_id = Some(request_id);
        self.push(entry, resident.as_ref(), None, None)
    }

    /// A fetch under a grant, with its use number.
    fn grant_fetch(
        &mut self,
        grant_id: GrantId,
        document_id: DocumentId,
        at: i64,
        use_number: u32,
    ) -> Result<(), StateError> {
        let counter = state::grant_counter(self.state, grant_id)?;
        let (resident, grantee, purpose) = match &counter {
            Some(c) => (
                Some(c.resident.clone()),
                c.grantee.to_string(),
                Some(c.purpose.to_string()),
            ),
            None => (None, String::new(), None),
        };
        let kind = state::document(self.state, document_id)?.map(|d| d.record.kind.to_string());
        let mut entry = self.entry(LogEvent::Fetch, Role::Department, &grantee);
        // The time the use was checked against the grant's window.
        entry.time = at;
        entry.document_id = Some(document_id);
        entry.grant_id = Some(grant_id);
        entry.use_number = use_number;
        if let Some(order) = orders::order_of_grant(self.state, grant_id)? {
            if order.sealed() {
                let detail = self.detail(
                    Some(&order.order.resident),
                    kind.as_deref(),
                    purpose.as_deref(),
                    None,
                );
                return self.push_sealed(entry, detail);
            }
        }
        self.push(
            entry,
            resident.as_ref(),
            kind.as_deref(),
            purpose.as_deref(),
        )
    }

    /// A fetch without a grant (by the issuer or the resident).
    fn access(&mut self, document_id: DocumentId, role: Role, by: &Name) -> Result<(), StateError> {
        let doc = state::document(self.state, document_id)?;
        let mut entry = self.entry(LogEvent::Fetch, role, actor(role, by));
        entry.document_id = Some(document_id);
        let kind = doc.as_ref().map(|d| d.record.kind.to_string());
        self.push(
            entry,
            doc.as_ref().map(|d| &d.record.resident),
            kind.as_deref(),
            None,
        )
    }

    /// A refused request, with its stable code.
    fn refusal(
        &mut self,
        role: Role,
        by: &Name,
        code: &str,
        ids: RefusalIds,
    ) -> Result<(), StateError> {
        let resident = match ids.document_id {
            Some(id) => state::document(self.state, id)?.map(|d| d.record.resident),
            None => None,
        };
        let mut entry = self.entry(LogEvent::Refusal, role, actor(role, by));
        entry.document_id = ids.document_id;
        entry.grant_id = ids.grant_id;
        entry.request_id = ids.request_id;
        entry.code = code.to_string();
        // A refusal about a sealed order (by its id or its grant's) is
        // sealed with it: it must not tell the resident the order exists.
        let order = match (ids.request_id, ids.grant_id) {
            (Some(id), _) => orders::order(self.state, id)?,
            (None, Some(grant)) => orders::order_of_grant(self.state, grant)?,
            (None, None) => None,
        };
        match order {
            Some(order) if order.sealed() => {
                let detail = self.detail(Some(&order.order.resident), None, None, None);
                entry.request_id = Some(order.order_id);
                self.push_sealed(entry, detail)
            }
            // Once disclosed, a refusal about the order is the resident's to
            // see, in their chain like any other entry about them.
            Some(order) => {
                let resident = resident.unwrap_or_else(|| order.order.resident.clone());
                self.push(entry, Some(&resident), None, None)
            }
            None => self.push(entry, resident.as_ref(), None, None),
        }
    }

    /// A grant revoked by its resident or given up by its grantee.
    fn revoke(&mut self, grant_id: GrantId, role: Role, by: &Name) -> Result<(), StateError> {
        let counter = state::grant_counter(self.state, grant_id)?;
        let mut entry = self.entry(LogEvent::Revoke, role, actor(role, by));
        entry.grant_id = Some(grant_id);
        if let Some(order) = orders::order_of_grant(self.state, grant_id)? {
            if order.sealed() {
                let detail = self.detail(Some(&order.order.resident), None, None, None);
                return self.push_sealed(entry, detail);
            }
        }
        self.push(entry, counter.as_ref().map(|c| &c.resident), None, None)
    }

    /// One entry per certificate serial not seen before (marked in
    /// [`Cf::Meta`] so a repeated CRL adds nothing).
    fn certificate_revocations(&mut self, serials: &[String]) -> Result<(), StateError> {
        for serial in serials {
            let marker = format!("revoked_serial/{serial}").into_bytes();
            if self.state.get(Cf::Meta, &marker)?.is_some() {
                continue;
            }
            self.writes.push(Write::Put {
                cf: Cf::Meta,
                key: marker,
                value: Vec::new(),
            });
            let mut entry = self.entry(LogEvent::CertificateRevoked, Role::Node, "district-ca");
            entry.code = serial.chars().take(64).collect();
            self.push(entry, None, None, None)?;
        }
        Ok(())
    }
}

/// The entries of statutory orders: sealed (no resident tag, the resident
/// bound by the commitment) until the disclosure, which carries the tag.
impl Builder<'_> {
    /// A department's order, once (a retried command adds nothing).
    fn order_filed(&mut self, o: &OrderEntry) -> Result<(), StateError> {
        if orders::order(self.state, o.order_id)?.is_some() {
            return Ok(());
        }
        let mut entry = self.entry(
            LogEvent::OrderFiled,
            Role::Department,
            o.order.department.as_str(),
        );
        entry.request_id = Some(o.order_id);
        entry.code = o.order.purpose.to_string();
        entry.not_before = o.recorded_at;
        entry.not_after = o.seal_until;
        let case_ref = Some(o.order.case_ref.as_str());
        let detail = self.detail(
            Some(&o.order.resident),
            None,
            Some(o.order.purpose.as_str()),
            case_ref,
        );
        self.push_sealed(entry, detail)
    }

    /// The approval, then the grant issued under it.
    fn order_approved(
        &mut self,
        order_id: RequestId,
        g: &GrantEntry,
        (role, by): (Role, &Name),
        grant_id: GrantId,
    ) -> Result<(), StateError> {
        let body = &g.grant.body;
        let purpose = Some(body.purpose.as_str());
        let mut approval = self.entry(LogEvent::OrderApproved, role, by.as_str());
        approval.request_id = Some(order_id);
        approval.grant_id = Some(grant_id);
        approval.code = body.purpose.to_string();
        let detail = self.detail(Some(&body.resident), None, purpose, None);
        self.push_sealed(approval, detail)?;
        let mut issued = self.entry(
            LogEvent::GrantIssued,
            Role::Department,
            body.grantee.as_str(),
        );
        issued.request_id = Some(order_id);
        issued.grant_id = Some(grant_id);
        issued.not_before = body.not_before;
        issued.not_after = body.not_after;
        issued.max_uses = body.max_uses;
        issued.documents = body.documents.iter().map(|d| d.document_id).collect();
        let detail = self.detail(Some(&body.resident), None, purpose, None);
        self.push_sealed(issued, detail)
    }

    /// An authority's denial.
    fn order_denied(&mut self, order_id: RequestId, by: &Name) -> Result<(), StateError> {
        let order = orders::order(self.state, order_id)?;
        let mut entry = self.entry(LogEvent::OrderDenied, Role::Authority, by.as_str());
        entry.request_id = Some(order_id);
        if let Some(o) = &order {
            entry.code = o.order.purpose.to_string();
        }
        let resident = order.as_ref().map(|o| &o.order.resident);
        let detail = self.detail(resident, None, None, None);
        self.push_sealed(entry, detail)
    }

    /// An authority's extension of a seal, with the new end.
    fn seal_extended(&mut self, x: &SealExtension, by: &Name) -> Result<(), StateError> {
        let order = orders::order(self.state, x.order_id)?;
        let mut entry = self.entry(LogEvent::SealExtended, Role::Authority, by.as_str());
        entry.request_id = Some(x.order_id);
        entry.not_before = x.signed_at;
        entry.not_after = x.seal_until;
        if let Some(o) = &order {
            entry.code = o.order.purpose.to_string();
        }
        let resident = order.as_ref().map(|o| &o.order.resident);
        let detail = self.detail(resident, None, None, None);
        self.push_sealed(entry, detail)
    }

    /// The disclosure: the resident's tag, the order, its grant, the seal's
    /// bounds and how many sealed entries the order has.
    fn order_disclosed(&mut self, order_id: RequestId) -> Result<(), StateError> {
        let Some(o) = orders::order(self.state, order_id)? else {
            return Ok(());
        };
        let sealed = orders::sealed_indices(self.state, order_id)?;
        let mut entry = self.entry(LogEvent::OrderDisclosed, Role::Node, DISCLOSER_ACTOR);
        entry.request_id = Some(order_id);
        entry.grant_id = o.grant_id();
        entry.code = o.order.purpose.to_string();
        entry.not_before = o.recorded_at;
        entry.not_after = o.seal_until;
        entry.use_number = u32::try_from(sealed.len()).unwrap_or(u32::MAX);
        self.push_with_case(
            entry,
            &o.order.resident,
            Some(o.order.purpose.as_str()),
            &o.order.case_ref,
        )
    }
}

/// The actor name of disclosure entries (the node writes them by itself).
pub const DISCLOSER_ACTOR: &str = "vault-node";

/// Building blocks: a blank entry, and pushing it with its detail.
impl Builder<'_> {
    fn detail(
        &self,
        resident: Option<&ResidentId>,
        kind: Option<&str>,
        purpose: Option<&str>,
        case_ref: Option<&str>,
    ) -> LogDetail {
        LogDetail {
            resident: resident.cloned(),
            kind: kind.map(str::to_string),
            purpose: purpose.map(str::to_string),
            nonce: self.proposal.seed.nonce_for(self.out.len()),
            case_ref: case_ref.map(str::to_string),
        }
    }

    /// An entry of a sealed order: no resident tag (so in no resident's
    /// chain), the resident only inside the committed detail.
    fn push_sealed(&mut self, mut entry: LogEntry, detail: LogDetail) -> Result<(), StateError> {
        entry.resident_tag = [0; 32];
        entry.commitment = detail.commitment();
        self.out.push(LogRecord { entry, detail });
        Ok(())
    }

    /// A tagged entry whose detail carries a case reference.
    fn push_with_case(
        &mut self,
        mut entry: LogEntry,
        resident: &ResidentId,
        purpose: Option<&str>,
        case_ref: &str,
    ) -> Result<(), StateError> {
        let fresh = self.proposal.seed.salt_for(resident);
        entry.resident_tag = self.salts.tag(self.state, resident, fresh, self.writes)?;
        let detail = self.detail(Some(resident), None, purpose, Some(case_ref));
        entry.commitment = detail.commitment();
        self.out.push(LogRecord { entry, detail });
        Ok(())
    }

    fn entry(&self, event: LogEvent, actor_role: Role, actor: &str) -> LogEntry {
        LogEntry::new(event, self.proposal.seed.at, actor_role, actor)
    }

    fn push(
        &mut self,
        mut entry: LogEntry,
        resident: Option<&ResidentId>,
        kind: Option<&str>,
        purpose: Option<&str>,
    ) -> Result<(), StateError> {
        if let Some(resident) = resident {
            let fresh = self.proposal.seed.salt_for(resident);
            entry.resident_tag = self.salts.tag(self.state, resident, fresh, self.writes)?;
        }
        let detail = self.detail(resident, kind, purpose, None);
        entry.commitment = detail.commitment();
        self.out.push(LogRecord { entry, detail });
        Ok(())
    }
}

/// Records the tests of the engine and the rules share: a document, a
/// request for it, and a grant that answers the request exactly.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fixtures {
    use pki::{
        AccessRequest, ContentHash, DocumentKind, Grant, GrantBody, GrantedDocument, IssueRecord,
        Name, Purpose, RequestScope, ResidentId, Signature, GRANT_VERSION,
    };

    use crate::engine::state::{DocumentEntry, GrantEntry, RequestEntry, RequestStatus};

    /// The department key id requests bind.
    pub(crate) const DEPARTMENT_KEY_ID: [u8; 32] = [7; 32];

    /// A resident id.
    pub(crate) fn resident(id: &str) -> ResidentId {
        ResidentId::parse(id).unwrap()
    }

    /// A name.
    pub(crate) fn name(name: &str) -> Name {
        Name::parse(name).unwrap()
    }

    /// A marriage certificate of `resident` issued by civil-affairs.
    pub(crate) fn document(resident_id: &str, seed: u8, at: i64) -> DocumentEntry {
        let record = IssueRecord {
            resident: resident(resident_id),
            kind: DocumentKind::parse("marriage-certificate").unwrap(),
            content_hash: ContentHash([seed; 32]),
            size: 10,
            issued_at: at,
            issuer: name("civil-affairs"),
        };
        let signature = Signature([seed; 64]);
        DocumentEntry {
            document_id: record.document_id(&signature),
            record,
            signature,
            issuer_cert: vec![1, 2, 3],
            registered_at: at,
        }
    }

    /// A pending housing-subsidy request by `department` for `docs`.
    pub(crate) fn request(docs: &[&DocumentEntry], department: &str, ttl_s: u64) -> RequestEntry {
        let request = AccessRequest {
            resident: docs[0].record.resident.clone(),
            department: name(department),
            scope: RequestScope::Documents(docs.iter().map(|d| d.document_id).collect()),
            purpose: Purpose::parse("housing-subsidy").unwrap(),
            ttl_s,
            created_at: 100,
            nonce: [3; 16],
        };
        let signature = Signature([4; 64]);
        let mut documents: Vec<GrantedDocument> = docs
            .iter()
            .map(|d| GrantedDocument {
                document_id: d.document_id,
                content_hash: d.record.content_hash,
            })
            .collect();
        documents.sort_by_key(|d| d.document_id);
        RequestEntry {
            request_id: request.id(&signature),
            request,
            signature,
            department_key_id: DEPARTMENT_KEY_ID,
            department_serial: "0a0b".to_string(),
            documents,
            status: RequestStatus::Pending,
            expires_at: None,
        }
    }

    /// The body that grants `request` exactly: all its documents, its whole
    /// ttl from `not_before`, `max_uses` uses.
    pub(crate) fn body(request: &RequestEntry, not_before: i64, max_uses: u32) -> GrantBody {
        GrantBody {
            request_id: request.request_id,
            resident: request.request.resident.clone(),
            grantee: request.request.department.clone(),
            grantee_key_id: request.department_key_id,
            documents: request.documents.clone(),
            purpose: request.request.purpose.clone(),
            not_before,
            not_after: not_before + request.request.ttl_s as i64,
            max_uses,
        }
    }

    /// A grant around `body` (signatures are not checked by the engine).
    pub(crate) fn grant(body: GrantBody) -> Grant {
        Grant {
            version: GRANT_VERSION,
            body,
            consent: Signature([5; 64]),
            resident_cert: Vec::new(),
            seal: Signature([6; 64]),
            node_cert: Vec::new(),
        }
    }

    /// The command entry that issues `grant` at `at`.
    pub(crate) fn grant_entry(grant: Grant, at: i64) -> GrantEntry {
        GrantEntry {
            grant,
            grantee_serial: "0a0b".to_string(),
            issued_at: at,
            uses: 0,
            revoked: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use pki::{resident_tag, LogEntry};
    use vault_client::ErrorCode;

    use super::fixtures::{body, document, grant, grant_entry, name, request, resident};
    use super::*;
    use crate::consensus::Ledger;
    use crate::engine::log;
    use crate::engine::state::Seed;
    use crate::storage::store::MemStore;

    /// Seed time of every command; grant uses carry their own time.
    const AT: i64 = 1_000;

    fn ledger() -> Ledger<MemStore> {
        Ledger::open(MemStore::new()).unwrap()
    }

    fn seed(n: u8) -> Seed {
        Seed {
            at: AT,
            nonce: [n; 32],
            salt: [n.wrapping_add(100); 32],
            salt_proofs: Vec::new(),
        }
    }

    fn submit(ledger: &Ledger<MemStore>, n: u8, command: Command) -> Result<Applied, StateError> {
        ledger.propose(Proposal {
            command,
            seed: seed(n),
        })
    }

    /// The log's entries from `start`, parsed, with their bytes.
    fn entries_from(ledger: &Ledger<MemStore>, start: u64) -> Vec<(Vec<u8>, LogEntry)> {
        log::entries(ledger.store(), start, 100)
            .unwrap()
            .into_iter()
            .map(|bytes| {
                let entry = LogEntry::parse(&bytes).unwrap();
                (bytes, entry)
            })
            .collect()
    }

    fn log_size(ledger: &Ledger<MemStore>) -> u64 {
        log::size(ledger.store()).unwrap()
    }

    fn tag_of(ledger: &Ledger<MemStore>, id: &str) -> [u8; 32] {
        let resident = resident(id);
        let salt = log::salt(ledger.store(), &resident).unwrap().unwrap();
        resident_tag(&salt, &resident)
    }

    /// A ledger holding a document of resident-1, a pending request for it
    /// by tax-office (ttl 100 s) and, if `max_uses > 0`, the grant answering
    /// it, valid from `AT`. Returns the ledger, document and grant id.
    fn granted(max_uses: u32) -> (Ledger<MemStore>, DocumentEntry, RequestEntry, GrantId) {
        let ledger = ledger();
        let doc = document("resident-1", 1, AT);
        let req = request(&[&doc], "tax-office", 100);
        submit(&ledger, 1, Command::RegisterDocument(doc.clone())).unwrap();
        submit(&ledger, 2, Command::RecordRequest(req.clone())).unwrap();
        let g = grant(body(&req, AT, max_uses.max(1)));
        let id = g.id();
        if max_uses > 0 {
            submit(&ledger, 3, Command::IssueGrant(grant_entry(g, AT))).unwrap();
        }
        (ledger, doc, req, id)
    }

    #[test]
    fn a_new_document_emits_an_issue_entry_with_the_tag_and_not_the_name() {
        let ledger = ledger();
        let doc = document("resident-1", 1, AT);
        submit(&ledger, 1, Command::RegisterDocument(doc.clone())).unwrap();
        let entries = entries_from(&ledger, 0);
        assert_eq!(entries.len(), 1);
        let (bytes, entry) = &entries[0];
        assert_eq!(entry.event, LogEvent::DocumentIssued);
        assert_eq!(entry.actor_role, Role::Department);
        assert_eq!(entry.actor, "civil-affairs");
        assert_eq!(entry.time, AT);
        assert_eq!(entry.document_id, Some(doc.document_id));
        assert_eq!(entry.resident_tag, tag_of(&ledger, "resident-1"));
        assert_ne!(entry.resident_tag, [0; 32]);
        let name = b"resident-1";
        assert!(!bytes.windows(name.len()).any(|w| w == name));
        let kind = b"marriage-certificate";
        assert!(!bytes.windows(kind.len()).any(|w| w == kind));
        let (_, detail) = log::entry_with_detail(ledger.store(), 0).unwrap().unwrap();
        assert_eq!(detail.resident, Some(resident("resident-1")));
        assert_eq!(detail.kind.as_deref(), Some("marriage-certificate"));
        assert_eq!(entry.commitment, detail.commitment());
    }

    #[test]
    fn registering_the_same_document_again_emits_nothing() {
        let ledger = ledger();
        let doc = document("resident-1", 1, AT);
        submit(&ledger, 1, Command::RegisterDocument(doc.clone())).unwrap();
        let again = submit(&ledger, 2, Command::RegisterDocument(doc)).unwrap();
        assert!(matches!(
            again,
            Applied::DocumentRegistered {
                document_existed: true,
                ..
            }
        ));
        assert_eq!(log_size(&ledger), 1);
    }

    #[test]
    fn a_request_emits_a_request_entry_by_its_department() {
        let (ledger, _, req, _) = granted(0);
        let entries = entries_from(&ledger, 1);
        assert_eq!(entries.len(), 1);
        let entry = &entries[0].1;
        assert_eq!(entry.event, LogEvent::RequestMade);
        assert_eq!(
            (entry.actor_role, entry.actor.as_str()),
            (Role::Department, "tax-office")
        );
        assert_eq!(entry.request_id, Some(req.request_id));
        assert_eq!(entry.resident_tag, tag_of(&ledger, "resident-1"));
        let (_, detail) = log::entry_with_detail(ledger.store(), 1).unwrap().unwrap();
        assert_eq!(detail.purpose.as_deref(), Some("housing-subsidy"));
    }

    #[test]
    fn a_grant_emits_the_residents_approval_then_the_grant_with_its_bounds() {
        let (ledger, _, req, grant_id) = granted(3);
        let entries = entries_from(&ledger, 2);
        let events: Vec<LogEvent> = entries.iter().map(|(_, e)| e.event).collect();
        assert_eq!(events, vec![LogEvent::Approval, LogEvent::GrantIssued]);
        let (approval, issued) = (&entries[0].1, &entries[1].1);
        assert_eq!(
            (approval.actor_role, approval.actor.as_str()),
            (Role::Resident, RESIDENT_ACTOR)
        );
        assert_eq!(approval.request_id, Some(req.request_id));
        assert_eq!(approval.grant_id, None);
        assert_eq!(issued.actor, "tax-office");
        assert_eq!(issued.grant_id, Some(grant_id));
        assert_eq!(
            (issued.not_before, issued.not_after, issued.max_uses),
            (AT, AT + 100, 3)
        );
        // The grant's scope is listed; the approval lists none; both are
        // chained (version 3), the grant to the approval just before it.
        let scope: Vec<_> = req.documents.iter().map(|d| d.document_id).collect();
        assert_eq!(issued.documents, scope);
        assert!(entries[1].0.starts_with(pki::LOG_ENTRY_TAG_V3));
        assert!(approval.documents.is_empty());
        assert!(entries[0].0.starts_with(pki::LOG_ENTRY_TAG_V3));
        // Entries 0 (issue), 1 (request), 2 (approval), 3 (grant).
        assert_eq!(approval.prev, Some(2));
        assert_eq!(issued.prev, Some(3));
        assert_eq!(approval.resident_tag, issued.resident_tag);
        // Two records of one command get different nonces.
        assert_ne!(approval.commitment, issued.commitment);
    }

    #[test]
    fn a_use_emits_a_fetch_with_the_grant_and_its_use_number() {
        let (ledger, doc, _, grant_id) = granted(3);
        let before = log_size(&ledger);
        for (n, at) in [(4u8, AT + 5), (5, AT + 9)] {
            let command = Command::UseGrant {
                grant_id,
                document_id: doc.document_id,
                at,
            };
            submit(&ledger, n, command).unwrap();
        }
        let entries = entries_from(&ledger, before);
        assert_eq!(entries.len(), 2);
        for (i, (_, entry)) in entries.iter().enumerate() {
            assert_eq!(entry.event, LogEvent::Fetch);
            assert_eq!(
                (entry.actor_role, entry.actor.as_str()),
                (Role::Department, "tax-office")
            );
            assert_eq!(entry.grant_id, Some(grant_id));
            assert_eq!(entry.document_id, Some(doc.document_id));
            assert_eq!(entry.use_number, i as u32 + 1);
            assert_eq!(entry.resident_tag, tag_of(&ledger, "resident-1"));
        }
        // The time is the one the use was checked at, not the seed's.
        assert_eq!(entries[0].1.time, AT + 5);
        assert_eq!(entries[1].1.time, AT + 9);
    }

    #[test]
    fn a_refused_command_emits_nothing() {
        let (ledger, doc, _, grant_id) = granted(1);
        let use_it = |n| {
            let command = Command::UseGrant {
                grant_id,
                document_id: doc.document_id,
                at: AT + 1,
            };
            submit(&ledger, n, command)
        };
        use_it(4).unwrap();
        let before = log_size(&ledger);
        match use_it(5) {
            Err(StateError::Refused(r)) => assert_eq!(r.code, ErrorCode::GrantExhausted),
            other => panic!("expected an exhausted grant, got {other:?}"),
        }
        let unknown = Command::DenyRequest {
            request_id: RequestId::derive(&[b"no such request"]),
            at: AT,
        };
        assert!(matches!(
            submit(&ledger, 6, unknown),
            Err(StateError::Refused(_))
        ));
        assert_eq!(log_size(&ledger), before);
    }

    #[test]
    fn the_tag_is_stable_across_commands_and_differs_between_residents() {
        let ledger = ledger();
        let first = document("resident-1", 1, AT);
        submit(&ledger, 1, Command::RegisterDocument(first.clone())).unwrap();
        submit(
            &ledger,
            2,
            Command::RecordRequest(request(&[&first], "tax-office", 100)),
        )
        .unwrap();
        submit(
            &ledger,
            3,
            Command::RegisterDocument(document("resident-2", 2, AT)),
        )
        .unwrap();
        submit(
            &ledger,
            4,
            Command::RegisterDocument(document("resident-1", 3, AT)),
        )
        .unwrap();
        let tags: Vec<[u8; 32]> = entries_from(&ledger, 0)
            .iter()
            .map(|(_, e)| e.resident_tag)
            .collect();
        assert_eq!(tags.len(), 4);
        assert_eq!(tags[0], tags[1]);
        assert_eq!(tags[0], tags[3]);
        assert_ne!(tags[0], tags[2]);
    }

    #[test]
    fn a_denial_is_the_residents_and_tagged() {
        let (ledger, _, req, _) = granted(0);
        let command = Command::DenyRequest {
            request_id: req.request_id,
            at: AT,
        };
        submit(&ledger, 3, command).unwrap();
        let entries = entries_from(&ledger, 2);
        assert_eq!(entries.len(), 1);
        let entry = &entries[0].1;
        assert_eq!(entry.event, LogEvent::Denial);
        assert_eq!(
            (entry.actor_role, entry.actor.as_str()),
            (Role::Resident, RESIDENT_ACTOR)
        );
        assert_eq!(entry.request_id, Some(req.request_id));
        assert_eq!(entry.resident_tag, tag_of(&ledger, "resident-1"));
    }

    #[test]
    fn an_access_names_a_department_but_never_a_resident() {
        let ledger = ledger();
        let doc = document("resident-1", 1, AT);
        submit(&ledger, 1, Command::RegisterDocument(doc.clone())).unwrap();
        for (n, role, by) in [
            (2u8, Role::Department, "civil-affairs"),
            (3, Role::Resident, "jane-doe"),
        ] {
            let command = Command::RecordAccess {
                document_id: doc.document_id,
                role,
                by: name(by),
            };
            submit(&ledger, n, command).unwrap();
        }
        let entries = entries_from(&ledger, 1);
        let actors: Vec<(LogEvent, Role, &str)> = entries
            .iter()
            .map(|(_, e)| (e.event, e.actor_role, e.actor.as_str()))
            .collect();
        assert_eq!(
            actors,
            vec![
                (LogEvent::Fetch, Role::Department, "civil-affairs"),
                (LogEvent::Fetch, Role::Resident, RESIDENT_ACTOR),
            ]
        );
        for (bytes, entry) in &entries {
            assert_eq!(entry.document_id, Some(doc.document_id));
            assert_eq!(entry.use_number, 0);
            assert!(!bytes.windows(8).any(|w| w == b"jane-doe"));
        }
    }

    #[test]
    fn a_refusal_carries_its_code_and_ids() {
        let ledger = ledger();
        let doc = document("resident-1", 1, AT);
        submit(&ledger, 1, Command::RegisterDocument(doc.clone())).unwrap();
        let grant_id = GrantId::derive(&[b"some grant"]);
        let command = Command::RecordRefusal {
            role: Role::Department,
            by: name("tax-office"),
            code: "grant.expired".to_string(),
            document_id: Some(doc.document_id),
            grant_id: Some(grant_id),
            request_id: None,
        };
        assert_eq!(submit(&ledger, 2, command).unwrap(), Applied::Recorded);
        let entry = &entries_from(&ledger, 1)[0].1;
        assert_eq!(entry.event, LogEvent::Refusal);
        assert_eq!(entry.actor, "tax-office");
        assert_eq!(entry.code, "grant.expired");
        assert_eq!(entry.document_id, Some(doc.document_id));
        assert_eq!(entry.grant_id, Some(grant_id));
        assert_eq!(entry.request_id, None);
        assert_eq!(entry.resident_tag, tag_of(&ledger, "resident-1"));
    }

    #[test]
    fn a_revocation_names_the_grant_and_its_resident() {
        let (ledger, _, _, grant_id) = granted(2);
        let before = log_size(&ledger);
        let command = Command::RevokeGrant {
            grant_id,
            by: name("jane-doe"),
            role: Role::Resident,
            at: AT,
        };
        submit(&ledger, 4, command).unwrap();
        let entries = entries_from(&ledger, before);
        assert_eq!(entries.len(), 1);
        let entry = &entries[0].1;
        assert_eq!(entry.event, LogEvent::Revoke);
        assert_eq!(entry.actor, RESIDENT_ACTOR);
        assert_eq!(entry.grant_id, Some(grant_id));
        assert_eq!(entry.resident_tag, tag_of(&ledger, "resident-1"));
    }

    #[test]
    fn certificate_revocations_are_logged_once_per_serial_and_untagged() {
        let ledger = ledger();
        let serials = |s: &[&str]| Command::RecordCertificateRevocations {
            serials: s.iter().map(|s| s.to_string()).collect(),
        };
        submit(&ledger, 1, serials(&["0a", "0b"])).unwrap();
        submit(&ledger, 2, serials(&["0b", "0c"])).unwrap();
        let entries = entries_from(&ledger, 0);
        let codes: Vec<&str> = entries.iter().map(|(_, e)| e.code.as_str()).collect();
        assert_eq!(codes, vec!["0a", "0b", "0c"]);
        for (_, entry) in &entries {
            assert_eq!(entry.event, LogEvent::CertificateRevoked);
            assert_eq!(
                (entry.actor_role, entry.actor.as_str()),
                (Role::Node, "district-ca")
            );
            assert_eq!(entry.resident_tag, [0; 32]);
        }
    }

    #[test]
    fn records_alone_write_only_a_new_residents_salt() {
        let store = MemStore::new();
        let doc = document("resident-1", 1, AT);
        let proposal = Proposal {
            command: Command::RegisterDocument(doc.clone()),
            seed: seed(1),
        };
        let applied = Applied::DocumentRegistered {
            document_id: doc.document_id,
            blob_existed: false,
            document_existed: false,
        };
        let mut writes = Vec::new();
        let out = records(&store, &proposal, &applied, &mut writes).unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(
            writes.as_slice(),
            [Write::Put {
                cf: Cf::ResidentSalts,
                ..
            }]
        ));
        let existed = Applied::DocumentRegistered {
            document_id: doc.document_id,
            blob_existed: true,
            document_existed: true,
        };
        assert!(records(&store, &proposal, &existed, &mut writes)
            .unwrap()
            .is_empty());
    }
}
