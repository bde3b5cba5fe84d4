//! CA, certificates, revocation, identities and signed statements, with real files in tempdirs.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use pki::{
    load_crls, parse_certificate, verify_certificate, CertificateAuthority, ContentHash,
    DocumentKind, Identity, IssueParams, IssueRecord, Name, PeerCert, PkiError, ResidentId, Role,
};
use proptest::prelude::*;
use tempfile::TempDir;

use crate::TestResult;

/// A fixed "now" (2025-01-01T00:00:00Z) so tests do not depend on the clock.
const NOW: i64 = 1_735_689_600;
const DAY_S: i64 = 86_400;

fn new_ca(tmp: &TempDir) -> Result<CertificateAuthority, PkiError> {
    CertificateAuthority::init(&tmp.path().join("ca"), "Test District", NOW)
}

fn issue(
    ca: &CertificateAuthority,
    tmp: &TempDir,
    role: Role,
    name: &str,
) -> Result<(PeerCert, std::path::PathBuf), PkiError> {
    let out = tmp.path().join(name);
    let cert = ca.issue(&IssueParams::new(role, Name::parse(name)?, NOW), &out)?;
    Ok((cert, out))
}

fn cert_der(dir: &Path) -> Vec<u8> {
    let pem = std::fs::read(dir.join("cert.pem")).unwrap();
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(&pem)
        .unwrap()
        .to_vec()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_and_issue_every_role() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    assert_eq!(mode(&ca.dir().join("ca.key.pem")), 0o600);
    for role in Role::ALL {
        let name = format!("{}-1", role.as_str());
        let (issued, out) = issue(&ca, &tmp, role, &name)?;
        assert_eq!(mode(&out.join("key.pem")), 0o600, "{role} key.pem");
        let parsed = parse_certificate(&cert_der(&out))?;
        assert_eq!(parsed, issued);
        assert_eq!(parsed.role, role);
        assert_eq!(parsed.name.as_str(), name);
        assert_eq!(parsed.issuer_cn, "Test District Root CA");
        assert_eq!(parsed.serial_hex.len(), 32, "16-byte serial");
        assert!(
            u8::from_str_radix(&parsed.serial_hex[..2], 16)? < 0x80,
            "positive serial"
        );
        assert!(ca
            .dir()
            .join("issued")
            .join(format!("{}.pem", parsed.serial_hex))
            .is_file());
        // key_id is SHA-256 over the Ed25519 SubjectPublicKeyInfo (fixed 12-byte prefix + key).
        let mut spki = hex::decode("302a300506032b6570032100")?;
        spki.extend_from_slice(&parsed.public_key);
        assert_eq!(
            parsed.key_id.as_slice(),
            ring::digest::digest(&ring::digest::SHA256, &spki).as_ref()
        );
        let validity = parsed.not_after - parsed.not_before;
        let expected = if role == Role::Resident {
            5 * 365 * DAY_S
        } else {
            365 * DAY_S
        };
        assert_eq!(validity, expected + 60);
        let identity = Identity::load(&out)?;
        assert_eq!(identity.cert, parsed);
        assert_eq!(identity.ca_der(), ca.ca_der().as_slice());
    }
    Ok(())
}

#[test]
fn init_refuses_existing_ca_and_issue_refuses_existing_key() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let again = CertificateAuthority::init(ca.dir(), "Test District", NOW);
    assert_eq!(again.err().map(|e| e.code()), Some("pki.exists"));
    let (_, out) = issue(&ca, &tmp, Role::Department, "civil-affairs")?;
    let before = std::fs::read(out.join("key.pem"))?;
    let params = IssueParams::new(Role::Department, Name::parse("civil-affairs")?, NOW);
    assert_eq!(
        ca.issue(&params, &out).err().map(|e| e.code()),
        Some("pki.exists")
    );
    assert_eq!(
        std::fs::read(out.join("key.pem"))?,
        before,
        "key.pem untouched"
    );
    Ok(())
}

#[test]
fn open_reads_back_the_same_ca() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let reopened = CertificateAuthority::open(ca.dir())?;
    assert_eq!(reopened.ca_der(), ca.ca_der());
    assert_eq!(reopened.ca_pem(), ca.ca_pem());
    assert_eq!(reopened.district(), "Test District");
    let (cert, out) = issue(&reopened, &tmp, Role::Auditor, "auditor-1")?;
    assert_eq!(
        verify_certificate(&cert_der(&out), &ca.ca_der(), &[], NOW)?,
        cert
    );
    Ok(())
}

