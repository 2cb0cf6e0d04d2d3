//! The sled database: one tree of read models, written in atomic batches
//! together with the last applied sequence, and a small status tree for
//! volatile facts (last verification, last checkpoint) that a rebuild
//! need not reproduce.
//!
//! - [`keys`]: the key layout, known only to the fold and to [`reads`];
//! - [`reads`]: the typed questions the read side may ask;
//! - [`records`]: events by sequence, in blocks compressed with
//!   [`payload_codec`]'s dictionary;
//! - [`event_ids`]: event id to sequence, in sorted blocks.

pub mod event_ids;
pub(crate) mod keys;
pub mod payload_codec;
pub mod reads;
pub mod records;

use std::{collections::BTreeMap, path::Path};

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

pub use self::reads::Index;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A value did not encode or decode.
    #[error("read model value at {key}: {message}")]
    Codec {
        /// The key, printable.
        key: String,
        /// What bincode said.
        message: String,
    },
    /// The database holds read models in an older layout: they are made
    /// again from the stream, never read with the wrong layout.
    #[error(
        "the read models are in format {found}, this version writes format {expected}: \
         rebuild them from the stream (`prolo-projector rebuild`, or move the database \
         aside and start again); the stream is untouched"
    )]
    OutdatedFormat {
        /// The format found (1: before formats were recorded).
        found: u32,
        /// The format this code writes.
        expected: u32,
    },
}

/// The layout of the read models this code writes. Raised when a value's
/// shape changes, so that an old database is rebuilt, not misread.
/// 2: signal counts per adverse-event kind.
/// 3: signal counts day by day over the rolling window.
/// 4: stored payloads compressed ([`crate::store::payload_codec`]); sourced
///    messages and clinic edges' chains; clinical entries typed by event type.
/// 5: event records kept in blocks of consecutive sequences
///    ([`crate::store::records`]).
/// 6: schema enums and dates, no longer strings: a practitioner's
///    credentials, an injection's side and guidance, an adverse event's
///    kind, status, outcome and its updates' causality.
/// 7: event ids kept in sorted blocks ([`crate::store::event_ids`]); a
///    practitioner's injections by day kept as rows ([`crate::model::DayInjection`]).
/// 8: a signal's dimension and the signal groups an injection or adverse
///    event is counted in typed ([`crate::rules::signals::Dimension`]).
/// 9: a clinical entry's tag typed ([`crate::model::ClinicalTag`]).
/// 10: voids of adverse events by lot and practitioner kept
///     ([`crate::store::keys::VOIDS`]) for `adverse_events_voided_together`.
pub const READ_MODEL_FORMAT: u32 = 10;

fn printable(key: &[u8]) -> String {
    key.iter()
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect()
}

/// Encodes a read-model value.
pub fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| {
        StoreError::Codec {
            key: printable(key),
            message: e.to_string(),
        }
    })
}

/// Decodes a read-model value.
pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| StoreError::Codec {
            key: printable(key),
            message: e.to_string(),
        })
}

/// A stored block of event records at `key`, decompressed.
fn unpack(key: &[u8], packed: &[u8]) -> Result<Vec<u8>, StoreError> {
    records::unpack(packed).map_err(|message| StoreError::Codec {
        key: printable(key),
        message,
    })
}

/// How long [`Store::open`] waits for the lock of a database this process
/// has just closed; another process holding it is refused after that.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The projector's database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    model: sled::Tree,
    status: sled::Tree,
}

