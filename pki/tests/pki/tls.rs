//! rustls configs build, and a real (in-memory, socket-free) mutual TLS 1.3 handshake works
//! between a node and a department, and fails for a revoked client.

#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::sync::Arc;

use pki::{
    client_tls_config, load_crls, server_tls_config, CertificateAuthority, Identity, IssueParams,
    Name, Role, ALPN,
};
use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::ServerName;
use tempfile::TempDir;

use crate::TestResult;

/// rustls checks validity against the real clock, so these certificates are issued around it.
fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

struct Pki {
    _tmp: TempDir,
    ca: CertificateAuthority,
    node: Identity,
    department: Identity,
}

fn setup() -> Result<Pki, Box<dyn Error>> {
    let tmp = TempDir::new()?;
    let ca = CertificateAuthority::init(&tmp.path().join("ca"), "Test District", now())?;
    let mut node = IssueParams::new(Role::Node, Name::parse("node-1")?, now());
    node.sans = vec!["localhost".into(), "127.0.0.1".into()];
    ca.issue(&node, &tmp.path().join("node-1"))?;
    ca.issue(
        &IssueParams::new(Role::Department, Name::parse("police")?, now()),
        &tmp.path().join("police"),
    )?;
    Ok(Pki {
        node: Identity::load(&tmp.path().join("node-1"))?,
        department: Identity::load(&tmp.path().join("police"))?,
        ca,
        _tmp: tmp,
    })
}

/// Shuttles TLS records between the two ends until both finish the handshake.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), Box<dyn Error>> {
    for _ in 0..16 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf)?;
        }
        if !buf.is_empty() {
            server.read_tls(&mut buf.as_slice())?;
            server.process_new_packets()?;
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf)?;
        }
        if !buf.is_empty() {
            client.read_tls(&mut buf.as_slice())?;
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err("handshake did not finish".into())
}

fn connect(
    pki: &Pki,
    client: &Identity,
    crls: &[Vec<u8>],
) -> Result<(ClientConnection, ServerConnection), Box<dyn Error>> {
    let server_config = Arc::new(server_tls_config(&pki.node, crls)?);
    let client_config = Arc::new(client_tls_config(client)?);
    let mut client = ClientConnection::new(client_config, ServerName::try_from("localhost")?)?;
    let mut server = ServerConnection::new(server_config)?;
    handshake(&mut client, &mut server)?;
    Ok((client, server))
}

#[test]
fn configs_build() -> TestResult {
    let pki = setup()?;
    let crls = load_crls(&pki.ca.crl_path())?;
    let server = server_tls_config(&pki.node, &crls)?;
    assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
    let client = client_tls_config(&pki.department)?;
    assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
    server_tls_config(&pki.node, &[])?;
    Ok(())
}

#[test]
fn mutual_tls_handshake_succeeds() -> TestResult {
    let pki = setup()?;
    let crls = load_crls(&pki.ca.crl_path())?;
    let (client, server) = connect(&pki, &pki.department, &crls)?;
    assert_eq!(server.alpn_protocol(), Some(ALPN));
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let presented = server.peer_certificates().ok_or("no client certificate")?;
    let peer = pki::parse_certificate(&presented[0])?;
    assert_eq!(
        (peer.role, peer.name.as_str()),
        (Role::Department, "police")
    );
    Ok(())
}

#[test]
fn revoked_client_is_refused() -> TestResult {
    let pki = setup()?;
    pki.ca.revoke(&pki.department.cert.serial_hex, now())?;
    let crls = load_crls(&pki.ca.crl_path())?;
    let err = connect(&pki, &pki.department, &crls)
        .err()
        .ok_or("revoked client was accepted")?;
    assert!(err.to_string().to_lowercase().contains("revoked"), "{err}");
    // The node itself is not revoked and still connects to its peers.
    connect(&pki, &pki.node, &crls)?;
    Ok(())
}

#[test]
fn client_from_another_ca_is_refused() -> TestResult {
    let pki = setup()?;
    let tmp = TempDir::new()?;
    let other = CertificateAuthority::init(&tmp.path().join("ca"), "Other District", now())?;
    other.issue(
        &IssueParams::new(Role::Department, Name::parse("police")?, now()),
        &tmp.path().join("police"),
    )?;
    let stranger = Identity::load(&tmp.path().join("police"))?;
    let crls = load_crls(&pki.ca.crl_path())?;
    assert!(connect(&pki, &stranger, &crls).is_err());
    Ok(())
}