#[test]
fn openssl_accepts_the_certificates() -> TestResult {
    let openssl = Path::new("/usr/bin/openssl");
    if !openssl.exists() {
        println!("skipping: /usr/bin/openssl is missing");
        return Ok(());
    }
    let tmp = TempDir::new()?;
    // openssl checks validity against the real clock, so issue around the real time.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    let ca = CertificateAuthority::init(&tmp.path().join("ca"), "Test District", now)?;
    let mut params = IssueParams::new(Role::Node, Name::parse("node-1")?, now);
    params.sans = vec!["127.0.0.1".into(), "node-1.vault.test".into()];
    let out = tmp.path().join("node-1");
    ca.issue(&params, &out)?;
    let ca_pem = ca.dir().join("ca.pem");
    let verify = Command::new(openssl)
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca_pem)
        .arg(out.join("cert.pem"))
        .output()?;
    assert!(
        verify.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let text = Command::new(openssl)
        .args(["x509", "-text", "-noout", "-in"])
        .arg(out.join("cert.pem"))
        .output()?;
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout)?;
    for expected in [
        "OU = node",
        "CN = node-1",
        "IP Address:127.0.0.1",
        "DNS:node-1.vault.test",
        "TLS Web Server Authentication",
        "ED25519",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let crl = Command::new(openssl)
        .args(["crl", "-noout", "-CAfile"])
        .arg(&ca_pem)
        .arg("-in")
        .arg(ca.crl_path())
        .output()?;
    assert!(
        crl.status.success(),
        "openssl crl: {}",
        String::from_utf8_lossy(&crl.stderr)
    );
    Ok(())
}

#[test]
fn verify_accepts_a_good_certificate() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (cert, out) = issue(&ca, &tmp, Role::Department, "police")?;
    let crls = load_crls(&ca.crl_path())?;
    assert_eq!(crls.len(), 1);
    assert_eq!(
        verify_certificate(&cert_der(&out), &ca.ca_der(), &crls, NOW)?,
        cert
    );
    Ok(())
}

#[test]
fn verify_refuses_an_expired_certificate() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let mut params = IssueParams::new(Role::Department, Name::parse("tax")?, NOW);
    params.not_before = NOW - 10 * DAY_S;
    params.not_after = NOW - DAY_S;
    let out = tmp.path().join("tax");
    ca.issue(&params, &out)?;
    let err = verify_certificate(&cert_der(&out), &ca.ca_der(), &[], NOW).unwrap_err();
    assert_eq!(err.code(), "pki.expired");
    let early =
        verify_certificate(&cert_der(&out), &ca.ca_der(), &[], NOW - 20 * DAY_S).unwrap_err();
    assert_eq!(early.code(), "pki.not_yet_valid");
    Ok(())
}

#[test]
fn verify_refuses_a_certificate_from_another_ca() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let other = CertificateAuthority::init(&tmp.path().join("other-ca"), "Other District", NOW)?;
    let (_, out) = issue(&other, &tmp, Role::Node, "node-9")?;
    let crls = load_crls(&ca.crl_path())?;
    let err = verify_certificate(&cert_der(&out), &ca.ca_der(), &crls, NOW).unwrap_err();
    assert_eq!(err.code(), "pki.untrusted");
    let err = verify_certificate(&cert_der(&out), &ca.ca_der(), &[], NOW).unwrap_err();
    assert_eq!(err.code(), "pki.untrusted");
    Ok(())
}

#[test]
fn verify_refuses_a_revoked_certificate() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (cert, out) = issue(&ca, &tmp, Role::Department, "civil-affairs")?;
    let (other, other_out) = issue(&ca, &tmp, Role::Department, "police")?;
    ca.revoke(&cert.serial_hex.to_uppercase(), NOW + 10)?;
    let crls = load_crls(&ca.crl_path())?;
    let err = verify_certificate(&cert_der(&out), &ca.ca_der(), &crls, NOW + 20).unwrap_err();
    assert_eq!(err.code(), "pki.revoked");
    assert_eq!(
        verify_certificate(&cert_der(&other_out), &ca.ca_der(), &crls, NOW + 20)?,
        other
    );
    assert_eq!(ca.revoked()?.len(), 1);
    // Idempotent: the CRL is not rewritten.
    let crl_before = std::fs::read(ca.crl_path())?;
    ca.revoke(&cert.serial_hex, NOW + 30)?;
    assert_eq!(std::fs::read(ca.crl_path())?, crl_before);
    assert_eq!(ca.revoked()?.len(), 1);
    Ok(())
}

