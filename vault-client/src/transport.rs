//! QUIC endpoints tuned for bulk transfer, shared by the client and the node.
//!
//! Windows are sized far above a district network's bandwidth-delay
//! product (1 Gbit/s x 10 ms = 1.25 MB) yet keep a 1 GiB transfer's buffers
//! well under the 128 MiB memory budget.
//!
//! Both sides use the same transport settings so that benchmarks compare like
//! with like: UDP socket buffers of [`SOCKET_BUFFER_BYTES`], large stream and
//! connection windows, GSO (quinn's default where the kernel supports it).
//!
//! [`peer_certificate`] is the one place that reads the certificate a peer
//! presented in the handshake. Part of the `net` feature.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use pki::PeerCert;
use socket2::{Domain, Protocol, Socket, Type};

/// Requested UDP send and receive buffer, in bytes (the kernel may cap it at
/// `net.core.{r,w}mem_max`; the node logs what it got).
pub const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Flow-control window of one stream, in bytes.
pub const STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
/// Flow-control window of a whole connection, in bytes.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 * 1024 * 1024;
/// Bytes a sender may have in flight on one connection.
pub const SEND_WINDOW_BYTES: u64 = 16 * 1024 * 1024;
/// Most concurrent request streams a peer may open on one connection.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 256;
/// A connection idle for this long is closed.
pub const IDLE_TIMEOUT_MS: u32 = 10_000;
/// Keep-alive interval, well inside the idle timeout.
pub const KEEP_ALIVE_MS: u64 = 3_000;

/// The transport configuration both sides use.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW_BYTES))
        .receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW_BYTES))
        .send_window(SEND_WINDOW_BYTES)
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(STREAMS_PER_CONNECTION_MAX))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .max_idle_timeout(Some(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS).into()))
        .keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)))
        .enable_segmentation_offload(true);
    Arc::new(config)
}

/// Binds a UDP socket with large buffers, ready for a quinn endpoint.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at rmem_max/wmem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The socket buffer sizes the kernel actually granted, for logging.
pub fn socket_buffer_sizes(socket: &UdpSocket) -> (usize, usize) {
    let socket = socket2::SockRef::from(socket);
    (
        socket.recv_buffer_size().unwrap_or(0),
        socket.send_buffer_size().unwrap_or(0),
    )
}

/// Builds a quinn endpoint on `socket` (server config optional).
pub fn endpoint(
    socket: UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
}

/// A quinn client config from a rustls config (TLS 1.3, ring provider).
pub fn client_config(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, String> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config());
    Ok(config)
}

/// A quinn server config from a rustls config (TLS 1.3, ring provider).
pub fn server_config(tls: rustls::ServerConfig) -> Result<quinn::ServerConfig, String> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    Ok(config)
}

/// The leaf certificate a peer presented in the TLS handshake: parsed, and
/// as the DER bytes it sent.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The parsed certificate (role, name, key).
    pub cert: PeerCert,
    /// Its DER encoding, exactly as presented.
    pub der: Vec<u8>,
}

/// Why [`peer_certificate`] found no usable certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerCertError {
    /// The peer presented no certificate (the handshake verifier requires
    /// one, so this is a broken handshake or a peer without an identity).
    #[error("the peer presented no certificate")]
    Missing,
    /// The leaf certificate does not parse as a district certificate.
    #[error(transparent)]
    Invalid(#[from] pki::PkiError),
}

/// The certificate the peer of `connection` presented (its leaf, the
/// first of the chain), parsed. The chain itself was verified by the
/// handshake; callers check the role and name they expect.
pub fn peer_certificate(connection: &quinn::Connection) -> Result<PeerCertificate, PeerCertError> {
    let certs = connection
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or(PeerCertError::Missing)?;
    let leaf = certs.first().ok_or(PeerCertError::Missing)?;
    Ok(PeerCertificate {
        cert: pki::parse_certificate(leaf)?,
        der: leaf.to_vec(),
    })
}
