//! Grant rules as plain functions (no I/O but loading the registry file):
//! the purpose registry, what an approval may contain (narrow, never
//! widen), and every check a fetch under a grant must pass. Plus the cache
//! of verified grant signatures.
//!
//! **Invariant:** the cache holds only the fact "these exact grant bytes
//! carry valid signatures"; revocation, use counts and time are read from
//! state on every use, so a cached entry can never outlive a revocation.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use pki::{DocumentId, Grant, GrantBody, Name, PeerCert, Purpose, Role};
use serde::{Deserialize, Serialize};
use vault_client::ErrorCode;

pub use crate::engine::grant_state::{check_state, GRANT_SKEW_S};
use crate::engine::state::{GrantCounter, RequestEntry, StoredGrant};
use crate::Refusal;

/// Verified grants remembered; the cache is cleared when it fills.
pub const GRANT_CACHE_MAX: usize = 100_000;
/// Most purposes a registry may hold.
pub const PURPOSES_MAX: usize = 10_000;
/// Latest an approval's `not_before` may be after the approval, in
/// seconds, beyond the clock skew allowance: the request's ttl, and never
/// more than the longest a request stays open (30 days).
pub const GRANT_START_DELAY_S_MAX: i64 = crate::engine::state::REQUEST_OPEN_S_MAX as i64;

/// One registered purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeInfo {
    /// The code departments use.
    pub code: Purpose,
    /// What it is for, shown to residents (English).
    pub description: String,
    /// [`PurposeInfo::description`] in Chinese (zh-CN); absent in older
    /// registry files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_zh: Option<String>,
    /// The law or regulation that allows it (English).
    pub legal_basis: String,
    /// [`PurposeInfo::legal_basis`] in Chinese (zh-CN); absent in older
    /// registry files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis_zh: Option<String>,
    /// Longest validity a request for it may ask, in seconds.
    pub ttl_s_max: u64,
    /// Present when the purpose is statutory (orders, no consent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statutory: Option<vault_client::wire::Statutory>,
}

/// The purposes this node accepts, loaded from a JSON file.
#[derive(Debug, Clone, Default)]
pub struct PurposeRegistry {
    purposes: HashMap<Purpose, PurposeInfo>,
}

impl PurposeRegistry {
    /// Loads a JSON array of [`PurposeInfo`].
    pub fn load(path: &Path) -> Result<Self, Refusal> {
        let bytes = std::fs::read(path).map_err(|e| {
            Refusal::new(
                ErrorCode::LocalIo,
                format!("cannot read the purpose registry {}: {e}", path.display()),
            )
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses a registry file's bytes (a JSON array of [`PurposeInfo`]);
    /// `source` names the file in the error. The pure part of
    /// [`PurposeRegistry::load`] (fuzzed: `fuzz/`).
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, Refusal> {
        let list: Vec<PurposeInfo> = serde_json::from_slice(bytes).map_err(|e| {
            Refusal::new(
                ErrorCode::InvalidArgument,
                format!("{source} is not a purpose registry: {e}"),
            )
        })?;
        Self::from_list(list)
    }

    /// Builds a registry from a list.
    pub fn from_list(list: Vec<PurposeInfo>) -> Result<Self, Refusal> {
        if list.len() > PURPOSES_MAX {
            return Err(Refusal::new(
                ErrorCode::InvalidArgument,
                "too many purposes",
            ));
        }
        Ok(PurposeRegistry {
            purposes: list.into_iter().map(|p| (p.code.clone(), p)).collect(),
        })
    }

    /// Looks a purpose up.
    pub fn get(&self, code: &Purpose) -> Result<&PurposeInfo, Refusal> {
        self.purposes.get(code).ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownPurpose,
                format!("purpose {code} is not in this district's purpose registry"),
            )
        })
    }

    /// Every registered purpose, in code order.
    pub fn list(&self) -> Vec<&PurposeInfo> {
        let mut list: Vec<&PurposeInfo> = self.purposes.values().collect();
        list.sort_by(|a, b| a.code.cmp(&b.code));
        list
    }

