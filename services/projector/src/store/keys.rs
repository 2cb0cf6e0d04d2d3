//! The key spaces of the read-model tree, in one place.
//!
//! Everything the fold writes lives in ONE sled tree, so that a batch of
//! events and the last applied sequence commit in one atomic `apply_batch`
//! (a transaction over several trees measured 8× slower). Key spaces are
//! told apart by a short prefix; components are separated by `0x00`, which
//! no identifier can contain (they are `[A-Za-z0-9_-]`); sequences are
//! 8-byte big-endian so that keys sort in stream order.

use uuid::Uuid;

/// The day (i64 BE, days since 1970-01-01 UTC) of the stream's clock up to
/// which the signals' rolling window was last moved.
pub const SIGNAL_DAY: &[u8] = b"meta\0signal_day";
/// The read-model layout ([`crate::store::READ_MODEL_FORMAT`], u32 BE).
pub const FORMAT: &[u8] = b"meta\0format";
/// Last applied stream sequence (u64 BE).
pub const APPLIED_SEQ: &[u8] = b"meta\0applied_seq";
/// Number of quarantined messages (u64 BE).
pub const QUARANTINE_COUNT: &[u8] = b"meta\0quarantined";

/// `src\0<seq>` → [`crate::model::SourcedRecord`]: for a message the hub's
/// stream sourced from a clinic's edge, the edge it came from, its edge
/// sequence and when it arrived at the hub.
pub const SOURCED: &[u8] = b"src\0";
/// `ech\0<source>` → [`crate::model::EdgeChain`]: the hash chain of one
/// clinic edge's stream, recomputed at the hub from what it sourced.
pub const EDGE_CHAIN: &[u8] = b"ech\0";

/// `evb\0<seq / RECORDS_PER_BLOCK>` → the [`crate::model::EventRecord`]s of
/// that many consecutive sequences: every message, in stream order (see
/// [`crate::store::records`]).
pub const EVENT_BLOCK: &[u8] = b"evb\0";
/// Sequences per block of event records: a batch of 4,000 writes 500 keys
/// instead of 4,000, and reading one record decompresses ~5 KB. Blocks of
/// 8 to 64 folded at the same speed (`fold_core`); larger blocks compress
/// better (64: 124 bytes per record, 8: 156) but every single read (an
/// investigation reads ~1,200 records) decompresses the whole block.
pub const RECORDS_PER_BLOCK: u64 = 8;
/// `eid\0<floor id>` → sorted `(id, seq)` pairs ([`crate::store::event_ids`]):
/// find an event by id; detects an event id stored twice.
pub const EVENT_ID: &[u8] = b"eid\0";

// Indexes are posting lists: `<prefix><parts…>\0<bucket>` → the sequences
// (ascending) in that bucket of [`BUCKET`] sequences. A batch rewrites one
// small list per entity it touches instead of writing one key per event
// and index (sled's per-key cost dominated the fold).

