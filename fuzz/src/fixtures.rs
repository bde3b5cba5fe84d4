//! The fixture district the targets check signatures against: public
//! parts only (CA and node certificates, the log key's `log.pub` line, a
//! witness policy, a note it cosigned, the time they were made), written
//! by [`crate::seeds::write`] into `fuzz/fixtures/` together with the
//! corpora that use them, and compiled in.

use std::sync::OnceLock;

use pki::{parse_verifiers, LogVerifier, WitnessPolicy};

/// The fixture CA's certificate (DER).
const CA_DER: &[u8] = include_bytes!("../fixtures/ca.der");
/// A node certificate the fixture CA issued (DER).
const NODE_DER: &[u8] = include_bytes!("../fixtures/node.der");
/// The fixture district's `log.pub`.
const LOG_PUB: &str = include_str!("../fixtures/log.pub");
/// A witness policy naming the fixture witness and log.
const WITNESS_POLICY: &str = include_str!("../fixtures/witness-policy");
/// A checkpoint note the fixture log key signed and the witness cosigned.
const COSIGNED_NOTE: &str = include_str!("../fixtures/cosigned-note");
/// When the fixtures were made (unix seconds).
const TIME: &str = include_str!("../fixtures/time");

/// File names under `fuzz/fixtures/`, as [`crate::seeds::write`] writes them.
pub const FILES: &[&str] = &[
    "ca.der",
    "node.der",
    "log.pub",
    "witness-policy",
    "cosigned-note",
    "time",
];

/// The fixture CA's certificate.
pub fn ca_der() -> &'static [u8] {
    CA_DER
}

/// The fixture node certificate.
pub fn node_der() -> &'static [u8] {
    NODE_DER
}

/// The fixture district's log keys (empty if the file does not parse).
pub fn log_keys() -> &'static [LogVerifier] {
    static KEYS: OnceLock<Vec<LogVerifier>> = OnceLock::new();
    KEYS.get_or_init(|| parse_verifiers(LOG_PUB).unwrap_or_default())
}

/// The fixture witness policy (an empty one if the file does not parse).
pub fn witness_policy() -> &'static WitnessPolicy {
    static POLICY: OnceLock<WitnessPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        WitnessPolicy::parse(WITNESS_POLICY)
            .or_else(|_| WitnessPolicy::parse("quorum none\n"))
            .expect("the empty policy parses")
    })
}

/// The fixture's cosigned checkpoint note.
pub fn cosigned_note() -> &'static str {
    COSIGNED_NOTE
}

/// When the fixtures were made: certificates are valid then.
pub fn time() -> i64 {
    TIME.trim().parse().unwrap_or(0)
}
