//! The district CRL: loaded at start (a configured CRL that is missing
//! fails closed), polled every [`CRL_POLL_MS`] and, when it changes,
//! swapped into the TLS server config for new handshakes and into the
//! node's revoked set for requests on open connections; every serial it
//! revokes is logged once through the state machine.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pki::Identity;
use vault_client::transport;
use vault_client::ErrorCode;

use crate::engine::state::Command;
use crate::net::server::Services;
use crate::storage::vault::Vault;
use crate::Refusal;

/// How often the CRL file is checked for changes, in milliseconds.
pub const CRL_POLL_MS: u64 = 1_000;

/// Builds the QUIC server config: the node's identity, client certificates
/// required and checked against `crls`.
pub fn server_config(
    identity: &Identity,
    crls: &[Vec<u8>],
) -> Result<quinn::ServerConfig, Refusal> {
    let tls = pki::server_tls_config(identity, crls)?;
    transport::server_config(tls).map_err(|e| Refusal::new(ErrorCode::BadCertificate, e))
}

/// Loads the CRL (if any) into the vault (the CRLs grants are verified
/// with, and the revoked serials); returns the DER CRLs.
pub fn load_crl_state(path: Option<&Path>, vault: &Vault) -> Result<Vec<Vec<u8>>, Refusal> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let (crls, serials) = read_crls(path)?;
    vault.set_crls(crls.clone(), serials);
    Ok(crls)
}

/// Reads and parses the CRL file: the DER CRLs and the serials they
/// revoke. Changes nothing.
fn read_crls(path: &Path) -> Result<(Vec<Vec<u8>>, HashSet<String>), Refusal> {
    // A configured CRL that is missing or unreadable fails closed: the node
    // refuses to start, and a running node keeps its previous CRL.
    let crls = pki::load_crls(path)?;
    let mut serials = HashSet::new();
    for crl in &crls {
        serials.extend(pki::revoked_serials(crl)?);
    }
    Ok((crls, serials))
}

/// Polls the CRL file and applies each change (see the module doc); a
/// change that cannot be loaded keeps the previous CRL.
pub async fn watch_crl(endpoint: quinn::Endpoint, services: Arc<Services>, path: PathBuf) {
    let stamp = |p: &Path| -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(Duration::from_millis(CRL_POLL_MS)).await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        // Nothing of a CRL is applied unless all of it is: one that parses
        // but that the handshake verifier refuses (a v1 CRL, say) keeps the
        // previous CRL for grants and requests too.
        let loaded = read_crls(&path).and_then(|(crls, serials)| {
            let config = server_config(&services.identity, &crls)?;
            Ok((config, crls, serials))
        });
        match loaded {
            Ok((config, crls, serials)) => {
                services.vault.set_crls(crls, serials);
                endpoint.set_server_config(Some(config));
                services.consent.grant_cache.clear();
                record_revocations(&services);
                tracing::info!(path = %path.display(), "reloaded the CRL");
            }
            Err(e) => {
                tracing::error!(code = %e.code, error = %e.message, "cannot reload the CRL; keeping the previous one")
            }
        }
    }
}

/// Logs the CRL's serials (the state machine keeps only new ones).
pub fn record_revocations(services: &Arc<Services>) {
    let mut serials: Vec<String> = services.vault.revoked_serials().into_iter().collect();
    if serials.is_empty() {
        return;
    }
    serials.sort();
    let services = services.clone();
    tokio::spawn(async move {
        let command = Command::RecordCertificateRevocations { serials };
        if let Err(e) = services.submit(command).await {
            tracing::error!(code = %e.code, error = %e.message, "cannot log certificate revocations");
        }
    });
}