/// `ip\0<clinic>\0<patient>\0<bucket>`: a patient's events.
pub const BY_PATIENT: &[u8] = b"ip\0";
/// `ipr\0<clinic>\0<practitioner>\0<bucket>`: a practitioner's events
/// (credentials, injections given, adverse events after them).
pub const BY_PRACTITIONER: &[u8] = b"ipr\0";
/// `iprd\0<clinic>\0<practitioner>\0<occurred day>\0<bucket>` →
/// [`crate::model::DayInjection`]s: a practitioner's injections by
/// clinical day, as rows, for "around that time" questions.
pub const PRACTITIONER_DAY: &[u8] = b"iprd\0";
/// `it\0<event_type>\0<bucket>`.
pub const BY_TYPE: &[u8] = b"it\0";
/// `il\0<lot>\0<bucket>`: injections with the lot, its recall, adverse events after it.
pub const BY_LOT: &[u8] = b"il\0";
/// `ilj\0<lot>\0<bucket>`: injections with the lot only (what a recall
/// must look through; `il` also lists recalls and adverse events).
pub const INJECTIONS_BY_LOT: &[u8] = b"ilj\0";
/// `io\0<occurred day, sign-flipped BE>\0<bucket>`: events by clinical day.
pub const BY_OCCURRED_DAY: &[u8] = b"io\0";
/// `iac\0<clinic>\0<principal>\0<bucket>`: a principal's reads (`access.recorded`).
pub const BY_PRINCIPAL: &[u8] = b"iac\0";
/// `iap\0<clinic>\0<patient>\0<bucket>`: reads of a patient's data: who looked.
pub const READS_OF_PATIENT: &[u8] = b"iap\0";
/// `fd\0<uuid>` → [`crate::rules::findings::Finding`].
pub const FINDING: &[u8] = b"fd\0";
/// `fat\0<seq>` → the ids of the findings raised when folding `seq`.
pub const FINDINGS_AT: &[u8] = b"fat\0";
/// `ifr\0<clinic>\0<rule>\0<bucket>`: sequences that raised findings of a rule.
pub const FINDINGS_BY_RULE: &[u8] = b"ifr\0";
/// `ifp\0<clinic>\0<patient>\0<bucket>`: sequences that raised findings about a patient.
pub const FINDINGS_BY_PATIENT: &[u8] = b"ifp\0";
/// `ifq\0<clinic>\0<practitioner>\0<bucket>`: … about a practitioner.
pub const FINDINGS_BY_PRACTITIONER: &[u8] = b"ifq\0";
/// Where adverse events waiting for a follow-up were kept as one list
/// (`Vec<(deadline ms, event id)>`) before [`AWAITING`]; moved on first use.
pub const AWAITING_UPDATE_LIST: &[u8] = b"meta\0awaiting_update";
/// `aw\0<deadline, sign-flipped BE><event id>` → empty: an infection or
/// misplaced injection waiting for its follow-up, in deadline order. One
/// key each, so a batch writes only what changed.
pub const AWAITING: &[u8] = b"aw\0";
/// Just past every [`AWAITING`] key.
pub const AWAITING_END: &[u8] = b"aw\x01";

/// The key of an adverse event waiting for its follow-up until `deadline_ms`.
pub fn awaiting(deadline_ms: i64, event: &Uuid) -> Vec<u8> {
    let mut k = AWAITING.to_vec();
    k.extend_from_slice(&time_bytes(deadline_ms));
    k.extend_from_slice(event.as_bytes());
    k
}

/// The deadline and event of an [`AWAITING`] key.
pub fn parse_awaiting(key: &[u8]) -> Option<(i64, Uuid)> {
    let rest = key.strip_prefix(AWAITING)?;
    let time: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    let id = Uuid::from_slice(rest.get(8..24)?).ok()?;
    Some(((u64::from_be_bytes(time) ^ (1 << 63)) as i64, id))
}
/// `av\0<clinic>\0<dimension>\0<group>` → the voids of adverse events in
/// that group (`lot`, `practitioner`) within the void window
/// ([`crate::rules::adverse_events::Void`]), for `adverse_events_voided_together`.
pub const VOIDS: &[u8] = b"av\0";
/// `lr\0<lot>` → `Vec<(occurred ms, event id)>`: recalls of a lot.
pub const LOT_RECALLS: &[u8] = b"lr\0";
/// `sg\0<clinic>\0<dimension>\0<group>` → [`crate::rules::signals::GroupCount`];
/// the clinic's baseline is dimension `clinic`, group `all`.
pub const GROUP: &[u8] = b"sg\0";
/// `fc\0<clinic>\0<rule>` → [`crate::rules::findings::FindingCount`]: findings
/// raised and resolved, kept as they happen so that counts need no scan.
pub const FINDING_COUNTS: &[u8] = b"fc\0";
/// `live\0<clinic>` → i64 ms: the stream time of the clinic's first
/// clinical event recorded live (not through a back-fill).
pub const CLINIC_LIVE: &[u8] = b"live\0";
/// `sig\0<clinic>\0<dimension>\0<group>\0<kind>` → [`crate::rules::signals::Signal`].
pub const SIGNAL: &[u8] = b"sig\0";
/// `sig\0<clinic>\0<dimension>\0<group>\0<kind>`: where a signal is.
pub fn signal(clinic: &str, dimension: &str, group: &str, kind: &str) -> Vec<u8> {
    key(
        SIGNAL,
        &[
            clinic.as_bytes(),
            dimension.as_bytes(),
            group.as_bytes(),
            kind.as_bytes(),
        ],
    )
}
/// `iq\0<bucket>`: quarantined sequences.
pub const QUARANTINED: &[u8] = b"iq\0";

