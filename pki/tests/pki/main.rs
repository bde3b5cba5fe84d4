//! The `pki` crate's integration tests, one test binary: the CA and what it
//! issues ([`ca`]), the `vault-pki` command line ([`cli`]) and mutual TLS
//! between a node and a department ([`tls`]).
//!
//! Each module makes its own CA in its own temporary directory, so the
//! modules' tests run in parallel threads without sharing state.

mod ca;
mod cli;
mod tls;

/// What a test answers: `?` on any error fails it.
type TestResult = Result<(), Box<dyn std::error::Error>>;
