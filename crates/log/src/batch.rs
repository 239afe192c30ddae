//! Kafka's v2 record batch header: field positions, a parsed view, and the
//! in-place rewrites that offset assignment needs.
//!
//! ```text
//! baseOffset: int64            0   not covered by the CRC
//! batchLength: int32           8   bytes after this field
//! partitionLeaderEpoch: int32  12  not covered by the CRC
//! magic: int8                  16
//! crc: uint32                  17  CRC32C of attributes..end
//! attributes: int16            21
//! lastOffsetDelta: int32       23
//! baseTimestamp: int64         27
//! maxTimestamp: int64          35
//! producerId: int64            43
//! producerEpoch: int16         51
//! baseSequence: int32          53
//! recordsCount: int32          57
//! records                      61
//! ```

pub(crate) const BASE_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH: usize = 12;
pub(crate) const MAGIC: usize = 16;
pub(crate) const CRC: usize = 17;
pub(crate) const ATTRIBUTES: usize = 21;
pub(crate) const LAST_OFFSET_DELTA: usize = 23;
pub(crate) const BASE_TIMESTAMP: usize = 27;
pub(crate) const MAX_TIMESTAMP: usize = 35;
pub(crate) const PRODUCER_ID: usize = 43;
pub(crate) const PRODUCER_EPOCH: usize = 51;
pub(crate) const BASE_SEQUENCE: usize = 53;
pub(crate) const RECORDS_COUNT: usize = 57;
/// Kafka's RECORD_BATCH_OVERHEAD: a batch with no records.
pub(crate) const HEADER_SIZE: usize = 61;
/// Kafka's LOG_OVERHEAD: base offset and batch length, which precede the
/// part of the batch that `batchLength` counts.
pub(crate) const LOG_OVERHEAD: usize = 12;
pub(crate) const CURRENT_MAGIC: i8 = 2;

pub(crate) const COMPRESSION_CODEC_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_MASK: i16 = 0x08;
pub(crate) const TRANSACTIONAL_MASK: i16 = 0x10;
pub(crate) const CONTROL_MASK: i16 = 0x20;
/// Kafka's NO_TIMESTAMP.
pub(crate) const NO_TIMESTAMP: i64 = -1;

fn i16_at(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}
fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// The fixed-size header of one v2 batch, parsed from its first
/// [`HEADER_SIZE`] bytes. Nothing here is validated yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// `buf` must hold at least [`HEADER_SIZE`] bytes.
    pub fn parse(buf: &[u8]) -> BatchHeader {
        BatchHeader {
            base_offset: i64_at(buf, BASE_OFFSET),
            batch_length: i32_at(buf, BATCH_LENGTH),
            partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH),
            magic: buf[MAGIC] as i8,
            crc: i32_at(buf, CRC) as u32,
            attributes: i16_at(buf, ATTRIBUTES),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP),
            producer_id: i64_at(buf, PRODUCER_ID),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH),
            base_sequence: i32_at(buf, BASE_SEQUENCE),
            records_count: i32_at(buf, RECORDS_COUNT),
        }
    }

    /// The whole batch's size in bytes, as its length field claims.
    /// Negative for a corrupt length; check [`BatchHeader::framing_error`].
    pub fn size(&self) -> i64 {
        self.batch_length as i64 + LOG_OVERHEAD as i64
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & COMPRESSION_CODEC_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }

    /// Why a batch with this header cannot be framed from `available` bytes
    /// (a bad length, magic, or a truncated batch), or `None`. These are the
    /// checks that must pass before the batch's bytes can even be found.
    pub fn framing_error(&self, available: usize) -> Option<String> {
        if self.size() < HEADER_SIZE as i64 {
            return Some(format!(
                "batch length {} is below the minimum of {}",
                self.batch_length,
                HEADER_SIZE - LOG_OVERHEAD
            ));
        }
        if self.magic != CURRENT_MAGIC {
            return Some(format!(
                "unsupported magic {} (only v2 batches are accepted)",
                self.magic
            ));
        }
        if self.size() > available as i64 {
            return Some(format!(
                "truncated batch: {} bytes declared, {} present",
                self.size(),
                available
            ));
        }
        None
    }
}

