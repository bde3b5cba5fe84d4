//! Signed statements: grants as files and frames carry them (JSON), and
//! the canonical bytes their signatures cover.

use pki::{AccessRequest, Grant, GrantBody, IssueRecord, Signature, GRANT_JSON_LEN_MAX};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fixtures;

/// A sealed grant's JSON (`vault grant verify FILE`, `grant_issued` and
/// `grant_detail` responses): it parses or is refused; a parsed grant
/// round-trips through both its compact and its pretty (`to_json`) form,
/// its id is its body's, and offline verification against the fixture CA
/// answers without panicking (and, when it passes, for the grant's id and
/// a node's seal).
pub fn grant_json(data: &[u8]) {
    let Ok(grant) = Grant::from_json(data) else {
        return;
    };
    crate::json_round_trip(&grant);
    let pretty = grant.to_json().expect("a parsed grant serializes");
    if pretty.len() <= GRANT_JSON_LEN_MAX {
        assert_eq!(
            Grant::from_json(pretty.as_bytes()).ok(),
            Some(grant.clone())
        );
    }
    assert_eq!(grant.id(), grant.body.id());
    let _ = grant.body.check_shape();
    if let Ok(verified) = grant.verify(fixtures::ca_der(), &[]) {
        assert_eq!(verified.id, grant.id());
        assert_eq!(verified.node.role, pki::Role::Node);
        assert!(grant.verify_seal(&verified.node).is_ok());
        assert!(grant.body.check_shape().is_ok());
    }
}

/// A grant body (the consent a resident signs, in an `approve` request):
/// see [`canonical_pair`]; a body of good shape covers each of its
/// documents and no other.
pub fn grant_body(data: &[u8]) {
    canonical_pair::<GrantBody>(data, GrantBody::canonical_bytes, |body| {
        let _ = body.id();
        if body.check_shape().is_ok() {
            for doc in &body.documents {
                assert_eq!(body.covers(&doc.document_id), Some(doc));
            }
        }
    });
}

/// An access request (a department's, in a `create_request`): see
/// [`canonical_pair`]; its id depends on its signature too.
pub fn access_request(data: &[u8]) {
    canonical_pair::<AccessRequest>(data, AccessRequest::canonical_bytes, |request| {
        let a = request.id(&Signature([0; 64]));
        let b = request.id(&Signature([1; 64]));
        assert_ne!(a, b, "a request id binds the signature");
    });
}

/// An issue record (a `put`, and every document view): see
/// [`canonical_pair`]; its document id depends on its signature too.
pub fn issue_record(data: &[u8]) {
    canonical_pair::<IssueRecord>(data, IssueRecord::canonical_bytes, |record| {
        let a = record.document_id(&Signature([0; 64]));
        let b = record.document_id(&Signature([1; 64]));
        assert_ne!(a, b, "a document id binds the signature");
    });
}

/// Two statements from one input (split at the first NUL), each parsed as
/// JSON or refused. Each parsed one round-trips through JSON with the same
/// canonical bytes, and `more` holds for it; when both parse, they have
/// the same canonical bytes exactly when they are equal (no two
/// statements share what a signature covers).
fn canonical_pair<T>(data: &[u8], canonical: fn(&T) -> Vec<u8>, more: impl Fn(&T))
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (a, b) = crate::split_nul(data);
    let parse = |bytes: &[u8]| serde_json::from_slice::<T>(bytes).ok();
    let (a, b) = (parse(a), parse(b));
    for statement in [&a, &b].into_iter().flatten() {
        let json = crate::json_round_trip(statement);
        let again: T = serde_json::from_slice(&json).unwrap();
        assert_eq!(canonical(&again), canonical(statement));
        more(statement);
    }
    if let (Some(a), Some(b)) = (a, b) {
        assert_eq!(
            a == b,
            canonical(&a) == canonical(&b),
            "canonical bytes must be injective: {a:?} / {b:?}"
        );
    }
}
