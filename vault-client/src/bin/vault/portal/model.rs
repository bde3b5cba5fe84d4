//! What the pages show, as plain data built from what the client library
//! fetched and verified: names from the district's registries, the state
//! of a grant, the access rows with their filters, and the exports (CSV
//! and JSON). No I/O here, so all of it is tested without a node.

use std::collections::HashMap;

use pki::{GrantId, LogEvent, Role};
use serde::Serialize;
use serde_json::json;
use time::UtcOffset;
use vault_client::client::CheckedAccess;
use vault_client::wire::{GrantView, Registry};
use vault_client::DocumentId;

use super::text::{self, Lang};

/// A name in both languages, from a registry.
#[derive(Debug, Clone, Default)]
pub struct Named {
    /// English.
    pub en: Option<String>,
    /// Chinese.
    pub zh: Option<String>,
}

impl Named {
    /// The name in `lang`, else in the other language, else `None`.
    pub fn get(&self, lang: Lang) -> Option<&str> {
        let (first, second) = match lang {
            Lang::En => (&self.en, &self.zh),
            Lang::Zh => (&self.zh, &self.en),
        };
        first.as_deref().or(second.as_deref())
    }
}

/// A purpose as the registry describes it.
#[derive(Debug, Clone, Default)]
pub struct PurposeNames {
    /// What it is for.
    pub description: Named,
    /// The law that allows it.
    pub legal_basis: Named,
}

/// Departments' and purposes' names, from the district's registries.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// By department (certificate name).
    pub departments: HashMap<String, Named>,
    /// By purpose code.
    pub purposes: HashMap<String, PurposeNames>,
}

impl Names {
    /// The names the district's registries give.
    pub fn from_registry(registry: &Registry) -> Names {
        let text = |s: &str| Some(s.to_string()).filter(|s| !s.trim().is_empty());
        let departments = registry
            .departments()
            .iter()
            .map(|d| {
                let named = Named {
                    en: d.name.as_deref().and_then(text),
                    zh: d.name_zh.as_deref().and_then(text),
                };
                (d.department.as_str().to_string(), named)
            })
            .collect();
        let purposes = registry
            .purposes()
            .iter()
            .map(|p| {
                let names = PurposeNames {
                    description: Named {
                        en: text(&p.description),
                        zh: p.description_zh.as_deref().and_then(text),
                    },
                    legal_basis: Named {
                        en: text(&p.legal_basis),
                        zh: p.legal_basis_zh.as_deref().and_then(text),
                    },
                };
                (p.code.as_str().to_string(), names)
            })
            .collect();
        Names {
            departments,
            purposes,
        }
    }

    /// A department's name in `lang`, or its code when the registry has
    /// none.
    pub fn department(&self, lang: Lang, code: &str) -> String {
        self.departments
            .get(code)
            .and_then(|n| n.get(lang))
            .map(str::to_string)
            .unwrap_or_else(|| code.to_string())
    }

    /// A purpose's description in `lang`, or its code.
    pub fn purpose(&self, lang: Lang, code: &str) -> String {
        self.purposes
            .get(code)
            .and_then(|p| p.description.get(lang))
            .map(str::to_string)
            .unwrap_or_else(|| code.to_string())
    }

    /// A purpose's legal basis in `lang`, if the registry gives one.
    pub fn legal_basis(&self, lang: Lang, code: &str) -> Option<String> {
        self.purposes
            .get(code)
            .and_then(|p| p.legal_basis.get(lang))
            .map(str::to_string)
    }
}

/// A grant's state for the resident, at `now`.
pub fn grant_state(grant: &GrantView, now: i64) -> &'static str {
    if grant.revoked {
        "revoked"
    } else if grant.uses >= grant.max_uses {
        "exhausted"
    } else if now > grant.not_after {
        "expired"
    } else if now < grant.not_before {
        "not-yet-valid"
    } else {
        "active"
    }
}

