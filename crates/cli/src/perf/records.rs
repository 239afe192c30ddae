//! The records a perf run sends: values cut from a pool of random
//! uppercase letters (as Kafka's producer perf tool generates them, so
//! compression sees realistic, not degenerate, data), keys by the chosen
//! distribution, and for e2e a stamp in each value that the consumer reads
//! back. Nothing here allocates per record.

use std::fmt::Write as _;

/// An e2e stamp: the run id (8 bytes) then the send time in microseconds
/// since the run started (8 bytes), both little-endian, at the start of the
/// value. The run id lets the consumer skip records of other runs.
pub const STAMP_BYTES: usize = 16;

/// Bytes of random letters the values are cut from, beyond one value.
const POOL_BYTES: usize = 1 << 20;

/// How records are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistribution {
    /// No key; the perf tool spreads records round-robin over the partitions.
    None,
    /// Key = the record's sequence number: every key distinct.
    Sequential,
    /// Key drawn uniformly from this many distinct keys.
    Random(u64),
}

impl KeyDistribution {
    pub fn parse(text: &str) -> Result<KeyDistribution, String> {
        match text {
            "none" => Ok(KeyDistribution::None),
            "sequential" => Ok(KeyDistribution::Sequential),
            _ => match text.strip_prefix("random:").map(str::parse::<u64>) {
                Some(Ok(keys)) if keys > 0 => Ok(KeyDistribution::Random(keys)),
                _ => Err("expected none, sequential or random:N with N > 0".to_string()),
            },
        }
    }
}

/// Makes the key and value of each record in turn.
pub struct RecordSource {
    pool: Vec<u8>,
    record_size: usize,
    keys: KeyDistribution,
    random: SplitMix64,
    key: String,
    stamped: Vec<u8>,
}

impl RecordSource {
    pub fn new(record_size: usize, keys: KeyDistribution, seed: u64) -> RecordSource {
        let mut random = SplitMix64(seed);
        let pool = (0..POOL_BYTES + record_size)
            .map(|_| b'A' + (random.next() % 26) as u8)
            .collect();
        RecordSource {
            pool,
            record_size,
            keys,
            random,
            key: String::with_capacity(20),
            stamped: Vec::with_capacity(record_size),
        }
    }

    /// Key and value of record number `sequence`; with `stamp`
    /// (run id, microseconds), the value starts with an e2e stamp.
    pub fn next(&mut self, sequence: u64, stamp: Option<(u64, u64)>) -> (Option<&[u8]>, &[u8]) {
        let key_number = match self.keys {
            KeyDistribution::None => None,
            KeyDistribution::Sequential => Some(sequence),
            KeyDistribution::Random(keys) => Some(self.random.next() % keys),
        };
        if let Some(number) = key_number {
            self.key.clear();
            let _ = write!(self.key, "{number}");
        }
        // A different window of the pool for each record (a prime stride).
        let start = (sequence.wrapping_mul(7919) % (POOL_BYTES as u64)) as usize;
        let value = &self.pool[start..start + self.record_size];
        let value = match stamp {
            None => value,
            Some((run_id, micros)) => {
                self.stamped.clear();
                self.stamped.extend_from_slice(value);
                self.stamped[..8].copy_from_slice(&run_id.to_le_bytes());
                self.stamped[8..STAMP_BYTES].copy_from_slice(&micros.to_le_bytes());
                &self.stamped
            }
        };
        (key_number.map(|_| self.key.as_bytes()), value)
    }
}

/// The send time (microseconds since the run started) of a value stamped
/// by this run; None for a record of another run.
pub fn read_stamp(value: &[u8], run_id: u64) -> Option<u64> {
    let id = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let micros = u64::from_le_bytes(value.get(8..STAMP_BYTES)?.try_into().ok()?);
    (id == run_id).then_some(micros)
}

/// A small, fast pseudo-random generator (SplitMix64): good enough for
/// payload letters and key choice, and it needs no dependency.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A seed that differs between runs (and so a run id for e2e stamps).
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    SplitMix64(nanos ^ u64::from(std::process::id()).rotate_left(32)).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_distributions_parse() {
        assert_eq!(KeyDistribution::parse("none"), Ok(KeyDistribution::None));
        assert_eq!(KeyDistribution::parse("sequential"), Ok(KeyDistribution::Sequential));
        assert_eq!(KeyDistribution::parse("random:10"), Ok(KeyDistribution::Random(10)));
        assert!(KeyDistribution::parse("random:0").is_err());
        assert!(KeyDistribution::parse("random:").is_err());
        assert!(KeyDistribution::parse("zipf").is_err());
    }

    #[test]
    fn values_have_the_record_size_and_keys_follow_the_distribution() {
        let mut source = RecordSource::new(100, KeyDistribution::Sequential, 1);
        let (key, value) = source.next(42, None);
        assert_eq!(key, Some(&b"42"[..]));
        assert_eq!(value.len(), 100);
        assert!(value.iter().all(u8::is_ascii_uppercase));

        let mut source = RecordSource::new(10, KeyDistribution::Random(3), 1);
        for sequence in 0..100 {
            let (key, _) = source.next(sequence, None);
            let key: u64 = std::str::from_utf8(key.unwrap()).unwrap().parse().unwrap();
            assert!(key < 3);
        }

        let mut source = RecordSource::new(0, KeyDistribution::None, 1);
        assert_eq!(source.next(7, None), (None, &b""[..]));
    }

    #[test]
    fn stamps_round_trip_and_other_runs_are_told_apart() {
        let mut source = RecordSource::new(STAMP_BYTES + 4, KeyDistribution::None, 1);
        let (_, value) = source.next(3, Some((77, 123_456)));
        assert_eq!(value.len(), STAMP_BYTES + 4);
        assert_eq!(read_stamp(value, 77), Some(123_456));
        assert_eq!(read_stamp(value, 78), None);
        assert_eq!(read_stamp(b"short", 77), None);
    }
}
