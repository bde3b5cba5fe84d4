//! Bad input against a real node (in-process, real QUIC, real TLS, real
//! RocksDB): wrong certificates, malformed and oversized frames, peers that
//! stop mid-upload, bodies that do not match their hash, corrupt blobs on
//! disk. Each gets a stable error code; nothing is stored; the node keeps
//! serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pki::{ContentHash, IssueParams, IssueRecord, Name, Role};
use tests::{connect, files_under, kind, pseudo_random_bytes, resident, start_node, TestPki};
use vault_client::framing::{read_frame, write_frame};
use vault_client::wire::{Request, Response, RESPONSE_FRAME_LEN_MAX};
use vault_client::{transport, DocumentId, ErrorCode};

async fn raw_connect(
    tls: rustls::ClientConfig,
    addr: SocketAddr,
) -> Result<quinn::Connection, String> {
    let config = transport::client_config(tls)?;
    let socket = transport::bind_udp("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
    let mut endpoint = transport::endpoint(socket, None).map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(config);
    let connection = endpoint
        .connect(addr, "localhost")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    // A refused client certificate shows up on first use in TLS 1.3.
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(
        &mut send,
        &Request::List {
            resident: resident("resident-1"),
            cursor: None,
            limit: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX)
        .await
        .map_err(|e| e.to_string())?;
    Ok(connection)
}

/// Asserts that `identity_dir`'s certificate cannot talk to the node.
async fn assert_refused(pki: &TestPki, dir_name: &str, addr: SocketAddr) {
    let identity = pki::Identity::load(&pki.identity_dir(dir_name)).unwrap();
    let tls = pki::client_tls_config(&identity).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), raw_connect(tls, addr))
        .await
        .unwrap();
    assert!(result.is_err(), "{dir_name} was let in");
}

/// The code the client library reports when `dir_name`'s certificate is
/// refused by the node at `addr` (at connect, or at the first request).
async fn own_certificate_refusal(pki: &TestPki, dir_name: &str, addr: SocketAddr) -> String {
    let err = match connect(pki, dir_name, addr).await {
        Err(e) => e,
        Ok(client) => client.list(&resident("resident-1")).await.unwrap_err(),
    };
    assert!(!err.is_transient(), "{err}");
    err.code().to_string()
}

#[tokio::test]
async fn handshake_refuses_foreign_expired_revoked_and_missing_certificates() {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();

    // A good certificate gets in.
    let good = pki::client_tls_config(&pki.identity("civil-affairs").unwrap()).unwrap();
    raw_connect(good, node.addr).await.unwrap();

    // Another CA's certificate.
    let other = TestPki::new().unwrap();
    let foreign = other.identity_dir("civil-affairs");
    let foreign_tls = pki::client_tls_config(&pki::Identity::load(&foreign).unwrap()).unwrap();
    let result = raw_connect(foreign_tls, node.addr).await;
    assert!(result.is_err(), "foreign CA let in");

    // Expired.
    let mut params = IssueParams::new(Role::Department, Name::parse("expired-dept").unwrap(), 0);
    params.not_before = tests::now() - 7200;
    params.not_after = tests::now() - 3600;
    pki.issue_with("expired-dept", params).unwrap();
    assert_refused(&pki, "expired-dept", node.addr).await;
    // The client tells its own expired certificate apart from a lost connection.
    let code = own_certificate_refusal(&pki, "expired-dept", node.addr).await;
    assert_eq!(code, "tls.bad_certificate");

    // Missing client certificate.
    let identity = pki.identity("civil-affairs").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            identity.ca_der().to_vec(),
        ))
        .unwrap();
    let mut anonymous = rustls::ClientConfig::builder_with_provider(pki::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    anonymous.alpn_protocols = vec![pki::ALPN.to_vec()];
    assert!(
        raw_connect(anonymous, node.addr).await.is_err(),
        "anonymous let in"
    );

    // Revoked: the node reloads the CRL and refuses new handshakes.
    let serial = pki.identity("tax-office").unwrap().cert.serial_hex.clone();
    let tax = pki::client_tls_config(&pki.identity("tax-office").unwrap()).unwrap();
    let before_revocation = raw_connect(tax, node.addr).await.unwrap();
    pki.ca.revoke(&serial, tests::now()).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_refused(&pki, "tax-office", node.addr).await;
    let code = own_certificate_refusal(&pki, "tax-office", node.addr).await;
    assert_eq!(code, "auth.certificate_revoked");
    // ...and refuses requests on a connection opened before the revocation.
    let (mut send, mut recv) = before_revocation.open_bi().await.unwrap();
    write_frame(
        &mut send,
        &Request::List {
            resident: resident("resident-1"),
            cursor: None,
            limit: None,
        },
    )
    .await
    .unwrap();
    send.finish().unwrap();
    match read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX)
        .await
        .unwrap()
    {
        Response::Error(body) => assert_eq!(body.code, ErrorCode::CertificateRevoked.as_str()),
        other => panic!("revoked caller served: {other:?}"),
    }

    // The node still serves everyone else.
    let client = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    client.list(&resident("resident-1")).await.unwrap();
}

