//! [`apply`]: one command on top of the state, as a decision and the writes
//! that make it so — the command-log entry, `applied_index`, the records the
//! command changes and its transparency-log entries ([`crate::engine::entries`],
//! [`crate::engine::log`]) — with no I/O, no clock and no randomness (the
//! proposal's [`Seed`](crate::engine::state::Seed) carries them).
//!
//! **Invariant:** a refused command returns an error and no writes.

use pki::{GrantId, RequestId};
use vault_client::ErrorCode;

use crate::engine::meta::{Cf, MetaStore, Write};
use crate::engine::state::*;
use crate::Refusal;

/// Applies `command` as log entry `index` on top of `state`: returns what it
/// did and the writes that make it so (including the log entry itself).
pub fn apply(
    state: &dyn MetaStore,
    index: u64,
    proposal: &Proposal,
) -> Result<(Applied, Vec<Write>), StateError> {
    let command = &proposal.command;
    let mut writes = vec![
        Write::Put {
            cf: Cf::Commands,
            key: index.to_be_bytes().to_vec(),
            value: encode(proposal)?,
        },
        Write::Put {
            cf: Cf::Meta,
            key: APPLIED_INDEX_KEY.to_vec(),
            value: index.to_be_bytes().to_vec(),
        },
    ];
    let applied = match command {
        Command::RegisterDocument(entry) => register_document(state, entry, &mut writes)?,
        Command::RecordRequest(entry) => {
            record_request(state, entry, proposal.seed.at, &mut writes)?
        }
        Command::IssueGrant(entry) => issue_grant(state, entry, &mut writes)?,
        Command::DenyRequest { request_id, at } => {
            deny_request(state, *request_id, *at, &mut writes)?
        }
        Command::UseGrant { grant_id, at, .. } => use_grant(state, *grant_id, *at, &mut writes)?,
        Command::RevokeGrant {
            grant_id,
            by,
            role,
            at,
        } => {
            let revocation = GrantRevocation {
                by: by.clone(),
                role: *role,
                at: *at,
            };
            revoke_grant(state, *grant_id, revocation, &mut writes)?
        }
        Command::RecordOrder(entry) => crate::engine::orders::record(state, entry, &mut writes)?,
        Command::ApproveOrder {
            order_id,
            grant,
            by,
            role,
        } => crate::engine::orders::approve(state, *order_id, grant, by, *role, &mut writes)?,
        Command::DenyOrder { order_id, by, at } => {
            crate::engine::orders::deny(state, *order_id, by, *at, &mut writes)?
        }
        Command::ExtendSeal { extension, .. } => {
            crate::engine::orders::extend(state, extension, &mut writes)?
        }
        Command::DiscloseOrder { order_id, at } => {
            crate::engine::orders::disclose(state, *order_id, *at, &mut writes)?
        }
        Command::RecordAccess { .. }
        | Command::RecordRefusal { .. }
        | Command::RecordCertificateRevocations { .. } => Applied::Recorded,
    };
    let records = crate::engine::entries::records(state, proposal, &applied, &mut writes)?;
    // A fetch leaves exactly one entry: its index is the log's size now.
    let first_index = crate::engine::log::size(state)?;
    let fetched = !records.is_empty();
    crate::engine::orders::mark_sealed(state, &records, first_index, &mut writes)?;
    crate::engine::log::append_all(state, records, &mut writes)?;
    let applied = match (applied, command) {
        (Applied::GrantUsed { use_number, .. }, _) => Applied::GrantUsed {
            use_number,
            log_index: fetched.then_some(first_index),
        },
        (Applied::Recorded, Command::RecordAccess { .. }) if fetched => Applied::AccessRecorded {
            log_index: first_index,
        },
        (other, _) => other,
    };
    Ok((applied, writes))
}

