//! Which log entries each command produces: plain functions from the
//! command, its seed, what applying it did and the state before it, to
//! [`LogRecord`]s. No I/O beyond reads through the state machine's view.
//!
//! **Invariant:** entries carry no names of residents and no document
//! content: a resident appears as a salted tag, details as commitments.

use pki::{LogDetail, LogEntry, LogEvent, ResidentId, Role};

use crate::engine::log::{LogRecord, Salts};
use crate::engine::meta::{MetaStore, Write};
use crate::engine::state::{self, Applied, Command, Proposal, StateError};

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
        out: Vec::new(),
    };
    match (&proposal.command, applied) {
        (
            Command::RegisterDocument(e),
            Applied::DocumentRegistered {
                document_existed: false,
                ..
            },
        ) => {
            let mut entry = b.entry(
                LogEvent::DocumentIssued,
                Role::Department,
                e.record.issuer.as_str(),
            );
            entry.document_id = Some(e.document_id);
            b.push(
                entry,
                Some(&e.record.resident),
                Some(e.record.kind.as_str()),
                None,
                writes,
            )?;
        }
        (Command::RecordRequest(r), _) => {
            let mut entry = b.entry(
                LogEvent::RequestMade,
                Role::Department,
                r.request.department.as_str(),
            );
            entry.request_id = Some(r.request_id);
            b.push(
                entry,
                Some(&r.request.resident),
                None,
                Some(r.request.purpose.as_str()),
                writes,
            )?;
        }
        (Command::IssueGrant(g), Applied::GrantIssued { grant_id }) => {
            let body = &g.grant.body;
            let mut approval = b.entry(LogEvent::Approval, Role::Resident, RESIDENT_ACTOR);
            approval.request_id = Some(body.request_id);
            b.push(
                approval,
                Some(&body.resident),
                None,
                Some(body.purpose.as_str()),
                writes,
            )?;
            let mut issued = b.entry(
                LogEvent::GrantIssued,
                Role::Department,
                body.grantee.as_str(),
            );
            issued.request_id = Some(body.request_id);
            issued.grant_id = Some(*grant_id);
            issued.not_before = body.not_before;
            issued.not_after = body.not_after;
            issued.max_uses = body.max_uses;
            b.push(
                issued,
                Some(&body.resident),
                None,
                Some(body.purpose.as_str()),
                writes,
            )?;
        }
        (Command::DenyRequest { request_id, .. }, _) => {
            let resident = state::request(state, *request_id)?.map(|r| r.request.resident);
            let mut entry = b.entry(LogEvent::Denial, Role::Resident, RESIDENT_ACTOR);
            entry.request_id = Some(*request_id);
            b.push(entry, resident.as_ref(), None, None, writes)?;
        }
        (
            Command::UseGrant {
                grant_id,
                document_id,
                at,
            },
            Applied::GrantUsed { use_number },
        ) => {
            let counter = state::grant_counter(state, *grant_id)?;
            let (resident, grantee, purpose) = match &counter {
                Some(c) => (
                    Some(c.resident.clone()),
                    c.grantee.to_string(),
                    Some(c.purpose.to_string()),
                ),
                None => (None, String::new(), None),
            };
            let kind = state::document(state, *document_id)?.map(|d| d.record.kind.to_string());
            let mut entry = b.entry(LogEvent::Fetch, Role::Department, &grantee);
            // The time the use was checked against the grant's window.
            entry.time = *at;
            entry.document_id = Some(*document_id);
            entry.grant_id = Some(*grant_id);
            entry.use_number = *use_number;
            b.push(
                entry,
                resident.as_ref(),
                kind.as_deref(),
                purpose.as_deref(),
                writes,
            )?;
        }
        (
            Command::RecordAccess {
                document_id,
                role,
                by,
            },
            _,
        ) => {
            let doc = state::document(state, *document_id)?;
            let actor = if *role == Role::Resident {
                RESIDENT_ACTOR
            } else {
                by.as_str()
            };
            let mut entry = b.entry(LogEvent::Fetch, *role, actor);
            entry.document_id = Some(*document_id);
            let kind = doc.as_ref().map(|d| d.record.kind.to_string());
            b.push(
                entry,
                doc.as_ref().map(|d| &d.record.resident),
                kind.as_deref(),
                None,
                writes,
            )?;
        }
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
            let resident = match document_id {
                Some(id) => state::document(state, *id)?.map(|d| d.record.resident),
                None => None,
            };
            let actor = if *role == Role::Resident {
                RESIDENT_ACTOR
            } else {
                by.as_str()
            };
            let mut entry = b.entry(LogEvent::Refusal, *role, actor);
            entry.document_id = *document_id;
            entry.grant_id = *grant_id;
            entry.request_id = *request_id;
            entry.code = code.clone();
            b.push(entry, resident.as_ref(), None, None, writes)?;
        }
        (
            Command::RevokeGrant {
                grant_id, role, by, ..
            },
            _,
        ) => {
            let counter = state::grant_counter(state, *grant_id)?;
            let actor = if *role == Role::Resident {
                RESIDENT_ACTOR
            } else {
                by.as_str()
            };
            let mut entry = b.entry(LogEvent::Revoke, *role, actor);
            entry.grant_id = Some(*grant_id);
            b.push(
                entry,
                counter.as_ref().map(|c| &c.resident),
                None,
                None,
                writes,
            )?;
        }
        (Command::RecordCertificateRevocations { serials }, _) => {
            for serial in serials {
                let marker = format!("revoked_serial/{serial}").into_bytes();
                if state.get(crate::engine::meta::Cf::Meta, &marker)?.is_some() {
                    continue;
                }
                writes.push(Write::Put {
                    cf: crate::engine::meta::Cf::Meta,
                    key: marker,
                    value: Vec::new(),
                });
                let mut entry = b.entry(LogEvent::CertificateRevoked, Role::Node, "district-ca");
                entry.code = serial.chars().take(64).collect();
                b.push(entry, None, None, None, writes)?;
            }
        }
        _ => {}
    }
    Ok(b.out)
}

struct Builder<'a> {
    state: &'a dyn MetaStore,
    proposal: &'a Proposal,
    salts: Salts,
    out: Vec<LogRecord>,
}

impl Builder<'_> {
    fn entry(&self, event: LogEvent, actor_role: Role, actor: &str) -> LogEntry {
        LogEntry {
            event,
            time: self.proposal.seed.at,
            actor_role,
            actor: actor.to_string(),
            resident_tag: [0; 32],
            document_id: None,
            request_id: None,
            grant_id: None,
            use_number: 0,
            code: String::new(),
            not_before: 0,
            not_after: 0,
            max_uses: 0,
            commitment: [0; 32],
        }
    }

    fn push(
        &mut self,
        mut entry: LogEntry,
        resident: Option<&ResidentId>,
        kind: Option<&str>,
        purpose: Option<&str>,
        writes: &mut Vec<Write>,
    ) -> Result<(), StateError> {
        if let Some(resident) = resident {
            let fresh = self.proposal.seed.salt_for(resident);
            entry.resident_tag = self.salts.tag(self.state, resident, fresh, writes)?;
        }
        let detail = LogDetail {
            resident: resident.cloned(),
            kind: kind.map(str::to_string),
            purpose: purpose.map(str::to_string),
            nonce: self.proposal.seed.nonce_for(self.out.len()),
        };
        entry.commitment = detail.commitment();
        self.out.push(LogRecord { entry, detail });
        Ok(())
    }
}
