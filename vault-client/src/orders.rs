//! Access by law, checked: the auditor's rules for statutory orders over
//! the log alone ([`replay_orders`]) and the resident's check of a
//! disclosure ([`verify_disclosure`]). Pure: no network, no files.
//!
//! What the log shows of an order (see `docs/ACCESS-BY-LAW.md`): while
//! sealed, every entry about it has an all-zero resident tag and names the
//! order by `request_id` (or its grant by `grant_id`); `order_filed`
//! carries the purpose in `code` and the seal's bounds in `not_before`
//! (recorded) and `not_after` (seal end); `seal_extended` the new end in
//! `not_after` and the signing time in `not_before`; `order_disclosed`
//! carries the resident's tag, the order, the seal end, and in
//! `use_number` how many sealed entries the order had.

use std::collections::HashMap;

use pki::{GrantId, LogDetail, LogEntry, LogEvent, Purpose, RequestId, ResidentId, Role};

use crate::replay::Violation;
use crate::wire::{OrderView, Statutory};

/// How long after a seal ends its disclosure may take to appear, in
/// seconds, judged by the time of later entries: the node's discloser runs
/// every second; this allows for a cluster electing a leader and clocks
/// that differ.
pub const DISCLOSURE_GRACE_S: i64 = 120;

/// The statutory rules of the purpose registry, by purpose code.
pub type StatutoryRules = HashMap<Purpose, Statutory>;

/// The rules from a registry's purposes (those that are statutory).
pub fn statutory_rules(purposes: &[crate::wire::RegistryPurpose]) -> StatutoryRules {
    purposes
        .iter()
        .filter_map(|p| Some((p.code.clone(), p.statutory.clone()?)))
        .collect()
}

struct OrderFacts {
    filed_at: u64,
    department: String,
    rules: Option<Statutory>,
    seal_until: i64,
    approval: Option<(Role, String)>,
    denied: bool,
    disclosed: Option<u64>,
    sealed_count: u64,
}

