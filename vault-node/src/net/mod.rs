//! The node on the network: the QUIC endpoint with mutual TLS, the caller's
//! identity from the handshake, request dispatch, upload and download
//! streaming ([`server`], [`transfer`]), and the CRL watcher ([`crl`]).

pub mod crl;
pub mod server;
pub mod transfer;