impl Store {
    /// Opens (or creates) the database at `path`, with a page cache of
    /// `cache_bytes`: memory stays bounded however long the stream is.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput);
        // sled 0.34 releases its file lock only when its background writes
        // of a database just dropped have finished (its own tests block on
        // the lock for that reason), so a database closed and reopened at
        // once in this process can find it still held: wait a little.
        // sled says so only in the message of an `Io` error of kind Other.
        let give_up = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.to_string().starts_with("could not acquire lock")
                        && std::time::Instant::now() < give_up =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let model = db.open_tree("model")?;
        let status = db.open_tree("status")?;
        let found = match model.get(keys::FORMAT)? {
            Some(v) => <[u8; 4]>::try_from(v.as_ref()).map_or(0, u32::from_be_bytes),
            None if model.get(keys::APPLIED_SEQ)?.is_some() => 1,
            None => {
                model.insert(keys::FORMAT, &READ_MODEL_FORMAT.to_be_bytes())?;
                READ_MODEL_FORMAT
            }
        };
        if found != READ_MODEL_FORMAT {
            return Err(StoreError::OutdatedFormat {
                found,
                expected: READ_MODEL_FORMAT,
            });
        }
        Ok(Store { db, model, status })
    }

    /// The read-model tree (for queries).
    pub fn model(&self) -> &sled::Tree {
        &self.model
    }

    /// The last applied stream sequence (0 when empty).
    pub fn applied_seq(&self) -> Result<u64, StoreError> {
        self.number(keys::APPLIED_SEQ)
    }

    /// A number the fold keeps under `key` (big-endian; 0 when absent).
    fn number(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .model
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// A read-model value.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.model.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    /// The sequences listed under an index prefix, in stream order.
    pub fn seqs(&self, prefix: &[u8]) -> impl Iterator<Item = Result<u64, StoreError>> + '_ {
        self.model.scan_prefix(prefix).flat_map(|entry| {
            let bucket: Result<Vec<u64>, StoreError> = entry
                .map_err(StoreError::from)
                .and_then(|(key, value)| decode(&key, &value));
            match bucket {
                Ok(seqs) => seqs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        })
    }

    /// The message at `seq`, applied or quarantined.
    pub fn event(&self, seq: u64) -> Result<Option<crate::model::EventRecord>, StoreError> {
        self.record_reader().event(seq)
    }

    /// A reader of records in stream order (see [`RecordReader`]).
    pub fn record_reader(&self) -> RecordReader<'_> {
        RecordReader {
            store: self,
            block: None,
        }
    }

    /// A block of event records, decompressed.
    fn record_block(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.model
            .get(key)?
            .map(|packed| unpack(key, &packed))
            .transpose()
    }

    /// How many messages are stored (a sequence stored twice counts twice).
    pub fn record_count(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for entry in self.model.scan_prefix(keys::EVENT_BLOCK) {
            let (key, packed) = entry?;
            count += records::entries(&unpack(&key, &packed)?).count() as u64;
        }
        Ok(count)
    }

    /// Where the message at `seq` came from, when the hub sourced it from
    /// a clinic's edge.
    pub fn sourced(&self, seq: u64) -> Result<Option<crate::model::SourcedRecord>, StoreError> {
        self.get(&keys::by_seq(keys::SOURCED, seq))
    }

    /// The hash chain of every clinic edge sourced so far.
    pub fn edge_chains(&self) -> Result<Vec<crate::model::EdgeChain>, StoreError> {
        self.model
            .scan_prefix(keys::EDGE_CHAIN)
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    /// Messages quarantined so far.
    pub fn quarantined(&self) -> Result<u64, StoreError> {
        self.number(keys::QUARANTINE_COUNT)
    }

    /// The chain head: `chain[applied]` (genesis when empty).
    pub fn chain_head(&self) -> Result<[u8; 32], StoreError> {
        let applied = self.applied_seq()?;
        Ok(self
            .event(applied)?
            .map_or(crate::integrity::chain::GENESIS, |e| e.chain))
    }

    /// Commits a batch of folded events and the new applied sequence in one
    /// atomic batch, then flushes it to disk: only after this returns may
    /// the messages be acknowledged.
    pub async fn commit(&self, pending: Pending, applied_seq: u64) -> Result<(), StoreError> {
        let mut batch = pending.into_batch();
        batch.insert(keys::APPLIED_SEQ, &applied_seq.to_be_bytes());
        self.model.apply_batch(batch)?;
        self.model.flush_async().await?;
        Ok(())
    }

    /// Writes what a process beside the fold found (the scheduled
    /// verification's finding), without moving the applied sequence. Only
    /// for keys the fold never writes at the same time.
    pub async fn write(&self, pending: Pending) -> Result<(), StoreError> {
        self.model.apply_batch(pending.into_batch())?;
        self.model.flush_async().await?;
        Ok(())
    }

    /// SHA-256 over every key and value of the read models, in key order:
    /// two databases with the same digest hold the same read models.
    pub fn digest(&self) -> Result<[u8; 32], StoreError> {
        let mut hasher = Sha256::new();
        for entry in self.model.iter() {
            let (key, value) = entry?;
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(&key);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(&value);
        }
        Ok(hasher.finalize().into())
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// A volatile status value (not part of the digest).
    pub fn status_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.status
            .get(key)?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Sets a volatile status value.
    pub fn status_put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.status.insert(key, encode(key.as_bytes(), value)?)?;
        self.status.flush()?;
        Ok(())
    }

    /// Replaces a stored event record, outside the fold. Only for tests
    /// that must tamper with a stored event to show it is detected.
    #[doc(hidden)]
    pub fn tamper_event(&self, record: &crate::model::EventRecord) -> Result<bool, StoreError> {
        let key = records::block_key(record.seq);
        let Some(mut block) = self.record_block(&key)? else {
            return Ok(false);
        };
        if !records::replace(&mut block, record.seq, &encode(&key, record)?) {
            return Ok(false);
        }
        self.tamper(&key, &records::pack(&block))?;
        Ok(true)
    }

    /// Writes directly into the read models, outside the fold. Only for
    /// tests that must tamper with a stored value to show it is detected.
    #[doc(hidden)]
    pub fn tamper(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.model.insert(key, value)?;
        self.model.flush()?;
        Ok(())
    }
}

