//! rustls configurations for mutual TLS (building configs is not I/O; no sockets here).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

use crate::error::PkiError;
use crate::identity::Identity;

/// ALPN protocol id of the vault protocol, version 1.
pub const ALPN: &[u8] = b"vault/1";

/// rustls's ring provider (never aws-lc-rs).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server config: own chain `[leaf]` + key, client certificates REQUIRED and verified by
/// webpki against the identity's CA with the given DER CRLs, TLS 1.3 only, ALPN `vault/1`.
pub fn server_tls_config(identity: &Identity, crls: &[Vec<u8>]) -> Result<ServerConfig, PkiError> {
    let provider = crypto_provider();
    let roots = Arc::new(roots(identity)?);
    let crls = crls
        .iter()
        .map(|der| CertificateRevocationListDer::from(der.clone()))
        .collect::<Vec<_>>();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .build()
        .map_err(tls_error)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(identity), key(identity))
        .map_err(tls_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Client config: roots = the identity's CA, client auth with the identity's cert and key,
/// TLS 1.3 only, ALPN `vault/1`.
pub fn client_tls_config(identity: &Identity) -> Result<ClientConfig, PkiError> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_root_certificates(roots(identity)?)
        .with_client_auth_cert(chain(identity), key(identity))
        .map_err(tls_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

fn roots(identity: &Identity) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(identity.ca_der().to_vec()))
        .map_err(tls_error)?;
    Ok(roots)
}

fn chain(identity: &Identity) -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(identity.cert_der().to_vec())]
}

fn key(identity: &Identity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8_der().to_vec()))
}

fn tls_error(err: impl std::fmt::Display) -> PkiError {
    PkiError::Tls {
        reason: err.to_string(),
    }
}
