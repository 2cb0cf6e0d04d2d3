//! The event-id index: which sequence holds an event id, kept in sorted
//! blocks of ids, not one sled key per event.
//!
//! One key per event was half of every batch's sled writes (4,000 of
//! ~7,700 keys for 4,000 events), and sled's cost is per key written. A
//! block holds the ids from its floor up to the next block's floor; a
//! batch's ids (UUIDv7, nearly in order) mostly land in the last block,
//! so a batch writes a handful of keys; an id out of order (an edge's
//! events sourced late) rewrites the one block whose range holds it.
//!
//! Where blocks begin depends on the ids alone, never on how they were cut
//! into batches: an id begins a block when its hash is a multiple of
//! [`BLOCK_IDS`] (blocks of that many ids on average), and the first block
//! begins at the nil id. So a projector that crashed and resumed with other
//! batches writes the same keys and bytes as a rebuild (the digest).
//!
//! `eid\0<floor id>` → the `(id, seq)` pairs of the block, sorted by id,
//! each [`ENTRY`] bytes (16 of id, 8 of sequence, big-endian).

use std::{cell::RefCell, collections::BTreeMap};

use uuid::Uuid;

use crate::store::keys;

/// Bytes per entry: the id and its sequence (u64 BE).
pub const ENTRY: usize = 24;
/// Ids per block on average: ~6 KB, what a batch rewrites for an id that
/// lands in the middle of the index.
pub const BLOCK_IDS: u64 = 256;

/// Whether `id` begins a block: a hash of all its bits (splitmix64's
/// finalizer), so that ids of any shape, even sequential ones, spread.
fn begins_block(id: &Floor) -> bool {
    let mut x = u128::from_be_bytes(*id) as u64 ^ (u128::from_be_bytes(*id) >> 64) as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x.is_multiple_of(BLOCK_IDS)
}

type Floor = [u8; 16];

fn block_key(floor: &Floor) -> Vec<u8> {
    let mut key = keys::EVENT_ID.to_vec();
    key.extend_from_slice(floor);
    key
}

fn floor_of(key: &[u8]) -> Option<Floor> {
    key.strip_prefix(keys::EVENT_ID)?.try_into().ok()
}

/// The sequence of `id` in a block's entries.
fn find(entries: &[u8], id: &Floor) -> Option<u64> {
    let count = entries.len() / ENTRY;
    let (mut low, mut high) = (0, count);
    while low < high {
        let mid = (low + high) / 2;
        let entry = &entries[mid * ENTRY..(mid + 1) * ENTRY];
        match entry[..16].cmp(id.as_slice()) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => {
                return <[u8; 8]>::try_from(&entry[16..])
                    .ok()
                    .map(u64::from_be_bytes);
            }
        }
    }
    None
}

/// The block whose range holds `id`: its floor, the next block's floor,
/// and its entries (none yet: the first block, at the nil id, empty).
#[derive(Clone)]
struct Span {
    floor: Floor,
    upper: Option<Floor>,
    entries: sled::IVec,
}

impl Span {
    fn holds(&self, id: &Floor) -> bool {
        self.floor <= *id && self.upper.is_none_or(|u| *id < u)
    }
}

fn span(tree: &sled::Tree, id: &Floor) -> sled::Result<Span> {
    let key = block_key(id);
    let below = tree
        .range(keys::EVENT_ID.to_vec()..=key.clone())
        .next_back()
        .transpose()?;
    let above = tree
        .range(key..)
        .keys()
        .find(|k| !matches!(k, Ok(k) if floor_of(k) == Some(*id)))
        .transpose()?
        .and_then(|k| floor_of(&k));
    Ok(
        match below.and_then(|(k, entries)| Some((floor_of(&k)?, entries))) {
            Some((floor, entries)) => Span {
                floor,
                upper: above,
                entries,
            },
            None => Span {
                floor: [0; 16],
                upper: above,
                entries: sled::IVec::default(),
            },
        },
    )
}

/// The sequence that holds `id` in the committed index.
pub fn seq_of(tree: &sled::Tree, id: &Uuid) -> sled::Result<Option<u64>> {
    let id = *id.as_bytes();
    Ok(find(&span(tree, &id)?.entries, &id))
}

/// The index as one batch sees and changes it: the committed blocks it
/// looked in (kept: the next id most likely lands in the same one) and
/// the ids it adds.
#[derive(Default)]
pub struct IdIndex {
    seen: RefCell<Vec<Span>>,
    added: BTreeMap<Floor, u64>,
}

impl IdIndex {
    fn committed(&self, tree: &sled::Tree, id: &Floor) -> sled::Result<Span> {
        if let Some(found) = self.seen.borrow().iter().rev().find(|s| s.holds(id)) {
            return Ok(found.clone());
        }
        let found = span(tree, id)?;
        let mut seen = self.seen.borrow_mut();
        // Bounded: a batch's ids mostly share the last block.
        if seen.len() >= 64 {
            seen.remove(0);
        }
        seen.push(found.clone());
        Ok(found)
    }