fn register_document(
    state: &dyn MetaStore,
    entry: &DocumentEntry,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let hash = entry.record.content_hash;
    let existing_blob: Option<BlobEntry> = read(state, Cf::Blobs, hash.as_bytes())?;
    if let Some(blob) = &existing_blob {
        if blob.size != entry.record.size {
            return Err(StateError::Conflict(format!(
                "blob {hash} is registered with {} bytes, not {}",
                blob.size, entry.record.size
            )));
        }
    }
    let document_existed = state
        .get(Cf::Documents, entry.document_id.as_bytes())?
        .is_some();
    if !document_existed {
        writes.push(Write::Put {
            cf: Cf::Documents,
            key: entry.document_id.as_bytes().to_vec(),
            value: encode(entry)?,
        });
        writes.push(Write::Put {
            cf: Cf::ByResident,
            key: resident_key(
                &entry.record.resident,
                entry.registered_at,
                entry.document_id,
            ),
            value: Vec::new(),
        });
    }
    if existing_blob.is_none() {
        let blob = BlobEntry {
            size: entry.record.size,
            first_registered_at: entry.registered_at,
        };
        writes.push(Write::Put {
            cf: Cf::Blobs,
            key: hash.as_bytes().to_vec(),
            value: encode(&blob)?,
        });
    }
    Ok(Applied::DocumentRegistered {
        document_id: entry.document_id,
        blob_existed: existing_blob.is_some(),
        document_existed,
    })
}

fn record_request(
    state: &dyn MetaStore,
    entry: &RequestEntry,
    at: i64,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let key = entry.request_id.as_bytes();
    if state.get(Cf::Requests, key)?.is_none() {
        // Expired requests leave the pending index as the quota is counted.
        for stale in check_open_quota(state, entry, at)? {
            writes.push(Write::Delete {
                cf: Cf::PendingRequests,
                key: stale,
            });
        }
        writes.push(put(Cf::Requests, key.to_vec(), encode(entry)?));
        writes.push(put(
            Cf::PendingRequests,
            index_key(entry.request.resident.as_str(), key),
            Vec::new(),
        ));
    }
    Ok(Applied::RequestRecorded {
        request_id: entry.request_id,
    })
}

/// Refuses (`limit.requests`) a request whose department already has
/// [`REQUESTS_OPEN_PER_DEPARTMENT_MAX`] open requests for the resident, or
/// whose resident has [`REQUESTS_PENDING_SCAN_MAX`] pending; otherwise
/// answers the pending-index keys of the resident's expired requests.
fn check_open_quota(
    state: &dyn MetaStore,
    entry: &RequestEntry,
    at: i64,
) -> Result<Vec<Vec<u8>>, StateError> {
    let limit =
        |message: String| -> StateError { Refusal::new(ErrorCode::RequestLimit, message).into() };
    let prefix = index_prefix(entry.request.resident.as_str());
    let keys = state.scan_prefix(Cf::PendingRequests, &prefix, REQUESTS_PENDING_SCAN_MAX)?;
    let (scanned, mut open, mut stale) = (keys.len(), 0usize, Vec::new());
    for (key, _) in keys {
        let Some(other) = request(state, RequestId::from_bytes(tail_id(&key)?))? else {
            continue;
        };
        if other.expired_at(at) {
            stale.push(key);
        } else if other.request.department == entry.request.department {
            open += 1;
        }
    }
    if open >= REQUESTS_OPEN_PER_DEPARTMENT_MAX {
        return Err(limit(format!(
            "your department has {open} open requests for this resident, the most it may; \
             wait until the resident decides some or they expire"
        )));
    }
    if stale.is_empty() && scanned >= REQUESTS_PENDING_SCAN_MAX {
        return Err(limit(format!(
            "this resident has {REQUESTS_PENDING_SCAN_MAX} pending requests, the most a node keeps"
        )));
    }
    Ok(stale)
}

fn pending(state: &dyn MetaStore, id: RequestId) -> Result<RequestEntry, StateError> {
    let entry = request(state, id)?.ok_or_else(|| {
        Refusal::new(
            ErrorCode::RequestNotFound,
            format!("no access request {id}"),
        )
    })?;
    if entry.status != RequestStatus::Pending {
        return Err(Refusal::new(
            ErrorCode::RequestAlreadyDecided,
            format!("request {id} was already decided; ask the department for a new request"),
        )
        .into());
    }
    Ok(entry)
}

