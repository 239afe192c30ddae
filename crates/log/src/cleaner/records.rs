//! Record-level work on v2 batches, which the append and read paths never
//! need: decompressing a batch's records, walking them (offset delta, key,
//! whether the value is null), and writing a batch that keeps some of them
//! with their original offsets, timestamps and producer fields.
//!
//! ```text
//! record: length varint, attributes int8, timestampDelta varlong,
//!         offsetDelta varint, keyLength varint, key, valueLength varint,
//!         value, headers (count varint, then key/value pairs)
//! ```

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{self, BatchHeader, COMPRESSION_CODEC_MASK, HEADER_SIZE, LOG_OVERHEAD, TIMESTAMP_TYPE_MASK};

/// Kafka's `DELETE_HORIZON_FLAG_MASK` (KIP-534): the batch's base timestamp
/// field holds the time after which its tombstones and markers may go.
pub(crate) const DELETE_HORIZON_MASK: i16 = 0x40;

/// One record inside a batch's (decompressed) records section.
#[derive(Debug, Clone)]
pub(crate) struct RecordView {
    /// The whole record, length prefix included.
    pub bytes: Range<usize>,
    /// From the offset delta to the record's end (what follows the
    /// timestamp delta), for re-encoding with another timestamp delta.
    pub after_timestamp: Range<usize>,
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// `None` for a record without a key (keyLength -1).
    pub key: Option<Range<usize>>,
    /// `false` for a tombstone (valueLength -1).
    pub has_value: bool,
}

/// The records section of `batch` (a whole batch as stored), decompressed
/// into `out` when the batch is compressed. Returns the plain records.
pub(crate) fn plain_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    out: &'a mut Vec<u8>,
) -> Result<&'a [u8], String> {
    let records = &batch[HEADER_SIZE..];
    match header.compression_codec() {
        0 => Ok(records),
        codec => {
            out.clear();
            decompress(codec, records, out)?;
            Ok(out)
        }
    }
}

pub(crate) fn decompress(codec: i16, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut payload = Bytes::copy_from_slice(payload);
    let append = |buf: &mut Bytes| {
        out.extend_from_slice(buf);
        Ok(())
    };
    let result = match codec {
        1 => Gzip::decompress(&mut payload, append),
        2 => Snappy::decompress(&mut payload, append),
        3 => Lz4::decompress(&mut payload, append),
        4 => Zstd::decompress(&mut payload, append),
        other => return Err(format!("unknown compression codec {other}")),
    };
    result.map_err(|e| format!("cannot decompress a record batch: {e}"))
}

pub(crate) fn compress(codec: i16, plain: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut packed = BytesMut::with_capacity(plain.len() / 2 + 64);
    let write = |buf: &mut BytesMut| {
        buf.extend_from_slice(plain);
        Ok(())
    };
    let result = match codec {
        0 => {
            out.extend_from_slice(plain);
            return Ok(());
        }
        1 => Gzip::compress(&mut packed, write),
        2 => Snappy::compress(&mut packed, write),
        3 => Lz4::compress(&mut packed, write),
        4 => Zstd::compress(&mut packed, write),
        other => return Err(format!("unknown compression codec {other}")),
    };
    result.map_err(|e| format!("cannot compress a record batch: {e}"))?;
    out.extend_from_slice(&packed);
    Ok(())
}

/// Parses `count` records from `plain` into `out` (cleared first). Every
/// record must fit, and the records must fill `plain` exactly.
pub(crate) fn parse_records(plain: &[u8], count: i32, out: &mut Vec<RecordView>) -> Result<(), String> {
    out.clear();
    let mut pos = 0;
    for index in 0..count {
        let start = pos;
        let length = match batch::read_varint(plain, &mut pos) {
            Some(length) if length > 0 && length as usize <= plain.len() - pos => length as usize,
            _ => return Err(format!("record {index} has a malformed length")),
        };
        let end = pos + length;
        let record = &plain[..end];
        let attributes = record[pos];
        let mut at = pos + 1;
        let timestamp_delta = batch::read_varlong(record, &mut at).ok_or("truncated record")?;
        let after_timestamp = at..end;
        let offset_delta = batch::read_varint(record, &mut at).ok_or("truncated record")?;
        let key = read_bytes(record, &mut at).ok_or("truncated record key")?;
        let value = read_bytes(record, &mut at).ok_or("truncated record value")?;
        out.push(RecordView {
            bytes: start..end,
            after_timestamp,
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            has_value: value.is_some(),
        });
        pos = end;
    }
    if pos != plain.len() {
        return Err(format!(
            "{} bytes follow the last of {count} records",
            plain.len() - pos
        ));
    }
    Ok(())
}

