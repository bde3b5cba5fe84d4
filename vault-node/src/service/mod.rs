//! Request handlers: a typed request from an authenticated [`Caller`] in, a
//! typed reply (or a [`crate::Refusal`]) out. Documents ([`documents`]),
//! consent and grants ([`consent`]), the transparency log
//! ([`transparency`]), node status ([`status`]), membership changes
//! ([`membership`]) and the district's registries ([`registry`]). Each
//! handler is given what it uses.
//!
//! **Invariant:** no handler touches a socket: streams, frames and TLS are
//! the [`crate::net`] layer's.

pub mod consent;
pub mod documents;
pub mod membership;
pub mod orders;
pub mod registry;
pub mod status;
pub mod transparency;

use pki::PeerCert;

/// The authenticated caller of a request: its certificate as parsed, and
/// the certificate's DER (kept with the records it signs).
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the certificate says.
    pub cert: PeerCert,
    /// The certificate itself.
    pub der: Vec<u8>,
}