/// The refusal of an approval that came too late.
fn expired(id: RequestId) -> StateError {
    Refusal::new(
        ErrorCode::RequestExpired,
        format!("request {id} expired before it was approved; ask the department for a new one"),
    )
    .into()
}

fn decide(
    mut entry: RequestEntry,
    status: RequestStatus,
    writes: &mut Vec<Write>,
) -> Result<(), StateError> {
    let key = entry.request_id.as_bytes().to_vec();
    writes.push(Write::Delete {
        cf: Cf::PendingRequests,
        key: index_key(entry.request.resident.as_str(), &key),
    });
    entry.status = status;
    writes.push(put(Cf::Requests, key, encode(&entry)?));
    Ok(())
}

fn issue_grant(
    state: &dyn MetaStore,
    entry: &GrantEntry,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let body = &entry.grant.body;
    let request = pending(state, body.request_id)?;
    if request.expired_at(entry.issued_at) {
        return Err(expired(body.request_id));
    }
    let grant_id = entry.grant.id();
    if state.get(Cf::Grants, grant_id.as_bytes())?.is_some() {
        return Err(StateError::Conflict(format!(
            "grant {grant_id} already exists"
        )));
    }
    let at = entry.issued_at;
    decide(request, RequestStatus::Approved { grant_id, at }, writes)?;
    let id = grant_id.as_bytes();
    let stored = StoredGrant {
        grant: entry.grant.clone(),
        grantee_serial: entry.grantee_serial.clone(),
        issued_at: entry.issued_at,
    };
    let counter = GrantCounter {
        uses: entry.uses,
        max_uses: body.max_uses,
        not_before: body.not_before,
        not_after: body.not_after,
        revoked: entry.revoked.clone(),
        resident: body.resident.clone(),
        grantee: body.grantee.clone(),
        purpose: body.purpose.clone(),
    };
    writes.push(put(Cf::Grants, id.to_vec(), encode(&stored)?));
    writes.push(put(Cf::GrantCounters, id.to_vec(), encode(&counter)?));
    let by_resident = grant_index_key(GrantSide::Resident, body.resident.as_str(), id);
    writes.push(put(Cf::GrantIndex, by_resident, Vec::new()));
    let by_grantee = grant_index_key(GrantSide::Grantee, body.grantee.as_str(), id);
    writes.push(put(Cf::GrantIndex, by_grantee, Vec::new()));
    Ok(Applied::GrantIssued { grant_id })
}

fn deny_request(
    state: &dyn MetaStore,
    request_id: RequestId,
    at: i64,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let request = pending(state, request_id)?;
    decide(request, RequestStatus::Denied { at }, writes)?;
    Ok(Applied::RequestDenied)
}

fn use_grant(
    state: &dyn MetaStore,
    grant_id: GrantId,
    at: i64,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let mut counter = grant_counter(state, grant_id)?
        .ok_or_else(|| Refusal::new(ErrorCode::GrantNotFound, format!("no grant {grant_id}")))?;
    crate::engine::grant_state::check_state(grant_id, &counter, at)?;
    counter.uses = counter.uses.checked_add(1).ok_or_else(|| {
        Refusal::new(
            ErrorCode::GrantExhausted,
            format!("grant {grant_id} has no uses left"),
        )
    })?;
    let use_number = counter.uses;
    writes.push(put(
        Cf::GrantCounters,
        grant_id.as_bytes().to_vec(),
        encode(&counter)?,
    ));
    Ok(Applied::GrantUsed {
        use_number,
        log_index: None,
    })
}

