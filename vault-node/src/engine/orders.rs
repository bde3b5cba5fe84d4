//! Statutory orders in the state machine: the records ([`OrderEntry`]),
//! their keys in [`Cf::Meta`], the reads, and the apply functions of the
//! order commands (file, approve, deny, extend the seal, disclose).
//!
//! **Sealed entries.** Every log entry about an order before its
//! disclosure (filed, approved or denied, the grant issued, each fetch and
//! revocation under it, each seal extension) carries an all-zero resident
//! tag, so it is in no resident's chain while sealed; its detail still
//! names the resident, bound by the entry's commitment. [`mark_sealed`]
//! remembers each one's log index under the order (`sealed/…`). The
//! disclosure entry carries the resident's tag and the count of sealed
//! entries; the resident then reads those entries and their proofs
//! (`Request::Disclosure`).
//!
//! Keys (all in [`Cf::Meta`]):
//! `order/<id 16>` → [`OrderEntry`] JSON;
//! `order_due/<seal_until u64 BE><id 16>` → empty, while undisclosed;
//! `order_by/<len u8><department><id 16>` → empty;
//! `sealed/<id 16><log index u64 BE>` → empty.

use pki::{GrantId, Name, RequestId, Role, SealExtension};
use vault_client::ErrorCode;

use crate::engine::log::LogRecord;
use crate::engine::meta::{Cf, MetaStore, Write};
use crate::engine::state::{
    encode, grant_index_key, index_key, put, read, stored_grant, Applied, GrantCounter, GrantEntry,
    GrantSide, StateError, StoredGrant,
};
pub use crate::engine::state::{OrderEntry, OrderStatus};
use crate::Refusal;

/// Most orders one due scan returns (the discloser runs again).
pub const DUE_SCAN_MAX: usize = 100;
/// Most sealed entries one order may list in its disclosure (a grant's most
/// uses, its issuing, approval, filing, a revocation and extensions).
pub const SEALED_ENTRIES_MAX: usize = pki::GRANT_USES_MAX as usize + 64;

const ORDER: &[u8] = b"order/";
const DUE: &[u8] = b"order_due/";
const BY: &[u8] = b"order_by/";
const SEALED: &[u8] = b"sealed/";

fn order_key(id: RequestId) -> Vec<u8> {
    [ORDER, id.as_bytes()].concat()
}

fn due_key(seal_until: i64, id: RequestId) -> Vec<u8> {
    [
        DUE,
        &(seal_until.max(0) as u64).to_be_bytes(),
        id.as_bytes(),
    ]
    .concat()
}

fn by_key(department: &Name, id: RequestId) -> Vec<u8> {
    [BY, &index_key(department.as_str(), id.as_bytes())[..]].concat()
}

/// Reads an order.
pub fn order(state: &dyn MetaStore, id: RequestId) -> Result<Option<OrderEntry>, StateError> {
    read(state, Cf::Meta, &order_key(id))
}

/// The order behind a grant, if the grant is statutory.
pub fn order_of_grant(
    state: &dyn MetaStore,
    grant_id: GrantId,
) -> Result<Option<OrderEntry>, StateError> {
    match stored_grant(state, grant_id)? {
        Some(g) => order(state, g.grant.body.request_id),
        None => Ok(None),
    }
}

/// Undisclosed orders whose seal ended at or before `now`, oldest seal
/// first, at most [`DUE_SCAN_MAX`].
pub fn due(state: &dyn MetaStore, now: i64) -> Result<Vec<RequestId>, StateError> {
    let mut out = Vec::new();
    for (key, _) in state.scan_prefix(Cf::Meta, DUE, DUE_SCAN_MAX)? {
        let Some(until) = key.get(DUE.len()..DUE.len() + 8) else {
            continue;
        };
        let until = u64::from_be_bytes(until.try_into().unwrap_or([0xff; 8]));
        if until > now.max(0) as u64 {
            break;
        }
        let id: [u8; 16] = key[key.len() - 16..]
            .try_into()
            .map_err(|_| StateError::Corrupt("short order due key".into()))?;
        out.push(RequestId::from_bytes(id));
    }
    Ok(out)
}

