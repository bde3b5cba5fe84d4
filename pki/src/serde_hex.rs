//! Serde helpers that write bytes as lowercase hex strings, for the JSON
//! forms of statements and records (`#[serde(with = "pki::serde_hex::array")]`).
//! Canonical signed bytes never go through these.

/// Fixed-size byte arrays (`[u8; N]`) as hex.
pub mod array {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the array as lowercase hex.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Reads exactly `2 * N` hex characters.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let mut out = [0u8; N];
        hex::decode_to_slice(String::deserialize(d)?, &mut out)
            .map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Byte vectors as hex.
pub mod bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the bytes as lowercase hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Reads hex into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
