//! Validation of produced record batches and offset assignment, following
//! Kafka's `UnifiedLog.analyzeAndValidateRecords` and `LogValidator`, done on
//! the batch headers and, for uncompressed batches, a walk over the record
//! framing that decodes nothing and allocates nothing.

use crate::batch::{self, BatchHeader, COMPRESSION_CODEC_MASK, HEADER_SIZE, NO_TIMESTAMP, TIMESTAMP_TYPE_MASK};
use crate::producer_state::AppendOrigin;
use crate::{LogConfig, LogError, Result, TimestampType};

/// Compression codecs Kafka defines: none, gzip, snappy, lz4, zstd.
const MAX_COMPRESSION_CODEC: i16 = 4;

/// One batch of an append that passed validation, and what offset
/// assignment will write into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValidatedBatch {
    /// Where the batch starts in the append's buffer.
    pub start: usize,
    pub size: usize,
    pub records_count: i32,
    /// The attributes to store (the timestamp type bit follows the topic's
    /// `message.timestamp.type`).
    pub attributes: i16,
    /// The max timestamp to store: the records' max for CreateTime, the log
    /// append time for LogAppendTime.
    pub max_timestamp: i64,
    /// The offset delta of the first record holding `max_timestamp`, exact
    /// for uncompressed batches; 0 for compressed ones, which we do not
    /// decompress (a consumer seeking there still receives that record).
    pub max_timestamp_offset_delta: i32,
    /// The idempotent producer's fields, for the producer state checks.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Validates every batch in `buf` into `out` (cleared first). Nothing is
/// modified, so a refusal leaves the caller's bytes and the log untouched.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn validate(buf: &[u8], config: &LogConfig, now_ms: i64, out: &mut Vec<ValidatedBatch>) -> Result<()> {
    validate_from(buf, config, now_ms, out, AppendOrigin::Client)
}

/// [`validate`] for an append from `origin`: the broker's coordinators may
/// write batches with a producer id but no sequence.
pub(crate) fn validate_from(
    buf: &[u8],
    config: &LogConfig,
    now_ms: i64,
    out: &mut Vec<ValidatedBatch>,
    origin: AppendOrigin,
) -> Result<()> {
    out.clear();
    if buf.is_empty() {
        return Err(LogError::InvalidRecord(
            "an append must hold at least one record batch".into(),
        ));
    }
    let mut start = 0;
    while start < buf.len() {
        let rest = &buf[start..];
        if rest.len() < HEADER_SIZE {
            return Err(LogError::CorruptMessage(format!(
                "truncated batch: {} trailing bytes are fewer than a batch header ({HEADER_SIZE})",
                rest.len()
            )));
        }
        let header = BatchHeader::parse(rest);
        if let Some(why) = header.framing_error(rest.len()) {
            return Err(LogError::CorruptMessage(why));
        }
        let size = header.size() as usize;
        let validated = validate_batch(&rest[..size], &header, config, now_ms, origin)?;
        out.push(ValidatedBatch { start, ..validated });
        start += size;
    }
    Ok(())
}

fn validate_batch(
    bytes: &[u8],
    header: &BatchHeader,
    config: &LogConfig,
    now_ms: i64,
    origin: AppendOrigin,
) -> Result<ValidatedBatch> {
    if bytes.len() > config.max_message_bytes {
        return Err(LogError::MessageTooLarge {
            size: bytes.len(),
            max: config.max_message_bytes,
        });
    }
    let computed = batch::compute_crc(bytes);
    if computed != header.crc {
        return Err(LogError::CorruptMessage(format!(
            "CRC mismatch: stored {:#010x}, computed {computed:#010x}",
            header.crc
        )));
    }
    if header.records_count <= 0 {
        return Err(LogError::InvalidRecord(format!(
            "invalid record count {}",
            header.records_count
        )));
    }
    if header.last_offset_delta < 0 || header.last_offset_delta as i64 + 1 != header.records_count as i64 {
        return Err(LogError::InvalidRecord(format!(
            "inconsistent last offset delta {} and record count {}",
            header.last_offset_delta, header.records_count
        )));
    }
    let (producer_id, base_sequence) = (header.producer_id, header.base_sequence);
    // Markers come from the transaction coordinator (`Log::append_marker`).
    if header.is_control() && origin == AppendOrigin::Client {
        return Err(LogError::InvalidRecord(
            "clients are not allowed to write control records".into(),
        ));
    }
    let coordinator_without_sequence =
        origin == AppendOrigin::Coordinator && base_sequence == crate::producer_state::NO_SEQUENCE;
    if producer_id >= 0 && base_sequence < 0 && !coordinator_without_sequence {
        return Err(LogError::InvalidRecord(format!(
            "invalid base sequence {base_sequence} for producer id {producer_id}"
        )));
    }
    let codec = header.compression_codec();
    if codec > MAX_COMPRESSION_CODEC {
        return Err(LogError::CorruptMessage(format!("unknown compression codec {codec}")));
    }
    let bounds = TimestampBounds::new(config, now_ms);
    // Kafka's LogValidator: a compacted topic refuses records without a key.
    let require_keys = config.compact && !header.is_control();
    let (max_timestamp, max_timestamp_offset_delta) = if codec == 0 {
        walk_records(&bytes[HEADER_SIZE..], header, &bounds, require_keys)?
    } else {
        if require_keys {
            // Only compacted topics pay for decompressing on append.
            crate::cleaner::records::require_keys(bytes, header).map_err(LogError::InvalidRecord)?;
        }
        bounds.check(header.base_timestamp)?;
        bounds.check(header.max_timestamp)?;
        (header.max_timestamp, 0)
    };
    let (attributes, max_timestamp, max_timestamp_offset_delta) = match config.message_timestamp_type {
        TimestampType::CreateTime => (
            header.attributes & !TIMESTAMP_TYPE_MASK,
            max_timestamp,
            max_timestamp_offset_delta,
        ),
        TimestampType::LogAppendTime => (header.attributes | TIMESTAMP_TYPE_MASK, now_ms, 0),
    };
    debug_assert_eq!(attributes & COMPRESSION_CODEC_MASK, codec);
    Ok(ValidatedBatch {
        start: 0,
        size: bytes.len(),
        records_count: header.records_count,
        attributes,
        max_timestamp,
        max_timestamp_offset_delta,
        producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence,
    })
}

