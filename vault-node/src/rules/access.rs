//! Who may do what: plain functions from (caller certificate, request,
//! stored record, now) to a decision. No I/O.
//!
//! Without a grant, a document may be read only by the department that
//! issued it and by the resident it belongs to (anyone else needs a grant,
//! see [`crate::rules::grants`]); a resident lists their own documents, a
//! department only the ones it issued.

use pki::{IssueRecord, PeerCert, ResidentId, Role, Signature};
use vault_client::wire::DOCUMENT_SIZE_MAX;
use vault_client::ErrorCode;

use crate::engine::state::DocumentEntry;
use crate::Refusal;

/// How far a record's issue time may be from the node's clock, in seconds.
pub const ISSUE_SKEW_S_MAX: i64 = 300;

/// The one role check: refuses (`forbidden`) a caller whose certificate
/// is not of `role`, saying what only that role may do, e.g.
/// `require_role(caller, Role::Node, "exchange blobs")` answers "only nodes
/// exchange blobs; tax-office holds a department certificate".
pub fn require_role(caller: &PeerCert, role: Role, action: &str) -> Result<(), Refusal> {
    if caller.role == role {
        return Ok(());
    }
    Err(Refusal::new(
        ErrorCode::Forbidden,
        format!(
            "only {}s {action}; {} holds a {} certificate",
            role.as_str(),
            caller.name,
            caller.role.as_str()
        ),
    ))
}

/// Checks a put: the caller is a department, names itself as issuer, signed
/// the record with the key of the certificate it connected with, at a
/// plausible time, for a size the vault accepts.
pub fn check_put(
    caller: &PeerCert,
    record: &IssueRecord,
    signature: &Signature,
    now: i64,
) -> Result<(), Refusal> {
    require_role(caller, Role::Department, "put documents")?;
    if record.issuer != caller.name {
        return Err(Refusal::new(
            ErrorCode::IssuerMismatch,
            format!(
                "the record names issuer {} but you connected as {}",
                record.issuer, caller.name
            ),
        ));
    }
    record.verify(signature, caller).map_err(|e| {
        Refusal::new(
            ErrorCode::BadSignature,
            format!("the record's signature does not verify with your certificate: {e}"),
        )
    })?;
    check_issue_time(record.issued_at, now)?;
    if record.size > DOCUMENT_SIZE_MAX {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("documents are limited to {DOCUMENT_SIZE_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Checks a read of a stored document.
pub fn check_read(caller: &PeerCert, entry: &DocumentEntry) -> Result<(), Refusal> {
    let record = &entry.record;
    let allowed = match caller.role {
        Role::Department => caller.name == record.issuer,
        Role::Resident => caller.name.as_str() == record.resident.as_str(),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "{} {} may not read document {}: only its issuer and its resident may",
                caller.role.as_str(),
                caller.name,
                entry.document_id
            ),
        ))
    }
}

/// What a caller may list for a resident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    /// Every document of the resident (the resident themself).
    All,
    /// Only documents issued by this department.
    IssuedBy(pki::Name),
}

/// Checks a listing and returns its scope.
pub fn check_list(caller: &PeerCert, resident: &ResidentId) -> Result<ListScope, Refusal> {
    match caller.role {
        Role::Resident if caller.name.as_str() == resident.as_str() => Ok(ListScope::All),
        Role::Department => Ok(ListScope::IssuedBy(caller.name.clone())),
        _ => Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "{} {} may not list the documents of {resident}",
                caller.role.as_str(),
                caller.name
            ),
        )),
    }
}