/// The key prefix of every order (paged for authorities and auditors).
pub const ORDER_PREFIX: &[u8] = ORDER;

/// The key prefix of a department's orders.
pub fn by_prefix(department: &Name) -> Vec<u8> {
    [
        BY,
        &crate::engine::state::index_prefix(department.as_str())[..],
    ]
    .concat()
}

/// The log indices of an order's sealed entries, ascending.
pub fn sealed_indices(state: &dyn MetaStore, id: RequestId) -> Result<Vec<u64>, StateError> {
    let prefix = [SEALED, id.as_bytes()].concat();
    let mut out = Vec::new();
    for (key, _) in state.scan_prefix(Cf::Meta, &prefix, SEALED_ENTRIES_MAX)? {
        let index: [u8; 8] = key[prefix.len()..]
            .try_into()
            .map_err(|_| StateError::Corrupt("sealed index key".into()))?;
        out.push(u64::from_be_bytes(index));
    }
    Ok(out)
}

/// Writes the `sealed/` marks of `records` (to be appended from log index
/// `first`): every entry with a resident in its detail and no tag belongs
/// to a sealed order, named by its request id or by its grant's.
pub fn mark_sealed(
    state: &dyn MetaStore,
    records: &[LogRecord],
    first: u64,
    writes: &mut Vec<Write>,
) -> Result<(), StateError> {
    for (i, record) in records.iter().enumerate() {
        let e = &record.entry;
        if e.resident_tag != [0; 32] || record.detail.resident.is_none() {
            continue;
        }
        let order_id = match (e.request_id, e.grant_id) {
            (Some(id), _) => Some(id),
            (None, Some(grant)) => stored_grant(state, grant)?.map(|g| g.grant.body.request_id),
            (None, None) => None,
        };
        if let Some(id) = order_id {
            let key = [SEALED, id.as_bytes(), &(first + i as u64).to_be_bytes()].concat();
            writes.push(put(Cf::Meta, key, Vec::new()));
        }
    }
    Ok(())
}

fn not_found(id: RequestId) -> StateError {
    Refusal::new(ErrorCode::OrderNotFound, format!("no order {id}")).into()
}

fn pending(state: &dyn MetaStore, id: RequestId) -> Result<OrderEntry, StateError> {
    let entry = order(state, id)?.ok_or_else(|| not_found(id))?;
    if entry.status != OrderStatus::Pending {
        return Err(Refusal::new(
            ErrorCode::OrderAlreadyDecided,
            format!("order {id} was already decided"),
        )
        .into());
    }
    if !entry.sealed() {
        return Err(Refusal::new(
            ErrorCode::OrderDisclosed,
            format!("order {id} was disclosed undecided; file a new order"),
        )
        .into());
    }
    Ok(entry)
}

/// Records an order (idempotent).
pub fn record(
    state: &dyn MetaStore,
    entry: &OrderEntry,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let id = entry.order_id;
    if order(state, id)?.is_none() {
        writes.push(put(Cf::Meta, order_key(id), encode(entry)?));
        writes.push(put(Cf::Meta, due_key(entry.seal_until, id), Vec::new()));
        writes.push(put(
            Cf::Meta,
            by_key(&entry.order.department, id),
            Vec::new(),
        ));
    }
    Ok(Applied::OrderRecorded { order_id: id })
}

