//! The proposer's part of a command: the time and the randomness its log
//! entries need, drawn once where the command is proposed so every node
//! that applies it writes the same bytes.

use crate::engine::state::Seed;

/// A fresh seed at `at`: the time and randomness a proposer adds to a
/// command, drawn once so every node applies the same bytes.
pub fn fresh_seed(at: i64) -> Seed {
    let rng = ring::rand::SystemRandom::new();
    let mut nonce = [0u8; 32];
    let mut salt = [0u8; 32];
    // A failing system RNG leaves zeros: entries stay correct, details
    // merely less hidden; ring's SystemRandom does not fail on Linux.
    let _ = ring::rand::SecureRandom::fill(&rng, &mut nonce);
    let _ = ring::rand::SecureRandom::fill(&rng, &mut salt);
    Seed {
        at,
        nonce,
        salt,
        salt_proofs: Vec::new(),
    }
}