/// Refuses an issue time more than [`ISSUE_SKEW_S_MAX`] from `now`, in
/// either direction. The difference is taken in `i128`, so no time a peer
/// sends (`i64::MIN` included) overflows.
pub fn check_issue_time(issued_at: i64, now: i64) -> Result<(), Refusal> {
    let skew = i128::from(issued_at) - i128::from(now);
    if skew.unsigned_abs() > u128::from(ISSUE_SKEW_S_MAX.unsigned_abs()) {
        return Err(Refusal::new(
            ErrorCode::ClockSkew,
            format!(
                "the record's issue time is {skew}s from the node's clock (limit {ISSUE_SKEW_S_MAX}s); check the clock"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use pki::{ContentHash, DocumentKind, Name};

    fn cert(role: Role, name: &str) -> PeerCert {
        PeerCert {
            role,
            name: Name::parse(name).unwrap(),
            serial_hex: "01".into(),
            not_before: 0,
            not_after: i64::MAX,
            public_key: vec![0; 32],
            key_id: [0; 32],
            issuer_cn: "ca".into(),
            cluster: None,
        }
    }

    fn entry() -> DocumentEntry {
        let record = IssueRecord {
            resident: ResidentId::parse("resident-1").unwrap(),
            kind: DocumentKind::parse("id-card").unwrap(),
            content_hash: ContentHash([1; 32]),
            size: 1,
            issued_at: 0,
            issuer: Name::parse("civil-affairs").unwrap(),
        };
        let signature = Signature([0; 64]);
        DocumentEntry {
            document_id: record.document_id(&signature),
            record,
            signature,
            issuer_cert: vec![],
            registered_at: 0,
        }
    }

    #[test]
    fn issue_times_far_off_are_refused_without_overflow() {
        let now = 1_800_000_000;
        assert!(check_issue_time(now, now).is_ok());
        assert!(check_issue_time(now + ISSUE_SKEW_S_MAX, now).is_ok());
        assert!(check_issue_time(now - ISSUE_SKEW_S_MAX, now).is_ok());
        for at in [
            now + ISSUE_SKEW_S_MAX + 1,
            now - ISSUE_SKEW_S_MAX - 1,
            i64::MIN,
            i64::MAX,
        ] {
            let refusal = check_issue_time(at, now).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::ClockSkew, "{at}");
        }
        assert_eq!(
            check_issue_time(i64::MIN, i64::MAX).unwrap_err().code,
            ErrorCode::ClockSkew
        );
    }

    #[test]
    fn only_issuer_and_resident_read() {
        let e = entry();
        assert!(check_read(&cert(Role::Department, "civil-affairs"), &e).is_ok());
        assert!(check_read(&cert(Role::Resident, "resident-1"), &e).is_ok());
        for (role, name) in [
            (Role::Department, "housing-bureau"),
            (Role::Resident, "resident-2"),
            (Role::Auditor, "auditor"),
            (Role::Node, "node-1"),
            // A resident certificate named like the issuing department.
            (Role::Resident, "civil-affairs"),
            // A department certificate named like the resident.
            (Role::Department, "resident-1"),
        ] {
            let err = check_read(&cert(role, name), &e).unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden, "{name}");
        }
    }

    #[test]
    fn list_scopes() {
        let r1 = ResidentId::parse("resident-1").unwrap();
        assert_eq!(
            check_list(&cert(Role::Resident, "resident-1"), &r1).unwrap(),
            ListScope::All
        );
        assert!(check_list(&cert(Role::Resident, "resident-2"), &r1).is_err());
        assert!(check_list(&cert(Role::Auditor, "auditor"), &r1).is_err());
        assert_eq!(
            check_list(&cert(Role::Department, "tax-office"), &r1).unwrap(),
            ListScope::IssuedBy(Name::parse("tax-office").unwrap())
        );
    }

    #[test]
    fn put_requires_a_department_naming_itself() {
        let e = entry();
        let err = check_put(
            &cert(Role::Resident, "resident-1"),
            &e.record,
            &e.signature,
            0,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        let err = check_put(
            &cert(Role::Department, "tax-office"),
            &e.record,
            &e.signature,
            0,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::IssuerMismatch);
        let err = check_put(
            &cert(Role::Department, "civil-affairs"),
            &e.record,
            &e.signature,
            0,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::BadSignature);
    }
}
