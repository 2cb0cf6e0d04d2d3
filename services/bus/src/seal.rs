//! Seals: the recording services' signature on every event they store.
//!
//! NATS permissions decide who may publish on `clinic.>`, but whoever holds
//! the stream's admin credentials (an operator, a restore script, a stolen
//! password) can still put a message there. So each recording service signs
//! what it stores, the subject and the exact payload, with an Ed25519 key
//! only it holds, in the [`SEAL_HEADER`] header; every fold verifies the
//! seal against the public keys it trusts ([`Keyring`]) and quarantines,
//! with a finding, what does not verify. A fold needs public keys only:
//! reading the trail does not give the power to write it.

use std::{collections::HashMap, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// The header that carries an event's seal: `v1 <key id> <signature>`.
pub const SEAL_HEADER: &str = "Prolo-Seal";

/// What a seal signs before the subject and payload, so that a signature
/// made for anything else never verifies as a seal.
const CONTEXT: &[u8] = b"prolo-seal/v1\n";

/// Why a key or keyring could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key is not a base64 Ed25519 PKCS#8 document.
    #[error("not an Ed25519 private key (base64 PKCS#8): {0}")]
    NotAKey(String),
    /// A line of the keyring is not a base64 Ed25519 public key.
    #[error("line {line} of the keyring is not a base64 Ed25519 public key (32 bytes)")]
    NotAPublicKey {
        /// Its line number, from 1.
        line: usize,
    },
    /// The keyring names no key: nothing could ever verify.
    #[error("the keyring holds no key")]
    Empty,
    /// No randomness for a new key.
    #[error("generating a key: {0}")]
    Generate(String),
}

/// Why a message's seal does not prove a recording service stored it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    /// No seal at all: published by something other than a recording service.
    #[error("not sealed by a recording service (no {SEAL_HEADER} header)")]
    Missing,
    /// A seal that cannot be read.
    #[error("its {SEAL_HEADER} header is malformed: {0}")]
    Malformed(String),
    /// Sealed with a key this fold does not trust.
    #[error("sealed with key {0}, which is not in the trusted keyring")]
    UnknownKey(String),
    /// The signature does not match the subject and payload as stored.
    #[error("its seal (key {0}) does not match its subject and bytes: altered or forged")]
    Mismatch(String),
}

/// A recording service's sealing key.
pub struct SealKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("id", &self.id).finish()
    }
}

impl SealKey {
    /// A new key, and its PKCS#8 document to keep (base64 in a file, mode 0600).
    pub fn generate() -> Result<(Self, String), KeyError> {
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let key = Self::from_pkcs8(document.as_ref())?;
        Ok((key, STANDARD.encode(document.as_ref())))
    }

    /// The key in a PKCS#8 document.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| KeyError::NotAKey(e.to_string()))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    /// The key in `path`: base64 PKCS#8, as [`SealKey::generate`] gives it.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        let der = STANDARD
            .decode(text.trim())
            .map_err(|e| KeyError::NotAKey(e.to_string()))?;
        Self::from_pkcs8(&der)
    }

    /// Its id: the first 8 bytes of the SHA-256 of its public key, in hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its public key in base64: the line to add to a fold's keyring.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The seal of `payload` stored on `subject`: the [`SEAL_HEADER`] value.
    pub fn seal(&self, subject: &str, payload: &[u8]) -> String {
        let signature = self.pair.sign(&signed_bytes(subject, payload));
        format!(
            "v1 {} {}",
            self.id,
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

/// The public keys whose seals a fold accepts.
#[derive(Clone)]
pub struct Keyring {
    keys: HashMap<String, UnparsedPublicKey<Vec<u8>>>,
    /// Messages before this stream sequence were stored before sealing was
    /// turned on, and are accepted unsealed (1: every message is checked).
    pub sealed_from: u64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("keys", &ids)
            .field("sealed_from", &self.sealed_from)
            .finish()
    }
}

/// Two keyrings are equal when they trust the same keys from the same sequence.
impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.sealed_from == other.sealed_from && self.ids() == other.ids()
    }
}

impl Keyring {
    /// The keyring of these keys' public halves.
    pub fn of(keys: &[&SealKey]) -> Self {
        let keys = keys
            .iter()
            .map(|k| {
                let public = k.pair.public_key().as_ref().to_vec();
                (k.id.clone(), UnparsedPublicKey::new(&ED25519, public))
            })
            .collect();
        Self {
            keys,
            sealed_from: 1,
        }
    }