/// Replays the rules of statutory orders over entries `first..`: a
/// statutory fetch without a valid order or without the authority's
/// approval where required, a purpose not statutory, a seal longer than
/// the registry allows, an extension without authority, a seal that ended
/// without its disclosure appearing (more than [`DISCLOSURE_GRACE_S`]
/// before the log's last entry), and a disclosure that does not count
/// every sealed entry.
pub fn replay_orders(first: u64, entries: &[LogEntry], rules: &StatutoryRules) -> Vec<Violation> {
    let mut orders: HashMap<RequestId, OrderFacts> = HashMap::new();
    let mut grants: HashMap<GrantId, RequestId> = HashMap::new();
    let mut out = Vec::new();
    let mut violation = |index: u64, rule: &str, detail: String| {
        out.push(Violation {
            index,
            rule: rule.to_string(),
            detail,
        });
    };
    let mut last_time = i64::MIN;
    for (offset, e) in entries.iter().enumerate() {
        let index = first + offset as u64;
        last_time = last_time.max(e.time);
        let sealed = e.resident_tag == [0; 32];
        // The order an entry concerns, by its id or its grant's.
        let order_id = e
            .request_id
            .filter(|id| orders.contains_key(id))
            .or_else(|| e.grant_id.and_then(|g| grants.get(&g).copied()));
        if let (Some(id), true) = (order_id, e.event != LogEvent::OrderDisclosed) {
            if let Some(o) = orders.get_mut(&id) {
                match (o.disclosed, sealed) {
                    (None, true) => o.sealed_count += 1,
                    (None, false) => violation(
                        index,
                        "order.seal_broken",
                        format!("an entry about order {id} carries a resident tag while sealed"),
                    ),
                    (Some(at), true) => violation(
                        index,
                        "order.hidden_after_disclosure",
                        format!("order {id} was disclosed at entry {at}, yet this entry about it is untagged"),
                    ),
                    (Some(_), false) => {}
                }
            }
        }
        match e.event {
            LogEvent::OrderFiled => {
                let Some(id) = e.request_id else {
                    violation(index, "order.malformed", "an order names no id".into());
                    continue;
                };
                if !sealed {
                    violation(
                        index,
                        "order.seal_broken",
                        format!("order {id} was filed with a resident tag"),
                    );
                }
                let purpose = Purpose::parse(&e.code).ok();
                let rule = purpose.as_ref().and_then(|p| rules.get(p)).cloned();
                match &rule {
                    None => violation(
                        index,
                        "order.not_statutory",
                        format!("purpose {:?} is not statutory in the registry", e.code),
                    ),
                    Some(r) => {
                        if !r.departments.iter().any(|d| d.as_str() == e.actor) {
                            violation(
                                index,
                                "order.department_not_allowed",
                                format!("{} may not invoke purpose {}", e.actor, e.code),
                            );
                        }
                        check_seal(index, e.not_after, e.not_before, r, &mut violation);
                    }
                }
                orders.insert(
                    id,
                    OrderFacts {
                        filed_at: index,
                        department: e.actor.clone(),
                        rules: rule,
                        seal_until: e.not_after,
                        approval: None,
                        denied: false,
                        disclosed: None,
                        sealed_count: 1,
                    },
                );
            }
            LogEvent::OrderApproved => {
                let Some(o) = e.request_id.and_then(|id| orders.get_mut(&id)) else {
                    violation(
                        index,
                        "order.unknown",
                        "an approval of an order never filed".into(),
                    );
                    continue;
                };
                let authority_required = o.rules.as_ref().is_none_or(|r| r.authority_required);
                let by_authority = e.actor_role == Role::Authority;
                let by_own_department = e.actor_role == Role::Department && e.actor == o.department;
                if !(by_authority || (!authority_required && by_own_department)) {
                    violation(
                        index,
                        "order.approval_without_authority",
                        format!(
                            "{} {} approved an order that needs an authority",
                            e.actor_role, e.actor
                        ),
                    );
                }
                o.approval = Some((e.actor_role, e.actor.clone()));
                if let (Some(grant), Some(id)) = (e.grant_id, e.request_id) {
                    grants.insert(grant, id);
                }
            }
            LogEvent::OrderDenied => {
                if let Some(o) = e.request_id.and_then(|id| orders.get_mut(&id)) {
                    o.denied = true;
                }
            }
            LogEvent::GrantIssued => {
                if let (Some(grant), Some(id)) = (e.grant_id, e.request_id) {
                    if orders.contains_key(&id) {
                        grants.insert(grant, id);
                    }
                }
            }
            LogEvent::SealExtended => {
                let Some(id) = e.request_id else { continue };
                let Some(o) = orders.get_mut(&id) else {
                    violation(
                        index,
                        "order.unknown",
                        format!("a seal extension of unknown order {id}"),
                    );
                    continue;
                };
                if e.actor_role != Role::Authority {
                    violation(
                        index,
                        "order.extension_without_authority",
                        format!(
                            "{} {} extended the seal of order {id}",
                            e.actor_role, e.actor
                        ),
                    );
                }
                if let Some(at) = o.disclosed {
                    violation(
                        index,
                        "order.extension_after_disclosure",
                        format!("order {id} was already disclosed at entry {at}"),
                    );
                }
                if let Some(r) = &o.rules {
                    check_seal(index, e.not_after, e.not_before, r, &mut violation);
                }
                o.seal_until = o.seal_until.max(e.not_after);
            }
            LogEvent::OrderDisclosed => {
                let Some(id) = e.request_id else { continue };
                let Some(o) = orders.get_mut(&id) else {
                    violation(
                        index,
                        "order.unknown",
                        format!("a disclosure of unknown order {id}"),
                    );
                    continue;
                };
                if u64::from(e.use_number) != o.sealed_count {
                    violation(
                        index,
                        "order.disclosure_incomplete",
                        format!(
                            "the disclosure counts {} sealed entries; the log has {}",
                            e.use_number, o.sealed_count
                        ),
                    );
                }
                if sealed {
                    violation(
                        index,
                        "order.disclosure_untagged",
                        format!("the disclosure of order {id} carries no resident tag"),
                    );
                }
                o.disclosed.get_or_insert(index);
            }
            LogEvent::Fetch => {
                if let (Some(grant), true) = (e.grant_id, sealed) {
                    check_statutory_fetch(index, grant, &grants, &orders, &mut violation);
                }
            }
            _ => {}
        }
    }
    let mut open: Vec<(&RequestId, &OrderFacts)> = orders
        .iter()
        .filter(|(_, o)| o.disclosed.is_none())
        .collect();
    open.sort_by_key(|(_, o)| o.filed_at);
    for (id, o) in open {
        if o.seal_until.saturating_add(DISCLOSURE_GRACE_S) < last_time {
            violation(
                o.filed_at,
                "order.not_disclosed",
                format!(
                    "the seal of order {id} ended at {} and the log goes on to {last_time} without its disclosure",
                    o.seal_until
                ),
            );
        }
    }
    out
}