#[test]
fn crl_numbers_increase() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let crl_number = |ca: &CertificateAuthority| -> Result<String, Box<dyn std::error::Error>> {
        let der = load_crls(&ca.crl_path())?.remove(0);
        let (_, crl) = x509_parser::parse_x509_crl(&der)?;
        Ok(crl
            .crl_number()
            .map(ToString::to_string)
            .unwrap_or_default())
    };
    assert_eq!(crl_number(&ca)?, "1");
    let (a, _) = issue(&ca, &tmp, Role::Resident, "resident-1")?;
    let (b, _) = issue(&ca, &tmp, Role::Resident, "resident-2")?;
    ca.revoke(&a.serial_hex, NOW)?;
    assert_eq!(crl_number(&ca)?, "2");
    ca.revoke(&b.serial_hex, NOW)?;
    assert_eq!(crl_number(&ca)?, "3");
    Ok(())
}

#[test]
fn revoke_refuses_unknown_serials() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    for serial in ["00ff", "not-hex", "", "../ca"] {
        assert_eq!(
            ca.revoke(serial, NOW).unwrap_err().code(),
            "pki.unknown_serial",
            "{serial:?}"
        );
    }
    Ok(())
}

#[test]
fn find_issued_returns_newest_first() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let name = Name::parse("node-1")?;
    let old = ca.issue(
        &IssueParams::new(Role::Node, name.clone(), NOW),
        &tmp.path().join("a"),
    )?;
    let new = ca.issue(
        &IssueParams::new(Role::Node, name.clone(), NOW + DAY_S),
        &tmp.path().join("b"),
    )?;
    issue(&ca, &tmp, Role::Node, "node-2")?;
    let found = ca.find_issued(&name)?;
    assert_eq!(found, vec![new, old]);
    assert!(ca.find_issued(&Name::parse("nobody")?)?.is_empty());
    Ok(())
}

#[test]
fn identity_refuses_a_world_readable_key() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (_, out) = issue(&ca, &tmp, Role::Resident, "resident-1")?;
    let key = out.join("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let err = Identity::load(&out).unwrap_err();
    assert_eq!(err.code(), "pki.key_permissions");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    Identity::load(&out)?;
    Ok(())
}

#[test]
fn identity_refuses_a_key_of_another_certificate() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (_, a) = issue(&ca, &tmp, Role::Node, "node-1")?;
    let (_, b) = issue(&ca, &tmp, Role::Node, "node-2")?;
    std::fs::copy(b.join("cert.pem"), a.join("cert.pem"))?;
    assert_eq!(Identity::load(&a).unwrap_err().code(), "pki.bad_key");
    Ok(())
}

fn record(issuer: &str) -> Result<IssueRecord, PkiError> {
    Ok(IssueRecord {
        resident: ResidentId::parse("resident-1")?,
        kind: DocumentKind::parse("marriage-certificate")?,
        content_hash: ContentHash([0x42; 32]),
        size: 4096,
        issued_at: NOW,
        issuer: Name::parse(issuer)?,
    })
}

#[test]
fn issue_records_sign_and_verify() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (_, out) = issue(&ca, &tmp, Role::Department, "civil-affairs")?;
    let identity = Identity::load(&out)?;
    let rec = record("civil-affairs")?;
    let sig = rec.sign(&identity);
    rec.verify(&sig, &identity.cert)?;
    pki::verify_signature(&identity.cert.public_key, &rec.canonical_bytes(), &sig)?;

    let sig_json = serde_json::to_string(&sig)?;
    assert_eq!(sig_json, format!("\"{}\"", hex::encode(sig.0)));
    assert_eq!(serde_json::from_str::<pki::Signature>(&sig_json)?, sig);
    let rec_json = serde_json::to_string(&rec)?;
    assert_eq!(serde_json::from_str::<IssueRecord>(&rec_json)?, rec);

    let altered = [
        IssueRecord {
            size: 4097,
            ..rec.clone()
        },
        IssueRecord {
            issued_at: NOW + 1,
            ..rec.clone()
        },
        IssueRecord {
            content_hash: ContentHash([0x43; 32]),
            ..rec.clone()
        },
        IssueRecord {
            resident: ResidentId::parse("resident-2")?,
            ..rec.clone()
        },
        IssueRecord {
            kind: DocumentKind::parse("birth-certificate")?,
            ..rec.clone()
        },
    ];
    for bad in altered {
        assert_eq!(
            bad.verify(&sig, &identity.cert).unwrap_err().code(),
            "pki.bad_signature",
            "{bad:?}"
        );
    }
    let mut flipped = sig;
    flipped.0[0] ^= 1;
    assert_eq!(
        rec.verify(&flipped, &identity.cert).unwrap_err().code(),
        "pki.bad_signature"
    );
    Ok(())
}

