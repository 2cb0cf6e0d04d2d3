//! How stored event records are compressed: LZ4 (block format, the
//! uncompressed size first) with a fixed dictionary of one compact example
//! event of every type (`record.dict`), over a whole block of records
//! ([`crate::store::records`]).
//!
//! Events are small JSON documents that repeat the same field names, ids
//! and codes; the dictionary gives even a block's first record something
//! to refer to. The payload as published is what every reader gets back,
//! byte for byte (the hash chain and signatures are over it).
//!
//! `record.dict` is part of the read-model format: changing it makes every
//! stored record unreadable, so it changes only with
//! [`crate::store::READ_MODEL_FORMAT`] (and a rebuild).

/// The dictionary, frozen with the read-model format.
const DICTIONARY: &[u8] = include_bytes!("record.dict");

/// The most a compressed value may claim to hold: a block of
/// [`crate::store::keys::RECORDS_PER_BLOCK`] records, each at most NATS's largest
/// message (64 MiB, the most `max_payload` may be) with its subject and
/// framing. Only a damaged value claims more, and is refused before
/// anything is allocated for it.
const MAX_PAYLOAD: usize =
    crate::store::keys::RECORDS_PER_BLOCK as usize * ((64 << 20) + (64 << 10));

/// `raw` compressed.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size_with_dict(raw, DICTIONARY)
}

/// The payload `packed` holds.
pub fn decompress(packed: &[u8]) -> Result<Vec<u8>, String> {
    let claimed = packed
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or("a stored payload shorter than its size")?;
    if claimed as usize > MAX_PAYLOAD {
        return Err(format!("a stored payload claims {claimed} bytes"));
    }
    lz4_flex::block::decompress_size_prepended_with_dict(packed, DICTIONARY)
        .map_err(|e| format!("a stored payload does not decompress: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_comes_back_byte_for_byte_and_smaller() {
        let raw = br#"{"event_id":"01a2174c-7113-7219-a165-9c993c9767b8","event_type":"consent.given","schema_version":1,"clinic_id":"riverside","patient_id":"P-1042"}"#;
        let packed = compress(raw);
        assert!(
            packed.len() < raw.len() / 2,
            "{} of {}",
            packed.len(),
            raw.len()
        );
        assert_eq!(decompress(&packed).unwrap(), raw);
        assert_eq!(decompress(&compress(b"")).unwrap(), b"");
    }

    #[test]
    fn a_damaged_record_is_refused_without_a_huge_allocation() {
        let mut packed = compress(b"not json at all");
        packed[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decompress(&packed).unwrap_err().contains("claims"));
        assert!(decompress(&[1]).is_err());
    }
}
