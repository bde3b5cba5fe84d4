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
    if at.saturating_add(GRANT_SKEW_S) < body.not_before {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use pki::{Name, Purpose, ResidentId, Role};

    use super::*;
    use crate::engine::state::GrantRevocation;

    const FROM: i64 = 1_000;
    const UNTIL: i64 = 2_000;

    fn counter(uses: u32, max_uses: u32) -> GrantCounter {
        GrantCounter {
            uses,
            max_uses,
            not_before: FROM,
            not_after: UNTIL,
            revoked: None,
            resident: ResidentId::parse("resident-1").unwrap(),
            grantee: Name::parse("tax-office").unwrap(),
            purpose: Purpose::parse("housing-subsidy").unwrap(),
        }
    }

    fn id() -> GrantId {
        GrantId::derive(&[b"grant"])
    }

    fn code(result: Result<(), Refusal>) -> ErrorCode {
        result.unwrap_err().code
    }

    #[test]
    fn a_grant_within_its_window_and_uses_passes() {
        assert_eq!(check_state(id(), &counter(0, 1), FROM), Ok(()));
        assert_eq!(check_state(id(), &counter(2, 3), UNTIL), Ok(()));
    }

    #[test]
    fn a_revoked_grant_is_refused_even_when_otherwise_valid() {
        let mut c = counter(0, 3);
        c.revoked = Some(GrantRevocation {
            by: Name::parse("resident-1").unwrap(),
            role: Role::Resident,
            at: FROM + 1,
        });
        let refusal = check_state(id(), &c, FROM + 2).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::GrantRevoked);
        assert!(refusal.message.contains("resident resident-1"));
    }

    #[test]
    fn not_yet_valid_only_beyond_the_skew() {
        let c = counter(0, 1);
        assert_eq!(check_state(id(), &c, FROM - GRANT_SKEW_S), Ok(()));
        assert_eq!(
            code(check_state(id(), &c, FROM - GRANT_SKEW_S - 1)),
            ErrorCode::GrantNotYetValid
        );
    }

    #[test]
    fn expired_right_after_not_after_with_no_allowance() {
        assert_eq!(
            code(check_state(id(), &counter(0, 1), UNTIL + 1)),
            ErrorCode::GrantExpired
        );
    }

    #[test]
    fn exhausted_once_every_use_is_spent() {
        assert_eq!(
            code(check_state(id(), &counter(3, 3), FROM)),
            ErrorCode::GrantExhausted
        );
        assert_eq!(
            code(check_state(id(), &counter(4, 3), FROM)),
            ErrorCode::GrantExhausted
        );
    }
}
