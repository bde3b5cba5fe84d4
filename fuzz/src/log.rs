//! Log entries: their canonical bytes (what a node serves an auditor, a
//! resident and a receipt), and the auditor's replay over them.

use pki::LogEntry;
use vault_client::merkle::{leaf_hash, RootBuilder};
use vault_client::replay::{parse_entries, replay, root_violation};

/// One entry's canonical bytes: it parses or is refused, a parsed entry's
/// canonical bytes are exactly the input (one encoding per entry), and it
/// round-trips through its JSON form.
pub fn log_entry(data: &[u8]) {
    let Ok(entry) = LogEntry::parse(data) else {
        return;
    };
    assert_eq!(
        entry.canonical_bytes(),
        data,
        "parse is the inverse of canonical_bytes"
    );
    crate::json_round_trip(&entry);
}

/// A page of entries as `vault audit verify` receives them (each a u16 BE
/// length and that many bytes), replayed from an index the first two
/// bytes give: parsing stops at the first malformed entry, the access
/// rules judge the rest without panicking and name only indexes of the
/// page, and the leaves hash to the root they build.
pub fn audit_replay(data: &[u8]) {
    let Some((head, mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let first = u64::from(u16::from_be_bytes(*head));
    let mut raw = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        raw.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    let (entries, malformed) = parse_entries(&raw);
    if let Some(violation) = &malformed {
        assert_eq!(violation.index, entries.len() as u64);
    } else {
        assert_eq!(entries.len(), raw.len());
    }
    for violation in replay(first, &entries) {
        let last = first + entries.len() as u64;
        assert!(
            (first..last).contains(&violation.index),
            "{violation:?} outside {first}..{last}"
        );
    }
    let leaves: Vec<_> = raw.iter().map(|bytes| leaf_hash(bytes)).collect();
    let mut builder = RootBuilder::new();
    leaves.iter().for_each(|leaf| builder.push(*leaf));
    let checkpoint = pki::Checkpoint {
        origin: "fuzz.example/log".into(),
        size: builder.size(),
        root: builder.root(),
        resident_index: None,
    };
    assert_eq!(root_violation(&leaves, &checkpoint), None);
}
