//! The district's issuer registry: which department may issue which kinds
//! of document. A put of a kind its department may not issue is refused
//! (`document.issuer_not_authorized`), and a request by kind resolves only
//! among documents from departments the registry lets issue that kind.
//!
//! Loaded from a JSON file like the purpose registry
//! ([`crate::rules::grants::PurposeRegistry`]): an array of
//! `{"department": NAME, "kinds": [KIND, ...]}`.
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

/// One department and the kinds it may issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerInfo {
    /// The department (its certificate CN).
    pub department: Name,
    /// The kinds it may issue.
    pub kinds: Vec<DocumentKind>,
}

/// Who may issue what. `None` inside: no registry configured, everyone
/// may issue everything (see the module's invariant).
#[derive(Debug, Clone, Default)]
pub struct IssuerRegistry {
    issuers: Option<HashMap<Name, HashSet<DocumentKind>>>,
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
        let list: Vec<IssuerInfo> = serde_json::from_slice(&bytes).map_err(|e| {
            Refusal::new(
                ErrorCode::InvalidArgument,
                format!("{} is not an issuer registry: {e}", path.display()),
            )
        })?;
        Self::from_list(list)
    }

    /// Builds a registry from a list (a department listed twice gets the
    /// union of its kinds).
    pub fn from_list(list: Vec<IssuerInfo>) -> Result<Self, Refusal> {
        if list.len() > ISSUERS_MAX {
            return Err(Refusal::new(
                ErrorCode::InvalidArgument,
                format!("an issuer registry lists at most {ISSUERS_MAX} departments"),
            ));
        }
        let mut issuers: HashMap<Name, HashSet<DocumentKind>> = HashMap::new();
        for info in list {
            if info.kinds.len() > ISSUER_KINDS_MAX {
                return Err(Refusal::new(
                    ErrorCode::InvalidArgument,
                    format!("a department is listed for at most {ISSUER_KINDS_MAX} kinds"),
                ));
            }
            issuers
                .entry(info.department)
                .or_default()
                .extend(info.kinds);
        }
        Ok(IssuerRegistry {
            issuers: Some(issuers),
        })
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
                .is_some_and(|kinds| kinds.contains(kind)),
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

    /// The development registry: who issues what in the README's story.
    pub fn development() -> Vec<IssuerInfo> {
        [
            (
                "civil-affairs",
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
                &[
                    "tenancy-contract",
                    "housing-subsidy-decision",
                    "land-survey",
                    "deed",
                ][..],
            ),
            (
                "tax-office",
                &[
                    "tax-return",
                    "tax-assessment",
                    "tax-paper",
                    "income-statement",
                ][..],
            ),
        ]
        .into_iter()
        .filter_map(|(department, kinds)| {
            Some(IssuerInfo {
                department: Name::parse(department).ok()?,
                kinds: kinds
                    .iter()
                    .filter_map(|k| DocumentKind::parse(k).ok())
                    .collect(),
            })
        })
        .collect()
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
                kinds: vec![kind("x")],
            },
            IssuerInfo {
                department: name("a"),
                kinds: vec![kind("y")],
            },
        ];
        let registry = IssuerRegistry::from_list(twice).unwrap();
        assert!(registry.may_issue(&name("a"), &kind("x")));
        assert!(registry.may_issue(&name("a"), &kind("y")));
        let wild: Result<Vec<IssuerInfo>, _> =
            serde_json::from_str(r#"[{"department":"a","kinds":["*"]}]"#);
        assert!(wild.is_err(), "no wildcard kind");
    }
}
