//! Roles, reading certificates back (x509-parser) and verifying them offline (webpki).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use serde::{Deserialize, Serialize};
use webpki::{
    BorrowedCertRevocationList, CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage,
    RevocationCheckDepth, RevocationOptions, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::x509::X509Name;

use crate::error::{truncate_for_display, PkiError};
use crate::files;
use crate::ids::Name;

/// Length of a raw Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// The role a certificate carries in its subject OU; nothing else grants a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A vault node (server and client of its peers).
    Node,
    /// A department that issues or requests documents.
    Department,
    /// An auditor who reads the log.
    Auditor,
    /// A resident, who approves access to their documents.
    Resident,
    /// An authority (a court, a prosecutor) that authorises statutory
    /// orders: access by law, without the resident's consent.
    Authority,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 5] = [
        Role::Node,
        Role::Department,
        Role::Auditor,
        Role::Resident,
        Role::Authority,
    ];

    /// The role's name as written in certificates and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Department => "department",
            Role::Auditor => "auditor",
            Role::Resident => "resident",
            Role::Authority => "authority",
        }
    }
}

impl FromStr for Role {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| PkiError::InvalidRole {
                value: truncate_for_display(s),
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a certificate says, read back with x509-parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// The role, from the subject OU.
    pub role: Role,
    /// The holder's name, from the subject CN.
    pub name: Name,
    /// Lowercase hex of the serial number bytes.
    pub serial_hex: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// Raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo DER: binds grants to a key.
    pub key_id: [u8; 32],
    /// The issuer's common name ("" if it has none).
    pub issuer_cn: String,
    /// The cluster a node certificate names (subjectAltName URI
    /// [`CLUSTER_URI_PREFIX`]`NAME`), if any.
    pub cluster: Option<String>,
}

/// Prefix of the subjectAltName URI naming a node certificate's cluster.
pub const CLUSTER_URI_PREFIX: &str = "urn:vault:cluster:";

impl PeerCert {
    /// [`PeerCert::key_id`] as 64 lowercase hex characters.
    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id)
    }
}

/// Parses a DER certificate (no chain validation). Role from subject OU, name from subject CN.
/// Rejects non-Ed25519 keys and unknown roles.
pub fn parse_certificate(der: &[u8]) -> Result<PeerCert, PkiError> {
    let (rest, x509) = x509_parser::parse_x509_certificate(der).map_err(PkiError::bad_cert)?;
    if !rest.is_empty() {
        return Err(PkiError::bad_cert("trailing bytes after the certificate"));
    }
    let spki = x509.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(PkiError::bad_cert("public key is not Ed25519"));
    }
    let public_key = spki.subject_public_key.data.to_vec();
    if public_key.len() != ED25519_PUBLIC_KEY_LEN {
        return Err(PkiError::bad_cert("Ed25519 public key is not 32 bytes"));
    }
    let role_str = single_attr(x509.subject(), "OU", X509Name::iter_organizational_unit)?;
    let role = role_str.parse::<Role>().map_err(PkiError::bad_cert)?;
    let name_str = single_attr(x509.subject(), "CN", X509Name::iter_common_name)?;
    let name = Name::parse(name_str).map_err(PkiError::bad_cert)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.raw);
    let mut key_id = [0u8; 32];
    key_id.copy_from_slice(digest.as_ref());
    let issuer_cn = x509
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|attr| attr.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cluster = cluster_of(&x509)?;
    Ok(PeerCert {
        role,
        name,
        serial_hex: hex::encode(x509.raw_serial()),
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
        public_key,
        key_id,
        issuer_cn,
        cluster,
    })
}

/// The cluster named by the certificate's subjectAltName URIs, if any;
/// naming two is an error.
fn cluster_of(
    x509: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Option<String>, PkiError> {
    let Some(sans) = x509
        .subject_alternative_name()
        .map_err(PkiError::bad_cert)?
    else {
        return Ok(None);
    };
    // The URN prefix is matched regardless of case (as URN namespaces
    // are), so a differently cased one cannot switch the check off.
    let mut clusters = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri
                .split_at_checked(CLUSTER_URI_PREFIX.len())
                .filter(|(prefix, _)| prefix.eq_ignore_ascii_case(CLUSTER_URI_PREFIX))
                .map(|(_, cluster)| cluster),
            _ => None,
        });
    let Some(cluster) = clusters.next() else {
        return Ok(None);
    };
    if clusters.next().is_some() {
        return Err(PkiError::bad_cert(
            "the certificate names more than one cluster",
        ));
    }
    let cluster = crate::ids::Name::parse(cluster)
        .map_err(|e| PkiError::bad_cert(format!("the certificate's cluster name: {e}")))?;
    Ok(Some(cluster.as_str().to_owned()))
}