/// Approves a pending order with its sealed grant: the grant's records as
/// for a consent (no resident-side grant index: the resident learns of it
/// by the disclosure).
pub fn approve(
    state: &dyn MetaStore,
    order_id: RequestId,
    grant: &GrantEntry,
    by: &Name,
    role: Role,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let mut entry = pending(state, order_id)?;
    let body = &grant.grant.body;
    if body.request_id != order_id {
        return Err(StateError::Conflict(format!(
            "the grant answers {}, not order {order_id}",
            body.request_id
        )));
    }
    let grant_id = grant.grant.id();
    if state.get(Cf::Grants, grant_id.as_bytes())?.is_some() {
        return Err(StateError::Conflict(format!(
            "grant {grant_id} already exists"
        )));
    }
    entry.status = OrderStatus::Approved {
        grant_id,
        by: by.clone(),
        role,
        at: grant.issued_at,
    };
    writes.push(put(Cf::Meta, order_key(order_id), encode(&entry)?));
    let id = grant_id.as_bytes();
    let stored = StoredGrant {
        grant: grant.grant.clone(),
        grantee_serial: grant.grantee_serial.clone(),
        issued_at: grant.issued_at,
    };
    let counter = GrantCounter {
        uses: 0,
        max_uses: body.max_uses,
        not_before: body.not_before,
        not_after: body.not_after,
        revoked: None,
        resident: body.resident.clone(),
        grantee: body.grantee.clone(),
        purpose: body.purpose.clone(),
    };
    writes.push(put(Cf::Grants, id.to_vec(), encode(&stored)?));
    writes.push(put(Cf::GrantCounters, id.to_vec(), encode(&counter)?));
    let by_grantee = grant_index_key(GrantSide::Grantee, body.grantee.as_str(), id);
    writes.push(put(Cf::GrantIndex, by_grantee, Vec::new()));
    Ok(Applied::GrantIssued { grant_id })
}

/// Denies a pending order.
pub fn deny(
    state: &dyn MetaStore,
    order_id: RequestId,
    by: &Name,
    at: i64,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let mut entry = pending(state, order_id)?;
    entry.status = OrderStatus::Denied { by: by.clone(), at };
    writes.push(put(Cf::Meta, order_key(order_id), encode(&entry)?));
    Ok(Applied::OrderDenied)
}

/// Moves an undisclosed order's seal end to an authority's signed new one.
pub fn extend(
    state: &dyn MetaStore,
    extension: &SealExtension,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let id = extension.order_id;
    let mut entry = order(state, id)?.ok_or_else(|| not_found(id))?;
    if !entry.sealed() {
        return Err(Refusal::new(
            ErrorCode::OrderDisclosed,
            format!("order {id} is already disclosed; a seal cannot be extended after it ends"),
        )
        .into());
    }
    if extension.signed_at >= entry.seal_until {
        return Err(Refusal::new(
            ErrorCode::OrderDisclosed,
            format!(
                "order {id}'s seal ended at {}; an ended seal cannot be extended",
                entry.seal_until
            ),
        )
        .into());
    }
    if extension.seal_until <= entry.seal_until {
        return Err(Refusal::new(
            ErrorCode::InvalidArgument,
            format!(
                "the new seal end {} is not after the current {}",
                extension.seal_until, entry.seal_until
            ),
        )
        .into());
    }
    writes.push(Write::Delete {
        cf: Cf::Meta,
        key: due_key(entry.seal_until, id),
    });
    entry.seal_until = extension.seal_until;
    writes.push(put(Cf::Meta, due_key(entry.seal_until, id), Vec::new()));
    writes.push(put(Cf::Meta, order_key(id), encode(&entry)?));
    Ok(Applied::SealExtended)
}

/// Discloses an order whose seal ended by `at` (idempotent: an order
/// already disclosed, or whose seal was extended past `at`, is left as is).
pub fn disclose(
    state: &dyn MetaStore,
    order_id: RequestId,
    at: i64,
    writes: &mut Vec<Write>,
) -> Result<Applied, StateError> {
    let mut entry = order(state, order_id)?.ok_or_else(|| not_found(order_id))?;
    if !entry.sealed() || entry.seal_until > at {
        return Ok(Applied::OrderDisclosed { disclosed: false });
    }
    writes.push(Write::Delete {
        cf: Cf::Meta,
        key: due_key(entry.seal_until, order_id),
    });
    entry.disclosed_at = Some(at);
    writes.push(put(Cf::Meta, order_key(order_id), encode(&entry)?));
    Ok(Applied::OrderDisclosed { disclosed: true })
}
