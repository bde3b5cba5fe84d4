//! The CA directory: a self-signed Ed25519 root that issues certificates and CRLs.
//!
//! **Invariant:** `ca.key.pem` and every issued `key.pem` are created with mode 0600;
//! they are never world-readable, not even between create and chmod.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cert::{parse_certificate, PeerCert, Role};
use crate::error::{truncate_for_display, PkiError};
use crate::files;
use crate::identity::check_key_permissions;
use crate::ids::Name;
use crate::keys::{self, NewKey};
use crate::log_key::{self, LogVerifier, LOG_KEY_FILE, LOG_PUB_FILE};
use crate::salt_key::{SaltSigner, SALT_KEY_FILE, SALT_PUB_FILE};

/// Seconds in a day.
const DAY_S: i64 = 24 * 60 * 60;
/// Lifetime of the root certificate.
pub const CA_VALIDITY_S: i64 = 10 * 365 * DAY_S;
/// Default lifetime of node, department and auditor certificates.
pub const CERT_VALIDITY_S: i64 = 365 * DAY_S;
/// Default lifetime of resident certificates.
pub const RESIDENT_CERT_VALIDITY_S: i64 = 5 * 365 * DAY_S;
/// How far back `not_before` is set, to tolerate clock skew between machines.
pub const CLOCK_SKEW_S: i64 = 60;
/// How long a CRL is good for (its nextUpdate).
pub const CRL_VALIDITY_S: i64 = 30 * DAY_S;
/// Length of a random certificate serial number, in bytes.
pub const SERIAL_LEN: usize = 16;
/// Longest district name, in bytes.
pub const DISTRICT_LEN_MAX: usize = 128;
/// Version of the `revoked.json` format.
pub const REVOKED_STORE_VERSION: u32 = 1;

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key.pem";
const ISSUED_DIR: &str = "issued";
const CRL_FILE: &str = "crl.pem";
const REVOKED_FILE: &str = "revoked.json";

/// The district CA, backed by its directory (see [`CertificateAuthority::init`]).
pub struct CertificateAuthority {
    dir: PathBuf,
    district: String,
    ca_pem: String,
    ca_der: Vec<u8>,
    key: KeyPair,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .field("district", &self.district)
            .finish_non_exhaustive()
    }
}

/// What to put in a certificate issued by [`CertificateAuthority::issue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueParams {
    /// The holder's role (subject OU).
    pub role: Role,
    /// The holder's name (subject CN).
    pub name: Name,
    /// DNS names or IP literals for the subjectAltName; used for node certificates.
    pub sans: Vec<String>,
    /// The cluster a node certificate belongs to (a subjectAltName URI
    /// [`crate::cert::CLUSTER_URI_PREFIX`]`NAME`): a node whose certificate
    /// names a cluster takes Raft messages and blob copies only from nodes
    /// of the same cluster. Only for node certificates.
    pub cluster: Option<Name>,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl IssueParams {
    /// Validity from `now - 60 s` to `now + 365 days` (residents: 5 years), no SANs.
    pub fn new(role: Role, name: Name, now_unix: i64) -> Self {
        let lifetime = match role {
            Role::Resident => RESIDENT_CERT_VALIDITY_S,
            _ => CERT_VALIDITY_S,
        };
        Self {
            role,
            name,
            sans: Vec::new(),
            cluster: None,
            not_before: now_unix.saturating_sub(CLOCK_SKEW_S),
            not_after: now_unix.saturating_add(lifetime),
        }
    }
}

/// One revoked certificate, as recorded in `revoked.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedEntry {
    /// Lowercase hex serial.
    pub serial_hex: String,
    /// When the CA revoked it, unix seconds.
    pub revoked_at: i64,
}

/// The contents of `revoked.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RevokedStore {
    version: u32,
    crl_number: u64,
    revoked: Vec<RevokedEntry>,
}

impl CertificateAuthority {
    /// Creates `dir` with `ca.pem` (self-signed Ed25519 root, CN "<district> Root CA",
    /// O district, 10 years), `ca.key.pem` (0600, RFC 8410 PKCS#8 v1 PEM), `issued/`,
    /// `crl.pem` (empty signed CRL) and `revoked.json`. Refuses with `pki.exists` if `ca.pem`
    /// already exists.
    pub fn init(dir: &Path, district: &str, now_unix: i64) -> Result<Self, PkiError> {
        Self::init_with_key(dir, district, now_unix, keys::generate("CA key")?)
    }