    /// A keyring file: one base64 Ed25519 public key per line (what
    /// [`SealKey::public_key`] prints); blank lines and `#` comments skipped.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let public = STANDARD
                .decode(line)
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or(KeyError::NotAPublicKey { line: index + 1 })?;
            keys.insert(key_id(&public), UnparsedPublicKey::new(&ED25519, public));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self {
            keys,
            sealed_from: 1,
        })
    }

    /// [`Keyring::parse`] of the file at `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::parse(&read(path)?)
    }

    /// The ids of its keys, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Whether `seal` proves that a recording service with a trusted key
    /// stored `payload` on `subject`. A message before
    /// [`Keyring::sealed_from`] is accepted as it is.
    pub fn verify(
        &self,
        seq: u64,
        subject: &str,
        payload: &[u8],
        seal: Option<&str>,
    ) -> Result<(), Unsealed> {
        if seq < self.sealed_from {
            return Ok(());
        }
        let seal = seal.ok_or(Unsealed::Missing)?;
        let mut parts = seal.split(' ');
        let (Some("v1"), Some(id), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Unsealed::Malformed(
                "expected `v1 <key id> <signature>`".to_owned(),
            ));
        };
        let shown_id: String = id.chars().take(32).collect();
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| Unsealed::UnknownKey(shown_id.clone()))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Unsealed::Malformed("the signature is not base64url".to_owned()))?;
        key.verify(&signed_bytes(subject, payload), &signature)
            .map_err(|_| Unsealed::Mismatch(shown_id))
    }
}

fn signed_bytes(subject: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CONTEXT.len() + subject.len() + 1 + payload.len());
    bytes.extend_from_slice(CONTEXT);
    bytes.extend_from_slice(subject.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    bytes
}

fn key_id(public: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SUBJECT: &str = "clinic.riverside.patient.P-1.injection.given";

    #[test]
    fn a_seal_verifies_only_for_its_own_subject_and_bytes_and_trusted_key() {
        let (key, document) = SealKey::generate().unwrap();
        let again = SealKey::load_from_text(&document);
        assert_eq!(again.id(), key.id());
        let ring = Keyring::parse(&format!("# the recorder\n\n{}\n", key.public_key())).unwrap();
        assert_eq!(ring.ids(), vec![key.id().to_owned()]);
        let seal = key.seal(SUBJECT, b"{\"a\":1}");
        assert_eq!(ring.verify(1, SUBJECT, b"{\"a\":1}", Some(&seal)), Ok(()));
        assert!(matches!(
            ring.verify(1, SUBJECT, b"{\"a\":2}", Some(&seal)),
            Err(Unsealed::Mismatch(_))
        ));
        assert!(matches!(
            ring.verify(
                1,
                "clinic.riverside.patient.P-2.injection.given",
                b"{\"a\":1}",
                Some(&seal)
            ),
            Err(Unsealed::Mismatch(_))
        ));
        assert_eq!(ring.verify(1, SUBJECT, b"{}", None), Err(Unsealed::Missing));
        let (stranger, _) = SealKey::generate().unwrap();
        assert_eq!(
            ring.verify(1, SUBJECT, b"{}", Some(&stranger.seal(SUBJECT, b"{}"))),
            Err(Unsealed::UnknownKey(stranger.id().to_owned()))
        );
        for junk in ["", "v1", "v2 a b", "v1 a b c", "v1 x !!!"] {
            assert!(
                matches!(
                    ring.verify(1, SUBJECT, b"{}", Some(junk)),
                    Err(Unsealed::Malformed(_) | Unsealed::UnknownKey(_))
                ),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn messages_before_sealing_began_are_accepted_and_after_it_checked() {
        let (key, _) = SealKey::generate().unwrap();
        let ring = Keyring {
            sealed_from: 10,
            ..Keyring::of(&[&key])
        };
        assert_eq!(ring.verify(9, SUBJECT, b"{}", None), Ok(()));
        assert_eq!(
            ring.verify(10, SUBJECT, b"{}", None),
            Err(Unsealed::Missing)
        );
    }

    #[test]
    fn keyrings_that_cannot_verify_anything_are_refused_naming_the_line() {
        assert!(matches!(
            Keyring::parse("# nothing\n"),
            Err(KeyError::Empty)
        ));
        assert!(matches!(
            Keyring::parse("# ok\nnot base64\n"),
            Err(KeyError::NotAPublicKey { line: 2 })
        ));
        assert!(matches!(
            Keyring::parse(&STANDARD.encode([0u8; 31])),
            Err(KeyError::NotAPublicKey { line: 1 })
        ));
    }

    impl SealKey {
        fn load_from_text(text: &str) -> Self {
            Self::from_pkcs8(&STANDARD.decode(text).unwrap()).unwrap()
        }
    }
}