/// One row of the data tracker.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRow {
    /// The entry's index in the log.
    pub log_index: u64,
    /// When (unix seconds); 0 when the entry did not verify.
    pub time: i64,
    /// The event (`fetch`, `grant_issued`, …).
    pub event: String,
    /// Who acted: role.
    pub actor_role: Option<Role>,
    /// Who acted: name.
    pub actor: String,
    /// The document.
    pub document_id: Option<DocumentId>,
    /// Its kind.
    pub kind: Option<String>,
    /// The purpose.
    pub purpose: Option<String>,
    /// The grant.
    pub grant_id: Option<GrantId>,
    /// Which use of the grant (from 1); 0 when none.
    pub use_number: u32,
    /// A refusal's code.
    pub code: String,
    /// Whether the entry's tag, commitment and inclusion proof checked.
    pub verified: bool,
    /// Why it did not verify.
    pub problem: Option<String>,
    /// For an access by law (a disclosed statutory order's entry): what
    /// the resident is told about it; `None` for every other entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_law: Option<ByLaw>,
}

/// What an access by law shows besides the entry: the law, the case, who
/// authorised the order and when.
#[derive(Debug, Clone, Serialize)]
pub struct ByLaw {
    /// The legal basis of the order's purpose.
    pub legal_basis: String,
    /// The case reference.
    pub case_ref: String,
    /// Who authorised the order (the approval's actor), if anyone did.
    pub authorised_by: Option<String>,
    /// When.
    pub authorised_at: Option<i64>,
}

impl AccessRow {
    /// The rows of one disclosed order: each sealed entry, verified.
    pub fn from_disclosed(d: &vault_client::order_client::Disclosed) -> Vec<AccessRow> {
        let approval = d
            .entries
            .iter()
            .find(|s| s.entry.event == LogEvent::OrderApproved);
        let by_law = ByLaw {
            legal_basis: d.order.legal_basis.clone(),
            case_ref: d.order.case_ref.clone(),
            authorised_by: approval.map(|s| s.entry.actor.clone()),
            authorised_at: approval.map(|s| s.entry.time),
        };
        d.entries
            .iter()
            .map(|s| AccessRow {
                log_index: s.index,
                time: s.entry.time,
                event: event_code(s.entry.event),
                actor_role: Some(s.entry.actor_role),
                actor: s.entry.actor.clone(),
                document_id: s.entry.document_id,
                kind: s.detail.kind.clone(),
                purpose: Some(d.order.purpose.to_string()),
                grant_id: s.entry.grant_id,
                use_number: s.entry.use_number,
                code: s.entry.code.clone(),
                verified: true,
                problem: None,
                by_law: Some(by_law.clone()),
            })
            .collect()
    }
}

impl AccessRow {
    /// A row from an entry and the outcome of its checks.
    pub fn from_checked(access: &CheckedAccess) -> AccessRow {
        match &access.verified {
            Ok(v) => AccessRow {
                log_index: v.index,
                time: v.entry.time,
                event: event_code(v.entry.event),
                actor_role: Some(v.entry.actor_role),
                actor: v.entry.actor.clone(),
                document_id: v.entry.document_id,
                kind: v.detail.kind.clone(),
                purpose: v.detail.purpose.clone(),
                grant_id: v.entry.grant_id,
                use_number: v.entry.use_number,
                code: v.entry.code.clone(),
                verified: true,
                problem: None,
                by_law: None,
            },
            Err(e) => AccessRow {
                log_index: access.index,
                time: 0,
                event: String::new(),
                actor_role: None,
                actor: String::new(),
                document_id: None,
                kind: None,
                purpose: None,
                grant_id: None,
                use_number: 0,
                code: e.code().to_string(),
                verified: false,
                problem: Some(e.to_string()),
                by_law: None,
            },
        }
    }

    /// Whether the row is a fetch.
    pub fn is_fetch(&self) -> bool {
        self.event == event_code(LogEvent::Fetch)
    }
}

