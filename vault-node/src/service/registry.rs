//! The district's registries for anyone who asks
//! ([`Request::Registry`](vault_client::wire::Request::Registry)): the
//! purpose registry and the issuer registry (the list of departments with
//! their display names), so a resident's portal shows purposes and
//! departments by name in English and Chinese, not by code.
//!
//! Both registries are read once, at start, so the answer is built once
//! ([`Registry::new`]) and every caller gets a copy of it. It is public
//! information: any authenticated caller may ask, whatever its role.
//!
//! **Invariant:** the answer fits the response frame whatever the files
//! hold: each list is cut at [`vault_client::wire::REGISTRY_BYTES_MAX`]
//! bytes of encoded entries (in code order; `truncated` says so).

use vault_client::wire::{fill_registry, RegistryDepartment, RegistryPurpose, Response};

use crate::rules::grants::PurposeRegistry;
use crate::rules::issuers::IssuerRegistry;

/// The registries' answer, built once.
#[derive(Debug, Clone)]
pub struct Registry {
    purposes: Vec<RegistryPurpose>,
    departments: Vec<RegistryDepartment>,
    truncated: bool,
}

impl Registry {
    /// The answer for these registries: purposes in code order,
    /// departments in name order (none without an issuer registry), each
    /// list cut to its byte budget.
    pub fn new(purposes: &PurposeRegistry, issuers: &IssuerRegistry) -> Registry {
        let (purposes, purposes_cut) =
            fill_registry(purposes.list().into_iter().map(|p| RegistryPurpose {
                code: p.code.clone(),
                description: p.description.clone(),
                description_zh: p.description_zh.clone(),
                legal_basis: p.legal_basis.clone(),
                legal_basis_zh: p.legal_basis_zh.clone(),
                ttl_s_max: p.ttl_s_max,
                statutory: p.statutory.clone(),
            }));
        let (departments, departments_cut) = fill_registry(issuers.departments().into_iter().map(
            |d| RegistryDepartment {
                department: d.department,
                name: d.name,
                name_zh: d.name_zh,
                kinds: d.kinds,
            },
        ));
        if purposes_cut || departments_cut {
            tracing::warn!(
                purposes = purposes.len(),
                departments = departments.len(),
                "the registries are larger than one answer: the registry request lists only the first entries"
            );
        }
        Registry {
            purposes,
            departments,
            truncated: purposes_cut || departments_cut,
        }
    }

    /// Answers a registry request (from any caller).
    pub fn answer(&self) -> Response {
        Response::Registry {
            purposes: self.purposes.clone(),
            departments: self.departments.clone(),
            truncated: self.truncated,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rules::grants::PurposeInfo;
    use crate::rules::issuers::IssuerInfo;

    #[test]
    fn the_development_registries_are_answered_whole_with_chinese() {
        let purposes = PurposeRegistry::from_list(PurposeRegistry::development()).unwrap();
        let issuers = IssuerRegistry::from_list(IssuerRegistry::development()).unwrap();
        let Response::Registry {
            purposes,
            departments,
            truncated,
        } = Registry::new(&purposes, &issuers).answer()
        else {
            panic!("not a registry answer");
        };
        assert!(!truncated);
        assert_eq!(purposes.len(), 6);
        let housing = purposes
            .iter()
            .find(|p| p.code.as_str() == "housing-subsidy")
            .unwrap();
        assert_eq!(housing.description_zh.as_deref(), Some("审核住房补贴申请"));
        let names: Vec<(&str, Option<&str>)> = departments
            .iter()
            .map(|d| (d.department.as_str(), d.name_zh.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("civil-affairs", Some("民政局")),
                ("housing-bureau", Some("住房保障局")),
                ("police", Some("公安局")),
                ("tax-office", Some("税务局")),
            ]
        );
    }

    #[test]
    fn without_registries_both_lists_are_empty() {
        let answer = Registry::new(&PurposeRegistry::default(), &IssuerRegistry::open()).answer();
        assert_eq!(
            answer,
            Response::Registry {
                purposes: vec![],
                departments: vec![],
                truncated: false,
            }
        );
    }

    #[test]
    fn registries_too_large_for_one_answer_are_cut_and_say_so() {
        let long = "x".repeat(1_000);
        let purposes: Vec<PurposeInfo> = (0..crate::rules::grants::PURPOSES_MAX)
            .map(|i| PurposeInfo {
                code: pki::Purpose::parse(&format!("p-{i:05}")).unwrap(),
                description: long.clone(),
                description_zh: Some(long.clone()),
                legal_basis: long.clone(),
                legal_basis_zh: None,
                ttl_s_max: 1,
                statutory: None,
            })
            .collect();
        let issuers: Vec<IssuerInfo> = (0..10)
            .map(|i| IssuerInfo {
                department: pki::Name::parse(&format!("d-{i}")).unwrap(),
                name: None,
                name_zh: None,
                kinds: vec![],
            })
            .collect();
        let registry = Registry::new(
            &PurposeRegistry::from_list(purposes).unwrap(),
            &IssuerRegistry::from_list(issuers).unwrap(),
        );
        let answer = registry.answer();
        let frame = vault_client::wire::encode_frame(&answer).unwrap();
        assert!(frame.len() <= vault_client::wire::RESPONSE_FRAME_LEN_MAX);
        let Response::Registry {
            purposes,
            departments,
            truncated,
        } = answer
        else {
            panic!("not a registry answer");
        };
        assert!(truncated);
        assert!(purposes.len() < 10_000 && !purposes.is_empty());
        assert_eq!(purposes[0].code.as_str(), "p-00000");
        assert_eq!(departments.len(), 10, "the short list is whole");
    }
}