/// Returns the one string value of a subject attribute; zero or several is an error.
fn single_attr<'a, I>(
    name: &'a X509Name<'a>,
    label: &str,
    iter: impl Fn(&'a X509Name<'a>) -> I,
) -> Result<&'a str, PkiError>
where
    I: Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
{
    let mut values = iter(name);
    let first = values
        .next()
        .ok_or_else(|| PkiError::bad_cert(format!("subject has no {label}")))?;
    if values.next().is_some() {
        return Err(PkiError::bad_cert(format!(
            "subject has more than one {label}"
        )));
    }
    first
        .as_str()
        .map_err(|_| PkiError::bad_cert(format!("subject {label} is not a string")))
}

/// Full offline validation with webpki: chain to `ca_der`, validity at `now_unix`, not revoked
/// by any of `crls` (DER CRLs), then [`parse_certificate`].
///
/// With CRLs given, a certificate no CRL speaks for is refused (fail closed).
pub fn verify_certificate(
    cert_der: &[u8],
    ca_der: &[u8],
    crls: &[Vec<u8>],
    now_unix: i64,
) -> Result<PeerCert, PkiError> {
    let ca = CertificateDer::from(ca_der);
    let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|e| PkiError::Untrusted {
        reason: format!("the CA certificate is unusable ({e})"),
    })?;
    let leaf = CertificateDer::from(cert_der);
    let end_entity = EndEntityCert::try_from(&leaf).map_err(PkiError::bad_cert)?;
    let parsed = crls
        .iter()
        .map(|der| BorrowedCertRevocationList::from_der(der).map(CertRevocationList::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::BadCrl {
            reason: e.to_string(),
        })?;
    let refs: Vec<&CertRevocationList<'_>> = parsed.iter().collect();
    let seconds = u64::try_from(now_unix)
        .map_err(|_| PkiError::bad_cert("verification time is before 1970"))?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(seconds));
    end_entity
        .verify_for_usage(
            &[webpki::ring::ED25519],
            &[anchor],
            &[],
            time,
            KeyUsage::client_auth(),
            revocation_options(&refs),
            None,
        )
        .map_err(map_webpki_error)?;
    parse_certificate(cert_der)
}

fn revocation_options<'a>(crls: &'a [&'a CertRevocationList<'a>]) -> Option<RevocationOptions<'a>> {
    let builder = RevocationOptionsBuilder::new(crls).ok()?;
    Some(
        builder
            .with_depth(RevocationCheckDepth::EndEntity)
            .with_status_policy(UnknownStatusPolicy::Deny)
            .with_expiration_policy(ExpirationPolicy::Ignore)
            .build(),
    )
}

fn map_webpki_error(err: webpki::Error) -> PkiError {
    match err {
        webpki::Error::CertExpired { .. } => PkiError::Expired,
        webpki::Error::CertNotValidYet { .. } => PkiError::NotYetValid,
        webpki::Error::CertRevoked => PkiError::Revoked,
        webpki::Error::UnknownIssuer => PkiError::Untrusted {
            reason: "it was not issued by the given CA".to_owned(),
        },
        webpki::Error::UnknownRevocationStatus => PkiError::Untrusted {
            reason: "none of the given CRLs was issued by its CA".to_owned(),
        },
        other => PkiError::Untrusted {
            reason: format!("{other:?}"),
        },
    }
}

/// Reads a PEM file holding one or more CRLs and returns their DER bytes.
pub fn load_crls(path: &Path) -> Result<Vec<Vec<u8>>, PkiError> {
    let bytes = files::read(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .map(|item| item.map(|crl| crl.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if crls.is_empty() {
        return Err(PkiError::BadPem {
            path: path.to_path_buf(),
            reason: "no X509 CRL section".to_owned(),
        });
    }
    Ok(crls)
}

/// The serial numbers (lowercase hex, as in [`PeerCert::serial_hex`]) a DER
/// CRL revokes. The CRL's signature is not checked here: callers pass CRLs
/// that rustls or [`verify_certificate`] also check against the CA.
pub fn revoked_serials(crl_der: &[u8]) -> Result<Vec<String>, PkiError> {
    let (_, crl) = x509_parser::parse_x509_crl(crl_der).map_err(|e| PkiError::BadCrl {
        reason: e.to_string(),
    })?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|revoked| hex::encode(revoked.raw_serial()))
        .collect())
}

/// Reads the first certificate of a PEM file (e.g. a CA's `ca.pem`) as DER.
pub fn read_certificate_pem(path: &Path) -> Result<Vec<u8>, PkiError> {
    crate::files::read_cert_pem(path)
}
