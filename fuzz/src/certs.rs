//! Certificates and CRLs through `pki`: what a peer presents in the
//! handshake, what a grant carries, what a CRL file holds.

use pki::{parse_certificate, revoked_serials, verify_certificate, Name, ED25519_PUBLIC_KEY_LEN};

use crate::fixtures;

/// The input as a DER certificate (parsed, and verified against the
/// fixture CA at the fixtures' time) and as a DER CRL (its serials, and
/// as the CRL the fixture node certificate is checked against): each is
/// accepted or refused without panicking. A parsed certificate has an
/// Ed25519 key, a valid name and a key id that is SHA-256 of its key
/// info; a verified one parses the same.
pub fn certificate(data: &[u8]) {
    if let Ok(cert) = parse_certificate(data) {
        assert_eq!(cert.public_key.len(), ED25519_PUBLIC_KEY_LEN);
        assert!(Name::parse(cert.name.as_str()).is_ok());
        assert_eq!(cert.key_id_hex().len(), 64);
    }
    if let Ok(verified) = verify_certificate(data, fixtures::ca_der(), &[], fixtures::time()) {
        assert_eq!(parse_certificate(data).ok(), Some(verified));
    }
    if let Ok(serials) = revoked_serials(data) {
        assert!(serials.iter().all(|s| s.len() % 2 == 0));
    }
    let crls = [data.to_vec()];
    let _ = verify_certificate(
        fixtures::node_der(),
        fixtures::ca_der(),
        &crls,
        fixtures::time(),
    );
}