/// Reads event records one after another, decompressing each block once:
/// a verify reads every record, and one block holds
/// [`keys::RECORDS_PER_BLOCK`].
pub struct RecordReader<'s> {
    store: &'s Store,
    /// The block read last: its key and its records, decompressed.
    block: Option<(Vec<u8>, Vec<u8>)>,
}

impl RecordReader<'_> {
    /// The message at `seq`, applied or quarantined.
    pub fn event(&mut self, seq: u64) -> Result<Option<crate::model::EventRecord>, StoreError> {
        let key = records::block_key(seq);
        if !matches!(&self.block, Some((held, _)) if *held == key) {
            self.block = self
                .store
                .record_block(&key)?
                .map(|block| (key.clone(), block));
        }
        match &self.block {
            Some((_, block)) => record_in(&key, block, seq),
            None => Ok(None),
        }
    }
}

/// The record of `seq` in the decompressed block at `key`.
fn record_in(
    key: &[u8],
    block: &[u8],
    seq: u64,
) -> Result<Option<crate::model::EventRecord>, StoreError> {
    records::find(block, seq)
        .map(|record| decode(key, record))
        .transpose()
}

/// The writes (and removals) of one batch, read back before they are committed.
#[derive(Default)]
pub struct Pending {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Blocks of event records this batch appends to, uncompressed until
    /// committed ([`crate::store::records`]).
    blocks: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Pending {
    /// The sled batch: every write, each block of records compressed once.
    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in self.writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        for (key, block) in self.blocks {
            batch.insert(key, records::pack(&block));
        }
        batch
    }

    /// A value as it will be after the batch: pending first, then the store.
    pub fn get<T: DeserializeOwned>(
        &self,
        store: &Store,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.writes.get(key) {
            Some(Some(bytes)) => decode(key, bytes).map(Some),
            Some(None) => Ok(None),
            None => store.get(key),
        }
    }