/// Writes raw bytes as a request and returns the node's answer.
async fn raw_request(connection: &quinn::Connection, bytes: &[u8]) -> Response {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX)
        .await
        .unwrap()
}

fn error_code(response: Response) -> String {
    match response {
        Response::Error(body) => body.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_and_oversized_frames_get_codes_and_the_connection_keeps_serving() {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();
    let tls = pki::client_tls_config(&pki.identity("civil-affairs").unwrap()).unwrap();
    let connection = raw_connect(tls, node.addr).await.unwrap();

    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"not json!");
    assert_eq!(
        error_code(raw_request(&connection, &garbage).await),
        "frame.malformed"
    );

    let unknown =
        vault_client::wire::encode_frame(&serde_json::json!({"type": "drop_tables"})).unwrap();
    assert_eq!(
        error_code(raw_request(&connection, &unknown).await),
        "frame.malformed"
    );

    let oversized = (16u32 << 20).to_be_bytes();
    assert_eq!(
        error_code(raw_request(&connection, &oversized).await),
        "frame.too_large"
    );

    let unknown_doc = vault_client::wire::encode_frame(&Request::Get {
        document_id: DocumentId::from_bytes([0xab; 16]),
        range: None,
        grant: None,
    })
    .unwrap();
    assert_eq!(
        error_code(raw_request(&connection, &unknown_doc).await),
        "document.not_found"
    );

    // Same connection, valid request: still served.
    let list = vault_client::wire::encode_frame(&Request::List {
        resident: resident("resident-1"),
        cursor: None,
        limit: None,
    })
    .unwrap();
    assert!(matches!(
        raw_request(&connection, &list).await,
        Response::Documents { .. }
    ));
}

/// Sends a signed Put for `data` (announcing `announced`) and returns the
/// streams after the node's SendBody answer.
async fn start_put(
    pki: &TestPki,
    connection: &quinn::Connection,
    announced: &[u8],
) -> (quinn::SendStream, quinn::RecvStream) {
    let identity = pki.identity("civil-affairs").unwrap();
    let record = IssueRecord {
        resident: resident("resident-1"),
        kind: kind("tax-return"),
        content_hash: ContentHash(*blake3::hash(announced).as_bytes()),
        size: announced.len() as u64,
        issued_at: tests::now(),
        issuer: identity.cert.name.clone(),
    };
    let signature = record.sign(&identity);
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    write_frame(&mut send, &Request::Put { record, signature })
        .await
        .unwrap();
    match read_frame::<Response>(&mut recv, RESPONSE_FRAME_LEN_MAX)
        .await
        .unwrap()
    {
        Response::SendBody { send: true } => {}
        other => panic!("unexpected {other:?}"),
    }
    (send, recv)
}

fn assert_nothing_stored(pki: &TestPki) {
    let data = pki.data_dir("node-1");
    assert!(
        files_under(&data.join("blobs")).is_empty(),
        "a blob was stored"
    );
    assert!(
        files_under(&data.join("tmp")).is_empty(),
        "a temporary file was left"
    );
}

#[tokio::test]
async fn interrupted_mismatched_and_oversized_uploads_store_nothing() {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();
    let tls = pki::client_tls_config(&pki.identity("civil-affairs").unwrap()).unwrap();
    let connection = raw_connect(tls.clone(), node.addr).await.unwrap();
    let data = pseudo_random_bytes(3 * 1024 * 1024, 11);

    // A peer that stops mid-upload (resets its stream).
    let (mut send, _recv) = start_put(&pki, &connection, &data).await;
    send.write_all(&data[..1024 * 1024]).await.unwrap();
    send.reset(7u32.into()).unwrap();
    // A peer whose connection dies mid-upload.
    let dying = raw_connect(tls, node.addr).await.unwrap();
    let (mut send, _recv) = start_put(&pki, &dying, &data).await;
    send.write_all(&data[..2 * 1024 * 1024]).await.unwrap();
    dying.close(0u32.into(), b"bye");
    // The node notices both within moments (on a loaded machine, a few
    // seconds): wait for its clean-up rather than a fixed pause.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !files_under(&pki.data_dir("node-1").join("tmp")).is_empty()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_nothing_stored(&pki);

    // A body shorter than announced.
    let (mut send, mut recv) = start_put(&pki, &connection, &data).await;
    send.write_all(&data[..1000]).await.unwrap();
    send.finish().unwrap();
    assert_eq!(
        error_code(read_frame(&mut recv, RESPONSE_FRAME_LEN_MAX).await.unwrap()),
        "upload.truncated"
    );

    // A body that does not match its hash.
    let (mut send, mut recv) = start_put(&pki, &connection, &data).await;
    let mut forged = data.clone();
    forged[12345] ^= 1;
    send.write_all(&forged).await.unwrap();
    send.finish().unwrap();
    assert_eq!(
        error_code(read_frame(&mut recv, RESPONSE_FRAME_LEN_MAX).await.unwrap()),
        "upload.hash_mismatch"
    );

    // A body longer than announced.
    let (mut send, mut recv) = start_put(&pki, &connection, &data).await;
    send.write_all(&data).await.unwrap();
    send.write_all(b"extra").await.unwrap();
    send.finish().unwrap();
    assert_eq!(
        error_code(read_frame(&mut recv, RESPONSE_FRAME_LEN_MAX).await.unwrap()),
        "upload.oversized"
    );

    assert_nothing_stored(&pki);
    let client = connect(&pki, "resident-1", node.addr).await.unwrap();
    assert!(client
        .list(&resident("resident-1"))
        .await
        .unwrap()
        .is_empty());

    // The node still takes a good upload.
    let dept = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    dept.put_bytes(Arc::new(data), &resident("resident-1"), &kind("tax-return"))
        .await
        .unwrap();
}

#[tokio::test]
async fn forged_records_are_refused() {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();
    let tls = pki::client_tls_config(&pki.identity("civil-affairs").unwrap()).unwrap();
    let connection = raw_connect(tls, node.addr).await.unwrap();
    let civil = pki.identity("civil-affairs").unwrap();
    let tax = pki.identity("tax-office").unwrap();
    let base = IssueRecord {
        resident: resident("resident-1"),
        kind: kind("id-card"),
        content_hash: ContentHash(*blake3::hash(b"x").as_bytes()),
        size: 1,
        issued_at: tests::now(),
        issuer: civil.cert.name.clone(),
    };
    let cases = [
        // Signed by another department's key.
        (base.clone(), base.sign(&tax), "record.bad_signature"),
        // Naming another department as issuer.
        (
            IssueRecord {
                issuer: tax.cert.name.clone(),
                ..base.clone()
            },
            IssueRecord {
                issuer: tax.cert.name.clone(),
                ..base.clone()
            }
            .sign(&civil),
            "record.issuer_mismatch",
        ),
        // Backdated by a day.
        (
            IssueRecord {
                issued_at: base.issued_at - 86_400,
                ..base.clone()
            },
            IssueRecord {
                issued_at: base.issued_at - 86_400,
                ..base.clone()
            }
            .sign(&civil),
            "record.clock_skew",
        ),
    ];
    // Dated at the ends of time: refused, not overflowing (part 2, finding 4:
    // i64::MIN panicked the handler in a debug build and wrapped past the
    // skew check in a release build).
    let extremes = [i64::MIN, i64::MAX].map(|issued_at| {
        let record = IssueRecord {
            issued_at,
            ..base.clone()
        };
        let signature = record.sign(&civil);
        (record, signature, "record.clock_skew")
    });
    for (record, signature, code) in cases.into_iter().chain(extremes) {
        let frame = vault_client::wire::encode_frame(&Request::Put { record, signature }).unwrap();
        assert_eq!(error_code(raw_request(&connection, &frame).await), code);
    }
    // A resident may not put documents at all.
    let res = connect(&pki, "resident-1", node.addr).await.unwrap();
    let err = res
        .put_bytes(
            Arc::new(b"x".to_vec()),
            &resident("resident-1"),
            &kind("id-card"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "auth.forbidden");
    assert_nothing_stored(&pki);
}

#[tokio::test]
async fn a_corrupt_blob_on_disk_is_never_served() {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();
    let dept = connect(&pki, "civil-affairs", node.addr).await.unwrap();
    let data = pseudo_random_bytes(200_000, 5);
    let put = dept
        .put_bytes(
            Arc::new(data.clone()),
            &resident("resident-1"),
            &kind("deed"),
        )
        .await
        .unwrap();
    let blob = node.vault().blobs().path(&put.content_hash);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("deed.pdf");
    let err = dept
        .get_to_file(put.document_id, &target, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "integrity.corrupt", "{err}");
    assert!(files_under(out.path()).is_empty(), "output left behind");
    // The connection and node still serve other documents.
    let other = dept
        .put_bytes(
            Arc::new(b"fine".to_vec()),
            &resident("resident-1"),
            &kind("note"),
        )
        .await
        .unwrap();
    let (_, bytes) = dept.get_bytes(other.document_id, None, None).await.unwrap();
    assert_eq!(bytes, b"fine");
}

/// A second node on a data directory in use is told so in words, not with
/// RocksDB's lock error; a start that fails leaves no data directory it
/// created (part 6, finding 4).
#[tokio::test]
async fn a_data_directory_in_use_is_refused_and_a_failed_start_leaves_nothing() {
    let pki = TestPki::new().unwrap();
    let node = start_node(&pki).await.unwrap();
    let config = |data_dir: std::path::PathBuf, listen: &str| vault_node::node::NodeConfig {
        witnesses: Vec::new(),
        log_key_path: None,
        listen: listen.parse().unwrap(),
        data_dir,
        identity_dir: pki.identity_dir("node-1"),
        crl_path: Some(pki.crl_path()),
        purposes_path: Some(pki.purposes_path().unwrap()),
        issuers_path: Some(pki.issuers_path().unwrap()),
        cluster: None,
        limits: Default::default(),
        metrics: None,
    };
    let second = vault_node::node::start(config(pki.data_dir("node-1"), "127.0.0.1:0")).await;
    let refusal = second.err().unwrap();
    assert!(
        refusal.message.contains("in use by another process"),
        "{refusal}"
    );
    assert!(pki.data_dir("node-1").join("master.key").exists());
    // A fresh directory whose start fails (the port is taken) is removed.
    let fresh = pki.data_dir("node-fresh");
    let taken = node.addr.to_string();
    let failed = vault_node::node::start(config(fresh.clone(), &taken)).await;
    assert!(failed.is_err());
    assert!(!fresh.exists(), "{} was left behind", fresh.display());
}
