//! The node on the network: the QUIC endpoint with mutual TLS, the caller's
//! identity from the handshake and request dispatch ([`server`]), download
//! streaming ([`transfer`]), and the CRL watcher ([`crl`]).

pub mod admission;
pub mod crl;
pub mod server;
pub mod transfer;
