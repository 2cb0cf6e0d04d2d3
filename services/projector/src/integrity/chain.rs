//! The hash chain over the stream: `chain[seq] = SHA-256(chain[seq-1] ‖
//! seq as 8 bytes big-endian ‖ the message payload as stored)`, with
//! `chain[0]` 32 zero bytes. Any change to a stored event, or a removed or
//! reordered one, changes every link after it.

use sha2::{Digest, Sha256};

/// The link before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The link for `seq` following `previous`.
pub fn link(previous: &[u8; 32], seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(seq.to_be_bytes());
    hasher.update(payload);
    hasher.finalize().into()
}

/// Lower-case hex, for people and checkpoints.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash a [`hex`] string names; `None` when it is not 64 hex digits.
pub fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Serde for a hash as its [`hex`] string (readable in JSON and status).
pub mod hex_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the hash as hex.
    pub fn serialize<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::hex(hash))
    }

    /// Reads a hash written as hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_hex(&text).ok_or_else(|| D::Error::custom("not a 64-digit hex hash"))
    }
}

/// A checkpoint other systems can keep: the chain head at a sequence.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Checkpoint {
    /// Stream sequence.
    pub seq: u64,
    /// `chain[seq]`, hex.
    pub hash: String,
}

/// Where checkpoints are published (core NATS, outside the stream).
pub const CHECKPOINT_SUBJECT: &str = "prolo.chain.checkpoint";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_depends_on_previous_sequence_and_payload() {
        let a = link(&GENESIS, 1, b"x");
        assert_ne!(a, link(&GENESIS, 2, b"x"));
        assert_ne!(a, link(&GENESIS, 1, b"y"));
        assert_ne!(a, link(&a, 1, b"x"));
        assert_eq!(hex(&GENESIS).len(), 64);
        assert_eq!(parse_hex(&hex(&a)), Some(a));
        assert_eq!(parse_hex("zz"), None);
    }
}