    /// Keeps the record of a message, appended to its block (loaded from
    /// the store the first time the batch touches it).
    pub fn put_record(
        &mut self,
        store: &Store,
        record: &crate::model::EventRecord,
    ) -> Result<(), StoreError> {
        let key = records::block_key(record.seq);
        let encoded = encode(&key, record)?;
        let block = match self.blocks.entry(key) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let stored = store.record_block(entry.key())?.unwrap_or_default();
                entry.insert(stored)
            }
        };
        records::append(block, record.seq, &encoded);
        Ok(())
    }

    /// The record of the message at `seq` as it will be after the batch.
    pub fn record(
        &self,
        store: &Store,
        seq: u64,
    ) -> Result<Option<crate::model::EventRecord>, StoreError> {
        let key = records::block_key(seq);
        match self.blocks.get(&key) {
            Some(block) => record_in(&key, block, seq),
            None => store.event(seq),
        }
    }

    /// Sets a value.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), StoreError> {
        let bytes = encode(&key, value)?;
        self.writes.insert(key, Some(bytes));
        Ok(())
    }

    /// Sets every value of a batch-local cache.
    pub fn put_all<T: Serialize>(
        &mut self,
        values: BTreeMap<Vec<u8>, T>,
    ) -> Result<(), StoreError> {
        for (key, value) in values {
            self.put(key, &value)?;
        }
        Ok(())
    }

    /// Sets raw bytes (index entries use an empty value).
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Removes a key (only keys that mark a passing state, such as an
    /// adverse event awaiting its follow-up: recorded facts are never removed).
    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The keys from `from` (inclusive) to `to` (exclusive), in order, as
    /// they will be after the batch; at most `limit`.
    pub fn keys_in(
        &self,
        store: &Store,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stored = store.model.range(from..to).keys();
        let mut next_stored = stored.next().transpose()?.map(|k| k.to_vec());
        let mut pending = self.writes.range(from.to_vec()..to.to_vec());
        let mut next_pending = pending.next();
        let mut keys = Vec::new();
        while keys.len() < limit {
            match (next_stored.clone(), next_pending) {
                (None, None) => break,
                // Pending first: it overrides (or removes) the stored key.
                (Some(s), Some((p, v))) if *p <= s => {
                    if *p == s {
                        next_stored = stored.next().transpose()?.map(|k| k.to_vec());
                    }
                    if v.is_some() {
                        keys.push(p.clone());
                    }
                    next_pending = pending.next();
                }
                (Some(s), _) => {
                    keys.push(s);
                    next_stored = stored.next().transpose()?.map(|k| k.to_vec());
                }
                (None, Some((p, v))) => {
                    if v.is_some() {
                        keys.push(p.clone());
                    }
                    next_pending = pending.next();
                }
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(seq: u64) -> crate::model::EventRecord {
        crate::model::EventRecord {
            seq,
            subject: format!("clinic.c.patient.p{seq}.exam"),
            raw: format!("{{\"n\":{seq}}}").into_bytes(),
            chain: [u8::try_from(seq % 256).unwrap(); 32],
            stored_at_ms: i64::try_from(seq).unwrap(),
            quarantine: None,
        }
    }

    #[tokio::test]
    async fn records_appended_over_batches_read_back_through_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sled"), 1 << 20).unwrap();
        let per_block = keys::RECORDS_PER_BLOCK;
        // Two batches, the second going on in the block the first ended in.
        let (first_end, last) = (per_block + 5, 3 * per_block + 2);
        for (from, to) in [(1, first_end), (first_end + 1, last)] {
            let mut pending = Pending::default();
            for seq in from..=to {
                pending.put_record(&store, &record(seq)).unwrap();
            }
            // Read back before the commit, from the batch.
            assert_eq!(pending.record(&store, to).unwrap(), Some(record(to)));
            store.commit(pending, to).await.unwrap();
        }
        assert_eq!(store.record_count().unwrap(), last);
        let mut reader = store.record_reader();
        for seq in 1..=last {
            assert_eq!(reader.event(seq).unwrap(), Some(record(seq)), "seq {seq}");
            assert_eq!(store.event(seq).unwrap(), Some(record(seq)));
        }
        assert_eq!(reader.event(2).unwrap(), Some(record(2)), "back again");
        assert_eq!(reader.event(last + 1).unwrap(), None);
        assert_eq!(reader.event(0).unwrap(), None);
        assert_eq!(store.event(last + 100).unwrap(), None);
    }

    #[tokio::test]
    async fn a_block_of_messages_as_large_as_nats_allows_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sled"), 1 << 20).unwrap();
        // Quarantined garbage of 2 MiB each (a server may allow up to 64 MiB):
        // the block holds more than any one message.
        let mut state = 1u64;
        let mut noise = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    (state >> 56) as u8
                })
                .collect()
        };
        let mut pending = Pending::default();
        // One whole block: its sequences share a key.
        let per_block = keys::RECORDS_PER_BLOCK;
        let records: Vec<_> = (per_block..2 * per_block)
            .map(|seq| crate::model::EventRecord {
                raw: noise(2 << 20),
                quarantine: Some("does not satisfy the contract".into()),
                ..record(seq)
            })
            .collect();
        for r in &records {
            pending.put_record(&store, r).unwrap();
        }
        store.commit(pending, 2 * per_block - 1).await.unwrap();
        assert_eq!(
            records::block_key(per_block),
            records::block_key(2 * per_block - 1)
        );
        for r in &records {
            assert_eq!(store.event(r.seq).unwrap().as_ref(), Some(r));
        }
    }

    #[tokio::test]
    async fn keys_in_a_range_are_read_as_after_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sled"), 1 << 20).unwrap();
        let mut first = Pending::default();
        for k in ["k-a", "k-c", "k-e"] {
            first.put_raw(k.as_bytes().to_vec(), Vec::new());
        }
        store.commit(first, 1).await.unwrap();
        let mut pending = Pending::default();
        pending.put_raw(b"k-b".to_vec(), Vec::new());
        pending.remove(b"k-c".to_vec());
        pending.put_raw(b"k-f".to_vec(), Vec::new());
        pending.put_raw(b"k-e".to_vec(), vec![1]);
        let keys = |limit| {
            pending
                .keys_in(&store, b"k-", b"k.", limit)
                .unwrap()
                .into_iter()
                .map(|k| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(10), ["k-a", "k-b", "k-e", "k-f"]);
        assert_eq!(keys(2), ["k-a", "k-b"]);
        store.commit(pending, 2).await.unwrap();
        assert_eq!(store.model().get(b"k-c").unwrap(), None);
        assert!(store.model().get(b"k-f").unwrap().is_some());
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn a_database_of_an_older_layout_is_refused_and_a_new_one_is_marked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fresh = dir.path().join("fresh");
        drop(Store::open(&fresh, 1 << 20).unwrap_or_else(|e| panic!("{e}")));
        assert!(
            Store::open(&fresh, 1 << 20).is_ok(),
            "a new database is marked and reopens"
        );

        // A database folded before formats were recorded: applied, unmarked.
        let old = dir.path().join("old");
        {
            let db = sled::open(&old).unwrap_or_else(|e| panic!("{e}"));
            let model = db.open_tree("model").unwrap_or_else(|e| panic!("{e}"));
            model
                .insert(keys::APPLIED_SEQ, &7u64.to_be_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            db.flush().unwrap_or_else(|e| panic!("{e}"));
        }
        match Store::open(&old, 1 << 20) {
            Err(StoreError::OutdatedFormat { found, expected }) => {
                assert_eq!((found, expected), (1, READ_MODEL_FORMAT));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an old layout was opened"),
        }
    }
}
