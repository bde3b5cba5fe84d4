//! Grant state checks the state machine repeats when it counts a use:
//! revocation, the time window and the use count, against the counter the
//! state holds. Deterministic: the time comes from the command.

use pki::GrantId;
use vault_client::ErrorCode;

use crate::engine::state::GrantCounter;
use crate::Refusal;

/// How far ahead of the node's clock a grant's `not_before` may be (the
/// resident's clock may run fast). `not_after` gets no allowance: fail closed.
pub const GRANT_SKEW_S: i64 = 30;

/// State checks that the state machine repeats when it counts a use
/// (deterministic: `at` comes from the command).
pub fn check_state(id: GrantId, counter: &GrantCounter, at: i64) -> Result<(), Refusal> {
    let body = counter;
    if let Some(revoked) = &counter.revoked {
        return Err(Refusal::new(
            ErrorCode::GrantRevoked,
            format!(
                "grant {id} was revoked by {} {} at {}",
                revoked.role.as_str(),
                revoked.by,
                revoked.at
            ),
        ));
    }
    if at + GRANT_SKEW_S < body.not_before {
        return Err(Refusal::new(
            ErrorCode::GrantNotYetValid,
            format!(
                "grant {id} is valid from {}; it is now {at}",
                body.not_before
            ),
        ));
    }
    if at > body.not_after {
        return Err(Refusal::new(
            ErrorCode::GrantExpired,
            format!(
                "grant {id} expired at {}; ask the resident for a new one",
                body.not_after
            ),
        ));
    }
    if counter.uses >= body.max_uses {
        return Err(Refusal::new(
            ErrorCode::GrantExhausted,
            format!(
                "grant {id} allowed {} uses and all are spent",
                body.max_uses
            ),
        ));
    }
    Ok(())
}
