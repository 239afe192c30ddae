//! Broker-side recompression, for topics whose `compression.type` is not
//! `producer`. The only place the broker decodes individual records: a topic
//! that keeps the producer's compression (the default) never comes here.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::Compression;

/// The codec a topic's `compression.type` asks for; `None` keeps the producer's.
pub fn target_codec(compression_type: &str) -> Option<Compression> {
    match compression_type {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Where the v2 batch header keeps what recompression changes.
const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const RECORDS_AT: usize = 61;
const CODEC_MASK: u8 = 0x07;
const CONTROL_BIT: u8 = 0x20;

/// Re-encodes every batch of `batches` with `codec`. Only the records section
/// is decompressed and compressed again, as one block: records themselves,
/// offsets, timestamps and producer fields are untouched. Batches already in
/// `codec` and control batches are kept byte for byte.
pub fn recompress(batches: &[u8], codec: Compression) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(batches.len());
    let mut rest = batches;
    while !rest.is_empty() {
        let size = batch_size(rest)?;
        let (batch, tail) = rest.split_at(size);
        rest = tail;
        if batch.len() < RECORDS_AT {
            return Err(format!(
                "record batch of {} bytes is shorter than its header",
                batch.len()
            ));
        }
        let attributes = batch[ATTRIBUTES_AT + 1];
        let source = attributes & CODEC_MASK;
        if source == codec as u8 || attributes & CONTROL_BIT != 0 {
            out.extend_from_slice(batch);
            continue;
        }
        let plain = decompress(source, Bytes::copy_from_slice(&batch[RECORDS_AT..]))?;
        let packed = compress(codec, &plain)?;
        let start = out.len();
        out.extend_from_slice(&batch[..RECORDS_AT]);
        out.extend_from_slice(&packed);
        let length = (out.len() - start - 12) as i32;
        out[start + LENGTH_AT..start + LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        out[start + ATTRIBUTES_AT + 1] = (attributes & !CODEC_MASK) | codec as u8;
        let crc = crc32c::crc32c(&out[start + ATTRIBUTES_AT..]);
        out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

fn decompress(codec: u8, mut payload: Bytes) -> Result<Bytes, String> {
    let all = |buf: &mut Bytes| Ok(buf.split_to(buf.len()));
    let result = match codec {
        0 => return Ok(payload),
        1 => Gzip::decompress(&mut payload, all),
        2 => Snappy::decompress(&mut payload, all),
        3 => Lz4::decompress(&mut payload, all),
        4 => Zstd::decompress(&mut payload, all),
        other => return Err(format!("unknown compression codec {other}")),
    };
    result.map_err(|e| format!("cannot decompress record batch: {e}"))
}

fn compress(codec: Compression, plain: &[u8]) -> Result<BytesMut, String> {
    let mut out = BytesMut::with_capacity(plain.len() / 2 + 64);
    let write = |buf: &mut BytesMut| {
        buf.extend_from_slice(plain);
        Ok(())
    };
    let result = match codec {
        Compression::None => {
            out.extend_from_slice(plain);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(&mut out, write),
        Compression::Snappy => Snappy::compress(&mut out, write),
        Compression::Lz4 => Lz4::compress(&mut out, write),
        Compression::Zstd => Zstd::compress(&mut out, write),
    };
    result.map_err(|e| format!("cannot compress record batch: {e}"))?;
    Ok(out)
}

/// The size of the batch at the start of `bytes`: base offset (8) + length (4) + length.
fn batch_size(bytes: &[u8]) -> Result<usize, String> {
    let length = bytes
        .get(LENGTH_AT..LENGTH_AT + 4)
        .ok_or("truncated record batch header")?;
    let length = i32::from_be_bytes(length.try_into().expect("four bytes"));
    let size = usize::try_from(length).map_err(|_| format!("negative record batch length {length}"))? + 12;
    if size > bytes.len() {
        return Err(format!("record batch of {size} bytes is truncated at {}", bytes.len()));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::{Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    use super::*;

    fn records(count: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from("a value that compresses well ".repeat(8))),
                headers: Default::default(),
            })
            .collect()
    }

    #[test]
    fn recompression_keeps_every_record() {
        let mut plain = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut plain,
            &records(20),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        RecordBatchEncoder::encode(
            &mut plain,
            &records(3),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::Gzip,
            },
        )
        .unwrap();
        for codec in [
            Compression::Zstd,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Gzip,
            Compression::None,
        ] {
            let packed = recompress(&plain, codec).unwrap();
            let sets = RecordBatchDecoder::decode_all(&mut Bytes::from(packed)).unwrap();
            assert_eq!(sets.len(), 2);
            assert!(sets.iter().all(|set| set.compression == codec));
            assert_eq!(sets[0].records, records(20));
            assert_eq!(sets[1].records, records(3));
        }
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        assert!(recompress(&[0, 0, 0], Compression::Zstd).is_err());
        assert!(recompress(&[0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0], Compression::Zstd).is_err());
        assert!(recompress(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], Compression::Zstd).is_err());
    }
}