/// CRC32C over Kafka's range: from the attributes field to the batch's end.
pub(crate) fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// The fields an append rewrites all live in the batch header, so they are
/// patched in a copy of the header (`header`, [`HEADER_SIZE`] bytes) and the
/// records after it (`records`) are written to disk straight from the
/// request, never copied.
pub(crate) fn set_base_offset(header: &mut [u8], base_offset: i64) {
    header[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

pub(crate) fn set_partition_leader_epoch(header: &mut [u8], epoch: i32) {
    header[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the CRC-covered timestamp fields of `header` and recomputes the CRC
/// over it and the batch's `records`, only when one of them changes (Kafka's
/// `setMaxTimestamp`).
pub(crate) fn set_max_timestamp(header: &mut [u8], records: &[u8], attributes: i16, max_timestamp: i64) {
    if i16_at(header, ATTRIBUTES) == attributes && i64_at(header, MAX_TIMESTAMP) == max_timestamp {
        return;
    }
    header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    header[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES..HEADER_SIZE]), records);
    header[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Reads a zigzag varint (Kafka's `ByteUtils.readVarint`) at `*pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    read_varlong_bits(buf, pos, 5).map(|v| v as i32)
}

/// Reads a zigzag varlong at `*pos`.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    read_varlong_bits(buf, pos, 10)
}

fn read_varlong_bits(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes() -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        b[BASE_OFFSET..8].copy_from_slice(&7i64.to_be_bytes());
        b[BATCH_LENGTH..12].copy_from_slice(&((HEADER_SIZE - LOG_OVERHEAD) as i32).to_be_bytes());
        b[MAGIC] = 2;
        b[LAST_OFFSET_DELTA..27].copy_from_slice(&2i32.to_be_bytes());
        b[RECORDS_COUNT..61].copy_from_slice(&3i32.to_be_bytes());
        b
    }

    #[test]
    fn parses_header_fields() {
        let h = BatchHeader::parse(&header_bytes());
        assert_eq!(h.base_offset, 7);
        assert_eq!(h.size(), HEADER_SIZE as i64);
        assert_eq!(h.last_offset(), 9);
        assert_eq!(h.next_offset(), 10);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.framing_error(HEADER_SIZE), None);
        assert!(h.framing_error(HEADER_SIZE - 1).unwrap().contains("truncated"));
    }

    #[test]
    fn framing_rejects_bad_length_and_magic() {
        let mut b = header_bytes();
        b[BATCH_LENGTH..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(
            BatchHeader::parse(&b)
                .framing_error(1000)
                .unwrap()
                .contains("below the minimum")
        );
        let mut b = header_bytes();
        b[MAGIC] = 1;
        assert!(BatchHeader::parse(&b).framing_error(1000).unwrap().contains("magic"));
    }

    #[test]
    fn max_timestamp_rewrite_recomputes_crc_only_on_change() {
        let mut b = header_bytes();
        let crc = compute_crc(&b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        set_max_timestamp(&mut b, &[], 0, 0);
        assert_eq!(BatchHeader::parse(&b).crc, crc, "unchanged fields keep the CRC");
        set_max_timestamp(&mut b, &[], TIMESTAMP_TYPE_MASK, 1234);
        let h = BatchHeader::parse(&b);
        assert_eq!(h.max_timestamp, 1234);
        assert_eq!(h.crc, compute_crc(&b));
        assert_ne!(h.crc, crc);
    }

    #[test]
    fn varints_decode_zigzag() {
        // 0 -> 0, -1 -> 1, 1 -> 2, 300 -> 600 = 0xd8 0x04
        let buf = [0x00, 0x01, 0x02, 0xd8, 0x04];
        let mut pos = 0;
        assert_eq!(read_varint(&buf, &mut pos), Some(0));
        assert_eq!(read_varint(&buf, &mut pos), Some(-1));
        assert_eq!(read_varint(&buf, &mut pos), Some(1));
        assert_eq!(read_varlong(&buf, &mut pos), Some(300));
        assert_eq!(read_varint(&buf, &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_varint(&[0xff; 6], &mut pos), None, "overlong varint");
    }
}