#[test]
fn issue_records_need_the_named_department() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (_, police) = issue(&ca, &tmp, Role::Department, "police")?;
    let (_, imposter) = issue(&ca, &tmp, Role::Resident, "civil-affairs")?;
    let rec = record("civil-affairs")?;

    let police = Identity::load(&police)?;
    let sig = rec.sign(&police);
    assert_eq!(
        rec.verify(&sig, &police.cert).unwrap_err().code(),
        "pki.issuer_mismatch"
    );

    let imposter = Identity::load(&imposter)?;
    let sig = rec.sign(&imposter);
    assert_eq!(
        rec.verify(&sig, &imposter.cert).unwrap_err().code(),
        "pki.issuer_mismatch"
    );
    Ok(())
}

proptest! {
    #[test]
    fn parse_certificate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_certificate(&bytes);
    }
}

#[test]
fn parse_certificate_survives_mutations_of_a_real_certificate() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let (_, out) = issue(&ca, &tmp, Role::Node, "node-1")?;
    let der = cert_der(&out);
    proptest!(|(index in 0..der.len(), byte in any::<u8>(), cut in 0..der.len())| {
        let mut mutated = der.clone();
        mutated[index] = byte;
        let _ = parse_certificate(&mutated);
        let _ = verify_certificate(&mutated, &ca.ca_der(), &[], NOW);
        let _ = parse_certificate(&der[..cut]);
    });
    Ok(())
}

#[test]
fn a_node_certificate_names_its_cluster_and_only_nodes_do() -> TestResult {
    let tmp = TempDir::new()?;
    let ca = new_ca(&tmp)?;
    let mut params = IssueParams::new(Role::Node, Name::parse("node-4")?, NOW);
    params.sans = vec!["127.0.0.1".into()];
    params.cluster = Some(Name::parse("district-a")?);
    let issued = ca.issue(&params, &tmp.path().join("node-4"))?;
    assert_eq!(issued.cluster.as_deref(), Some("district-a"));
    // Read back from the file, as a peer sees it in the handshake.
    let parsed = parse_certificate(&cert_der(&tmp.path().join("node-4")))?;
    assert_eq!(parsed.cluster.as_deref(), Some("district-a"));
    // Without --cluster, none.
    let (plain, _) = issue(&ca, &tmp, Role::Node, "node-5")?;
    assert_eq!(plain.cluster, None);
    // Only node certificates name a cluster.
    let mut params = IssueParams::new(Role::Department, Name::parse("police")?, NOW);
    params.cluster = Some(Name::parse("district-a")?);
    let err = ca.issue(&params, &tmp.path().join("police")).unwrap_err();
    assert!(err.to_string().contains("only node certificates"), "{err}");
    assert!(!tmp.path().join("police").exists());
    Ok(())
}

/// A self-signed Ed25519 node certificate whose subjectAltName URIs are
/// `uris`, as DER (what a peer could present).
fn node_cert_with_uris(uris: &[&str]) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationalUnitName, "node");
    dn.push(rcgen::DnType::CommonName, "node-2");
    params.distinguished_name = dn;
    for uri in uris {
        let uri = rcgen::string::Ia5String::try_from(uri.to_string()).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(uri));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn cluster_uris_are_read_strictly() {
    let cluster = |uris: &[&str]| parse_certificate(&node_cert_with_uris(uris)).map(|c| c.cluster);
    assert_eq!(cluster(&[]).unwrap(), None);
    assert_eq!(cluster(&["https://example.org/x"]).unwrap(), None);
    assert_eq!(
        cluster(&["urn:vault:cluster:district-a"])
            .unwrap()
            .as_deref(),
        Some("district-a")
    );
    // Another case does not switch the check off.
    assert_eq!(
        cluster(&["URN:Vault:Cluster:district-a"])
            .unwrap()
            .as_deref(),
        Some("district-a")
    );
    // No name, a name breaking the name rules, or two clusters: refused.
    assert!(cluster(&["urn:vault:cluster:"]).is_err());
    assert!(cluster(&["urn:vault:cluster:a b"]).is_err());
    assert!(cluster(&["urn:vault:cluster:a", "urn:vault:cluster:b"]).is_err());
}