/// A varint-length-prefixed byte field: `Some(None)` for length -1.
fn read_bytes(buf: &[u8], at: &mut usize) -> Option<Option<Range<usize>>> {
    let length = batch::read_varint(buf, at)?;
    if length < 0 {
        return Some(None);
    }
    let start = *at;
    let end = start.checked_add(length as usize).filter(|end| *end <= buf.len())?;
    *at = end;
    Some(Some(start..end))
}

/// Kafka's message for a record without a key in a compacted topic.
pub(crate) const KEYLESS_RECORD: &str = "Compacted topic cannot accept message without key";

/// Checks that every record of a compressed batch has a key (appends to a
/// compacted log; uncompressed batches are checked during validation's walk).
pub(crate) fn require_keys(batch: &[u8], header: &BatchHeader) -> Result<(), String> {
    let mut scratch = Vec::new();
    let plain = plain_records(batch, header, &mut scratch)?;
    let mut records = Vec::new();
    parse_records(plain, header.records_count, &mut records)?;
    match records.iter().all(|r| r.key.is_some()) {
        true => Ok(()),
        false => Err(KEYLESS_RECORD.to_string()),
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// What a rewritten batch keeps of its original.
pub(crate) struct Rewrite<'a> {
    pub header: &'a BatchHeader,
    pub plain: &'a [u8],
    pub kept: &'a [RecordView],
    /// `Some(horizon)`: the batch carries (or newly gets) a delete horizon.
    pub delete_horizon: Option<i64>,
}

/// Appends to `out` a batch holding only `kept` records: same base offset,
/// last offset delta, leader epoch, producer id, epoch and base sequence
/// (so the producer's state stays valid, as Kafka's cleaner keeps them),
/// records with their original offset deltas and absolute timestamps, in the
/// original codec. `scratch` is reused for the plain records.
pub(crate) fn write_batch(rewrite: &Rewrite, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), String> {
    let h = rewrite.header;
    let base_timestamp = rewrite.delete_horizon.unwrap_or(h.base_timestamp);
    scratch.clear();
    let mut max_timestamp = batch::NO_TIMESTAMP;
    for record in rewrite.kept {
        let timestamp = h.base_timestamp.wrapping_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if base_timestamp == h.base_timestamp {
            scratch.extend_from_slice(&rewrite.plain[record.bytes.clone()]);
            continue;
        }
        // The base timestamp now holds the delete horizon: keep the
        // record's absolute timestamp with a delta from it.
        let mut body = Vec::with_capacity(record.bytes.len() + 8);
        body.push(record.attributes);
        put_varint(&mut body, timestamp.wrapping_sub(base_timestamp));
        body.extend_from_slice(&rewrite.plain[record.after_timestamp.clone()]);
        put_varint(scratch, body.len() as i64);
        scratch.extend_from_slice(&body);
    }
    // Kafka's builder recomputes the max timestamp from the kept records;
    // LogAppendTime batches keep the append time.
    if h.attributes & TIMESTAMP_TYPE_MASK != 0 || rewrite.kept.is_empty() {
        max_timestamp = h.max_timestamp;
    }
    let mut attributes = h.attributes;
    if rewrite.delete_horizon.is_some() {
        attributes |= DELETE_HORIZON_MASK;
    }
    let start = out.len();
    write_header(
        out,
        h,
        attributes,
        base_timestamp,
        max_timestamp,
        rewrite.kept.len() as i32,
    );
    compress(h.attributes & COMPRESSION_CODEC_MASK, scratch, out)?;
    finish(&mut out[start..]);
    Ok(())
}

/// Appends Kafka's `writeEmptyHeader` batch: no records, uncompressed, no
/// base timestamp, but the original offsets, max timestamp and producer
/// fields, kept to preserve a producer's last sequence and epoch.
pub(crate) fn write_empty_batch(h: &BatchHeader, out: &mut Vec<u8>) {
    let start = out.len();
    let attributes = h.attributes & !COMPRESSION_CODEC_MASK & !DELETE_HORIZON_MASK;
    write_header(out, h, attributes, batch::NO_TIMESTAMP, h.max_timestamp, 0);
    finish(&mut out[start..]);
}

fn write_header(
    out: &mut Vec<u8>,
    h: &BatchHeader,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    records_count: i32,
) {
    out.extend_from_slice(&h.base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, in finish
    out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    out.push(batch::CURRENT_MAGIC as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, in finish
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&h.base_sequence.to_be_bytes());
    out.extend_from_slice(&records_count.to_be_bytes());
}

/// Fills in the batch length and CRC of a batch written in place.
fn finish(batch_bytes: &mut [u8]) {
    let length = (batch_bytes.len() - LOG_OVERHEAD) as i32;
    batch_bytes[batch::BATCH_LENGTH..batch::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = batch::compute_crc(batch_bytes);
    batch_bytes[batch::CRC..batch::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_encoder as encoder;

    #[test]
    fn walks_keys_values_and_offsets() {
        let b = encoder::batch(3, 4, 1000);
        let h = BatchHeader::parse(&b);
        let mut scratch = Vec::new();
        let plain = plain_records(&b, &h, &mut scratch).unwrap();
        let mut records = Vec::new();
        parse_records(plain, h.records_count, &mut records).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(&plain[records[2].key.clone().unwrap()], b"k2");
        assert_eq!((records[2].offset_delta, records[2].timestamp_delta), (2, 2));
        assert!(records.iter().all(|r| r.has_value));
        assert!(parse_records(&plain[..plain.len() - 1], 3, &mut records).is_err());
    }

    #[test]
    fn rewriting_keeps_offsets_timestamps_and_producer_fields() {
        let mut spec = encoder::BatchSpec::new(4, 8, 5000);
        spec.producer_id = 9;
        spec.producer_epoch = 2;
        spec.base_sequence = 40;
        let b = encoder::encode(&spec);
        let h = BatchHeader::parse(&b);
        let mut scratch = Vec::new();
        let plain = plain_records(&b, &h, &mut scratch).unwrap().to_vec();
        let mut records = Vec::new();
        parse_records(&plain, 4, &mut records).unwrap();
        let kept = vec![records[1].clone(), records[3].clone()];
        for horizon in [None, Some(9_999_999)] {
            let mut out = Vec::new();
            let rewrite = Rewrite {
                header: &h,
                plain: &plain,
                kept: &kept,
                delete_horizon: horizon,
            };
            write_batch(&rewrite, &mut out, &mut Vec::new()).unwrap();
            let n = BatchHeader::parse(&out);
            assert_eq!(n.size() as usize, out.len());
            assert_eq!(n.crc, batch::compute_crc(&out));
            assert_eq!(
                (n.base_offset, n.last_offset_delta, n.records_count),
                (h.base_offset, 3, 2)
            );
            assert_eq!((n.producer_id, n.producer_epoch, n.base_sequence), (9, 2, 40));
            assert_eq!(n.max_timestamp, 5003);
            assert_eq!(n.attributes & DELETE_HORIZON_MASK != 0, horizon.is_some());
            let mut again = Vec::new();
            parse_records(&out[HEADER_SIZE..], 2, &mut again).unwrap();
            let absolute: Vec<i64> = again.iter().map(|r| n.base_timestamp + r.timestamp_delta).collect();
            assert_eq!(absolute, [5001, 5003]);
            assert_eq!(again.iter().map(|r| r.offset_delta).collect::<Vec<_>>(), [1, 3]);
        }
    }

    #[test]
    fn every_codec_round_trips() {
        let plain: Vec<u8> = (0..5000u32).flat_map(|i| (i % 97).to_be_bytes()).collect();
        for codec in 0..=4 {
            let mut packed = Vec::new();
            compress(codec, &plain, &mut packed).unwrap();
            let mut back = Vec::new();
            if codec == 0 {
                back = packed;
            } else {
                decompress(codec, &packed, &mut back).unwrap();
            }
            assert_eq!(back, plain, "codec {codec}");
        }
    }

    #[test]
    fn empty_batches_keep_offsets_and_producer_state() {
        let mut spec = encoder::BatchSpec::new(3, 8, 5000);
        spec.producer_id = 4;
        spec.base_sequence = 7;
        spec.attributes = 1; // gzip claimed; the empty batch is uncompressed
        let b = encoder::encode(&spec);
        let h = BatchHeader::parse(&b);
        let mut out = Vec::new();
        write_empty_batch(&h, &mut out);
        let n = BatchHeader::parse(&out);
        assert_eq!(out.len(), HEADER_SIZE);
        assert_eq!((n.records_count, n.last_offset_delta, n.base_sequence), (0, 2, 7));
        assert_eq!(
            (n.compression_codec(), n.base_timestamp, n.max_timestamp),
            (0, -1, 5002)
        );
        assert_eq!(n.crc, batch::compute_crc(&out));
    }
}