    /// The development registry: a few real-looking purposes, in English
    /// and Chinese.
    pub fn development() -> Vec<PurposeInfo> {
        let day = 24 * 3600;
        [
            (
                "housing-subsidy",
                [
                    "Assess an application for a housing subsidy",
                    "审核住房补贴申请",
                ],
                [
                    "Housing Subsidy Regulation, art. 12",
                    "《住房补贴条例》第十二条",
                ],
                90 * day,
            ),
            (
                "marriage-registration",
                ["Register a marriage", "办理结婚登记"],
                ["Civil Status Act, art. 31", "《婚姻登记法》第三十一条"],
                30 * day,
            ),
            (
                "residence-permit",
                ["Decide on a residence permit", "审批居住证"],
                ["Residence Act, art. 8", "《居住证条例》第八条"],
                60 * day,
            ),
            (
                "vehicle-registration",
                ["Register or transfer a vehicle", "办理机动车登记或过户"],
                ["Road Traffic Act, art. 19", "《道路交通安全法》第十九条"],
                14 * day,
            ),
            (
                "tax-assessment",
                ["Assess income tax", "核定个人所得税"],
                [
                    "Tax Administration Act, art. 47",
                    "《税收征收管理法》第四十七条",
                ],
                180 * day,
            ),
        ]
        .into_iter()
        .filter_map(
            |(code, [description, description_zh], [legal_basis, legal_basis_zh], ttl_s_max)| {
                Some(PurposeInfo {
                    code: Purpose::parse(code).ok()?,
                    description: description.to_string(),
                    description_zh: Some(description_zh.to_string()),
                    legal_basis: legal_basis.to_string(),
                    legal_basis_zh: Some(legal_basis_zh.to_string()),
                    ttl_s_max,
                    statutory: None,
                })
            },
        )
        .chain(Purpose::parse("criminal-investigation").ok().map(|code| {
            PurposeInfo {
                code,
                description: "Investigate a criminal offence".to_string(),
                description_zh: Some("侦查刑事案件".to_string()),
                legal_basis: "Criminal Procedure Act, art. 132".to_string(),
                legal_basis_zh: Some("《刑事诉讼法》第一百三十二条".to_string()),
                ttl_s_max: 30 * day,
                statutory: Some(vault_client::wire::Statutory {
                    departments: Name::parse("police").into_iter().collect(),
                    // As short as a few seconds in development, so the
                    // whole cycle can be watched; a real registry sets months.
                    seal_s_max: 180 * day,
                    authority_required: true,
                }),
            }
        }))
        .collect()
    }
}

/// Checks that an approval's body stays within its request: same request,
/// resident, holder and purpose; documents a subset; window within the
/// requested ttl, not over, and starting no later than `now` plus the
/// ttl (at most [`GRANT_START_DELAY_S_MAX`]); a sane shape.
pub fn check_approval(request: &RequestEntry, body: &GrantBody, now: i64) -> Result<(), Refusal> {
    body.check_shape()
        .map_err(|e| Refusal::new(ErrorCode::GrantMalformed, e.to_string()))?;
    let widened = |what: &str| {
        Refusal::new(
            ErrorCode::RequestWidened,
            format!("the approval {what}; an approval may narrow a request but never widen it"),
        )
    };
    let r = &request.request;
    if body.request_id != request.request_id {
        return Err(widened("answers a different request"));
    }
    if body.resident != r.resident || body.grantee != r.department {
        return Err(widened("names a different resident or department"));
    }
    if body.grantee_key_id != request.department_key_id {
        return Err(widened("binds a different department key"));
    }
    if body.purpose != r.purpose {
        return Err(widened("changes the purpose"));
    }
    if !body.documents.iter().all(|d| request.documents.contains(d)) {
        return Err(widened("covers documents the department did not ask for"));
    }
    // Every time here is the resident's (`not_before`, `not_after`) or
    // bounded (`ttl_s` <= a year): checked arithmetic all the same.
    let ttl_s = i64::try_from(r.ttl_s).unwrap_or(i64::MAX);
    let window = body.not_after.checked_sub(body.not_before);
    if !window.is_some_and(|w| (0..=ttl_s).contains(&w)) {
        return Err(widened("lasts longer than the department asked"));
    }
    let earliest = now.saturating_sub(GRANT_SKEW_S).saturating_sub(ttl_s);
    if body.not_before < earliest || body.not_after <= now {
        return Err(widened("has a validity window already over"));
    }
    let latest = now
        .saturating_add(GRANT_SKEW_S)
        .saturating_add(ttl_s.min(GRANT_START_DELAY_S_MAX));
    if body.not_before > latest {
        return Err(widened("starts later than the department could use it"));
    }
    Ok(())
}

