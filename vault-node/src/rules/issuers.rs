//! The district's issuer registry: which department may issue which kinds
//! of document. A put of a kind its department may not issue is refused
//! (`document.issuer_not_authorized`), and a request by kind resolves only
//! among documents from departments the registry lets issue that kind.
//!
//! Loaded from a JSON file like the purpose registry
//! ([`crate::rules::grants::PurposeRegistry`]): an array of
//! `{"department": NAME, "name": TEXT, "name_zh": TEXT, "kinds": [KIND, ...]}`
//! (`name` and `name_zh`, the department's display names in English and
//! Chinese, are optional). The file is also the district's list of
//! departments: a department listed with `"kinds": []` issues nothing but
//! has its names shown (see [`IssuerRegistry::departments`]).
//!
//! **Invariant:** without a registry (a node started with no `--issuers`
//! and no `issuers` key) every department may issue every kind, as before
//! the registry existed; the node says so once, at `warn`, when it starts.
//! With one, nothing outside it is allowed: there is no wildcard.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use pki::{DocumentKind, Name};
use serde::{Deserialize, Serialize};
use vault_client::ErrorCode;

use crate::Refusal;

/// Most departments a registry may list.
pub const ISSUERS_MAX: usize = 10_000;
/// Most kinds one department may be listed for.
pub const ISSUER_KINDS_MAX: usize = 1_000;
/// Longest display name (`name`, `name_zh`) of a department, in bytes of
/// UTF-8.
pub const DEPARTMENT_NAME_LEN_MAX: usize = 256;

/// One department, its display names and the kinds it may issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerInfo {
    /// The department (its certificate CN).
    pub department: Name,
    /// Its display name in English, e.g. "Civil Affairs Bureau"; absent in
    /// older registry files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its display name in Chinese (zh-CN), e.g. "民政局"; absent in older
    /// registry files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<String>,
    /// The kinds it may issue (empty: none; the department is listed for
    /// its names only).
    pub kinds: Vec<DocumentKind>,
}

/// What the registry holds about one department.
#[derive(Debug, Clone, Default)]
struct Department {
    name: Option<String>,
    name_zh: Option<String>,
    kinds: HashSet<DocumentKind>,
}

/// Who may issue what. `None` inside: no registry configured, everyone
/// may issue everything (see the module's invariant).
#[derive(Debug, Clone, Default)]
pub struct IssuerRegistry {
    issuers: Option<HashMap<Name, Department>>,
}

impl IssuerRegistry {
    /// No registry: every department may issue every kind.
    pub fn open() -> Self {
        IssuerRegistry { issuers: None }
    }

