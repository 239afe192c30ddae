//! Binary encoding of metadata records, and the framing of the record log:
//! each frame is `length: u32, crc32c: u32, payload` (big endian), one frame
//! per atomic batch of records, so a torn write loses a whole batch or nothing.

use uuid::Uuid;

use crate::{ConfigResource, MetadataRecord};

const TOPIC: u8 = 1;
const PARTITION_COUNT: u8 = 2;
const TOPIC_CONFIG: u8 = 3;
const BROKER_CONFIG: u8 = 4;
const REMOVE_TOPIC: u8 = 5;
const PRODUCER_ID_BLOCK: u8 = 6;

pub const FRAME_HEADER_BYTES: usize = 8;

/// Appends one frame holding `records` to `out`.
pub fn encode_frame(records: &[MetadataRecord], out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    for record in records {
        encode_record(record, &mut payload);
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes the frame at the start of `bytes`: its records and its total size.
/// `None` when the frame is incomplete or its checksum does not match (a torn tail).
pub fn decode_frame(bytes: &[u8]) -> Option<(Vec<MetadataRecord>, usize)> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let length = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..8].try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES.checked_add(length)?)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let mut reader = Reader { bytes: payload };
    let mut records = Vec::new();
    while !reader.bytes.is_empty() {
        records.push(reader.record()?);
    }
    Some((records, FRAME_HEADER_BYTES + length))
}

fn encode_record(record: &MetadataRecord, out: &mut Vec<u8>) {
    match record {
        MetadataRecord::Topic { name, id, partitions } => {
            out.push(TOPIC);
            put_str(out, name);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&partitions.to_be_bytes());
        }
        MetadataRecord::PartitionCount { id, partitions } => {
            out.push(PARTITION_COUNT);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&partitions.to_be_bytes());
        }
        MetadataRecord::Config { resource, key, value } => {
            match resource {
                ConfigResource::Topic(name) => {
                    out.push(TOPIC_CONFIG);
                    put_str(out, name);
                }
                ConfigResource::Broker(node_id) => {
                    out.push(BROKER_CONFIG);
                    out.extend_from_slice(&node_id.to_be_bytes());
                }
            }
            put_str(out, key);
            match value {
                Some(value) => {
                    out.push(1);
                    put_str(out, value);
                }
                None => out.push(0),
            }
        }
        MetadataRecord::RemoveTopic { id } => {
            out.push(REMOVE_TOPIC);
            out.extend_from_slice(id.as_bytes());
        }
        MetadataRecord::ProducerIdBlock { next_block_start } => {
            out.push(PRODUCER_ID_BLOCK);
            out.extend_from_slice(&next_block_start.to_be_bytes());
        }
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn uuid(&mut self) -> Option<Uuid> {
        Some(Uuid::from_bytes(self.take(16)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let length = self.i32()? as u32 as usize;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
    fn record(&mut self) -> Option<MetadataRecord> {
        Some(match self.u8()? {
            TOPIC => MetadataRecord::Topic {
                name: self.string()?,
                id: self.uuid()?,
                partitions: self.i32()?,
            },
            PARTITION_COUNT => MetadataRecord::PartitionCount {
                id: self.uuid()?,
                partitions: self.i32()?,
            },
            tag @ (TOPIC_CONFIG | BROKER_CONFIG) => {
                let resource = if tag == TOPIC_CONFIG {
                    ConfigResource::Topic(self.string()?)
                } else {
                    ConfigResource::Broker(self.i32()?)
                };
                let key = self.string()?;
                let value = match self.u8()? {
                    0 => None,
                    _ => Some(self.string()?),
                };
                MetadataRecord::Config { resource, key, value }
            }
            REMOVE_TOPIC => MetadataRecord::RemoveTopic { id: self.uuid()? },
            PRODUCER_ID_BLOCK => MetadataRecord::ProducerIdBlock {
                next_block_start: i64::from_be_bytes(self.take(8)?.try_into().ok()?),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let records = vec![
            MetadataRecord::Topic {
                name: "orders".into(),
                id: Uuid::new_v4(),
                partitions: 3,
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("orders".into()),
                key: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Broker(1),
                key: "x".into(),
                value: None,
            },
            MetadataRecord::PartitionCount {
                id: Uuid::nil(),
                partitions: 4,
            },
            MetadataRecord::RemoveTopic { id: Uuid::nil() },
            MetadataRecord::ProducerIdBlock { next_block_start: 2000 },
        ];
        let mut bytes = Vec::new();
        encode_frame(&records, &mut bytes);
        let (decoded, size) = decode_frame(&bytes).unwrap();
        assert_eq!(decoded, records);
        assert_eq!(size, bytes.len());
        for cut in 0..bytes.len() {
            assert!(
                decode_frame(&bytes[..cut]).is_none(),
                "a frame cut at {cut} must not decode"
            );
        }
        bytes[FRAME_HEADER_BYTES + 3] ^= 0xff;
        assert!(decode_frame(&bytes).is_none());
    }
}