/// Every check for fetching `document_id` under a grant, except signature
/// verification (see [`GrantCache`]).
pub fn check_use(
    entry: &StoredGrant,
    counter: &GrantCounter,
    caller: &PeerCert,
    document_id: &DocumentId,
    content_hash: &pki::ContentHash,
    is_revoked: &dyn Fn(&str) -> bool,
    now: i64,
) -> Result<(), Refusal> {
    let body = &entry.grant.body;
    let id = entry.grant.id();
    if caller.role != Role::Department || !same_key(&caller.key_id, &body.grantee_key_id) {
        return Err(Refusal::new(
            ErrorCode::GrantHolderMismatch,
            format!(
                "grant {id} is bound to {}'s certificate key; {} {} cannot use it",
                body.grantee,
                caller.role.as_str(),
                caller.name
            ),
        ));
    }
    if is_revoked(&entry.grantee_serial) {
        return Err(Refusal::new(
            ErrorCode::GrantCertificateRevoked,
            format!("grant {id} is bound to a certificate that has been revoked"),
        ));
    }
    match body.covers(document_id) {
        Some(doc) if &doc.content_hash == content_hash => {}
        _ => {
            return Err(Refusal::new(
                ErrorCode::GrantOutOfScope,
                format!("document {document_id} is not covered by grant {id}"),
            ))
        }
    }
    check_state(id, counter, now)
}

