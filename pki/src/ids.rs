//! Identifier newtypes, constructed only by parsing: content hashes and names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{truncate_for_display, PkiError};

/// Longest resident id, document kind or holder name, in bytes (all are ASCII).
pub const NAME_LEN_MAX: usize = 64;

/// BLAKE3 content hash, 32 bytes. Display/Debug as 64 lowercase hex; serde as that hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Parses 64 hexadecimal characters (either case) into a hash.
    pub fn from_hex(s: &str) -> Result<Self, PkiError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| PkiError::InvalidHash {
            value: truncate_for_display(s),
        })?;
        Ok(Self(bytes))
    }

    /// The hash as 64 lowercase hexadecimal characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for ContentHash {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks the shared identifier rule: 1..=64 chars, first alphanumeric, rest in the allowed set.
fn check_name(
    s: &str,
    what: &'static str,
    rule: &'static str,
    allowed: fn(char) -> bool,
) -> Result<(), PkiError> {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() && allowed(c));
    let ok = first_ok && s.len() <= NAME_LEN_MAX && s.chars().all(allowed);
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName {
            what,
            value: truncate_for_display(s),
            rule,
        })
    }
}

fn mixed_case_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn lower_case_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $rule:literal, $allowed:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Parses and validates the identifier.
            pub fn parse(s: &str) -> Result<Self, PkiError> {
                check_name(s, $what, $rule, $allowed)?;
                Ok(Self(s.to_owned()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = PkiError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = PkiError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                check_name(&s, $what, $rule, $allowed)?;
                Ok(Self(s))
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }
    };
}

name_type!(
    /// Resident identifier, e.g. "resident-1": 1..=64 chars of `[A-Za-z0-9._-]`, first char alphanumeric.
    ResidentId,
    "resident id",
    "use 1 to 64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
    mixed_case_char
);

name_type!(
    /// Kind of document, e.g. "marriage-certificate": 1..=64 chars of `[a-z0-9._-]`, first char alphanumeric.
    DocumentKind,
    "document kind",
    "use 1 to 64 characters from a-z 0-9 . _ -, starting with a lowercase letter or digit",
    lower_case_char
);

name_type!(
    /// Name of a certificate holder ("civil-affairs", "node-1", "resident-1"): same rule as [`ResidentId`].
    Name,
    "name",
    "use 1 to 64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
    mixed_case_char
);

name_type!(
    /// Purpose code from the district's purpose registry, e.g. "housing-subsidy": same rule as
    /// [`DocumentKind`].
    Purpose,
    "purpose code",
    "use 1 to 64 characters from a-z 0-9 . _ -, starting with a lowercase letter or digit",
    lower_case_char
);

/// Length of the 16-byte identifiers ([`DocumentId`], [`RequestId`], [`GrantId`]).
pub const ID_LEN: usize = 16;

macro_rules! hex_id {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $tag:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty([u8; ID_LEN]);

        impl $ty {
            /// Parses 32 hexadecimal characters.
            pub fn parse(s: &str) -> Result<Self, PkiError> {
                let mut id = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut id).map_err(|_| PkiError::InvalidName {
                    what: $what,
                    value: truncate_for_display(s),
                    rule: "use 32 hexadecimal characters",
                })?;
                Ok(Self(id))
            }

            /// Derives the id from canonical statement bytes: the first 16 bytes of BLAKE3 in
            /// derive-key mode with the context string given in the type's docs.
            pub fn derive(parts: &[&[u8]]) -> Self {
                let mut hasher = blake3::Hasher::new_derive_key($tag);
                for part in parts {
                    hasher.update(part);
                }
                let mut id = [0u8; ID_LEN];
                id.copy_from_slice(&hasher.finalize().as_bytes()[..ID_LEN]);
                Self(id)
            }

            /// Builds the id from raw bytes (a storage key).
            pub fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = PkiError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = PkiError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.to_string()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self)
            }
        }
    };
}

hex_id!(
    /// A document's id (context `vault/document-id/v1`, over the issue record's canonical
    /// bytes and the issuer's signature): a retried put of the same signed record names the
    /// same document.
    DocumentId,
    "document id",
    "vault/document-id/v1"
);

hex_id!(
    /// An access request's id (context `vault/request-id/v1`, over the request's canonical
    /// bytes and the department's signature).
    RequestId,
    "request id",
    "vault/request-id/v1"
);

hex_id!(
    /// A grant's id (context `vault/grant-id/v1`, over the grant body's canonical bytes, which
    /// the resident signs).
    GrantId,
    "grant id",
    "vault/grant-id/v1"
);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(ResidentId::parse("resident-1").is_ok());
        assert!(ResidentId::parse("Resident_1.x").is_ok());
        assert!(ResidentId::parse("").is_err());
        assert!(ResidentId::parse("-x").is_err());
        assert!(ResidentId::parse("a b").is_err());
        assert!(ResidentId::parse(&"a".repeat(64)).is_ok());
        assert!(ResidentId::parse(&"a".repeat(65)).is_err());
        assert!(DocumentKind::parse("marriage-certificate").is_ok());
        assert!(DocumentKind::parse("Marriage").is_err());
        assert!(Name::parse("civil-affairs").is_ok());
        assert!(Name::parse("é").is_err());
    }

    #[test]
    fn serde_validates() -> Result<(), serde_json::Error> {
        let id: ResidentId = serde_json::from_str("\"resident-1\"")?;
        assert_eq!(id.as_str(), "resident-1");
        assert_eq!(serde_json::to_string(&id)?, "\"resident-1\"");
        assert!(serde_json::from_str::<ResidentId>("\"bad id\"").is_err());
        assert!(serde_json::from_str::<DocumentKind>("\"UPPER\"").is_err());
        let h = ContentHash([0xab; 32]);
        let json = serde_json::to_string(&h)?;
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<ContentHash>(&json)?, h);
        assert!(serde_json::from_str::<ContentHash>("\"abcd\"").is_err());
        Ok(())
    }

    #[test]
    fn hash_hex_round_trip() -> Result<(), PkiError> {
        let h = ContentHash([7; 32]);
        assert_eq!(h.to_string(), "07".repeat(32));
        assert_eq!(format!("{h:?}"), "07".repeat(32));
        assert_eq!(ContentHash::from_hex(&h.to_hex())?, h);
        assert_eq!("07".repeat(32).parse::<ContentHash>()?, h);
        Ok(())
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_strings_never_panics(s in ".*") {
            let _ = ResidentId::parse(&s);
            let _ = DocumentKind::parse(&s);
            let _ = Name::parse(&s);
            let _ = ContentHash::from_hex(&s);
        }

        #[test]
        fn valid_names_round_trip(s in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}") {
            let id = ResidentId::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(id.as_str(), s.as_str());
            let back: ResidentId = id.to_string().parse().map_err(|e: PkiError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &id);
            let json = serde_json::to_string(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let de: Name = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(de.as_str(), s.as_str());
        }

        #[test]
        fn valid_kinds_round_trip(s in "[a-z0-9][a-z0-9._-]{0,63}") {
            let kind = DocumentKind::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(kind.to_string(), s);
        }

        #[test]
        fn hashes_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let h = ContentHash(bytes);
            prop_assert_eq!(ContentHash::from_hex(&h.to_hex()).map_err(|e| TestCaseError::fail(e.to_string()))?, h);
        }
    }
}
