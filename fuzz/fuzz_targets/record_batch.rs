//! Record batch validation and append on a partition log, then reading back.
//!
//! The first input byte picks options; the rest is what a Produce request
//! carries for one partition. A fresh log on simulated storage per input:
//! an append either fails and leaves the log and the caller's bytes as they
//! were, or succeeds, and then reading returns the appended batches with
//! only their header rewritten (offsets assigned, valid CRCs), and so does
//! the log recovered after a power cut.
#![no_main]

use std::path::Path;

use gregor_log::{Log, LogConfig, SimStorage, TimestampType};
use libfuzzer_sys::fuzz_target;

/// Recompute each batch's CRC32C: a random CRC almost never matches, and
/// everything past the CRC check would stay unexplored.
const FIX_CRCS: u8 = 1;
/// Take "now" from the first batch's base timestamp, so batches captured at
/// any time pass the timestamp bounds; otherwise a fixed clock.
const NOW_FROM_BATCH: u8 = 1 << 1;
const COMPACTED: u8 = 1 << 2;
const LOG_APPEND_TIME: u8 = 1 << 3;
/// A tiny `max.message.bytes` and index interval, to reach those limits.
const SMALL_LIMITS: u8 = 1 << 4;

const FIXED_NOW_MS: i64 = 1_700_000_000_000;

// Offsets in a v2 record batch header (Kafka's DefaultRecordBatch).
const LENGTH_OFFSET: usize = 8;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
/// The base offset and length fields, not counted in the batch length.
const LOG_OVERHEAD: usize = 12;

fn fix_crcs(batches: &mut [u8]) {
    let mut start = 0;
    while batches.len() - start > ATTRIBUTES_OFFSET {
        let field = &batches[start + LENGTH_OFFSET..start + LENGTH_OFFSET + 4];
        let length = i32::from_be_bytes(field.try_into().expect("4 bytes"));
        let Some(end) = usize::try_from(length)
            .ok()
            .and_then(|length| (start + LOG_OVERHEAD).checked_add(length))
            .filter(|end| *end <= batches.len() && *end > start + ATTRIBUTES_OFFSET)
        else {
            return;
        };
        let crc = crc32c::crc32c(&batches[start + ATTRIBUTES_OFFSET..end]);
        batches[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        start = end;
    }
}

/// `stored` is `received` as the log keeps it: batch for batch the same
/// size, records and CRC-covered fields (but the timestamp fields a
/// LogAppendTime topic or a corrected max timestamp rewrites), offsets dense
/// from 0, and a CRC that matches.
fn assert_stored(stored: &[u8], received: &[u8]) {
    assert_eq!(stored.len(), received.len(), "the appended batches are all stored");
    let (mut position, mut next_offset) = (0, 0i64);
    while position < stored.len() {
        let field = |bytes: &[u8], at: usize, len: usize| bytes[position + at..position + at + len].to_vec();
        let length = i32::from_be_bytes(field(stored, LENGTH_OFFSET, 4).try_into().expect("4 bytes"));
        let end = position + LOG_OVERHEAD + length as usize;
        assert_eq!(field(stored, LENGTH_OFFSET, 4), field(received, LENGTH_OFFSET, 4));
        assert_eq!(field(stored, 0, 8), next_offset.to_be_bytes(), "offsets are dense from 0");
        let crc = crc32c::crc32c(&stored[position + ATTRIBUTES_OFFSET..end]);
        assert_eq!(field(stored, CRC_OFFSET, 4), crc.to_be_bytes(), "the stored CRC matches");
        // Magic, last offset delta, base timestamp, producer and records as received.
        assert_eq!(stored[position + 16], received[position + 16]);
        assert_eq!(
            stored[position + LAST_OFFSET_DELTA_OFFSET..position + MAX_TIMESTAMP_OFFSET],
            received[position + LAST_OFFSET_DELTA_OFFSET..position + MAX_TIMESTAMP_OFFSET]
        );
        assert_eq!(
            stored[position + MAX_TIMESTAMP_OFFSET + 8..end],
            received[position + MAX_TIMESTAMP_OFFSET + 8..end],
            "the records after the header are stored as received"
        );
        let last_delta = i32::from_be_bytes(field(stored, LAST_OFFSET_DELTA_OFFSET, 4).try_into().expect("4 bytes"));
        next_offset += last_delta as i64 + 1;
        position = end;
    }
}

fn read_all(log: &Log) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log
            .read(offset, usize::MAX, i64::MAX)
            .expect("read inside the log")
            .expect("batches below the log end offset");
        let before = bytes.len();
        slice.read_into(&mut bytes).expect("read the slice");
        // Each read returns whole batches; continue after the last one.
        let mut position = before;
        while position < bytes.len() {
            let base_offset = i64::from_be_bytes(bytes[position..position + 8].try_into().expect("8 bytes"));
            let length = i32::from_be_bytes(bytes[position + 8..position + 12].try_into().expect("4 bytes"));
            let last_delta = i32::from_be_bytes(bytes[position + 23..position + 27].try_into().expect("4 bytes"));
            offset = base_offset + last_delta as i64 + 1;
            position += LOG_OVERHEAD + length as usize;
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    let Some((&options, batches)) = data.split_first() else {
        return;
    };
    let mut batches = batches.to_vec();
    if options & FIX_CRCS != 0 {
        fix_crcs(&mut batches);
    }
    let now_ms = match batches.get(BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8) {
        Some(field) if options & NOW_FROM_BATCH != 0 => i64::from_be_bytes(field.try_into().expect("8 bytes")),
        _ => FIXED_NOW_MS,
    };
    let mut config = LogConfig {
        compact: options & COMPACTED != 0,
        ..LogConfig::default()
    };
    if options & LOG_APPEND_TIME != 0 {
        config.message_timestamp_type = TimestampType::LogAppendTime;
    }
    if options & SMALL_LIMITS != 0 {
        config.max_message_bytes = 256;
        config.index_interval_bytes = 1;
    }
    let storage = SimStorage::new();
    let dir = Path::new("/fuzz/topic-0");
    let log = Log::open_with_storage(dir, config.clone(), storage.clone()).expect("open an empty log");

    let appended = match log.append(&batches, 0, now_ms) {
        Ok(info) => info,
        Err(_) => {
            assert_eq!(log.log_end_offset(), 0, "a refusal leaves the log untouched");
            return;
        }
    };
    assert_eq!(appended.base_offset, 0);
    assert_eq!(appended.last_offset + 1, log.log_end_offset());
    assert_stored(&read_all(&log), &batches);
    let _ = log.offset_for_timestamp(now_ms);
    let _ = log.max_timestamp();
    // The same bytes again: an idempotent producer's retry is a duplicate,
    // anything else is appended after the first copy or refused.
    let _ = log.append(&batches, 0, now_ms);

    // Recovery must accept what the append accepted.
    log.sync_to(log.log_end_offset()).expect("sync");
    let synced_end = log.log_end_offset();
    let synced = read_all(&log);
    drop(log);
    storage.power_cut();
    let recovered = Log::open_with_storage(dir, config, storage).expect("recover the log");
    assert_eq!(recovered.log_end_offset(), synced_end);
    assert_eq!(read_all(&recovered), synced, "recovery keeps every synced batch");
});