    /// The sequence of `id`, this batch's additions included.
    pub fn seq_of(&self, tree: &sled::Tree, id: &Uuid) -> sled::Result<Option<u64>> {
        let id = *id.as_bytes();
        if let Some(seq) = self.added.get(&id) {
            return Ok(Some(*seq));
        }
        Ok(find(&self.committed(tree, &id)?.entries, &id))
    }

    /// Adds `id` at `seq` (the caller checked it is not there yet).
    pub fn add(&mut self, id: &Uuid, seq: u64) {
        self.added.insert(*id.as_bytes(), seq);
    }

    /// The blocks to write: each block the added ids land in, with them,
    /// cut where an id begins a block.
    pub fn into_writes(mut self, tree: &sled::Tree) -> sled::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut writes = Vec::new();
        let mut added = std::mem::take(&mut self.added).into_iter().peekable();
        while let Some((first, seq)) = added.next() {
            let span = self.committed(tree, &first)?;
            let mut fresh = vec![(first, seq)];
            while let Some((id, seq)) = added.next_if(|(id, _)| span.holds(id)) {
                fresh.push((id, seq));
            }
            let mut merged: Vec<(Floor, u64)> = span
                .entries
                .chunks_exact(ENTRY)
                .filter_map(|e| {
                    let id = Floor::try_from(&e[..16]).ok()?;
                    let seq = <[u8; 8]>::try_from(&e[16..]).ok().map(u64::from_be_bytes)?;
                    Some((id, seq))
                })
                .collect();
            merged.extend(fresh);
            merged.sort_unstable_by_key(|(id, _)| *id);
            let mut floor = span.floor;
            let mut bytes = Vec::with_capacity(merged.len() * ENTRY);
            for (id, seq) in merged {
                if id != floor && begins_block(&id) {
                    writes.push((block_key(&floor), std::mem::take(&mut bytes)));
                    floor = id;
                }
                bytes.extend_from_slice(&id);
                bytes.extend_from_slice(&seq.to_be_bytes());
            }
            writes.push((block_key(&floor), bytes));
        }
        Ok(writes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("t").unwrap()
    }

    /// Adds `ids` (sequences from 1) in batches of `batch`, checking each
    /// is new and then found; the tree's blocks.
    fn index_all(ids: &[Uuid], batch: usize) -> Vec<(sled::IVec, sled::IVec)> {
        let tree = tree();
        let mut seq = 0;
        for ids in ids.chunks(batch) {
            let mut index = IdIndex::default();
            for id in ids {
                seq += 1;
                assert_eq!(index.seq_of(&tree, id).unwrap(), None, "new id");
                index.add(id, seq);
                assert_eq!(index.seq_of(&tree, id).unwrap(), Some(seq));
            }
            for (k, v) in index.into_writes(&tree).unwrap() {
                tree.insert(k, v).unwrap();
            }
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(seq_of(&tree, id).unwrap(), Some(i as u64 + 1), "{i}");
        }
        assert_eq!(seq_of(&tree, &Uuid::now_v7()).unwrap(), None);
        assert_eq!(seq_of(&tree, &Uuid::from_u128(2)).unwrap(), None);
        tree.iter().collect::<Result<_, _>>().unwrap()
    }

    fn ids() -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = (0..5_000).map(|_| Uuid::now_v7()).collect();
        // Ids far out of order (an edge's events sourced late), ids below
        // every other, the nil id.
        ids.swap(10, 4_500);
        ids.swap(700, 4_999);
        ids.insert(1_500, Uuid::from_u128(1));
        ids.insert(2_000, Uuid::nil());
        ids.insert(3_000, Uuid::from_u128(u128::MAX));
        ids
    }

    #[test]
    fn ids_in_and_out_of_order_are_found_in_few_blocks_of_their_own_order() {
        let ids = ids();
        let blocks = index_all(&ids, 400);
        // ~256 ids per block on average.
        assert!(
            (5..=80).contains(&blocks.len()),
            "{} blocks for {} ids",
            blocks.len(),
            ids.len()
        );
        for (key, block) in &blocks {
            assert!(key.starts_with(keys::EVENT_ID));
            assert!(block.len().is_multiple_of(ENTRY));
            let sorted: Vec<_> = block.chunks(ENTRY).map(|e| &e[..16]).collect();
            assert!(sorted.is_sorted(), "entries sorted by id");
            assert!(sorted.first().is_none_or(|first| *first >= &key[4..]));
        }
    }

    #[test]
    fn the_blocks_do_not_depend_on_how_the_ids_were_cut_into_batches() {
        let ids = ids();
        let whole = index_all(&ids, ids.len());
        for batch in [1, 7, 400, 4_000] {
            assert!(index_all(&ids, batch) == whole, "batches of {batch}");
        }
    }

    #[test]
    fn sequential_ids_still_spread_over_blocks() {
        let ids: Vec<Uuid> = (0..3_000u128).map(|i| Uuid::from_u128(i << 64)).collect();
        let blocks = index_all(&ids, 500);
        assert!((3..=40).contains(&blocks.len()), "{}", blocks.len());
    }
}