/// A seal ending at `until`, set at `from`, within the registry's bound.
fn check_seal(
    index: u64,
    until: i64,
    from: i64,
    rules: &Statutory,
    violation: &mut impl FnMut(u64, &str, String),
) {
    let length = until.saturating_sub(from);
    if length < 0 || length as u64 > rules.seal_s_max {
        violation(
            index,
            "order.seal_too_long",
            format!(
                "a seal of {length} s where the registry allows {}",
                rules.seal_s_max
            ),
        );
    }
}

/// An untagged fetch under a grant: a statutory one, which needs an order
/// that was approved (by an authority where the registry requires it).
fn check_statutory_fetch(
    index: u64,
    grant: GrantId,
    grants: &HashMap<GrantId, RequestId>,
    orders: &HashMap<RequestId, OrderFacts>,
    violation: &mut impl FnMut(u64, &str, String),
) {
    let Some(o) = grants.get(&grant).and_then(|id| orders.get(id)) else {
        violation(
            index,
            "order.fetch_without_order",
            format!("a sealed fetch under grant {grant}, which no order led to"),
        );
        return;
    };
    if o.rules.is_none() || o.denied || o.approval.is_none() {
        violation(
            index,
            "order.fetch_without_order",
            format!(
                "a fetch under grant {grant}, whose order is not a valid approved statutory one"
            ),
        );
        return;
    }
    let authority_required = o.rules.as_ref().is_none_or(|r| r.authority_required);
    if authority_required && o.approval.as_ref().map(|a| a.0) != Some(Role::Authority) {
        violation(
            index,
            "order.fetch_without_authority",
            format!("a fetch under grant {grant}, whose order no authority approved"),
        );
    }
}

/// Why a disclosure does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DisclosureError(pub String);

/// One sealed entry of a disclosed order, checked.
#[derive(Debug, Clone)]
pub struct SealedEntry {
    /// Its index in the log.
    pub index: u64,
    /// The entry.
    pub entry: LogEntry,
    /// Its detail (matches the commitment, names the resident).
    pub detail: LogDetail,
}

/// Checks one entry's inclusion proof: (index, entry bytes, proof as hex)
/// to why it failed.
pub type InclusionCheck<'a> = dyn FnMut(u64, &[u8], &[String]) -> Result<(), String> + 'a;