/// Sequences per posting bucket: small enough that rewriting a bucket per
/// batch is cheap, large enough that a long history is few keys.
pub const BUCKET: u64 = 4096;
/// `ps\0<clinic>\0<patient>` → [`crate::model::PatientSummary`].
pub const PATIENT: &[u8] = b"ps\0";
/// `pr\0<clinic>\0<practitioner>` → [`crate::model::PractitionerSummary`].
pub const PRACTITIONER: &[u8] = b"pr\0";
/// `ae\0<uuid>` → [`crate::model::AdverseEventState`].
pub const ADVERSE_EVENT: &[u8] = b"ae\0";
/// `mk\0<target uuid>` → [`crate::model::Marks`]: corrections of an event.
pub const MARKS: &[u8] = b"mk\0";
/// `es\0<target uuid>` → `Vec<u64>`: the `record.signed` events of an event.
pub const SIGNATURES: &[u8] = b"es\0";

/// `ps\0<clinic>\0<patient>`: where a patient's summary is.
pub fn patient(clinic: &str, patient: &str) -> Vec<u8> {
    key(PATIENT, &[clinic.as_bytes(), patient.as_bytes()])
}

/// `pr\0<clinic>\0<practitioner>`: where a practitioner's summary is.
pub fn practitioner(clinic: &str, practitioner: &str) -> Vec<u8> {
    key(PRACTITIONER, &[clinic.as_bytes(), practitioner.as_bytes()])
}

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

/// The posting-list key that holds `seq` for an index entry.
pub fn posting(prefix: &[u8], parts: &[&[u8]], seq: u64) -> Vec<u8> {
    let mut k = index_prefix(prefix, parts);
    k.extend_from_slice(&(seq / BUCKET).to_be_bytes());
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

/// `<prefix><seq, BE>`.
pub fn by_seq(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `eid\0<uuid>` and friends.
pub fn by_uuid(prefix: &[u8], id: &Uuid) -> Vec<u8> {
    key(prefix, &[id.as_bytes()])
}

/// Days since the epoch of a time in ms (floor), for the occurred-day index.
pub fn day(millis: i64) -> i64 {
    millis.div_euclid(86_400_000)
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
    fn posting_buckets_sort_in_stream_order_under_their_entity() {
        let a = posting(BY_PATIENT, &[b"C", b"P"], 2);
        let b = posting(BY_PATIENT, &[b"C", b"P"], 2 + BUCKET);
        assert!(a < b);
        assert_eq!(a, posting(BY_PATIENT, &[b"C", b"P"], 3), "same bucket");
        assert!(b.starts_with(&index_prefix(BY_PATIENT, &[b"C", b"P"])));
        // P1's prefix does not take P10's keys.
        assert!(
            !posting(BY_PATIENT, &[b"C", b"P10"], 1)
                .starts_with(&index_prefix(BY_PATIENT, &[b"C", b"P1"]))
        );
        assert!(by_seq(SOURCED, 1) < by_seq(SOURCED, 256));
    }

    #[test]
    fn awaiting_keys_sort_by_deadline_and_read_back() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(awaiting(-10, &b) < awaiting(5, &a));
        assert_eq!(parse_awaiting(&awaiting(-10, &b)), Some((-10, b)));
        assert_eq!(parse_awaiting(b"aw\0short"), None);
    }

    #[test]
    fn times_sort_including_before_1970() {
        assert!(time_bytes(-5) < time_bytes(0));
        assert!(time_bytes(0) < time_bytes(1_700_000_000_000));
    }
}