/// `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937), enforced
/// only for CreateTime and never on records without a timestamp.
struct TimestampBounds {
    enforced: bool,
    earliest: i64,
    latest: i64,
    now_ms: i64,
}

impl TimestampBounds {
    fn new(config: &LogConfig, now_ms: i64) -> TimestampBounds {
        TimestampBounds {
            enforced: config.message_timestamp_type == TimestampType::CreateTime,
            earliest: now_ms.saturating_sub(config.message_timestamp_before_max_ms),
            latest: now_ms.saturating_add(config.message_timestamp_after_max_ms),
            now_ms,
        }
    }

    fn check(&self, timestamp: i64) -> Result<()> {
        if !self.enforced || timestamp == NO_TIMESTAMP || (self.earliest..=self.latest).contains(&timestamp) {
            return Ok(());
        }
        Err(LogError::InvalidTimestamp(format!(
            "timestamp {timestamp} is out of range [{}, {}] around the broker's time {}",
            self.earliest, self.latest, self.now_ms
        )))
    }
}

/// Walks an uncompressed batch's records by their length prefixes, checking
/// that exactly `records_count` records fill the batch with dense offset
/// deltas, and checking each record's timestamp (and, for compacted logs,
/// that it has a key). Returns the records' max timestamp and the offset
/// delta of the first record holding it.
fn walk_records(
    records: &[u8],
    header: &BatchHeader,
    bounds: &TimestampBounds,
    require_keys: bool,
) -> Result<(i64, i32)> {
    let invalid = |what: String| Err(LogError::InvalidRecord(what));
    let mut pos = 0;
    let mut max = (NO_TIMESTAMP, 0);
    for index in 0..header.records_count {
        if pos >= records.len() {
            return invalid(format!(
                "batch holds {index} records but its header claims {}",
                header.records_count
            ));
        }
        let length = match batch::read_varint(records, &mut pos) {
            Some(length) if length > 0 && length as usize <= records.len() - pos => length as usize,
            _ => return invalid(format!("record {index} has a malformed length")),
        };
        let record = &records[pos..pos + length];
        // attributes: int8, timestampDelta: varlong, offsetDelta: varint, ...
        let mut at = 1;
        let (Some(timestamp_delta), Some(offset_delta)) = (
            batch::read_varlong(record, &mut at),
            batch::read_varint(record, &mut at),
        ) else {
            return invalid(format!("record {index} is truncated"));
        };
        if offset_delta != index {
            return invalid(format!("record {index} has offset delta {offset_delta}"));
        }
        if require_keys && batch::read_varint(record, &mut at).is_none_or(|key_length| key_length < 0) {
            return invalid(crate::cleaner::records::KEYLESS_RECORD.to_string());
        }
        let timestamp = header.base_timestamp.wrapping_add(timestamp_delta);
        bounds.check(timestamp)?;
        if timestamp > max.0 {
            max = (timestamp, offset_delta);
        }
        pos += length;
    }
    if pos != records.len() {
        return invalid(format!(
            "{} bytes follow the last of the {} records the header claims",
            records.len() - pos,
            header.records_count
        ));
    }
    Ok(max)
}

