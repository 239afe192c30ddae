//! Encoding of the broker's own record batches (uncompressed, v2), for the
//! internal topics it writes: committed offsets and group metadata.

/// One record of an internal topic: a key and a value (`None` is a tombstone).
pub struct InternalRecord {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

const HEADER_BYTES: usize = 61;

/// Attributes bit of a batch written inside a transaction.
const TRANSACTIONAL: i16 = 0x10;

/// One v2 record batch holding `records`, all stamped `timestamp_ms`. The base
/// offset is 0: the log assigns the real one on append. With `producer` (id,
/// epoch) the batch is transactional, as a coordinator writes offsets
/// committed inside a transaction (no sequence: Kafka's NO_SEQUENCE).
pub fn encode(records: &[InternalRecord], timestamp_ms: i64, producer: Option<(i64, i16)>) -> Vec<u8> {
    let (attributes, producer_id, producer_epoch) = match producer {
        Some((id, epoch)) => (TRANSACTIONAL, id, epoch),
        None => (0, -1, -1),
    };
    let mut out = Vec::with_capacity(
        HEADER_BYTES
            + records
                .iter()
                .map(|r| r.key.len() + r.value.as_ref().map_or(0, Vec::len) + 16)
                .sum::<usize>(),
    );
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, set below
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch, set by the log
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    out.extend_from_slice(&attributes.to_be_bytes()); // no compression, CreateTime
    out.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp_ms.to_be_bytes()); // base timestamp
    out.extend_from_slice(&timestamp_ms.to_be_bytes()); // max timestamp
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    let mut body = Vec::new();
    for (delta, record) in records.iter().enumerate() {
        body.clear();
        body.push(0); // record attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, delta as i64); // offset delta
        put_varint(&mut body, record.key.len() as i64);
        body.extend_from_slice(&record.key);
        match &record.value {
            Some(value) => {
                put_varint(&mut body, value.len() as i64);
                body.extend_from_slice(value);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, 0); // headers
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    let length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Zigzag varint, as Kafka's record fields use.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;

    #[test]
    fn decodes_with_the_protocol_crate() {
        let records = vec![
            InternalRecord {
                key: b"k1".to_vec(),
                value: Some(vec![7; 300]),
            },
            InternalRecord {
                key: b"k2".to_vec(),
                value: None,
            },
        ];
        let mut bytes = Bytes::from(encode(&records, 1234, None));
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(set.records[0].value.as_ref().unwrap().len(), 300);
        assert_eq!(set.records[1].value, None);
        assert_eq!((set.records[1].offset, set.records[1].timestamp), (1, 1234));
    }
}