fn revoke_grant(
    state: &dyn MetaStore,
    grant_id: GrantId,
    revocation: GrantRevocation,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let mut counter = grant_counter(state, grant_id)?
        .ok_or_else(|| Refusal::new(ErrorCode::GrantNotFound, format!("no grant {grant_id}")))?;
    if counter.revoked.is_none() {
        counter.revoked = Some(revocation);
        writes.push(put(
            Cf::GrantCounters,
            grant_id.as_bytes().to_vec(),
            encode(&counter)?,
        ));
    }
    Ok(Applied::GrantRevoked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::entries::fixtures::{body, document, grant, request};
    use crate::engine::state::Seed;
    use crate::storage::store::MemStore;

    /// "Now" for the commands; requests expire `OPEN_S` after it.
    const NOW: i64 = 10_000;
    const OPEN_S: i64 = 600;

    /// Applies `command` at `at` as entry `index` and writes its writes.
    fn run(store: &MemStore, index: u64, command: Command, at: i64) -> Result<Applied, StateError> {
        let seed = Seed {
            at,
            nonce: [index as u8; 32],
            salt: [7; 32],
            salt_proofs: Vec::new(),
        };
        let proposal = Proposal { command, seed };
        let (applied, writes) = apply(store, index, &proposal)?;
        store.write(&writes).unwrap();
        Ok(applied)
    }

    /// A store holding resident-1's document, and a request for it by
    /// `department` (vary it with [`nth`]).
    fn setup(department: &str) -> (MemStore, RequestEntry) {
        let store = MemStore::new();
        let doc = document("resident-1", 1, NOW);
        run(&store, 1, Command::RegisterDocument(doc.clone()), NOW).unwrap();
        (store, request(&[&doc], department, 3_600))
    }

    /// The `n`-th distinct request like `base`, open until `NOW + OPEN_S`.
    fn nth(base: &RequestEntry, n: u32) -> RequestEntry {
        let mut entry = base.clone();
        entry.request.nonce[..4].copy_from_slice(&n.to_be_bytes());
        entry.request_id = entry.request.id(&entry.signature);
        entry.expires_at = Some(NOW + OPEN_S);
        entry
    }

    fn pending_keys(store: &MemStore) -> usize {
        store
            .scan_prefix(Cf::PendingRequests, &[], usize::MAX)
            .unwrap()
            .len()
    }

    fn code(result: Result<Applied, StateError>) -> ErrorCode {
        Refusal::from(result.unwrap_err()).code
    }

    #[test]
    fn a_department_gets_its_quota_of_open_requests_and_no_more() {
        let (store, base) = setup("tax-office");
        let mut index = 2;
        for n in 0..REQUESTS_OPEN_PER_DEPARTMENT_MAX as u32 {
            run(&store, index, Command::RecordRequest(nth(&base, n)), NOW).unwrap();
            index += 1;
        }
        let over = nth(&base, 9_999);
        let refused = run(&store, index, Command::RecordRequest(over.clone()), NOW);
        assert_eq!(code(refused), ErrorCode::RequestLimit);
        // A retry of a recorded request is not a new one.
        let again = run(&store, index, Command::RecordRequest(nth(&base, 0)), NOW);
        assert!(again.is_ok());
        // Another department has its own quota.
        let mut other = nth(&base, 1);
        other.request.department = pki::Name::parse("civil-affairs").unwrap();
        other.request_id = other.request.id(&other.signature);
        run(&store, index + 1, Command::RecordRequest(other), NOW).unwrap();
        // Once they expire, they leave the pending index and free the quota.
        let later = NOW + OPEN_S + 1;
        run(&store, index + 2, Command::RecordRequest(over), later).unwrap();
        assert_eq!(pending_keys(&store), 1, "the 101 expired ones were purged");
    }

    #[test]
    fn an_expired_request_cannot_be_approved_even_by_a_late_proposal() {
        let (store, base) = setup("tax-office");
        let entry = nth(&base, 1);
        run(&store, 2, Command::RecordRequest(entry.clone()), NOW).unwrap();
        let issue = |at: i64| {
            Command::IssueGrant(GrantEntry {
                grant: grant(body(&entry, at, 1)),
                grantee_serial: "0a0b".to_string(),
                issued_at: at,
                uses: 0,
                revoked: None,
            })
        };
        let late = NOW + OPEN_S + 1;
        assert_eq!(
            code(run(&store, 3, issue(late), late)),
            ErrorCode::RequestExpired
        );
        let on_time = NOW + OPEN_S;
        assert!(run(&store, 3, issue(on_time), on_time).is_ok());
    }
}
