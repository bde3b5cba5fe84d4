//! Decisions as plain functions: who may put, read and list ([`access`]);
//! the purpose registry, what an approval may contain and every check a
//! fetch under a grant must pass ([`grants`]); where a blob lives in a
//! cluster ([`placement`]); which department may issue which kinds
//! ([`issuers`]); how many refusal entries one caller may add
//! ([`refusals`]); and the one clock the node reads ([`clock`]).
//!
//! **Invariant:** a rule takes the caller, the records and `now` as
//! arguments and returns a decision; it reads no state and does no I/O
//! (loading the purpose and issuer registry files at start aside).

pub mod access;
pub mod clock;
pub mod grants;
pub mod issuers;
pub mod limits;
pub mod placement;
pub mod refusals;