/// An event's code as the log's JSON writes it (`fetch`, …).
pub fn event_code(event: LogEvent) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// An event's name for people.
pub fn event_name(lang: Lang, event: &str) -> String {
    let name = match (event, lang) {
        ("fetch", Lang::En) => "Fetched",
        ("fetch", Lang::Zh) => "调取",
        ("document_issued", Lang::En) => "Document issued",
        ("document_issued", Lang::Zh) => "签发证件",
        ("request_made", Lang::En) => "Asked for documents",
        ("request_made", Lang::Zh) => "提出申请",
        ("approval", Lang::En) => "You approved",
        ("approval", Lang::Zh) => "您已同意",
        ("denial", Lang::En) => "You denied",
        ("denial", Lang::Zh) => "您已拒绝",
        ("grant_issued", Lang::En) => "Grant sealed",
        ("grant_issued", Lang::Zh) => "授权生效",
        ("refusal", Lang::En) => "Refused",
        ("refusal", Lang::Zh) => "被拒绝",
        ("revoke", Lang::En) => "Grant revoked",
        ("revoke", Lang::Zh) => "授权撤销",
        ("order_filed", Lang::En) => "Order filed (by law)",
        ("order_filed", Lang::Zh) => "依法提出调取令",
        ("order_approved", Lang::En) => "Order authorised",
        ("order_approved", Lang::Zh) => "调取令已批准",
        ("order_denied", Lang::En) => "Order denied",
        ("order_denied", Lang::Zh) => "调取令被驳回",
        ("seal_extended", Lang::En) => "Seal extended",
        ("seal_extended", Lang::Zh) => "保密期延长",
        ("order_disclosed", Lang::En) => "Order disclosed to you",
        ("order_disclosed", Lang::Zh) => "调取令已向您公开",
        _ => event,
    };
    name.to_string()
}

/// The data tracker's filters (`/accesses?department=…&document=…&from=
/// YYYY-MM-DD&to=YYYY-MM-DD&events=all&page=N`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filters {
    /// Only this department.
    #[serde(default)]
    pub department: Option<String>,
    /// Only this document (its id).
    #[serde(default)]
    pub document: Option<String>,
    /// From this local date on.
    #[serde(default)]
    pub from: Option<String>,
    /// Up to and including this local date.
    #[serde(default)]
    pub to: Option<String>,
    /// `all`: every entry about the resident; else fetches only.
    #[serde(default)]
    pub events: Option<String>,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<usize>,
}

/// Rows on one page of the data tracker.
pub const ROWS_PER_PAGE: usize = 50;

impl Filters {
    /// Whether every entry is shown, not only fetches.
    pub fn all_events(&self) -> bool {
        self.events.as_deref() == Some("all")
    }

    fn nonempty(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// The rows these filters keep, newest first. A row that did not
    /// verify is always kept: a filter must never hide a warning.
    pub fn apply(&self, rows: &[AccessRow], offset: UtcOffset) -> Vec<AccessRow> {
        let from = Self::nonempty(&self.from).and_then(|d| day_start(d, offset));
        let to = Self::nonempty(&self.to)
            .and_then(|d| day_start(d, offset))
            .map(|t| t + 86_400);
        let department = Self::nonempty(&self.department);
        let document = Self::nonempty(&self.document);
        let mut kept: Vec<AccessRow> = rows
            .iter()
            .filter(|r| {
                if !r.verified {
                    return true;
                }
                (self.all_events() || r.is_fetch())
                    && department
                        .is_none_or(|d| r.actor_role == Some(Role::Department) && r.actor == d)
                    && document.is_none_or(|d| {
                        r.document_id.map(|id| id.to_string()).as_deref() == Some(d)
                    })
                    && from.is_none_or(|f| r.time >= f)
                    && to.is_none_or(|t| r.time < t)
            })
            .cloned()
            .collect();
        kept.sort_by_key(|r| std::cmp::Reverse(r.log_index));
        kept
    }

    /// The page asked for (from 1), clamped to the pages there are.
    pub fn page(&self, rows: usize) -> usize {
        let pages = rows.div_ceil(ROWS_PER_PAGE).max(1);
        self.page.unwrap_or(1).clamp(1, pages)
    }

    /// These filters as a query string (for links to other pages and the
    /// exports), without the page.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (key, value) in [
            ("department", &self.department),
            ("document", &self.document),
            ("from", &self.from),
            ("to", &self.to),
            ("events", &self.events),
        ] {
            if let Some(v) = Self::nonempty(value) {
                parts.push(format!("{key}={}", percent_encode(v)));
            }
        }
        parts.join("&")
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The unix time a local date (YYYY-MM-DD) starts at in `offset`.
pub fn day_start(date: &str, offset: UtcOffset) -> Option<i64> {
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_offset(offset).unix_timestamp())
}

