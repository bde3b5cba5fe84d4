//! Signed notes and what carries them: checkpoints, witness cosignatures
//! and policies, log keys, a witness's `add-checkpoint` body, receipts.

use pki::{
    parse_verifiers, split_note, verifiers_text, Checkpoint, LogVerifier, WitnessPolicy,
    WitnessVerifier,
};
use vault_client::receipt::Receipt;
use vault_client::witness::{decide, AddCheckpoint, Latest};

use crate::fixtures;

/// A checkpoint note as a client, an auditor and a witness check it
/// against the fixture district's log key: it verifies or is refused; a
/// verified one's body is the note's body; the fixture witness policy
/// judges its cosignatures without panicking.
pub fn checkpoint(data: &[u8]) {
    let Ok(note) = std::str::from_utf8(data) else {
        return;
    };
    let split = split_note(note);
    if let Ok(checkpoint) = Checkpoint::verify_note(note, fixtures::log_keys()) {
        let (body, _) = split.expect("a verified note splits");
        assert_eq!(
            body,
            checkpoint.body(),
            "the signed body is the checkpoint's"
        );
    }
    let _ = fixtures::witness_policy().check(note);
}

/// The text of the district's key files and policies: a witness vkey and
/// a log key line (`witness.pub`, `log.pub`) round-trip through their
/// `vkey`; a `log.pub` file round-trips through `verifiers_text`; a
/// witness policy parses or is refused, and a parsed one judges the
/// fixture's cosigned note; and the fixture witness checks the input's
/// first line as a cosignature line over the rest as a note body.
pub fn cosignature(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(witness) = WitnessVerifier::parse(text) {
        assert_eq!(WitnessVerifier::parse(&witness.vkey()).ok(), Some(witness));
    }
    if let Ok(key) = LogVerifier::parse(text) {
        assert_eq!(LogVerifier::parse(&key.vkey()).ok(), Some(key));
    }
    if let Ok(keys) = parse_verifiers(text) {
        assert_eq!(parse_verifiers(&verifiers_text(&keys)).ok(), Some(keys));
    }
    if let Ok(policy) = WitnessPolicy::parse(text) {
        let _ = policy.check(fixtures::cosigned_note());
    }
    let (line, body) = text.split_once('\n').unwrap_or((text, ""));
    for witness in fixtures::witness_policy().witnesses() {
        let _ = witness.verify_line(body, line);
    }
}

/// A witness's `POST /add-checkpoint` body: it parses or is refused, a
/// parsed one encodes to itself, and the witness's decision (for the
/// fixture log key, from a latest tree the input's old size picks)
/// answers without panicking; a checkpoint it accepts extends the latest.
pub fn witness_request(data: &[u8]) {
    let Ok(request) = AddCheckpoint::parse(data) else {
        return;
    };
    let encoded = request.encode();
    assert_eq!(
        AddCheckpoint::parse(encoded.as_bytes()).ok().as_ref(),
        Some(&request)
    );
    let latest = Latest {
        size: request.old,
        root: vault_client::merkle::leaf_hash(encoded.as_bytes()),
    };
    if let Ok(checkpoint) = decide(&request, fixtures::log_keys(), |_| Some(latest)) {
        assert!(checkpoint.size >= latest.size);
    }
    if let Err(refusal) = decide(&request, fixtures::log_keys(), |_| None) {
        let _ = refusal.status();
    }
}

/// A receipt file (`vault receipt verify FILE`): it parses or is refused,
/// a parsed one encodes to itself, and verifying it against the fixture
/// log key answers without panicking (a verified receipt's entry is the
/// receipt's).
pub fn receipt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(receipt) = Receipt::parse(text) else {
        return;
    };
    assert_eq!(
        Receipt::parse(&receipt.encode()).ok().as_ref(),
        Some(&receipt)
    );
    let checked = receipt.verify(|note| {
        Checkpoint::verify_note(note, fixtures::log_keys()).map(|c| (c.size, c.root))
    });
    if let Ok((entry, _)) = checked {
        assert_eq!(entry.canonical_bytes(), receipt.entry);
    }
}