/// Checks a disclosure the resident `me` received: the disclosure entry
/// (already verified as theirs, at `disclosure_index`) names `order`; each
/// sealed record is untagged, names the order or its grant, has a detail
/// that matches its commitment and names `me`, and comes before the
/// disclosure, in log order; there are exactly as many as the disclosure
/// counts; the filing's detail carries the order's case reference and
/// purpose. Inclusion proofs are checked by `include` (index, entry bytes,
/// proof) against the caller's checkpoint.
pub fn verify_disclosure(
    me: &ResidentId,
    disclosure_index: u64,
    disclosure: &LogEntry,
    order: &OrderView,
    records: &[crate::wire::AccessRecord],
    include: &mut InclusionCheck<'_>,
) -> Result<Vec<SealedEntry>, DisclosureError> {
    let fail = |why: String| Err(DisclosureError(why));
    if disclosure.event != LogEvent::OrderDisclosed || disclosure.request_id != Some(order.order_id)
    {
        return fail(format!(
            "entry {disclosure_index} is not the disclosure of order {}",
            order.order_id
        ));
    }
    if &order.resident != me {
        return fail(format!("order {} is not about you", order.order_id));
    }
    if records.len() as u64 != u64::from(disclosure.use_number) {
        return fail(format!(
            "the disclosure counts {} sealed entries; the node sent {}",
            disclosure.use_number,
            records.len()
        ));
    }
    let mut out: Vec<SealedEntry> = Vec::with_capacity(records.len());
    for record in records {
        if out.last().is_some_and(|p| p.index >= record.index) || record.index >= disclosure_index {
            return fail("the sealed entries are not in log order before the disclosure".into());
        }
        let bytes = hex::decode(&record.entry)
            .map_err(|_| DisclosureError("the node sent malformed hex".into()))?;
        let entry = LogEntry::parse(&bytes).map_err(|e| DisclosureError(e.to_string()))?;
        let names_order = entry.request_id == Some(order.order_id)
            || (entry.grant_id.is_some() && entry.grant_id == order.grant_id);
        if entry.resident_tag != [0; 32] || !names_order {
            return fail(format!(
                "log entry {} is not a sealed entry of this order",
                record.index
            ));
        }
        if record.detail.commitment() != entry.commitment
            || record.detail.resident.as_ref() != Some(me)
        {
            return fail(format!(
                "log entry {}'s detail does not match or is not about you",
                record.index
            ));
        }
        include(record.index, &bytes, &record.inclusion_proof).map_err(DisclosureError)?;
        out.push(SealedEntry {
            index: record.index,
            entry,
            detail: record.detail.clone(),
        });
    }
    let filed = out.iter().find(|s| s.entry.event == LogEvent::OrderFiled);
    match filed {
        Some(f)
            if f.detail.case_ref.as_deref() == Some(order.case_ref.as_str())
                && f.entry.code == order.purpose.as_str() => {}
        _ => {
            return fail("the disclosure lacks the order's filing with its case and purpose".into())
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use pki::{DocumentId, Name};

    const POLICE: &str = "police";
    const COURT: &str = "court";

    fn rules(authority_required: bool) -> StatutoryRules {
        let mut m = HashMap::new();
        m.insert(
            Purpose::parse("criminal-investigation").unwrap(),
            Statutory {
                departments: vec![Name::parse(POLICE).unwrap()],
                seal_s_max: 100,
                authority_required,
            },
        );
        m
    }

    fn entry(event: LogEvent, time: i64, role: Role, actor: &str) -> LogEntry {
        LogEntry::new(event, time, role, actor)
    }

    fn order_id() -> RequestId {
        RequestId::from_bytes([1; 16])
    }

    fn grant_id() -> GrantId {
        GrantId::from_bytes([2; 16])
    }

    fn filed(time: i64, seal_s: i64, purpose: &str) -> LogEntry {
        let mut e = entry(LogEvent::OrderFiled, time, Role::Department, POLICE);
        e.request_id = Some(order_id());
        e.code = purpose.into();
        e.not_before = time;
        e.not_after = time + seal_s;
        e
    }

    fn approved(time: i64, role: Role, actor: &str) -> Vec<LogEntry> {
        let mut a = entry(LogEvent::OrderApproved, time, role, actor);
        a.request_id = Some(order_id());
        a.grant_id = Some(grant_id());
        a.code = "criminal-investigation".into();
        let mut g = entry(LogEvent::GrantIssued, time, Role::Department, POLICE);
        g.request_id = Some(order_id());
        g.grant_id = Some(grant_id());
        g.not_before = time;
        g.not_after = time + 1_000;
        g.max_uses = 1;
        g.documents = vec![DocumentId::from_bytes([3; 16])];
        vec![a, g]
    }

    fn fetch(time: i64, grant: GrantId) -> LogEntry {
        let mut f = entry(LogEvent::Fetch, time, Role::Department, POLICE);
        f.grant_id = Some(grant);
        f.document_id = Some(DocumentId::from_bytes([3; 16]));
        f.use_number = 1;
        f
    }

    fn disclosed(time: i64, count: u32) -> LogEntry {
        let mut d = entry(LogEvent::OrderDisclosed, time, Role::Node, "vault-node");
        d.request_id = Some(order_id());
        d.grant_id = Some(grant_id());
        d.resident_tag = [9; 32];
        d.use_number = count;
        d
    }

    fn later(time: i64) -> LogEntry {
        entry(
            LogEvent::CertificateRevoked,
            time,
            Role::Node,
            "district-ca",
        )
    }

    fn rules_named(entries: &[LogEntry], rules: &StatutoryRules) -> Vec<String> {
        replay_orders(0, entries, rules)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn a_lawful_cycle_names_nothing() {
        let mut log = vec![filed(10, 50, "criminal-investigation")];
        log.extend(approved(11, Role::Authority, COURT));
        log.push(fetch(12, grant_id()));
        log.push(disclosed(61, 4));
        log.push(later(1_000));
        assert_eq!(rules_named(&log, &rules(true)), Vec::<String>::new());
    }

    #[test]
    fn a_fetch_without_an_order_or_without_the_authority_is_named() {
        // A sealed fetch under a grant no order led to.
        let log = vec![fetch(12, GrantId::from_bytes([7; 16]))];
        assert_eq!(
            rules_named(&log, &rules(true)),
            ["order.fetch_without_order"]
        );
        // The department approved its own order where a court must.
        let mut log = vec![filed(10, 50, "criminal-investigation")];
        log.extend(approved(11, Role::Department, POLICE));
        log.push(fetch(12, grant_id()));
        let named = rules_named(&log, &rules(true));
        assert_eq!(
            named,
            [
                "order.approval_without_authority",
                "order.fetch_without_authority"
            ]
        );
        // Where the registry needs no authority, the same is lawful.
        assert_eq!(rules_named(&log, &rules(false)), Vec::<String>::new());
        // A fetch under a denied order's grant.
        let mut log = vec![filed(10, 50, "criminal-investigation")];
        log.extend(approved(11, Role::Authority, COURT));
        let mut denied = entry(LogEvent::OrderDenied, 11, Role::Authority, COURT);
        denied.request_id = Some(order_id());
        log.push(denied);
        log.push(fetch(12, grant_id()));
        assert_eq!(
            rules_named(&log, &rules(true)),
            ["order.fetch_without_order"]
        );
    }

    #[test]
    fn a_purpose_not_statutory_and_a_seal_too_long_are_named() {
        let log = vec![filed(10, 50, "housing-subsidy")];
        assert_eq!(rules_named(&log, &rules(true)), ["order.not_statutory"]);
        let log = vec![filed(10, 101, "criminal-investigation")];
        assert_eq!(rules_named(&log, &rules(true)), ["order.seal_too_long"]);
        let mut other = filed(10, 50, "criminal-investigation");
        other.actor = "tax-office".into();
        assert_eq!(
            rules_named(&[other], &rules(true)),
            ["order.department_not_allowed"]
        );
    }

    #[test]
    fn an_extension_without_authority_or_too_long_is_named() {
        let mut x = entry(LogEvent::SealExtended, 20, Role::Department, POLICE);
        x.request_id = Some(order_id());
        x.not_before = 20;
        x.not_after = 60;
        let log = vec![filed(10, 50, "criminal-investigation"), x.clone()];
        assert_eq!(
            rules_named(&log, &rules(true)),
            ["order.extension_without_authority"]
        );
        x.actor_role = Role::Authority;
        x.actor = COURT.into();
        x.not_after = 20 + 101;
        let log = vec![filed(10, 50, "criminal-investigation"), x];
        assert_eq!(rules_named(&log, &rules(true)), ["order.seal_too_long"]);
    }

    #[test]
    fn a_seal_that_ended_without_disclosure_is_named_after_the_grace() {
        let log = vec![
            filed(10, 50, "criminal-investigation"),
            later(60 + DISCLOSURE_GRACE_S),
        ];
        assert_eq!(rules_named(&log, &rules(true)), Vec::<String>::new());
        let log = vec![
            filed(10, 50, "criminal-investigation"),
            later(61 + DISCLOSURE_GRACE_S),
        ];
        assert_eq!(rules_named(&log, &rules(true)), ["order.not_disclosed"]);
        // An extension moves the end the disclosure is due by.
        let mut x = entry(LogEvent::SealExtended, 50, Role::Authority, COURT);
        x.request_id = Some(order_id());
        x.not_before = 50;
        x.not_after = 140;
        let log = vec![filed(10, 50, "criminal-investigation"), x, later(200)];
        assert_eq!(rules_named(&log, &rules(true)), Vec::<String>::new());
    }

    #[test]
    fn a_disclosure_that_hides_an_entry_or_a_tagged_sealed_entry_is_named() {
        let mut log = vec![filed(10, 50, "criminal-investigation")];
        log.extend(approved(11, Role::Authority, COURT));
        log.push(fetch(12, grant_id()));
        log.push(disclosed(61, 3));
        assert_eq!(
            rules_named(&log, &rules(true)),
            ["order.disclosure_incomplete"]
        );
        let mut log = vec![filed(10, 50, "criminal-investigation")];
        let mut tagged = fetch(12, grant_id());
        log.extend(approved(11, Role::Authority, COURT));
        tagged.resident_tag = [9; 32];
        log.push(tagged);
        assert_eq!(rules_named(&log, &rules(true)), ["order.seal_broken"]);
    }
}