/// The rows as CSV (RFC 4180; times in UTC, RFC 3339), one line each.
pub fn csv(rows: &[AccessRow]) -> String {
    let mut out = String::from(
        "log_index,time,event,actor_role,actor,document_id,kind,purpose,grant_id,use_number,code,verified\r\n",
    );
    for r in rows {
        let fields = [
            r.log_index.to_string(),
            if r.time == 0 {
                String::new()
            } else {
                text::rfc3339(r.time)
            },
            r.event.clone(),
            r.actor_role.map(|x| x.to_string()).unwrap_or_default(),
            r.actor.clone(),
            r.document_id.map(|d| d.to_string()).unwrap_or_default(),
            r.kind.clone().unwrap_or_default(),
            r.purpose.clone().unwrap_or_default(),
            r.grant_id.map(|g| g.to_string()).unwrap_or_default(),
            r.use_number.to_string(),
            r.code.clone(),
            r.verified.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_string()
    };
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// The rows as JSON, with the checkpoint they were checked against.
pub fn json(rows: &[AccessRow], tree_size: u64, root_hash: &str) -> serde_json::Value {
    json!({"tree_size": tree_size, "root_hash": root_hash, "accesses": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, time: i64, actor: &str, event: &str) -> AccessRow {
        AccessRow {
            log_index: index,
            time,
            event: event.to_string(),
            actor_role: Some(Role::Department),
            actor: actor.to_string(),
            document_id: None,
            kind: None,
            purpose: None,
            grant_id: None,
            use_number: 1,
            code: String::new(),
            verified: true,
            problem: None,
            by_law: None,
        }
    }

    #[test]
    fn filters_keep_matching_fetches_newest_first_and_every_failed_row() {
        let day = 86_400;
        let t0 = day_start("2026-12-01", UtcOffset::UTC).unwrap_or_default();
        let mut bad = row(4, 0, "", "");
        bad.verified = false;
        let rows = vec![
            row(1, t0, "housing-bureau", "fetch"),
            row(2, t0 + day, "tax-office", "fetch"),
            row(3, t0 + 2 * day, "housing-bureau", "grant_issued"),
            bad,
            row(5, t0 + 3 * day, "housing-bureau", "fetch"),
        ];
        let all = Filters::default().apply(&rows, UtcOffset::UTC);
        let indexes: Vec<u64> = all.iter().map(|r| r.log_index).collect();
        assert_eq!(indexes, vec![5, 4, 2, 1], "fetches only, newest first");
        let f = Filters {
            department: Some("housing-bureau".into()),
            from: Some("2026-12-02".into()),
            ..Filters::default()
        };
        let indexes: Vec<u64> = f
            .apply(&rows, UtcOffset::UTC)
            .iter()
            .map(|r| r.log_index)
            .collect();
        assert_eq!(indexes, vec![5, 4]);
        let f = Filters {
            to: Some("2026-12-01".into()),
            events: Some("all".into()),
            ..Filters::default()
        };
        let indexes: Vec<u64> = f
            .apply(&rows, UtcOffset::UTC)
            .iter()
            .map(|r| r.log_index)
            .collect();
        assert_eq!(indexes, vec![4, 1], "the to-date is inclusive");
        assert_eq!(f.query(), "to=2026-12-01&events=all");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut r = row(7, 1_796_420_000, "=cmd|' /C calc'!A0", "fetch");
        r.code = "a,\"b\"".into();
        let text = csv(&[r]);
        let line = text.lines().nth(1).unwrap_or_default();
        assert!(
            line.starts_with("7,2026-12-04T21:33:20Z,fetch,department,'=cmd"),
            "{line}"
        );
        assert!(line.contains("\"a,\"\"b\"\"\""), "{line}");
    }

    #[test]
    fn dates_start_at_local_midnight() {
        let cst = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
        let utc = day_start("2026-12-04", UtcOffset::UTC).unwrap_or_default();
        assert_eq!(day_start("2026-12-04", cst), Some(utc - 8 * 3600));
        assert_eq!(day_start("2026-13-04", cst), None);
        assert_eq!(day_start("2026-12", cst), None);
        assert_eq!(day_start("x", cst), None);
    }
}
