//! Event records kept in blocks of [`keys::RECORDS_PER_BLOCK`] consecutive
//! sequences: one sled key per block, not per event.
//!
//! sled's cost is per key written (each insert copies and re-logs its
//! node), and one record per sequence was a third of the fold's time.
//! A block is the records' encodings one after another, each framed by its
//! sequence (u64 BE) and length (u32 BE), in stream order; a batch appends
//! to the block it ends in and the next batch goes on appending there, so a
//! block is complete once the stream has passed it. A block is stored
//! compressed whole ([`pack`]); reading one record decompresses its block,
//! walks the frames and decodes that record only.

use super::{keys, payload_codec};

/// A block as stored: compressed whole (records of one stream are alike,
/// so a block compresses far better than each record alone).
pub fn pack(block: &[u8]) -> Vec<u8> {
    payload_codec::compress(block)
}

/// A stored block, decompressed; why not when it is damaged.
pub fn unpack(packed: &[u8]) -> Result<Vec<u8>, String> {
    payload_codec::decompress(packed)
}

/// Bytes before each record: its sequence and its length.
const FRAME: usize = 12;

/// Where the record of `seq` is kept: `evb\0<seq / RECORDS_PER_BLOCK, BE>`.
pub fn block_key(seq: u64) -> Vec<u8> {
    keys::by_seq(keys::EVENT_BLOCK, seq / keys::RECORDS_PER_BLOCK)
}

/// Appends the encoded record of `seq` to its block.
pub fn append(block: &mut Vec<u8>, seq: u64, record: &[u8]) {
    block.reserve(FRAME + record.len());
    block.extend_from_slice(&seq.to_be_bytes());
    // A record is far below 4 GiB (a message is at most the server's
    // max_payload: 1 MiB by default, 64 MiB at most).
    block.extend_from_slice(
        &u32::try_from(record.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    block.extend_from_slice(record);
}

/// Replaces the encoded record of `seq` in its block (only for tests that
/// tamper with a stored record to show it is detected); `false` if absent.
pub fn replace(block: &mut Vec<u8>, seq: u64, record: &[u8]) -> bool {
    let mut rebuilt = Vec::with_capacity(block.len());
    let mut found = false;
    for (s, r) in entries(block) {
        if s == seq {
            found = true;
            append(&mut rebuilt, s, record);
        } else {
            append(&mut rebuilt, s, r);
        }
    }
    *block = rebuilt;
    found
}

/// The encoded record of `seq` in its block.
pub fn find(block: &[u8], seq: u64) -> Option<&[u8]> {
    entries(block).find(|(s, _)| *s == seq).map(|(_, r)| r)
}

/// Every `(sequence, encoded record)` of a block, in stream order. A
/// truncated frame ends the walk (sled writes a block whole or not at all).
pub fn entries(block: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = block;
    std::iter::from_fn(move || {
        let seq = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let len = u32::from_be_bytes(rest.get(8..FRAME)?.try_into().ok()?) as usize;
        let record = rest.get(FRAME..FRAME + len)?;
        rest = &rest[FRAME + len..];
        Some((seq, record))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_by_sequence_and_walked_in_order() {
        let mut block = Vec::new();
        append(&mut block, 64, b"first");
        append(&mut block, 65, b"");
        append(&mut block, 66, b"third record");
        assert_eq!(find(&block, 64), Some(&b"first"[..]));
        assert_eq!(find(&block, 65), Some(&b""[..]));
        assert_eq!(find(&block, 66), Some(&b"third record"[..]));
        assert_eq!(find(&block, 67), None);
        let seqs: Vec<u64> = entries(&block).map(|(s, _)| s).collect();
        assert_eq!(seqs, [64, 65, 66]);
        assert!(replace(&mut block, 65, b"changed"));
        assert_eq!(find(&block, 65), Some(&b"changed"[..]));
        assert_eq!(find(&block, 66), Some(&b"third record"[..]));
        assert!(!replace(&mut block, 9, b"x"));
    }

    #[test]
    fn a_truncated_block_yields_its_whole_records_only() {
        let mut block = Vec::new();
        append(&mut block, 1, b"whole");
        append(&mut block, 2, b"cut short");
        block.truncate(block.len() - 3);
        assert_eq!(entries(&block).count(), 1);
        assert_eq!(find(&block, 2), None);
    }

    #[test]
    fn consecutive_sequences_share_a_block() {
        let n = keys::RECORDS_PER_BLOCK;
        assert_eq!(block_key(n), block_key(2 * n - 1));
        assert_ne!(block_key(n - 1), block_key(n));
        assert!(block_key(n - 1) < block_key(n));
    }
}
