//! A small encoder for Kafka v2 record batches, for tests and benches: real
//! varint-framed records, a real CRC32C, and a parser of batch headers to
//! check what the log returns.
#![allow(dead_code)]

pub const HEADER_SIZE: usize = 61;

/// What to put in a batch. Record `i` gets timestamp `timestamps[i]` and a
/// value of `value_size` bytes derived from `seed`.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    pub timestamps: Vec<i64>,
    pub value_size: usize,
    pub seed: u8,
    /// Raw attributes: compression codec (bits 0-2), timestamp type (bit 3),
    /// transactional (bit 4), control (bit 5).
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchSpec {
    pub fn new(records: usize, value_size: usize, first_timestamp: i64) -> BatchSpec {
        BatchSpec {
            timestamps: (0..records as i64).map(|i| first_timestamp + i).collect(),
            value_size,
            seed: records as u8,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode_record(out: &mut Vec<u8>, offset_delta: i64, timestamp_delta: i64, key: &[u8], value: &[u8]) {
    let mut body = Vec::with_capacity(value.len() + key.len() + 16);
    body.push(0); // attributes
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, key.len() as i64);
    body.extend_from_slice(key);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    put_varint(&mut body, 1); // one header
    put_varint(&mut body, 1);
    body.push(b'h');
    put_varint(&mut body, -1); // null header value
    put_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Encodes a batch with base offset 0 and partition leader epoch -1, as a
/// producer sends it.
pub fn encode(spec: &BatchSpec) -> Vec<u8> {
    let count = spec.timestamps.len();
    let base_timestamp = spec.timestamps.first().copied().unwrap_or(-1);
    let max_timestamp = spec.timestamps.iter().copied().max().unwrap_or(-1);
    let mut records = Vec::new();
    for (i, ts) in spec.timestamps.iter().enumerate() {
        let key = format!("k{i}");
        let value: Vec<u8> = (0..spec.value_size)
            .map(|j| spec.seed.wrapping_add((i * 31 + j) as u8))
            .collect();
        encode_record(&mut records, i as i64, ts - base_timestamp, key.as_bytes(), &value);
    }
    let mut b = Vec::with_capacity(HEADER_SIZE + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_SIZE - 12 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&spec.attributes.to_be_bytes());
    b.extend_from_slice(&(count as i32 - 1).to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&(count as i32).to_be_bytes());
    b.extend_from_slice(&records);
    fix_crc(&mut b);
    b
}

/// A batch of `records` records of `value_size` bytes with timestamps from
/// `first_timestamp`.
pub fn batch(records: usize, value_size: usize, first_timestamp: i64) -> Vec<u8> {
    encode(&BatchSpec::new(records, value_size, first_timestamp))
}

/// An idempotent producer's batch of `records` records of 10 bytes.
pub fn idempotent(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: usize,
    first_timestamp: i64,
) -> Vec<u8> {
    let mut spec = BatchSpec::new(records, 10, first_timestamp);
    spec.producer_id = producer_id;
    spec.producer_epoch = producer_epoch;
    spec.base_sequence = base_sequence;
    encode(&spec)
}

/// A batch of about `size` bytes holding `records` records.
pub fn batch_of_size(size: usize, records: usize, first_timestamp: i64) -> Vec<u8> {
    let probe = batch(records, 0, first_timestamp).len();
    let value_size = size.saturating_sub(probe) / records;
    batch(records, value_size, first_timestamp)
}

pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The header fields tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub base_offset: i64,
    pub size: usize,
    pub leader_epoch: i32,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: i32,
}

impl Header {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
}

pub fn header(b: &[u8]) -> Header {
    let i32_at = |at: usize| i32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let i64_at = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    Header {
        base_offset: i64_at(0),
        size: i32_at(8) as usize + 12,
        leader_epoch: i32_at(12),
        crc: i32_at(17) as u32,
        attributes: i16::from_be_bytes([b[21], b[22]]),
        last_offset_delta: i32_at(23),
        max_timestamp: i64_at(35),
        producer_id: i64_at(43),
        producer_epoch: i16::from_be_bytes([b[51], b[52]]),
        base_sequence: i32_at(53),
        records: i32_at(57),
    }
}

/// Splits bytes holding whole batches, checking each one's CRC.
pub fn split_batches(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = header(bytes);
        assert!(h.size <= bytes.len(), "partial batch in a read");
        let (batch, rest) = bytes.split_at(h.size);
        assert_eq!(h.crc, crc32c::crc32c(&batch[21..]), "corrupt batch returned");
        out.push(batch);
        bytes = rest;
    }
    out
}

/// `batches` as an append stores them, which leaves its input as it was:
/// offsets from `base_offset`, `leader_epoch` stamped, and with LogAppendTime
/// (`log_append_time_ms` >= 0, as the append answered) that time as the max
/// timestamp, the timestamp type bit set and the CRC recomputed. The
/// batches' own max timestamps must be right (as `encode` writes them).
pub fn as_stored(batches: &[u8], base_offset: i64, leader_epoch: i32, log_append_time_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(batches.len());
    let mut next_offset = base_offset;
    for b in split_batches(batches) {
        let start = out.len();
        out.extend_from_slice(b);
        let stored = &mut out[start..];
        stored[0..8].copy_from_slice(&next_offset.to_be_bytes());
        stored[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        if log_append_time_ms >= 0 {
            let attributes = i16::from_be_bytes([stored[21], stored[22]]) | 0x08;
            stored[21..23].copy_from_slice(&attributes.to_be_bytes());
            stored[35..43].copy_from_slice(&log_append_time_ms.to_be_bytes());
            fix_crc(stored);
        }
        next_offset += header(b).last_offset_delta as i64 + 1;
    }
    out
}