    /// Loads a JSON array of [`IssuerInfo`].
    pub fn load(path: &Path) -> Result<Self, Refusal> {
        let bytes = std::fs::read(path).map_err(|e| {
            Refusal::new(
                ErrorCode::LocalIo,
                format!("cannot read the issuer registry {}: {e}", path.display()),
            )
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses a registry file's bytes (a JSON array of [`IssuerInfo`]);
    /// `source` names the file in the error. The pure part of
    /// [`IssuerRegistry::load`] (fuzzed: `fuzz/`).
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, Refusal> {
        let list: Vec<IssuerInfo> = serde_json::from_slice(bytes).map_err(|e| {
            Refusal::new(
                ErrorCode::InvalidArgument,
                format!("{source} is not an issuer registry: {e}"),
            )
        })?;
        Self::from_list(list)
    }

    /// Builds a registry from a list (a department listed twice gets the
    /// union of its kinds, and its names from whichever listing gives
    /// them; two different names for one department are refused).
    pub fn from_list(list: Vec<IssuerInfo>) -> Result<Self, Refusal> {
        if list.len() > ISSUERS_MAX {
            return Err(Refusal::new(
                ErrorCode::InvalidArgument,
                format!("an issuer registry lists at most {ISSUERS_MAX} departments"),
            ));
        }
        let mut issuers: HashMap<Name, Department> = HashMap::new();
        for info in list {
            if info.kinds.len() > ISSUER_KINDS_MAX {
                return Err(Refusal::new(
                    ErrorCode::InvalidArgument,
                    format!("a department is listed for at most {ISSUER_KINDS_MAX} kinds"),
                ));
            }
            let entry = issuers.entry(info.department.clone()).or_default();
            merge_name(&mut entry.name, info.name, &info.department)?;
            merge_name(&mut entry.name_zh, info.name_zh, &info.department)?;
            entry.kinds.extend(info.kinds);
        }
        Ok(IssuerRegistry {
            issuers: Some(issuers),
        })
    }

    /// Every listed department with its names and kinds, in name order
    /// (kinds sorted too); empty without a registry.
    pub fn departments(&self) -> Vec<IssuerInfo> {
        let Some(issuers) = &self.issuers else {
            return Vec::new();
        };
        let mut list: Vec<IssuerInfo> = issuers
            .iter()
            .map(|(department, entry)| {
                let mut kinds: Vec<DocumentKind> = entry.kinds.iter().cloned().collect();
                kinds.sort();
                IssuerInfo {
                    department: department.clone(),
                    name: entry.name.clone(),
                    name_zh: entry.name_zh.clone(),
                    kinds,
                }
            })
            .collect();
        list.sort_by(|a, b| a.department.cmp(&b.department));
        list
    }

    /// Whether a registry is configured (else everyone may issue everything).
    pub fn is_configured(&self) -> bool {
        self.issuers.is_some()
    }

    /// Whether `department` may issue `kind`.
    pub fn may_issue(&self, department: &Name, kind: &DocumentKind) -> bool {
        match &self.issuers {
            None => true,
            Some(issuers) => issuers
                .get(department)
                .is_some_and(|entry| entry.kinds.contains(kind)),
        }
    }

    /// Refuses (`document.issuer_not_authorized`) a put of `kind` by
    /// `department` that the registry does not allow.
    pub fn check_issue(&self, department: &Name, kind: &DocumentKind) -> Result<(), Refusal> {
        if self.may_issue(department, kind) {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::IssuerNotAuthorized,
            format!(
                "the district's issuer registry does not let {department} issue {kind} documents"
            ),
        ))
    }

    /// The development registry: who issues what in the README's story,
    /// and the names of every development department (the departments of
    /// the development PKI, `node::dev::DEV_IDENTITIES`).
    pub fn development() -> Vec<IssuerInfo> {
        [
            (
                "civil-affairs",
                ["Civil Affairs Bureau", "民政局"],
                &[
                    "marriage-certificate",
                    "birth-certificate",
                    "death-certificate",
                    "id-card",
                    "household-registration",
                    "household-register",
                    "residence-permit",
                ][..],
            ),
            (
                "housing-bureau",
                ["Housing Bureau", "住房保障局"],
                &[
                    "tenancy-contract",
                    "housing-subsidy-decision",
                    "land-survey",
                    "deed",
                ][..],
            ),
            (
                "tax-office",
                ["Tax Office", "税务局"],
                &[
                    "tax-return",
                    "tax-assessment",
                    "tax-paper",
                    "income-statement",
                ][..],
            ),
            (
                // Reads by law (criminal-investigation); issues the
                // certificate of no criminal record residents are asked for.
                "police",
                ["Public Security Bureau", "公安局"],
                &["criminal-record-certificate"][..],
            ),
        ]
        .into_iter()
        .filter_map(|(department, [name, name_zh], kinds)| {
            Some(IssuerInfo {
                department: Name::parse(department).ok()?,
                name: Some(name.to_string()),
                name_zh: Some(name_zh.to_string()),
                kinds: kinds
                    .iter()
                    .filter_map(|k| DocumentKind::parse(k).ok())
                    .collect(),
            })
        })
        .collect()
    }
}

/// Takes a department's display name from one listing: at most
/// [`DEPARTMENT_NAME_LEN_MAX`] bytes, not empty, no control characters,
/// and the same as any other listing of the department gives.
fn merge_name(
    held: &mut Option<String>,
    given: Option<String>,
    department: &Name,
) -> Result<(), Refusal> {
    let Some(given) = given else {
        return Ok(());
    };
    let bad = |why: &str| {
        Refusal::new(
            ErrorCode::InvalidArgument,
            format!("department {department}'s display name {why}"),
        )
    };
    if given.trim().is_empty() || given.chars().any(char::is_control) {
        return Err(bad("is empty or holds control characters"));
    }
    if given.len() > DEPARTMENT_NAME_LEN_MAX {
        return Err(bad(&format!(
            "is longer than {DEPARTMENT_NAME_LEN_MAX} bytes"
        )));
    }
    match held {
        Some(held) if *held != given => Err(bad("differs between two of its listings")),
        _ => {
            *held = Some(given);
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn kind(s: &str) -> DocumentKind {
        DocumentKind::parse(s).unwrap()
    }

    #[test]
    fn the_development_registry_keeps_departments_to_their_kinds() {
        let registry = IssuerRegistry::from_list(IssuerRegistry::development()).unwrap();
        let marriage = kind("marriage-certificate");
        assert!(registry.may_issue(&name("civil-affairs"), &marriage));
        let refusal = registry
            .check_issue(&name("tax-office"), &marriage)
            .unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IssuerNotAuthorized);
        assert!(!registry.may_issue(&name("unknown-office"), &kind("tax-return")));
    }

    #[test]
    fn without_a_registry_everyone_may_issue_everything() {
        let registry = IssuerRegistry::open();
        assert!(!registry.is_configured());
        assert!(registry.may_issue(&name("tax-office"), &kind("marriage-certificate")));
    }

    #[test]
    fn a_department_listed_twice_gets_both_lists_and_bad_files_are_refused() {
        let twice = vec![
            IssuerInfo {
                department: name("a"),
                name: Some("A Office".into()),
                name_zh: None,
                kinds: vec![kind("x")],
            },
            IssuerInfo {
                department: name("a"),
                name: None,
                name_zh: Some("甲办公室".into()),
                kinds: vec![kind("y")],
            },
        ];
        let registry = IssuerRegistry::from_list(twice).unwrap();
        assert!(registry.may_issue(&name("a"), &kind("x")));
        assert!(registry.may_issue(&name("a"), &kind("y")));
        let listed = registry.departments();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name.as_deref(), Some("A Office"));
        assert_eq!(listed[0].name_zh.as_deref(), Some("甲办公室"));
        assert_eq!(listed[0].kinds, vec![kind("x"), kind("y")]);
        let wild: Result<Vec<IssuerInfo>, _> =
            serde_json::from_str(r#"[{"department":"a","kinds":["*"]}]"#);
        assert!(wild.is_err(), "no wildcard kind");
    }

    #[test]
    fn an_older_registry_file_without_names_still_loads() {
        let old = r#"[{"department":"civil-affairs","kinds":["marriage-certificate"]},
                      {"department":"tax-office","kinds":["tax-return"]}]"#;
        let list: Vec<IssuerInfo> = serde_json::from_str(old).unwrap();
        let registry = IssuerRegistry::from_list(list).unwrap();
        assert!(registry.may_issue(&name("civil-affairs"), &kind("marriage-certificate")));
        let departments = registry.departments();
        let names: Vec<&str> = departments.iter().map(|d| d.department.as_str()).collect();
        assert_eq!(names, ["civil-affairs", "tax-office"]);
        assert!(departments
            .iter()
            .all(|d| d.name.is_none() && d.name_zh.is_none()));
        // Written back without the absent fields.
        let json = serde_json::to_string(&departments).unwrap();
        assert!(!json.contains("name"), "{json}");
        assert!(serde_json::from_str::<Vec<IssuerInfo>>(
            r#"[{"department":"a","kinds":[],"title":"x"}]"#
        )
        .is_err());
    }

    #[test]
    fn a_department_listed_with_no_kinds_has_names_and_issues_nothing() {
        let file = r#"[{"department":"records-office","name":"Records Office",
                        "name_zh":"档案局","kinds":[]}]"#;
        let list: Vec<IssuerInfo> = serde_json::from_str(file).unwrap();
        let registry = IssuerRegistry::from_list(list).unwrap();
        assert!(registry.is_configured());
        let refusal = registry
            .check_issue(&name("records-office"), &kind("tax-return"))
            .unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IssuerNotAuthorized);
        let listed = registry.departments();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name_zh.as_deref(), Some("档案局"));
        assert!(listed[0].kinds.is_empty());
    }

    #[test]
    fn bad_or_conflicting_display_names_are_refused() {
        let with = |a: &str, b: &str| {
            vec![
                IssuerInfo {
                    department: name("a"),
                    name: Some(a.into()),
                    name_zh: None,
                    kinds: vec![],
                },
                IssuerInfo {
                    department: name("a"),
                    name: Some(b.into()),
                    name_zh: None,
                    kinds: vec![],
                },
            ]
        };
        assert!(IssuerRegistry::from_list(with("A", "A")).is_ok());
        for (a, b) in [
            ("A", "B"),
            ("", ""),
            ("A\n", "A\n"),
            (&"x".repeat(DEPARTMENT_NAME_LEN_MAX + 1), "x"),
        ] {
            let refusal = IssuerRegistry::from_list(with(a, b)).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::InvalidArgument, "{a:?} {b:?}");
        }
    }

    #[test]
    fn every_development_department_is_listed_with_both_names() {
        let listed = IssuerRegistry::from_list(IssuerRegistry::development())
            .unwrap()
            .departments();
        let departments: Vec<&str> = crate::node::dev::DEV_IDENTITIES
            .iter()
            .filter(|(_, role)| *role == pki::Role::Department)
            .map(|(name, _)| *name)
            .collect();
        let named: Vec<&str> = listed.iter().map(|d| d.department.as_str()).collect();
        let mut departments = departments;
        departments.sort_unstable();
        assert_eq!(named, departments);
        assert!(listed
            .iter()
            .all(|d| d.name.is_some() && d.name_zh.is_some()));
        assert_eq!(listed[0].name.as_deref(), Some("Civil Affairs Bureau"));
        assert_eq!(listed[0].name_zh.as_deref(), Some("民政局"));
    }
}