/// Assigns offsets from `first_offset` (rewriting each batch's base offset),
/// stamps the partition leader epoch (neither is covered by the CRC), and
/// stores the timestamp fields, recomputing the CRC only if they changed.
/// Returns the next offset after the last batch.
/// Returns the batches' rewritten headers, one after the other: the records
/// after each header are left in `buf` and stored from there.
pub(crate) fn assign_offsets(buf: &[u8], batches: &[ValidatedBatch], first_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut headers = Vec::with_capacity(batches.len() * HEADER_SIZE);
    let mut next_offset = first_offset;
    for b in batches {
        let (header, records) = buf[b.start..b.start + b.size].split_at(HEADER_SIZE);
        let start = headers.len();
        headers.extend_from_slice(header);
        let header = &mut headers[start..];
        batch::set_base_offset(header, next_offset);
        batch::set_partition_leader_epoch(header, leader_epoch);
        batch::set_max_timestamp(header, records, b.attributes, b.max_timestamp);
        next_offset += b.records_count as i64;
    }
    headers
}

/// The stored form of `buf`'s batches: each rewritten header from `headers`
/// (as [`assign_offsets`] left them) followed by the batch's records as received.
pub(crate) fn stored_parts<'a>(buf: &'a [u8], batches: &[ValidatedBatch], headers: &'a [u8]) -> Vec<&'a [u8]> {
    batches
        .iter()
        .zip(headers.chunks_exact(HEADER_SIZE))
        .flat_map(|(b, header)| [header, &buf[b.start + HEADER_SIZE..b.start + b.size]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_encoder as encoder;

    const NOW: i64 = 1_700_000_000_000;

    /// The bytes an append stores for `buf`.
    fn stored(buf: &[u8], batches: &[ValidatedBatch], first_offset: i64, leader_epoch: i32) -> Vec<u8> {
        let headers = assign_offsets(buf, batches, first_offset, leader_epoch);
        stored_parts(buf, batches, &headers).concat()
    }

    #[test]
    fn uncompressed_batches_get_the_records_max_timestamp() {
        let mut spec = encoder::BatchSpec::new(3, 10, NOW);
        spec.timestamps = vec![NOW + 5, NOW + 9, NOW + 2];
        let mut b = encoder::encode(&spec);
        // A producer that wrote a wrong max timestamp into the header.
        b[35..43].copy_from_slice(&(NOW + 1).to_be_bytes());
        encoder::fix_crc(&mut b);
        let mut out = Vec::new();
        validate(&b, &LogConfig::default(), NOW, &mut out).unwrap();
        assert_eq!(out[0].max_timestamp, NOW + 9);
        assert_eq!((out[0].start, out[0].size, out[0].records_count), (0, b.len(), 3));
        let b = stored(&b, &out, 100, 4);
        let h = BatchHeader::parse(&b);
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.max_timestamp),
            (100, 4, NOW + 9)
        );
        assert_eq!(
            h.crc,
            batch::compute_crc(&b),
            "the CRC follows the corrected max timestamp"
        );
    }

    #[test]
    fn log_append_time_sets_the_type_bit_and_skips_timestamp_checks() {
        let config = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let b = encoder::batch(2, 10, 0);
        let mut out = Vec::new();
        validate(&b, &config, NOW, &mut out).unwrap();
        assert_eq!(
            (out[0].max_timestamp, out[0].attributes & TIMESTAMP_TYPE_MASK),
            (NOW, TIMESTAMP_TYPE_MASK)
        );
        let b = stored(&b, &out, 7, 0);
        assert_eq!(BatchHeader::parse(&b).crc, batch::compute_crc(&b));
    }

    #[test]
    fn several_batches_are_found_in_order() {
        let b = [
            encoder::batch(2, 5, NOW),
            encoder::batch(1, 50, NOW),
            encoder::batch(4, 0, NOW),
        ]
        .concat();
        let mut out = Vec::new();
        validate(&b, &LogConfig::default(), NOW, &mut out).unwrap();
        let counts: Vec<i32> = out.iter().map(|v| v.records_count).collect();
        assert_eq!(counts, [2, 1, 4]);
        assert_eq!(out[2].start + out[2].size, b.len());
        // Stored, each batch keeps its records and gets its own offsets.
        let stored = stored(&b, &out, 10, 3);
        assert_eq!(stored.len(), b.len());
        for (v, base_offset) in out.iter().zip([10, 12, 13]) {
            let batch = &stored[v.start..v.start + v.size];
            let h = BatchHeader::parse(batch);
            assert_eq!((h.base_offset, h.partition_leader_epoch), (base_offset, 3));
            assert_eq!(h.crc, batch::compute_crc(batch));
            assert_eq!(batch[HEADER_SIZE..], b[v.start + HEADER_SIZE..v.start + v.size]);
        }
    }
}