    fn init_with_key(
        dir: &Path,
        district: &str,
        now_unix: i64,
        key: NewKey,
    ) -> Result<Self, PkiError> {
        check_district(district)?;
        let ca_path = dir.join(CA_CERT_FILE);
        if ca_path.exists() {
            return Err(PkiError::Exists { path: ca_path });
        }
        files::create_dir(dir, 0o700)?;
        let NewKey {
            pair: key,
            pem: key_pem,
        } = key;
        let params = root_params(district, now_unix)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::generate("CA certificate", e))?;
        files::write_new(&dir.join(CA_KEY_FILE), key_pem.as_bytes(), 0o600)?;
        files::create_dir(&dir.join(ISSUED_DIR), 0o700)?;
        let ca = Self {
            dir: dir.to_path_buf(),
            district: district.to_owned(),
            ca_pem: cert.pem(),
            ca_der: cert.der().to_vec(),
            key,
        };
        let store = RevokedStore {
            version: REVOKED_STORE_VERSION,
            crl_number: 1,
            revoked: Vec::new(),
        };
        ca.write_crl(&store, now_unix)?;
        ca.write_store(&store)?;
        // ca.pem last: its presence marks a complete CA directory.
        files::write_new(&ca_path, ca.ca_pem.as_bytes(), 0o644)?;
        Ok(ca)
    }

    /// Opens an existing CA directory made by [`CertificateAuthority::init`].
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let ca_path = dir.join(CA_CERT_FILE);
        let ca_der = files::read_cert_pem(&ca_path)?;
        let ca_pem = String::from_utf8(files::read(&ca_path)?).map_err(|_| PkiError::BadPem {
            path: ca_path.clone(),
            reason: "not UTF-8".to_owned(),
        })?;
        let key_path = dir.join(CA_KEY_FILE);
        check_key_permissions(&key_path)?;
        let key_der = files::read_key_pem(&key_path)?;
        let key = keys::rcgen_key_pair(&key_der)?;
        let district = district_of(&ca_der)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            district,
            ca_pem,
            ca_der,
            key,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The district name (the root's subject O).
    pub fn district(&self) -> &str {
        &self.district
    }

    /// The root certificate as PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The root certificate as DER.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    /// Path of the current CRL, `dir/crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL_FILE)
    }

    /// Issues a certificate and writes `out_dir/{cert.pem, key.pem, ca.pem}` (`key.pem`: a new
    /// Ed25519 key, mode 0600, RFC 8410 PKCS#8 v1 PEM); also copies the certificate to
    /// `issued/<serial>.pem`. Refuses with `pki.exists` if `out_dir/key.pem` exists.
    pub fn issue(&self, params: &IssueParams, out_dir: &Path) -> Result<PeerCert, PkiError> {
        self.issue_with_key(params, out_dir, keys::generate("key")?)
    }

    fn issue_with_key(
        &self,
        params: &IssueParams,
        out_dir: &Path,
        key: NewKey,
    ) -> Result<PeerCert, PkiError> {
        let key_path = out_dir.join("key.pem");
        if key_path.exists() {
            return Err(PkiError::Exists { path: key_path });
        }
        if params.not_after <= params.not_before {
            return Err(PkiError::bad_cert(
                "not_after must be later than not_before",
            ));
        }
        let cert_params = self.leaf_params(params)?;
        let cert = cert_params
            .signed_by(&key.pair, &self.issuer()?)
            .map_err(|e| PkiError::generate("certificate", e))?;
        let peer = parse_certificate(cert.der())?;
        files::create_dir(out_dir, 0o700)?;
        files::write_new(&key_path, key.pem.as_bytes(), 0o600)?;
        files::replace(&out_dir.join("cert.pem"), cert.pem().as_bytes(), 0o644)?;
        files::replace(&out_dir.join("ca.pem"), self.ca_pem.as_bytes(), 0o644)?;
        self.copy_log_files(params.role, out_dir)?;
        let issued = self.issued_path(&peer.serial_hex);
        files::write_new(&issued, cert.pem().as_bytes(), 0o644)?;
        Ok(peer)
    }

    /// Copies the district log's files into an identity directory: `log.pub` and `salt.pub`
    /// into every one, and the secret `log.key.pem` and `salt.key.pem` (mode 0600) into node
    /// identities. Nothing is copied when the CA has no log key (or salt key) yet.
    fn copy_log_files(&self, role: Role, out_dir: &Path) -> Result<(), PkiError> {
        for (public, secret) in [(LOG_PUB_FILE, LOG_KEY_FILE), (SALT_PUB_FILE, SALT_KEY_FILE)] {
            let public_path = self.dir.join(public);
            if public_path.exists() {
                files::replace(&out_dir.join(public), &files::read(&public_path)?, 0o644)?;
            }
            let secret_path = self.dir.join(secret);
            if role == Role::Node && secret_path.exists() {
                files::replace(&out_dir.join(secret), &files::read(&secret_path)?, 0o600)?;
            }
        }
        Ok(())
    }

    /// Creates the district's salt key (`salt.key.pem`, 0600, and `salt.pub`) unless the CA
    /// has one; answers whether it made one. The salt key is never rotated: every resident's
    /// log salt is fixed by it (`docs/COMPLETENESS.md` §4).
    pub fn create_salt_key(&self) -> Result<bool, PkiError> {
        let key_path = self.dir.join(SALT_KEY_FILE);
        if key_path.exists() {
            return Ok(false);
        }
        let (signer, pem) = SaltSigner::generate()?;
        files::write_new(&key_path, pem.as_bytes(), 0o600)?;
        files::replace(
            &self.dir.join(SALT_PUB_FILE),
            signer.verifier().to_pem().as_bytes(),
            0o644,
        )?;
        Ok(true)
    }

    /// Copies the log's files into an identity directory issued before the log key existed
    /// (or after a rotation): as [`CertificateAuthority::issue`] does.
    pub fn install_log_files(&self, role: Role, out_dir: &Path) -> Result<(), PkiError> {
        self.copy_log_files(role, out_dir)
    }

    /// The district log's verifier keys (`log.pub` in the CA directory), newest first.
    pub fn log_verifiers(&self) -> Result<Vec<LogVerifier>, PkiError> {
        log_key::load_verifiers(&self.dir.join(LOG_PUB_FILE))
    }

    /// Path of the district log's secret key, `dir/log.key.pem`.
    pub fn log_key_path(&self) -> PathBuf {
        self.dir.join(LOG_KEY_FILE)
    }

    /// Creates the district's log key for `origin` (a schema-less URL, e.g.
    /// `district.example/vault`): `log.key.pem` (0600, RFC 8410 PKCS#8 v1) and `log.pub` (its
    /// C2SP verifier key). Refuses with `pki.exists` if a log key exists, unless `rotate`:
    /// then the old key file is renamed `log.key.pem.retired-<now>` (destroy it once every node
    /// signs with the new key) and the new verifier key is put first in `log.pub`, the old
    /// ones kept, so old checkpoints stay verifiable and clients take both during the change.
    /// The district salt key is made beside it the first time ([`Self::create_salt_key`]) and
    /// kept through rotations.
    pub fn create_log_key(
        &self,
        origin: &str,
        rotate: bool,
        now_unix: i64,
    ) -> Result<LogVerifier, PkiError> {
        let (signer, pem) = log_key::generate(origin)?;
        let key_path = self.log_key_path();
        let mut verifiers = self.log_verifiers()?;
        if key_path.exists() {
            if !rotate {
                return Err(PkiError::Exists { path: key_path });
            }
            if verifiers.iter().any(|v| v.name() == origin) {
                return Err(PkiError::InvalidName {
                    what: "log origin",
                    value: origin.to_owned(),
                    rule: "a rotated log key needs a new origin, not one log.pub already lists",
                });
            }
            let retired = self.dir.join(format!("{LOG_KEY_FILE}.retired-{now_unix}"));
            std::fs::rename(&key_path, &retired)
                .map_err(|e| PkiError::io("retire", &key_path, e))?;
        }
        self.create_salt_key()?;
        verifiers.insert(0, signer.verifier().clone());
        files::write_new(&key_path, pem.as_bytes(), 0o600)?;
        files::replace(
            &self.dir.join(LOG_PUB_FILE),
            log_key::verifiers_text(&verifiers).as_bytes(),
            0o644,
        )?;
        Ok(signer.verifier().clone())
    }

    /// Adds the serial to `revoked.json` and rewrites `crl.pem` (a signed v2 CRL with an
    /// increasing CRL number, thisUpdate now, nextUpdate now + 30 days). Unknown serial ->
    /// `pki.unknown_serial`. Revoking twice is idempotent.
    pub fn revoke(&self, serial_hex: &str, now_unix: i64) -> Result<(), PkiError> {
        let serial = normalize_serial(serial_hex)?;
        if !self.issued_path(&serial).is_file() {
            return Err(PkiError::UnknownSerial { serial });
        }
        self.revoke_serials(&[serial], now_unix)
    }

    /// Revokes every unexpired certificate issued to `name` (subject CN): each whose
    /// `not_after` is not before `now_unix`, not only the newest, in one CRL update like
    /// [`CertificateAuthority::revoke`]. Returns their serials, newest first, including any
    /// already revoked (the CRL lists each serial once, so revoking a name twice is
    /// idempotent). Expired certificates are left alone (revoke those by serial).
    /// No unexpired certificate of that name -> `pki.unknown_name`.
    pub fn revoke_name(&self, name: &Name, now_unix: i64) -> Result<Vec<String>, PkiError> {
        let serials: Vec<String> = self
            .find_issued(name)?
            .into_iter()
            .filter(|cert| cert.not_after >= now_unix)
            .map(|cert| cert.serial_hex)
            .collect();
        if serials.is_empty() {
            return Err(PkiError::UnknownName {
                name: name.to_string(),
            });
        }
        self.revoke_serials(&serials, now_unix)?;
        Ok(serials)
    }

    /// Adds the serials not yet revoked to `revoked.json` and, if there were any, writes
    /// a CRL with the next CRL number.
    fn revoke_serials(&self, serials: &[String], now_unix: i64) -> Result<(), PkiError> {
        let mut store = self.read_store()?;
        let before = store.revoked.len();
        for serial in serials {
            if !store
                .revoked
                .iter()
                .any(|entry| &entry.serial_hex == serial)
            {
                store.revoked.push(RevokedEntry {
                    serial_hex: serial.clone(),
                    revoked_at: now_unix,
                });
            }
        }
        if store.revoked.len() == before {
            return Ok(());
        }
        store.crl_number = store.crl_number.saturating_add(1);
        // CRL first: if we stop between the two writes, a retry revokes again.
        self.write_crl(&store, now_unix)?;
        self.write_store(&store)
    }

    /// The revoked certificates recorded in `revoked.json`, oldest first.
    pub fn revoked(&self) -> Result<Vec<RevokedEntry>, PkiError> {
        Ok(self.read_store()?.revoked)
    }

    /// Issued certificates whose CN is `name`, newest (latest not_before) first.
    pub fn find_issued(&self, name: &Name) -> Result<Vec<PeerCert>, PkiError> {
        let mut found = self
            .issued()?
            .into_iter()
            .filter(|cert| &cert.name == name)
            .collect::<Vec<_>>();
        found.sort_by(|a, b| (b.not_before, &b.serial_hex).cmp(&(a.not_before, &a.serial_hex)));
        Ok(found)
    }

    /// Every certificate in `issued/`, in no particular order.
    pub fn issued(&self) -> Result<Vec<PeerCert>, PkiError> {
        let dir = self.dir.join(ISSUED_DIR);
        let entries = std::fs::read_dir(&dir).map_err(|e| PkiError::io("list", &dir, e))?;
        let mut certs = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| PkiError::io("list", &dir, e))?.path();
            if path.extension().is_some_and(|ext| ext == "pem") {
                certs.push(parse_certificate(&files::read_cert_pem(&path)?)?);
            }
        }
        Ok(certs)
    }

    fn issued_path(&self, serial_hex: &str) -> PathBuf {
        self.dir.join(ISSUED_DIR).join(format!("{serial_hex}.pem"))
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, PkiError> {
        Issuer::from_ca_cert_der(&CertificateDer::from(self.ca_der.as_slice()), &self.key)
            .map_err(|e| PkiError::generate("issuer from ca.pem", e))
    }

    fn leaf_params(&self, params: &IssueParams) -> Result<CertificateParams, PkiError> {
        let mut cert = CertificateParams::new(params.sans.clone())
            .map_err(|e| PkiError::generate("subject alternative names", e))?;
        if let Some(cluster) = &params.cluster {
            if params.role != Role::Node {
                return Err(PkiError::bad_cert(format!(
                    "only node certificates name a cluster, not {} certificates",
                    params.role.as_str()
                )));
            }
            let uri = format!("{}{}", crate::cert::CLUSTER_URI_PREFIX, cluster.as_str());
            let uri = rcgen::string::Ia5String::try_from(uri)
                .map_err(|e| PkiError::generate("cluster URI", e))?;
            cert.subject_alt_names.push(rcgen::SanType::URI(uri));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.district.as_str());
        dn.push(DnType::OrganizationalUnitName, params.role.as_str());
        dn.push(DnType::CommonName, params.name.as_str());
        cert.distinguished_name = dn;
        cert.is_ca = IsCa::ExplicitNoCa;
        cert.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        cert.extended_key_usages = match params.role {
            Role::Node => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        cert.use_authority_key_identifier_extension = true;
        cert.serial_number = Some(random_serial()?);
        cert.not_before = datetime(params.not_before)?;
        cert.not_after = datetime(params.not_after)?;
        Ok(cert)
    }

    fn read_store(&self) -> Result<RevokedStore, PkiError> {
        let path = self.dir.join(REVOKED_FILE);
        let bytes = files::read(&path)?;
        let store: RevokedStore =
            serde_json::from_slice(&bytes).map_err(|e| PkiError::CorruptStore {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if store.version != REVOKED_STORE_VERSION {
            return Err(PkiError::CorruptStore {
                path,
                reason: format!("unsupported version {}", store.version),
            });
        }
        Ok(store)
    }

    fn write_store(&self, store: &RevokedStore) -> Result<(), PkiError> {
        let path = self.dir.join(REVOKED_FILE);
        let mut json = serde_json::to_vec_pretty(store).map_err(|e| PkiError::CorruptStore {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        files::replace(&path, &json, 0o644)
    }

    fn write_crl(&self, store: &RevokedStore, now_unix: i64) -> Result<(), PkiError> {
        let revoked_certs = store
            .revoked
            .iter()
            .map(|entry| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&decode_serial(&entry.serial_hex)?),
                    revocation_time: datetime(entry.revoked_at)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: datetime(now_unix)?,
            next_update: datetime(now_unix.saturating_add(CRL_VALIDITY_S))?,
            crl_number: SerialNumber::from(store.crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer()?)
            .map_err(|e| PkiError::generate("CRL", e))?;
        let pem = crl.pem().map_err(|e| PkiError::generate("CRL PEM", e))?;
        files::replace(&self.crl_path(), pem.as_bytes(), 0o644)
    }
}

fn root_params(district: &str, now_unix: i64) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, district);
    dn.push(DnType::CommonName, format!("{district} Root CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial()?);
    params.not_before = datetime(now_unix.saturating_sub(CLOCK_SKEW_S))?;
    params.not_after = datetime(now_unix.saturating_add(CA_VALIDITY_S))?;
    Ok(params)
}

fn check_district(district: &str) -> Result<(), PkiError> {
    let ok = !district.trim().is_empty()
        && district.len() <= DISTRICT_LEN_MAX
        && !district.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName {
            what: "district",
            value: truncate_for_display(district),
            rule: "use 1 to 128 bytes of printable text",
        })
    }
}

/// The district of a root certificate: its subject O.
fn district_of(ca_der: &[u8]) -> Result<String, PkiError> {
    let (_, x509) = x509_parser::parse_x509_certificate(ca_der).map_err(PkiError::bad_cert)?;
    let org = x509
        .subject()
        .iter_organization()
        .next()
        .and_then(|attr| attr.as_str().ok())
        .ok_or_else(|| PkiError::bad_cert("CA certificate has no subject O (district)"))?;
    Ok(org.to_owned())
}

/// A random positive 16-byte serial whose first byte is non-zero (so DER keeps all 16 bytes).
fn random_serial() -> Result<SerialNumber, PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; SERIAL_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Generate {
            what: "serial number",
            reason: "the system random number generator failed".to_owned(),
        })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn normalize_serial(serial_hex: &str) -> Result<String, PkiError> {
    let serial = serial_hex.trim().to_ascii_lowercase();
    decode_serial(&serial)?;
    Ok(serial)
}

fn decode_serial(serial_hex: &str) -> Result<Vec<u8>, PkiError> {
    match hex::decode(serial_hex) {
        Ok(bytes) if !bytes.is_empty() && bytes.len() <= 20 => Ok(bytes),
        _ => Err(PkiError::UnknownSerial {
            serial: truncate_for_display(serial_hex),
        }),
    }
}

fn datetime(unix: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| PkiError::bad_cert(format!("time {unix} is out of range")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::process::Command;

    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivatePkcs8KeyDer;

    use super::*;
    use crate::cert::verify_certificate;
    use crate::identity::{verify_signature, Identity};

    const NOW: i64 = 1_700_000_000;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    /// The DER inside a key file's "PRIVATE KEY" section.
    fn key_file_der(path: &Path) -> Vec<u8> {
        let pem = std::fs::read(path).unwrap();
        PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .unwrap()
            .secret_pkcs8_der()
            .to_vec()
    }

    /// A key as versions before RFC 8410 v1 wrote it: ring's PKCS#8 v2 document.
    fn v2_key() -> (NewKey, Vec<u8>) {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let der = doc.as_ref().to_vec();
        assert_eq!(hex::encode(&der[..5]), "3051020101", "ring writes v2");
        let public_key = Ed25519KeyPair::from_pkcs8(&der)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let key = NewKey {
            pair: keys::rcgen_key_pair(&der).unwrap(),
            pem: keys::pkcs8_pem(&der),
        };
        (key, public_key)
    }

    /// The identity signs, its signature verifies with its certificate's key, its
    /// certificate chains to the CA and TLS accepts the key.
    fn assert_identity_works(ca: &CertificateAuthority, dir: &Path) -> Identity {
        let identity = Identity::load(dir).unwrap();
        let sig = identity.sign(b"statement");
        verify_signature(&identity.cert.public_key, b"statement", &sig).unwrap();
        verify_certificate(identity.cert_der(), &ca.ca_der(), &[], NOW).unwrap();
        crate::tls::client_tls_config(&identity).unwrap();
        identity
    }

    #[test]
    fn keys_are_written_as_pkcs8_v1_with_mode_0600_and_work() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), "North", NOW).unwrap();
        let params = IssueParams::new(Role::Department, name("police"), NOW);
        let out = tmp.path().join("police");
        ca.issue(&params, &out).unwrap();
        for path in [ca.dir().join(CA_KEY_FILE), out.join("key.pem")] {
            let der = key_file_der(&path);
            assert_eq!(der.len(), keys::PKCS8_V1_LEN, "{}", path.display());
            assert_eq!(hex::encode(&der[..16]), "302e020100300506032b657004220420");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
            #[cfg(unix)]
            assert_eq!(files::mode_of(&path).unwrap(), Some(0o600));
        }
        let identity = assert_identity_works(&ca, &out);
        let seed: [u8; 32] = identity.key_pkcs8_der()[16..].try_into().unwrap();
        assert_eq!(identity.key_pkcs8_der(), keys::pkcs8_v1_der(&seed));
        // The CA loads its v1 key back and still issues and revokes.
        let ca = CertificateAuthority::open(ca.dir()).unwrap();
        let again = tmp.path().join("again");
        let cert = ca.issue(&params, &again).unwrap();
        assert_identity_works(&ca, &again);
        ca.revoke(&cert.serial_hex, NOW).unwrap();
        let crls = crate::cert::load_crls(&ca.crl_path()).unwrap();
        let err = verify_certificate(
            &std::fs::read(ca.issued_path(&cert.serial_hex))
                .map(|pem| CertificateDer::from_pem_slice(&pem).unwrap().to_vec())
                .unwrap(),
            &ca.ca_der(),
            &crls,
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.code(), "pki.revoked");
    }

    #[test]
    fn v2_key_files_written_before_still_load() {
        let tmp = tempfile::tempdir().unwrap();
        let (ca_key, ca_public_key) = v2_key();
        let dir = tmp.path().join("ca");
        CertificateAuthority::init_with_key(&dir, "North", NOW, ca_key).unwrap();
        assert_eq!(key_file_der(&dir.join(CA_KEY_FILE)).len(), 83, "a v2 file");
        let ca = CertificateAuthority::open(&dir).unwrap();
        assert_eq!(ca.key.public_key_raw(), ca_public_key.as_slice());
        let params = IssueParams::new(Role::Resident, name("alice"), NOW);
        // A v2 identity key, as `vault-pki issue` wrote it before.
        let (key, public_key) = v2_key();
        let old = tmp.path().join("old");
        ca.issue_with_key(&params, &old, key).unwrap();
        let identity = assert_identity_works(&ca, &old);
        assert_eq!(identity.cert.public_key, public_key);
        // A CA with a v2 key issues new identities with v1 keys.
        let new = tmp.path().join("new");
        ca.issue(&params, &new).unwrap();
        assert_eq!(key_file_der(&new.join("key.pem")).len(), keys::PKCS8_V1_LEN);
        assert_identity_works(&ca, &new);
    }

    /// Whether `openssl` runs. Without it the caller skips, except when `CI` is set or
    /// `VAULT_REQUIRE_OPENSSL=1`: then this fails (`scripts/bootstrap` installs it).
    fn openssl_available() -> bool {
        let found = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|out| out.status.success());
        let required = std::env::var_os("CI").is_some()
            || std::env::var("VAULT_REQUIRE_OPENSSL").is_ok_and(|v| v == "1");
        assert!(
            found || !required,
            "no working `openssl` on PATH, and CI or VAULT_REQUIRE_OPENSSL=1 requires it; \
             run scripts/bootstrap"
        );
        if !found {
            eprintln!("SKIPPED: no `openssl` on PATH (set VAULT_REQUIRE_OPENSSL=1 to fail)");
        }
        found
    }

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn openssl_reads_the_keys_and_they_match_the_certificates() {
        if !openssl_available() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), "North", NOW).unwrap();
        let out = tmp.path().join("police");
        ca.issue(
            &IssueParams::new(Role::Department, name("police"), NOW),
            &out,
        )
        .unwrap();
        let pairs = [
            (ca.dir().join(CA_KEY_FILE), ca.dir().join(CA_CERT_FILE)),
            (out.join("key.pem"), out.join("cert.pem")),
        ];
        for (key, cert) in &pairs {
            let (key, cert) = (key.to_str().unwrap(), cert.to_str().unwrap());
            openssl(&["pkey", "-in", key, "-noout"]);
            let public_pem = openssl(&["pkey", "-in", key, "-pubout"]);
            assert_eq!(
                public_pem,
                openssl(&["x509", "-in", cert, "-pubkey", "-noout"])
            );
            let spki =
                rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(&public_pem).unwrap();
            let cert_der = files::read_cert_pem(Path::new(cert)).unwrap();
            let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
            let cert_key = x509.public_key().subject_public_key.data.to_vec();
            let expected = [hex::decode("302a300506032b6570032100").unwrap(), cert_key].concat();
            assert_eq!(spki.as_ref(), expected.as_slice(), "{key}");
        }
        // OpenSSL's Ed25519 signature with key.pem is the identity's (Ed25519 is deterministic).
        let message = tmp.path().join("message");
        std::fs::write(&message, b"a statement").unwrap();
        let key = out.join("key.pem");
        let sig = openssl(&[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            key.to_str().unwrap(),
            "-in",
            message.to_str().unwrap(),
        ]);
        let identity = Identity::load(&out).unwrap();
        assert_eq!(sig, identity.sign(b"a statement").as_bytes());
    }

    /// Issues a certificate named `holder` valid from `not_before` to `not_after`.
    fn issue_at(
        ca: &CertificateAuthority,
        tmp: &Path,
        holder: &str,
        not_before: i64,
        not_after: i64,
    ) -> PeerCert {
        let mut params = IssueParams::new(Role::Department, name(holder), not_before);
        params.not_before = not_before;
        params.not_after = not_after;
        let out = tmp.join(format!("{holder}-{not_before}-{not_after}"));
        ca.issue(&params, &out).unwrap()
    }

    /// The serials `crl.pem` lists, in CRL order, and its CRL number.
    fn crl_serials(ca: &CertificateAuthority) -> (Vec<String>, u64) {
        let crls = crate::cert::load_crls(&ca.crl_path()).unwrap();
        assert_eq!(crls.len(), 1);
        let serials = crate::cert::revoked_serials(&crls[0]).unwrap();
        (serials, ca.read_store().unwrap().crl_number)
    }

    #[test]
    fn revoking_a_name_revokes_every_unexpired_certificate_of_it_once() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), "North", NOW).unwrap();
        let year = NOW + CERT_VALIDITY_S;
        let x: Vec<PeerCert> = [NOW, NOW + 10, NOW + 20]
            .iter()
            .map(|&start| issue_at(&ca, tmp.path(), "x", start, year))
            .collect();
        let y = issue_at(&ca, tmp.path(), "y", NOW, year);
        let expired = issue_at(&ca, tmp.path(), "x", NOW - 1_000, NOW - 100);
        let revoked = ca.revoke_name(&name("x"), NOW + 30).unwrap();
        let newest_first: Vec<String> = x.iter().rev().map(|c| c.serial_hex.clone()).collect();
        assert_eq!(revoked, newest_first);
        let (mut listed, crl_number) = crl_serials(&ca);
        listed.sort();
        let mut expected = newest_first.clone();
        expected.sort();
        assert_eq!(
            listed, expected,
            "the CRL lists every unexpired x, not y or the expired x"
        );
        assert!(!listed.contains(&y.serial_hex) && !listed.contains(&expired.serial_hex));
        assert_eq!(crl_number, 2, "one CRL for the whole name");
        let crls = crate::cert::load_crls(&ca.crl_path()).unwrap();
        let check = |cert: &PeerCert| {
            let der = files::read_cert_pem(&ca.issued_path(&cert.serial_hex)).unwrap();
            verify_certificate(&der, &ca.ca_der(), &crls, NOW + 30).map(|_| ())
        };
        for cert in &x {
            assert_eq!(check(cert).unwrap_err().code(), "pki.revoked");
        }
        check(&y).unwrap();

        // Again: the same serials, no duplicate entries, no new CRL.
        assert_eq!(ca.revoke_name(&name("x"), NOW + 40).unwrap(), newest_first);
        assert_eq!(crl_serials(&ca).0.len(), 3);
        assert_eq!(ca.revoked().unwrap().len(), 3);
        assert_eq!(crl_serials(&ca).1, 2);

        // A certificate issued to x later is revoked by the next revocation of x alone.
        let later = issue_at(&ca, tmp.path(), "x", NOW + 50, year);
        let revoked = ca.revoke_name(&name("x"), NOW + 60).unwrap();
        assert_eq!(revoked.len(), 4);
        assert_eq!(revoked[0], later.serial_hex);
        let (listed, crl_number) = crl_serials(&ca);
        assert_eq!((listed.len(), crl_number), (4, 3));
        assert!(listed.contains(&later.serial_hex));
    }

    #[test]
    fn revoking_a_name_without_unexpired_certificates_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), "North", NOW).unwrap();
        issue_at(&ca, tmp.path(), "old", NOW - 1_000, NOW - 100);
        for holder in ["old", "nobody"] {
            let err = ca.revoke_name(&name(holder), NOW).unwrap_err();
            assert_eq!(err.code(), "pki.unknown_name", "{holder}");
        }
        assert!(ca.revoked().unwrap().is_empty());
        assert_eq!(crl_serials(&ca), (Vec::new(), 1));
    }
}