/// Compares key ids without an early exit.
fn same_key(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Remembers grants whose signatures verified, keyed by a hash of their bytes.
#[derive(Default)]
pub struct GrantCache {
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Bumped by [`GrantCache::clear`]; a verification that started under
    /// an older generation (older CRLs) is not remembered.
    generation: std::sync::atomic::AtomicU64,
}

impl GrantCache {
    /// Verifies a grant's chains and signatures, or finds it already verified.
    pub fn verify(
        &self,
        grant: &Grant,
        ca_der: &[u8],
        crls: impl FnOnce() -> Vec<Vec<u8>>,
    ) -> Result<(), Refusal> {
        let key = grant_hash(grant)?;
        if self.lock().contains(&key) {
            return Ok(());
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        grant.verify(ca_der, &crls()).map_err(grant_refusal)?;
        let mut verified = self.lock();
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            return Ok(());
        }
        if verified.len() >= GRANT_CACHE_MAX {
            verified.clear();
        }
        verified.insert(key);
        Ok(())
    }

    /// Forgets a grant (on revocation, for good measure).
    pub fn forget(&self, grant: &Grant) {
        if let Ok(key) = grant_hash(grant) {
            self.lock().remove(&key);
        }
    }

    /// Forgets everything (on a CRL change).
    pub fn clear(&self) {
        let mut verified = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        verified.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn grant_hash(grant: &Grant) -> Result<[u8; 32], Refusal> {
    let bytes =
        serde_json::to_vec(grant).map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    Ok(*blake3::hash(&bytes).as_bytes())
}

/// Maps a PKI verification failure to a grant refusal.
pub fn grant_refusal(e: pki::PkiError) -> Refusal {
    let code = match e.code() {
        "pki.bad_signature" | "pki.issuer_mismatch" => ErrorCode::GrantBadSignature,
        "pki.untrusted" | "pki.bad_certificate" | "pki.expired" | "pki.not_yet_valid" => {
            ErrorCode::GrantUntrusted
        }
        "pki.revoked" => ErrorCode::GrantCertificateRevoked,
        _ => ErrorCode::GrantMalformed,
    };
    Refusal::new(code, e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use pki::{ContentHash, GrantedDocument, PeerCert, GRANT_USES_MAX};

    use super::*;
    use crate::engine::entries::fixtures::{
        body, document, grant, name, request, resident, DEPARTMENT_KEY_ID,
    };
    use crate::engine::state::{DocumentEntry, GrantRevocation};

    /// "Now" for the checks; requests ask for `TTL_S` from here.
    const NOW: i64 = 10_000;
    const TTL_S: u64 = 3_600;

    fn docs() -> (DocumentEntry, DocumentEntry, DocumentEntry) {
        (
            document("resident-1", 1, 100),
            document("resident-1", 2, 100),
            document("resident-1", 3, 100),
        )
    }

    /// A request for the first two documents, and a body granting it exactly.
    fn asked() -> (RequestEntry, GrantBody) {
        let (a, b, _) = docs();
        let req = request(&[&a, &b], "tax-office", TTL_S);
        let exact = body(&req, NOW, 5);
        (req, exact)
    }

    fn approval_code(req: &RequestEntry, body: &GrantBody) -> ErrorCode {
        check_approval(req, body, NOW).unwrap_err().code
    }

    #[test]
    fn an_older_registry_file_without_chinese_still_loads() {
        let old = r#"[{"code":"housing-subsidy",
            "description":"Assess an application for a housing subsidy",
            "legal_basis":"Housing Subsidy Regulation, art. 12",
            "ttl_s_max":7776000}]"#;
        let list: Vec<PurposeInfo> = serde_json::from_str(old).unwrap();
        let registry = PurposeRegistry::from_list(list).unwrap();
        let info = registry
            .get(&Purpose::parse("housing-subsidy").unwrap())
            .unwrap();
        assert_eq!(info.description_zh, None);
        assert_eq!(info.legal_basis_zh, None);
        // Written back without the absent fields: the file keeps its shape.
        let json = serde_json::to_string(info).unwrap();
        assert!(!json.contains("_zh"), "{json}");
    }

    #[test]
    fn the_development_registry_has_every_purpose_in_chinese_and_round_trips() {
        let list = PurposeRegistry::development();
        assert_eq!(list.len(), 6, "every development purpose parses");
        for info in &list {
            assert!(info.description_zh.is_some(), "{}", info.code);
            assert!(info.legal_basis_zh.is_some(), "{}", info.code);
        }
        let json = serde_json::to_string(&list).unwrap();
        let back: Vec<PurposeInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, list);
        let registry = PurposeRegistry::from_list(back).unwrap();
        let housing = registry
            .get(&Purpose::parse("housing-subsidy").unwrap())
            .unwrap();
        assert_eq!(housing.description_zh.as_deref(), Some("审核住房补贴申请"));
        assert_eq!(
            housing.legal_basis_zh.as_deref(),
            Some("《住房补贴条例》第十二条")
        );
        let codes: Vec<&str> = registry.list().iter().map(|p| p.code.as_str()).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(codes, sorted, "listed in code order");
    }

    #[test]
    fn an_approval_granting_exactly_the_request_passes() {
        let (req, exact) = asked();
        assert_eq!(check_approval(&req, &exact, NOW), Ok(()));
    }

    #[test]
    fn an_approval_may_narrow_documents_window_and_uses() {
        let (req, exact) = asked();
        let mut narrower = exact.clone();
        narrower.documents.truncate(1);
        narrower.not_before = NOW + 60;
        narrower.not_after = NOW + 120;
        narrower.max_uses = 1;
        assert_eq!(check_approval(&req, &narrower, NOW), Ok(()));
    }

    #[test]
    fn an_approval_covering_more_documents_is_refused() {
        let (req, mut wider) = asked();
        let (_, _, extra) = docs();
        wider.documents.push(GrantedDocument {
            document_id: extra.document_id,
            content_hash: extra.record.content_hash,
        });
        wider.documents.sort_by_key(|d| d.document_id);
        assert_eq!(approval_code(&req, &wider), ErrorCode::RequestWidened);
    }

    #[test]
    fn an_approval_lasting_longer_is_refused() {
        let (req, mut longer) = asked();
        longer.not_after += 1;
        assert_eq!(approval_code(&req, &longer), ErrorCode::RequestWidened);
    }

    #[test]
    fn an_approval_with_more_uses_than_any_grant_may_have_is_refused() {
        // A request asks for no number of uses; the shape bounds them.
        let (req, mut more) = asked();
        more.max_uses = GRANT_USES_MAX + 1;
        assert_eq!(approval_code(&req, &more), ErrorCode::GrantMalformed);
    }

    #[test]
    fn an_approval_for_someone_else_is_refused() {
        let (req, exact) = asked();
        let mut other_grantee = exact.clone();
        other_grantee.grantee = name("civil-affairs");
        let mut other_key = exact.clone();
        other_key.grantee_key_id = [8; 32];
        let mut other_resident = exact.clone();
        other_resident.resident = resident("resident-2");
        let mut other_purpose = exact.clone();
        other_purpose.purpose = Purpose::parse("tax-assessment").unwrap();
        let mut other_request = exact.clone();
        other_request.request_id = pki::RequestId::derive(&[b"another request"]);
        for widened in [
            other_grantee,
            other_key,
            other_resident,
            other_purpose,
            other_request,
        ] {
            assert_eq!(approval_code(&req, &widened), ErrorCode::RequestWidened);
        }
    }

    #[test]
    fn an_approval_starting_too_late_is_refused() {
        let (req, mut late) = asked();
        let ttl = TTL_S as i64;
        late.not_before = NOW + GRANT_SKEW_S + ttl + 1;
        late.not_after = late.not_before + 60;
        assert_eq!(approval_code(&req, &late), ErrorCode::RequestWidened);
        late.not_before -= 1;
        late.not_after -= 1;
        assert_eq!(check_approval(&req, &late, NOW), Ok(()));
    }

    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let (req, exact) = asked();
        for (not_before, not_after) in [
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MIN, NOW + 10),
            (NOW, i64::MAX),
            (i64::MAX - 1, i64::MAX),
        ] {
            let mut odd = exact.clone();
            odd.not_before = not_before;
            odd.not_after = not_after;
            let code = approval_code(&req, &odd);
            assert!(
                matches!(code, ErrorCode::RequestWidened | ErrorCode::GrantMalformed),
                "{not_before}..{not_after}: {code}"
            );
        }
        assert!(check_approval(&req, &exact, i64::MAX).is_err());
        assert!(check_approval(&req, &exact, i64::MIN).is_err());
    }

    #[test]
    fn an_approval_whose_window_is_over_is_refused() {
        let (req, mut over) = asked();
        over.not_before = NOW - 100;
        over.not_after = NOW;
        assert_eq!(approval_code(&req, &over), ErrorCode::RequestWidened);
    }

    /// The caller the grant is bound to.
    fn holder() -> PeerCert {
        PeerCert {
            role: Role::Department,
            name: name("tax-office"),
            serial_hex: "0a0b".to_string(),
            not_before: 0,
            not_after: NOW * 2,
            public_key: vec![0; 32],
            key_id: DEPARTMENT_KEY_ID,
            issuer_cn: "district-ca".to_string(),
            cluster: None,
        }
    }

    /// A stored grant for the two requested documents, its counter, and
    /// the first document's id and hash.
    fn stored() -> (StoredGrant, GrantCounter, DocumentId, ContentHash) {
        let (_, exact) = asked();
        let first = exact.documents[0];
        let counter = GrantCounter {
            uses: 0,
            max_uses: exact.max_uses,
            not_before: exact.not_before,
            not_after: exact.not_after,
            revoked: None,
            resident: exact.resident.clone(),
            grantee: exact.grantee.clone(),
            purpose: exact.purpose.clone(),
        };
        let entry = StoredGrant {
            grant: grant(exact),
            grantee_serial: "0a0b".to_string(),
            issued_at: NOW,
        };
        (entry, counter, first.document_id, first.content_hash)
    }

    fn none_revoked(_: &str) -> bool {
        false
    }

    fn use_code(caller: &PeerCert, id: &DocumentId, hash: &ContentHash) -> ErrorCode {
        let (entry, counter, _, _) = stored();
        check_use(&entry, &counter, caller, id, hash, &none_revoked, NOW)
            .unwrap_err()
            .code
    }

    #[test]
    fn the_holder_may_use_a_grant_for_a_covered_document() {
        let (entry, counter, id, hash) = stored();
        let result = check_use(&entry, &counter, &holder(), &id, &hash, &none_revoked, NOW);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn another_key_or_role_is_not_the_holder() {
        let (_, _, id, hash) = stored();
        let mut other_key = holder();
        other_key.key_id = [9; 32];
        assert_eq!(
            use_code(&other_key, &id, &hash),
            ErrorCode::GrantHolderMismatch
        );
        let mut resident_role = holder();
        resident_role.role = Role::Resident;
        assert_eq!(
            use_code(&resident_role, &id, &hash),
            ErrorCode::GrantHolderMismatch
        );
    }

    #[test]
    fn a_document_outside_the_grant_or_with_other_bytes_is_out_of_scope() {
        let (_, _, id, _) = stored();
        let (_, _, outside) = docs();
        let outside_hash = outside.record.content_hash;
        assert_eq!(
            use_code(&holder(), &outside.document_id, &outside_hash),
            ErrorCode::GrantOutOfScope
        );
        assert_eq!(
            use_code(&holder(), &id, &ContentHash([0xee; 32])),
            ErrorCode::GrantOutOfScope
        );
    }

    #[test]
    fn a_revoked_holder_certificate_kills_the_grant() {
        let (entry, counter, id, hash) = stored();
        let revoked = |serial: &str| serial == "0a0b";
        let refusal =
            check_use(&entry, &counter, &holder(), &id, &hash, &revoked, NOW).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::GrantCertificateRevoked);
    }

    #[test]
    fn the_grant_state_is_checked_last() {
        let (entry, mut counter, id, hash) = stored();
        counter.revoked = Some(GrantRevocation {
            by: name("tax-office"),
            role: Role::Department,
            at: NOW,
        });
        let refusal =
            check_use(&entry, &counter, &holder(), &id, &hash, &none_revoked, NOW).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::GrantRevoked);
        counter.revoked = None;
        let late = entry.grant.body.not_after + 1;
        let refusal =
            check_use(&entry, &counter, &holder(), &id, &hash, &none_revoked, late).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::GrantExpired);
    }
}
