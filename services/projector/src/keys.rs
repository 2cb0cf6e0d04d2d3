//! The key spaces of the read-model tree, in one place.
//!
//! Everything the fold writes lives in ONE sled tree, so that a batch of
//! events and the last applied sequence commit in one atomic `apply_batch`
//! (a transaction over several trees measured 8× slower). Key spaces are
//! told apart by a short prefix; components are separated by `0x00`, which
//! no identifier can contain (they are `[A-Za-z0-9_-]`); sequences are
//! 8-byte big-endian so that keys sort in stream order.

use uuid::Uuid;

/// Last applied stream sequence (u64 BE).
pub const APPLIED_SEQ: &[u8] = b"meta\0applied_seq";
/// Number of quarantined messages (u64 BE).
pub const QUARANTINE_COUNT: &[u8] = b"meta\0quarantined";

/// `ev\0<seq>` → [`crate::model::StoredEvent`]: every applied event, in stream order.
pub const EVENT: &[u8] = b"ev\0";
/// `eid\0<uuid>` → seq: find an event by id; detects an event id stored twice.
pub const EVENT_ID: &[u8] = b"eid\0";
/// `chain\0<seq>` → 32-byte hash chain link.
pub const CHAIN: &[u8] = b"chain\0";
/// `quar\0<seq>` → [`crate::model::Quarantined`].
pub const QUARANTINE: &[u8] = b"quar\0";
/// `ip\0<clinic>\0<patient>\0<seq>` → (): a patient's events.
pub const BY_PATIENT: &[u8] = b"ip\0";
/// `ipr\0<clinic>\0<practitioner>\0<seq>` → (): a practitioner's events
/// (credentials, injections given, adverse events after them).
pub const BY_PRACTITIONER: &[u8] = b"ipr\0";
/// `it\0<event_type>\0<seq>` → ().
pub const BY_TYPE: &[u8] = b"it\0";
/// `il\0<lot>\0<seq>` → (): injections with the lot, its recall, adverse events after it.
pub const BY_LOT: &[u8] = b"il\0";
/// `io\0<occurred_at ms, sign-flipped BE>\0<seq>` → ().
pub const BY_OCCURRED: &[u8] = b"io\0";
/// `ps\0<clinic>\0<patient>` → [`crate::model::PatientSummary`].
pub const PATIENT: &[u8] = b"ps\0";
/// `pr\0<clinic>\0<practitioner>` → [`crate::model::PractitionerSummary`].
pub const PRACTITIONER: &[u8] = b"pr\0";
/// `ae\0<uuid>` → [`crate::model::AdverseEventState`].
pub const ADVERSE_EVENT: &[u8] = b"ae\0";
/// `mk\0<target uuid>` → [`crate::model::Marks`]: corrections of an event.
pub const MARKS: &[u8] = b"mk\0";

/// A key: prefix, then each part followed by `0x00`.
pub fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    k.extend_from_slice(prefix);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(part);
    }
    k
}

/// An index entry: prefix, parts, then the sequence.
pub fn indexed(prefix: &[u8], parts: &[&[u8]], seq: u64) -> Vec<u8> {
    let mut k = key(prefix, parts);
    if !parts.is_empty() {
        k.push(0);
    }
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix under which an index lists its sequences.
pub fn index_prefix(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(prefix, parts);
    if !parts.is_empty() {
        k.push(0);
    }
    k
}

/// `ev\0<seq>` and friends.
pub fn by_seq(prefix: &[u8], seq: u64) -> Vec<u8> {
    indexed(prefix, &[], seq)
}

/// `eid\0<uuid>` and friends.
pub fn by_uuid(prefix: &[u8], id: &Uuid) -> Vec<u8> {
    key(prefix, &[id.as_bytes()])
}

/// The sequence at the end of an index key.
pub fn seq_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Milliseconds since the epoch as bytes that sort like the numbers
/// (the sign bit flipped, so that times before 1970 sort first).
pub fn time_bytes(millis: i64) -> [u8; 8] {
    ((millis as u64) ^ (1 << 63)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_in_stream_order_and_end_in_the_sequence() {
        let a = indexed(BY_PATIENT, &[b"C", b"P"], 2);
        let b = indexed(BY_PATIENT, &[b"C", b"P"], 10);
        assert!(a < b);
        assert_eq!(seq_suffix(&b), Some(10));
        assert!(b.starts_with(&index_prefix(BY_PATIENT, &[b"C", b"P"])));
        // P1's prefix does not take P10's keys.
        assert!(
            !indexed(BY_PATIENT, &[b"C", b"P10"], 1)
                .starts_with(&index_prefix(BY_PATIENT, &[b"C", b"P1"]))
        );
    }

    #[test]
    fn times_sort_including_before_1970() {
        assert!(time_bytes(-5) < time_bytes(0));
        assert!(time_bytes(0) < time_bytes(1_700_000_000_000));
    }
}
